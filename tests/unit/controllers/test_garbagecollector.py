"""Garbage collector: the graph from watch events, and syncs that delete dangling dependents,
finish foreground deletion, orphan, and leave malformed objects alone (never raising out of the
handler)."""

from __future__ import annotations

from minik.client import Obj, ResourceEvent
from minik.controllers.garbagecollector import GarbageCollector, decode, encode, owner_uids
from tests.support.builders import make_configmap, owner_ref
from tests.unit.controllers.fakeapi import FakeApi

NS = "default"


def added(obj: Obj, resource: str = "configmaps") -> ResourceEvent:
    return ResourceEvent(resource, "ADDED", obj)


def deleted(obj: Obj, resource: str = "configmaps") -> ResourceEvent:
    return ResourceEvent(resource, "DELETED", obj)


def queued(gc: GarbageCollector) -> list[str]:
    return sorted(gc.queue._queue)


def setup() -> tuple[FakeApi, GarbageCollector, Obj]:
    api = FakeApi()
    gc = GarbageCollector(api)  # type: ignore[arg-type]
    owner = api.put("configmaps", make_configmap("owner", uid="o1"))
    gc.handle(added(owner))
    return api, gc, owner


async def test_owner_deleted_collects_dependents_but_not_those_with_live_owners() -> None:
    api, gc, owner = setup()
    other = api.put("configmaps", make_configmap("other", uid="o2"))
    gc.handle(added(other))
    only = api.put("configmaps", make_configmap("only", owners=[owner_ref(owner)]))
    shared = api.put("configmaps", make_configmap("shared", owners=[owner_ref(owner), owner_ref(other, False)]))
    for o in (only, shared):
        gc.handle(added(o))
    assert queued(gc) == []
    del api.objects[("configmaps", NS, "owner")]
    gc.handle(deleted(owner))
    assert queued(gc) == ["configmaps|default|only", "configmaps|default|shared"]
    for k in queued(gc):
        assert await gc.sync(k) is None
    assert ("configmaps", NS, "only") not in api.objects
    assert ("configmaps", NS, "shared") in api.objects


async def test_dependent_of_a_dead_owner_is_collected_when_seen() -> None:
    api, gc, _ = setup()
    late = api.put("configmaps", make_configmap("late", owners=[{"apiVersion": "v1", "kind": "ConfigMap",
                                                                   "name": "ghost", "uid": "never"}]))
    gc.handle(added(late))
    assert queued(gc) == ["configmaps|default|late"]
    await gc.sync("configmaps|default|late")
    assert api.writes[-1] == ("delete/Background", "configmaps", NS, "late")


async def test_foreground_waits_for_dependents_then_drops_the_finalizer() -> None:
    api, gc, owner = setup()
    dep = api.put("configmaps", make_configmap("dep", owners=[owner_ref(owner)]))
    gc.handle(added(dep))
    await api.delete("configmaps", NS, "owner", propagation_policy="Foreground")
    gc.handle(ResourceEvent("configmaps", "MODIFIED", api.objects[("configmaps", NS, "owner")]))
    assert queued(gc) == ["configmaps|default|owner"]
    assert await gc.sync("configmaps|default|owner") == 1.0   # the dependent is still there
    assert ("delete/Foreground", "configmaps", NS, "dep") in api.writes
    gone = api.objects.pop(("configmaps", NS, "dep"), None) or dep
    gc.queue._queue.clear()
    gc.queue._dirty.clear()
    gc.handle(deleted(gone))
    assert queued(gc) == ["configmaps|default|owner"]   # the owner is looked at again
    assert await gc.sync("configmaps|default|owner") is None
    assert ("configmaps", NS, "owner") not in api.objects


async def test_orphan_strips_references_then_drops_the_finalizer() -> None:
    api, gc, owner = setup()
    dep = api.put("configmaps", make_configmap("dep", owners=[owner_ref(owner)]))
    gc.handle(added(dep))
    await api.delete("configmaps", NS, "owner", propagation_policy="Orphan")
    gc.handle(ResourceEvent("configmaps", "MODIFIED", api.objects[("configmaps", NS, "owner")]))
    await gc.sync("configmaps|default|owner")
    assert "ownerReferences" not in api.objects[("configmaps", NS, "dep")]["metadata"]
    assert ("configmaps", NS, "owner") not in api.objects


async def test_malformed_objects_do_not_break_the_graph() -> None:
    api, gc, owner = setup()
    for m in ({"name": "a", "ownerReferences": 1}, {"name": "b", "ownerReferences": [1, "x"]},
              {"name": "c", "finalizers": 1, "deletionTimestamp": "2025-01-01T00:00:00Z"}):
        bad = api.put("configmaps", {"metadata": {"namespace": NS, **m}})
        gc.handle(added(bad))
        assert owner_uids(bad) == []
    assert queued(gc) == []
    assert await gc.sync("configmaps|default|c") is None


def test_keys_round_trip() -> None:
    assert decode(encode(("apps/replicasets", "ns", "web"))) == ("apps/replicasets", "ns", "web")
    assert decode(encode(("namespaces", "", "x"))) == ("namespaces", "", "x")
