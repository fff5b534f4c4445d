"""Deployment controller: ReplicaSets per pod template, rolling updates, Recreate, revisions and
rollout status (Kubernetes 1.32).

One sync (`DeploymentController.sync`) per Deployment key, following kube's deployment controller:
claim ReplicaSets (controllerRef: adopt matching orphans, release owned ones that stopped matching) → paused/scaling events are handled by
proportional scaling only → otherwise one step of the strategy (RollingUpdate: scale the new RS up
within maxSurge, else scale old ones down within maxUnavailable; Recreate: old to zero, wait for
their pods to go, then the new one up) → revisionHistoryLimit cleanup once complete → status with
the Available and Progressing conditions, written only when it changed.
The new ReplicaSet is `<deploy>-<pod-template-hash>`: the hash of the template (plus
collisionCount) is added to its selector, template labels and name; templates are compared
ignoring that label, so `kubectl rollout undo` (a PATCH of the template from an old RS) makes the
old RS current again with the next revision number. Decisions are pure functions, table-tested.
Neighbours: `minik.machinery` (shared informers on deployments, replicasets, pods; ownership), the ReplicaSet
controller (creates the pods), the garbage collector (cascading delete through ownerReferences).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import math
from dataclasses import dataclass
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery import ownership
from minik.machinery.controller import Controller, controller_ref, owner_key, owner_reference, report_failures
from minik.machinery.events import Clock, EventRecorder, timestamp, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.timestamps import parse_time
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.deployment")

COMPONENT = "deployment-controller"
HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations not copied to its ReplicaSets (kube's skipCopyAnnotation).
SKIP_COPY = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
                       DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"})
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
NO_DEADLINE = 2147483647

AVAILABLE, PROGRESSING = "Available", "Progressing"
NEW_RS_AVAILABLE, RS_UPDATED, TIMED_OUT = "NewReplicaSetAvailable", "ReplicaSetUpdated", "ProgressDeadlineExceeded"
NEW_RS_CREATED, FOUND_NEW_RS = "NewReplicaSetCreated", "FoundNewReplicaSet"
PAUSED, RESUMED = "DeploymentPaused", "DeploymentResumed"


# ---- pure helpers: hashing and templates ---------------------------------------------------------
def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: Obj, collision_count: int | None = None) -> str:
    """A stable hash of the pod template (canonical JSON, FNV-1a 32) in kube's safe alphabet."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count is not None:
        data += int(collision_count).to_bytes(4, "little", signed=False)
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in str(fnv32a(data)))


def strip_hash(template: Obj) -> Obj:
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(HASH_LABEL, None)
        if not labels:
            del t["metadata"]["labels"]
    if "metadata" in t and not t["metadata"]:
        del t["metadata"]
    return t


def _unset_dropped(value: Any) -> Any:
    """The value with nulls, empty maps and empty lists removed at every depth.

    Kubernetes compares templates as Go structs, where `creationTimestamp: null` (which kubectl's
    `rollout undo` sends back), `{}` and `[]` all mean "unset"; as JSON they would not be equal."""
    if isinstance(value, dict):
        out = {k: _unset_dropped(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_unset_dropped(v) for v in value]
    return value


def equal_ignore_hash(a: Obj, b: Obj) -> bool:
    return bool(_unset_dropped(strip_hash(a)) == _unset_dropped(strip_hash(b)))


def revision_of(rs: Obj) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def replicas_of(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas") or 0)


def status_int(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


# ---- pure helpers: surge / unavailable -----------------------------------------------------------
def scaled_value(value: Any, total: int, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    s = str(value)
    if s.endswith("%"):
        pct = int(s[:-1])
        v = pct * total / 100
        return math.ceil(v) if round_up else math.floor(v)
    return int(s)


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """Surge rounds up, unavailable rounds down; both zero would stall, so unavailable becomes 1."""
    surge = scaled_value(max_surge, desired, True)
    unavailable = scaled_value(max_unavailable, desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling(d: Obj) -> bool:
    return bool(((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate")


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), replicas_of(d))[0]


def max_unavailable(d: Obj) -> int:
    desired = replicas_of(d)
    if not is_rolling(d) or desired == 0:
        return 0
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    return min(desired, resolve_fenceposts(ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%"), desired)[1])


# ---- pure helpers: planning ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RSState:
    """What planning needs to know about one ReplicaSet."""
    name: str
    replicas: int                 # spec.replicas
    available: int = 0            # status.availableReplicas
    created: str = ""             # creationTimestamp (RFC 3339 sorts as text)
    max_replicas: int | None = None   # deployment.kubernetes.io/max-replicas
    desired: int | None = None        # deployment.kubernetes.io/desired-replicas


def rs_state(rs: Obj) -> RSState:
    m = rs["metadata"]
    ann = m.get("annotations") or {}

    def num(k: str) -> int | None:
        try:
            return int(ann[k]) if k in ann else None
        except ValueError:
            return None

    return RSState(m["name"], replicas_of(rs), status_int(rs, "availableReplicas"), m.get("creationTimestamp") or "",
                   num(MAX_REPLICAS), num(DESIRED_REPLICAS))


def new_rs_replicas(desired: int, surge: int, rolling: bool, new: RSState | None, olds: list[RSState]) -> int:
    """NewRSNewReplicas: how big the new ReplicaSet may be now."""
    cur_new = new.replicas if new else 0
    if not rolling:
        return desired
    current = cur_new + sum(o.replicas for o in olds)
    max_total = desired + surge
    if current >= max_total:
        return cur_new
    return cur_new + max(0, min(max_total - current, desired - cur_new))


def rolling_step(desired: int, surge: int, unavailable: int, new: RSState, olds: list[RSState]) -> dict[str, int]:
    """One step of a rolling update: {rs name: new spec.replicas}. Scale the new ReplicaSet up if
    the surge allows, else scale old ones down as far as availability allows (unhealthy first)."""
    if new.replicas > desired:
        return {new.name: desired}
    if new.replicas < desired:
        target = new_rs_replicas(desired, surge, True, new, olds)
        if target != new.replicas:
            return {new.name: target}
    old_count = sum(o.replicas for o in olds)
    if old_count == 0:
        return {}
    all_count = old_count + new.replicas
    min_available = desired - unavailable
    new_unavailable = new.replicas - new.available
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    plan: dict[str, int] = {}
    ordered = sorted(olds, key=lambda o: (o.created, o.name))
    # cleanupUnhealthyReplicas: old pods that are not available go first, they serve nobody.
    done = 0
    for o in ordered:
        if done >= max_scaled_down:
            break
        if o.replicas == 0 or o.replicas == o.available:
            continue
        n = min(max_scaled_down - done, o.replicas - o.available)
        plan[o.name] = o.replicas - n
        done += n
    # scaleDownOldReplicaSetsForRollingUpdate: then available ones, keeping minAvailable.
    available = new.available + sum(o.available for o in olds)
    if available > min_available:
        total = available - min_available
        done = 0
        for o in ordered:
            if done >= total:
                break
            cur = plan.get(o.name, o.replicas)
            if cur == 0:
                continue
            n = min(cur, total - done)
            plan[o.name] = cur - n
            done += n
    return plan


def recreate_step(desired: int, new: RSState | None, olds: list[RSState], old_pods_running: bool) -> dict[str, int]:
    """Recreate: every old ReplicaSet to zero; once their pods are gone, the new one to `desired`."""
    down = {o.name: 0 for o in olds if o.replicas > 0}
    if down:
        return down
    if old_pods_running or new is None:
        return {}
    return {new.name: desired} if new.replicas != desired else {}


def is_scaling_event(desired: int, active: list[RSState]) -> bool:
    """An active ReplicaSet was sized for another replica count (kube's isScalingEvent)."""
    return any(rs.desired is not None and rs.desired != desired for rs in active)


def proportional_scale(desired: int, surge: int, rolling: bool, new: RSState | None, olds: list[RSState],
                       saturated: bool) -> dict[str, int]:
    """kube's DeploymentController.scale: the replica count changed mid-rollout."""
    everything = ([new] if new else []) + olds
    active = [rs for rs in everything if rs.replicas > 0]
    if len(active) <= 1:
        target = active[0] if active else (new or (max(olds, key=lambda o: (o.created, o.name)) if olds else None))
        if target is None or target.replicas == desired:
            return {}
        return {target.name: desired}
    if saturated:
        return {o.name: 0 for o in olds if o.replicas > 0}
    if not rolling:
        return {}
    allowed = desired + surge if desired > 0 else 0
    current = sum(rs.replicas for rs in active)
    to_add = allowed - current
    if to_add == 0:
        return {}
    if to_add > 0:  # largest first, newer first on ties
        ordered = sorted(active, key=lambda r: (-r.replicas, _neg(r.created)))
    else:           # largest first, older first on ties
        ordered = sorted(active, key=lambda r: (-r.replicas, r.created))
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        if desired == 0:
            fraction = -rs.replicas
        else:
            annotated = rs.max_replicas or current or 1
            fraction = round(rs.replicas * allowed / annotated) - rs.replicas
        left = to_add - added
        prop = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs.name] = rs.replicas + prop
        added += prop
    first = ordered[0].name
    sizes[first] = max(0, sizes[first] + to_add - added)
    by_name = {rs.name: rs.replicas for rs in active}
    return {n: v for n, v in sizes.items() if v != by_name[n]}


def _neg(ts: str) -> tuple[int, ...]:
    return tuple(-ord(c) for c in ts)


def history_to_delete(olds: list[Obj], limit: int) -> list[Obj]:
    """Old ReplicaSets past revisionHistoryLimit, lowest revisions first; only fully scaled-down ones."""
    alive = [rs for rs in olds if not rs["metadata"].get("deletionTimestamp")]
    diff = len(alive) - limit
    if diff <= 0:
        return []
    out = []
    for rs in sorted(alive, key=lambda r: (revision_of(r), r["metadata"].get("creationTimestamp") or ""))[:diff]:
        if status_int(rs, "replicas") == 0 and replicas_of(rs) == 0 and \
                int(rs["metadata"].get("generation") or 0) <= status_int(rs, "observedGeneration"):
            out.append(rs)
    return out


# ---- pure helpers: status ------------------------------------------------------------------------
def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if c.get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def set_condition(status: Obj, ctype: str, cstatus: str, reason: str, message: str, now: str,
                  refresh: bool = False) -> None:
    """SetDeploymentCondition: same status and reason is a no-op (unless `refresh`, used for
    progress updates); an unchanged status keeps lastTransitionTime."""
    conds: list[Obj] = list(status.get("conditions") or [])
    cur = next((c for c in conds if c.get("type") == ctype), None)
    if cur is not None and cur.get("status") == cstatus and cur.get("reason") == reason and not refresh:
        return
    new = {"type": ctype, "status": cstatus, "lastUpdateTime": now, "lastTransitionTime": now,
           "reason": reason, "message": message}
    if cur is not None and cur.get("status") == cstatus:
        new["lastTransitionTime"] = cur.get("lastTransitionTime") or now
    status["conditions"] = [c for c in conds if c.get("type") != ctype] + [new]


def calculate_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, now: str) -> Obj:
    """Counts summed over ReplicaSets plus the Available condition (kube's calculateStatus)."""
    desired = replicas_of(d)
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss)
    total = sum(replicas_of(rs) for rs in all_rss)
    old = d.get("status") or {}
    counts = {"replicas": sum(status_int(rs, "replicas") for rs in all_rss),
              "updatedReplicas": status_int(new_rs, "replicas") if new_rs else 0,
              "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in all_rss),
              "availableReplicas": available,
              "unavailableReplicas": max(0, total - available)}
    status: Obj = {}
    gen = d["metadata"].get("generation")
    if gen is not None:
        status["observedGeneration"] = gen
    status.update({k: v for k, v in counts.items() if v})
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if available >= desired - max_unavailable(d):
        set_condition(status, AVAILABLE, "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", now)
    else:
        set_condition(status, AVAILABLE, "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", now)
    return status


def deadline_seconds(d: Obj) -> int | None:
    v = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return None if v is None or int(v) == NO_DEADLINE else int(v)


def rollout_complete(d: Obj, status: Obj) -> bool:
    desired = replicas_of(d)
    return (int(status.get("updatedReplicas") or 0) == desired and int(status.get("replicas") or 0) == desired
            and int(status.get("availableReplicas") or 0) == desired
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 0))


def rollout_progressing(old: Obj, new: Obj) -> bool:
    def g(s: Obj, k: str) -> int:
        return int(s.get(k) or 0)
    return (g(new, "updatedReplicas") > g(old, "updatedReplicas")
            or g(new, "replicas") - g(new, "updatedReplicas") < g(old, "replicas") - g(old, "updatedReplicas")
            or g(new, "readyReplicas") > g(old, "readyReplicas")
            or g(new, "availableReplicas") > g(old, "availableReplicas"))


def timed_out(d: Obj, status: Obj, now: dt.datetime) -> bool:
    deadline = deadline_seconds(d)
    cond = get_condition(status, PROGRESSING)
    if deadline is None or cond is None or cond.get("reason") == NEW_RS_AVAILABLE:
        return False
    if cond.get("reason") == TIMED_OUT:
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + dt.timedelta(seconds=deadline) < now


def rollout_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, now: dt.datetime) -> Obj:
    """The full new status of a rolling/recreate sync (kube's syncRolloutStatus)."""
    ts = timestamp(now)
    status = calculate_status(d, all_rss, new_rs, ts)
    deadline = deadline_seconds(d)
    if deadline is None:
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != PROGRESSING]
    old = d.get("status") or {}
    cur = get_condition(old, PROGRESSING)
    complete = (int(status.get("replicas") or 0) == int(status.get("updatedReplicas") or 0)
                and cur is not None and cur.get("reason") == NEW_RS_AVAILABLE)
    name = new_rs["metadata"]["name"] if new_rs else ""
    if deadline is not None and not complete:
        if rollout_complete(d, status):
            msg = f'ReplicaSet "{name}" has successfully progressed.' if name else "Deployment has successfully progressed."
            set_condition(status, PROGRESSING, "True", NEW_RS_AVAILABLE, msg, ts)
        elif rollout_progressing(old, status):
            msg = f'ReplicaSet "{name}" is progressing.' if name else "Deployment is progressing."
            set_condition(status, PROGRESSING, "True", RS_UPDATED, msg, ts, refresh=True)
        elif timed_out(d, status, now):
            msg = f'ReplicaSet "{name}" has timed out progressing.' if name else "Deployment has timed out progressing."
            set_condition(status, PROGRESSING, "False", TIMED_OUT, msg, ts)
    failure = next((c for rs in ([new_rs] if new_rs else []) + all_rss
                    for c in (rs.get("status") or {}).get("conditions") or [] if c.get("type") == "ReplicaFailure"), None)
    conds = [c for c in status.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    if failure is not None:
        conds.append({"type": "ReplicaFailure", "status": failure.get("status", "True"), "reason": failure.get("reason", ""),
                      "message": failure.get("message", ""), "lastUpdateTime": ts,
                      "lastTransitionTime": failure.get("lastTransitionTime") or ts})
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)
    return status


def requeue_after(d: Obj, status: Obj, now: dt.datetime) -> float | None:
    """When to look again so ProgressDeadlineExceeded is set on time (requeueStuckDeployment)."""
    deadline = deadline_seconds(d)
    cond = get_condition(status, PROGRESSING)
    if deadline is None or cond is None or cond.get("reason") in (NEW_RS_AVAILABLE, TIMED_OUT, PAUSED):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return max(0.0, (since + dt.timedelta(seconds=deadline) - now).total_seconds()) + 1.0




def new_rs_annotations(d: Obj, rs_annotations: dict[str, str], new_revision: int, exists: bool) -> dict[str, str]:
    """SetNewReplicaSetAnnotations: copy the Deployment's annotations, raise the revision (keeping
    the superseded one in revision-history), size annotations on creation."""
    out = dict(rs_annotations)
    for k, v in ((d["metadata"].get("annotations")) or {}).items():
        if k not in SKIP_COPY:
            out[k] = v
    old = out.get(REVISION, "")
    try:
        old_n = int(old) if old else 0
    except ValueError:
        old_n = 0
    if old_n < new_revision:
        out[REVISION] = str(new_revision)
        if old and exists:
            hist = out.get(REVISION_HISTORY, "")
            out[REVISION_HISTORY] = f"{hist},{old}" if hist else old
    if not exists:
        out[DESIRED_REPLICAS] = str(replicas_of(d))
        out[MAX_REPLICAS] = str(replicas_of(d) + max_surge(d))
    return out


def build_new_rs(d: Obj, hash_: str, replicas: int, revision: int) -> Obj:
    m = d["metadata"]
    spec = d.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    tm = template.setdefault("metadata", {})
    tm.setdefault("labels", {})[HASH_LABEL] = hash_
    selector = copy.deepcopy(spec.get("selector") or {})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = hash_
    rs_spec: Obj = {"replicas": replicas, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        rs_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{m['name']}-{hash_}", "namespace": m.get("namespace", ""),
                         "labels": dict(tm["labels"]),
                         "annotations": new_rs_annotations(d, {}, revision, False),
                         "ownerReferences": [owner_reference(d, "apps/v1", "Deployment")]},
            "spec": rs_spec}


# ---- the controller ------------------------------------------------------------------------------
class DeploymentController:
    def __init__(self, client: Client, workers: int = 2, recorder: EventRecorder | None = None,
                 clock: Clock = utcnow, informers: InformerFactory | None = None) -> None:
        self.client, self.clock = client, clock
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        # Without a factory from the daemon the controller owns private informers and runs them.
        factory = informers or InformerFactory(client)
        self.deployments = factory.informer("apps/deployments")
        self.rs = factory.informer("apps/replicasets")
        self.pods = factory.informer("pods")
        self.queue = WorkQueue()
        self.deployments.add_handler(lambda old, new: self.queue.add(object_key(new if new is not None else old or {})))
        self.rs.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.deployments, self.rs, self.pods], workers,
                                     run_informers=informers is None, failed=report_failures(self.deployments, self.recorder.event))

    async def run(self) -> None:
        await self.controller.run()

    # ---- handlers ------------------------------------------------------------------------------
    def _owner_key(self, rs: Obj) -> str | None:
        return owner_key(rs, "Deployment")

    def _on_rs(self, old: Obj | None, new: Obj | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            key = self._owner_key(obj)
            if key:
                self.queue.add(key)
            elif obj is new:
                labels = obj["metadata"].get("labels") or {}
                for d in self.deployments.list(obj["metadata"].get("namespace", "")):
                    try:
                        if LabelSelector.from_api((d.get("spec") or {}).get("selector")).matches(labels):
                            self.queue.add(object_key(d))
                    except SelectorError:
                        continue

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        # Only Recreate waits on pods: a pod of an old ReplicaSet going away may unblock it.
        if new is not None or old is None:
            return
        ref = controller_ref(old)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs.get(old["metadata"].get("namespace", ""), str(ref.get("name", "")))
        key = self._owner_key(rs) if rs else None
        if key:
            self.queue.add(key)

    # ---- sync ----------------------------------------------------------------------------------
    async def sync(self, key: str) -> float | None:
        d = self.deployments.get_by_key(key)
        if d is None:
            return None
        ns, _ = split_key(key)
        try:
            selector = LabelSelector.from_api((d.get("spec") or {}).get("selector"))
        except SelectorError as e:
            log.warning("deployment %s: invalid selector: %s", key, e)
            return None
        if selector.empty:
            await self.recorder.event(d, "Warning", "SelectingAll", "This deployment is selecting all pods. A non-empty selector is required.")
            return None
        rss = await self._claim(d, selector)
        if d["metadata"].get("deletionTimestamp"):
            await self._write_status(d, calculate_status(d, rss, self._find_new(d, rss), timestamp(self.clock())))
            return None
        d = await self._paused_conditions(d)
        new_rs = self._find_new(d, rss)
        olds = [rs for rs in rss if rs is not new_rs]
        active = [rs_state(rs) for rs in rss if replicas_of(rs) > 0]
        if (d.get("spec") or {}).get("paused") or is_scaling_event(replicas_of(d), active):
            return await self._sync_scale(d, rss)
        if is_rolling(d):
            return await self._rollout_rolling(d, rss)
        return await self._rollout_recreate(d, rss, olds, new_rs)

    def _find_new(self, d: Obj, rss: list[Obj]) -> Obj | None:
        tmpl = (d.get("spec") or {}).get("template") or {}
        matches = [rs for rs in rss if equal_ignore_hash((rs.get("spec") or {}).get("template") or {}, tmpl)]
        if not matches:
            return None
        return min(matches, key=lambda r: (r["metadata"].get("creationTimestamp") or "", r["metadata"]["name"]))

    async def _claim(self, d: Obj, selector: LabelSelector) -> list[Obj]:
        """ReplicaSets of this Deployment: its own, adopted orphans; owned ones that no longer match
        the selector are released (ControllerRefManager.ClaimReplicaSets)."""
        ns = d["metadata"].get("namespace", "")
        own = self.rs.by_index(CONTROLLER_INDEX, d["metadata"].get("uid", ""))
        orphans = [rs for rs in self.rs.list(ns) if controller_ref(rs) is None]
        return await ownership.claim_and_write(self.client, "apps/replicasets", d, "apps/v1", "Deployment", selector,
                                               own + orphans, COMPONENT)

    async def _paused_conditions(self, d: Obj) -> Obj:
        """checkPausedConditions: Progressing=Unknown while paused, DeploymentResumed after."""
        if deadline_seconds(d) is None:
            return d
        status = copy.deepcopy(d.get("status") or {})
        cond = get_condition(status, PROGRESSING)
        paused = bool((d.get("spec") or {}).get("paused"))
        ts = timestamp(self.clock())
        if paused and (cond is None or cond.get("reason") != PAUSED):
            set_condition(status, PROGRESSING, "Unknown", PAUSED, "Deployment is paused", ts)
        elif not paused and cond is not None and cond.get("reason") == PAUSED:
            set_condition(status, PROGRESSING, "Unknown", RESUMED, "Deployment is resumed", ts)
        else:
            return d
        return await self._write_status(d, status)

    async def _new_rs(self, d: Obj, rss: list[Obj], create: bool) -> tuple[Obj, Obj | None]:
        """getNewReplicaSet + revision bookkeeping; returns the (maybe updated) Deployment and RS."""
        existing = self._find_new(d, rss)
        olds = [rs for rs in rss if rs is not existing]
        new_revision = max((revision_of(rs) for rs in olds), default=0) + 1
        ns = d["metadata"].get("namespace", "")
        if existing is not None:
            anns = existing["metadata"].get("annotations") or {}
            want = new_rs_annotations(d, anns, new_revision, True)
            min_ready = (d.get("spec") or {}).get("minReadySeconds") or 0
            if want != anns or ((existing.get("spec") or {}).get("minReadySeconds") or 0) != min_ready:
                upd = copy.deepcopy(existing)
                upd["metadata"]["annotations"] = want
                upd["spec"]["minReadySeconds"] = min_ready
                existing = await self.client.update("apps/replicasets", ns, existing["metadata"]["name"], upd, field_manager=COMPONENT)
            d = await self._set_revision(d, existing)
            if deadline_seconds(d) is not None and get_condition(d.get("status") or {}, PROGRESSING) is None:
                status = copy.deepcopy(d.get("status") or {})
                set_condition(status, PROGRESSING, "True", FOUND_NEW_RS, f'Found new replica set "{existing["metadata"]["name"]}"',
                              timestamp(self.clock()))
                d = await self._write_status(d, status)
            return d, existing
        if not create:
            return d, None
        collisions = (d.get("status") or {}).get("collisionCount")
        hash_ = template_hash((d.get("spec") or {}).get("template") or {}, collisions)
        replicas = new_rs_replicas(replicas_of(d), max_surge(d), is_rolling(d), None, [rs_state(rs) for rs in olds])
        body = build_new_rs(d, hash_, replicas, new_revision)
        try:
            created = await self.client.create("apps/replicasets", ns, body, field_manager=COMPONENT)
        except ClientError as e:
            if e.code != 409:
                raise
            found = await self.client.get("apps/replicasets", ns, body["metadata"]["name"])
            ref = controller_ref(found) if found else None
            if found is not None and ref is not None and ref.get("uid") == d["metadata"].get("uid") and \
                    equal_ignore_hash((found.get("spec") or {}).get("template") or {}, (d.get("spec") or {}).get("template") or {}):
                return d, found  # our cache had not seen it yet
            # A hash collision: bump collisionCount so the next sync hashes differently.
            status = copy.deepcopy(d.get("status") or {})
            status["collisionCount"] = int(collisions or 0) + 1
            await self._write_status(d, status)
            raise
        name = created["metadata"]["name"]
        if replicas > 0:
            await self.recorder.event(d, "Normal", "ScalingReplicaSet", f"Scaled up replica set {name} from 0 to {replicas}")
        d = await self._set_revision(d, created)
        if deadline_seconds(d) is not None:
            status = copy.deepcopy(d.get("status") or {})
            set_condition(status, PROGRESSING, "True", NEW_RS_CREATED, f'Created new replica set "{name}"', timestamp(self.clock()))
            d = await self._write_status(d, status)
        return d, created

    async def _set_revision(self, d: Obj, rs: Obj) -> Obj:
        rev = (rs["metadata"].get("annotations") or {}).get(REVISION)
        anns = d["metadata"].get("annotations") or {}
        if not rev or anns.get(REVISION) == rev:
            return d
        upd = copy.deepcopy(d)
        upd["metadata"].setdefault("annotations", {})[REVISION] = rev
        m = d["metadata"]
        return await self.client.update("apps/deployments", m["namespace"], m["name"], upd, field_manager=COMPONENT)

    async def _scale(self, d: Obj, rs: Obj, replicas: int) -> Obj:
        """Set spec.replicas and the size annotations; records ScalingReplicaSet."""
        m = rs["metadata"]
        anns = dict(m.get("annotations") or {})
        want = {DESIRED_REPLICAS: str(replicas_of(d)), MAX_REPLICAS: str(replicas_of(d) + max_surge(d))}
        before = replicas_of(rs)
        if before == replicas and all(anns.get(k) == v for k, v in want.items()):
            return rs
        upd = copy.deepcopy(rs)
        upd["spec"]["replicas"] = replicas
        upd["metadata"]["annotations"] = {**anns, **want}
        out = await self.client.update("apps/replicasets", m["namespace"], m["name"], upd, field_manager=COMPONENT)
        if before != replicas:
            direction = "up" if replicas > before else "down"
            await self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                      f"Scaled {direction} replica set {m['name']} from {before} to {replicas}")
        return out

    async def _apply(self, d: Obj, rss: list[Obj], plan: dict[str, int]) -> list[Obj]:
        out = []
        for rs in rss:
            name = rs["metadata"]["name"]
            out.append(await self._scale(d, rs, plan[name]) if name in plan else rs)
        return out

    async def _sync_scale(self, d: Obj, rss: list[Obj]) -> float | None:
        """Paused or resized: proportional scaling only, no new ReplicaSet (kube's sync)."""
        d, new_rs = await self._new_rs(d, rss, create=False)
        if new_rs is not None:
            rss = [new_rs if rs["metadata"]["name"] == new_rs["metadata"]["name"] else rs for rs in rss]
        olds = [rs for rs in rss if new_rs is None or rs["metadata"]["name"] != new_rs["metadata"]["name"]]
        desired = replicas_of(d)
        new_state = rs_state(new_rs) if new_rs else None
        saturated = (new_state is not None and new_state.replicas == desired and new_state.desired == desired
                     and new_state.available == desired)
        plan = proportional_scale(desired, max_surge(d), is_rolling(d), new_state, [rs_state(o) for o in olds], saturated)
        rss = await self._apply(d, rss, plan)
        # Keep the size annotations in step so the next sync is not another scaling event.
        rss = await self._apply(d, rss, {rs["metadata"]["name"]: replicas_of(rs) for rs in rss if replicas_of(rs) > 0})
        new_rs = next((rs for rs in rss if new_rs is not None and rs["metadata"]["name"] == new_rs["metadata"]["name"]), None)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, [rs for rs in rss if rs is not new_rs])
        status = calculate_status(d, rss, new_rs, timestamp(self.clock()))
        await self._write_status(d, status)
        return None

    async def _rollout_rolling(self, d: Obj, rss: list[Obj]) -> float | None:
        d, new_rs = await self._new_rs(d, rss, create=True)
        assert new_rs is not None
        rss = [rs for rs in rss if rs["metadata"]["name"] != new_rs["metadata"]["name"]] + [new_rs]
        olds = rss[:-1]
        plan = rolling_step(replicas_of(d), max_surge(d), max_unavailable(d), rs_state(new_rs), [rs_state(o) for o in olds])
        if plan:
            rss = await self._apply(d, rss, plan)
            new_rs = rss[-1]
        elif rollout_complete(d, d.get("status") or {}):
            await self._cleanup(d, olds)
        return await self._sync_rollout_status(d, rss, new_rs)

    async def _rollout_recreate(self, d: Obj, rss: list[Obj], olds: list[Obj], new_rs: Obj | None) -> float | None:
        down = recreate_step(replicas_of(d), None, [rs_state(o) for o in olds], True)
        if down:
            rss = await self._apply(d, rss, down)
            return await self._sync_rollout_status(d, rss, new_rs)
        old_uids = {o["metadata"].get("uid") for o in olds}
        running = any(status_int(o, "replicas") > 0 for o in olds) or any(
            (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
            for uid in old_uids for p in self.pods.by_index(CONTROLLER_INDEX, str(uid or "")))
        if running:
            return await self._sync_rollout_status(d, rss, new_rs)
        d, new_rs = await self._new_rs(d, rss, create=True)
        assert new_rs is not None
        rss = [rs for rs in rss if rs["metadata"]["name"] != new_rs["metadata"]["name"]] + [new_rs]
        plan = recreate_step(replicas_of(d), rs_state(new_rs), [], False)
        rss = await self._apply(d, rss, plan)
        new_rs = rss[-1]
        if rollout_complete(d, d.get("status") or {}):
            await self._cleanup(d, rss[:-1])
        return await self._sync_rollout_status(d, rss, new_rs)

    async def _sync_rollout_status(self, d: Obj, rss: list[Obj], new_rs: Obj | None) -> float | None:
        now = self.clock()
        status = rollout_status(d, rss, new_rs, now)
        await self._write_status(d, status)
        return requeue_after(d, status, now)

    async def _cleanup(self, d: Obj, olds: list[Obj]) -> None:
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        for rs in history_to_delete(olds, int(limit)):
            m = rs["metadata"]
            await self.client.delete("apps/replicasets", m["namespace"], m["name"], precondition_uid=m.get("uid", ""))

    async def _write_status(self, d: Obj, status: Obj) -> Obj:
        if status == (d.get("status") or {}):
            return d
        upd = copy.deepcopy(d)
        upd["status"] = status
        m = d["metadata"]
        return await self.client.update("apps/deployments", m["namespace"], m["name"], upd, subresource="status",
                                        field_manager=COMPONENT)
