"""CronJob controller: Jobs on a schedule (Kubernetes 1.32 batch/v1 CronJob).

Schedules are standard cron (5 fields, names, ranges, steps; day-of-month and day-of-week OR-ed
as cron does), the `@hourly`/`@daily`/… descriptors and `@every <duration>`, evaluated in
`spec.timeZone` (or a legacy `CRON_TZ=`/`TZ=` prefix; UTC otherwise) by croniter, a maintained
parser (validation of the text stays in `minik.apis.validation.batch`).
A sync reads the CronJob and the Jobs it owns from the shared informers and asks the pure
`plan()`:
- `status.active` follows the owned Jobs that have not finished; a finished successful Job moves
  `lastSuccessfulTime`;
- the most recent schedule time since `lastScheduleTime` (or creation, or now minus
  startingDeadlineSeconds) is the only candidate, however many were missed — after an outage
  at most one Job starts (kube's mostRecentScheduleTime; more than 100 missed times also records
  a TooManyMissedTimes warning); a candidate older than startingDeadlineSeconds is missed;
- concurrencyPolicy: Allow starts it; Forbid skips it while a Job is active; Replace deletes the
  active Jobs first; `suspend` starts nothing;
- the Job is `<cronjob>-<scheduled unix minutes>` with the template's labels and annotations,
  the `batch.kubernetes.io/cronjob-scheduled-timestamp` annotation and a controller reference;
- finished Jobs beyond successfulJobsHistoryLimit / failedJobsHistoryLimit are deleted, oldest
  first; the key is looked at again at the next schedule time (nothing runs in between).
Neighbours: `minik.machinery` (shared informers, queue, events); the Job controller runs the Jobs.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import re
import zoneinfo
from dataclasses import dataclass, field
from croniter import croniter

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller, controller_ref, owner_reference, report_failures
from minik.machinery.events import Clock, EventRecorder, timestamp, utcnow
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import CONTROLLER_INDEX, InformerFactory
from minik.machinery.timestamps import parse_time
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.cronjob")

COMPONENT = "cronjob-controller"
API_VERSION, KIND = "batch/v1", "CronJob"
SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
MAX_MISSED = 100
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class ScheduleError(ValueError):
    pass


def _meta(o: Obj) -> Obj:
    m = o.get("metadata")
    return m if isinstance(m, dict) else {}


def _spec(o: Obj) -> Obj:
    s = o.get("spec")
    return s if isinstance(s, dict) else {}


def _status(o: Obj) -> Obj:
    s = o.get("status")
    return s if isinstance(s, dict) else {}


# ---- schedules ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Schedule:
    expr: str                 # 5-field cron text ("" with `every`)
    zone: dt.tzinfo
    every: float = 0.0        # "@every <duration>" in seconds

    def next_after(self, t: dt.datetime) -> dt.datetime:
        """The first activation strictly after `t` (seconds truncated as cron does)."""
        if self.every:
            step = max(1.0, self.every)
            return t + dt.timedelta(seconds=step - (t.timestamp() % 1))
        local = t.astimezone(self.zone)
        nxt: dt.datetime = croniter(self.expr, local).get_next(dt.datetime)
        return nxt.astimezone(dt.timezone.utc)

    def last_at_or_before(self, t: dt.datetime, earliest: dt.datetime) -> dt.datetime:
        """The latest activation in (earliest, t] (one exists: the caller counted some)."""
        if self.every:
            step = max(1.0, self.every)
            n = int((t - earliest).total_seconds() // step)
            return earliest + dt.timedelta(seconds=n * step)
        local = (t + dt.timedelta(seconds=1)).astimezone(self.zone)
        prev: dt.datetime = croniter(self.expr, local).get_prev(dt.datetime)
        return prev.astimezone(dt.timezone.utc)


def _duration(text: str) -> float:
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos or not m.group(1) or m.group(1) == ".":
            raise ScheduleError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ScheduleError(f"invalid duration {text!r}")
    return total


def parse_schedule(text: str, time_zone: str | None) -> Schedule:
    text = text.strip()
    zone_name = time_zone
    m = re.match(r"^(CRON_TZ|TZ)=(\S+)\s+(.*)$", text)
    if m:
        zone_name, text = m.group(2), m.group(3).strip()
    try:
        zone: dt.tzinfo = zoneinfo.ZoneInfo(zone_name) if zone_name else dt.timezone.utc
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as e:
        raise ScheduleError(f"unknown time zone {zone_name}") from e
    if text.startswith("@every "):
        return Schedule("", zone, _duration(text[len("@every "):].strip()))
    expr = text.replace("?", "*")
    if not croniter.is_valid(expr) or (not expr.startswith("@") and len(expr.split()) != 5):
        raise ScheduleError(f"unparseable schedule {text!r}")
    return Schedule(expr, zone)


def most_recent(schedule: Schedule, earliest: dt.datetime, now: dt.datetime) -> tuple[dt.datetime | None, int]:
    """The latest activation in (earliest, now] and how many there were (capped at MAX_MISSED+1)."""
    if earliest > now:
        return None, 0
    t = schedule.next_after(earliest)
    last: dt.datetime | None = None
    count = 0
    while t <= now:
        last, count = t, count + 1
        if count > MAX_MISSED:
            # Too many to count one by one (kube stops counting too): jump to the last one.
            last = schedule.last_at_or_before(now, earliest)
            break
        t = schedule.next_after(t)
    return last, count


def job_name(cj: Obj, scheduled: dt.datetime) -> str:
    return f"{_meta(cj).get('name', '')}-{int(scheduled.timestamp()) // 60}"


def job_finished(job: Obj) -> str | None:
    """"Complete" or "Failed" once a Job has finished."""
    for c in _status(job).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return str(c["type"])
    return None


def job_ref(job: Obj) -> Obj:
    m = _meta(job)
    return {"apiVersion": "batch/v1", "kind": "Job", "name": m.get("name", ""), "namespace": m.get("namespace", ""),
            "uid": m.get("uid", ""), "resourceVersion": m.get("resourceVersion", "")}


def job_from_template(cj: Obj, scheduled: dt.datetime, zone: dt.tzinfo) -> Obj:
    tmpl = _spec(cj).get("jobTemplate") or {}
    tm = _meta(tmpl)
    ann = dict(tm.get("annotations") or {})
    ann[SCHEDULED_ANNOTATION] = scheduled.astimezone(zone).isoformat()
    meta: Obj = {"name": job_name(cj, scheduled), "namespace": _meta(cj).get("namespace", ""),
                 "labels": dict(tm.get("labels") or {}), "annotations": ann,
                 "ownerReferences": [owner_reference(cj, API_VERSION, KIND)]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": copy.deepcopy(_spec(tmpl))}


@dataclass(frozen=True, slots=True)
class CjPlan:
    status: Obj
    create: dt.datetime | None = None          # scheduled time of the Job to create
    delete: tuple[Obj, ...] = ()               # active Jobs replaced, old history
    events: tuple[tuple[str, str, str], ...] = ()
    requeue: float | None = None


@dataclass
class _Out:
    events: list[tuple[str, str, str]] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)


def _start(job: Obj) -> str:
    return str(_status(job).get("startTime") or _meta(job).get("creationTimestamp") or "")


def plan(cj: Obj, jobs: list[Obj], now: dt.datetime) -> CjPlan:
    spec = _spec(cj)
    status = copy.deepcopy(_status(cj))
    out = _Out()
    # Active list and last success from the owned Jobs.
    active = [j for j in jobs if job_finished(j) is None and not _meta(j).get("deletionTimestamp")]
    status["active"] = sorted((job_ref(j) for j in active), key=lambda r: r["name"])
    if not status["active"]:
        del status["active"]
    last_ok = parse_time(status.get("lastSuccessfulTime"))
    for j in jobs:
        if job_finished(j) == "Complete":
            done = parse_time(_status(j).get("completionTime"))
            if done is not None and (last_ok is None or done > last_ok):
                last_ok = done
                status["lastSuccessfulTime"] = timestamp(done)
    # History limits.
    for kind, key, default in (("Complete", "successfulJobsHistoryLimit", 3), ("Failed", "failedJobsHistoryLimit", 1)):
        limit = spec.get(key)
        limit = limit if isinstance(limit, int) and not isinstance(limit, bool) else default
        done_jobs = sorted((j for j in jobs if job_finished(j) == kind and not _meta(j).get("deletionTimestamp")), key=_start)
        if len(done_jobs) > limit:
            out.delete += done_jobs[:len(done_jobs) - limit]
    if _meta(cj).get("deletionTimestamp"):
        return CjPlan(status, None, tuple(out.delete), ())
    try:
        schedule = parse_schedule(str(spec.get("schedule") or ""), spec.get("timeZone"))
    except ScheduleError as e:
        out.events.append(("Warning", "UnparseableSchedule", f"unparseable schedule: {spec.get('schedule')!r} : {e}"))
        return CjPlan(status, None, tuple(out.delete), tuple(out.events))
    nxt = schedule.next_after(now)
    requeue = max(0.0, (nxt - now).total_seconds()) + 0.1
    if spec.get("suspend") is True:
        return CjPlan(status, None, tuple(out.delete), tuple(out.events), None)
    earliest = parse_time(status.get("lastScheduleTime")) or parse_time(_meta(cj).get("creationTimestamp")) or now
    sds = spec.get("startingDeadlineSeconds")
    if isinstance(sds, int) and not isinstance(sds, bool):
        earliest = max(earliest, now - dt.timedelta(seconds=sds))
    scheduled, missed = most_recent(schedule, earliest, now)
    if scheduled is None:
        return CjPlan(status, None, tuple(out.delete), tuple(out.events), requeue)
    if missed > MAX_MISSED:
        out.events.append(("Warning", "TooManyMissedTimes",
                           "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew"))
    if isinstance(sds, int) and not isinstance(sds, bool) and scheduled + dt.timedelta(seconds=sds) < now:
        out.events.append(("Warning", "MissSchedule", f"Missed scheduled time to start a job: {scheduled.isoformat()}"))
        return CjPlan(status, None, tuple(out.delete), tuple(out.events), requeue)
    name = job_name(cj, scheduled)
    if any(_meta(j).get("name") == name for j in jobs):
        # Already started (our cache may predate the status write that records it).
        status["lastScheduleTime"] = max(status.get("lastScheduleTime") or "", timestamp(scheduled))
        return CjPlan(status, None, tuple(out.delete), tuple(out.events), requeue)
    policy = spec.get("concurrencyPolicy") or "Allow"
    if policy == "Forbid" and active:
        out.events.append(("Normal", "JobAlreadyActive",
                           "Not starting job because prior execution is running and concurrency policy is Forbid"))
        return CjPlan(status, None, tuple(out.delete), tuple(out.events), requeue)
    if policy == "Replace":
        out.delete += active
        status.pop("active", None)
    status["lastScheduleTime"] = timestamp(scheduled)
    return CjPlan(status, scheduled, tuple(out.delete), tuple(out.events), requeue)


# ---- the controller --------------------------------------------------------------------------------
class CronJobController:
    def __init__(self, client: Client, informers: InformerFactory | None = None, workers: int = 1,
                 recorder: EventRecorder | None = None, clock: Clock = utcnow) -> None:
        self.client, self.clock = client, clock
        self.recorder = recorder or EventRecorder(client, COMPONENT, clock=clock)
        factory = informers or InformerFactory(client)
        self.cronjobs = factory.informer("batch/cronjobs")
        self.jobs = factory.informer("batch/jobs")
        self.queue = WorkQueue()
        self.cronjobs.add_handler(self._on_cronjob)
        self.jobs.add_handler(self._on_job)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.cronjobs, self.jobs], workers,
                                     run_informers=informers is None, failed=report_failures(self.cronjobs, self.recorder.event))

    async def run(self) -> None:
        await self.controller.run()

    def _on_cronjob(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if old is not None and new is not None and _spec(old) == _spec(new) and _meta(old).get("deletionTimestamp") == _meta(new).get("deletionTimestamp"):
            return   # our own status write: the next schedule is already queued
        self.queue.add(object_key(obj))

    def _on_job(self, old: Obj | None, new: Obj | None) -> None:
        job = new if new is not None else old
        assert job is not None
        ref = controller_ref(job)
        if ref is None or ref.get("kind") != KIND:
            return
        if old is not None and new is not None and job_finished(old) == job_finished(new) \
                and _meta(old).get("deletionTimestamp") == _meta(new).get("deletionTimestamp"):
            return   # progress of a running Job changes nothing here
        self.queue.add(f"{_meta(job).get('namespace', '')}/{ref.get('name', '')}")

    async def sync(self, key: str) -> float | None:
        cj = self.cronjobs.get_by_key(key)
        if cj is None:
            return None
        ns, name = split_key(key)
        uid = _meta(cj).get("uid", "")
        jobs = self.jobs.by_index(CONTROLLER_INDEX, uid)
        now = self.clock()
        p = plan(cj, jobs, now)
        for t, reason, msg in p.events:
            await self.recorder.event(cj, t, reason, msg)
        for j in p.delete:
            jn = _meta(j).get("name", "")
            if await self.client.delete("batch/jobs", ns, jn, precondition_uid=_meta(j).get("uid", ""),
                                        propagation_policy="Background") is not None:
                await self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {jn}")
        status = p.status
        if p.create is not None:
            spec = _spec(cj)
            zone = parse_schedule(str(spec.get("schedule") or ""), spec.get("timeZone")).zone
            body = job_from_template(cj, p.create, zone)
            try:
                created = await self.client.create("batch/jobs", ns, body, field_manager=COMPONENT)
            except ClientError as e:
                if e.code != 409:
                    await self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {e.message}")
                    raise
                found = await self.client.get("batch/jobs", ns, body["metadata"]["name"])
                if found is None or (controller_ref(found) or {}).get("uid") != uid:
                    raise
                created = found
            else:
                await self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {created['metadata']['name']}")
            status = copy.deepcopy(status)
            refs = [r for r in status.get("active") or [] if r.get("uid") != _meta(created).get("uid")]
            status["active"] = sorted([*refs, job_ref(created)], key=lambda r: str(r["name"]))
        if status != _status(cj):
            new = copy.deepcopy(cj)
            new["status"] = status
            await self.client.update("batch/cronjobs", ns, name, new, subresource="status", field_manager=COMPONENT)
        return p.requeue

    def poke(self, key: str) -> None:
        """Look at `key` now (tests with an injected clock)."""
        self.queue.add(key)
