"""DaemonSet planning tables: eligibility, default tolerations, rolling updates with maxUnavailable
and maxSurge."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.controllers.daemonset import compute_status, daemon_pod, node_fits, plan, target_node

Obj = dict[str, Any]
NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


def node(name: str, labels: dict[str, str] | None = None, taints: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def ds(**ru: Any) -> Obj:
    return {"metadata": {"name": "agent", "namespace": "default", "uid": "u", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0, **ru}},
                     "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


def pod(n: str, h: str = "new", ready: bool = True, i: int = 0) -> Obj:
    return {"metadata": {"name": f"agent-{n}-{h}-{i}", "labels": {"controller-revision-hash": h},
                         "creationTimestamp": f"2026-03-01T09:0{i}:00Z"},
            "spec": {"nodeName": n},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize("spec,n,fits", [
    ({}, node("a"), True),
    ({"nodeSelector": {"disk": "ssd"}}, node("a", {"disk": "ssd"}), True),
    ({"nodeSelector": {"disk": "ssd"}}, node("a"), False),
    ({}, node("a", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]), True),
    ({}, node("a", taints=[{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]), True),
    ({}, node("a", taints=[{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]), True),
    ({}, node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]), False),
    ({"hostNetwork": True}, node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}]), True),
    ({}, node("a", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}]), False),
    ({}, node("a", taints=[{"key": "gpu", "value": "x", "effect": "PreferNoSchedule"}]), True),
    ({"tolerations": [{"key": "gpu", "operator": "Equal", "value": "x"}]},
     node("a", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}]), True),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}, node("a", {"zone": "z2"}), False),
    ({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}}, node("a"), True),
])
def test_node_fits(spec: Obj, n: Obj, fits: bool) -> None:
    assert node_fits(spec, n) is fits


def test_daemon_pod_is_pinned_and_tolerant() -> None:
    p = daemon_pod(ds(), "n1", "h1")
    assert target_node(p) == "n1" and p["metadata"]["labels"]["controller-revision-hash"] == "h1"
    assert p["metadata"]["labels"]["pod-template-generation"] == "1"
    assert len(p["spec"]["tolerations"]) == 6


def test_creates_missing_and_deletes_misplaced() -> None:
    nodes = [node("a"), node("b"), node("c", taints=[{"key": "x", "effect": "NoExecute"}])]
    p = plan(ds(), nodes, [pod("b"), pod("c"), pod("gone")], "new", NOW)
    assert p.create == ("a",)
    assert sorted(x["spec"]["nodeName"] for x in p.delete) == ["c", "gone"]


@pytest.mark.parametrize("ru,pods,creates,deletes", [
    ({}, [pod("a", "old"), pod("b", "old"), pod("c", "old")], [], ["a"]),
    ({"maxUnavailable": 2}, [pod("a", "old"), pod("b", "old"), pod("c", "old")], [], ["a", "b"]),
    ({}, [pod("a", "new", ready=False), pod("b", "old"), pod("c", "old")], [], []),      # budget used
    ({}, [pod("a", "new"), pod("b", "old", ready=False), pod("c", "old")], [], ["b"]),   # unavailable old goes free
    ({"maxSurge": 1, "maxUnavailable": 0}, [pod("a", "old"), pod("b", "old"), pod("c", "old")], ["a"], []),
    # a's new pod is available: its old one goes and the surge moves on to b.
    ({"maxSurge": 1, "maxUnavailable": 0}, [pod("a", "old"), pod("a", "new", i=1), pod("b", "old"), pod("c", "old")], ["b"], ["a"]),
    ({"maxSurge": 1, "maxUnavailable": 0}, [pod("a", "old"), pod("a", "new", ready=False, i=1), pod("b", "old"), pod("c", "old")], [], []),
])
def test_rolling_update(ru: Obj, pods: list[Obj], creates: list[str], deletes: list[str]) -> None:
    p = plan(ds(**ru), [node("a"), node("b"), node("c")], pods, "new", NOW)
    assert list(p.create) == creates
    assert [x["spec"]["nodeName"] for x in p.delete] == deletes


def test_on_delete_replaces_nothing() -> None:
    d = ds()
    d["spec"]["updateStrategy"] = {"type": "OnDelete"}
    p = plan(d, [node("a")], [pod("a", "old")], "new", NOW)
    assert p.create == () and p.delete == ()


def test_status() -> None:
    nodes = [node("a"), node("b"), node("c", {"x": "1"})]
    d = ds()
    d["spec"]["template"]["spec"]["nodeSelector"] = {}
    st = compute_status(d, nodes, [pod("a"), pod("b", "old", ready=False)], "new", NOW)
    assert st == {"currentNumberScheduled": 2, "numberMisscheduled": 0, "desiredNumberScheduled": 3, "numberReady": 1,
                  "observedGeneration": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberUnavailable": 2}
