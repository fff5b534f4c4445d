"""ReplicaSet planning: claiming pods, which pods go first on scale-down, status, pod template."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.apis.selectors import LabelSelector
from minik.client import Obj
from minik.controllers.replicaset import (claim_pods, compute_status, next_available_check, pod_from_template,
                                          pods_to_delete, slow_start_batches)

NOW = dt.datetime(2025, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
RS = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
      "metadata": {"name": "web-abc", "namespace": "ns", "uid": "rs1", "generation": 2},
      "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
               "template": {"metadata": {"labels": {"app": "web", "tier": "fe"}, "annotations": {"a": "b"}},
                            "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
SEL = LabelSelector.from_api(RS["spec"]["selector"])  # type: ignore[index]


def pod(name: str, labels: dict[str, str] | None = None, owner: str | None = "rs1", node: str = "n1",
        phase: str = "Running", ready_at: str | None = "2025-01-01T11:00:00Z", created: str = "2025-01-01T10:00:00Z",
        restarts: int = 0, deleting: bool = False) -> Obj:
    m: dict[str, Any] = {"name": name, "namespace": "ns", "labels": labels if labels is not None else {"app": "web", "tier": "fe"},
                         "creationTimestamp": created, "uid": f"u-{name}"}
    if owner:
        m["ownerReferences"] = [{"kind": "ReplicaSet", "name": "web-abc", "uid": owner, "controller": True}]
    if deleting:
        m["deletionTimestamp"] = "2025-01-01T12:00:00Z"
    conds = [{"type": "Ready", "status": "True" if ready_at else "False", "lastTransitionTime": ready_at or created}]
    return {"metadata": m, "spec": {"nodeName": node} if node else {},
            "status": {"phase": phase, "conditions": conds, "containerStatuses": [{"restartCount": restarts}]}}


def names(pods: list[Obj] | tuple[Obj, ...]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


def test_claim_pods() -> None:
    pods = [pod("mine"), pod("orphan", owner=None), pod("other", owner="rs2"),
            pod("moved", labels={"app": "db"}), pod("stranger", labels={"app": "db"}, owner=None),
            pod("dying-orphan", owner=None, deleting=True)]
    c = claim_pods(RS, SEL, pods)
    assert names(c.owned) == ["mine"] and names(c.adopt) == ["orphan"] and names(c.release) == ["moved"]
    deleting_rs = {**RS, "metadata": {**RS["metadata"], "deletionTimestamp": "x"}}  # type: ignore[dict-item]
    c = claim_pods(deleting_rs, SEL, pods)
    assert names(c.owned) == ["mine", "moved"] and not c.adopt and not c.release


@pytest.mark.parametrize(("pods", "count", "want"), [
    # Unscheduled before scheduled.
    ([pod("a"), pod("b", node="")], 1, ["b"]),
    # Pending before Running.
    ([pod("a"), pod("b", phase="Pending")], 1, ["b"]),
    # Not ready before ready.
    ([pod("a"), pod("b", ready_at=None)], 1, ["b"]),
    # Doubled-up node first (one of n2's two; the name breaks the tie).
    ([pod("a", node="n1"), pod("b", node="n2"), pod("c", node="n2")], 1, ["b"]),
    ([pod("b", node="n1"), pod("a", node="n2"), pod("c", node="n2")], 1, ["a"]),
    # Ready more recently first.
    ([pod("a", ready_at="2025-01-01T09:00:00Z"), pod("b", ready_at="2025-01-01T11:30:00Z")], 1, ["b"]),
    # More restarts first.
    ([pod("a"), pod("b", restarts=4)], 1, ["b"]),
    # Newer first.
    ([pod("a", created="2025-01-01T09:00:00Z"), pod("b", created="2025-01-01T10:30:00Z")], 1, ["b"]),
    ([pod("a"), pod("b", node=""), pod("c", phase="Pending")], 2, ["b", "c"]),
])
def test_pods_to_delete(pods: list[Obj], count: int, want: list[str]) -> None:
    assert names(pods_to_delete(pods, count)) == want


def test_compute_status_min_ready_seconds() -> None:
    rs = {**RS, "spec": {**RS["spec"], "minReadySeconds": 60}}  # type: ignore[dict-item]
    pods = [pod("old-ready", ready_at="2025-01-01T11:00:00Z"), pod("just-ready", ready_at="2025-01-01T11:59:30Z"),
            pod("unready", ready_at=None), pod("mislabeled", labels={"app": "web"})]
    st = compute_status(rs, pods, NOW)
    assert st == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 3, "availableReplicas": 2,
                  "observedGeneration": 2}
    assert next_available_check(pods, 60, NOW) == pytest.approx(30.05)
    assert compute_status(rs, [], NOW) == {"replicas": 0, "observedGeneration": 2}


def test_pod_from_template() -> None:
    p = pod_from_template(RS)
    assert p["metadata"]["generateName"] == "web-abc-"
    assert p["metadata"]["labels"] == {"app": "web", "tier": "fe"} and p["metadata"]["annotations"] == {"a": "b"}
    assert p["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                                 "uid": "rs1", "controller": True, "blockOwnerDeletion": True}]
    assert p["spec"] == RS["spec"]["template"]["spec"]  # type: ignore[index]
    assert p["spec"] is not RS["spec"]["template"]["spec"]  # type: ignore[index]


@pytest.mark.parametrize(("total", "want"), [(0, []), (1, [1]), (5, [1, 2, 2]), (10, [1, 2, 4, 3])])
def test_slow_start_batches(total: int, want: list[int]) -> None:
    assert slow_start_batches(total) == want
