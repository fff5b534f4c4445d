"""Disruption budgets, eviction, the cordon taint and quota status in process: a real store +
resource service behind `LocalClient`, the shared informers, the disruption, unschedulable-taint
and resource quota controllers; the test plays kubelet by patching pod status.

- PDB status follows pod readiness; evictions through `minik.api.eviction` spend
  `disruptionsAllowed` (so two evictions in a row cannot both pass a budget of one) and are
  refused with 429 once it is spent;
- `spec.unschedulable` adds and removes the NoSchedule taint without touching other taints;
- quota `status.used` follows creates and deletes of pods, configmaps and services, and drops
  names removed from the spec.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minik.api import status as st
from minik.api.eviction import evict
from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client import Obj
from minik.client.local import LocalClient
from minik.controllers.disruption import DisruptionController
from minik.controllers.nodeunschedulable import UnschedulableTaintController
from minik.controllers.resourcequota import ResourceQuotaController
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor
from minik.store.store import Store

NS = "default"
PDBS = "policy/poddisruptionbudgets"


async def eventually(fn: Callable[[], Awaitable[object]], timeout: float = 15.0, what: str = "") -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await fn()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Env:
    client: LocalClient
    service: ResourceService

    async def pod(self, name: str, app: str = "web", ready: bool = True) -> None:
        await self.client.create("pods", NS, {"metadata": {"name": name, "labels": {"app": app}},
                                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        await self.client.patch("pods", NS, name, {"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}}, subresource="status")

    async def pdb_status(self, name: str = "b") -> dict[str, Any]:
        o = await self.client.get(PDBS, NS, name)
        return dict((o or {}).get("status") or {})

    async def evict(self, name: str) -> Obj:
        rt = self.service.registry.lookup("", "v1", "pods")
        assert rt is not None
        return await evict(self.service, rt, NS, name, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name}})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    client = LocalClient(service)
    await client.create("namespaces", "", {"metadata": {"name": NS}})
    sup = Supervisor(max_backoff=1.0)
    informers = InformerFactory(client, sup)
    sup.spawn("disruption", DisruptionController(client, informers).run)
    sup.spawn("taint", UnschedulableTaintController(client, informers.informer("nodes")).run)
    sup.spawn("quota", ResourceQuotaController(client, informers).run)
    informers.start()
    try:
        yield Env(client, service)
    finally:
        await sup.stop()
        await store.close()


async def test_budget_status_and_evictions_spend_it(env: Env) -> None:
    for n in ("a", "b", "c"):
        await env.pod(n)
    await env.client.create(PDBS, NS, {"metadata": {"name": "b"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    await eventually(lambda: _status_is(env, currentHealthy=3, disruptionsAllowed=1), what="one disruption allowed")
    s = await env.pdb_status()
    assert (s["currentHealthy"], s["desiredHealthy"], s["expectedPods"]) == (3, 2, 3)
    # Two evictions back to back: the first spends the budget, the second is refused at once
    # (before the controller has seen anything).
    assert (await env.evict("a"))["status"] == "Success"
    with pytest.raises(st.StatusError) as e:
        await env.evict("b")
    assert e.value.code == 429 and e.value.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert await env.client.get("pods", NS, "a") is None       # unbound pods are deleted at once
    await eventually(lambda: _status_is(env, currentHealthy=2, disruptionsAllowed=0), what="status after eviction")
    # A pod that is not ready is not healthy; an eviction of an unready pod passes when the budget is met.
    await env.pod("d", ready=False)
    await eventually(lambda: _status_is(env, currentHealthy=2, expectedPods=3), what="unready pod counted")
    assert (await env.evict("d"))["status"] == "Success"


async def _status_is(env: Env, **want: Any) -> bool:
    s = await env.pdb_status()
    return all(s.get(k) == v for k, v in want.items())


async def test_cordon_taint_follows_unschedulable(env: Env) -> None:
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    await env.client.create("nodes", "", {"metadata": {"name": "n1"}, "spec": {"taints": [other]}})
    await env.client.patch("nodes", "", "n1", {"spec": {"unschedulable": True}})

    async def taints() -> list[Obj]:
        n = await env.client.get("nodes", "", "n1")
        return list(((n or {}).get("spec") or {}).get("taints") or [])
    await eventually(lambda: _has_key(taints(), "node.kubernetes.io/unschedulable"), what="taint added")
    assert (await taints())[0] == other
    await env.client.patch("nodes", "", "n1", {"spec": {"unschedulable": False}})
    await eventually(lambda: _lacks_key(taints(), "node.kubernetes.io/unschedulable"), what="taint removed")
    assert await taints() == [other]


async def _has_key(t: Awaitable[list[Obj]], key: str) -> bool:
    return any(x.get("key") == key for x in await t)


async def _lacks_key(t: Awaitable[list[Obj]], key: str) -> bool:
    return not await _has_key(t, key)


async def test_quota_status_used_follows_objects(env: Env) -> None:
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "q"}, "spec": {"hard": {
        "pods": "10", "configmaps": "5", "services": "3", "services.nodeports": "4"}}})

    async def used() -> dict[str, str]:
        q = await env.client.get("resourcequotas", NS, "q")
        return dict(((q or {}).get("status") or {}).get("used") or {})
    await eventually(lambda: _eq(used(), {"pods": "0", "configmaps": "0", "services": "0", "services.nodeports": "0"}), what="zeros")
    await env.pod("a")
    await env.client.create("configmaps", NS, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    await env.client.create("services", NS, {"metadata": {"name": "s"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    await eventually(lambda: _eq(used(), {"pods": "1", "configmaps": "1", "services": "1", "services.nodeports": "1"}), what="counted")
    await env.client.delete("configmaps", NS, "cm")
    await env.client.patch("resourcequotas", NS, "q", {"spec": {"hard": {"services.nodeports": None}}})
    await eventually(lambda: _eq(used(), {"pods": "1", "configmaps": "0", "services": "1"}), what="after delete and spec change")
    q = await env.client.get("resourcequotas", NS, "q")
    assert q is not None and q["status"]["hard"] == {"pods": "10", "configmaps": "5", "services": "3"}


async def _eq(v: Awaitable[dict[str, str]], want: dict[str, str]) -> bool:
    return await v == want


async def test_quota_of_an_unserved_resource_counts_zero(env: Env) -> None:
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "odd"}, "spec": {"hard": {
        "count/widgets.example.com": "1", "pods": "2"}}})

    async def used() -> dict[str, str]:
        q = await env.client.get("resourcequotas", NS, "odd")
        return dict(((q or {}).get("status") or {}).get("used") or {})
    await eventually(lambda: _eq(used(), {"count/widgets.example.com": "0", "pods": "0"}), what="zeros")


async def test_budget_without_pods_says_so_once(env: Env) -> None:
    await env.client.create(PDBS, NS, {"metadata": {"name": "lonely"}, "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "none"}}}})

    async def events() -> list[str]:
        items, _ = await env.client.list("events", NS)
        return [e["reason"] for e in items if e["involvedObject"]["name"] == "lonely"]
    await eventually(lambda: _nonempty(events()), what="NoPods event")
    await env.pod("other", app="other")
    await asyncio.sleep(0.5)
    items, _ = await env.client.list("events", NS)
    ev = [e for e in items if e["involvedObject"]["name"] == "lonely"]
    assert [(e["reason"], e["message"], e.get("count", 1)) for e in ev] == [("NoPods", "No matching pods found", 1)]


async def _nonempty(v: Awaitable[list[str]]) -> bool:
    return bool(await v)


async def test_evicted_pod_on_a_node_gets_disruption_target_then_grace(env: Env) -> None:
    await env.client.create("nodes", "", {"metadata": {"name": "n1"}})
    await env.pod("bound")
    await env.client.patch("pods", NS, "bound", {"target": {"name": "n1"}}, subresource="binding")
    assert (await env.evict("bound"))["status"] == "Success"
    p = await env.client.get("pods", NS, "bound")
    assert p is not None and p["metadata"]["deletionTimestamp"]          # graceful: its node finishes it
    cond = next(c for c in p["status"]["conditions"] if c["type"] == "DisruptionTarget")
    assert (cond["status"], cond["reason"], cond["message"]) == ("True", "EvictionByEvictionAPI", "Eviction API: evicting")


async def test_concurrent_creates_cannot_overrun_a_quota(env: Env) -> None:
    """Admission counts the creates it admitted that the cache does not show yet: ten pods created
    at once against `pods: 3` → exactly three are stored."""
    from minik.client import ClientError
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "three"}, "spec": {"hard": {"pods": "3"}}})

    async def create(i: int) -> bool:
        try:
            await env.client.create("pods", NS, {"metadata": {"name": f"burst-{i}"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
            return True
        except ClientError as e:
            assert e.code == 403 and "exceeded quota: three" in e.message
            return False
    results = await asyncio.gather(*(create(i) for i in range(10)))
    assert sum(results) == 3
    items, _ = await env.client.list("pods", NS)
    assert len(items) == 3


async def test_create_delete_create_within_a_tight_quota(env: Env) -> None:
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "one"}, "spec": {"hard": {"pods": "1"}}})
    body = {"metadata": {"name": "again"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    for _ in range(3):
        await env.client.create("pods", NS, body)
        await env.client.delete("pods", NS, "again")


async def test_service_turning_nodeport_counts_against_quota(env: Env) -> None:
    from minik.client import ClientError
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "np"}, "spec": {"hard": {"services.nodeports": "1"}}})
    await env.client.create("services", NS, {"metadata": {"name": "a"}, "spec": {"type": "NodePort", "ports": [{"port": 80}]}})
    await env.client.create("services", NS, {"metadata": {"name": "b"}, "spec": {"ports": [{"port": 80}]}})
    with pytest.raises(ClientError) as e:
        await env.client.patch("services", NS, "b", {"spec": {"type": "NodePort"}})
    assert e.value.code == 403 and "exceeded quota: np, requested: services.nodeports=1, used: services.nodeports=1" in e.value.message
    await env.client.patch("services", NS, "b", {"metadata": {"labels": {"x": "y"}}})     # adds nothing: fine
