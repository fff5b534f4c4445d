"""Endpoints planning: which pods, ready or not, port resolution by name, slices."""

from __future__ import annotations

from typing import Any

from minik.client import Obj
from minik.controllers.endpoints import endpoints_subsets, manages_endpoints, resolve_port, slice_endpoints

SVC = {"metadata": {"name": "web", "namespace": "ns", "uid": "s1"},
       "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}}


def pod(name: str, ip: str = "", ready: bool = True, port_name: str = "http", port: int = 8080, phase: str = "Running",
        deleting: bool = False, **spec: Any) -> Obj:
    m: dict[str, Any] = {"name": name, "namespace": "ns", "uid": f"u-{name}", "labels": {"app": "web"}}
    if deleting:
        m["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"metadata": m,
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": [{"name": port_name, "containerPort": port}]}], **spec},
            "status": {"phase": phase, "podIP": ip,
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def ref(name: str) -> Obj:
    return {"kind": "Pod", "namespace": "ns", "name": name, "uid": f"u-{name}"}


def test_subsets_split_ready_and_not_ready_and_skip_ineligible() -> None:
    pods = [pod("b", "10.0.0.2"), pod("a", "10.0.0.1"), pod("c", "10.0.0.3", ready=False),
            pod("noip"), pod("done", "10.0.0.4", phase="Succeeded"), pod("dying", "10.0.0.5", deleting=True)]
    assert endpoints_subsets(SVC, pods) == [{
        "addresses": [{"ip": "10.0.0.1", "nodeName": "n1", "targetRef": ref("a")},
                      {"ip": "10.0.0.2", "nodeName": "n1", "targetRef": ref("b")}],
        "notReadyAddresses": [{"ip": "10.0.0.3", "nodeName": "n1", "targetRef": ref("c")}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}]


def test_named_ports_group_pods_into_subsets() -> None:
    pods = [pod("a", "10.0.0.1", port=8080), pod("b", "10.0.0.2", port=9090), pod("c", "10.0.0.3", port_name="other")]
    subsets = endpoints_subsets(SVC, pods)
    assert [(s["ports"][0]["port"], [a["ip"] for a in s["addresses"]]) for s in subsets] == [
        (8080, ["10.0.0.1"]), (9090, ["10.0.0.2"])]


def test_resolve_port() -> None:
    p = pod("a")
    assert resolve_port({"port": 80, "targetPort": 8000}, p) == 8000
    assert resolve_port({"port": 80}, p) == 80
    assert resolve_port({"port": 80, "targetPort": "http"}, p) == 8080
    assert resolve_port({"port": 80, "targetPort": "http", "protocol": "UDP"}, p) is None


def test_publish_not_ready_and_hostname() -> None:
    svc = {**SVC, "spec": {**SVC["spec"], "publishNotReadyAddresses": True}}  # type: ignore[dict-item]
    p = pod("a", "10.0.0.1", ready=False, hostname="a", subdomain="web")
    (ss,) = endpoints_subsets(svc, [p])
    assert ss["addresses"][0]["hostname"] == "a" and "notReadyAddresses" not in ss


def test_headless_without_ports() -> None:
    svc = {"metadata": {"name": "h", "namespace": "ns"}, "spec": {"selector": {"app": "web"}, "clusterIP": "None"}}
    assert endpoints_subsets(svc, [pod("a", "10.0.0.1")]) == [
        {"addresses": [{"ip": "10.0.0.1", "nodeName": "n1", "targetRef": ref("a")}]}]


def test_slice_endpoints_keep_terminating_with_conditions() -> None:
    pods = [pod("a", "10.0.0.1"), pod("b", "10.0.0.2", ready=False), pod("c", "10.0.0.3", deleting=True)]
    ((ports, eps),) = slice_endpoints(SVC, pods)
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [(e["addresses"], e["conditions"]) for e in eps] == [
        (["10.0.0.1"], {"ready": True, "serving": True, "terminating": False}),
        (["10.0.0.2"], {"ready": False, "serving": False, "terminating": False}),
        (["10.0.0.3"], {"ready": False, "serving": True, "terminating": True})]
    assert eps[0]["targetRef"] == ref("a") and eps[0]["nodeName"] == "n1"


def test_manages_endpoints() -> None:
    assert manages_endpoints(SVC)
    assert not manages_endpoints({"metadata": {"name": "kubernetes", "namespace": "default"}, "spec": {"selector": {"a": "b"}}})
    assert not manages_endpoints({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"ports": []}})
    assert not manages_endpoints({"metadata": {"name": "x", "namespace": "ns"}, "spec": {"selector": {}}})
