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
(`FIELDS_CACHE` most recent distinct trees, keyed by their JSON text) is replaced by that one,
and inside a new tree every empty leaf `{}` (most of its nodes) is one shared empty dict.
This relies on the store's contract that the objects it holds are never mutated.

Neighbours: `minik.store.store` (the write path) and `minik.store.db` (loading at start).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from sys import intern
from typing import Any

from minik.store.types import Obj

SHORT = 24
FIELDS_CACHE = 512

_fields: OrderedDict[str, Any] = OrderedDict()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {
        intern(k): (intern(v) if type(v) is str and len(v) <= SHORT else v) for k, v in pairs
    }


_DECODER = json.JSONDecoder(object_pairs_hook=_pairs)


def decode(text: str) -> Obj:
    """The object `text` encodes (a JSON object), with keys and short values interned."""
    obj = _DECODER.decode(text)
    if not isinstance(obj, dict):
        raise ValueError("stored value is not a JSON object")
    meta = obj.get("metadata")
    managed = meta.get("managedFields") if isinstance(meta, dict) else None
    if isinstance(managed, list):
        for entry in managed:
            if isinstance(entry, dict) and isinstance(entry.get("fieldsV1"), dict):
                entry["fieldsV1"] = _shared_fields(entry["fieldsV1"])
    return obj


def _shared_fields(tree: dict[str, Any]) -> dict[str, Any]:
    key = json.dumps(tree, separators=(",", ":"), ensure_ascii=False)
    known = _fields.get(key)
    if known is not None:
        _fields.move_to_end(key)
        return known  # type: ignore[no-any-return]
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
                if v:
                    stack.append(v)
                else:
                    node[k] = _EMPTY
