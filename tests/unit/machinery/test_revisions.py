"""ControllerRevision helpers: stable hashes, numbering, equality across API round trips, history."""

from __future__ import annotations

from typing import Any

from minik.machinery import revisions as rev

Obj = dict[str, Any]


def owner(image: str = "x:1") -> Obj:
    return {"metadata": {"name": "web", "namespace": "default", "uid": "u1"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": image}]}}}}


def test_new_revision_shape_and_stable_hash() -> None:
    r = rev.new_revision(owner(), "apps/v1", "StatefulSet", 1)
    h = r["metadata"]["labels"][rev.HASH_LABEL]
    assert r["metadata"]["name"] == f"web-{h}" and r["revision"] == 1
    assert r["metadata"]["labels"]["app"] == "web"
    assert r["data"]["spec"]["template"]["$patch"] == "replace"
    assert r["metadata"]["ownerReferences"][0]["uid"] == "u1" and r["metadata"]["ownerReferences"][0]["controller"]
    assert rev.new_revision(owner(), "apps/v1", "StatefulSet", 7)["metadata"]["name"] == r["metadata"]["name"]
    assert rev.new_revision(owner("x:2"), "apps/v1", "StatefulSet", 1)["metadata"]["name"] != r["metadata"]["name"]
    assert rev.new_revision(owner(), "apps/v1", "StatefulSet", 1, collision_count=1)["metadata"]["name"] != r["metadata"]["name"]
    assert set(h) <= set(rev.SAFE_ALPHABET)


def test_equality_ignores_dropped_empties() -> None:
    a = rev.new_revision(owner(), "apps/v1", "StatefulSet", 1)
    b = rev.new_revision(owner(), "apps/v1", "StatefulSet", 2)
    b["data"]["spec"]["template"]["metadata"]["annotations"] = {}
    assert rev.equal_revision(a, b)
    assert not rev.equal_revision(a, rev.new_revision(owner("x:2"), "apps/v1", "StatefulSet", 1))


def test_numbering_history_and_apply() -> None:
    revs = [rev.new_revision(owner(f"x:{i}"), "apps/v1", "StatefulSet", i) for i in (3, 1, 2)]
    assert rev.next_revision(revs) == 4 and rev.next_revision([]) == 1
    assert [r["revision"] for r in rev.sort_revisions(revs)] == [1, 2, 3]
    live = {revs[0]["metadata"]["name"]}
    assert [r["revision"] for r in rev.history_to_delete(revs, live, 1)] == [1]
    assert rev.history_to_delete(revs, live, 5) == []
    undone = rev.apply_revision(owner("x:9"), revs[1])
    assert undone["spec"]["template"]["spec"]["containers"][0]["image"] == "x:1"
    assert "$patch" not in undone["spec"]["template"]
