"""OpenAPI v3 documents for `/openapi/v3` and `/openapi/v3/<api|apis/group>/<version>`.

kubectl reads these for three things: deciding that the server supports `fieldValidation`
(a `patch` operation carrying the object's GVK and an inline `fieldValidation` query parameter),
`kubectl explain`, and the strategic-merge metadata of client-side apply. The schemas are the
v1.32 definitions from `minik.apis.schema.Schemas`, converted from their JSON-Schema form into
the shape kube-apiserver publishes; custom resources get theirs from the CRD through
`set_custom_schema`. Neighbours: the API layer routes the two URLs here and calls `invalidate()`
when CRDs change; `minik.apis.registry` says what is served.

Documents are built on first request and only their serialized bytes are cached, so the parsed
definitions stay the single in-memory copy.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from minik.apis.registry import Registry, ResourceType
from minik.apis.schema import KUBE_SCHEMA_VERSION, Schemas

COMPONENTS_PREFIX = "#/components/schemas/"
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
PATCH_BODY = META + "Patch"
# Meta kinds every group-version document carries, as kube-apiserver's do.
META_KINDS = (STATUS, DELETE_OPTIONS, PATCH_BODY, META + "WatchEvent", META + "APIResourceList")

INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

# Subresources that have a body of their own kind: name → (definition, verbs).
SUBRESOURCE_BODIES: dict[str, tuple[str | None, tuple[str, ...]]] = {
    "status": (None, ("get", "put", "patch")),        # None: the resource's own kind
    "scale": ("io.k8s.api.autoscaling.v1.Scale", ("get", "put", "patch")),
    "ephemeralcontainers": (None, ("get", "put", "patch")),
    "binding": ("io.k8s.api.core.v1.Binding", ("post",)),
    "eviction": ("io.k8s.api.policy.v1.Eviction", ("post",)),
    "token": ("io.k8s.api.authentication.v1.TokenRequest", ("post",)),
    "finalize": (None, ("put",)),
}

PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")

_Json = dict[str, Any]


def _query(name: str, description: str, type_: str = "string") -> _Json:
    return {"name": name, "in": "query", "description": description, "schema": {"type": type_, "uniqueItems": True}}


_DRY_RUN = _query("dryRun", "When present, indicates that modifications should not be persisted.")
_FIELD_MANAGER = _query("fieldManager", "Name associated with the actor or entity that is making these changes.")
# kubectl's query-param verifier looks for exactly this inline parameter on the patch operation.
_FIELD_VALIDATION = _query("fieldValidation", "Ignore, Warn or Strict: how to treat unknown or duplicate fields.")
_FORCE = _query("force", "Force is going to \"force\" Apply requests.", "boolean")
_WRITE_PARAMS = [_DRY_RUN, _FIELD_MANAGER, _FIELD_VALIDATION]
_LIST_PARAMS = [
    _query("labelSelector", "A selector to restrict the list of returned objects by their labels."),
    _query("fieldSelector", "A selector to restrict the list of returned objects by their fields."),
    _query("limit", "limit is a maximum number of responses to return for a list call.", "integer"),
    _query("continue", "The continue option should be set when retrieving more results from the server."),
    _query("resourceVersion", "Constrains which resource versions the request may be served from."),
    _query("timeoutSeconds", "Timeout for the list/watch call.", "integer"),
    _query("watch", "Watch for changes to the described resources.", "boolean"),
]
_DELETE_PARAMS = [
    _DRY_RUN,
    _query("gracePeriodSeconds", "The duration in seconds before the object should be deleted.", "integer"),
    _query("propagationPolicy", "Whether and how garbage collection will be performed."),
]
_NAME = {"name": "name", "in": "path", "description": "name of the object", "required": True,
         "schema": {"type": "string", "uniqueItems": True}}
_NAMESPACE = {"name": "namespace", "in": "path", "description": "object name and auth scope",
              "required": True, "schema": {"type": "string", "uniqueItems": True}}


def custom_schema_name(group: str, version: str, kind: str) -> str:
    """Component name kube-apiserver gives a custom kind: reversed group, version, kind."""
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


class OpenAPI:
    """Builds and caches the `/openapi/v3` index and the per-group-version documents."""

    def __init__(self, registry: Registry, schemas: Schemas) -> None:
        self._registry = registry
        self._schemas = schemas
        self._custom: dict[tuple[str, str, str], _Json] = {}
        # (group, version) → (fingerprint of the inputs, serialized document)
        self._docs: dict[tuple[str, str], tuple[str, bytes]] = {}

    # --- public interface ---------------------------------------------------------------------

    def index(self) -> _Json:
        """The `/openapi/v3` discovery document: one serverRelativeURL per served group-version."""
        paths: _Json = {}
        for group, versions in self._registry.group_versions().items():
            for version in versions:
                key = _gv_path(group, version)
                paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={self._hash(group, version)}"}
        return {"paths": paths}

    def document(self, group: str, version: str) -> tuple[bytes, str] | None:
        """Serialized document for one group-version and its hash; None if it is not served."""
        if not self._registry.in_group_version(group, version):
            return None
        digest = self._hash(group, version)
        cached = self._docs.get((group, version))
        if cached is not None and cached[0] == digest:
            return cached[1], digest
        # Built on the caller's thread: ~5 ms per group (~100 ms for the first, which loads the
        # definitions); the API may run it through asyncio.to_thread.
        body = json.dumps(self._build(group, version), separators=(",", ":")).encode()
        self._docs[(group, version)] = (digest, body)
        return body, digest

    def invalidate(self) -> None:
        """Forget every built document (the API calls this when CRDs change)."""
        self._docs.clear()

    def set_custom_schema(self, group: str, version: str, kind: str, openapi_v3_schema: _Json) -> None:
        """Use a CRD version's openAPIV3Schema for that custom kind (TypeMeta and ObjectMeta are added)."""
        self._custom[(group, version, kind)] = openapi_v3_schema
        self._docs.pop((group, version), None)

    def remove_custom_schema(self, group: str, version: str, kind: str) -> None:
        self._custom.pop((group, version, kind), None)
        self._docs.pop((group, version), None)

    # --- hashing ------------------------------------------------------------------------------

    def _hash(self, group: str, version: str) -> str:
        """Hash of what the document is built from, so the index needs no document built.

        Same inputs give the same document, so this changes exactly when the document does
        (and is stable across restarts, which keeps kubectl's disk cache useful).
        """
        h = hashlib.sha512(KUBE_SCHEMA_VERSION.encode())
        for t in self._registry.in_group_version(group, version):
            h.update(repr(t).encode())
            if t.custom:
                schema = self._custom.get((t.group, t.version, t.kind))
                h.update(json.dumps(schema, sort_keys=True).encode())
        return h.hexdigest().upper()

    # --- building -----------------------------------------------------------------------------

    def _build(self, group: str, version: str) -> _Json:
        types = self._registry.in_group_version(group, version)
        prefix = "/" + _gv_path(group, version)
        roots: list[str] = list(META_KINDS)
        paths: _Json = {}
        custom: _Json = {}
        for t in types:
            name, list_name = self._kind_names(t)
            if name in self._schemas.definitions:
                roots.append(name)
            else:
                # Custom resources, or a built-in kind without a v1.32 definition: the CRD's
                # schema, or one that accepts anything.
                custom[name] = self._custom_kind(t)
                roots.append(OBJECT_META)
            if list_name in self._schemas.definitions:
                roots.append(list_name)
            else:
                custom[list_name] = self._custom_list(t, name)
                roots.append(META + "ListMeta")
            for sub in t.subresources:
                body = SUBRESOURCE_BODIES.get(sub, (None, ()))[0]
                if body:
                    roots.append(body)
            paths.update(self._paths(prefix, t, name, list_name))
        schemas: _Json = {n: self._convert_definition(n) for n in self._schemas.closure(roots)}
        schemas.update(custom)
        return {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes", "version": "v1.32.0"},
            "paths": paths,
            "components": {"schemas": schemas},
        }

    def _kind_names(self, t: ResourceType) -> tuple[str, str]:
        """Component names of a kind and its list; a name not in the definitions is synthesized."""
        name = "" if t.custom else t.schema_name
        if name not in self._schemas.definitions:
            found = None if t.custom else self._schemas.by_gvk(t.group, t.version, t.kind)
            name = found or custom_schema_name(t.group, t.version, t.kind)
        return name, name + "List"

    # --- paths --------------------------------------------------------------------------------

    def _paths(self, prefix: str, t: ResourceType, name: str, list_name: str) -> _Json:
        gvk = {"group": t.group, "version": t.version, "kind": t.kind}
        op_id = _op_id(t)
        verbs = set(t.verbs)
        out: _Json = {}
        base = f"{prefix}/namespaces/{{namespace}}/{t.plural}" if t.namespaced else f"{prefix}/{t.plural}"
        scope = [_NAMESPACE] if t.namespaced else []
        ns_word = "Namespaced" if t.namespaced else ""

        collection: _Json = {"parameters": scope}
        if "list" in verbs:
            collection["get"] = _op("list", f"list{ns_word}{op_id}", gvk, _LIST_PARAMS, list_name)
        if "create" in verbs:
            collection["post"] = _op("post", f"create{ns_word}{op_id}", gvk, _WRITE_PARAMS, name, body=name)
        if "deletecollection" in verbs:
            collection["delete"] = _op("deletecollection", f"deleteCollection{ns_word}{op_id}", gvk,
                                       _DELETE_PARAMS + _LIST_PARAMS[:2], STATUS)
        if len(collection) > 1:
            out[base] = collection

        item: _Json = {"parameters": [_NAME, *scope]}
        if "get" in verbs:
            item["get"] = _op("get", f"read{ns_word}{op_id}", gvk, [], name)
        if "update" in verbs:
            item["put"] = _op("put", f"replace{ns_word}{op_id}", gvk, _WRITE_PARAMS, name, body=name)
        if "patch" in verbs:
            item["patch"] = _op("patch", f"patch{ns_word}{op_id}", gvk, [*_WRITE_PARAMS, _FORCE], name, patch=True)
        if "delete" in verbs:
            item["delete"] = _op("delete", f"delete{ns_word}{op_id}", gvk, _DELETE_PARAMS,
                                 name if t.returns_deleted_object else STATUS)
        if len(item) > 1:
            out[base + "/{name}"] = item

        if t.namespaced and "list" in verbs:
            out[f"{prefix}/{t.plural}"] = {
                "get": _op("list", f"list{op_id}ForAllNamespaces", gvk, _LIST_PARAMS, list_name)}

        for sub in t.subresources:
            if sub not in SUBRESOURCE_BODIES:
                continue  # connect subresources (log, exec, …) carry no schema kubectl reads
            body_def, sub_verbs = SUBRESOURCE_BODIES[sub]
            body = body_def or name
            sub_gvk = dict(gvk)
            if body_def:
                sub_gvk = self._gvk_of(body_def, gvk)
            word = sub[:1].upper() + sub[1:]
            path: _Json = {"parameters": [_NAME, *scope]}
            for verb in sub_verbs:
                action = {"get": "read", "put": "replace", "patch": "patch", "post": "create"}[verb]
                params = [] if verb == "get" else list(_WRITE_PARAMS)
                if verb == "patch":
                    params.append(_FORCE)
                path[verb] = _op(verb, f"{action}{ns_word}{op_id}{word}", sub_gvk, params, body,
                                 body=body if verb in ("put", "post") else None, patch=verb == "patch")
            out[f"{base}/{{name}}/{sub}"] = path
        return out

    def _gvk_of(self, definition: str, fallback: dict[str, str]) -> dict[str, str]:
        gvks = (self._schemas.definition(definition) or {}).get("x-kubernetes-group-version-kind") or []
        if gvks:
            g = gvks[0]
            return {"group": g.get("group", ""), "version": g.get("version", ""), "kind": g.get("kind", "")}
        return fallback

    # --- schema conversion --------------------------------------------------------------------

    def _convert_definition(self, name: str) -> _Json:
        source = self._schemas.definition(name) or {}
        if name == INT_OR_STRING:
            # kube publishes int-or-string as a string with this format, not as a oneOf.
            return {"description": "IntOrString is a type that can hold an int32 or a string.",
                    "type": "string", "format": "int-or-string"}
        if name == QUANTITY:
            return {"description": "Quantity is a fixed-point representation of a number.", "type": "string"}
        out = _convert_object(source)
        props = out.get("properties")
        if isinstance(props, dict):
            # kubernetes-validate pins apiVersion/kind with enums; kube's documents do not, and
            # `kubectl explain` would print them.
            for key in ("apiVersion", "kind"):
                if isinstance(props.get(key), dict):
                    props[key].pop("enum", None)
        return out

    def _custom_kind(self, t: ResourceType) -> _Json:
        user = self._custom.get((t.group, t.version, t.kind))
        out: _Json = _convert_object(user) if user else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        out["type"] = "object"
        props = dict(out.get("properties") or {})
        props["apiVersion"] = _type_meta_field("apiVersion")
        props["kind"] = _type_meta_field("kind")
        props["metadata"] = {"allOf": [{"$ref": COMPONENTS_PREFIX + OBJECT_META}],
                             "description": "Standard object's metadata. More info: "
                                            "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"}
        out["properties"] = dict(sorted(props.items()))
        out["x-kubernetes-group-version-kind"] = [{"group": t.group, "kind": t.kind, "version": t.version}]
        return out

    def _custom_list(self, t: ResourceType, item_name: str) -> _Json:
        return {
            "description": f"{t.kind}List is a list of {t.kind}",
            "type": "object",
            "required": ["items"],
            "properties": {
                "apiVersion": _type_meta_field("apiVersion"),
                "items": {"type": "array", "items": {"$ref": COMPONENTS_PREFIX + item_name},
                          "description": f"List of {t.plural}."},
                "kind": _type_meta_field("kind"),
                "metadata": {"allOf": [{"$ref": COMPONENTS_PREFIX + META + "ListMeta"}],
                             "description": "Standard list metadata."},
            },
            "x-kubernetes-group-version-kind": [{"group": t.group, "kind": t.list_kind, "version": t.version}],
        }


def convert(schema: Any) -> Any:
    """JSON-Schema definition (kubernetes-validate form) → OpenAPI 3.0 schema (kube's form).

    `$ref` points into components; a `$ref` with siblings (description, default) becomes
    `allOf: [{$ref}]` like kube-apiserver publishes it, because OpenAPI 3.0 ignores siblings of
    `$ref`. `type: [x, "null"]` becomes `type: x`. Extensions are copied as they are.
    """
    if isinstance(schema, list):
        return [convert(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: _Json = {}
    for key, value in schema.items():
        if key == "$ref":
            continue
        if key == "type":
            out[key] = _single_type(value)
        elif key in ("properties", "patternProperties"):
            out[key] = {k: convert(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf"):
            out[key] = convert(value)
        else:
            out[key] = value  # description, enum, default, format, required, x-* …
    ref = schema.get("$ref")
    if isinstance(ref, str):
        target = {"$ref": COMPONENTS_PREFIX + Schemas.ref_name(ref)}
        if not out:
            return target
        out["allOf"] = [target]
    return out


def _convert_object(schema: _Json) -> _Json:
    out = convert(schema)
    return out if isinstance(out, dict) else {}


def _single_type(value: Any) -> Any:
    if isinstance(value, list):
        types = [v for v in value if v != "null"]
        return types[0] if len(types) == 1 else types
    return value


def _type_meta_field(name: str) -> _Json:
    if name == "apiVersion":
        return {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}
    return {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _op_id(t: ResourceType) -> str:
    """kube's operationId infix: group words and version capitalised, then the kind (AppsV1Deployment)."""
    words = [w for w in t.group.split(".") if w not in ("k8s", "io")] if t.group else ["core"]
    return "".join(w[:1].upper() + w[1:] for w in (*words, t.version)) + t.kind


def _op(action: str, op_id: str, gvk: dict[str, str], params: Iterable[_Json], response: str,
        body: str | None = None, patch: bool = False) -> _Json:
    op: _Json = {
        "operationId": op_id,
        "parameters": list(params),
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": COMPONENTS_PREFIX + response}}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk,
    }
    if body:
        op["requestBody"] = {"content": {"*/*": {"schema": {"$ref": COMPONENTS_PREFIX + body}}}, "required": True}
    if patch:
        op["requestBody"] = {"content": {t: {"schema": {"$ref": COMPONENTS_PREFIX + PATCH_BODY}} for t in PATCH_TYPES},
                             "required": True}
    return op
