"""Node lifecycle in process: a real store + resource service behind `LocalClient`, the node
lifecycle controller with a 1 s grace period, and Nodes/Leases/Pods written by the test in place
of an agent. A silent node goes Unknown with unreachable taints and its pods not Ready; pods are
evicted after their toleration (at once without one, never with an unlimited one); a node that
heart-beats and reports Ready again loses the taints; pods of a deleted node are removed."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client.local import LocalClient
from minik.controllers.nodelifecycle import NodeLifecycleController, evictions, plan_node
from minik.machinery.informers import InformerFactory
from minik.store.store import Store


def _ts(offset: float = 0.0) -> str:
    return (dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def eventually(fn: Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "") -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await fn()
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[LocalClient]:
    store = Store(str(tmp_path / "state.db"), volatile=frozenset({"coordination.k8s.io/leases"}))
    await store.start()
    registry = Registry()
    c = LocalClient(ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16")))
    for ns in ("default", "kube-node-lease"):
        await c.create("namespaces", "", {"metadata": {"name": ns}})
    try:
        yield c
    finally:
        await store.close()


def _pod(name: str, node: str, tolerations: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}
    if tolerations is not None:
        spec["tolerations"] = tolerations
    return {"metadata": {"name": name}, "spec": spec}


async def _ready(c: LocalClient, node: str, status: str = "True") -> None:
    await c.patch("nodes", "", node, {"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": "KubeletReady", "message": "ok",
         "lastHeartbeatTime": _ts(), "lastTransitionTime": _ts()}]}}, subresource="status")


async def test_silent_node_is_tainted_and_its_pods_evicted(client: LocalClient) -> None:
    c = client
    await c.create("nodes", "", {"metadata": {"name": "n1"}})
    await _ready(c, "n1")
    # Admission gives every pod not-ready/unreachable tolerations of 300 s unless it names its own.
    await c.create("pods", "default", _pod("no-toleration", "n1", [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                                    "effect": "NoExecute", "tolerationSeconds": 0}]))
    await c.create("pods", "default", _pod("short", "n1", [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                                            "effect": "NoExecute", "tolerationSeconds": 2}]))
    await c.create("pods", "default", _pod("forever", "n1", [{"operator": "Exists"}]))
    for name in ("no-toleration", "short", "forever"):
        await c.patch("pods", "default", name, {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": _ts()}]}}, subresource="status")

    factory = InformerFactory(c)
    ctl = NodeLifecycleController(c, factory.informer("nodes"), factory.informer("coordination.k8s.io/leases"),
                                  factory.informer("pods"), grace=1.0, run_informers=False)
    tasks = [asyncio.create_task(inf.run()) for inf in factory.informers().values()]
    tasks.append(asyncio.create_task(ctl.run()))
    try:
        async def unknown() -> Any:
            n = await c.get("nodes", "", "n1")
            conds = {x["type"]: x for x in (n or {}).get("status", {}).get("conditions", [])}
            taints = {(t["key"], t["effect"]) for t in (n or {}).get("spec", {}).get("taints") or []}
            return n if conds["Ready"]["status"] == "Unknown" and ("node.kubernetes.io/unreachable", "NoExecute") in taints else None

        node = await eventually(unknown, what="node Unknown and tainted")
        assert ("node.kubernetes.io/unreachable", "NoSchedule") in {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
        assert node["status"]["conditions"][0]["reason"] == "NodeStatusUnknown"

        async def gone_or_terminating(name: str) -> bool:
            p = await c.get("pods", "default", name)
            return p is None or bool(p["metadata"].get("deletionTimestamp"))

        await eventually(lambda: gone_or_terminating("no-toleration"), what="untolerating pod evicted")
        forever = await c.get("pods", "default", "forever")
        assert forever is not None and not forever["metadata"].get("deletionTimestamp")
        ready = {x["type"]: x["status"] for x in forever["status"]["conditions"]}
        assert ready["Ready"] == "False"
        short = await c.get("pods", "default", "short")
        assert short is not None and not short["metadata"].get("deletionTimestamp")   # 2 s not over yet
        await eventually(lambda: gone_or_terminating("short"), timeout=10, what="pod evicted after its toleration")

        # The node comes back: heartbeat + Ready True → taints removed, nothing else evicted.
        await c.create("coordination.k8s.io/leases", "kube-node-lease", {"metadata": {"name": "n1"}, "spec": {
            "holderIdentity": "n1", "renewTime": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}})
        await _ready(c, "n1")

        async def untainted() -> bool:
            n = await c.get("nodes", "", "n1")
            return not any(t["key"].startswith("node.kubernetes.io/") for t in (n or {}).get("spec", {}).get("taints") or [])

        await eventually(untainted, what="taints removed")
        assert (await c.get("pods", "default", "forever")) is not None

        # Deleting the node removes its pods (pod GC of orphans), even those that tolerate everything.
        await c.delete("nodes", "", "n1")
        await eventually(lambda: _absent(c, "forever"), what="orphaned pod removed")
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _absent(c: LocalClient, name: str) -> bool:
    return await c.get("pods", "default", name) is None


def test_plans_are_pure() -> None:
    now = 1_000_000.0
    node = {"metadata": {"name": "n", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "status": {"conditions": [{"type": "Ready", "status": "False", "lastHeartbeatTime": "2100-01-01T00:00:00Z"}]},
            "spec": {"taints": [{"key": "other", "effect": "NoSchedule"}]}}
    p = plan_node(node, False, now)
    assert p.conditions is None and p.mark_pods_not_ready
    assert [t["key"] for t in p.taints or ()] == ["other", "node.kubernetes.io/not-ready", "node.kubernetes.io/not-ready"]
    tainted = {**node, "spec": {"taints": list(p.taints or ())}}
    pods = [{"metadata": {"name": "a"}, "spec": {"tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                                                                  "effect": "NoExecute", "tolerationSeconds": 300}]}},
            {"metadata": {"name": "b"}, "spec": {}}]
    due, soonest = evictions(tainted, pods, now)
    assert due == ["b"] and soonest == pytest.approx(300)
