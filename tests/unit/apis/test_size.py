"""The encoded-size bound: a lower bound of the exact size, cheap past the limit."""

from __future__ import annotations

import json
import time

from minik.apis.size import MAX_OBJECT_BYTES, encoded_size, over_limit


def exact(v: object) -> int:
    return len(json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode())


def test_never_above_the_exact_size() -> None:
    for v in ({"a": "b"}, {"metadata": {"name": "x", "labels": {"k": "ä" * 10}}, "n": [1, 22, 333, True, None, 1.5]},
              {"q": 'with "quotes" and \\ slashes'}, [], {}, ""):
        assert encoded_size(v, 10**9) <= exact(v), v


def test_keys_count_and_huge_values_stop_early() -> None:
    keys = {"data": {f"k{i:06d}": "" for i in range(150_000)}}
    assert over_limit(keys) > MAX_OBJECT_BYTES
    assert not over_limit({"data": {f"k{i:06d}": "" for i in range(1000)}})
    huge = {"items": ["x" * 100] * 1_000_000}
    t0 = time.monotonic()
    assert over_limit(huge)
    assert time.monotonic() - t0 < 0.5
