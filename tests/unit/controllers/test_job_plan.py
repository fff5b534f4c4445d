"""Job planning tables: tracking with the finalizer (no pod counted twice), parallelism, Indexed
mode, back-off, failure policy, deadlines, suspend and TTL."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.controllers.job import (TRACKING_FINALIZER, JobTiming, backoff_delay, format_indexes, parse_indexes, plan,
                                   pod_for)

Obj = dict[str, Any]
NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


def ts(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def job(status: Obj | None = None, **spec: Any) -> Obj:
    base: Obj = {"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                 "podReplacementPolicy": "TerminatingOrFailed", "suspend": False,
                 "template": {"metadata": {"labels": {"job-name": "pi"}},
                              "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "x"}]}}}
    base.update(spec)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "namespace": "default", "uid": "j1"},
            "spec": base, "status": status if status is not None else {"startTime": ts(NOW)}}


def pod(uid: str, phase: str = "Running", fin: bool = True, index: int | None = None, exit_code: int | None = None,
        deleting: bool = False, finished: dt.datetime = NOW, created: str = "2026-03-01T09:00:00Z") -> Obj:
    m: Obj = {"name": f"pi-{uid}", "namespace": "default", "uid": uid, "creationTimestamp": created}
    if fin:
        m["finalizers"] = [TRACKING_FINALIZER]
    if index is not None:
        m["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        m["deletionTimestamp"] = ts(NOW)
    st: Obj = {"phase": phase}
    if exit_code is not None:
        st["containerStatuses"] = [{"name": "c", "state": {"terminated": {"exitCode": exit_code, "finishedAt": ts(finished)}}}]
    return {"metadata": m, "status": st}


def conds(p: Any) -> dict[str, str]:
    return {c["type"]: c.get("reason", "") for c in p.status.get("conditions") or [] if c["status"] == "True"}


def test_index_sets() -> None:
    assert parse_indexes("1,3-5,7") == {1, 3, 4, 5, 7}
    assert format_indexes({0, 1, 2, 4, 6, 7}) == "0-2,4,6-7"
    assert format_indexes(set()) == ""


def test_backoff_delay() -> None:
    t = JobTiming()
    assert [backoff_delay(n, t) for n in (0, 1, 2, 3, 10)] == [0, 10, 20, 40, 360]


def test_first_sync_starts_pods_up_to_parallelism() -> None:
    p = plan(job(status={}, completions=5, parallelism=2), [], NOW)
    assert p.create == (None, None) and p.status["startTime"] == ts(NOW)
    p = plan(job(completions=5, parallelism=2), [pod("a"), pod("b")], NOW)
    assert p.create == () and p.status["active"] == 2


def test_tracking_two_phases_never_counts_twice() -> None:
    # Phase 1: a succeeded pod with the finalizer is recorded as uncounted and its finalizer goes.
    j = job(completions=3, parallelism=1)
    done = pod("a", "Succeeded", exit_code=0)
    p = plan(j, [done], NOW)
    assert p.status["uncountedTerminatedPods"] == {"succeeded": ["a"]} and "succeeded" not in p.status
    assert [x["metadata"]["uid"] for x in p.remove_finalizers] == ["a"]
    assert p.create == (None,)          # known successes count towards completions already
    # Same cache again (our status write seen, the finalizer removal not yet): still uncounted once.
    j2 = job(status=p.status, completions=3, parallelism=1)
    p2 = plan(j2, [done, pod("b")], NOW)
    assert p2.status["uncountedTerminatedPods"] == {"succeeded": ["a"]} and p2.create == ()
    # Phase 2: the pod lost its finalizer → moved into succeeded, gone from uncounted.
    p3 = plan(job(status=p2.status, completions=3, parallelism=1), [pod("a", "Succeeded", fin=False), pod("b")], NOW)
    assert p3.status["succeeded"] == 1 and p3.status["uncountedTerminatedPods"] == {}
    # And again: nothing changes.
    p4 = plan(job(status=p3.status, completions=3, parallelism=1), [pod("a", "Succeeded", fin=False), pod("b")], NOW)
    assert p4.status == p3.status


def test_completion_sets_success_conditions() -> None:
    st = {"startTime": ts(NOW), "succeeded": 1, "uncountedTerminatedPods": {}}
    p = plan(job(status=st), [pod("a", "Succeeded", fin=False)], NOW)
    assert conds(p) == {"SuccessCriteriaMet": "CompletionsReached", "Complete": "CompletionsReached"}
    assert p.status["completionTime"] == ts(NOW) and ("Normal", "Completed", "Job completed") in p.events


def test_work_queue_mode_completes_when_one_succeeded_and_none_active() -> None:
    st = {"startTime": ts(NOW), "succeeded": 1, "uncountedTerminatedPods": {}}
    j = job(status=st, completions=None, parallelism=3)
    assert "Complete" not in conds(plan(j, [pod("b")], NOW))
    assert plan(j, [pod("b")], NOW).create == ()
    assert "Complete" in conds(plan(j, [], NOW))


def test_indexed_creates_missing_indexes_and_tracks_completed() -> None:
    j = job(status={"startTime": ts(NOW), "completedIndexes": "0"}, completions=4, parallelism=2, completionMode="Indexed")
    p = plan(j, [pod("a", index=1)], NOW)
    assert p.create == (2,)
    p = plan(j, [pod("a", "Succeeded", index=1, exit_code=0), pod("b", index=2)], NOW)
    assert p.status["completedIndexes"] == "0-1" and p.status["succeeded"] == 2 and p.create == (3,)
    # A second success for a completed index does not count.
    p = plan(j, [pod("c", "Succeeded", index=0, exit_code=0)], NOW)
    assert p.status["completedIndexes"] == "0" and p.status["uncountedTerminatedPods"] == {}
    assert [x["metadata"]["uid"] for x in p.remove_finalizers] == ["c"]


def test_indexed_pod_identity() -> None:
    p = pod_for(job(completions=3, completionMode="Indexed"), 2)
    assert p["metadata"]["generateName"] == "pi-2-" and p["spec"]["hostname"] == "pi-2"
    assert p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == "2"
    assert TRACKING_FINALIZER in p["metadata"]["finalizers"]
    assert p["spec"]["containers"][0]["env"][0]["name"] == "JOB_COMPLETION_INDEX"
    assert "annotations" not in pod_for(job(), None)["metadata"]


def test_backoff_waits_then_replaces() -> None:
    st = {"startTime": ts(NOW), "failed": 1, "uncountedTerminatedPods": {}}
    failed = pod("a", "Failed", fin=False, exit_code=1, finished=NOW - dt.timedelta(seconds=4))
    p = plan(job(status=st), [failed], NOW)
    assert p.create == () and p.requeue is not None and 5.5 < p.requeue < 6.5
    p = plan(job(status=st), [failed], NOW + dt.timedelta(seconds=7))
    assert p.create == (None,)


def test_backoff_limit_exceeded_then_failed() -> None:
    st = {"startTime": ts(NOW), "failed": 1, "uncountedTerminatedPods": {}}
    p = plan(job(status=st, backoffLimit=1), [pod("a", "Failed", fin=False, exit_code=1), pod("b", "Failed", exit_code=1)], NOW)
    assert conds(p) == {"FailureTarget": "BackoffLimitExceeded"}   # b not yet counted for good
    p2 = plan(job(status=p.status, backoffLimit=1), [pod("a", "Failed", fin=False), pod("b", "Failed", fin=False)], NOW)
    assert conds(p2) == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    assert p2.status["failed"] == 2 and "completionTime" not in p2.status and p2.create == ()


def test_failure_target_deletes_active_pods() -> None:
    st = {"startTime": ts(NOW), "failed": 7, "uncountedTerminatedPods": {}}
    p = plan(job(status=st, parallelism=2, completions=4), [pod("a"), pod("b")], NOW)
    assert "FailureTarget" in conds(p) and len(p.delete) == 2 and "Failed" not in conds(p)


@pytest.mark.parametrize("rules,exit_code,conditions,want", [
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}], 42, [], "FailJob"),
    ([{"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}}], 1, [], "Count"),
    ([{"action": "Ignore", "onExitCodes": {"operator": "NotIn", "values": [1, 2]}}], 5, [], "Ignore"),
    ([{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}], 137,
     [{"type": "DisruptionTarget", "status": "True"}], "Ignore"),
    ([{"action": "Count", "onExitCodes": {"operator": "In", "values": [3]}},
      {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [3]}}], 3, [], "Count"),
])
def test_pod_failure_policy(rules: list[Obj], exit_code: int, conditions: list[Obj], want: str) -> None:
    failed = pod("a", "Failed", exit_code=exit_code)
    failed["status"]["conditions"] = conditions
    p = plan(job(podFailurePolicy={"rules": rules}, podReplacementPolicy="Failed"), [failed], NOW)
    if want == "Ignore":
        assert p.status["uncountedTerminatedPods"] == {} and p.remove_finalizers and "failed" not in p.status
    elif want == "FailJob":
        assert conds(p) == {"FailureTarget": "PodFailurePolicy"}
    else:
        assert p.status["uncountedTerminatedPods"] == {"failed": ["a"]} and not conds(p)


def test_deleted_pod_counts_as_failed_unless_only_failed_are_replaced() -> None:
    p = plan(job(), [pod("a", deleting=True)], NOW)
    assert p.status["uncountedTerminatedPods"] == {"failed": ["a"]}
    p = plan(job(podReplacementPolicy="Failed"), [pod("a", deleting=True)], NOW)
    assert p.status["uncountedTerminatedPods"] == {} and p.create == () and p.status["terminating"] == 1


def test_active_deadline() -> None:
    st = {"startTime": ts(NOW - dt.timedelta(seconds=30))}
    p = plan(job(status=st, activeDeadlineSeconds=60), [pod("a")], NOW)
    assert not conds(p) and p.requeue is not None and 29 < p.requeue < 31
    p = plan(job(status=st, activeDeadlineSeconds=10), [pod("a")], NOW)
    assert conds(p) == {"FailureTarget": "DeadlineExceeded"} and len(p.delete) == 1


def test_suspend_and_resume() -> None:
    p = plan(job(suspend=True), [pod("a")], NOW)
    assert conds(p) == {"Suspended": "JobSuspended"} and len(p.delete) == 1
    assert p.status["uncountedTerminatedPods"] == {}
    resumed = plan(job(status=p.status), [], NOW + dt.timedelta(seconds=5))
    assert resumed.create == (None,) and resumed.status["startTime"] == ts(NOW + dt.timedelta(seconds=5))


def test_ttl_after_finished() -> None:
    st = {"startTime": ts(NOW), "succeeded": 1, "completionTime": ts(NOW), "uncountedTerminatedPods": {},
          "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": ts(NOW)}]}
    p = plan(job(status=st, ttlSecondsAfterFinished=5), [], NOW + dt.timedelta(seconds=2))
    assert not p.delete_job and p.requeue is not None and 2.9 < p.requeue < 3.2
    assert plan(job(status=st, ttlSecondsAfterFinished=5), [], NOW + dt.timedelta(seconds=6)).delete_job


def test_finished_job_releases_remaining_finalizers() -> None:
    st = {"startTime": ts(NOW), "succeeded": 1, "uncountedTerminatedPods": {},
          "conditions": [{"type": "Complete", "status": "True"}]}
    p = plan(job(status=st), [pod("z", "Failed", exit_code=1)], NOW)
    assert [x["metadata"]["uid"] for x in p.remove_finalizers] == ["z"] and p.status["uncountedTerminatedPods"] == {}


@pytest.mark.parametrize("rules,completed,met", [
    ([{"succeededIndexes": "0,2"}], "0", None),
    ([{"succeededIndexes": "0,2"}], "0,2", 0),
    ([{"succeededIndexes": "0-3", "succeededCount": 2}], "1,3", 0),
    ([{"succeededCount": 3}], "0-1", None),
    ([{"succeededCount": 1}, {"succeededCount": 3}], "4", 0),
    ([{"succeededIndexes": "5"}, {"succeededCount": 2}], "1-2", 1),
])
def test_success_policy(rules: list[Obj], completed: str, met: int | None) -> None:
    st = {"startTime": ts(NOW), "completedIndexes": completed, "uncountedTerminatedPods": {}}
    j = job(status=st, completions=6, parallelism=2, completionMode="Indexed", successPolicy={"rules": rules})
    p = plan(j, [pod("a", index=5)], NOW)
    if met is None:
        assert "SuccessCriteriaMet" not in conds(p)
    else:
        c = next(c for c in p.status["conditions"] if c["type"] == "SuccessCriteriaMet")
        assert (c["reason"], c["message"]) == ("SuccessPolicy", f"Matched rules at index {met}")
        assert [x["metadata"]["uid"] for x in p.delete] == ["a"] and "Complete" not in conds(p)
        # The pod stopped for the success is not a failure; then the Job is Complete.
        after = plan(job(status=p.status, completions=6, parallelism=2, completionMode="Indexed", successPolicy={"rules": rules}),
                     [pod("a", deleting=True, index=5)], NOW)
        assert "failed" not in after.status and after.status["uncountedTerminatedPods"] == {}
        done = plan(job(status=after.status, completions=6, parallelism=2, completionMode="Indexed",
                        successPolicy={"rules": rules}), [], NOW)
        assert conds(done)["Complete"] == "SuccessPolicy" and done.status["completionTime"]


def indexed_failing(i: int, uid: str, failures: int, fin: bool = True) -> Obj:
    p = pod(uid, "Failed", fin=fin, index=i, exit_code=1, finished=NOW - dt.timedelta(hours=1))
    p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] = str(failures)
    return p


def test_backoff_limit_per_index() -> None:
    spec = {"completions": 3, "parallelism": 3, "completionMode": "Indexed", "backoffLimit": 2147483647,
            "backoffLimitPerIndex": 1}
    st = {"startTime": ts(NOW), "completedIndexes": "0", "failedIndexes": "", "uncountedTerminatedPods": {}}
    # Index 1 fails for the first time: recreated with failure count 1; index 2 runs.
    p = plan(job(status=st, **spec), [indexed_failing(1, "a", 0, fin=False), pod("b", index=2)], NOW)
    assert p.create == (1,) and dict(p.index_failures) == {1: 1} and p.status["failedIndexes"] == ""
    created = pod_for(job(**spec), 1, 1)
    assert created["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"
    # Its second failure exceeds the per-index limit: index 1 fails for good, not recreated.
    p = plan(job(status=st, **spec), [indexed_failing(1, "a", 0, fin=False), indexed_failing(1, "c", 1), pod("b", index=2)], NOW)
    assert p.status["failedIndexes"] == "1" and p.create == () and "FailureTarget" not in conds(p)
    # Index 2 succeeds: every index is done, one failed → the Job fails with FailedIndexes.
    st2 = {**p.status, "completedIndexes": "0,2", "uncountedTerminatedPods": {}, "failed": 2}
    p = plan(job(status=st2, **spec), [indexed_failing(1, "a", 0, fin=False), indexed_failing(1, "c", 1, fin=False)], NOW)
    assert conds(p) == {"FailureTarget": "FailedIndexes", "Failed": "FailedIndexes"}


def test_max_failed_indexes() -> None:
    spec = {"completions": 4, "parallelism": 4, "completionMode": "Indexed", "backoffLimit": 2147483647,
            "backoffLimitPerIndex": 0, "maxFailedIndexes": 0}
    st = {"startTime": ts(NOW), "failedIndexes": "", "uncountedTerminatedPods": {}}
    p = plan(job(status=st, **spec), [indexed_failing(0, "a", 0), pod("b", index=1)], NOW)
    assert conds(p) == {"FailureTarget": "MaxFailedIndexesExceeded"} and [x["metadata"]["uid"] for x in p.delete] == ["b"]
