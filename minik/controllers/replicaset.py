"""ReplicaSet controller: keep `spec.replicas` active pods matching the selector (Kubernetes 1.32).

A sync (`ReplicaSetController.sync`) reads the ReplicaSet and its namespace's pods from the
informer caches, claims pods (adopts matching orphans, releases owned pods that stopped matching),
creates pods from `spec.template` (generateName `<rs>-`, controller ownerReference) or deletes the
pods Kubernetes would delete first (unscheduled, pending, not ready, doubled-up on a node, newest),
then writes `status` (replicas, fullyLabeledReplicas, readyReplicas, availableReplicas with
minReadySeconds, observedGeneration) only when it changed. Terminating pods (deletionTimestamp)
and finished pods don't count. `Expectations` keep a sync on a stale cache from acting twice.
Everything that decides is a pure function below the controller, unit-tested with tables.
Neighbours: `minik.machinery` (shared informers, queue, controller loop, ownership, pod helpers,
events); the garbage collector deletes pods once their ReplicaSet is gone.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery import ownership
from minik.machinery import pods as podutil
from minik.machinery.controller import Controller, Expectations, controller_ref, owner_key, report_failures
from minik.machinery.events import Clock, EventRecorder, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.ownership import Claim
from minik.machinery.pods import available_in, is_active, pod_ready, ready_condition
from minik.machinery.workqueue import WorkQueue

__all__ = ["Claim", "ReplicaSetController", "available_in", "claim_pods", "compute_status", "is_active",
           "next_available_check", "pod_from_template", "pod_ready", "pods_to_delete", "ready_condition",
           "slow_start_batches"]

log = logging.getLogger("minik.controllers.replicaset")

COMPONENT = "replicaset-controller"
RS_API_VERSION, RS_KIND = "apps/v1", "ReplicaSet"
# Kubernetes' burstReplicas: at most this many creations/deletions per sync.
BURST_REPLICAS = 500
PHASE_ORDER = {"Pending": 0, "Unknown": 1, "Running": 2}


# ---- pure helpers --------------------------------------------------------------------------------
def claim_pods(owner: Obj, selector: LabelSelector, pods: list[Obj]) -> Claim:
    """ControllerRefManager.ClaimPods: a deleting owner adopts nothing; deleting pods are not adopted."""
    return ownership.claim(owner, selector, pods)


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Pods sorted so the ones Kubernetes deletes first come first (ActivePodsWithRanks):
    unscheduled, then Pending < Unknown < Running, not ready, more pods of this set on the same
    node, ready more recently, more restarts, created more recently."""
    per_node: dict[str, int] = {}
    for p in pods:
        node = (p.get("spec") or {}).get("nodeName") or ""
        if node:
            per_node[node] = per_node.get(node, 0) + 1

    def key(p: Obj) -> tuple[Any, ...]:
        spec, status = p.get("spec") or {}, p.get("status") or {}
        node = spec.get("nodeName") or ""
        ready = pod_ready(p)
        rc = ready_condition(p)
        ready_at = (rc or {}).get("lastTransitionTime") or "" if ready else ""
        restarts = sum(int(cs.get("restartCount") or 0) for cs in status.get("containerStatuses") or [])
        created = p["metadata"].get("creationTimestamp") or ""
        return (bool(node), PHASE_ORDER.get(status.get("phase") or "Pending", 0), ready,
                -per_node.get(node, 0), _desc(ready_at), -restarts, _desc(created), p["metadata"].get("name", ""))

    return sorted(pods, key=key)


def _desc(ts: str) -> tuple[int, ...]:
    # RFC 3339 timestamps sort as strings; negate code points so newer sorts first.
    return tuple(-ord(ch) for ch in ts)


def pods_to_delete(pods: list[Obj], count: int) -> list[Obj]:
    return deletion_order(pods)[:max(0, count)]


def pod_from_template(rs: Obj) -> Obj:
    return podutil.pod_from_template(rs, RS_API_VERSION, RS_KIND)


def compute_status(rs: Obj, pods: list[Obj], now: dt.datetime) -> Obj:
    """The ReplicaSet status for its active owned pods; zero counts are omitted as Kubernetes does."""
    spec = rs.get("spec") or {}
    tmpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    labeled = ready = available = 0
    for p in pods:
        labels = p["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in tmpl_labels.items()):
            labeled += 1
        if pod_ready(p):
            ready += 1
            if available_in(p, min_ready, now) == 0:
                available += 1
    status: Obj = {"replicas": len(pods)}
    for k, v in (("fullyLabeledReplicas", labeled), ("readyReplicas", ready), ("availableReplicas", available)):
        if v:
            status[k] = v
    gen = rs["metadata"].get("generation")
    if gen is not None:
        status["observedGeneration"] = gen
    old = rs.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


def next_available_check(pods: list[Obj], min_ready_seconds: int, now: dt.datetime) -> float | None:
    """When a ready pod will cross minReadySeconds, so the status can be recomputed then."""
    waits = [w for p in pods if (w := available_in(p, min_ready_seconds, now)) is not None and w > 0]
    return min(waits) + 0.05 if waits else None


def slow_start_batches(total: int, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, … summing to `total` (controller.slowStartBatch)."""
    out: list[int] = []
    size, left = initial, total
    while left > 0:
        n = min(size, left)
        out.append(n)
        left -= n
        size *= 2
    return out


# ---- the controller ------------------------------------------------------------------------------
class ReplicaSetController:
    def __init__(self, client: Client, workers: int = 2, recorder: EventRecorder | None = None,
                 clock: Clock = utcnow, informers: InformerFactory | None = None) -> None:
        self.client, self.clock = client, clock
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        # Without a factory from the daemon the controller owns private informers and runs them.
        factory = informers or InformerFactory(client)
        self.rs = factory.informer("apps/replicasets")
        self.pods = factory.informer("pods")
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.rs.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.rs, self.pods], workers,
                                     run_informers=informers is None, failed=report_failures(self.rs, self.recorder.event))

    async def run(self) -> None:
        await self.controller.run()

    # ---- handlers: compute keys, enqueue --------------------------------------------------------
    def _on_rs(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if new is None:
            self.expectations.forget(object_key(obj))
        self.queue.add(object_key(obj))

    def _owner_key(self, pod: Obj) -> str | None:
        return owner_key(pod, RS_KIND)

    def _enqueue_matching(self, pod: Obj) -> None:
        ns = pod["metadata"].get("namespace", "")
        labels = pod["metadata"].get("labels") or {}
        for rs in self.rs.list(ns):
            try:
                if LabelSelector.from_api((rs.get("spec") or {}).get("selector")).matches(labels):
                    self.queue.add(object_key(rs))
            except SelectorError:
                continue

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            assert old is not None
            key = self._owner_key(old)
            if key:
                self.expectations.deletion_observed(key, old["metadata"]["name"])
                self.queue.add(key)
            return
        key = self._owner_key(new)
        if old is None:
            if key:
                if new["metadata"].get("deletionTimestamp"):
                    self.expectations.deletion_observed(key, new["metadata"]["name"])
                else:
                    self.expectations.creation_observed(key)
                self.queue.add(key)
            else:
                self._enqueue_matching(new)
            return
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp") and key:
            self.expectations.deletion_observed(key, new["metadata"]["name"])
        old_key = self._owner_key(old)
        if old_key and old_key != key:
            self.queue.add(old_key)
        if key:
            self.queue.add(key)
        elif (old["metadata"].get("labels") != new["metadata"].get("labels")) or old_key:
            self._enqueue_matching(new)

    # ---- sync -----------------------------------------------------------------------------------
    async def sync(self, key: str) -> float | None:
        rs = self.rs.get_by_key(key)
        if rs is None:
            self.expectations.forget(key)
            return None
        ns, name = split_key(key)
        try:
            selector = LabelSelector.from_api((rs.get("spec") or {}).get("selector"))
        except SelectorError as e:
            log.warning("replicaset %s: invalid selector: %s", key, e)
            return None
        owned = await ownership.claim_and_write(self.client, "pods", rs, RS_API_VERSION, RS_KIND, selector,
                                                self._candidates(rs, ns), COMPONENT)
        active = [p for p in owned if is_active(p)]
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            await self._manage(rs, key, active)
        now = self.clock()
        status = compute_status(rs, active, now)
        if status != (rs.get("status") or {}):
            new = copy.deepcopy(rs)
            new["status"] = status
            await self.client.update("apps/replicasets", ns, name, new, subresource="status", field_manager=COMPONENT)
        return next_available_check(active, int((rs.get("spec") or {}).get("minReadySeconds") or 0), now)

    def _candidates(self, rs: Obj, ns: str) -> list[Obj]:
        """Pods this ReplicaSet may own: its own (by the controller index) and the namespace's
        orphans; pods of other controllers are never looked at."""
        own = self.pods.by_index(CONTROLLER_INDEX, rs["metadata"].get("uid", ""))
        orphans = [p for p in self.pods.list(ns) if controller_ref(p) is None]
        return own + orphans

    async def _manage(self, rs: Obj, key: str, active: list[Obj]) -> None:
        desired = int((rs.get("spec") or {}).get("replicas") or 0)
        diff = len(active) - desired
        if diff < 0:
            await self._create(rs, key, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            await self._delete(rs, key, pods_to_delete(active, min(diff, BURST_REPLICAS)))

    async def _create(self, rs: Obj, key: str, count: int) -> None:
        # Expect before acting: the informer may see a new pod before create() returns.
        self.expectations.expect(key, adds=count)
        ns = rs["metadata"].get("namespace", "")
        created = 0
        failure: ClientError | None = None
        for size in slow_start_batches(count):
            results = await asyncio.gather(*(self.client.create("pods", ns, pod_from_template(rs), field_manager=COMPONENT)
                                             for _ in range(size)), return_exceptions=True)
            for r in results:
                if isinstance(r, ClientError):
                    failure = r
                elif isinstance(r, BaseException):
                    raise r
                else:
                    created += 1
                    await self.recorder.event(rs, "Normal", "SuccessfulCreate", f"Created pod: {r['metadata']['name']}")
            if failure is not None:
                break
        if failure is not None:
            # Creations never attempted or refused will not be observed.
            self.expectations.lower(key, adds=count - created)
            await self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {failure.message}")
            raise failure

    async def _delete(self, rs: Obj, key: str, victims: list[Obj]) -> None:
        names = [p["metadata"]["name"] for p in victims]
        self.expectations.expect(key, deletes=names)
        ns = rs["metadata"].get("namespace", "")
        failure: ClientError | None = None
        for pod in victims:
            name = pod["metadata"]["name"]
            try:
                if await self.client.delete("pods", ns, name, precondition_uid=pod["metadata"].get("uid", "")) is None:
                    self.expectations.lower(key, deletes=[name])  # already gone
                    continue
            except ClientError as e:
                self.expectations.lower(key, deletes=[name])
                if not e.not_found:
                    failure = e
                    await self.recorder.event(rs, "Warning", "FailedDelete", f"Error deleting: {e.message}")
                continue
            await self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
        if failure is not None:
            raise failure
