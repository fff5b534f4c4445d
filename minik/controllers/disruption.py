"""The disruption controller: PodDisruptionBudget status from the shared informers.

For every budget (kube-controller-manager's DisruptionController):
- pods: the budget's namespace, matching its selector (policy/v1: `{}` selects every pod);
- expectedPods and desiredHealthy: `minAvailable: N` → expected = the matching pods, desired = N;
  `maxUnavailable` or a percentage `minAvailable` → expected = the replicas their controllers
  ask for (Deployment through its ReplicaSet, ReplicaSet, StatefulSet, ReplicationController),
  desired = expected − maxUnavailable (percentages rounded up) or ⌈minAvailable% × expected⌉; a
  matching pod without a controller makes the budget fail safe (no disruption, SyncFailed);
- currentHealthy: matching pods Ready and not terminating, minus those recorded in
  `status.disruptedPods` by the eviction subresource in the last 2 minutes that are still there;
- disruptionsAllowed = max(0, currentHealthy − desiredHealthy); condition `DisruptionAllowed`
  (SufficientPods / InsufficientPods), observedGeneration.
The status is written only when it changes. `plan` is pure.
Neighbours: `minik.api.eviction` spends `disruptionsAllowed`; built by `minik.daemon` on the
shared informers.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from minik.apis.selectors import LabelSelector
from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller, controller_ref
from minik.machinery.events import EventRecorder
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.pods import pod_ready
from minik.machinery.timestamps import parse_time
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.disruption")

COMPONENT = "disruption-controller"
PDBS = "policy/poddisruptionbudgets"
DELETION_TIMEOUT = dt.timedelta(minutes=2)
# Scalable owners: store key by kind.
SCALABLE = {"ReplicaSet": "apps/replicasets", "Deployment": "apps/deployments", "StatefulSet": "apps/statefulsets",
            "ReplicationController": "replicationcontrollers"}


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def selected_pods(pdb: Obj, pods: Sequence[Obj]) -> list[Obj]:
    sel = _d(pdb.get("spec")).get("selector")
    try:
        selector = LabelSelector.from_api(sel if isinstance(sel, dict) else None)
    except Exception:  # malformed: selects nothing
        return []
    return [p for p in pods if selector.matches(_d(_d(p.get("metadata")).get("labels")))]


def _int_or_percent(v: Any, total: int, round_up: bool) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.endswith("%"):
        try:
            pct = int(v[:-1])
        except ValueError:
            return None
        x = pct * total / 100
        return math.ceil(x) if round_up else math.floor(x)
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return None
    return None


@dataclass(frozen=True, slots=True)
class Plan:
    status: dict[str, Any]
    recheck_after: float | None = None     # seconds until a disrupted-pod entry expires
    event: tuple[str, str, str] | None = None   # (type, reason, message) kube would record


def plan(pdb: Obj, pods: Sequence[Obj], scale_of: Callable[[Obj], tuple[str, int] | None], now: dt.datetime) -> Plan:
    spec, status, m = _d(pdb.get("spec")), _d(pdb.get("status")), _d(pdb.get("metadata"))
    matched = selected_pods(pdb, pods)
    min_avail, max_unavail = spec.get("minAvailable"), spec.get("maxUnavailable")
    failure = ""
    expected = desired = 0
    if max_unavail is not None or (isinstance(min_avail, str) and min_avail.endswith("%")):
        controllers: dict[str, int] = {}
        for p in matched:
            sc = scale_of(p)
            if sc is None:
                failure = f'found no controller ref for pod "{_d(p.get("metadata")).get("name", "")}"'
                break
            controllers[sc[0]] = sc[1]
        expected = sum(controllers.values())
        if max_unavail is not None:
            mu = _int_or_percent(max_unavail, expected, True)
            desired = max(0, expected - (mu or 0))
        else:
            desired = _int_or_percent(min_avail, expected, True) or 0
    elif min_avail is not None:
        expected = len(matched)
        desired = _int_or_percent(min_avail, expected, True) or 0
    # disruptedPods: evictions the apiserver granted whose pods are not yet seen terminating.
    disrupted: dict[str, str] = {}
    recheck: float | None = None
    names = {str(_d(p.get("metadata")).get("name", "")): p for p in matched}
    for name, ts in _d(status.get("disruptedPods")).items():
        t = parse_time(ts)
        victim = names.get(name)
        if t is None or victim is None or _d(victim.get("metadata")).get("deletionTimestamp"):
            continue
        left = (t + DELETION_TIMEOUT - now).total_seconds()
        if left <= 0:
            continue
        disrupted[name] = str(ts)
        recheck = left if recheck is None else min(recheck, left)
    healthy = sum(1 for n, p in names.items() if pod_ready(p) and not _d(p.get("metadata")).get("deletionTimestamp")
                  and n not in disrupted)
    allowed = 0 if failure or expected <= 0 else max(0, healthy - desired)
    prev = {c.get("type"): c for c in status.get("conditions") or [] if isinstance(c, dict)}.get("DisruptionAllowed") or {}
    if failure:
        cond_status, reason, message = "False", "SyncFailed", failure
    elif allowed > 0:
        cond_status, reason, message = "True", "SufficientPods", ""
    else:
        cond_status, reason, message = "False", "InsufficientPods", ""
    transition = prev.get("lastTransitionTime") if prev.get("status") == cond_status else None
    cond = {"type": "DisruptionAllowed", "status": cond_status, "observedGeneration": int(m.get("generation") or 1),
            "lastTransitionTime": transition or now.strftime("%Y-%m-%dT%H:%M:%SZ"), "reason": reason, "message": message}
    new = {"observedGeneration": int(m.get("generation") or 1), "disruptionsAllowed": allowed, "currentHealthy": healthy,
           "desiredHealthy": desired, "expectedPods": expected, "conditions": [cond]}
    if disrupted:
        new["disruptedPods"] = disrupted
    event = None
    if failure:
        event = ("Warning", "CalculateExpectedPodCountFailed", f"Failed to calculate the number of expected pods: {failure}")
    elif not matched:
        event = ("Normal", "NoPods", "No matching pods found")
    return Plan(new, recheck, event)


def status_differs(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    keys = set(old) | set(new)
    return any(old.get(k) != new.get(k) for k in keys)


class DisruptionController:
    def __init__(self, client: Client, informers: InformerFactory, run_informers: bool = False, recorder: EventRecorder | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.timezone.utc)) -> None:
        self.client, self.clock = client, clock
        self.pdbs: Informer = informers.informer(PDBS)
        self.pods: Informer = informers.informer("pods")
        self.owners: dict[str, Informer] = {k: informers.informer(v) for k, v in SCALABLE.items()}
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self._told: dict[str, tuple[str, str, str] | None] = {}     # uid → last event (said once)
        self.queue = WorkQueue()
        self.pdbs.add_handler(self._on_pdb)
        self.pods.add_handler(self._on_pod)
        for inf in self.owners.values():
            inf.add_handler(self._on_owner)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.pdbs, self.pods, *self.owners.values()],
                                     workers=1, run_informers=run_informers)

    def _on_pdb(self, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            if old is not None:
                self._told.pop(str(_d(old.get("metadata")).get("uid", "")), None)
            return
        self.queue.add(object_key(new))

    def _enqueue_namespace(self, ns: str) -> None:
        for pdb in self.pdbs.list(ns):
            self.queue.add(object_key(pdb))

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self._enqueue_namespace(str(_d(obj.get("metadata")).get("namespace", "")))

    def _on_owner(self, old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and _d(old.get("spec")).get("replicas") == _d(new.get("spec")).get("replicas"):
            return
        obj = new if new is not None else old
        if obj is not None:
            self._enqueue_namespace(str(_d(obj.get("metadata")).get("namespace", "")))

    def _scale_of(self, pod: Obj) -> tuple[str, int] | None:
        """(controller uid, replicas) of the workload owning `pod` (a Deployment for its ReplicaSets)."""
        ns = str(_d(pod.get("metadata")).get("namespace", ""))
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") not in self.owners:
            return None
        owner = self.owners[str(ref["kind"])].get(ns, str(ref.get("name", "")))
        if owner is None or _d(owner.get("metadata")).get("uid") != ref.get("uid"):
            return None
        if ref.get("kind") == "ReplicaSet":
            up = controller_ref(owner)
            if up is not None and up.get("kind") == "Deployment":
                dep = self.owners["Deployment"].get(ns, str(up.get("name", "")))
                if dep is not None and _d(dep.get("metadata")).get("uid") == up.get("uid"):
                    owner = dep
        replicas = _d(owner.get("spec")).get("replicas")
        return str(_d(owner.get("metadata")).get("uid", "")), int(replicas) if isinstance(replicas, int) else 1

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        pdb = self.pdbs.get(ns, name)
        if pdb is None or _d(pdb.get("metadata")).get("deletionTimestamp"):
            return None
        p = plan(pdb, self.pods.list(ns), self._scale_of, self.clock())
        uid = str(_d(pdb.get("metadata")).get("uid", ""))
        if p.event != self._told.get(uid):
            self._told[uid] = p.event
            if p.event is not None:
                await self.recorder.event(pdb, *p.event)
        old = _d(pdb.get("status"))
        if status_differs(_strip_times(old), _strip_times(p.status)):
            body = dict(p.status)
            if "disruptedPods" not in body and "disruptedPods" in old:
                body["disruptedPods"] = None    # merge patch: null removes the recorded evictions
            try:
                await self.client.patch(PDBS, ns, name, {"metadata": {"resourceVersion": pdb["metadata"].get("resourceVersion")},
                                                         "status": body},
                                        subresource="status", field_manager=COMPONENT)
            except ClientError as e:
                if not e.not_found:
                    raise
        return p.recheck_after


def _strip_times(status: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(status)
    out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in status.get("conditions") or []
                         if isinstance(c, dict)]
    return out
