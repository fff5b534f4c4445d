"""keysets: one key stored bare, a set from the second on, and back."""

from __future__ import annotations

from minik.machinery import keysets


def test_add_discard_members_round_trip() -> None:
    index: dict[str, str | set[str]] = {}
    assert keysets.members(index, "v") == ()
    keysets.add(index, "v", "a")
    assert index["v"] == "a" and keysets.members(index, "v") == ("a",)
    keysets.add(index, "v", "a")              # idempotent
    assert index["v"] == "a"
    keysets.add(index, "v", "b")
    assert index["v"] == {"a", "b"}
    assert sorted(keysets.members(index, "v")) == ["a", "b"]
    keysets.discard(index, "v", "a")
    assert index["v"] == "b"
    keysets.discard(index, "v", "zzz")        # absent key: nothing changes
    assert index["v"] == "b"
    keysets.discard(index, "v", "b")
    assert "v" not in index
    keysets.discard(index, "v", "b")          # absent value: no error


def test_tuple_keys_and_snapshot_members() -> None:
    index: dict[str, tuple[str, str] | set[tuple[str, str]]] = {}
    keysets.add(index, "uid", ("pods", "a"))
    keysets.add(index, "uid", ("pods", "b"))
    keysets.add(index, "uid", ("pods", "c"))
    seen = keysets.members(index, "uid")
    for k in seen:                            # the snapshot survives changes while iterating
        keysets.discard(index, "uid", k)
    assert sorted(seen) == [("pods", "a"), ("pods", "b"), ("pods", "c")] and "uid" not in index
