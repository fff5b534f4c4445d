"""Service API behaviour without a node: NodePort allocation and the 422s of bad Services.

A control-plane-only server (`minik` fixture) started with a small --service-node-port-range,
driven through its HTTP API (the Status bodies kubectl prints) and kubectl.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.minikd import KUBECTL, Minik, free_port

pytestmark = pytest.mark.e2e

Obj = dict[str, Any]
RANGE = (31000, 31009)


@pytest.fixture(scope="module")
def api() -> Iterator[Minik]:
    if not os.path.exists(KUBECTL):
        pytest.skip("kubectl missing")
    root = tempfile.mkdtemp(prefix="minik-e2e-")
    m = Minik(root, free_port(), ["--disable-agent", "--service-node-port-range", f"{RANGE[0]}-{RANGE[1]}"])
    m.start()
    try:
        yield m
    finally:
        m.stop()
        shutil.rmtree(root, ignore_errors=True)


def _svc(name: str, typ: str = "NodePort", ports: list[Obj] | None = None, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": typ, "selector": {"app": name}, "ports": ports or [{"port": 80}], **spec}}


def _create(m: Minik, obj: Obj) -> tuple[int, Obj]:
    code, body = m.raw_json("POST", "/api/v1/namespaces/default/services", obj)
    return code, body


def _fields(body: Obj) -> list[str]:
    return [c.get("field", "") for c in (body.get("details") or {}).get("causes") or []]


def test_node_ports_come_from_the_configured_range_and_are_unique(api: Minik) -> None:
    ports = []
    for i in range(4):
        code, body = _create(api, _svc(f"np{i}", ports=[{"name": "a", "port": 80}, {"name": "b", "port": 81}]))
        assert code == 201, body
        ports += [p["nodePort"] for p in body["spec"]["ports"]]
    assert len(set(ports)) == 8 and all(RANGE[0] <= p <= RANGE[1] for p in ports), ports
    # The range is full now (10 ports, 8 used, 2 left): a Service asking for 3 gets 500 as kube does.
    code, body = _create(api, _svc("np-full", ports=[{"name": "a", "port": 1}, {"name": "b", "port": 2},
                                                       {"name": "c", "port": 3}]))
    assert code in (422, 500), body
    # Deleting frees the ports; they can be taken again explicitly.
    freed = ports[:2]
    code, _ = api.raw_json("DELETE", "/api/v1/namespaces/default/services/np0")
    assert code == 200
    code, body = _create(api, _svc("np-again", ports=[{"name": "a", "port": 80, "nodePort": freed[0]},
                                                      {"name": "b", "port": 81, "nodePort": freed[1]}]))
    assert code == 201, body
    # Changing the type to ClusterIP drops the node ports (freed for others).
    code, body = api.raw_json("PATCH", "/api/v1/namespaces/default/services/np-again",
                              {"spec": {"type": "ClusterIP"}}, content_type="application/merge-patch+json")
    assert code == 200, body.get("message")
    assert all("nodePort" not in p for p in body["spec"]["ports"]), body
    code, body = _create(api, _svc("np-reuse", ports=[{"port": 80, "nodePort": freed[0]}]))
    assert code == 201, body
    for name in ("np1", "np2", "np3", "np-again", "np-reuse"):
        api.raw_json("DELETE", f"/api/v1/namespaces/default/services/{name}")


@pytest.mark.parametrize("ports, field, words", [
    ([{"port": 80, "nodePort": 30000}], "spec.ports[0].nodePort", "valid range"),
    ([{"name": "a", "port": 80, "nodePort": 70000}], "spec.ports[0].nodePort", ""),
    ([{"name": "a", "port": 80, "nodePort": RANGE[0] + 5}, {"name": "b", "port": 81, "nodePort": RANGE[0] + 5}],
     "spec.ports[1].nodePort", "Duplicate"),
    ([{"name": "a", "port": 80}, {"name": "a", "port": 81}], "spec.ports[1].name", "Duplicate"),
])
def test_bad_node_ports_and_port_names_are_422_naming_the_field(api: Minik, ports: list[Obj], field: str,
                                                                words: str) -> None:
    code, body = _create(api, _svc("bad", ports=ports))
    assert code == 422, body
    assert field in _fields(body), body
    assert words in body["message"], body


def test_node_port_taken_by_another_service_is_422(api: Minik) -> None:
    code, body = _create(api, _svc("owner", ports=[{"port": 80, "nodePort": RANGE[0] + 7}]))
    assert code == 201, body
    try:
        code, body = _create(api, _svc("thief", ports=[{"port": 80, "nodePort": RANGE[0] + 7}]))
        assert code == 422, body
        assert _fields(body) == ["spec.ports[0].nodePort"], body
        assert "already allocated" in body["message"]
        r = api.kubectl("create", "service", "nodeport", "thief2", f"--node-port={RANGE[0] + 7}", "--tcp=80:80",
                        check=False)
        assert r.returncode != 0 and "spec.ports[0].nodePort" in r.stderr, r.stderr
    finally:
        api.raw_json("DELETE", "/api/v1/namespaces/default/services/owner")


@pytest.mark.parametrize("spec, field", [
    ({"clusterIP": "10.99.0.5"}, "spec.clusterIPs"),
    ({"clusterIP": "not-an-ip"}, "spec.clusterIPs[0]"),
    ({"type": "ExternalName", "externalName": "not a name", "ports": []}, "spec.externalName"),
    ({"type": "Bogus"}, "spec.type"),
    ({"externalTrafficPolicy": "Local", "type": "ClusterIP"}, "spec.externalTrafficPolicy"),
])
def test_bad_services_are_422_naming_the_field(api: Minik, spec: Obj, field: str) -> None:
    obj = _svc("bad2", typ=spec.pop("type", "ClusterIP"), **spec)
    if obj["spec"]["type"] == "ExternalName":
        obj["spec"].pop("selector")
    code, body = _create(api, obj)
    assert code == 422, body
    assert field in _fields(body), body


def test_cluster_ip_taken_and_immutable(api: Minik) -> None:
    code, body = _create(api, _svc("first", typ="ClusterIP"))
    assert code == 201, body
    ip = body["spec"]["clusterIP"]
    try:
        code, body = _create(api, _svc("second", typ="ClusterIP", clusterIP=ip))
        assert code == 422 and "spec.clusterIPs" in _fields(body), body
        code, body = api.raw_json("PATCH", "/api/v1/namespaces/default/services/first",
                                  {"spec": {"clusterIP": "10.43.200.200", "clusterIPs": ["10.43.200.200"]}},
                                  content_type="application/merge-patch+json")
        assert code == 422 and "spec.clusterIPs[0]" in _fields(body), body
    finally:
        api.raw_json("DELETE", "/api/v1/namespaces/default/services/first")


def test_headless_cannot_become_a_cluster_ip_service_but_types_can_change(api: Minik) -> None:
    code, body = _create(api, _svc("headless", typ="ClusterIP", clusterIP="None"))
    assert code == 201 and body["spec"]["clusterIP"] == "None", body
    code, body = api.raw_json("PATCH", "/api/v1/namespaces/default/services/headless",
                              {"spec": {"clusterIP": "10.43.7.7", "clusterIPs": ["10.43.7.7"]}},
                              content_type="application/merge-patch+json")
    assert code == 422 and "spec.clusterIPs[0]" in _fields(body), body
    # ClusterIP → NodePort → ClusterIP keeps the cluster IP and allocates/frees the node port.
    code, body = _create(api, _svc("flip", typ="ClusterIP"))
    ip = body["spec"]["clusterIP"]
    code, body = api.raw_json("PATCH", "/api/v1/namespaces/default/services/flip", {"spec": {"type": "NodePort"}},
                              content_type="application/merge-patch+json")
    assert code == 200 and body["spec"]["clusterIP"] == ip, body
    assert RANGE[0] <= body["spec"]["ports"][0]["nodePort"] <= RANGE[1]
    code, body = api.raw_json("PATCH", "/api/v1/namespaces/default/services/flip", {"spec": {"type": "ClusterIP"}},
                              content_type="application/merge-patch+json")
    assert code == 200 and "nodePort" not in body["spec"]["ports"][0], body
    for name in ("headless", "flip"):
        api.raw_json("DELETE", f"/api/v1/namespaces/default/services/{name}")
