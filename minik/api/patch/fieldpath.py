"""Field paths and field sets in Kubernetes' FieldsV1 vocabulary, and the walks that produce them.

A path is a tuple of FieldsV1 path elements: ``("f:spec", "f:template", "f:spec",
"f:containers", 'k:{"name":"nginx"}', "f:image")``. A field set is a plain Python `set` of such
tuples, so union/difference/intersection run in C; FieldsV1 (the nested ``{"f:…": {}, ".": {}}``
tree stored in ``metadata.managedFields``) is only the wire form, converted at the edges.

Element forms, as structured-merge-diff writes them: ``f:<field>`` for object/map fields,
``k:<json object of the list-map-keys>`` for associative-list items, ``v:<json value>`` for set
items. A member that also has members below it is written with a ``".": {}`` child.

Walks (both schema-guided through `TypeInfo`):
* `applied_fields` — what an applier owns: every leaf it sent plus every list item it named
  (structured-merge-diff's ToFieldSet);
* `compare` — which paths were added, modified or removed between two versions of an object
  (structured-merge-diff's Compare), feeding ownership changes on every write.

Neighbours: `minik.api.patch.managedfields` (encode/decode entries, update bookkeeping),
`minik.api.patch.apply` (server-side apply).
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from minik.api.patch.typeinfo import ListShape, Schema, TypeInfo
from minik.api.patch.values import JSON

Path = tuple[str, ...]
FieldSet = set[Path]

MEMBER = "."

# Paths Kubernetes never records in managedFields (its "strip meta" set): the server owns them.
# Only these exact paths are stripped; `metadata.labels` etc. stay tracked.
IGNORED: frozenset[Path] = frozenset({
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:clusterName"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
})

# Defaults Kubernetes' published schema declares for list-map key fields; an applied port list
# usually omits `protocol`, but the stored (defaulted) one has it, and both must get one key.
_KEY_DEFAULTS: dict[str, JSON] = {"protocol": "TCP"}

_ELEMENT_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def _canonical_json(value: JSON) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


def item_element(item: JSON, shape: ListShape, index: int) -> str:
    """The path element naming one list item (set value, associative key, or position)."""
    if shape.kind == "set":
        return "v:" + _canonical_json(item)
    if isinstance(item, dict):
        key: dict[str, JSON] = {}
        for name in shape.keys:
            if name in item:
                key[name] = item[name]
            elif name in _KEY_DEFAULTS:
                key[name] = _KEY_DEFAULTS[name]
        if key:
            return "k:" + _canonical_json(key)
    return f"i:{index}"


def without_managed_fields(obj: JSON) -> JSON:
    """Shallow view of an object without metadata.managedFields (never part of any field set)."""
    if not isinstance(obj, dict):
        return {}
    meta = obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        view = dict(obj)
        view["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
        return view
    return obj


# ---- walks -----------------------------------------------------------------------------------

def applied_fields(types: TypeInfo, value: JSON, schema: Schema | None) -> FieldSet:
    """Fields an applier claims by sending `value` (leaves and named list items)."""
    out: FieldSet = set()
    _applied(types, value, schema, (), out)
    out.discard(())
    return out - IGNORED


def _applied(types: TypeInfo, value: JSON, schema: Schema | None, path: Path, out: FieldSet) -> None:
    if isinstance(value, dict) and value and not types.atomic_map(schema):
        for key, child in value.items():
            _applied(types, child, types.field(schema, key), path + ("f:" + key,), out)
        return
    if isinstance(value, list) and value:
        shape = types.list_shape(schema)
        if shape.kind != "atomic":
            item_schema = types.item(schema)
            for i, item in enumerate(value):
                item_path = path + (item_element(item, shape, i),)
                out.add(item_path)
                if shape.kind == "map" and isinstance(item, dict) and item:
                    _applied(types, item, item_schema, item_path, out)
            return
    out.add(path)


def compare(types: TypeInfo, old: JSON, new: JSON, schema: Schema | None) -> tuple[FieldSet, FieldSet, FieldSet]:
    """(added, modified, removed) paths from `old` to `new`, server-owned paths excluded."""
    added: FieldSet = set()
    modified: FieldSet = set()
    removed: FieldSet = set()
    if old != new:
        _compare(types, old, new, schema, (), added, modified, removed)
    for found in (added, modified, removed):
        found.discard(())
        found -= IGNORED
    return added, modified, removed


def _compare(types: TypeInfo, old: JSON, new: JSON, schema: Schema | None, path: Path,
             added: FieldSet, modified: FieldSet, removed: FieldSet) -> None:
    # Callers only descend when old != new, so every branch here records something.
    if isinstance(new, dict) and isinstance(old, dict) and not types.atomic_map(schema):
        for key, nv in new.items():
            child_path = path + ("f:" + key,)
            if key in old:
                ov = old[key]
                if ov is nv or (ov == nv and type(ov) is type(nv)):
                    continue
                _compare(types, ov, nv, types.field(schema, key), child_path, added, modified, removed)
            else:
                _everything(types, nv, types.field(schema, key), child_path, added)
        for key, ov in old.items():
            if key not in new:
                _everything(types, ov, types.field(schema, key), path + ("f:" + key,), removed)
        return
    if isinstance(new, list) and isinstance(old, list):
        shape = types.list_shape(schema)
        if shape.kind != "atomic":
            item_schema = types.item(schema)
            old_items = _index_items(old, shape)
            new_items = _index_items(new, shape)
            for element, nv in new_items.items():
                child_path = path + (element,)
                ov = old_items.get(element, _ABSENT)
                if ov is _ABSENT:
                    _everything(types, nv, item_schema, child_path, added, shape)
                elif not (ov == nv and type(ov) is type(nv)):
                    _compare(types, ov, nv, item_schema, child_path, added, modified, removed)
            for element, ov in old_items.items():
                if element not in new_items:
                    _everything(types, ov, item_schema, path + (element,), removed, shape)
            return
    modified.add(path)
    # A change of kind (scalar ↔ object/list) also adds or removes whatever hangs below.
    if isinstance(old, (dict, list)) and type(old) is not type(new):
        _below(types, old, schema, path, removed)
    if isinstance(new, (dict, list)) and type(old) is not type(new):
        _below(types, new, schema, path, added)


_ABSENT: Any = object()


def _index_items(items: list[JSON], shape: ListShape) -> dict[str, JSON]:
    out: dict[str, JSON] = {}
    for i, item in enumerate(items):
        # Duplicate keys can exist in stored data; the first one is the one that counts.
        out.setdefault(item_element(item, shape, i), item)
    return out


def _everything(types: TypeInfo, value: JSON, schema: Schema | None, path: Path, out: FieldSet,
                parent_shape: ListShape | None = None) -> None:
    """Record `path` and every path below it (a subtree that appeared or disappeared).

    A non-empty typed struct is not recorded itself, only what it holds: Kubernetes compares
    against the zero value of the Go type, where nested structs (`spec`, `template`) already
    exist, so real managedFields show `"f:spec": {"f:replicas": {}}` without a `"."` member.
    """
    if (parent_shape is not None or not isinstance(value, dict) or not value
            or not types.is_struct(schema) or types.atomic_map(schema)):
        out.add(path)
    if parent_shape is not None and parent_shape.kind == "set":
        return
    _below(types, value, schema, path, out)


def _below(types: TypeInfo, value: JSON, schema: Schema | None, path: Path, out: FieldSet) -> None:
    if isinstance(value, dict):
        if types.atomic_map(schema):
            return
        for key, child in value.items():
            _everything(types, child, types.field(schema, key), path + ("f:" + key,), out)
    elif isinstance(value, list):
        shape = types.list_shape(schema)
        if shape.kind == "atomic":
            return
        item_schema = types.item(schema)
        for i, item in enumerate(value):
            _everything(types, item, item_schema, path + (item_element(item, shape, i),), out, shape)


# ---- FieldsV1 wire form ----------------------------------------------------------------------

def from_fields_v1(tree: JSON) -> FieldSet:
    """Decode a FieldsV1 tree; malformed parts are ignored (the set just gets smaller)."""
    out: FieldSet = set()
    if isinstance(tree, dict):
        _flatten(tree, (), out)
    out.discard(())
    return out


def _flatten(node: dict[str, JSON], prefix: Path, out: FieldSet) -> None:
    for element, child in node.items():
        if element == MEMBER:
            out.add(prefix)
            continue
        path = prefix + (element,)
        if isinstance(child, dict) and child:
            _flatten(child, path, out)
        else:
            out.add(path)


def to_fields_v1(paths: Iterable[Path]) -> dict[str, JSON]:
    """Encode a field set as a FieldsV1 tree, children sorted the way Kubernetes sorts them."""
    root: dict[str, Any] = {}
    for path in paths:
        node = root
        for element in path:
            node = node.setdefault(element, {})
        node[MEMBER] = {}
    return _finish(root)


def _sort_key(element: str) -> tuple[int, str]:
    return (_ELEMENT_RANK.get(element[:1], 4), element)


def _finish(node: dict[str, Any]) -> dict[str, JSON]:
    children = [k for k in node if k != MEMBER]
    if not children:
        return {}
    out: dict[str, JSON] = {}
    if MEMBER in node:
        out[MEMBER] = {}
    for element in sorted(children, key=_sort_key):
        out[element] = _finish(node[element])
    return out


def _group(paths: Iterable[Path]) -> tuple[bool, dict[str, list[Path]]]:
    """Split paths into "this node itself" and the rest grouped by their first element."""
    this = False
    groups: dict[str, list[Path]] = {}
    for path in paths:
        if path:
            groups.setdefault(path[0], []).append(path[1:])
        else:
            this = True
    return this, groups


def tree_without(tree: dict[str, JSON], paths: Iterable[Path]) -> dict[str, JSON]:
    """`tree` minus `paths`, copying only the branches that change (same object if none do).

    Editing the wire form directly keeps the common write — a few changed paths against
    entries of a hundred — from decoding and re-encoding whole entries.
    """
    if not tree:
        return tree
    this, groups = _group(paths)
    out = _without(tree, False, groups, root=True)
    return {} if out is None else out


def _without(node: dict[str, JSON], drop_this: bool, groups: dict[str, list[Path]], root: bool = False) -> dict[str, JSON] | None:
    member = not root and (not node or MEMBER in node)
    changed = False
    if drop_this and member:
        member = False
        changed = True
    children: dict[str, JSON] | None = None
    for element, rest in groups.items():
        child = node.get(element)
        if child is None:
            continue
        if not isinstance(child, dict):
            child = {}
        this, below = _group(rest)
        new_child = _without(child, this, below)
        if new_child is not child:
            if children is None:
                children = {k: v for k, v in node.items() if k != MEMBER}
            if new_child is None:
                del children[element]
            else:
                children[element] = new_child
            changed = True
    if not changed:
        return node
    if children is None:
        children = {k: v for k, v in node.items() if k != MEMBER}
    if not children:
        return {} if member else None
    out: dict[str, JSON] = {MEMBER: {}} if member else {}
    out.update(children)
    return out


def tree_with(tree: dict[str, JSON], paths: Iterable[Path]) -> dict[str, JSON]:
    """`tree` plus `paths`, copying only the branches that change."""
    _, groups = _group(paths)
    if not groups:
        return tree
    return _with(tree, False, groups, root=True)


def _with(node: dict[str, JSON] | None, add_this: bool, groups: dict[str, list[Path]], root: bool = False) -> dict[str, JSON]:
    member = add_this or (node is not None and not root and (not node or MEMBER in node))
    children = {k: v for k, v in (node or {}).items() if k != MEMBER}
    for element, rest in groups.items():
        child = children.get(element)
        this, below = _group(rest)
        children[element] = _with(child if isinstance(child, dict) else None if child is None else {}, this, below)
    if not children:
        return {}
    out: dict[str, JSON] = {MEMBER: {}} if member else {}
    for element in sorted(children, key=_sort_key):
        out[element] = children[element]
    return out


def path_string(path: Path) -> str:
    """Human form used in conflict causes: `.spec.containers[name="nginx"].image`."""
    parts: list[str] = []
    for element in path:
        kind, _, rest = element.partition(":")
        if kind == "f":
            parts.append("." + rest)
        elif kind == "k":
            try:
                key = json.loads(rest)
            except ValueError:
                key = None
            if isinstance(key, dict):
                parts.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]")
            else:
                parts.append("[" + rest + "]")
        elif kind == "v":
            parts.append("[=" + rest + "]")
        else:
            parts.append("[" + rest + "]")
    return "".join(parts)
