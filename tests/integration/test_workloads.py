"""Job, CronJob, StatefulSet and DaemonSet controllers in process: a real store + resource service
behind `LocalClient`, the controllers on one shared InformerFactory, the garbage collector, and no
node agent — the test plays kubelet (pod phases, readiness, finishing deletions)."""

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
from minik.client import Obj
from minik.client.local import LocalClient
from minik.controllers.cronjob import CronJobController
from minik.controllers.daemonset import DaemonSetController
from minik.controllers.garbagecollector import GarbageCollector
from minik.controllers.job import TRACKING_FINALIZER, JobController, JobTiming
from minik.controllers.statefulset import StatefulSetController
from minik.machinery.informers import InformerFactory
from minik.store.store import Store

NS = "default"


def now_ts() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeClock:
    offset: dt.timedelta = dt.timedelta()

    def __call__(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset


@dataclass
class Cluster:
    client: LocalClient
    store: Store
    cron: CronJobController
    clock: FakeClock
    ips: int = 0

    async def pods(self, selector: str = "") -> list[Obj]:
        items, _ = await self.client.list("pods", NS, label_selector=selector)
        return items

    async def get(self, resource: str, name: str) -> Obj | None:
        return await self.client.get(resource, NS, name)

    async def set_phase(self, pod: Obj, phase: str, ready: bool = False, exit_code: int | None = None,
                        conditions: list[Obj] | None = None) -> None:
        """What the node agent reports: phase, Ready, a terminated container with an exit code."""
        st: Obj = {"phase": phase, "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                                   "lastTransitionTime": now_ts()}, *(conditions or [])]}
        if phase == "Running":
            self.ips += 1
            st["podIP"] = f"10.42.0.{self.ips % 250 + 1}"
        if exit_code is not None:
            st["containerStatuses"] = [{"name": "c", "image": "busybox", "imageID": "", "ready": False, "restartCount": 0,
                                        "state": {"terminated": {"exitCode": exit_code, "finishedAt": now_ts(),
                                                                 "reason": "Completed" if exit_code == 0 else "Error"}}}]
        await self.client.patch("pods", NS, pod["metadata"]["name"], {"status": st}, subresource="status")

    async def reap(self) -> None:
        """Finish graceful deletions as the agent would (grace 0 once containers are gone)."""
        for p in await self.pods():
            if p["metadata"].get("deletionTimestamp"):
                await self.client.delete("pods", NS, p["metadata"]["name"], grace_period_seconds=0)


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "") -> None:
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
    factory = InformerFactory(client)
    clock = FakeClock()
    cron = CronJobController(client, informers=factory, clock=clock)
    parts: list[Any] = [GarbageCollector(client), cron,
                        JobController(client, informers=factory, timing=JobTiming(backoff_base=0.2, backoff_max=1.0)),
                        StatefulSetController(client, informers=factory), DaemonSetController(client, informers=factory)]
    factory.start()
    tasks = [asyncio.create_task(p.run(), name=type(p).__name__) for p in parts]
    try:
        yield Cluster(client, store, cron, clock)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await factory.stop()
        await store.close()


def job(name: str = "pi", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                                           "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}},
                     **spec}}


def cond(obj: Obj | None, ctype: str) -> Obj | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype and c["status"] == "True":
            return c  # type: ignore[no-any-return]
    return None


def live(pods: list[Obj]) -> list[Obj]:
    return [p for p in pods if not p["metadata"].get("deletionTimestamp") and
            (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


async def test_job_completions_parallelism(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/jobs", NS, job(completions=5, parallelism=2))
    most = 0
    for _ in range(200):
        running = live(await c.pods("job-name=pi"))
        most = max(most, len(running))
        for p in running:
            assert TRACKING_FINALIZER in p["metadata"]["finalizers"]
            await c.set_phase(p, "Succeeded", exit_code=0)
        j = await c.get("batch/jobs", "pi")
        if cond(j, "Complete"):
            break
        await asyncio.sleep(0.05)
    j = await c.get("batch/jobs", "pi")
    assert cond(j, "Complete") and cond(j, "SuccessCriteriaMet")
    assert j is not None and j["status"]["succeeded"] == 5 and j["status"].get("failed", 0) == 0
    assert j["status"]["completionTime"] and j["status"]["startTime"]
    assert most <= 2
    pods = await c.pods("job-name=pi")
    assert len(pods) == 5
    await eventually(lambda: _no_finalizers(c), what="finalizers removed")


async def _no_finalizers(c: Cluster) -> bool:
    return all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []) for p in await c.pods())


async def test_indexed_job(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/jobs", NS, job(completions=3, parallelism=3, completionMode="Indexed"))
    await eventually(lambda: _n(c, 3), what="3 pods")
    pods = await c.pods("job-name=pi")
    idx = sorted(int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]) for p in pods)
    assert idx == [0, 1, 2]
    for p in pods:
        i = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == i
        assert p["spec"]["hostname"] == f"pi-{i}"
        assert p["metadata"]["name"].startswith(f"pi-{i}-")
        env = p["spec"]["containers"][0]["env"]
        assert {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}} in env
    # Index 1 fails once: it is recreated; 0 and 2 succeed.
    by = {p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]: p for p in pods}
    await c.set_phase(by["0"], "Succeeded", exit_code=0)
    await c.set_phase(by["1"], "Failed", exit_code=1)
    await c.set_phase(by["2"], "Succeeded", exit_code=0)

    async def index1_again() -> bool:
        ps = [p for p in live(await c.pods("job-name=pi"))
              if p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"]
        return len(ps) == 1
    await eventually(index1_again, what="index 1 recreated")

    async def counted() -> bool:   # the failure moves out of uncountedTerminatedPods once its finalizer is gone
        j = await c.get("batch/jobs", "pi") or {}
        return j["status"].get("completedIndexes") == "0,2" and j["status"].get("failed") == 1
    await eventually(counted, what="0,2 completed and one failure counted")
    await c.set_phase(live(await c.pods("job-name=pi"))[0], "Succeeded", exit_code=0)
    await eventually(lambda: _cond(c, "pi", "Complete"), what="complete")
    j = await c.get("batch/jobs", "pi")
    assert j is not None and j["status"]["completedIndexes"] == "0-2" and j["status"]["succeeded"] == 3


async def _n(c: Cluster, n: int, sel: str = "job-name=pi") -> bool:
    return len(live(await c.pods(sel))) == n


async def _cond(c: Cluster, name: str, ctype: str) -> bool:
    return cond(await c.get("batch/jobs", name), ctype) is not None


async def test_backoff_limit_exceeded(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/jobs", NS, job(backoffLimit=2))
    seen: set[str] = set()
    for _ in range(400):
        for p in live(await c.pods("job-name=pi")):
            seen.add(p["metadata"]["name"])
            await c.set_phase(p, "Failed", exit_code=3)
        if await _cond(c, "pi", "Failed"):
            break
        await asyncio.sleep(0.05)
    j = await c.get("batch/jobs", "pi")
    f = cond(j, "Failed")
    assert f is not None and f["reason"] == "BackoffLimitExceeded" and cond(j, "FailureTarget")
    assert j is not None and j["status"]["failed"] == 3 and len(seen) == 3
    assert "completionTime" not in j["status"]
    events, _ = await c.client.list("events", NS)
    assert any(e["reason"] == "BackoffLimitExceeded" for e in events)


async def test_pod_failure_policy_fail_job_and_ignore(cluster: Cluster) -> None:
    c = cluster
    rules = [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
             {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}]
    await c.client.create("batch/jobs", NS, job(podFailurePolicy={"rules": rules}))
    await eventually(lambda: _n(c, 1), what="a pod")
    p = live(await c.pods("job-name=pi"))[0]
    await c.set_phase(p, "Failed", exit_code=1, conditions=[{"type": "DisruptionTarget", "status": "True"}])
    await eventually(lambda: _n(c, 1), what="a replacement")
    j = await c.get("batch/jobs", "pi")
    assert j is not None and j["status"].get("failed", 0) == 0   # ignored
    p = live(await c.pods("job-name=pi"))[0]
    await c.set_phase(p, "Failed", exit_code=42)
    await eventually(lambda: _cond(c, "pi", "Failed"), what="failed")
    f = cond(await c.get("batch/jobs", "pi"), "Failed")
    assert f is not None and f["reason"] == "PodFailurePolicy" and "exit code 42" in f["message"]


async def test_active_deadline_suspend_and_ttl(cluster: Cluster) -> None:
    c = cluster
    # 3 s, not 1: the 2 live pods must be seen before the deadline removes them (a loaded CI
    # machine once took over a second between the create and the poll that sees them).
    await c.client.create("batch/jobs", NS, job("dl", activeDeadlineSeconds=3, parallelism=2, completions=4))
    await eventually(lambda: _n(c, 2, "job-name=dl"), what="2 pods")
    await eventually(lambda: _reap_until(c, "dl", "Failed"), what="deadline")
    f = cond(await c.get("batch/jobs", "dl"), "Failed")
    assert f is not None and f["reason"] == "DeadlineExceeded"

    await c.client.create("batch/jobs", NS, job("sus", suspend=True))
    await eventually(lambda: _cond(c, "sus", "Suspended"), what="suspended")
    assert not await c.pods("job-name=sus")
    await c.client.patch("batch/jobs", NS, "sus", {"spec": {"suspend": False}})
    await eventually(lambda: _n(c, 1, "job-name=sus"), what="resumed pod")

    await c.client.create("batch/jobs", NS, job("ttl", ttlSecondsAfterFinished=1))
    await eventually(lambda: _n(c, 1, "job-name=ttl"), what="ttl pod")
    await c.set_phase(live(await c.pods("job-name=ttl"))[0], "Succeeded", exit_code=0)
    await eventually(lambda: _cond(c, "ttl", "Complete"), what="ttl complete")

    async def gone() -> bool:
        await c.reap()
        return await c.get("batch/jobs", "ttl") is None and not await c.pods("job-name=ttl")
    await eventually(gone, what="ttl deletes the job and its pods")


async def _reap_until(c: Cluster, name: str, ctype: str) -> bool:
    await c.reap()
    return await _cond(c, name, ctype)


async def test_orphaned_pods_lose_the_tracking_finalizer(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/jobs", NS, job(parallelism=2, completions=2))
    await eventually(lambda: _n(c, 2), what="2 pods")
    await c.client.delete("batch/jobs", NS, "pi", propagation_policy="Orphan")

    async def released() -> bool:
        pods = await c.pods("job-name=pi")
        return len(pods) == 2 and all(not p["metadata"].get("ownerReferences") for p in pods) and await _no_finalizers(c)
    await eventually(released, what="orphans without finalizer")


async def test_deleted_job_releases_pod_finalizers(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/jobs", NS, job(parallelism=2, completions=2))
    await eventually(lambda: _n(c, 2), what="2 pods")
    await c.client.delete("batch/jobs", NS, "pi")

    async def gone() -> bool:
        await c.reap()
        return not await c.pods("job-name=pi")
    await eventually(gone, what="pods gone")


# ---- StatefulSet ---------------------------------------------------------------------------------
def sts(name: str = "web", replicas: int = 3, image: str = "nginx:1.25", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"replicas": replicas, "serviceName": "nginx", "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image,
                                                           "volumeMounts": [{"name": "www", "mountPath": "/usr/share/nginx/html"}]}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"},
                                               "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}],
                     **spec}}


async def ready_all(c: Cluster, sel: str = "app=web") -> list[str]:
    """Mark every non-terminating pod Running and Ready; finish deletions. Returns names made ready."""
    out = []
    for p in await c.pods(sel):
        if p["metadata"].get("deletionTimestamp"):
            await c.client.delete("pods", NS, p["metadata"]["name"], grace_period_seconds=0)
            continue
        st = p.get("status") or {}
        if st.get("phase") != "Running":
            await c.set_phase(p, "Running", ready=True)
            out.append(p["metadata"]["name"])
    return out


async def test_statefulset_ordered_with_claims(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/statefulsets", NS, sts())
    order: list[str] = []
    for _ in range(300):
        names = [p["metadata"]["name"] for p in await c.pods("app=web")]
        # OrderedReady: never a second pod that is not Ready.
        pending = [p for p in await c.pods("app=web") if (p.get("status") or {}).get("phase") != "Running"]
        assert len(pending) <= 1, names
        order += await ready_all(c)
        s = await c.get("apps/statefulsets", "web")
        if s and (s.get("status") or {}).get("readyReplicas") == 3:
            break
        await asyncio.sleep(0.03)
    assert order == ["web-0", "web-1", "web-2"]
    claims, _ = await c.client.list("persistentvolumeclaims", NS)
    assert sorted(x["metadata"]["name"] for x in claims) == ["www-web-0", "www-web-1", "www-web-2"]
    assert claims[0]["metadata"]["labels"] == {"app": "web"}
    p1 = await c.get("pods", "web-1")
    assert p1 is not None
    assert p1["spec"]["hostname"] == "web-1" and p1["spec"]["subdomain"] == "nginx"
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}} in p1["spec"]["volumes"]
    labels = p1["metadata"]["labels"]
    assert labels["statefulset.kubernetes.io/pod-name"] == "web-1" and labels["apps.kubernetes.io/pod-index"] == "1"
    s = await c.get("apps/statefulsets", "web")
    assert s is not None
    st = s["status"]
    assert labels["controller-revision-hash"] == st["updateRevision"] == st["currentRevision"]
    assert st["replicas"] == st["currentReplicas"] == st["updatedReplicas"] == 3
    assert st["observedGeneration"] == s["metadata"]["generation"]
    revs, _ = await c.client.list("apps/controllerrevisions", NS)
    assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]] and revs[0]["revision"] == 1
    assert revs[0]["data"]["spec"]["template"]["$patch"] == "replace"

    # Scale 3 → 1: the highest ordinal goes first; claims stay.
    await c.client.patch("apps/statefulsets", NS, "web", {"spec": {"replicas": 1}})
    await eventually(lambda: _count_pods(c, 1), what="1 pod")

    async def deletes() -> list[str]:
        events, _ = await c.client.list("events", NS)
        return [e["message"] for e in sorted(events, key=lambda e: e["metadata"]["name"]) if e["reason"] == "SuccessfulDelete"]

    async def two_deletes() -> bool:
        return len(await deletes()) == 2
    await eventually(two_deletes, what="two delete events")   # the event follows the delete
    assert await deletes() == ["delete Pod web-2 in StatefulSet web successful", "delete Pod web-1 in StatefulSet web successful"]
    claims, _ = await c.client.list("persistentvolumeclaims", NS)
    assert len(claims) == 3


async def test_statefulset_partitioned_rolling_update_and_history(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/statefulsets", NS, sts(podManagementPolicy="Parallel"))

    async def all_ready() -> bool:
        await ready_all(c)
        s = await c.get("apps/statefulsets", "web")
        return bool(s and (s.get("status") or {}).get("readyReplicas") == 3)
    await eventually(all_ready, what="3 ready")
    first = (await c.get("apps/statefulsets", "web") or {})["status"]["updateRevision"]
    await c.client.patch("apps/statefulsets", NS, "web", {"spec": {
        "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}},
        "template": {"spec": {"containers": [{"name": "c", "image": "nginx:1.26"}]}}}})

    async def updated() -> bool:
        await ready_all(c)
        s = await c.get("apps/statefulsets", "web") or {}
        st = s.get("status") or {}
        return st.get("updatedReplicas") == 1 and st.get("readyReplicas") == 3
    await eventually(updated, what="web-2 updated")
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in await c.pods("app=web")}
    assert images == {"web-0": "nginx:1.25", "web-1": "nginx:1.25", "web-2": "nginx:1.26"}
    s = await c.get("apps/statefulsets", "web") or {}
    assert s["status"]["currentRevision"] == first != s["status"]["updateRevision"]
    revs, _ = await c.client.list("apps/controllerrevisions", NS)
    assert sorted(r["revision"] for r in revs) == [1, 2]

    # Partition 0 completes the rollout; the current revision follows.
    await c.client.patch("apps/statefulsets", NS, "web", {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}})

    async def complete() -> bool:
        await ready_all(c)
        st = (await c.get("apps/statefulsets", "web") or {}).get("status") or {}
        return st.get("updatedReplicas") == 3 and st.get("currentRevision") == st.get("updateRevision") and st.get("readyReplicas") == 3
    await eventually(complete, what="rollout complete")
    assert {p["spec"]["containers"][0]["image"] for p in await c.pods("app=web")} == {"nginx:1.26"}

    # Undo (what kubectl rollout undo sends): the old template again renumbers revision 1 as 3.
    old = next(r for r in revs if r["metadata"]["name"] == first)
    tmpl = {k: v for k, v in old["data"]["spec"]["template"].items() if k != "$patch"}
    await c.client.patch("apps/statefulsets", NS, "web", {"spec": {"template": tmpl}})

    async def renumbered() -> bool:
        rs, _ = await c.client.list("apps/controllerrevisions", NS)
        return {r["metadata"]["name"]: r["revision"] for r in rs}.get(first) == 3
    await eventually(renumbered, what="revision renumbered")


async def test_statefulset_retention_policy_when_deleted(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("apps/statefulsets", NS, sts(replicas=1, persistentVolumeClaimRetentionPolicy={
        "whenDeleted": "Delete", "whenScaled": "Retain"}))
    await eventually(lambda: _claims(c, 1), what="a claim")
    claims, _ = await c.client.list("persistentvolumeclaims", NS)
    refs = claims[0]["metadata"]["ownerReferences"]
    assert refs[0]["kind"] == "StatefulSet" and refs[0]["name"] == "web" and not refs[0]["controller"]


async def _claims(c: Cluster, n: int) -> bool:
    return len((await c.client.list("persistentvolumeclaims", NS))[0]) == n


async def _count_pods(c: Cluster, n: int, sel: str = "app=web") -> bool:
    await ready_all(c, sel)
    return len(await c.pods(sel)) == n


# ---- DaemonSet -----------------------------------------------------------------------------------
def ds(name: str = "agent", image: str = "busybox:1", **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name, "namespace": NS},
            "spec": {"selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}, **spec}}


async def add_node(c: Cluster, name: str, labels: dict[str, str] | None = None, **spec: Any) -> None:
    await c.client.create("nodes", "", {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
                                        "spec": spec})


def pinned(p: Obj) -> str:
    t = p["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(t) == 1 and t[0]["matchFields"][0]["key"] == "metadata.name"
    return str(t[0]["matchFields"][0]["values"][0])


async def test_daemonset_one_pod_per_eligible_node_and_rolling_update(cluster: Cluster) -> None:
    c = cluster
    await add_node(c, "n1")
    await add_node(c, "n2", unschedulable=True, taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    await add_node(c, "n3", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    await add_node(c, "n4", labels={"disk": "hdd"})
    await c.client.create("apps/daemonsets", NS, ds(template={"metadata": {"labels": {"app": "agent"}}, "spec": {
        "containers": [{"name": "c", "image": "busybox:1"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "NotIn", "values": ["hdd"]}]}]}}}}}))

    async def placed() -> bool:
        return sorted(pinned(p) for p in await c.pods("app=agent")) == ["n1", "n2"]
    await eventually(placed, what="pods on n1 and n2")
    p = (await c.pods("app=agent"))[0]
    keys = {(t["key"], t["effect"]) for t in p["spec"]["tolerations"]}
    assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys and ("node.kubernetes.io/not-ready", "NoExecute") in keys
    d = await c.get("apps/daemonsets", "agent") or {}
    h = p["metadata"]["labels"]["controller-revision-hash"]
    assert (await c.get("apps/controllerrevisions", f"agent-{h}")) is not None

    async def ready() -> bool:
        await ready_all(c, "app=agent")
        st = (await c.get("apps/daemonsets", "agent") or {}).get("status") or {}
        return st.get("desiredNumberScheduled") == 2 and st.get("numberReady") == 2 and st.get("numberAvailable") == 2
    await eventually(ready, what="ready")

    # A toleration adds n3; a label change removes n4 from the picture for good.
    await c.client.patch("apps/daemonsets", NS, "agent", {"spec": {"template": {"spec": {
        "tolerations": [{"key": "dedicated", "operator": "Exists"}]}}}})

    async def rolled() -> bool:
        await ready_all(c, "app=agent")
        pods = await c.pods("app=agent")
        st = (await c.get("apps/daemonsets", "agent") or {}).get("status") or {}
        return (sorted(pinned(p) for p in pods) == ["n1", "n2", "n3"] and st.get("updatedNumberScheduled") == 3
                and all(p["metadata"]["labels"]["controller-revision-hash"] != h for p in pods) and st.get("numberAvailable") == 3)
    await eventually(rolled, what="rolled to n1..n3")
    d = await c.get("apps/daemonsets", "agent") or {}
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]
    revs, _ = await c.client.list("apps/controllerrevisions", NS)
    assert sorted(r["revision"] for r in revs) == [1, 2]

    # The node goes away: so does its pod.
    await c.client.delete("nodes", "", "n3")

    async def two() -> bool:
        await ready_all(c, "app=agent")
        return sorted(pinned(p) for p in await c.pods("app=agent")) == ["n1", "n2"]
    await eventually(two, what="n3 pod removed")


# ---- CronJob (an injected clock moves time; `poke` stands for the timer firing) -----------------------
def cronjob(name: str = "hello", schedule: str = "*/1 * * * *", **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": NS},
            "spec": {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}},
                **spec}}


async def jobs_of(c: Cluster, cj: str = "hello") -> list[Obj]:
    items, _ = await c.client.list("batch/jobs", NS)
    return [j for j in items if any(r["name"] == cj for r in j["metadata"].get("ownerReferences") or [])]


async def advance_minute(c: Cluster, key: str = "default/hello") -> None:
    c.clock.offset += dt.timedelta(minutes=1)
    c.cron.poke(key)


async def finish_jobs(c: Cluster) -> None:
    for p in live(await c.pods()):
        await c.set_phase(p, "Succeeded", exit_code=0)


async def test_cronjob_runs_each_minute_keeps_history_and_status(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/cronjobs", NS, cronjob(successfulJobsHistoryLimit=2))
    for i in range(4):
        await advance_minute(c)

        async def started(n: int = i + 1) -> bool:
            await finish_jobs(c)
            js = await jobs_of(c)
            done = [j for j in js if cond(j, "Complete")]
            return len(done) >= min(n, 2) and len({j["metadata"]["name"] for j in js}) >= min(n, 2)
        await eventually(started, what=f"job {i + 1}")

    async def settled() -> bool:
        await finish_jobs(c)
        js = await jobs_of(c)
        cj = await c.get("batch/cronjobs", "hello") or {}
        return len(js) == 2 and all(cond(j, "Complete") for j in js) and "active" not in cj.get("status", {}) \
            and bool(cj["status"].get("lastSuccessfulTime"))
    await eventually(settled, what="2 finished jobs kept")
    cj = await c.get("batch/cronjobs", "hello") or {}
    assert cj["status"]["lastScheduleTime"]
    js = await jobs_of(c)
    assert all(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] for j in js)


async def test_cronjob_forbid_blocks_while_running_and_outage_starts_one(cluster: Cluster) -> None:
    c = cluster
    await c.client.create("batch/cronjobs", NS, cronjob(concurrencyPolicy="Forbid"))
    await advance_minute(c)
    await eventually(lambda: _count_jobs(c, 1), what="first job")
    await advance_minute(c)
    await asyncio.sleep(0.3)
    assert len(await jobs_of(c)) == 1   # the first one still runs
    await eventually(lambda: _event(c, "JobAlreadyActive"), what="JobAlreadyActive event")
    # Once it finishes, the run Forbid held back starts (no startingDeadlineSeconds: still due).
    await eventually(lambda: _njobs(c, 2), what="the delayed run")
    await eventually(lambda: _all_done(c), what="both jobs complete")
    # An "outage" of five minutes: one job, not five.
    c.clock.offset += dt.timedelta(minutes=5)
    c.cron.poke("default/hello")
    await eventually(lambda: _njobs(c, 3), what="one more job")
    await asyncio.sleep(0.3)
    assert len(await jobs_of(c)) == 3


async def _njobs(c: Cluster, n: int) -> bool:
    await finish_jobs(c)
    return len(await jobs_of(c)) == n


async def _all_done(c: Cluster) -> bool:
    await finish_jobs(c)
    return all(cond(j, "Complete") for j in await jobs_of(c))


async def _event(c: Cluster, reason: str) -> bool:
    events, _ = await c.client.list("events", NS)
    return any(e["reason"] == reason for e in events)


async def _count_jobs(c: Cluster, n: int) -> bool:
    return len(await jobs_of(c)) == n


async def test_idle_controllers_write_nothing(cluster: Cluster) -> None:
    c = cluster
    await add_node(c, "n1")
    await c.client.create("apps/statefulsets", NS, sts(replicas=2, podManagementPolicy="Parallel"))
    await c.client.create("apps/daemonsets", NS, ds())
    await c.client.create("batch/jobs", NS, job(completions=2, parallelism=2))
    await c.client.create("batch/cronjobs", NS, cronjob(schedule="0 3 1 1 *"))

    async def settled() -> bool:
        await ready_all(c, "app=web")
        await ready_all(c, "app=agent")
        for p in live(await c.pods("job-name=pi")):
            await c.set_phase(p, "Succeeded", exit_code=0)
        s = await c.get("apps/statefulsets", "web") or {}
        d = await c.get("apps/daemonsets", "agent") or {}
        return ((s.get("status") or {}).get("readyReplicas") == 2 and (d.get("status") or {}).get("numberReady") == 1
                and await _cond(c, "pi", "Complete") and await _no_finalizers(c))
    await eventually(settled, what="all settled")
    await asyncio.sleep(1.0)
    rev = c.store.revision
    await asyncio.sleep(2.0)
    assert c.store.revision == rev
