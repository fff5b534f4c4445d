"""Shared JSON encodings of stored objects: one encoding per (object revision, kind, format),
reused by every watcher and every LIST that sends it.

Why: a change fanned out to 500 watchers used to be JSON-encoded 500 times, and 200 concurrent
LISTs of 1,000 objects encoded 200,000 objects; under such storms the encoder held the event
loop (GET p99 in the 100 ms range) and every copy was garbage for the allocator. An object
revision never changes (the store hands out immutable dicts, one per resourceVersion), so its
encoding under a given apiVersion/kind is a pure function of the key and can be shared.

The cache is an LRU bounded by total bytes, so it cannot hold a storm's worth of memory after
the storm: a hit costs a dict lookup, a miss one `json.dumps`. Objects without a
resourceVersion are encoded and not cached. Neighbours: `minik.api.watch` (event lines),
`minik.api.listing` (streamed LIST bodies); built once by `minik.api.handlers.ApiHandlers`.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

Obj = dict[str, Any]

DEFAULT_BUDGET = 4 * 1024 * 1024
_Key = tuple[str, str, str, str, str, str]   # (event type or "", apiVersion, kind, rv, namespace, name)


def dumps(obj: Any) -> bytes:
    """Compact JSON that is always valid, whatever is stored (watch lines, LIST items, responses)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except UnicodeEncodeError:
        # A lone surrogate (an object written before decoding refused them, or a message
        # quoting one): \u-escape rather than fail the response, the error response included.
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()
    except ValueError:
        # NaN/Infinity in a stored object (from before decoding refused them) would make the
        # whole response invalid JSON, and every `kubectl get -A -o json` fail: null instead.
        return dumps(_finite(obj))


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def typed(api_version: str, kind: str, obj: Obj) -> Obj:
    """The object with apiVersion/kind first (what `ResourceService.with_type` does)."""
    if obj.get("apiVersion") == api_version and obj.get("kind") == kind:
        return obj
    out: Obj = {"apiVersion": api_version, "kind": kind}
    out.update({k: v for k, v in obj.items() if k not in ("apiVersion", "kind")})
    return out


class EncodedObjects:
    def __init__(self, budget: int = DEFAULT_BUDGET) -> None:
        self._budget = budget
        self._bytes = 0
        self._lru: OrderedDict[_Key, bytes] = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def size(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._lru)

    @staticmethod
    def _key(prefix: str, api_version: str, kind: str, obj: Obj) -> _Key | None:
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            return None
        rv = meta.get("resourceVersion")
        if not rv:
            return None
        return (prefix, api_version, kind, str(rv), str(meta.get("namespace") or ""), str(meta.get("name") or ""))

    def _lookup(self, key: _Key | None) -> bytes | None:
        if key is None:
            return None
        data = self._lru.get(key)
        if data is not None:
            self._lru.move_to_end(key)
            self.hits += 1
        return data

    def _keep(self, key: _Key | None, data: bytes) -> bytes:
        self.misses += 1
        if key is None or len(data) > self._budget // 8:
            return data   # one huge object must not evict everything else
        self._lru[key] = data
        self._bytes += len(data)
        while self._bytes > self._budget:
            _, old = self._lru.popitem(last=False)
            self._bytes -= len(old)
        return data

    def object(self, api_version: str, kind: str, obj: Obj) -> bytes:
        """`obj` as JSON with its apiVersion/kind (no newline)."""
        key = self._key("", api_version, kind, obj)
        data = self._lookup(key)
        if data is None:
            data = self._keep(key, dumps(typed(api_version, kind, obj)))
        return data

    def event(self, event_type: str, api_version: str, kind: str, obj: Obj) -> bytes:
        """One watch line, `{"type":…,"object":…}\\n`, shared by every watcher that sends it."""
        key = self._key(event_type, api_version, kind, obj)
        data = self._lookup(key)
        if data is None:
            body = self.object(api_version, kind, obj)
            data = self._keep(key, b'{"type":' + dumps(event_type) + b',"object":' + body + b"}\n")
        return data

    def clear(self) -> None:
        self._lru.clear()
        self._bytes = 0
