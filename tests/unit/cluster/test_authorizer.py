"""The node authorizer's decisions, against a small in-memory view of the cluster."""

from __future__ import annotations

import asyncio
from typing import Any

from minik.cluster.authorizer import NodeAuthorizer, Request

Obj = dict[str, Any]


class FakeClient:
    def __init__(self, objs: dict[str, list[Obj]]) -> None:
        self.objs = objs

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        for o in self.objs.get(resource, []):
            m = o["metadata"]
            if m.get("namespace", "") == namespace and m["name"] == name:
                return o
        return None

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        items = [o for o in self.objs.get(resource, []) if namespace in (None, "") or o["metadata"].get("namespace") == namespace]
        if field_selector.startswith("spec.nodeName="):
            node = field_selector.split("=", 1)[1]
            items = [o for o in items if o.get("spec", {}).get("nodeName") == node]
        return items, "1"


def _pod(name: str, node: str, **spec: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"nodeName": node, **spec}}


CLUSTER = FakeClient({
    "pods": [_pod("mine", "n1", volumes=[{"name": "v", "secret": {"secretName": "s-mine"}},
                                         {"name": "c", "persistentVolumeClaim": {"claimName": "claim"}}],
                  serviceAccountName="robot"),
             _pod("theirs", "n2", volumes=[{"name": "v", "secret": {"secretName": "s-theirs"}}])],
    "persistentvolumeclaims": [{"metadata": {"name": "claim", "namespace": "ns"}, "spec": {"volumeName": "pv-1"}}],
    "networking.k8s.io/ingresses": [{"metadata": {"name": "ing", "namespace": "ns"}, "spec": {"tls": [{"secretName": "tls"}]}}],
})


def check(r: Request, node: str = "n1") -> str:
    return asyncio.run(NodeAuthorizer(CLUSTER).check(node, r))  # type: ignore[arg-type]


def test_reads_of_shared_objects_are_allowed() -> None:
    for res in ("services", "discovery.k8s.io/endpointslices", "nodes", "pods", "namespaces", "networking.k8s.io/networkpolicies"):
        assert check(Request("list", res, "", "")) == ""
        assert check(Request("watch", res, "", "")) == ""


def test_own_node_lease_and_events_only() -> None:
    assert check(Request("patch", "nodes", "", "n1", "status")) == ""
    assert "own Node" in check(Request("patch", "nodes", "", "n2", "status"))
    assert check(Request("delete", "nodes", "", "n1")) != ""
    assert check(Request("update", "coordination.k8s.io/leases", "kube-node-lease", "n1")) == ""
    assert check(Request("update", "coordination.k8s.io/leases", "kube-node-lease", "n2")) != ""
    assert check(Request("create", "events", "ns", "e1")) == ""
    assert check(Request("list", "events", "ns", "")) != ""


def test_pods_bound_to_the_node() -> None:
    assert check(Request("patch", "pods", "ns", "mine", "status")) == ""
    assert check(Request("delete", "pods", "ns", "mine")) == ""
    assert "bound to it" in check(Request("patch", "pods", "ns", "theirs", "status"))
    assert check(Request("create", "pods", "ns", "new")) != ""
    assert check(Request("patch", "pods", "ns", "mine", "ephemeralcontainers")) != ""


def test_referenced_objects_only() -> None:
    assert check(Request("get", "secrets", "ns", "s-mine")) == ""
    assert "references it" in check(Request("get", "secrets", "ns", "s-theirs"))
    assert check(Request("get", "secrets", "ns", "tls")) == ""          # an Ingress's TLS Secret
    assert check(Request("get", "persistentvolumeclaims", "ns", "claim")) == ""
    assert check(Request("get", "persistentvolumes", "", "pv-1")) == ""
    assert check(Request("get", "persistentvolumes", "", "pv-2")) != ""
    assert check(Request("get", "serviceaccounts", "ns", "robot")) == ""
    assert check(Request("list", "secrets", "ns", "")) != ""           # lists are filtered by the link instead
    assert check(Request("get", "secrets", "ns", "s-mine"), node="n2") != ""


def test_tokens_only_for_own_pods_service_accounts() -> None:
    ref = {"boundObjectRef": {"kind": "Pod", "name": "mine"}}
    assert check(Request("create_token", "serviceaccounts", "ns", "robot", body=ref)) == ""
    assert check(Request("create_token", "serviceaccounts", "ns", "default", body=ref)) != ""
    assert check(Request("create_token", "serviceaccounts", "ns", "robot", body={})) != ""
    assert check(Request("create_token", "serviceaccounts", "ns", "default",
                         body={"boundObjectRef": {"kind": "Pod", "name": "theirs"}})) != ""


def test_everything_else_refused() -> None:
    assert check(Request("list", "apps/deployments", "", "")) != ""
    assert check(Request("create", "rbac.authorization.k8s.io/clusterrolebindings", "", "x")) != ""
    assert check(Request("delete", "namespaces", "", "ns")) != ""
