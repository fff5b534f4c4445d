"""InformerFactory and indexers: one shared informer per resource, indexes kept on every change,
malformed objects indexed nowhere instead of stopping the informer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from minik.client import Obj, WatchEvent
from minik.machinery.informer import Informer
from minik.machinery.informers import CONTROLLER_INDEX, NODE_INDEX, InformerFactory, controller_uid, pod_node
from minik.machinery.tasks import Supervisor
from tests.support.builders import make_pod


class ScriptedClient:
    """`list` answers per resource; `watch` plays scripted events per resource, then blocks."""

    def __init__(self, lists: dict[str, list[Obj]], watches: dict[str, list[WatchEvent]] | None = None) -> None:
        self.lists, self.watches = lists, watches or {}
        self.list_calls: list[str] = []

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        self.list_calls.append(resource)
        return list(self.lists.get(resource, [])), "1"

    async def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        for ev in self.watches.pop(resource, []):
            yield ev
        await asyncio.Event().wait()


def _rv(pod: Obj, rv: int) -> Obj:
    pod["metadata"]["resourceVersion"] = str(rv)
    return pod


def ctl(uid: str) -> list[Obj]:
    return [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": True}]


def names(objs: list[Obj]) -> list[str]:
    return sorted(o["metadata"]["name"] for o in objs)


async def test_factory_shares_one_informer_per_resource_and_runs_it() -> None:
    client = ScriptedClient({"pods": [_rv(make_pod("a", node="n1"), 1)]})
    sup = Supervisor()
    f = InformerFactory(client, sup)  # type: ignore[arg-type]
    pods = f.informer("pods")
    assert f.informer("pods") is pods
    assert f.informer("pods", field_selector="metadata.name=a") is not pods   # filtered: its own
    assert f.count("pods") == 2 and f.count("nodes") == 0
    f.start()
    nodes = f.informer("nodes")   # asked after start: spawned at once
    await asyncio.wait_for(f.wait_synced(), 2)
    assert nodes.synced and names(pods.list()) == ["a"]
    assert set(sup.names()) == {"informer-pods", "informer-pods[metadata.name=a;]", "informer-nodes"}
    await sup.stop()


async def test_indexes_follow_adds_updates_and_deletes() -> None:
    a = _rv(make_pod("a", node="n1", owners=ctl("rs1")), 1)
    b = _rv(make_pod("b", owners=ctl("rs1")), 2)
    watch = [WatchEvent("MODIFIED", _rv(make_pod("b", node="n2", owners=ctl("rs1")), 3)),   # bound
             WatchEvent("ADDED", _rv(make_pod("c", owners=ctl("rs2")), 4)),
             WatchEvent("DELETED", _rv(make_pod("a", node="n1", owners=ctl("rs1")), 5))]
    client = ScriptedClient({"pods": [a, b]}, {"pods": watch})
    f = InformerFactory(client)  # type: ignore[arg-type]
    pods = f.informer("pods")
    seen: list[str] = []
    pods.add_handler(lambda old, new: seen.append((new or old or {})["metadata"]["name"]))
    f.start()
    await f.wait_synced("pods")
    for _ in range(100):
        if len(seen) == 5:
            break
        await asyncio.sleep(0.01)
    assert seen == ["a", "b", "b", "c", "a"]
    assert names(pods.by_index(NODE_INDEX, "n2")) == ["b"]
    assert pods.by_index(NODE_INDEX, "n1") == []
    assert names(pods.by_index(NODE_INDEX, "")) == ["c"]
    assert names(pods.by_index(CONTROLLER_INDEX, "rs1")) == ["b"]
    assert names(pods.by_index(CONTROLLER_INDEX, "rs2")) == ["c"]
    assert names(pods.by_index("namespace", "default")) == ["b", "c"]
    assert sorted(pods.index_values(NODE_INDEX)) == ["", "n2"]
    await f.stop()


async def test_indexer_added_late_indexes_the_cache_and_bad_objects_go_nowhere() -> None:
    inf = Informer(ScriptedClient({"pods": [_rv(make_pod("a", node="n1"), 1)]}), "pods")  # type: ignore[arg-type]
    task = asyncio.create_task(inf.run())
    await inf.wait_synced()

    def boom(obj: Obj) -> list[str]:
        if obj["metadata"]["name"] == "a":
            raise TypeError("malformed")
        return ["x"]
    inf.add_indexer("node", pod_node)
    inf.add_indexer("boom", boom)
    inf.add_indexer("node", lambda o: ["ignored"])   # same name again: the first stays
    assert names(inf.by_index("node", "n1")) == ["a"]
    assert inf.by_index("boom", "x") == []
    task.cancel()


def test_index_functions_tolerate_garbage() -> None:
    bad: dict[str, Any] = {"metadata": {"name": "x", "ownerReferences": 1}, "spec": 1}
    assert pod_node(bad) == [""]
    assert controller_uid(bad) == []
    assert controller_uid({"metadata": {"ownerReferences": [1, {"uid": "u", "controller": True}]}}) == ["u"]
    assert pod_node(make_pod(node="n")) == ["n"]
