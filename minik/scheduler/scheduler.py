"""The scheduler loop: pending pods (no spec.nodeName, our schedulerName) → filter nodes → bind.

Planning is pure (`choose_node`); the loop reads the shared pod and node caches, binds and records
events (through the shared recorder, so repeats aggregate) and conditions.
Unschedulable pods get PodScheduled=False with kube-scheduler's summary message
("0/1 nodes are available: 1 Insufficient cpu.") and a FailedScheduling event; they are retried
whenever pods or nodes change, and every few seconds.
Neighbours: `minik.machinery.informers` (shared pods/nodes caches), `minik.machinery.events`;
writes through `minik.client.Client`; plugins in `minik.scheduler.plugins`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from minik.client import Client, ClientError, Obj
from minik.machinery.events import EventRecorder
from minik.machinery.informers import NODE_INDEX, InformerFactory
from minik.machinery import storage as sto
from minik.machinery.informer import Informer
from minik.scheduler.plugins import FILTERS
from minik.scheduler.plugins.volumebinding import unbound_delayed_claims
from minik.scheduler.state import ClusterState

log = logging.getLogger("minik.scheduler")

SCHEDULER_NAME = "default-scheduler"
RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Decision:
    node: str                 # "" when no node fits
    message: str = ""


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def choose_node(pod: Obj, nodes: list[Obj], state: ClusterState) -> Decision:
    """Filter every node; among the fitting ones prefer the least loaded (then by name)."""
    reasons: Counter[str] = Counter()
    fits: list[Obj] = []
    for node in nodes:
        if not node_ready(node):
            reasons["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"] += 1
            continue
        for _, f in FILTERS:
            why = f(pod, node, state)
            if why:
                reasons[why] += 1
                break
        else:
            fits.append(node)
    if fits:
        best = min(fits, key=lambda n: (len(state.pods_by_node.get(n["metadata"]["name"], [])), n["metadata"]["name"]))
        return Decision(best["metadata"]["name"])
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: kv[0]))
    msg = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
    return Decision("", msg)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def priority(pod: Obj) -> int:
    """spec.priority as a number; a malformed stored value counts as 0 rather than stopping the loop."""
    v = (pod.get("spec") or {}).get("priority")
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def is_pending(pod: Obj) -> bool:
    """Ours to place: unbound, for this scheduler, not terminating, not finished."""
    spec = pod.get("spec")
    if not isinstance(spec, dict) or spec.get("nodeName"):
        return False
    status = pod.get("status")
    phase = status.get("phase") if isinstance(status, dict) else None
    return (spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
            and not (pod.get("metadata") or {}).get("deletionTimestamp") and phase in (None, "Pending"))


def pod_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m.get("name", ""), "uid": m.get("uid", ""),
            "apiVersion": "v1", "resourceVersion": m.get("resourceVersion", "")}


class InformerVolumes:
    """The volume binding filter's view of the shared PVC, PV and StorageClass caches."""

    def __init__(self, claims: Informer, volumes: Informer, classes: Informer) -> None:
        self._claims, self._volumes, self._classes = claims, volumes, classes

    def claim(self, namespace: str, name: str) -> Obj | None:
        return self._claims.get(namespace, name)

    def volume(self, name: str) -> Obj | None:
        return self._volumes.get("", name)

    def storage_class(self, name: str) -> Obj | None:
        return self._classes.get("", name)

    def volumes(self) -> list[Obj]:
        return self._volumes.list()


@dataclass(frozen=True, slots=True)
class _Assumed:
    node: str
    pod: Obj


class Scheduler:
    """Reads pods and nodes from the shared informers (pods by node through the node index, the
    pending ones under the "" node), so a wake-up costs the pending pods, not a list of every pod.
    A pod just bound is "assumed" on its node until the cache shows the binding (kube-scheduler's
    assume cache), so the next round neither binds it twice nor forgets its resources. A pod whose
    scheduling fails with an unexpected error (a malformed stored object) gets a Warning event and
    is retried with exponential back-off; the other pods go on."""

    def __init__(self, client: Client, informers: InformerFactory | None = None,
                 recorder: EventRecorder | None = None, retry_seconds: float = RETRY_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.client, self.retry_seconds, self.clock = client, retry_seconds, clock
        self._own_factory = informers is None
        self.factory = informers or InformerFactory(client)
        self.pods = self.factory.informer("pods")
        self.nodes = self.factory.informer("nodes")
        claims, volumes = self.factory.informer("persistentvolumeclaims"), self.factory.informer("persistentvolumes")
        self.volumes = InformerVolumes(claims, volumes, self.factory.informer("storage.k8s.io/storageclasses"))
        self.recorder = recorder or EventRecorder(client, SCHEDULER_NAME)
        self._wake = asyncio.Event()
        self._assumed: dict[str, _Assumed] = {}
        self._backoff: dict[str, tuple[int, float]] = {}   # pod uid → (failures, retry not before)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(lambda old, new: self._wake.set())
        # A claim bound or a volume provisioned may let a waiting pod go to its node.
        claims.add_handler(lambda old, new: self._wake.set())
        volumes.add_handler(lambda old, new: self._wake.set())

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        uid = str(((obj or {}).get("metadata") or {}).get("uid", ""))
        if new is None or ((new.get("spec") or {}).get("nodeName") if isinstance(new.get("spec"), dict) else True):
            self._assumed.pop(uid, None)
        if new is None or (old is not None and old.get("spec") != new.get("spec")):
            self._backoff.pop(uid, None)
        self._wake.set()

    async def run(self) -> None:
        if self._own_factory:
            self.factory.start()
        try:
            await self.factory.wait_synced("pods", "nodes", "persistentvolumeclaims", "persistentvolumes",
                                           "storage.k8s.io/storageclasses")
            while True:
                self._wake.clear()
                await self.schedule_pending()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.retry_seconds)
        finally:
            if self._own_factory:
                await self.factory.stop()

    async def schedule_pending(self) -> None:
        now = self.clock()
        pending = [p for p in self.pods.by_index(NODE_INDEX, "") if is_pending(p)
                   and str(p["metadata"].get("uid", "")) not in self._assumed
                   and self._backoff.get(str(p["metadata"].get("uid", "")), (0, 0.0))[1] <= now]
        if not pending:
            return
        nodes = self.nodes.list()
        state = ClusterState(volumes=self.volumes)
        for n in nodes:
            name = (n.get("metadata") or {}).get("name", "")
            state.pods_by_node[name] = self.pods.by_index(NODE_INDEX, name)
        for a in self._assumed.values():
            state.pods_by_node.setdefault(a.node, []).append(a.pod)
        for pod in sorted(pending, key=lambda p: (-priority(p), str(p["metadata"].get("creationTimestamp", "")))):
            try:
                await self._schedule_one(pod, nodes, state)
            except Exception as e:  # one malformed pod must not stop the others
                self._failed(pod, e)
                await self.recorder.write(pod_ref(pod), "Warning", "FailedScheduling",
                                          f"Error scheduling pod: {type(e).__name__}: {e}")

    def _failed(self, pod: Obj, e: Exception) -> None:
        m = pod["metadata"]
        uid = str(m.get("uid", ""))
        n = self._backoff.get(uid, (0, 0.0))[0] + 1
        delay = min(0.5 * 2 ** min(n - 1, 10), 60.0)
        self._backoff[uid] = (n, self.clock() + delay)
        log.warning("scheduling %s/%s failed (retrying in %.1fs): %s: %s", m.get("namespace"), m.get("name"),
                    delay, type(e).__name__, e)

    async def _schedule_one(self, pod: Obj, nodes: list[Obj], state: ClusterState) -> None:
        d = choose_node(pod, nodes, state)
        m = pod["metadata"]
        if d.node and await self._claims_waiting(pod, d.node):
            return
        if d.node:
            try:
                await self.client.patch("pods", m["namespace"], m["name"], {"target": {"name": d.node}}, subresource="binding",
                                        field_manager="default-scheduler")
            except ClientError as e:
                log.debug("binding %s/%s: %s", m["namespace"], m["name"], e.message)
                return
            self._assumed[str(m.get("uid", ""))] = _Assumed(d.node, pod)
            self._backoff.pop(str(m.get("uid", "")), None)
            state.pods_by_node.setdefault(d.node, []).append(pod)
            await self.recorder.write(pod_ref(pod), "Normal", "Scheduled",
                                      f"Successfully assigned {m['namespace']}/{m['name']} to {d.node}")
        else:
            await self._unschedulable(pod, d.message)

    async def _claims_waiting(self, pod: Obj, node: str) -> bool:
        """WaitForFirstConsumer: record the chosen node on the pod's unbound claims (the
        provisioner or the binder acts on it) and bind the pod only once they are bound
        (kube-scheduler's VolumeBinding PreBind); a claim's change wakes the loop again."""
        waiting = unbound_delayed_claims(pod, self.volumes)
        for pvc in waiting:
            m = pvc["metadata"]
            if sto.annotations_of(pvc).get(sto.ANN_SELECTED_NODE) == node:
                continue
            try:
                await self.client.patch("persistentvolumeclaims", m.get("namespace", ""), m.get("name", ""),
                                        {"metadata": {"annotations": {sto.ANN_SELECTED_NODE: node}}},
                                        field_manager=SCHEDULER_NAME)
            except ClientError as e:
                log.debug("selected node of claim %s/%s: %s", m.get("namespace"), m.get("name"), e.message)
        return bool(waiting)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        m = pod["metadata"]
        conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
        old = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if old and old.get("message") == message and old.get("status") == "False":
            return
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                      "lastProbeTime": None, "lastTransitionTime": _now()})
        try:
            await self.client.patch("pods", m["namespace"], m["name"], {"status": {"conditions": conds}}, subresource="status",
                                    field_manager="default-scheduler")
        except ClientError as e:
            log.debug("status of %s/%s: %s", m["namespace"], m["name"], e.message)
        await self.recorder.write(pod_ref(pod), "Warning", "FailedScheduling", message)
