"""ObjectCache keeps its sorted LIST snapshots in order across puts and removes (no re-sort per
change), and they always equal a fresh sort of what it holds."""

from __future__ import annotations

import random

from minik.store.cache import ObjectCache


def _obj(ns: str, name: str, gen: int) -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "gen": gen}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta}


def _fresh(c: ObjectCache, resource: str, ns: str | None) -> list[object]:
    other = ObjectCache()
    for o in c.list(resource, ns):
        m = o["metadata"]
        other.put(resource, str(m.get("namespace") or ""), str(m["name"]), o)
    return other.list(resource, ns)


def test_sorted_lists_follow_random_puts_and_removes() -> None:
    rnd = random.Random(7)
    c = ObjectCache()
    truth: dict[tuple[str, str], dict[str, object]] = {}
    for step in range(3000):
        ns = rnd.choice(["a", "b", "kube-system"])
        name = f"n{rnd.randrange(60)}"
        if rnd.random() < 0.3:
            c.remove("services", ns, name)
            truth.pop((ns, name), None)
        else:
            o = _obj(ns, name, step)
            c.put("services", ns, name, o)
            truth[(ns, name)] = o
        if step % 7 == 0:   # the cached lists exist, so later changes must keep them in order
            assert c.list("services", None) == [truth[k] for k in sorted(truth)]
            want_ns = rnd.choice(["a", "b", "kube-system"])
            assert c.list("services", want_ns) == [truth[k] for k in sorted(truth) if k[0] == want_ns]
    assert len(c) == len(truth)
    assert c.list("services", None) == _fresh(c, "services", None)


def test_the_snapshot_handed_out_does_not_change_later() -> None:
    c = ObjectCache()
    c.put("pods", "a", "x", _obj("a", "x", 1))
    before = c.list("pods", "a")
    c.put("pods", "a", "w", _obj("a", "w", 2))
    c.remove("pods", "a", "x")
    assert [o["metadata"]["name"] for o in before] == ["x"]
    assert [o["metadata"]["name"] for o in c.list("pods", "a")] == ["w"]


def test_an_object_whose_metadata_disagrees_with_its_key_drops_the_list() -> None:
    c = ObjectCache()
    c.put("pods", "a", "b", _obj("a", "b", 1))
    c.list("pods", None)
    c.put("pods", "a", "c", {"metadata": {"name": "zz-wrong", "namespace": "a"}})
    c.put("pods", "a", "a", _obj("a", "a", 3))
    names = [o["metadata"]["name"] for o in c.list("pods", None)]
    assert sorted(names) == sorted(["b", "zz-wrong", "a"]) and len(names) == 3
