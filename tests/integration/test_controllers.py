"""Workload controllers end to end, in process: a real store + resource service behind
`LocalClient`, the Deployment, ReplicaSet, Endpoints controllers and the garbage collector, and no
node agent — the test plays kubelet by patching pod status (IP, Running, Ready)."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client import ClientError, Obj
from minik.client.local import LocalClient
from minik.controllers.deployment import DeploymentController
from minik.controllers.endpoints import EndpointsController
from minik.controllers.garbagecollector import GarbageCollector
from minik.controllers.replicaset import ReplicaSetController
from minik.store.store import Store

NS = "default"


@dataclass
class Cluster:
    client: LocalClient
    store: Store
    ips: int = 0

    async def pods(self, app: str = "web") -> list[Obj]:
        items, _ = await self.client.list("pods", NS, label_selector=f"app={app}")
        return items

    async def deploy(self, name: str = "web") -> Obj:
        d = await self.client.get("apps/deployments", NS, name)
        assert d is not None
        return d

    async def kubelet(self, ready: bool = True, app: str = "web") -> None:
        """Mark every pod of `app` Running with an IP, Ready as asked (what the node agent would do)."""
        now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        for p in await self.pods(app):
            st = p.get("status") or {}
            cur_ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or [])
            if st.get("phase") == "Running" and cur_ready == ready or p["metadata"].get("deletionTimestamp"):
                continue
            ip = st.get("podIP")
            if not ip:
                self.ips += 1
                ip = f"10.42.0.{self.ips}"
            status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
                      "conditions": [{"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": now}]}
            await self.client.patch("pods", NS, p["metadata"]["name"], {"status": status}, subresource="status")


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        if await fn():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or fn}")
        await asyncio.sleep(0.05)


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    client = LocalClient(service)
    await client.create("namespaces", "", {"metadata": {"name": NS}})
    parts: list[Any] = [GarbageCollector(client), ReplicaSetController(client), DeploymentController(client),
                        EndpointsController(client)]
    tasks = [asyncio.create_task(p.run(), name=type(p).__name__) for p in parts]
    try:
        yield Cluster(client, store)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await store.close()


def deployment(name: str = "web", replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image,
                                                           "ports": [{"name": "http", "containerPort": 80}]}]}},
                     **spec}}


def rolled_out(d: Obj) -> bool:
    """kubectl rollout status's test (kubectl-protocol.md §7)."""
    st, want = d.get("status") or {}, d["spec"]["replicas"]
    prog: Obj = next((c for c in st.get("conditions") or [] if c["type"] == "Progressing"), {})
    return (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("updatedReplicas", 0) == want
            and st.get("replicas", 0) == st.get("updatedReplicas", 0)
            and st.get("availableReplicas", 0) >= st.get("updatedReplicas", 0)
            and prog.get("reason") != "ProgressDeadlineExceeded")


async def roll_to_completion(c: Cluster, timeout: float = 20.0) -> Obj:
    async def done() -> bool:
        await c.kubelet()
        return rolled_out(await c.deploy())
    await eventually(done, timeout, "rollout")
    return await c.deploy()


async def test_deployment_creates_replicaset_and_pods(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment())
    await eventually(lambda: _count(c, 3), what="3 pods")
    rss, _ = await c.client.list("apps/replicasets", NS)
    assert len(rss) == 1
    rs = rss[0]
    h = rs["metadata"]["labels"]["pod-template-hash"]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "3"
    assert rs["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] == "4"
    ref = rs["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "Deployment" and ref["controller"] and ref["blockOwnerDeletion"]
    for p in await c.pods():
        assert p["metadata"]["name"].startswith(f"web-{h}-")
        assert p["metadata"]["labels"]["pod-template-hash"] == h
        assert p["metadata"]["ownerReferences"][0]["name"] == rs["metadata"]["name"]
    d = await c.deploy()
    assert not rolled_out(d)
    d = await roll_to_completion(c)
    st = d["status"]
    assert st["replicas"] == st["updatedReplicas"] == st["readyReplicas"] == st["availableReplicas"] == 3
    assert "unavailableReplicas" not in st
    conds = {x["type"]: x for x in st["conditions"]}
    assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
    await eventually(lambda: _progressing_reason(c, "NewReplicaSetAvailable"), what="NewReplicaSetAvailable")
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    events, _ = await c.client.list("events", NS)
    msgs = {e["message"] for e in events}
    assert f"Scaled up replica set web-{h} from 0 to 3" in msgs
    assert any(m.startswith(f"Created pod: web-{h}-") for m in msgs)
    srcs = {e["source"]["component"] for e in events}
    assert {"deployment-controller", "replicaset-controller"} <= srcs

    # Idle: nothing is written any more.
    await asyncio.sleep(0.5)
    rev = c.store.revision
    await asyncio.sleep(1.0)
    assert c.store.revision == rev


async def test_scale_up_and_down(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=2))
    await roll_to_completion(c)
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"replicas": 5}})
    d = await roll_to_completion(c)
    assert d["status"]["replicas"] == 5 and len(await c.pods()) == 5
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"replicas": 1}})
    await eventually(lambda: _count(c, 1), what="1 pod")
    d = await roll_to_completion(c)
    assert d["status"]["availableReplicas"] == 1
    rss, _ = await c.client.list("apps/replicasets", NS)
    assert len(rss) == 1 and rss[0]["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "1"


async def test_rolling_update_and_undo(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=4))
    await roll_to_completion(c)
    first = (await c.client.list("apps/replicasets", NS))[0][0]
    await c.client.patch("apps/deployments", NS, "web",
                         {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.26",
                                                                         "ports": [{"name": "http", "containerPort": 80}]}]}}}})
    # Without ready pods the rollout stays within maxSurge (25% of 4 = 1) and maxUnavailable (1).
    await asyncio.sleep(0.5)
    assert len([p for p in await c.pods() if not p["metadata"].get("deletionTimestamp")]) <= 5
    d = await roll_to_completion(c)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    rss = {rs["metadata"]["name"]: rs for rs in (await c.client.list("apps/replicasets", NS))[0]}
    assert rss[first["metadata"]["name"]]["spec"]["replicas"] == 0
    images = {p["spec"]["containers"][0]["image"] for p in await c.pods()}
    assert images == {"nginx:1.26"}

    # kubectl rollout undo: PATCH the template from the old RS (hash label removed), which
    # kubectl's Go types send back with `creationTimestamp: null`.
    tmpl = first["spec"]["template"]
    del tmpl["metadata"]["labels"]["pod-template-hash"]
    tmpl["metadata"]["creationTimestamp"] = None
    await c.client.patch("apps/deployments", NS, "web", [{"op": "replace", "path": "/spec/template", "value": tmpl}],
                         patch_type="application/json-patch+json")
    d = await roll_to_completion(c)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    back = await c.client.get("apps/replicasets", NS, first["metadata"]["name"])
    assert back is not None and back["spec"]["replicas"] == 4
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert back["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"

    # kubectl rollout restart: a template annotation rolls to a new ReplicaSet.
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"}}}}})
    d = await roll_to_completion(c)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    assert len((await c.client.list("apps/replicasets", NS))[0]) == 3


async def test_recreate(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=2, strategy={"type": "Recreate"}))
    await roll_to_completion(c)
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"template": {"metadata": {"labels": {"app": "web", "v": "2"}}}}})
    d = await roll_to_completion(c)
    pods = await c.pods()
    assert len(pods) == 2 and all(p["metadata"]["labels"].get("v") == "2" for p in pods)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    events, _ = await c.client.list("events", NS)
    msgs = [e["message"] for e in events if e["source"]["component"] == "deployment-controller"]
    assert any(m.startswith("Scaled down replica set web-") and m.endswith("from 2 to 0") for m in msgs)


async def test_revision_history_limit(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=1, revisionHistoryLimit=1))
    for i in range(3):
        await roll_to_completion(c)
        await c.client.patch("apps/deployments", NS, "web", {"spec": {"template": {"metadata": {"annotations": {"n": str(i)}}}}})
    await roll_to_completion(c)

    async def pruned() -> bool:
        return len((await c.client.list("apps/replicasets", NS))[0]) == 2
    await eventually(pruned, what="old ReplicaSets pruned to the limit")


async def test_replicaset_adopts_and_releases(cluster: Cluster) -> None:
    c = cluster
    orphan = {"metadata": {"name": "stray", "labels": {"app": "rs"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    await c.client.create("pods", NS, orphan)
    rs = {"metadata": {"name": "rs"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "rs"}},
                                               "template": {"metadata": {"labels": {"app": "rs"}},
                                                            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    await c.client.create("apps/replicasets", NS, rs)
    await eventually(lambda: _count(c, 2, "rs"), what="2 pods")
    stray = await c.client.get("pods", NS, "stray")
    assert stray is not None and stray["metadata"]["ownerReferences"][0]["name"] == "rs"
    # Relabelled out of the selector: released, and replaced.
    await c.client.patch("pods", NS, "stray", {"metadata": {"labels": {"app": "other"}}})
    await eventually(lambda: _count(c, 2, "rs"), what="replacement")

    async def released() -> bool:
        p = await c.client.get("pods", NS, "stray")
        return p is not None and not p["metadata"].get("ownerReferences")
    await eventually(released, what="release")

    async def status_ok() -> bool:
        got = await c.client.get("apps/replicasets", NS, "rs")
        return got is not None and got["status"].get("replicas") == 2 and got["status"].get("observedGeneration") == 1
    await eventually(status_ok, what="rs status")


async def test_endpoints_follow_ready_pods(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("services", NS, {"metadata": {"name": "web", "labels": {"tier": "front"}},
                                           "spec": {"selector": {"app": "web"},
                                                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    await c.client.create("apps/deployments", NS, deployment(replicas=2))
    await eventually(lambda: _count(c, 2), what="2 pods")
    await c.kubelet(ready=False)

    async def endpoints(ready: int, not_ready: int) -> bool:
        ep = await c.client.get("endpoints", NS, "web")
        if ep is None:
            return False
        ss = ep.get("subsets") or []
        r = sum(len(s.get("addresses") or []) for s in ss)
        n = sum(len(s.get("notReadyAddresses") or []) for s in ss)
        return r == ready and n == not_ready
    await eventually(lambda: endpoints(0, 2), what="2 not-ready addresses")
    await c.kubelet(ready=True)
    await eventually(lambda: endpoints(2, 0), what="2 ready addresses")
    ep = await c.client.get("endpoints", NS, "web")
    assert ep is not None
    ss = ep["subsets"][0]
    assert ss["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]
    assert ss["addresses"][0]["targetRef"]["kind"] == "Pod"
    assert ep["metadata"]["labels"] == {"tier": "front"}

    async def slice_ready(n: int) -> bool:
        slices, _ = await c.client.list("discovery.k8s.io/endpointslices", NS, label_selector="kubernetes.io/service-name=web")
        return len(slices) == 1 and sum(1 for e in slices[0]["endpoints"] or [] if e["conditions"]["ready"]) == n
    await eventually(lambda: slice_ready(2), what="slice with 2 ready endpoints")
    s = (await c.client.list("discovery.k8s.io/endpointslices", NS))[0][0]
    assert s["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert s["metadata"]["ownerReferences"][0]["kind"] == "Service"
    assert s["ports"] == [{"name": "http", "port": 80, "protocol": "TCP"}]

    await c.client.patch("apps/deployments", NS, "web", {"spec": {"replicas": 1}})
    await eventually(lambda: endpoints(1, 0), what="1 address after scale down")
    await eventually(lambda: slice_ready(1), what="slice with 1 endpoint")

    await delete_retrying(c, "services", "web")

    async def gone() -> bool:
        slices, _ = await c.client.list("discovery.k8s.io/endpointslices", NS)
        return await c.client.get("endpoints", NS, "web") is None and not slices
    await eventually(gone, what="endpoints and slices removed with the service")


async def test_delete_deployment_cascades(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=2))
    await roll_to_completion(c)
    # Let the controllers' last status writes land first: the garbage collector gives up on a
    # delete that races a pending write (ResourceService.delete conflict retries don't yield).
    await asyncio.sleep(0.3)
    await delete_retrying(c, "apps/deployments", "web")

    async def empty() -> bool:
        rss, _ = await c.client.list("apps/replicasets", NS)
        return not rss and not await c.pods()
    try:
        await eventually(empty, what="cascade")
    except AssertionError:
        rss, _ = await c.client.list("apps/replicasets", NS)
        raise AssertionError(f"left: {[(r['metadata']['name'], r['metadata'].get('ownerReferences')) for r in rss]} "
                             f"{[(p['metadata']['name'], p['metadata'].get('ownerReferences')) for p in await c.pods()]}") from None


async def delete_retrying(c: Cluster, resource: str, name: str) -> None:
    # ResourceService.delete re-reads the committed cache while a controller's write is still
    # pending in the store, so it can report a conflict; kubectl users would just retry.
    for _ in range(50):
        try:
            await c.client.delete(resource, NS, name)
            return
        except ClientError as e:
            if not e.conflict:
                raise
            await asyncio.sleep(0.02)
    raise AssertionError(f"delete {resource}/{name} kept conflicting")


async def _count(c: Cluster, n: int, app: str = "web") -> bool:
    return len([p for p in await c.pods(app) if not p["metadata"].get("deletionTimestamp")]) == n


async def _progressing_reason(c: Cluster, reason: str) -> bool:
    d = await c.deploy()
    return any(x["type"] == "Progressing" and x["reason"] == reason for x in d["status"].get("conditions") or [])


async def test_progress_deadline_exceeded(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=1, progressDeadlineSeconds=1))
    await eventually(lambda: _count(c, 1), what="1 pod")
    await c.kubelet(ready=False)
    await eventually(lambda: _progressing_reason(c, "ProgressDeadlineExceeded"), timeout=10, what="deadline exceeded")
    d = await c.deploy()
    cond = next(x for x in d["status"]["conditions"] if x["type"] == "Progressing")
    assert cond["status"] == "False" and "has timed out progressing" in cond["message"]
    assert not rolled_out(d)
    # Becoming ready completes the rollout again.
    await roll_to_completion(c)
    await eventually(lambda: _progressing_reason(c, "NewReplicaSetAvailable"), what="recovered")


async def test_paused_deployment_does_not_roll(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=2))
    await roll_to_completion(c)
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"paused": True}})
    await eventually(lambda: _progressing_reason(c, "DeploymentPaused"), what="paused condition")
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"template": {"metadata": {"annotations": {"x": "1"}}}}})
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"replicas": 3}})
    await eventually(lambda: _count(c, 3), what="scaling works while paused")
    assert len((await c.client.list("apps/replicasets", NS))[0]) == 1
    await c.client.patch("apps/deployments", NS, "web", {"spec": {"paused": False}})
    d = await roll_to_completion(c)
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


async def test_unready_rollout_is_quiet(cluster: Cluster) -> None:
    """A rollout waiting for pods writes nothing until something changes (no status ping-pong)."""
    c = cluster
    await c.client.create("apps/deployments", NS, deployment(replicas=2))
    await eventually(lambda: _count(c, 2), what="2 pods")
    await asyncio.sleep(0.5)
    rev = c.store.revision
    await asyncio.sleep(1.5)
    assert c.store.revision == rev, (await c.deploy())["status"]
