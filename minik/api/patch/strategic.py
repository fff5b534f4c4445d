"""Strategic merge patch for built-in kinds, `application/strategic-merge-patch+json`.

This is what `kubectl apply` (client-side), `edit`, `rollout restart`, `cordon` and
`patch` (default type) send. The rules follow Kubernetes' apimachinery `strategicpatch` as the
server runs it (parallel-list directives, unmatched nulls ignored):

* maps merge key by key; `null` deletes a key; scalars and mismatched types replace;
* a list replaces unless its schema says ``x-kubernetes-patch-strategy: merge``; then lists of
  maps merge element-wise by ``x-kubernetes-patch-merge-key`` (containers by `name`, ports by
  `containerPort`, volumeMounts by `mountPath`, …) and primitive lists merge as a set
  (`finalizers`);
* directives: ``$patch: replace|delete`` in a map or a list element (``{"$patch": "replace"}``
  as a list element replaces the whole list), ``$retainKeys`` (drop the other keys first),
  ``$deleteFromPrimitiveList/<f>``, and ``$setElementOrder/<f>`` (final element order);
* element order follows Kubernetes' normalisation: elements named by the patch (or by
  ``$setElementOrder``) in that order, interleaved with server-only elements by their original
  positions.

Neighbours: `minik.api.patch.typeinfo` answers the schema questions; `minik.api.service` calls
this for kinds with a schema (custom resources get 415 before reaching here).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Hashable

from minik.api.patch.typeinfo import PatchMeta, Schema, TypeInfo
from minik.api.patch.values import JSON, deep_copy, json_type
from minik.apis import errors
from minik.apis.schema import Schemas

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ELEMENT_ORDER = "$setElementOrder/"
DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"

_MISSING: Any = object()


def strategic_merge_patch(target: dict[str, JSON], patch: dict[str, JSON], schemas: Schemas,
                          schema_name: str) -> dict[str, JSON]:
    """Return `target` with the strategic merge `patch` applied; inputs are not modified."""
    if not isinstance(patch, dict):
        raise errors.BadRequest(f"strategic merge patch must be a JSON object, got {json_type(patch)}")
    types = TypeInfo(schemas)
    original = deep_copy(target) if isinstance(target, dict) else {}
    return _merge_map(types, original, patch, types.root(schema_name), "")


def _merge_map(types: TypeInfo, original: dict[str, JSON], patch: dict[str, JSON],
               schema: Schema | None, where: str) -> dict[str, JSON]:
    """Merge `patch` into `original` (which this call owns and edits) and return the result."""
    directive = patch.get(DIRECTIVE)
    if directive is not None:
        if directive == "replace":
            return {k: deep_copy(v) for k, v in patch.items() if k != DIRECTIVE}
        if directive == "delete":
            # Kubernetes empties the map rather than removing its key from the parent.
            return {}
        if directive != "merge":
            raise errors.BadRequest(f"unknown patch type: {directive!r} in map at {where or '<root>'}")

    retain = patch.get(RETAIN_KEYS)
    if retain is not None:
        if not isinstance(retain, list):
            raise errors.BadRequest(f"$retainKeys at {where or '<root>'} must be a list, got {json_type(retain)}")
        keep = {k for k in retain if isinstance(k, str)}
        for key in [k for k in original if k not in keep]:
            del original[key]

    # Deletions from primitive lists go first so that a value both deleted and (re)added by the
    # same patch ends up present, whatever order the client wrote the keys in.
    for key, value in patch.items():
        if key.startswith(DELETE_FROM_PRIMITIVE_LIST):
            name = key[len(DELETE_FROM_PRIMITIVE_LIST):]
            current = original.get(name)
            if not isinstance(value, list):
                raise errors.BadRequest(f"{key} at {where or '<root>'} must be a list, got {json_type(value)}")
            if isinstance(current, list):
                # A set of canonical forms: linear, where `v not in value` was quadratic (20,000
                # finalizers against 20,000 deletions took seconds of the event loop).
                gone = {_hashable(v) for v in value}
                original[name] = [v for v in current if _hashable(v) not in gone]

    for key, value in patch.items():
        if key.startswith("$"):
            if key.startswith(SET_ELEMENT_ORDER):
                name = key[len(SET_ELEMENT_ORDER):]
                if name not in patch:
                    _reorder_only(types, original, name, value, schema, where)
                continue
            if key in (DIRECTIVE, RETAIN_KEYS) or key.startswith(DELETE_FROM_PRIMITIVE_LIST):
                continue
            # Any other "$…" key is data (JSONSchemaProps has "$ref" and "$schema").
        path = f"{where}.{key}"
        if value is None:
            original.pop(key, None)
            continue
        child_schema = types.field(schema, key)
        current = original.get(key, _MISSING)
        if isinstance(value, dict):
            meta = types.patch_meta(child_schema)
            if isinstance(current, dict) and "replace" not in meta.strategies:
                original[key] = _merge_map(types, current, value, child_schema, path)
            elif "replace" in meta.strategies:
                original[key] = {k: deep_copy(v) for k, v in value.items() if k != DIRECTIVE}
            else:
                # New (or differently typed) value: merging into {} processes its directives
                # and drops its nulls, so they never reach storage.
                original[key] = _merge_map(types, {}, value, child_schema, path)
        elif isinstance(value, list):
            meta = types.patch_meta(child_schema)
            order = patch.get(SET_ELEMENT_ORDER + key)
            base = current if isinstance(current, list) else []
            original[key] = _merge_list(types, base, value, child_schema, meta, order, path)
        else:
            original[key] = value
    return original


def _merge_list(types: TypeInfo, original: list[JSON], patch: list[JSON], schema: Schema | None,
                meta: PatchMeta, order: JSON, where: str) -> list[JSON]:
    if not meta.merge:
        return [deep_copy(v) for v in patch]
    if not original and not patch:
        return []
    if order is not None and not isinstance(order, list):
        raise errors.BadRequest(f"{SET_ELEMENT_ORDER}{where.rsplit('.', 1)[-1]} must be a list, got {json_type(order)}")
    maps = any(isinstance(v, dict) for v in patch) or any(isinstance(v, dict) for v in original)
    if not maps:
        merged = _dedupe([*original, *patch])
        key_of: Callable[[JSON], Hashable] = _hashable
        patch_order = order if order is not None else patch
        return _normalize_order(merged, patch_order, original, key_of)

    merge_key = meta.merge_key
    if not merge_key:
        raise errors.BadRequest(f"cannot merge lists without merge key for {where}")
    item_schema = types.item(schema)

    def key_of_map(item: JSON) -> Hashable:
        return _hashable(item.get(merge_key)) if isinstance(item, dict) else _hashable(item)

    key_of = key_of_map
    if any(isinstance(v, dict) and v.get(DIRECTIVE) == "replace" and len(v) == 1 for v in patch):
        # {"$patch": "replace"} as an element: the patch's other elements are the whole list.
        return [_merge_map(types, {}, v, item_schema, where) if isinstance(v, dict) else deep_copy(v)
                for v in patch if not (isinstance(v, dict) and v.get(DIRECTIVE) == "replace" and len(v) == 1)]

    deleted: set[Hashable] = set()
    for item in patch:
        if isinstance(item, dict) and item.get(DIRECTIVE) == "delete":
            if merge_key not in item:
                raise errors.BadRequest(f"delete directive in {where} does not contain merge key {merge_key!r}")
            deleted.add(key_of(item))
    merged = [v for v in original if key_of(v) not in deleted] if deleted else list(original)
    positions = {key_of(v): i for i, v in reversed(list(enumerate(merged)))}
    for item in patch:
        if not isinstance(item, dict):
            raise errors.BadRequest(f"{where}: element {item!r} is not an object but the list merges by {merge_key!r}")
        if item.get(DIRECTIVE) == "delete":
            continue
        if merge_key not in item:
            raise errors.BadRequest(f"{where}: element does not contain declared merge key {merge_key!r}: {json.dumps(item)}")
        k = key_of(item)
        at = positions.get(k)
        if at is not None and isinstance(merged[at], dict):
            merged[at] = _merge_map(types, merged[at], item, item_schema, f"{where}[{merge_key}={k}]")
        else:
            positions[k] = len(merged)
            merged.append(_merge_map(types, {}, item, item_schema, f"{where}[{merge_key}={k}]"))
    patch_order = order if order is not None else [
        v for v in patch if not (isinstance(v, dict) and v.get(DIRECTIVE) == "delete")]
    return _normalize_order(merged, patch_order, original, key_of)


def _reorder_only(types: TypeInfo, original: dict[str, JSON], name: str, order: JSON,
                  schema: Schema | None, where: str) -> None:
    """`$setElementOrder/<f>` without a `<f>` list in the patch: only the order changes."""
    current = original.get(name)
    if not isinstance(current, list) or not isinstance(order, list):
        return
    meta = types.patch_meta(types.field(schema, name))
    if not meta.merge:
        return
    merge_key = meta.merge_key

    def key_of(item: JSON) -> Hashable:
        if merge_key and isinstance(item, dict):
            return _hashable(item.get(merge_key))
        return _hashable(item)

    original[name] = _normalize_order(list(current), order, current, key_of)


def _normalize_order(merged: list[JSON], patch_order: list[JSON], server_order: list[JSON],
                     key_of: Callable[[JSON], Hashable]) -> list[JSON]:
    """Kubernetes' normalizeElementOrder + mergeSortedSlice.

    Elements named by `patch_order` come in that order; the others keep their server order; the
    two runs interleave by server position, and a new element yields to server-only ones.
    """
    order_index: dict[Hashable, int] = {}
    for i, v in enumerate(patch_order):
        order_index.setdefault(key_of(v), i)
    server_index: dict[Hashable, int] = {}
    for i, v in enumerate(server_order):
        server_index.setdefault(key_of(v), i)
    named = sorted((v for v in merged if key_of(v) in order_index), key=lambda v: order_index[key_of(v)])
    server_only = sorted((v for v in merged if key_of(v) not in order_index),
                         key=lambda v: server_index.get(key_of(v), len(server_index)))
    out: list[JSON] = []
    i = j = 0
    while i < len(named) or j < len(server_only):
        if i >= len(named):
            out.append(server_only[j])
            j += 1
        elif j >= len(server_only):
            out.append(named[i])
            i += 1
        else:
            li = server_index.get(key_of(named[i]))
            ri = server_index.get(key_of(server_only[j]))
            if li is not None and ri is not None and li < ri:
                out.append(named[i])
                i += 1
            else:
                out.append(server_only[j])
                j += 1
    return out


def _dedupe(values: list[JSON]) -> list[JSON]:
    seen: set[Hashable] = set()
    out: list[JSON] = []
    for v in values:
        k = _hashable(v)
        if k not in seen:
            seen.add(k)
            out.append(deep_copy(v))
    return out


def _hashable(value: JSON) -> Hashable:
    if isinstance(value, (dict, list)):
        return ("\0json", json.dumps(value, sort_keys=True))
    # Keep 1 and True apart (Python hashes them equal; JSON does not).
    return (type(value) is bool, value)
