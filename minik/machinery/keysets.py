"""Multimaps (value → the keys filed under it) for indexes where most values have one key.

Why: an index such as "EndpointSlice → its Service", "owner uid → dependents" or "IP → PTR
names" has one key per value almost always; a `set` per value costs 216 bytes even then, which
with thousands of objects was a large share of an informer's or the garbage collector's memory.
Here a value with one key maps to the key itself, from the second key on to a set, and back.
Keys must not themselves be sets. Pure functions over a plain dict, so any holder keeps its own
dict and types. Neighbours: `minik.machinery.informer` (indexers), `minik.controllers.
garbagecollector` (owner graph), `minik.dns.records` (PTR names).
"""

from __future__ import annotations

from collections.abc import Hashable, MutableMapping
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V", bound=Hashable)


def add(index: MutableMapping[V, K | set[K]], value: V, key: K) -> None:
    keys = index.get(value)
    if keys is None:
        index[value] = key
    elif isinstance(keys, set):
        keys.add(key)
    elif keys != key:
        index[value] = {keys, key}


def discard(index: MutableMapping[V, K | set[K]], value: V, key: K) -> None:
    keys = index.get(value)
    if keys is None:
        return
    if not isinstance(keys, set):
        if keys == key:
            del index[value]
        return
    keys.discard(key)
    if len(keys) == 1:
        index[value] = next(iter(keys))
    elif not keys:
        del index[value]


def members(index: MutableMapping[V, K | set[K]], value: V) -> tuple[K, ...]:
    """The keys under `value` (a snapshot: the index may change while the caller iterates)."""
    keys = index.get(value)
    if keys is None:
        return ()
    return tuple(keys) if isinstance(keys, set) else (keys,)
