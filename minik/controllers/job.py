"""Job controller: run pods to completion (Kubernetes 1.32 batch/v1 Job).

A sync reads the Job and its pods from the shared informers and asks the pure `plan()` what to
do; the controller then writes, in this order (so a crash between two writes never counts a pod
twice — the `batch.kubernetes.io/job-tracking` protocol):
1. the Job status (CAS on its resourceVersion): finished pods that still carry the tracking
   finalizer go to `status.uncountedTerminatedPods`; uids already there whose pods lost the
   finalizer move into `succeeded`/`failed`; conditions, counts, completedIndexes, startTime;
2. the tracking finalizer is removed from every pod whose uid is recorded as uncounted;
3. pods are created (from the template, with the finalizer; Indexed jobs get the completion
   index annotation and label, `JOB_COMPLETION_INDEX` and hostname `<job>-<index>`) or deleted.
Behaviour followed: completions/parallelism, NonIndexed and Indexed modes, backoffLimit with
exponential back-off (10s·2^(n-1), capped at 6 min) between a failure and the replacement,
activeDeadlineSeconds, suspend, podFailurePolicy (FailJob/Ignore/Count on exit codes and pod
conditions), backoffLimitPerIndex/maxFailedIndexes (failure counts carried
in `batch.kubernetes.io/job-index-failure-count`, `status.failedIndexes`), successPolicy for Indexed Jobs (succeededIndexes/succeededCount; pods stopped after
the criteria are met are not failures), podReplacementPolicy (TerminatingOrFailed counts a deleted pod as failed at once;
Failed waits for it), SuccessCriteriaMet/Complete and FailureTarget/Failed conditions (the final
one once no pod is left running), ttlSecondsAfterFinished (the Job is deleted, its pods with it).
Neighbours: `minik.machinery` (shared informers, queue, expectations, events, pod helpers); the
garbage collector deletes a deleted Job's pods, and this controller strips their finalizer.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery import ownership
from minik.machinery import pods as podutil
from minik.machinery.controller import Controller, Expectations, controller_ref, owner_key, report_failures
from minik.machinery.events import Clock, EventRecorder, timestamp, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.timestamps import parse_time
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.job")

COMPONENT = "job-controller"
API_VERSION, KIND = "batch/v1", "Job"
TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
INDEX_ENV = "JOB_COMPLETION_INDEX"
FAILURE_COUNT_KEY = "batch.kubernetes.io/job-index-failure-count"
ORPHAN_PREFIX = "pod:"
BURST = 500


@dataclass(frozen=True, slots=True)
class JobTiming:
    backoff_base: float = 10.0     # DefaultJobPodFailureBackOff
    backoff_max: float = 360.0     # MaxJobPodFailureBackOff


# ---- pure helpers ---------------------------------------------------------------------------------
def parse_indexes(s: Any) -> set[int]:
    """`status.completedIndexes` ("1,3-5,7") as a set; malformed parts are skipped."""
    out: set[int] = set()
    if not isinstance(s, str):
        return out
    for part in s.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a = int(lo)
            b = int(hi) if hi else a
        except ValueError:
            continue
        out.update(range(a, b + 1))
    return out


def format_indexes(idx: set[int]) -> str:
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(idx):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
        run = [i]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}")
    return ",".join(parts)


def _meta(o: Obj) -> Obj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(o: Obj) -> Obj:
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def _status(o: Obj) -> Obj:
    s = o.get("status")
    return s if isinstance(s, dict) else {}


def _int(v: Any, default: int | None = None) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else default


def pod_index(pod: Obj) -> int | None:
    v = (_meta(pod).get("annotations") or {}).get(INDEX_KEY)
    if v is None:
        v = (_meta(pod).get("labels") or {}).get(INDEX_KEY)
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def has_finalizer(pod: Obj) -> bool:
    fins = _meta(pod).get("finalizers")
    return isinstance(fins, list) and TRACKING_FINALIZER in fins


def is_indexed(job: Obj) -> bool:
    return _spec(job).get("completionMode") == "Indexed"


def get_condition(status: Obj, ctype: str) -> Obj | None:
    for c in status.get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype:
            return c
    return None


def condition_true(job: Obj, ctype: str) -> bool:
    c = get_condition(_status(job), ctype)
    return c is not None and c.get("status") == "True"


def is_finished(job: Obj) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def set_condition(status: Obj, ctype: str, cstatus: str, reason: str, message: str, now: str) -> bool:
    """Set a condition; False when it already said exactly that."""
    conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
    for c in conds:
        if c.get("type") == ctype:
            if c.get("status") == cstatus and c.get("reason") == reason and c.get("message") == message:
                return False
            if c.get("status") != cstatus:
                c["lastTransitionTime"] = now
            c.update(status=cstatus, reason=reason, message=message, lastProbeTime=now)
            status["conditions"] = conds
            return True
    conds.append({"type": ctype, "status": cstatus, "reason": reason, "message": message,
                  "lastProbeTime": now, "lastTransitionTime": now})
    status["conditions"] = conds
    return True


def only_replace_failed(job: Obj) -> bool:
    return _spec(job).get("podReplacementPolicy") == "Failed"


def pod_outcome(pod: Obj, job: Obj) -> str | None:
    """"Succeeded", "Failed" or None (still running or terminating). A deleted pod that did not
    succeed counts as failed unless the Job replaces only Failed pods (isPodFailed)."""
    phase = _status(pod).get("phase")
    if phase == "Succeeded":
        return "Succeeded"
    if phase == "Failed":
        return "Failed"
    if only_replace_failed(job) or _spec(job).get("suspend") is True:
        return None
    if _meta(pod).get("deletionTimestamp"):
        return "Failed"
    return None


def _terminated(cs: Any) -> Obj | None:
    if not isinstance(cs, dict):
        return None
    t = (cs.get("state") or {}).get("terminated")
    return t if isinstance(t, dict) else None


def failure_policy_match(job: Obj, pod: Obj) -> tuple[str, str] | None:
    """The first podFailurePolicy rule a failed pod matches: (action, message) — FailJob, Ignore,
    Count (matchPodFailurePolicy)."""
    pfp = _spec(job).get("podFailurePolicy")
    if not isinstance(pfp, dict):
        return None
    st = _status(pod)
    statuses = [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]
    name = f"{_meta(pod).get('namespace', '')}/{_meta(pod).get('name', '')}"
    for i, rule in enumerate(pfp.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        action = str(rule.get("action") or "")
        codes = rule.get("onExitCodes")
        if isinstance(codes, dict):
            op, values = codes.get("operator"), set(codes.get("values") or [])
            cname = codes.get("containerName")
            for cs in statuses:
                t = _terminated(cs)
                if t is None or (cname and cs.get("name") != cname):
                    continue
                code = _int(t.get("exitCode"), 0) or 0
                if code == 0:
                    continue  # a container that succeeded matches no exit-code rule
                if (op == "In" and code in values) or (op == "NotIn" and code not in values):
                    return action, (f"Container {cs.get('name')} for pod {name} failed with exit code {code} "
                                    f"matching {action} rule at index {i}")
        for pat in rule.get("onPodConditions") or []:
            if not isinstance(pat, dict):
                continue
            for c in st.get("conditions") or []:
                if isinstance(c, dict) and c.get("type") == pat.get("type") and c.get("status") == (pat.get("status") or "True"):
                    return action, f"Pod {name} has condition {pat.get('type')} matching {action} rule at index {i}"
    return None


def success_policy_match(job: Obj, completed: set[int]) -> int | None:
    """The index of the first successPolicy rule the completed indexes satisfy (Indexed Jobs):
    succeededIndexes alone — all of them; with succeededCount — that many of them; succeededCount
    alone — that many indexes in total."""
    sp = _spec(job).get("successPolicy")
    if not is_indexed(job) or not isinstance(sp, dict):
        return None
    for i, rule in enumerate(sp.get("rules") or []):
        if not isinstance(rule, dict):
            continue
        count = _int(rule.get("succeededCount"))
        if rule.get("succeededIndexes") is not None:
            want = parse_indexes(rule.get("succeededIndexes"))
            got = len(completed & want)
            if (count is None and want and got == len(want)) or (count is not None and got >= count):
                return i
        elif count is not None and len(completed) >= count:
            return i
    return None


def finished_time(pod: Obj) -> dt.datetime | None:
    """When a pod finished: its containers' latest finishedAt, else its deletion or creation time."""
    best: dt.datetime | None = None
    for cs in _status(pod).get("containerStatuses") or []:
        t = _terminated(cs)
        at = parse_time(t.get("finishedAt")) if t else None
        if at is not None and (best is None or at > best):
            best = at
    return best or parse_time(_meta(pod).get("deletionTimestamp")) or parse_time(_meta(pod).get("creationTimestamp"))


def backoff_delay(failures: int, timing: JobTiming) -> float:
    if failures <= 0:
        return 0.0
    return float(min(timing.backoff_max, timing.backoff_base * (2 ** (failures - 1))))


def deletion_order(pods: list[Obj]) -> list[Obj]:
    """Excess pods to delete first: not ready before ready, newest first."""
    return sorted(pods, key=lambda p: (podutil.pod_ready(p), tuple(-ord(c) for c in _meta(p).get("creationTimestamp") or "")))


@dataclass(frozen=True, slots=True)
class JobPlan:
    status: Obj                              # the status to write (== the job's when unchanged)
    remove_finalizers: tuple[Obj, ...] = ()  # after the status write
    create: tuple[int | None, ...] = ()      # completion indexes (None: NonIndexed)
    index_failures: tuple[tuple[int, int], ...] = ()   # failures so far per index (backoffLimitPerIndex)
    delete: tuple[Obj, ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()
    delete_job: bool = False
    requeue: float | None = None


@dataclass
class _Work:
    events: list[tuple[str, str, str]] = field(default_factory=list)
    requeue: list[float] = field(default_factory=list)


def plan(job: Obj, pods: list[Obj], now: dt.datetime, timing: JobTiming = JobTiming()) -> JobPlan:
    """What the Job controller does next, given the Job and the pods it owns."""
    spec = _spec(job)
    old = _status(job)
    status = copy.deepcopy(old)
    ts = timestamp(now)
    w = _Work()
    indexed = is_indexed(job)
    completions = _int(spec.get("completions"))
    parallelism = max(0, _int(spec.get("parallelism"), 1) or 0)
    backoff_limit = _int(spec.get("backoffLimit"), 6) or 0
    suspended = spec.get("suspend") is True
    finished = is_finished(job)
    deleting = bool(_meta(job).get("deletionTimestamp"))
    succeeded_already = condition_true(job, "SuccessCriteriaMet")

    unc = status.get("uncountedTerminatedPods")
    unc = unc if isinstance(unc, dict) else {}
    unc_ok = [u for u in unc.get("succeeded") or [] if isinstance(u, str)]
    unc_fail = [u for u in unc.get("failed") or [] if isinstance(u, str)]
    by_uid = {_meta(p).get("uid"): p for p in pods}
    completed = parse_indexes(status.get("completedIndexes")) if indexed else set()
    per_index = _int(spec.get("backoffLimitPerIndex")) if indexed else None
    failed_idx = parse_indexes(status.get("failedIndexes")) if per_index is not None else set()
    index_failures: dict[int, int] = {}
    for fp in pods:
        fi = pod_index(fp)
        if per_index is not None and fi is not None and pod_outcome(fp, job) == "Failed":
            index_failures[fi] = max(index_failures.get(fi, 0), failure_count(fp) + 1)
    succeeded = _int(status.get("succeeded"), 0) or 0
    failed = _int(status.get("failed"), 0) or 0

    # 1. move uncounted uids whose pods lost the finalizer (or vanished) into the counts.
    for lst, which in ((unc_ok, "s"), (unc_fail, "f")):
        for uid in list(lst):
            p = by_uid.get(uid)
            if p is None or not has_finalizer(p):
                lst.remove(uid)
                if which == "s":
                    succeeded += 1
                else:
                    failed += 1
    if indexed:
        succeeded = len(completed) if completed else succeeded

    # 2. finished pods still carrying the finalizer become uncounted (or are dropped: Ignore,
    #    or the job is already finished / being deleted: nothing counts any more).
    remove: list[Obj] = []
    failure_target: tuple[str, str] | None = None
    last_failure: dt.datetime | None = None
    new_failures = 0
    for p in pods:
        outcome = pod_outcome(p, job)
        uid = _meta(p).get("uid", "")
        if outcome == "Failed":
            at = finished_time(p)
            if at is not None and (last_failure is None or at > last_failure):
                last_failure = at
        if not has_finalizer(p):
            continue
        if uid in unc_ok or uid in unc_fail:
            remove.append(p)
            continue
        if finished or deleting or (succeeded_already and outcome != "Succeeded"):
            # Pods stopped after the success criteria were met are not failures.
            if outcome is not None or _meta(p).get("deletionTimestamp") or deleting:
                remove.append(p)
            continue
        if outcome == "Succeeded":
            idx = pod_index(p)
            if indexed and (idx is None or completions is None or not 0 <= idx < completions or idx in completed):
                remove.append(p)   # a duplicate or out-of-range index does not count
                continue
            if indexed and idx is not None:
                completed.add(idx)
            unc_ok.append(uid)
            remove.append(p)
        elif outcome == "Failed":
            match = failure_policy_match(job, p) if _status(p).get("phase") == "Failed" else None
            if match is not None and match[0] == "Ignore":
                remove.append(p)
                continue
            if match is not None and match[0] == "FailJob" and failure_target is None:
                failure_target = ("PodFailurePolicy", match[1])
            idx = pod_index(p)
            if per_index is not None and idx is not None and (
                    failure_count(p) + 1 > per_index or (match is not None and match[0] == "FailIndex")):
                failed_idx.add(idx)
            unc_fail.append(uid)
            new_failures += 1
            remove.append(p)
    if indexed:
        succeeded = len(completed)
        status["completedIndexes"] = format_indexes(completed)
    if per_index is not None:
        status["failedIndexes"] = format_indexes(failed_idx - completed)
    status["uncountedTerminatedPods"] = {k: v for k, v in (("succeeded", unc_ok), ("failed", unc_fail)) if v}
    known_ok = succeeded + (0 if indexed else len(unc_ok))
    known_failed = failed + len(unc_fail)

    active = [p for p in pods if pod_outcome(p, job) is None and not _meta(p).get("deletionTimestamp")]
    terminating = [p for p in pods if pod_outcome(p, job) is None and _meta(p).get("deletionTimestamp")]
    create: list[int | None] = []
    delete: list[Obj] = []

    if not finished and not deleting:
        if status.get("startTime") is None and not suspended:
            status["startTime"] = ts
        # Failure criteria.
        if get_condition(status, "FailureTarget") is None and get_condition(status, "SuccessCriteriaMet") is None:
            if failure_target is None and known_failed > backoff_limit:
                failure_target = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            max_failed = _int(spec.get("maxFailedIndexes"))
            if failure_target is None and max_failed is not None and len(failed_idx) > max_failed:
                failure_target = ("MaxFailedIndexesExceeded", "Job has exceeded the specified maximal number of failed indexes")
            if failure_target is None and failed_idx and len(completed | failed_idx) >= (completions or 0) \
                    and not (unc_ok or unc_fail):
                failure_target = ("FailedIndexes", "Job has failed indexes")
            ads = _int(spec.get("activeDeadlineSeconds"))
            start = parse_time(status.get("startTime"))
            if failure_target is None and ads is not None and start is not None and not suspended:
                left = (start + dt.timedelta(seconds=ads) - now).total_seconds()
                if left <= 0:
                    failure_target = ("DeadlineExceeded", "Job was active longer than specified deadline")
                else:
                    w.requeue.append(left + 0.05)
            if failure_target is not None:
                set_condition(status, "FailureTarget", "True", failure_target[0], failure_target[1], ts)
            elif (rule := success_policy_match(job, completed)) is not None:
                set_condition(status, "SuccessCriteriaMet", "True", "SuccessPolicy", f"Matched rules at index {rule}", ts)
            elif (completions is not None and known_ok >= completions) or \
                    (completions is None and known_ok > 0 and not active):
                set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                              "Reached expected number of succeeded pods", ts)
        ft = get_condition(status, "FailureTarget")
        sc = get_condition(status, "SuccessCriteriaMet")
        if ft is not None or sc is not None:
            delete = list(active)
            if not active and not (terminating and only_replace_failed(job)) and not unc_ok and not unc_fail:
                if ft is not None:
                    set_condition(status, "Failed", "True", str(ft.get("reason")), str(ft.get("message")), ts)
                    w.events.append(("Warning", str(ft.get("reason")), str(ft.get("message"))))
                elif sc is not None:
                    set_condition(status, "Complete", "True", str(sc.get("reason")), str(sc.get("message")), ts)
                    status["completionTime"] = ts
                    w.events.append(("Normal", "Completed", "Job completed"))
        elif suspended:
            delete = list(active)
            if set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", ts):
                w.events.append(("Normal", "Suspended", "Job suspended"))
        else:
            if condition_true(job, "Suspended"):
                set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", ts)
                status["startTime"] = ts
                w.events.append(("Normal", "Resumed", "Job resumed"))
            busy = len(active) + (len(terminating) if only_replace_failed(job) else 0)
            if indexed:
                running = {pod_index(p) for p in active} | ({pod_index(p) for p in terminating} if only_replace_failed(job) else set())
                pending = [i for i in range(completions or 0) if i not in completed and i not in running and i not in failed_idx]
                want = min(len(pending), max(0, parallelism - busy))
                create = list(pending[:want])
                # Two pods for one index: keep the oldest.
                seen: dict[int, Obj] = {}
                for p in sorted(active, key=lambda p: _meta(p).get("creationTimestamp") or ""):
                    i = pod_index(p)
                    if i is None or (completions is not None and not 0 <= i < completions) or i in completed or i in seen:
                        delete.append(p)
                    elif i is not None:
                        seen[i] = p
            else:
                if completions is None:
                    want_active = 0 if known_ok > 0 else parallelism
                else:
                    want_active = max(0, min(parallelism, completions - known_ok))
                if busy < want_active:
                    create = [None] * (want_active - busy)
                elif len(active) > want_active:
                    delete = deletion_order(active)[:len(active) - want_active]
            if create and known_failed > 0 and last_failure is not None:
                left = (last_failure + dt.timedelta(seconds=backoff_delay(known_failed, timing)) - now).total_seconds()
                if left > 0:
                    create = []
                    w.requeue.append(left + 0.05)
            create = create[:BURST]
    going = {id(p) for p in delete}
    for k, v in (("active", sum(1 for p in active if id(p) not in going)), ("succeeded", succeeded), ("failed", failed)):
        if v:
            status[k] = v
        else:
            status.pop(k, None)
    status["ready"] = sum(1 for p in active if podutil.pod_ready(p) and id(p) not in going)
    status["terminating"] = len(terminating)
    delete_job = False
    ttl = _int(spec.get("ttlSecondsAfterFinished"))
    if ttl is not None and (is_finished(job) or get_condition(status, "Complete") or get_condition(status, "Failed")) and not deleting:
        done = parse_time(status.get("completionTime"))
        for c in status.get("conditions") or []:
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
                done = done or parse_time(c.get("lastTransitionTime"))
        left = ((done or now) + dt.timedelta(seconds=ttl) - now).total_seconds()
        if left <= 0:
            delete_job = True
        else:
            w.requeue.append(left + 0.05)
    return JobPlan(status=status, remove_finalizers=tuple(remove), create=tuple(create),
                   index_failures=tuple((i, index_failures[i]) for i in create if i is not None and i in index_failures),
                   delete=tuple(delete), events=tuple(w.events), delete_job=delete_job,
                   requeue=min(w.requeue) if w.requeue else None)


def failure_count(pod: Obj) -> int:
    """How many pods of this pod's index failed before it (backoffLimitPerIndex bookkeeping)."""
    try:
        return int((_meta(pod).get("annotations") or {}).get(FAILURE_COUNT_KEY) or 0)
    except (TypeError, ValueError):
        return 0


def pod_for(job: Obj, index: int | None, failures: int = 0) -> Obj:
    """The pod a Job creates (for completion `index` when Indexed)."""
    name = _meta(job).get("name", "")
    pod = podutil.pod_from_template(job, API_VERSION, KIND, name_prefix=f"{name}-" if index is None else f"{name}-{index}-")
    m = pod["metadata"]
    m["finalizers"] = [*(f for f in m.get("finalizers") or [] if f != TRACKING_FINALIZER), TRACKING_FINALIZER]
    if index is not None:
        m.setdefault("annotations", {})[INDEX_KEY] = str(index)
        if _spec(job).get("backoffLimitPerIndex") is not None:
            m["annotations"][FAILURE_COUNT_KEY] = str(failures)
        m.setdefault("labels", {})[INDEX_KEY] = str(index)
        ps = pod["spec"]
        if not ps.get("hostname"):
            ps["hostname"] = f"{name}-{index}"
        env = {"name": INDEX_ENV, "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                            "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}}
        for kind in ("initContainers", "containers"):
            for c in ps.get(kind) or []:
                if isinstance(c, dict) and not any(isinstance(e, dict) and e.get("name") == INDEX_ENV for e in c.get("env") or []):
                    c["env"] = [*(c.get("env") or []), copy.deepcopy(env)]
    return pod


# ---- the controller --------------------------------------------------------------------------------
class JobController:
    def __init__(self, client: Client, informers: InformerFactory | None = None, workers: int = 2,
                 recorder: EventRecorder | None = None, clock: Clock = utcnow, timing: JobTiming = JobTiming()) -> None:
        self.client, self.clock, self.timing = client, clock, timing
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        factory = informers or InformerFactory(client)
        self.jobs = factory.informer("batch/jobs")
        self.pods = factory.informer("pods")
        self.queue = WorkQueue()
        self.expectations = Expectations()
        self.jobs.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.jobs, self.pods], workers,
                                     run_informers=informers is None, failed=report_failures(self.jobs, self.recorder.event))

    async def run(self) -> None:
        await self.controller.run()

    def _on_job(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if new is None:
            self.expectations.forget(object_key(obj))
        self.queue.add(object_key(obj))

    def _job_key(self, pod: Obj) -> str | None:
        return owner_key(pod, KIND, api_group="batch")

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        key = self._job_key(pod)
        if key is None:
            if new is not None and has_finalizer(new) and controller_ref(new) is None:
                # Orphaned (e.g. `kubectl delete job --cascade=orphan`): nobody tracks it any more.
                self.queue.add(ORPHAN_PREFIX + object_key(new))
            return
        name = _meta(pod).get("name", "")
        if new is None:
            self.expectations.deletion_observed(key, name)
        elif old is None:
            if _meta(new).get("deletionTimestamp"):
                self.expectations.deletion_observed(key, name)
            else:
                self.expectations.creation_observed(key)
        elif _meta(new).get("deletionTimestamp") and not _meta(old).get("deletionTimestamp"):
            self.expectations.deletion_observed(key, name)
        job = self.jobs.get_by_key(key)
        if new is not None and has_finalizer(new) and (job is None or _meta(job).get("uid") != (controller_ref(new) or {}).get("uid")):
            # The Job is gone: nobody else will ever take the finalizer off.
            self.queue.add(ORPHAN_PREFIX + object_key(new))
            return
        self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        if key.startswith(ORPHAN_PREFIX):
            await self._release_orphan(key[len(ORPHAN_PREFIX):])
            return None
        job = self.jobs.get_by_key(key)
        if job is None:
            self.expectations.forget(key)
            return None
        ns, name = split_key(key)
        try:
            selector = LabelSelector.from_api(_spec(job).get("selector"))
        except SelectorError as e:
            log.warning("job %s: invalid selector: %s", key, e)
            return None
        candidates = self.pods.by_index(CONTROLLER_INDEX, _meta(job).get("uid", ""))
        candidates += [p for p in self.pods.list(ns) if controller_ref(p) is None]
        pods = await ownership.claim_and_write(self.client, "pods", job, API_VERSION, KIND, selector, candidates, COMPONENT)
        p = plan(job, pods, self.clock(), self.timing)
        if p.status != _status(job):
            new = copy.deepcopy(job)
            new["status"] = p.status
            await self.client.update("batch/jobs", ns, name, new, subresource="status", field_manager=COMPONENT)
        for t, reason, msg in p.events:
            await self.recorder.event(job, t, reason, msg)
        await asyncio.gather(*(self._remove_finalizer(pod) for pod in p.remove_finalizers))
        if p.delete_job:
            await self.client.delete("batch/jobs", ns, name, precondition_uid=_meta(job).get("uid", ""),
                                     propagation_policy="Background")
            return None
        if self.expectations.satisfied(key):
            if p.delete:
                await self._delete(job, key, list(p.delete))
            if p.create:
                await self._create(job, key, list(p.create), dict(p.index_failures))
        return p.requeue

    async def _release_orphan(self, key: str) -> None:
        pod = self.pods.get_by_key(key)
        if pod is None or not has_finalizer(pod):
            return
        job_key = self._job_key(pod)
        job = self.jobs.get_by_key(job_key) if job_key else None
        if job is not None and _meta(job).get("uid") == (controller_ref(pod) or {}).get("uid"):
            self.queue.add(job_key or "")
            return
        await self._remove_finalizer(pod)

    async def _remove_finalizer(self, pod: Obj) -> None:
        m = _meta(pod)
        fins = [f for f in m.get("finalizers") or [] if f != TRACKING_FINALIZER]
        try:
            await self.client.patch("pods", m.get("namespace", ""), m.get("name", ""),
                                    {"metadata": {"finalizers": fins or None, "resourceVersion": m.get("resourceVersion")}},
                                    field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise

    async def _create(self, job: Obj, key: str, indexes: list[int | None], failures: dict[int, int]) -> None:
        self.expectations.expect(key, adds=len(indexes))
        ns = _meta(job).get("namespace", "")
        results = await asyncio.gather(*(self.client.create("pods", ns, pod_for(job, i, failures.get(i, 0) if i is not None else 0),
                                                          field_manager=COMPONENT)
                                         for i in indexes), return_exceptions=True)
        failure: ClientError | None = None
        for r in results:
            if isinstance(r, ClientError):
                failure = r
                self.expectations.lower(key, adds=1)
            elif isinstance(r, BaseException):
                raise r
            else:
                await self.recorder.event(job, "Normal", "SuccessfulCreate", f"Created pod: {r['metadata']['name']}")
        if failure is not None:
            await self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {failure.message}")
            raise failure

    async def _delete(self, job: Obj, key: str, victims: list[Obj]) -> None:
        names = [_meta(p).get("name", "") for p in victims]
        self.expectations.expect(key, deletes=names)
        ns = _meta(job).get("namespace", "")
        for pod in victims:
            n = _meta(pod).get("name", "")
            try:
                if await self.client.delete("pods", ns, n, precondition_uid=_meta(pod).get("uid", "")) is None:
                    self.expectations.lower(key, deletes=[n])
                    continue
            except ClientError as e:
                self.expectations.lower(key, deletes=[n])
                if not e.not_found:
                    raise
                continue
            await self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {n}")
