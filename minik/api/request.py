"""Request decoding: URL → resource target, query options, content negotiation, bodies.

Neighbours: `minik.api.handlers` uses `parse_target`, `decode_body`, `wants_table`; the
protobuf envelope decoder lives in `minik.apis.protobuf`; JSON and YAML are decoded with bounds
(depth, alias expansion, tags, non-finite numbers, surrogates) by `minik.api.decode`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minik.api import status as st
from minik.api.decode import check_decoded, decode_json, decode_yaml
from minik.apis.registry import Registry, ResourceType

MAX_BODY = 3 * 1024 * 1024
TABLE_CT = "application/json;as=Table;v=v1;g=meta.k8s.io"


@dataclass(frozen=True, slots=True)
class Target:
    """What a /api or /apis URL names."""

    rt: ResourceType
    namespace: str | None      # None: all namespaces (or cluster-scoped)
    name: str = ""
    subresource: str = ""
    watch_path: bool = False   # legacy /watch/ prefix


def parse_target(registry: Registry, core: bool, parts: list[str]) -> Target:
    """`parts` are the path segments after /api or /apis (e.g. ["v1","namespaces","x","pods"])."""
    if not parts:
        raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
    if core:
        if parts[0] != "v1":
            raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
        group, version, rest = "", "v1", parts[1:]
    else:
        if len(parts) < 2:
            raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
        group, version, rest = parts[0], parts[1], parts[2:]
    watch = False
    if rest and rest[0] == "watch":
        watch, rest = True, rest[1:]
    if not rest:
        raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        # /namespaces/{ns}/{plural}... unless {plural} is a namespace subresource (status/finalize).
        cand = registry.lookup(group, version, rest[2])
        if cand is not None and cand.namespaced:
            namespace, rest = rest[1], rest[2:]
    rt = registry.lookup(group, version, rest[0])
    if rt is None:
        gv = f"{group}/{version}" if group else version
        raise st.StatusError(404, "NotFound", f"the server could not find the requested resource ({rest[0]} in {gv})")
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if len(rest) > 3:
        # /pods/x/proxy/<path> and similar: only the subresource name matters here.
        if sub != "proxy":
            raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
    if sub and sub not in rt.subresources:
        raise st.StatusError(404, "NotFound", f"the server could not find the requested resource ({rt.plural}/{sub})")
    if not rt.namespaced:
        namespace = None
    return Target(rt, namespace, name, sub, watch)


def media_type(content_type: str | None) -> str:
    if not content_type:
        return "application/json"   # kubectl scale PUT and the Python client send none
    return content_type.split(";", 1)[0].strip().lower()


def decode_body(raw: bytes, content_type: str | None, *, patch: bool = False) -> tuple[Any, str]:
    """Return (decoded body, media type). Raises 413/400/415 Status errors."""
    if len(raw) > MAX_BODY:
        raise st.StatusError(413, "RequestEntityTooLarge", f"the request body is too large: {len(raw)} bytes (limit {MAX_BODY})")
    mt = media_type(content_type)
    if patch:
        if mt == "application/apply-patch+yaml":
            return decode_yaml(raw), mt
        if mt in ("application/json-patch+json", "application/merge-patch+json", "application/strategic-merge-patch+json"):
            return decode_json(raw), mt
        raise st.StatusError(415, "UnsupportedMediaType",
                             "the body of the request was in an unknown format - accepted media types include: "
                             "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                             "application/strategic-merge-patch+json")
    if not raw.strip():
        raise st.bad_request("the request body is empty")
    if mt in ("application/json", "*/*"):
        return decode_json(raw), mt
    if mt in ("application/yaml", "application/x-yaml", "text/yaml"):
        return decode_yaml(raw), mt
    if mt == "application/vnd.kubernetes.protobuf":
        from minik.apis.protobuf import decode_k8s_protobuf
        try:
            return check_decoded(decode_k8s_protobuf(raw)), mt
        except st.StatusError:
            raise
        except Exception as e:  # a protobuf body we cannot read is the client's problem: say which
            from minik.apis.errors import ApiError
            if isinstance(e, ApiError):
                raise
            raise st.bad_request(f"error decoding protobuf request body: {e}") from None
    raise st.StatusError(415, "UnsupportedMediaType",
                         f'the body of the request was in an unknown format - accepted media types include: '
                         f'application/json, application/yaml, application/vnd.kubernetes.protobuf (got "{mt}")')


def wants_table(accept: str | None) -> bool:
    if not accept:
        return False
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
        if part.strip().startswith("application/json") and "as=" not in part:
            return False
    return False


def wants_partial_metadata(accept: str | None) -> str:
    """'PartialObjectMetadata' / 'PartialObjectMetadataList' when the client asked for metadata only."""
    if not accept:
        return ""
    for part in accept.split(","):
        if "as=PartialObjectMetadataList" in part:
            return "PartialObjectMetadataList"
        if "as=PartialObjectMetadata" in part:
            return "PartialObjectMetadata"
        if part.strip().startswith("application/json") and "as=" not in part:
            return ""
    return ""


def bool_param(v: str | None) -> bool:
    return (v or "").lower() in ("true", "1", "yes")


def int_param(name: str, v: str | None) -> int | None:
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise st.bad_request(f"invalid value for {name}: {v!r} is not an integer") from None
