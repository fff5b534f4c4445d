"""choose_node: table-driven filter outcomes with kube-scheduler's messages."""

from __future__ import annotations

from typing import Any

import pytest

from minik.scheduler.scheduler import choose_node
from minik.scheduler.state import ClusterState


def make_node(name: str, ready: bool = True, labels: dict[str, str] | None = None, taints: list[dict[str, Any]] | None = None,
              cpu: str = "2", pods: str = "110", unschedulable: bool = False) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def make_pod(cpu: str = "", node_selector: dict[str, str] | None = None, tolerations: list[dict[str, Any]] | None = None,
             host_port: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = {"name": "c", "image": "busybox"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    if host_port:
        c["ports"] = [{"containerPort": 80, "hostPort": host_port, "protocol": "TCP"}]
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [c], "nodeSelector": node_selector or {}, "tolerations": tolerations or []}}


@pytest.mark.parametrize("pod,nodes,want,msg", [
    (make_pod(), [make_node("a")], "a", ""),
    (make_pod(), [make_node("a", ready=False)], "", "0/1 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }."),
    (make_pod(cpu="3"), [make_node("a")], "", "0/1 nodes are available: 1 Insufficient cpu."),
    (make_pod(cpu="500m"), [make_node("a")], "a", ""),
    (make_pod(node_selector={"disk": "ssd"}), [make_node("a"), make_node("b", labels={"disk": "ssd"})], "b", ""),
    (make_pod(), [make_node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])], "", "0/1 nodes are available: 1 node(s) had untolerated taint {k: v}."),
    (make_pod(tolerations=[{"key": "k", "operator": "Exists"}]), [make_node("a", taints=[{"key": "k", "value": "v", "effect": "NoSchedule"}])], "a", ""),
    (make_pod(), [make_node("a", unschedulable=True)], "", "0/1 nodes are available: 1 node(s) were unschedulable."),
])
def test_choose_node(pod: dict[str, Any], nodes: list[dict[str, Any]], want: str, msg: str) -> None:
    d = choose_node(pod, nodes, ClusterState())
    assert d.node == want
    if msg:
        assert d.message == msg


def test_host_port_conflict_and_pod_count() -> None:
    other = make_pod(host_port=8080)
    state = ClusterState({"a": [other]})
    assert choose_node(make_pod(host_port=8080), [make_node("a")], state).node == ""
    assert choose_node(make_pod(host_port=8081), [make_node("a")], state).node == "a"
    assert choose_node(make_pod(), [make_node("a", pods="1")], state).message == "0/1 nodes are available: 1 Too many pods."
