"""StatefulSet controller: pods with stable names, identities and volumes (Kubernetes 1.32 apps/v1).

A sync reads the StatefulSet, its pods, its ControllerRevisions and the namespace's claims from
the shared informers; it makes sure a ControllerRevision exists for the current template (the
update revision; re-applying an old template renumbers the equal revision), then asks the pure
`plan()` what to do and writes it:
- pod `<set>-<ordinal>` for each ordinal in [start, start+replicas), with `hostname` = its name,
  `subdomain` = serviceName, labels `statefulset.kubernetes.io/pod-name`,
  `apps.kubernetes.io/pod-index` and `controller-revision-hash`, and one volume per
  volumeClaimTemplate naming claim `<template>-<set>-<ordinal>`, created before the pod and never
  deleted with it (persistentVolumeClaimRetentionPolicy: WhenDeleted=Delete gives the claim an
  ownerReference to the set, WhenScaled=Delete one to the condemned pod, so the garbage collector
  removes it then);
- OrderedReady: one pod at a time, each Running and Ready (and available after minReadySeconds)
  before the next, scale-down from the highest ordinal once every replica is healthy; Parallel:
  all at once;
- RollingUpdate: pods at ordinals ≥ partition whose revision is not the update revision are
  deleted from the highest ordinal down, at most maxUnavailable unavailable at a time, and
  recreated at the new revision; OnDelete: only pods the user deletes come back updated;
- status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
  currentRevision/updateRevision (equal once a rolling update is complete), observedGeneration,
  collisionCount; history trimmed to revisionHistoryLimit.
Neighbours: `minik.machinery.revisions` (ControllerRevision hashing and history, shared with the
DaemonSet controller), `minik.machinery.pods`, ownership, events; the garbage collector deletes
pods and claims through ownerReferences.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import re
from dataclasses import dataclass
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery import ownership
from minik.machinery import pods as podutil
from minik.machinery import revisions as rev
from minik.machinery.controller import Controller, Expectations, controller_ref, owner_key, owner_reference, report_failures
from minik.machinery.events import Clock, EventRecorder, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.statefulset")

COMPONENT = "statefulset-controller"
API_VERSION, KIND = "apps/v1", "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def _meta(o: Obj) -> Obj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(o: Obj) -> Obj:
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def _int(v: Any, default: int) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


# ---- pure helpers ---------------------------------------------------------------------------------
def ordinal_of(sts_name: str, pod: Obj) -> int | None:
    m = re.fullmatch(re.escape(sts_name) + r"-(\d+)", str(_meta(pod).get("name", "")))
    return int(m.group(1)) if m else None


def start_ordinal(sts: Obj) -> int:
    o = _spec(sts).get("ordinals")
    return max(0, _int(o.get("start"), 0)) if isinstance(o, dict) else 0


def claim_templates(sts: Obj) -> list[Obj]:
    return [t for t in _spec(sts).get("volumeClaimTemplates") or [] if isinstance(t, dict) and _meta(t).get("name")]


def claim_name(tpl: Obj, sts: Obj, ordinal: int) -> str:
    return f"{_meta(tpl)['name']}-{_meta(sts)['name']}-{ordinal}"


def pod_revision(pod: Obj) -> str:
    return str((_meta(pod).get("labels") or {}).get(rev.POD_REVISION_LABEL, ""))


def running_and_ready(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.pod_ready(pod)


def healthy(pod: Obj, min_ready: int, now: dt.datetime) -> bool:
    """Running, Ready, available after minReadySeconds and not terminating."""
    return (not _meta(pod).get("deletionTimestamp") and running_and_ready(pod)
            and podutil.available_in(pod, min_ready, now) == 0)


def finished(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def max_unavailable(sts: Obj, replicas: int) -> int:
    ru = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    v = ru.get("maxUnavailable", 1) if isinstance(ru, dict) else 1
    if isinstance(v, str) and v.endswith("%"):
        try:
            n = math.floor(float(v[:-1]) * replicas / 100)
        except ValueError:
            n = 1
    else:
        n = _int(v, 1)
    return max(1, n)


def new_claim(sts: Obj, tpl: Obj, ordinal: int, pod_name: str) -> Obj:
    """The claim for `ordinal` (getPersistentVolumeClaims): template spec, the set's selector labels,
    ownerReferences as the retention policy asks."""
    m = _meta(sts)
    labels = dict(_meta(tpl).get("labels") or {})
    labels.update(((_spec(sts).get("selector") or {}).get("matchLabels") or {}))
    claim: Obj = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                  "metadata": {"name": claim_name(tpl, sts, ordinal), "namespace": m.get("namespace", ""), "labels": labels},
                  "spec": copy.deepcopy(_spec(tpl))}
    if _meta(tpl).get("annotations"):
        claim["metadata"]["annotations"] = dict(_meta(tpl)["annotations"])
    policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    if policy.get("whenDeleted") == "Delete":
        ref = owner_reference(sts, API_VERSION, KIND)
        ref["controller"] = False
        claim["metadata"]["ownerReferences"] = [ref]
    return claim


def identity_pod(sts: Obj, template: Obj, ordinal: int, revision_name: str) -> Obj:
    """Pod `<set>-<ordinal>` from `template` with its stable identity and claims."""
    m = _meta(sts)
    name = f"{m['name']}-{ordinal}"
    carrier = {"metadata": m, "spec": {"template": template}}
    pod = podutil.pod_from_template(carrier, API_VERSION, KIND)
    pm = pod["metadata"]
    pm.pop("generateName", None)
    pm["name"] = name
    labels = pm.setdefault("labels", {})
    labels[POD_NAME_LABEL] = name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[rev.POD_REVISION_LABEL] = revision_name
    ps = pod["spec"]
    ps["hostname"] = name
    if _spec(sts).get("serviceName"):
        ps["subdomain"] = _spec(sts)["serviceName"]
    vols = [v for v in ps.get("volumes") or [] if isinstance(v, dict)]
    for tpl in claim_templates(sts):
        vols = [v for v in vols if v.get("name") != _meta(tpl)["name"]]
        vols.append({"name": _meta(tpl)["name"], "persistentVolumeClaim": {"claimName": claim_name(tpl, sts, ordinal)}})
    if vols:
        ps["volumes"] = vols
    return pod


@dataclass(frozen=True, slots=True)
class Create:
    ordinal: int
    revision: str          # which revision's template
    claims: tuple[Obj, ...]


@dataclass(frozen=True, slots=True)
class StsPlan:
    create: tuple[Create, ...] = ()
    delete: tuple[Obj, ...] = ()
    claims: tuple[Obj, ...] = ()          # missing claims of pods that exist
    claim_owners: tuple[tuple[str, Obj], ...] = ()   # (claim name, pod that should own it) on scale-down


def plan(sts: Obj, pods: list[Obj], claims: set[str], current: str, update: str, now: dt.datetime) -> StsPlan:
    """What the StatefulSet controller does next (updateStatefulSet, in small)."""
    spec = _spec(sts)
    name = _meta(sts).get("name", "")
    start = start_ordinal(sts)
    replicas = max(0, _int(spec.get("replicas"), 1))
    min_ready = _int(spec.get("minReadySeconds"), 0)
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = _int((strategy.get("rollingUpdate") or {}).get("partition"), 0) if rolling else 0
    by_ord: dict[int, Obj] = {}
    for pod in pods:
        o = ordinal_of(name, pod)
        if o is not None:
            by_ord[o] = pod
    valid = range(start, start + replicas)
    condemned = sorted((o for o in by_ord if o not in valid), reverse=True)
    templates = claim_templates(sts)
    policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}

    def missing_claims(o: int) -> tuple[Obj, ...]:
        return tuple(new_claim(sts, t, o, f"{name}-{o}") for t in templates if claim_name(t, sts, o) not in claims)

    create: list[Create] = []
    delete: list[Obj] = []
    extra_claims: list[Obj] = []
    owners: list[tuple[str, Obj]] = []
    blocked = False
    for o in valid:
        p = by_ord.get(o)
        if p is None:
            revision = current if rolling and o < start + partition else update
            create.append(Create(o, revision, missing_claims(o)))
            if monotonic:
                blocked = True
                break
            continue
        extra_claims += missing_claims(o)
        if finished(p) and not _meta(p).get("deletionTimestamp"):
            delete.append(p)   # recreated on a later sync
            if monotonic:
                blocked = True
                break
            continue
        if monotonic and not healthy(p, min_ready, now):
            blocked = True
            break
    if not blocked:
        for o in condemned:
            p = by_ord[o]
            if policy.get("whenScaled") == "Delete":
                owners += [(claim_name(t, sts, o), p) for t in templates if claim_name(t, sts, o) in claims]
            if _meta(p).get("deletionTimestamp"):
                if monotonic:
                    blocked = True
                    break
                continue
            delete.append(p)
            if monotonic:
                blocked = True
                break
    if not blocked and rolling and not create:
        going = {id(p) for p in delete}
        unavailable = sum(1 for o in valid if o in by_ord and (id(by_ord[o]) in going or not healthy(by_ord[o], min_ready, now)))
        limit = max_unavailable(sts, replicas) if not monotonic or "maxUnavailable" in (strategy.get("rollingUpdate") or {}) else 1
        for o in reversed(valid):
            if o < start + partition:
                break
            p = by_ord.get(o)
            if p is None or id(p) in going:
                continue
            if pod_revision(p) != update and not _meta(p).get("deletionTimestamp"):
                if unavailable >= limit:
                    break
                delete.append(p)
                unavailable += 1
            elif monotonic and not healthy(p, min_ready, now) and unavailable >= limit:
                break
    return StsPlan(tuple(create), tuple(delete), tuple(extra_claims), tuple(owners))


def compute_status(sts: Obj, pods: list[Obj], current: str, update: str, collisions: int, now: dt.datetime) -> Obj:
    spec = _spec(sts)
    name = _meta(sts).get("name", "")
    min_ready = _int(spec.get("minReadySeconds"), 0)
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0, "updatedReplicas": 0}
    for p in pods:
        if ordinal_of(name, p) is None:
            continue
        counts["replicas"] += 1
        if running_and_ready(p) and not _meta(p).get("deletionTimestamp"):
            counts["readyReplicas"] += 1
            if podutil.available_in(p, min_ready, now) == 0:
                counts["availableReplicas"] += 1
        if not _meta(p).get("deletionTimestamp"):
            if pod_revision(p) == current:
                counts["currentReplicas"] += 1
            if pod_revision(p) == update:
                counts["updatedReplicas"] += 1
    rolling = (spec.get("updateStrategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"
    want = max(0, _int(spec.get("replicas"), 1))
    if rolling and counts["updatedReplicas"] == counts["replicas"] == want and counts["readyReplicas"] == want:
        current = update
        counts["currentReplicas"] = counts["updatedReplicas"]
    status: Obj = {"observedGeneration": _meta(sts).get("generation", 0), **counts,
                   "currentRevision": current, "updateRevision": update, "collisionCount": collisions}
    old = sts.get("status") or {}
    if old.get("conditions"):
        status["conditions"] = old["conditions"]
    return status


# ---- the controller --------------------------------------------------------------------------------
class StatefulSetController:
    def __init__(self, client: Client, informers: InformerFactory | None = None, workers: int = 2,
                 recorder: EventRecorder | None = None, clock: Clock = utcnow) -> None:
        self.client, self.clock = client, clock
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        factory = informers or InformerFactory(client)
        self.sets = factory.informer("apps/statefulsets")
        self.pods = factory.informer("pods")
        self.revisions = factory.informer("apps/controllerrevisions")
        self.claims = factory.informer("persistentvolumeclaims")
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.sets.add_handler(self._on_set)
        self.pods.add_handler(self._on_pod)
        self.revisions.add_handler(self._on_owned)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.sets, self.pods, self.revisions, self.claims],
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

    def _on_owned(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        key = self._owner_key(obj)
        if key:
            self.queue.add(key)

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        key = self._owner_key(pod)
        if key is None:
            if new is not None and old is None:
                self._enqueue_matching(new)
            return
        name = _meta(pod).get("name", "")
        if new is None or (_meta(new).get("deletionTimestamp") and (old is None or not _meta(old).get("deletionTimestamp"))):
            self.expectations.deletion_observed(key, name)
        elif old is None:
            self.expectations.creation_observed(key)
        self.queue.add(key)

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = _meta(pod).get("labels") or {}
        for s in self.sets.list(_meta(pod).get("namespace", "")):
            try:
                if LabelSelector.from_api(_spec(s).get("selector")).matches(labels):
                    self.queue.add(object_key(s))
            except SelectorError:
                continue

    async def sync(self, key: str) -> float | None:
        sts = self.sets.get_by_key(key)
        if sts is None:
            self.expectations.forget(key)
            return None
        ns, name = split_key(key)
        if _meta(sts).get("deletionTimestamp"):
            return None
        try:
            selector = LabelSelector.from_api(_spec(sts).get("selector"))
        except SelectorError as e:
            log.warning("statefulset %s: invalid selector: %s", key, e)
            return None
        uid = _meta(sts).get("uid", "")
        candidates = self.pods.by_index(CONTROLLER_INDEX, uid) + [p for p in self.pods.list(ns) if controller_ref(p) is None]
        pods = await ownership.claim_and_write(self.client, "pods", sts, API_VERSION, KIND, selector, candidates, COMPONENT)
        revs = self.revisions.by_index(CONTROLLER_INDEX, uid)
        collisions = _int((sts.get("status") or {}).get("collisionCount"), 0)
        update_rev, collisions = await self._update_revision(sts, revs, collisions)
        if update_rev is None:
            return 0.1   # a hash collision: try again with the bumped collisionCount
        cur_name = str((sts.get("status") or {}).get("currentRevision") or "")
        by_name = {_meta(r).get("name"): r for r in revs}
        by_name[_meta(update_rev)["name"]] = update_rev
        current_rev = by_name.get(cur_name) or update_rev
        current, update = _meta(current_rev)["name"], _meta(update_rev)["name"]
        now = self.clock()
        claims = {_meta(c).get("name", "") for c in self.claims.list(ns)}
        if self.expectations.satisfied(key):
            p = plan(sts, pods, claims, current, update, now)
            # Pods just created count in this status already (as kube's in-memory replica list
            # does), which saves a second status write per ordinal.
            pods = pods + await self._act(sts, key, p, {current: current_rev, update: update_rev})
        status = compute_status(sts, pods, current, update, collisions, now)
        if status != (sts.get("status") or {}):
            new = copy.deepcopy(sts)
            new["status"] = status
            await self.client.update("apps/statefulsets", ns, name, new, subresource="status", field_manager=COMPONENT)
        live = {pod_revision(p) for p in pods} | {current, update, status["currentRevision"]}
        limit = _int(_spec(sts).get("revisionHistoryLimit"), 10)
        for r in rev.history_to_delete([r for r in revs if _meta(r).get("name") != update], live, limit):
            await self.client.delete("apps/controllerrevisions", ns, _meta(r)["name"], precondition_uid=_meta(r).get("uid", ""))
        min_ready = _int(_spec(sts).get("minReadySeconds"), 0)
        return podutil_next(pods, min_ready, now)

    async def _update_revision(self, sts: Obj, revs: list[Obj], collisions: int) -> tuple[Obj | None, int]:
        """The revision of the current template: an equal one (renumbered when older than the
        newest), or a new one; None after a name collision (collisionCount is bumped)."""
        ns = _meta(sts).get("namespace", "")
        want = rev.new_revision(sts, API_VERSION, KIND, rev.next_revision(revs), collisions)
        equal = rev.find_equal(revs, want)
        newest = max((rev.revision_number(r) for r in revs), default=0)
        if equal:
            r = equal[-1]
            if rev.revision_number(r) < newest:
                r = await self.client.patch("apps/controllerrevisions", ns, _meta(r)["name"],
                                            {"revision": newest + 1}, field_manager=COMPONENT)
            return r, collisions
        try:
            return await self.client.create("apps/controllerrevisions", ns, want, field_manager=COMPONENT), collisions
        except ClientError as e:
            if e.code != 409:
                raise
            existing = await self.client.get("apps/controllerrevisions", ns, _meta(want)["name"])
            if existing is not None and rev.equal_revision(existing, want) and \
                    (controller_ref(existing) or {}).get("uid") == _meta(sts).get("uid"):
                return existing, collisions
            new = copy.deepcopy(sts)
            new.setdefault("status", {})["collisionCount"] = collisions + 1
            await self.client.update("apps/statefulsets", ns, _meta(sts)["name"], new, subresource="status",
                                     field_manager=COMPONENT)
            return None, collisions + 1

    async def _act(self, sts: Obj, key: str, p: StsPlan, revisions: dict[str, Obj]) -> list[Obj]:
        """Do the plan; returns the pods created."""
        ns, set_name = _meta(sts).get("namespace", ""), _meta(sts)["name"]
        for claim0 in p.claims:
            await self._create_claim(sts, claim0, "")
        for name, pod in p.claim_owners:
            await self._own_claim(ns, name, pod)
        if p.delete:
            self.expectations.expect(key, deletes=[_meta(x)["name"] for x in p.delete])
        for pod in p.delete:
            pn = _meta(pod)["name"]
            try:
                gone = await self.client.delete("pods", ns, pn, precondition_uid=_meta(pod).get("uid", "")) is None
            except ClientError as e:
                self.expectations.lower(key, deletes=[pn])
                if not e.not_found:
                    await self.recorder.event(sts, "Warning", "FailedDelete", f"delete Pod {pn} in StatefulSet {set_name} failed error: {e.message}")
                    raise
                continue
            if gone:
                self.expectations.lower(key, deletes=[pn])
            await self.recorder.event(sts, "Normal", "SuccessfulDelete", f"delete Pod {pn} in StatefulSet {set_name} successful")
        created: list[Obj] = []
        if p.create:
            self.expectations.expect(key, adds=len(p.create))
        for c in p.create:
            pn = f"{set_name}-{c.ordinal}"
            for claim in c.claims:
                await self._create_claim(sts, claim, pn)
            r = revisions.get(c.revision) or next(iter(revisions.values()))
            pod = identity_pod(sts, rev.template_of(r), c.ordinal, _meta(r)["name"])
            try:
                created.append(await self.client.create("pods", ns, pod, field_manager=COMPONENT))
            except ClientError as e:
                self.expectations.lower(key, adds=1)
                if e.code == 409:
                    continue   # our cache has not seen it yet
                await self.recorder.event(sts, "Warning", "FailedCreate", f"create Pod {pn} in StatefulSet {set_name} failed error: {e.message}")
                raise
            await self.recorder.event(sts, "Normal", "SuccessfulCreate", f"create Pod {pn} in StatefulSet {set_name} successful")
        return created

    async def _create_claim(self, sts: Obj, claim: Obj, pod_name: str) -> None:
        ns = _meta(sts).get("namespace", "")
        cn = _meta(claim)["name"]
        try:
            await self.client.create("persistentvolumeclaims", ns, claim, field_manager=COMPONENT)
        except ClientError as e:
            if e.code == 409:
                return
            await self.recorder.event(sts, "Warning", "FailedCreate",
                                      f"create Claim {cn} for Pod {pod_name} in StatefulSet {_meta(sts)['name']} failed error: {e.message}")
            raise
        await self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                  f"create Claim {cn} Pod {pod_name} in StatefulSet {_meta(sts)['name']} success")

    async def _own_claim(self, ns: str, name: str, pod: Obj) -> None:
        claim = self.claims.get(ns, name)
        if claim is None:
            return
        refs = ownership.owner_refs(claim)
        if any(r.get("uid") == _meta(pod).get("uid") for r in refs):
            return
        ref = {"apiVersion": "v1", "kind": "Pod", "name": _meta(pod)["name"], "uid": _meta(pod).get("uid", ""),
               "controller": False, "blockOwnerDeletion": True}
        try:
            await self.client.patch("persistentvolumeclaims", ns, name,
                                    {"metadata": {"ownerReferences": [*refs, ref],
                                                  "resourceVersion": _meta(claim).get("resourceVersion")}},
                                    field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise


def podutil_next(pods: list[Obj], min_ready: int, now: dt.datetime) -> float | None:
    """When a ready pod crosses minReadySeconds (its availability changes the status)."""
    waits = [w for p in pods if (w := podutil.available_in(p, min_ready, now)) is not None and w > 0]
    return min(waits) + 0.05 if waits else None
