"""A bounded LRU map with per-entry expiry: at most `max_entries` entries and `max_bytes` of
accounted size; the least recently used entries go first, expired ones are dropped when read.

Used twice by cluster DNS: the resolver's wire cache (query bytes → response bytes) and the
forwarder's cache of upstream answers (positive and negative). The clock is injected.
Neighbours: `minik.dns.resolver`, `minik.dns.forward`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlLru(Generic[K, V]):
    def __init__(self, max_entries: int, max_bytes: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries, self.max_bytes, self.clock = max_entries, max_bytes, clock
        self._data: OrderedDict[K, tuple[V, float, int]] = OrderedDict()   # value, expires at, size
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return None
        if item[1] <= self.clock():
            self._drop(key)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[0]

    def get_with_expiry(self, key: K) -> tuple[V, float] | None:
        item = self._data.get(key)
        if item is None or item[1] <= self.clock():
            if item is not None:
                self._drop(key)
            self.misses += 1
            return None
        self._data.move_to_end(key)
        self.hits += 1
        return item[0], item[1]

    def put(self, key: K, value: V, ttl: float, size: int = 0) -> None:
        if ttl <= 0 or self.max_entries <= 0 or (self.max_bytes and size > self.max_bytes):
            return
        if key in self._data:
            self._drop(key)
        self._data[key] = (value, self.clock() + ttl, size)
        self.bytes += size
        while len(self._data) > self.max_entries or (self.max_bytes and self.bytes > self.max_bytes):
            oldest = next(iter(self._data))
            self._drop(oldest)

    def clear(self) -> None:
        self._data.clear()
        self.bytes = 0

    def _drop(self, key: K) -> None:
        _, _, size = self._data.pop(key)
        self.bytes -= size
