"""Shared per-revision encodings: same bytes as a direct encoding, bounded by bytes, shared lines."""

from __future__ import annotations

import json

from minik.api.encoded import EncodedObjects
from minik.api.app import body_deadline
from minik.machinery.memory import MemoryTrimmer


def cm(name: str, rv: str, value: str = "v") -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}, "data": {"k": value}}


def test_object_and_event_bytes_match_json_dumps() -> None:
    enc = EncodedObjects()
    obj = cm("a", "5", "ünïcode")
    typed = {"apiVersion": "v1", "kind": "ConfigMap", **obj}
    assert enc.object("v1", "ConfigMap", obj) == json.dumps(typed, separators=(",", ":"), ensure_ascii=False).encode()
    line = enc.event("MODIFIED", "v1", "ConfigMap", obj)
    assert line == json.dumps({"type": "MODIFIED", "object": typed}, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"
    # The second watcher gets the same object, not a new encoding.
    assert enc.event("MODIFIED", "v1", "ConfigMap", obj) is line
    assert enc.misses == 2 and enc.hits == 2   # the line reused the object's encoding, then itself
    # Another type, kind or revision is another entry.
    assert enc.event("ADDED", "v1", "ConfigMap", obj) != line
    assert enc.object("v1", "ConfigMap", cm("a", "6")) != enc.object("v1", "ConfigMap", obj)


def test_budget_bounds_memory_and_unversioned_objects_are_not_kept() -> None:
    enc = EncodedObjects(budget=64 * 1024)
    for i in range(1000):
        enc.object("v1", "ConfigMap", cm(f"n{i}", str(i), "x" * 500))
    assert enc.size <= 64 * 1024 and 0 < len(enc) < 1000
    before = len(enc)
    enc.object("v1", "ConfigMap", {"metadata": {"name": "no-rv"}})
    enc.object("v1", "ConfigMap", cm("huge", "99999", "x" * 20000))   # over budget/8: not kept
    assert len(enc) == before


def test_body_deadline_and_trim_policy() -> None:
    assert body_deadline(10) < 11 and 17 < body_deadline(1024 * 1024) < 19
    assert body_deadline(3 * 1024 * 1024) < 35 and body_deadline(None) == 30 and body_deadline(10**9) == 60
    t = MemoryTrimmer(slack=8 << 20)
    mb = 1 << 20
    assert not t.should_trim(100 * mb, 100 * mb, 105 * mb)      # within the slack
    assert not t.should_trim(100 * mb, 110 * mb, 140 * mb)      # still climbing: a storm in progress
    assert t.should_trim(100 * mb, 140 * mb, 139 * mb)          # grown and settled
    assert t.should_trim_free(60 * mb, 20 * mb, 140 * mb, 139 * mb)   # 40 MB freed since the low point
    assert not t.should_trim_free(60 * mb, 58 * mb, 140 * mb, 139 * mb)  # already trimmed at that level
    assert not t.should_trim_free(60 * mb, 20 * mb, 100 * mb, 139 * mb)  # RSS still climbing
