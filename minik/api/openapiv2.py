"""The Swagger 2.0 document for `/openapi/v2`, as JSON and as gnostic `openapi_v2.Document` protobuf.

kubectl 1.32 falls back to it when the v3 documents cannot vouch for server-side field
validation, most visibly for `kind: List` files (`kubectl get -o yaml` output): it then
validates each item on the client against the v2 definitions, which it reads only as
protobuf (`Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). Older helm
and client-go's `OpenAPISchema()` read the same document.

The document is derived from the per-group-version v3 documents of `minik.api.openapi.OpenAPI`
(same paths, same definitions, custom kinds from CRDs), rewritten into Swagger 2.0 form the way
kube-apiserver publishes v2: `$ref: "#/definitions/<name>"` with a description beside it instead
of `allOf`, inline parameter types, body parameters, and CRD schemas stripped of what v2
consumers cannot read (nullable, oneOf/anyOf/not, properties under
x-kubernetes-preserve-unknown-fields). Neighbours: `minik.api.app` routes `/openapi/v2` to
`OpenAPIV2.respond`; `OpenAPI.index()` supplies the fingerprint that says when to rebuild.

Memory: the document is built on first request and only one encoding is kept, gzip-compressed
(~10x smaller than the raw bytes); the JSON dict is dropped as soon as it is encoded.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minik.api.openapi import COMPONENTS_PREFIX, PATCH_TYPES, OpenAPI

# What kubectl asks for has an "@", which Go's mime.ParseMediaType rejects in a response
# Content-Type ("unexpected content after media subtype"); kube-apiserver answers with the
# dotted spelling and accepts both.
PROTOBUF_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
_PROTOBUF_ACCEPTS = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
                     "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
DEFINITIONS_PREFIX = "#/definitions/"
_PRODUCES = ["application/json", "application/yaml", "application/vnd.kubernetes.protobuf"]

_Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One cached encoding of the document."""

    fingerprint: str
    protobuf: bool
    gzipped: bytes   # the body, gzip-compressed; decompressed for clients that don't accept gzip

    @property
    def etag(self) -> str:
        return '"' + self.fingerprint[:32] + ("-pb" if self.protobuf else "-json") + '"'

    @property
    def content_type(self) -> str:
        return PROTOBUF_TYPE if self.protobuf else "application/json"


def wants_protobuf(accept: str) -> bool:
    return any(t in accept for t in _PROTOBUF_ACCEPTS)


class OpenAPIV2:
    """Builds, encodes and caches the `/openapi/v2` document."""

    def __init__(self, openapi: OpenAPI) -> None:
        self._openapi = openapi
        self._cached: Encoded | None = None

    # --- public interface ---------------------------------------------------------------------

    async def respond(self, request: web.Request) -> web.Response:
        """The aiohttp answer: protobuf or JSON by Accept, ETag / If-None-Match, gzip when accepted."""
        enc = self.encoded(wants_protobuf(request.headers.get("Accept", "")))
        headers = {"ETag": enc.etag, "Vary": "Accept, Accept-Encoding", "Cache-Control": "no-cache, private"}
        if enc.etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            headers["Content-Encoding"] = "gzip"
            body = enc.gzipped
        else:
            body = gzip.decompress(enc.gzipped)
        return web.Response(body=body, headers=headers, content_type=enc.content_type)

    def encoded(self, protobuf: bool) -> Encoded:
        """The cached encoding, rebuilt when the inputs changed.

        Built on the event loop (~0.15 s, rarely: once per CRD change, and kubectl asks for v2
        only as a fallback), like the v3 documents: a worker thread would leave its own malloc
        arena behind (~2 MB more RSS, measured) and race registry changes.
        """
        fingerprint = self.fingerprint()
        cached = self._cached
        if cached is not None and cached.fingerprint == fingerprint and cached.protobuf == protobuf:
            return cached
        self._cached = None   # let the old bytes go before the new ones exist
        self._cached = self.encode(fingerprint, protobuf)
        return self._cached

    def encode(self, fingerprint: str, protobuf: bool) -> Encoded:
        doc = self.build()
        raw = encode_document(doc) if protobuf else json.dumps(doc, separators=(",", ":")).encode()
        del doc
        return Encoded(fingerprint, protobuf, gzip.compress(raw, compresslevel=6, mtime=0))

    def fingerprint(self) -> str:
        """Changes exactly when a v3 document does (their hashes cover served kinds and CRD schemas)."""
        h = hashlib.sha256()
        for key, entry in sorted(self._openapi.index()["paths"].items()):
            h.update(f"{key}={entry['serverRelativeURL']}\n".encode())
        return h.hexdigest()

    def build(self) -> _Json:
        """The Swagger 2.0 document as a JSON-ready dict."""
        paths: _Json = {}
        definitions: _Json = {}
        for key in self._openapi.index()["paths"]:
            parts = key.split("/")
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            tag = ((group.split(".")[0] or "core") + "_" + version).replace("-", "_")
            # The v3 builder without its cache: caching every group's v3 bytes just to derive v2
            # would hold them all in memory. (OpenAPI has no public uncached build yet.)
            v3 = self._openapi._build(group, version)
            for path, item in v3["paths"].items():
                paths[path] = _path_item(item, tag)
            for name, schema in v3["components"]["schemas"].items():
                if name not in definitions:
                    definitions[name] = convert_schema(schema)
        self._complete(definitions, paths)
        return {
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": dict(sorted(paths.items())),
            "definitions": dict(sorted(definitions.items())),
        }

    def _complete(self, definitions: _Json, paths: _Json) -> None:
        """Add the definitions that are referenced but missing.

        v2 readers refuse a document with a dangling `$ref` ("unknown model in reference"), and
        the v3 closure misses some: `Schemas.closure` does not descend into properties whose
        *name* starts with "x-" (JSONSchemaProps.x-kubernetes-validations → ValidationRule).
        A name with no definition at all becomes an untyped (accept-anything) schema.
        """
        todo = _refs_in(paths) | _refs_in(definitions)
        while todo:
            name = todo.pop()
            if name in definitions:
                continue
            found = self._openapi._convert_definition(name) if self._openapi._schemas.definition(name) else {}
            definitions[name] = convert_schema(found)
            todo |= _refs_in(found)


def _refs_in(tree: Any) -> set[str]:
    """Definition names of every `$ref` anywhere in a JSON tree (v3 or v2 prefix)."""
    out: set[str] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                out.add(ref.rsplit("/", 1)[-1])
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        elif isinstance(node, list):
            stack.extend(v for v in node if isinstance(v, (dict, list)))
    return out


# --- v3 → Swagger 2.0 -------------------------------------------------------------------------

def convert_schema(schema: Any) -> Any:
    """One OpenAPI v3 schema (as `minik.api.openapi` writes them) in Swagger 2.0 form."""
    if not isinstance(schema, dict):
        return schema
    out: _Json = {}
    for key, value in schema.items():
        if key == "$ref":
            out[key] = _ref(value)
        elif key == "properties":
            out[key] = {k: convert_schema(v) for k, v in value.items()}
        elif key == "items":
            out[key] = convert_schema(value) if isinstance(value, dict) else [convert_schema(v) for v in value]
        elif key == "additionalProperties":
            out[key] = value if isinstance(value, bool) else convert_schema(value)
        elif key == "allOf":
            refs = [s for s in value if isinstance(s, dict) and set(s) == {"$ref"}]
            if len(value) == 1 and refs:
                # kube's v2 documents put the description beside the $ref; v2 readers ignore it.
                out["$ref"] = _ref(refs[0]["$ref"])
            # Other allOf (CRD schemas) is dropped, as kube-apiserver does for v2.
        elif key in ("nullable", "oneOf", "anyOf", "not", "patternProperties"):
            continue  # not Swagger 2.0
        else:
            out[key] = value
    if "$ref" in out:
        out.pop("type", None)   # v2 readers reject a $ref with a type beside it
        out.pop("properties", None)
    if schema.get("nullable") or schema.get("x-kubernetes-int-or-string"):
        # An untyped value in v2; kubectl would reject null / the other type otherwise.
        out.pop("type", None)
        out.pop("items", None)
        out.pop("properties", None)
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        # v2 validators don't know the extension and would report every unlisted field.
        out.pop("items", None)
        out.pop("properties", None)
    return out


def _ref(ref: str) -> str:
    return DEFINITIONS_PREFIX + ref[len(COMPONENTS_PREFIX):] if ref.startswith(COMPONENTS_PREFIX) else ref


def _parameter(param: _Json) -> _Json:
    """v3 `{name, in, schema: {type}}` → v2 `{name, in, type}`."""
    out = {k: v for k, v in param.items() if k != "schema"}
    out.update(param.get("schema") or {})
    return out


def _path_item(item: _Json, tag: str) -> _Json:
    out: _Json = {}
    for method in ("get", "put", "post", "delete", "patch"):
        if method in item:
            out[method] = _operation(item[method], tag)
    if item.get("parameters"):
        out["parameters"] = [_parameter(p) for p in item["parameters"]]
    return out


def _operation(op: _Json, tag: str) -> _Json:
    params = [_parameter(p) for p in op.get("parameters", [])]
    consumes = ["*/*"]
    body = op.get("requestBody")
    if body:
        content: _Json = body.get("content", {})
        if any(t in content for t in PATCH_TYPES):
            consumes = [t for t in PATCH_TYPES if t in content]
        media: Any = next(iter(content.values()), None)
        schema: Any = media.get("schema") if isinstance(media, dict) else None
        params.insert(0, {"name": "body", "in": "body", "required": True,
                          "schema": convert_schema(schema or {"type": "object"})})
    responses: _Json = {}
    for code, resp in op.get("responses", {}).items():
        r: _Json = {"description": resp.get("description", "")}
        for described in resp.get("content", {}).values():
            r["schema"] = convert_schema(described.get("schema", {}))
            break
        responses[code] = r
    responses.setdefault("401", {"description": "Unauthorized"})
    out: _Json = {
        "description": op.get("description", ""),
        "consumes": consumes,
        "produces": list(_PRODUCES),
        "schemes": ["https"],
        "tags": [tag],
        "operationId": op.get("operationId", ""),
        "parameters": params,
        "responses": responses,
    }
    if not out["description"]:
        del out["description"]
    for key, value in op.items():
        if key.startswith("x-"):
            out[key] = value
    return out


# --- gnostic openapi_v2 protobuf encoding -----------------------------------------------------
# Field numbers are those of gnostic's published openapiv2/OpenAPIv2.proto (package openapi.v2).
# Proto3: zero values are not written, sub-messages are written when present (even if empty).

_LEN = 2
_VARINT = 0
_FIXED64 = 1


class _Msg:
    """Append-only writer for one message's fields."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def _key(self, number: int, wire: int) -> None:
        self._varint(number << 3 | wire)

    def _varint(self, value: int) -> None:
        value &= 0xFFFFFFFFFFFFFFFF   # negative int64 → ten-byte two's complement, as protobuf does
        while value > 0x7F:
            self.buf.append(value & 0x7F | 0x80)
            value >>= 7
        self.buf.append(value)

    def string(self, number: int, value: Any) -> None:
        if isinstance(value, str) and value:
            self.message(number, value.encode())

    def strings(self, number: int, values: Any) -> None:
        if isinstance(values, list):
            for v in values:
                if isinstance(v, str):
                    self.message(number, v.encode())   # repeated: empty strings are kept

    def boolean(self, number: int, value: Any) -> None:
        if value is True:
            self._key(number, _VARINT)
            self.buf.append(1)

    def int64(self, number: int, value: Any) -> None:
        if isinstance(value, int) and not isinstance(value, bool) and value:
            self._key(number, _VARINT)
            self._varint(value)

    def double(self, number: int, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value:
            self._key(number, _FIXED64)
            self.buf += struct.pack("<d", float(value))

    def message(self, number: int, payload: bytes | bytearray) -> None:
        self._key(number, _LEN)
        self._varint(len(payload))
        self.buf += payload

    def done(self) -> bytes:
        return bytes(self.buf)


def _yaml_text(value: Any) -> str:
    """Any.yaml: JSON is YAML, and v2 readers yaml-unmarshal this text (non-ASCII kept literal,
    because YAML cannot join the \\u surrogate pairs JSON would write)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def _any(value: Any) -> bytes:
    m = _Msg()
    m.string(2, _yaml_text(value))
    return m.done()


def _vendor_extensions(m: _Msg, number: int, obj: Mapping[str, Any]) -> None:
    for key, value in obj.items():
        if key.startswith("x-"):
            m.message(number, _named(key, _any(value)))


def _named(name: str, value: bytes) -> bytes:
    m = _Msg()
    m.string(1, name)
    m.message(2, value)
    return m.done()


def encode_schema(s: _Json) -> bytes:
    """openapi.v2.Schema."""
    m = _Msg()
    m.string(1, s.get("$ref"))
    m.string(2, s.get("format"))
    m.string(3, s.get("title"))
    m.string(4, s.get("description"))
    if "default" in s:
        m.message(5, _any(s["default"]))
    m.double(6, s.get("multipleOf"))
    m.double(7, s.get("maximum"))
    m.boolean(8, s.get("exclusiveMaximum"))
    m.double(9, s.get("minimum"))
    m.boolean(10, s.get("exclusiveMinimum"))
    m.int64(11, s.get("maxLength"))
    m.int64(12, s.get("minLength"))
    m.string(13, s.get("pattern"))
    m.int64(14, s.get("maxItems"))
    m.int64(15, s.get("minItems"))
    m.boolean(16, s.get("uniqueItems"))
    m.int64(17, s.get("maxProperties"))
    m.int64(18, s.get("minProperties"))
    m.strings(19, s.get("required"))
    for v in s.get("enum") or ():
        m.message(20, _any(v))
    extra = s.get("additionalProperties")
    if isinstance(extra, bool):
        ap = _Msg()
        ap._key(2, _VARINT)        # oneof member: written even when false
        ap.buf.append(1 if extra else 0)
        m.message(21, ap.buf)
    elif isinstance(extra, dict):
        ap = _Msg()
        ap.message(1, encode_schema(extra))
        m.message(21, ap.buf)
    type_ = s.get("type")
    if type_:
        t = _Msg()
        t.strings(1, [type_] if isinstance(type_, str) else type_)
        m.message(22, t.buf)
    items = s.get("items")
    if isinstance(items, (dict, list)):
        it = _Msg()
        for sub in [items] if isinstance(items, dict) else items:
            it.message(1, encode_schema(sub))
        m.message(23, it.buf)
    for sub in s.get("allOf") or ():
        m.message(24, encode_schema(sub))
    props = s.get("properties")
    if isinstance(props, dict):
        m.message(25, _named_schemas(props))
    m.string(26, s.get("discriminator"))
    m.boolean(27, s.get("readOnly"))
    if "example" in s:
        m.message(30, _any(s["example"]))
    _vendor_extensions(m, 31, s)
    return m.done()


def _named_schemas(schemas: Mapping[str, _Json]) -> bytes:
    """Properties / Definitions: {1: repeated NamedSchema}."""
    m = _Msg()
    for name, schema in schemas.items():
        m.message(1, _named(name, encode_schema(schema)))
    return m.done()


def encode_parameter(p: _Json) -> bytes:
    """openapi.v2.ParametersItem."""
    if "$ref" in p:
        ref = _Msg()
        ref.string(1, p["$ref"])
        ref.string(2, p.get("description"))
        item = _Msg()
        item.message(2, ref.buf)
        return item.done()
    param = _Msg()
    if p.get("in") == "body":
        body = _Msg()
        body.string(1, p.get("description"))
        body.string(2, p.get("name"))
        body.string(3, "body")
        body.boolean(4, p.get("required"))
        body.message(5, encode_schema(p.get("schema") or {}))
        _vendor_extensions(body, 6, p)
        param.message(1, body.buf)
    else:
        location = p.get("in")
        sub = _Msg()
        sub.boolean(1, p.get("required"))
        sub.string(2, location)
        sub.string(3, p.get("description"))
        sub.string(4, p.get("name"))
        if location in ("query", "formData"):
            # Query and formData sub-schemas have allow_empty_value at 5, so everything after shifts.
            sub.boolean(5, p.get("allowEmptyValue"))
            sub.string(6, p.get("type"))
            sub.string(7, p.get("format"))
            sub.boolean(20, p.get("uniqueItems"))
            _vendor_extensions(sub, 23, p)
            choice = 3 if location == "query" else 2
        else:  # path, header
            sub.string(5, p.get("type"))
            sub.string(6, p.get("format"))
            sub.boolean(19, p.get("uniqueItems"))
            _vendor_extensions(sub, 22, p)
            choice = 4 if location == "path" else 1
        non_body = _Msg()
        non_body.message(choice, sub.buf)
        param.message(2, non_body.buf)
    item = _Msg()
    item.message(1, param.buf)
    return item.done()


def _responses(responses: Mapping[str, _Json]) -> bytes:
    m = _Msg()
    for code, r in responses.items():
        resp = _Msg()
        resp.string(1, r.get("description"))
        if isinstance(r.get("schema"), dict):
            item = _Msg()
            item.message(1, encode_schema(r["schema"]))
            resp.message(2, item.buf)
        _vendor_extensions(resp, 5, r)
        value = _Msg()
        value.message(1, resp.buf)
        m.message(1, _named(code, value.done()))
    return m.done()


def encode_operation(op: _Json) -> bytes:
    m = _Msg()
    m.strings(1, op.get("tags"))
    m.string(2, op.get("summary"))
    m.string(3, op.get("description"))
    m.string(5, op.get("operationId"))
    m.strings(6, op.get("produces"))
    m.strings(7, op.get("consumes"))
    for p in op.get("parameters") or ():
        m.message(8, encode_parameter(p))
    if "responses" in op:
        m.message(9, _responses(op["responses"]))
    m.strings(10, op.get("schemes"))
    m.boolean(11, op.get("deprecated"))
    _vendor_extensions(m, 13, op)
    return m.done()


def _path_item_message(item: _Json) -> bytes:
    m = _Msg()
    m.string(1, item.get("$ref"))
    for number, method in ((2, "get"), (3, "put"), (4, "post"), (5, "delete"), (6, "options"), (7, "head"), (8, "patch")):
        if method in item:
            m.message(number, encode_operation(item[method]))
    for p in item.get("parameters") or ():
        m.message(9, encode_parameter(p))
    _vendor_extensions(m, 10, item)
    return m.done()


def encode_document(doc: _Json) -> bytes:
    """openapi.v2.Document for a Swagger 2.0 dict (the subset `OpenAPIV2.build` writes)."""
    m = _Msg()
    m.string(1, doc.get("swagger"))
    info = doc.get("info") or {}
    if info:
        i = _Msg()
        i.string(1, info.get("title"))
        i.string(2, info.get("version"))
        i.string(3, info.get("description"))
        _vendor_extensions(i, 7, info)
        m.message(2, i.buf)
    m.string(3, doc.get("host"))
    m.string(4, doc.get("basePath"))
    m.strings(5, doc.get("schemes"))
    m.strings(6, doc.get("consumes"))
    m.strings(7, doc.get("produces"))
    paths = _Msg()
    for path, item in (doc.get("paths") or {}).items():
        paths.message(2, _named(path, _path_item_message(item)))
    m.message(8, paths.buf)
    m.message(9, _named_schemas(doc.get("definitions") or {}))
    _vendor_extensions(m, 16, doc)
    return m.done()

