"""CronJob planning with a fake clock: schedules, missed runs after an outage, concurrency policies,
deadlines, history limits and status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.controllers.cronjob import (SCHEDULED_ANNOTATION, ScheduleError, job_from_template, job_name,
                                       most_recent, parse_schedule, plan)

Obj = dict[str, Any]
UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)


def ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def cronjob(schedule: str = "*/1 * * * *", created: dt.datetime = T0 - dt.timedelta(seconds=30),
            status: Obj | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "hello", "namespace": "default", "uid": "cj-uid", "creationTimestamp": ts(created)},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "successfulJobsHistoryLimit": 3,
                     "failedJobsHistoryLimit": 1,
                     "jobTemplate": {"metadata": {"labels": {"team": "a"}},
                                     "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}},
                     **spec},
            "status": status or {}}


def job(name: str, finished: str | None = None, start: dt.datetime = T0, done: dt.datetime | None = None) -> Obj:
    st: Obj = {"startTime": ts(start)}
    if finished:
        st["conditions"] = [{"type": finished, "status": "True"}]
        if finished == "Complete":
            st["completionTime"] = ts(done or start + dt.timedelta(seconds=5))
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "1",
                         "creationTimestamp": ts(start)}, "status": st}


@pytest.mark.parametrize("text,zone,after,want", [
    ("*/1 * * * *", None, T0, T0 + dt.timedelta(minutes=1)),
    ("@hourly", None, T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(hours=1)),
    ("@daily", None, T0, dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),
    ("0 9 * * *", "Europe/Paris", T0, dt.datetime(2026, 3, 2, 8, 0, tzinfo=UTC)),   # 09:00 CET = 08:00 UTC
    ("CRON_TZ=Asia/Tokyo 0 20 * * *", None, T0, dt.datetime(2026, 3, 1, 11, 0, tzinfo=UTC)),
    ("@every 90s", None, T0, T0 + dt.timedelta(seconds=90)),
    ("0 0 1 * mon", None, T0, dt.datetime(2026, 3, 2, 0, 0, tzinfo=UTC)),   # dom OR dow, as cron
])
def test_schedules(text: str, zone: str | None, after: dt.datetime, want: dt.datetime) -> None:
    assert parse_schedule(text, zone).next_after(after) == want


@pytest.mark.parametrize("text", ["bogus", "* * * *", "61 * * * *", "@every nope"])
def test_unparseable(text: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(text, None)


def test_most_recent_counts_missed() -> None:
    s = parse_schedule("*/1 * * * *", None)
    assert most_recent(s, T0, T0 + dt.timedelta(seconds=30)) == (None, 0)
    assert most_recent(s, T0, T0 + dt.timedelta(minutes=3, seconds=5)) == (T0 + dt.timedelta(minutes=3), 3)
    last, n = most_recent(s, T0 - dt.timedelta(days=30), T0)
    assert last == T0 and n > 100


def test_first_run_creates_one_job() -> None:
    now = T0 + dt.timedelta(seconds=2)
    p = plan(cronjob(), [], now)
    assert p.create == T0
    assert p.status["lastScheduleTime"] == ts(T0)
    assert p.requeue is not None and 57 < p.requeue < 59
    body = job_from_template(cronjob(), T0, UTC)
    assert body["metadata"]["name"] == job_name(cronjob(), T0) == f"hello-{int(T0.timestamp()) // 60}"
    assert body["metadata"]["labels"] == {"team": "a"}
    assert body["metadata"]["annotations"][SCHEDULED_ANNOTATION] == "2026-03-01T10:00:00+00:00"
    ref = body["metadata"]["ownerReferences"][0]
    assert ref["kind"] == "CronJob" and ref["controller"] and ref["uid"] == "cj-uid"


def test_before_first_time_nothing_but_requeue() -> None:
    p = plan(cronjob(created=T0 + dt.timedelta(seconds=1)), [], T0 + dt.timedelta(seconds=20))
    assert p.create is None and p.requeue is not None and 40 < p.requeue < 41


def test_outage_starts_one_job_for_the_most_recent_time() -> None:
    cj = cronjob(status={"lastScheduleTime": ts(T0)})
    now = T0 + dt.timedelta(minutes=3, seconds=10)
    p = plan(cj, [job(job_name(cj, T0), "Complete")], now)
    assert p.create == T0 + dt.timedelta(minutes=3)
    assert not [e for e in p.events if e[1] == "TooManyMissedTimes"]


def test_too_many_missed_warns_but_starts_one() -> None:
    cj = cronjob(status={"lastScheduleTime": ts(T0 - dt.timedelta(days=1))})
    p = plan(cj, [], T0 + dt.timedelta(seconds=1))
    assert p.create == T0
    assert [e[1] for e in p.events] == ["TooManyMissedTimes"]


def test_starting_deadline_missed() -> None:
    cj = cronjob(schedule="0 * * * *", status={"lastScheduleTime": ts(T0 - dt.timedelta(hours=1))}, startingDeadlineSeconds=60)
    p = plan(cj, [], T0 + dt.timedelta(minutes=5))
    assert p.create is None
    cj2 = cronjob(schedule="0 * * * *", status={"lastScheduleTime": ts(T0 - dt.timedelta(hours=1))}, startingDeadlineSeconds=600)
    assert plan(cj2, [], T0 + dt.timedelta(minutes=5)).create == T0


def test_forbid_and_replace() -> None:
    running = job("hello-1", None)
    cj = cronjob(concurrencyPolicy="Forbid", status={"lastScheduleTime": ts(T0 - dt.timedelta(minutes=1))})
    p = plan(cj, [running], T0 + dt.timedelta(seconds=1))
    assert p.create is None and [e[1] for e in p.events] == ["JobAlreadyActive"]
    assert p.status["active"][0]["name"] == "hello-1"
    assert p.requeue is not None
    cj = cronjob(concurrencyPolicy="Replace", status={"lastScheduleTime": ts(T0 - dt.timedelta(minutes=1))})
    p = plan(cj, [running], T0 + dt.timedelta(seconds=1))
    assert p.create == T0 and [j["metadata"]["name"] for j in p.delete] == ["hello-1"]
    cj = cronjob(status={"lastScheduleTime": ts(T0 - dt.timedelta(minutes=1))})
    p = plan(cj, [running], T0 + dt.timedelta(seconds=1))
    assert p.create == T0 and not p.delete


def test_suspend_starts_nothing() -> None:
    assert plan(cronjob(suspend=True), [], T0 + dt.timedelta(minutes=5)).create is None


def test_history_limits_and_last_successful_time() -> None:
    jobs = [job(f"ok-{i}", "Complete", start=T0 + dt.timedelta(minutes=i)) for i in range(5)]
    jobs += [job(f"bad-{i}", "Failed", start=T0 + dt.timedelta(minutes=i)) for i in range(3)]
    cj = cronjob(status={"lastScheduleTime": ts(T0 + dt.timedelta(minutes=10))})
    p = plan(cj, jobs, T0 + dt.timedelta(minutes=10, seconds=1))
    assert sorted(j["metadata"]["name"] for j in p.delete) == ["bad-0", "bad-1", "ok-0", "ok-1"]
    assert p.status["lastSuccessfulTime"] == ts(T0 + dt.timedelta(minutes=4, seconds=5))
    assert "active" not in p.status


def test_existing_job_for_the_time_is_not_created_again() -> None:
    cj = cronjob()
    p = plan(cj, [job(job_name(cj, T0))], T0 + dt.timedelta(seconds=5))
    assert p.create is None and p.status["lastScheduleTime"] == ts(T0)
