"""DaemonSet controller: one pod on every eligible node (Kubernetes 1.32 apps/v1).

A node is eligible when the pod template (with the tolerations Kubernetes adds to every daemon
pod: not-ready and unreachable NoExecute, disk/memory/pid-pressure and unschedulable NoSchedule,
network-unavailable for hostNetwork pods) fits it: nodeSelector, required node affinity, and no
untolerated NoSchedule/NoExecute taint. Each pod is pinned to its node the way kube does it — a
required node affinity `matchFields metadata.name In [node]` — and bound by the scheduler.
A sync makes sure a ControllerRevision exists for the template (shared helpers in
`minik.machinery.revisions`; pods carry its hash as `controller-revision-hash`), then the pure
`plan()` decides: create missing pods, delete failed pods (recreated next sync), extra pods and
pods on nodes that are no longer eligible; RollingUpdate replaces old pods with at most
maxUnavailable nodes unavailable, or with maxSurge starts the new pod first and deletes the old
one once the new is available; OnDelete replaces only pods the user deletes. Status:
desired/current/updated NumberScheduled, numberMisscheduled, numberReady, numberAvailable,
numberUnavailable, observedGeneration.
Neighbours: `minik.machinery` (shared informers, expectations, revisions, events, ownership).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
from dataclasses import dataclass
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery import ownership
from minik.machinery import pods as podutil
from minik.machinery import revisions as rev
from minik.machinery.controller import Controller, Expectations, controller_ref, owner_key, report_failures
from minik.machinery.events import Clock, EventRecorder, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.daemonset")

COMPONENT = "daemonset-controller"
API_VERSION, KIND = "apps/v1", "DaemonSet"
GENERATION_LABEL = "pod-template-generation"

DEFAULT_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION: Obj = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"}


def _meta(o: Obj) -> Obj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(o: Obj) -> Obj:
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def _int(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


# ---- pure helpers: placement --------------------------------------------------------------------
def with_daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """AddOrUpdateDaemonPodTolerations: the template's tolerations plus kube's defaults."""
    tols = [t for t in pod_spec.get("tolerations") or [] if isinstance(t, dict)]
    extra = list(DEFAULT_TOLERATIONS) + ([HOST_NETWORK_TOLERATION] if pod_spec.get("hostNetwork") else [])
    for t in extra:
        if not any(x.get("key") == t["key"] and x.get("effect") == t["effect"] and x.get("operator", "Equal") == "Exists"
                   for x in tols):
            tols.append(dict(t))
    return tols


def tolerates(tol: Obj, taint: Obj) -> bool:
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    if not tol.get("key"):
        return op == "Exists"
    if tol["key"] != taint.get("key"):
        return False
    return op == "Exists" or (tol.get("value") or "") == (taint.get("value") or "")


def _expr_ok(expr: Obj, values_of: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return key in values_of and values_of[key] in values
    if op == "NotIn":
        return key not in values_of or values_of[key] not in values
    if op == "Exists":
        return key in values_of
    if op == "DoesNotExist":
        return key not in values_of
    if op in ("Gt", "Lt"):
        try:
            have, want = int(values_of[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_fits(pod_spec: Obj, node: Obj) -> bool:
    """Whether a daemon pod should run on `node` (nodeSelector, required node affinity, taints)."""
    labels = _meta(node).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = [t for t in req.get("nodeSelectorTerms") or [] if isinstance(t, dict)]
    fields = {"metadata.name": _meta(node).get("name", "")}
    if terms and not any(all(_expr_ok(e, labels) for e in t.get("matchExpressions") or [])
                         and all(_expr_ok(e, fields) for e in t.get("matchFields") or []) for t in terms):
        return False
    tols = with_daemon_tolerations(pod_spec)
    for taint in _spec(node).get("taints") or []:
        if isinstance(taint, dict) and taint.get("effect") in ("NoSchedule", "NoExecute"):
            if not any(tolerates(t, taint) for t in tols):
                return False
    return True


def target_node(pod: Obj) -> str:
    """The node a daemon pod is for: its nodeName, or the node its affinity pins it to."""
    if _spec(pod).get("nodeName"):
        return str(_spec(pod)["nodeName"])
    req = (((_spec(pod).get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for t in req.get("nodeSelectorTerms") or []:
        for f in (t or {}).get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and len(f.get("values") or []) == 1:
                return str(f["values"][0])
    return ""


def pin_to_node(pod_spec: Obj, node: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity."""
    aff = pod_spec.setdefault("affinity", {})
    na = aff.setdefault("nodeAffinity", {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}


def pod_hash(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(rev.POD_REVISION_LABEL, ""))


def resolve(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        try:
            pct = float(value[:-1])
        except ValueError:
            return 0
        x = pct * total / 100
        return int(math.ceil(x) if round_up else math.floor(x))
    return max(0, _int(value, 0))


def surge_and_unavailable(ds: Obj, desired: int) -> tuple[int, int]:
    ru = ((_spec(ds).get("updateStrategy") or {}).get("rollingUpdate") or {})
    surge = resolve(ru.get("maxSurge", 0), desired, True)
    unav = resolve(ru.get("maxUnavailable", 1), desired, False)
    if surge == 0 and unav == 0:
        unav = 1
    return surge, unav


@dataclass(frozen=True, slots=True)
class DsPlan:
    create: tuple[str, ...] = ()      # node names
    delete: tuple[Obj, ...] = ()


def plan(ds: Obj, nodes: list[Obj], pods: list[Obj], update_hash: str, now: dt.datetime) -> DsPlan:
    """What the DaemonSet controller does next (manage + rollingUpdate, in small)."""
    spec = _spec(ds)
    tspec = _spec(spec.get("template") or {})
    min_ready = _int(spec.get("minReadySeconds"), 0)
    by_node: dict[str, list[Obj]] = {}
    for p in pods:
        by_node.setdefault(target_node(p), []).append(p)
    create: list[str] = []
    delete: list[Obj] = []
    eligible: list[str] = []
    for node in nodes:
        name = _meta(node).get("name", "")
        here = [p for p in by_node.pop(name, []) if not _meta(p).get("deletionTimestamp")]
        if not node_fits(tspec, node):
            delete += here
            continue
        eligible.append(name)
        failed = [p for p in here if (p.get("status") or {}).get("phase") == "Failed"]
        delete += failed
        active = [p for p in here if p not in failed and (p.get("status") or {}).get("phase") != "Succeeded"]
        if not active and not failed:
            create.append(name)
        elif len(active) > 1:
            # Keep the newest revision's oldest pod (a surge leaves two on purpose until the new is available).
            new = sorted((p for p in active if pod_hash(p) == update_hash), key=lambda p: _meta(p).get("creationTimestamp") or "")
            old = [p for p in active if pod_hash(p) != update_hash]
            if len(new) > 1:
                delete += new[1:]
            if new and old and podutil.available_in(new[0], min_ready, now) == 0:
                delete += old
            elif not new and len(old) > 1:
                delete += sorted(old, key=lambda p: _meta(p).get("creationTimestamp") or "")[1:]
    for rest in by_node.values():   # pods for nodes that no longer exist
        delete += [p for p in rest if not _meta(p).get("deletionTimestamp")]
    if (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate":
        going = {id(p) for p in delete}
        surge, max_unav = surge_and_unavailable(ds, len(eligible))
        old_on: dict[str, Obj] = {}
        unavailable = 0
        new_ok: set[str] = set()
        for name in eligible:
            active = [p for p in pods if target_node(p) == name and not _meta(p).get("deletionTimestamp")
                      and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and id(p) not in going]
            new = [p for p in active if pod_hash(p) == update_hash]
            old = [p for p in active if pod_hash(p) != update_hash]
            if any(podutil.available_in(p, min_ready, now) == 0 for p in new):
                new_ok.add(name)
            if not any(podutil.available_in(p, min_ready, now) == 0 for p in active):
                unavailable += 1
            if old and not new:
                old_on[name] = old[0]
        if surge > 0:
            surging = sum(1 for name in eligible if name not in old_on and name not in new_ok and name not in create)
            for name, p in sorted(old_on.items()):
                if surging >= surge:
                    break
                create.append(name)
                surging += 1
        else:
            # Old pods that are unavailable anyway go first, then available ones within the budget.
            olds = sorted(old_on.values(), key=lambda p: podutil.available_in(p, min_ready, now) == 0)
            for p in olds:
                if podutil.available_in(p, min_ready, now) != 0:
                    delete.append(p)
                elif unavailable < max_unav:
                    delete.append(p)
                    unavailable += 1
    return DsPlan(tuple(create), tuple(delete))


def compute_status(ds: Obj, nodes: list[Obj], pods: list[Obj], update_hash: str, now: dt.datetime) -> Obj:
    spec = _spec(ds)
    tspec = _spec(spec.get("template") or {})
    min_ready = _int(spec.get("minReadySeconds"), 0)
    desired = current = mis = ready = updated = available = 0
    for node in nodes:
        name = _meta(node).get("name", "")
        here = [p for p in pods if target_node(p) == name and not _meta(p).get("deletionTimestamp")
                and (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        fits = node_fits(tspec, node)
        if not fits:
            if here:
                mis += 1
            continue
        desired += 1
        if not here:
            continue
        current += 1
        newest = sorted(here, key=lambda p: (pod_hash(p) != update_hash, _meta(p).get("creationTimestamp") or ""))[0]
        if podutil.pod_ready(newest):
            ready += 1
            if podutil.available_in(newest, min_ready, now) == 0:
                available += 1
        if pod_hash(newest) == update_hash:
            updated += 1
    status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": mis, "desiredNumberScheduled": desired,
                   "numberReady": ready, "observedGeneration": _meta(ds).get("generation", 0),
                   "updatedNumberScheduled": updated, "numberAvailable": available,
                   "numberUnavailable": max(0, desired - available)}
    for k in ("numberAvailable", "numberUnavailable", "updatedNumberScheduled"):
        if not status[k]:
            del status[k]
    old = ds.get("status") or {}
    if old.get("collisionCount"):
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


def daemon_pod(ds: Obj, node: str, revision_hash: str) -> Obj:
    pod = podutil.pod_from_template(ds, API_VERSION, KIND)
    labels = pod["metadata"].setdefault("labels", {})
    labels[rev.POD_REVISION_LABEL] = revision_hash
    labels[GENERATION_LABEL] = str(_meta(ds).get("generation", 1))
    ps = pod["spec"]
    ps["tolerations"] = with_daemon_tolerations(ps)
    pin_to_node(ps, node)
    return pod


# ---- the controller --------------------------------------------------------------------------------
class DaemonSetController:
    def __init__(self, client: Client, informers: InformerFactory | None = None, workers: int = 2,
                 recorder: EventRecorder | None = None, clock: Clock = utcnow) -> None:
        self.client, self.clock = client, clock
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        factory = informers or InformerFactory(client)
        self.sets = factory.informer("apps/daemonsets")
        self.pods = factory.informer("pods")
        self.nodes = factory.informer("nodes")
        self.revisions = factory.informer("apps/controllerrevisions")
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.revisions.add_handler(self._on_revision)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.sets, self.pods, self.nodes, self.revisions],
                                     workers, run_informers=informers is None, failed=report_failures(self.sets, self.recorder.event))

    async def run(self) -> None:
        await self.controller.run()

    def _on_set(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if new is None:
            self.expectations.forget(object_key(obj))
        self.queue.add(object_key(obj))

    def _owner_key(self, obj: Obj) -> str | None:
        return owner_key(obj, KIND)

    def _on_revision(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = self._owner_key(obj)
        if key:
            self.queue.add(key)

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        if old is not None and new is not None and _meta(old).get("labels") == _meta(new).get("labels") \
                and _spec(old).get("taints") == _spec(new).get("taints") and _spec(old).get("unschedulable") == _spec(new).get("unschedulable"):
            return   # status-only change (heartbeats): eligibility is the same
        for ds in self.sets.list():
            self.queue.add(object_key(ds))

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        key = self._owner_key(pod)
        if key is None:
            return
        name = _meta(pod).get("name", "")
        if new is None or (_meta(new).get("deletionTimestamp") and (old is None or not _meta(old).get("deletionTimestamp"))):
            self.expectations.deletion_observed(key, name)
        elif old is None:
            self.expectations.creation_observed(key)
        self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        ds = self.sets.get_by_key(key)
        if ds is None:
            self.expectations.forget(key)
            return None
        ns, name = split_key(key)
        if _meta(ds).get("deletionTimestamp"):
            return None
        try:
            selector = LabelSelector.from_api(_spec(ds).get("selector"))
        except SelectorError as e:
            log.warning("daemonset %s: invalid selector: %s", key, e)
            return None
        uid = _meta(ds).get("uid", "")
        candidates = self.pods.by_index(CONTROLLER_INDEX, uid) + [p for p in self.pods.list(ns) if controller_ref(p) is None]
        pods = await ownership.claim_and_write(self.client, "pods", ds, API_VERSION, KIND, selector, candidates, COMPONENT)
        revs = self.revisions.by_index(CONTROLLER_INDEX, uid)
        update_rev = await self._update_revision(ds, revs)
        update_hash = str((_meta(update_rev).get("labels") or {}).get(rev.HASH_LABEL) or "")
        nodes = self.nodes.list()
        now = self.clock()
        if self.expectations.satisfied(key):
            await self._act(ds, key, plan(ds, nodes, pods, update_hash, now), update_hash)
        status = compute_status(ds, nodes, pods, update_hash, now)
        if status != (ds.get("status") or {}):
            new = copy.deepcopy(ds)
            new["status"] = status
            await self.client.update("apps/daemonsets", ns, name, new, subresource="status", field_manager=COMPONENT)
        live = {f"{name}-{pod_hash(p)}" for p in pods} | {_meta(update_rev).get("name", "")}
        for r in rev.history_to_delete(revs, live, _int(_spec(ds).get("revisionHistoryLimit"), 10)):
            await self.client.delete("apps/controllerrevisions", ns, _meta(r)["name"], precondition_uid=_meta(r).get("uid", ""))
        min_ready = _int(_spec(ds).get("minReadySeconds"), 0)
        waits = [w for p in pods if (w := podutil.available_in(p, min_ready, now)) is not None and w > 0]
        return min(waits) + 0.05 if waits else None

    async def _update_revision(self, ds: Obj, revs: list[Obj]) -> Obj:
        ns = _meta(ds).get("namespace", "")
        collisions = _int((ds.get("status") or {}).get("collisionCount"), 0)
        want = rev.new_revision(ds, API_VERSION, KIND, rev.next_revision(revs), collisions)
        equal = rev.find_equal(revs, want)
        newest = max((rev.revision_number(r) for r in revs), default=0)
        if equal:
            r = equal[-1]
            if rev.revision_number(r) < newest:
                r = await self.client.patch("apps/controllerrevisions", ns, _meta(r)["name"], {"revision": newest + 1},
                                            field_manager=COMPONENT)
            return r
        try:
            return await self.client.create("apps/controllerrevisions", ns, want, field_manager=COMPONENT)
        except ClientError as e:
            if e.code != 409:
                raise
            existing = await self.client.get("apps/controllerrevisions", ns, _meta(want)["name"])
            if existing is not None and rev.equal_revision(existing, want):
                return existing
            new = copy.deepcopy(ds)
            new.setdefault("status", {})["collisionCount"] = collisions + 1
            await self.client.update("apps/daemonsets", ns, _meta(ds)["name"], new, subresource="status", field_manager=COMPONENT)
            raise

    async def _act(self, ds: Obj, key: str, p: DsPlan, update_hash: str) -> None:
        ns = _meta(ds).get("namespace", "")
        if p.delete:
            self.expectations.expect(key, deletes=[_meta(x)["name"] for x in p.delete])
        for pod in p.delete:
            pn = _meta(pod)["name"]
            try:
                if await self.client.delete("pods", ns, pn, precondition_uid=_meta(pod).get("uid", "")) is None:
                    self.expectations.lower(key, deletes=[pn])
            except ClientError as e:
                self.expectations.lower(key, deletes=[pn])
                if not e.not_found:
                    raise
                continue
            await self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pn}")
        if p.create:
            self.expectations.expect(key, adds=len(p.create))
        for node in p.create:
            try:
                created = await self.client.create("pods", ns, daemon_pod(ds, node, update_hash), field_manager=COMPONENT)
            except ClientError as e:
                self.expectations.lower(key, adds=1)
                await self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            await self.recorder.event(ds, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")
