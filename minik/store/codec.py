"""Decoding stored JSON into the dicts the store keeps: dict keys and short string values interned.

Role: every object the store holds (its cache, the watch history, what in-process informers
share) comes from `decode`. `json.loads` gives each object its own copy of every key
("metadata", "f:spec", "k:{\"port\":80,...}" in managedFields …) and of short values ("TCP",
"ClusterIP", "True"); with thousands of objects those copies were a third of the store's memory.
Interning makes all objects share one copy of each; a str is immutable, so sharing is invisible to
readers. Values longer than `SHORT` (uids, timestamps, annotations) are mostly unique and are
left alone, so the intern table does not grow with them. Interned strings are freed with their
last reference (CPython interning is not immortal for runtime strings).

The `fieldsV1` trees of `metadata.managedFields` (a third of a typical object, and identical for
every object one manager writes the same way, e.g. 1,000 Services from one manifest or the
EndpointSlices of the endpoints controller) are shared too: a tree equal to one decoded recently
(`FIELDS_CACHE` most recent distinct trees, keyed by a digest of their JSON text) is replaced
by that one, and inside a new tree every empty leaf `{}` (most of its nodes) is one shared empty
dict.
Small subtrees are shared the same way, by hash-consing while decoding: a dict or list of at
most `SHARE_MAX` entries whose values are scalars or already-shared subtrees is replaced by an
equal one decoded earlier (`SHARED_CACHE` most recently used distinct subtrees). With 1,000
Services selecting the same pods, every `selector`, `ports` list, `ipFamilies`, `status`,
the Endpoints' `subsets` and the slices' `endpoints` exist once instead of 1,000 times. The
key of a subtree is its entries in order (so the JSON it encodes to is unchanged) with scalars
tagged by type (`true`, `1` and `1.0` stay distinct); a shared child is named by its id, which
is safe because an entry whose key names a child holds that child alive.
This relies on the store's contract that the objects it holds are never mutated.

Neighbours: `minik.store.store` (the write path) and `minik.store.db` (loading at start).
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from sys import intern
from typing import Any

from minik.store.types import Obj

SHORT = 24
FIELDS_CACHE = 256
SHARE_MAX = 8
SHARED_CACHE = 512

_fields: OrderedDict[bytes, Any] = OrderedDict()   # digest of a tree's JSON → the tree
# Hash-consing of small subtrees: key → the shared dict/list, and id(shared) → its key.
_shared: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_shared_keys: dict[int, tuple[Any, ...]] = {}
# An object (it has metadata) and its metadata (it has a resourceVersion) are unique and get
# stamped by the store: never candidates, so the table does not fill up with them.
_PRIVATE = frozenset({"metadata", "resourceVersion"})


def _part(v: Any) -> Any:
    """What a value contributes to its parent's sharing key; None when the parent cannot be
    shared (a dict or list that is not itself shared)."""
    t = type(v)
    if t is str:
        return v
    if t is dict or t is list:
        key = _shared_keys.get(id(v))
        return None if key is None else ("#", id(v))
    if t is float:
        return (t, repr(v))    # -0.0 and 0.0 differ in JSON
    return (t, v)              # bool, int, None: the type keeps true, 1 and 1.0 apart


def _share(key: tuple[Any, ...], value: Any) -> Any:
    known = _shared.get(key)
    if known is not None:
        _shared.move_to_end(key)
        return known
    _shared[key] = value
    _shared_keys[id(value)] = key
    if len(_shared) > SHARED_CACHE:
        _, old = _shared.popitem(last=False)
        del _shared_keys[id(old)]
    return value


def _list(items: list[Any]) -> list[Any]:
    if len(items) > SHARE_MAX:
        return items
    key: list[Any] = ["["]
    for v in items:
        part = _part(v)
        if part is None:
            return items
        key.append(part)
    return _share(tuple(key), items)  # type: ignore[no-any-return]


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    key: list[Any] | None = ["{"] if len(pairs) <= SHARE_MAX else None
    for k, v in pairs:
        k = intern(k)
        t = type(v)
        if t is str:
            # resourceVersions are short but never repeat: interning them only fills the table.
            if len(v) <= SHORT and k != "resourceVersion":
                v = intern(v)
        elif t is list:
            v = _list(v)   # lists have no decoder hook: shared here, by their parent
        elif k == "fieldsV1" and t is dict:
            # A managedFields entry's tree, shared whatever its size (by `_fields`), so equal
            # entries (one manager, the same second) are shared as a whole too; named by id
            # like a shared child (the entry holds it alive while its key exists).
            v = _shared_fields(v)
            out[k] = v
            if key is not None:
                key += (k, ("#", id(v)))
            continue
        out[k] = v
        if key is not None:
            part = None if k in _PRIVATE else _part(v)
            if part is None:
                key = None
            else:
                key += (k, part)
    return out if key is None else _share(tuple(key), out)


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)


def decode(text: str) -> Obj:
    """The object `text` encodes (a JSON object), with keys and short values interned."""
    obj = _DECODER.decode(text)
    if not isinstance(obj, dict):
        raise ValueError("stored value is not a JSON object")
    # The object and its metadata are never shared: the store stamps resourceVersion into them.
    obj = _private(obj)
    meta = obj.get("metadata")
    if isinstance(meta, dict):
        obj["metadata"] = _private(meta)
    return obj


def _is_shared(value: Any) -> bool:
    return id(value) in _shared_keys


def _private(d: dict[str, Any]) -> dict[str, Any]:
    return dict(d) if _is_shared(d) else d


def _shared_fields(tree: dict[str, Any]) -> dict[str, Any]:
    # Keyed by a digest, not the text: the table holds 32 bytes per tree, not a copy of its JSON.
    key = hashlib.blake2b(json.dumps(tree, separators=(",", ":"), ensure_ascii=False).encode(),
                          digest_size=32).digest()
    known = _fields.get(key)
    if known is not None:
        _fields.move_to_end(key)
        return known  # type: ignore[no-any-return]
    if not _is_shared(tree):
        _share_leaves(tree)
    _fields[key] = tree
    if len(_fields) > FIELDS_CACHE:
        _fields.popitem(last=False)
    return tree


_EMPTY: dict[str, Any] = {}


def _share_leaves(tree: dict[str, Any]) -> None:
    stack = [tree]
    while stack:
        node = stack.pop()
        for k, v in node.items():
            if type(v) is dict:
                if _is_shared(v):
                    continue   # shared subtrees are immutable (and their leaves shared already)
                if v:
                    stack.append(v)
                else:
                    node[k] = _EMPTY
