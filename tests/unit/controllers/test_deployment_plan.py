"""Deployment planning: fenceposts, rolling steps, Recreate, proportional scaling, hashing, status."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.client import Obj
from minik.controllers.deployment import (RSState, calculate_status, equal_ignore_hash, history_to_delete,
                                          is_scaling_event, new_rs_annotations, proportional_scale, recreate_step,
                                          resolve_fenceposts, rollout_status, rolling_step, template_hash)

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def deploy(replicas: int = 3, gen: int = 1, status: Obj | None = None, surge: Any = "25%", unavail: Any = "25%",
           **spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "d1", "generation": gen},
            "spec": {"replicas": replicas, "progressDeadlineSeconds": 600,
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}},
                     **spec},
            "status": status or {}}


def rs(name: str, replicas: int, ready: int = 0, available: int = 0, actual: int | None = None) -> Obj:
    return {"metadata": {"name": name, "generation": 1},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if actual is None else actual, "readyReplicas": ready,
                       "availableReplicas": available, "observedGeneration": 1}}


@pytest.mark.parametrize(("surge", "unavail", "desired", "want"), [
    ("25%", "25%", 4, (1, 1)),
    ("25%", "25%", 3, (1, 0)),      # surge rounds up, unavailable rounds down
    ("25%", "25%", 1, (1, 0)),
    ("0%", "0%", 3, (0, 1)),        # both zero would stall: unavailable becomes 1
    (0, 0, 10, (0, 1)),
    (2, "50%", 5, (2, 2)),
    ("10%", 1, 10, (1, 1)),
    ("100%", "0", 3, (3, 0)),
])
def test_resolve_fenceposts(surge: Any, unavail: Any, desired: int, want: tuple[int, int]) -> None:
    assert resolve_fenceposts(surge, unavail, desired) == want


@pytest.mark.parametrize(("desired", "surge", "unavail", "new", "olds", "want"), [
    # New RS at zero: scale up to the surge allowance.
    (4, 1, 1, RSState("new", 0), [RSState("old", 4, 4, "1")], {"new": 1}),
    # At max total and new pods not available: scale old down only within maxUnavailable.
    (4, 1, 1, RSState("new", 1, 0), [RSState("old", 4, 4, "1")], {"old": 3}),
    # Nothing may go: new unavailable pods already use the budget.
    (4, 1, 1, RSState("new", 2, 0), [RSState("old", 3, 3, "1")], {}),
    # New pods available: old ones go down to keep minAvailable.
    (4, 1, 1, RSState("new", 2, 2), [RSState("old", 3, 3, "1")], {"old": 1}),
    # Unhealthy old replicas are removed first (they serve nobody), oldest ReplicaSet first.
    (4, 1, 1, RSState("new", 1, 0), [RSState("a", 2, 0, "1"), RSState("b", 3, 3, "2")], {"a": 0}),
    (4, 1, 1, RSState("new", 1, 0), [RSState("a", 1, 0, "1"), RSState("b", 1, 0, "2"), RSState("c", 3, 3, "3")],
     {"a": 0, "b": 0}),
    # maxSurge 0 / maxUnavailable 1: one down first, then one up.
    (3, 0, 1, RSState("new", 0), [RSState("old", 3, 3, "1")], {"old": 2}),
    (3, 0, 1, RSState("new", 0), [RSState("old", 2, 2, "1")], {"new": 1}),
    # New RS too big (scaled down deployment): shrink it.
    (2, 1, 0, RSState("new", 4, 4), [], {"new": 2}),
    # Complete: nothing to do.
    (3, 1, 0, RSState("new", 3, 3), [RSState("old", 0, 0, "1")], {}),
])
def test_rolling_step(desired: int, surge: int, unavail: int, new: RSState, olds: list[RSState],
                      want: dict[str, int]) -> None:
    assert rolling_step(desired, surge, unavail, new, olds) == want


@pytest.mark.parametrize(("new", "olds", "running", "want"), [
    (None, [RSState("old", 3)], True, {"old": 0}),
    (None, [RSState("old", 0)], True, {}),                  # wait for the old pods to go
    (RSState("new", 0), [RSState("old", 0)], False, {"new": 3}),
    (RSState("new", 3), [], False, {}),
])
def test_recreate_step(new: RSState | None, olds: list[RSState], running: bool, want: dict[str, int]) -> None:
    assert recreate_step(3, new, olds, running) == want


def test_scaling_event() -> None:
    assert is_scaling_event(5, [RSState("a", 3, desired=3)])
    assert not is_scaling_event(3, [RSState("a", 3, desired=3), RSState("b", 1)])


@pytest.mark.parametrize(("desired", "surge", "new", "olds", "saturated", "want"), [
    # One active ReplicaSet takes the new size.
    (5, 2, RSState("new", 3), [RSState("old", 0)], False, {"new": 5}),
    (5, 2, None, [RSState("old", 3, created="1")], False, {"old": 5}),
    # Saturated new RS: old ones to zero.
    (3, 1, RSState("new", 3), [RSState("old", 1)], True, {"old": 0}),
    # Mid-rollout 10 → 20 (surge 3→5): proportional to size, leftovers to the largest.
    (20, 5, RSState("new", 5, created="2", max_replicas=13), [RSState("old", 8, created="1", max_replicas=13)], False,
     {"new": 10, "old": 15}),
    # Scale down to zero.
    (0, 0, RSState("new", 2, created="2"), [RSState("old", 2, created="1")], False, {"new": 0, "old": 0}),
])
def test_proportional_scale(desired: int, surge: int, new: RSState | None, olds: list[RSState], saturated: bool,
                            want: dict[str, int]) -> None:
    assert proportional_scale(desired, surge, True, new, olds, saturated) == want


def test_template_hash_is_stable_and_ignores_key_order() -> None:
    a = {"metadata": {"labels": {"app": "web", "x": "1"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    b = {"spec": {"containers": [{"image": "i", "name": "c"}]}, "metadata": {"labels": {"x": "1", "app": "web"}}}
    h = template_hash(a)
    assert h == template_hash(b) and h.isalnum() and set(h) <= set("bcdfghjklmnpqrstvwxz2456789")
    assert template_hash(a, 1) != h
    assert template_hash({**a, "spec": {"containers": [{"name": "c", "image": "j"}]}}) != h
    with_hash = {"metadata": {"labels": {"app": "web", "x": "1", "pod-template-hash": h}}, "spec": a["spec"]}
    assert equal_ignore_hash(with_hash, a)


def test_new_rs_annotations_bump_revision_and_keep_history() -> None:
    d = deploy(replicas=4)
    d["metadata"]["annotations"] = {"kubernetes.io/change-cause": "v2",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    fresh = new_rs_annotations(d, {}, 1, exists=False)
    assert fresh == {"kubernetes.io/change-cause": "v2", "deployment.kubernetes.io/revision": "1",
                     "deployment.kubernetes.io/desired-replicas": "4", "deployment.kubernetes.io/max-replicas": "5"}
    undone = new_rs_annotations(d, {"deployment.kubernetes.io/revision": "1"}, 3, exists=True)
    assert undone["deployment.kubernetes.io/revision"] == "3"
    assert undone["deployment.kubernetes.io/revision-history"] == "1"
    assert new_rs_annotations(d, fresh, 1, exists=True) == fresh


def test_history_to_delete_oldest_scaled_down_first() -> None:
    def old(name: str, rev: int, replicas: int = 0) -> Obj:
        r = rs(name, replicas)
        r["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": str(rev)}
        return r
    olds = [old("c", 3), old("a", 1), old("b", 2, replicas=1)]
    assert [r["metadata"]["name"] for r in history_to_delete(olds, 1)] == ["a"]  # b still has replicas
    assert history_to_delete(olds, 3) == []


def cond(status: Obj, ctype: str) -> Obj:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def test_calculate_status_counts_and_available_condition() -> None:
    d = deploy(replicas=4)
    st = calculate_status(d, [rs("old", 1, 1, 1), rs("new", 3, 2, 2)], rs("new", 3, 2, 2), "T")
    assert st["replicas"] == 4 and st["updatedReplicas"] == 3 and st["readyReplicas"] == 3
    assert st["availableReplicas"] == 3 and st["unavailableReplicas"] == 1 and st["observedGeneration"] == 1
    assert cond(st, "Available")["status"] == "True"  # 3 >= 4 - maxUnavailable(1)
    st = calculate_status(d, [rs("new", 4, 1, 1)], rs("new", 4, 1, 1), "T")
    assert cond(st, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_rollout_status_progress_then_complete_then_timeout() -> None:
    new = rs("web-abc", 3, 1, 1)
    d = deploy(status={"replicas": 3, "updatedReplicas": 3, "observedGeneration": 1})
    st = rollout_status(d, [new], new, NOW)
    p = cond(st, "Progressing")
    assert (p["status"], p["reason"], p["message"]) == ("True", "ReplicaSetUpdated", 'ReplicaSet "web-abc" is progressing.')

    done = rs("web-abc", 3, 3, 3)
    st2 = rollout_status({**d, "status": st}, [done], done, NOW + dt.timedelta(seconds=5))
    p2 = cond(st2, "Progressing")
    assert p2["reason"] == "NewReplicaSetAvailable" and p2["lastTransitionTime"] == p["lastTransitionTime"]
    # Once complete, a resync writes nothing new.
    assert rollout_status({**d, "status": st2}, [done], done, NOW + dt.timedelta(seconds=60)) == st2

    stuck = rollout_status({**d, "status": st}, [new], new, NOW + dt.timedelta(seconds=601))
    assert cond(stuck, "Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert cond(stuck, "Progressing")["status"] == "False"


def test_rollout_undo_template_with_null_creation_timestamp_matches_the_old_replicaset() -> None:
    # kubectl rollout undo sends the old ReplicaSet's template back with `creationTimestamp: null`.
    from minik.controllers.deployment import equal_ignore_hash
    rs_tmpl = {"metadata": {"labels": {"app": "web", "pod-template-hash": "694cf56f85"}},
               "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}]}}
    undone = {"metadata": {"creationTimestamp": None, "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "image": "busybox"}], "volumes": []}}
    assert equal_ignore_hash(rs_tmpl, undone)
    other = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox:1"}]}}
    assert not equal_ignore_hash(rs_tmpl, other)
