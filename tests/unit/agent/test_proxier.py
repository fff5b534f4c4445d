"""The proxier's translation of Services and EndpointSlices into rule inputs (pure parts)."""

from __future__ import annotations

from typing import Any

from minik.agent.proxier import merge, replace_parts, service_info
from minik.net.services import Endpoint, Settings, build

Obj = dict[str, Any]


def service(name: str = "web", typ: str = "ClusterIP", **spec: Any) -> Obj:
    base: Obj = {"type": typ, "clusterIP": "10.43.0.20", "selector": {"app": name},
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": "http"}]}
    base.update(spec)
    return {"metadata": {"name": name, "namespace": "default"}, "spec": base}


def eslice(*eps: tuple[str, bool | None, str], port: int = 8080, name: str = "http") -> Obj:
    return {"addressType": "IPv4", "ports": [{"name": name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "nodeName": node,
                           **({"conditions": {"ready": ready}} if ready is not None else {})} for ip, ready, node in eps]}


def test_ready_endpoints_per_slice_with_their_own_port_numbers() -> None:
    info = service_info(service(), [eslice(("10.42.0.5", True, "n1"), ("10.42.0.6", False, "n1")),
                                    eslice(("10.42.0.7", None, "n2"), port=9090)], None, "n1")
    assert info is not None
    assert info.ports[0].endpoints == (Endpoint("10.42.0.5", 8080, True), Endpoint("10.42.0.7", 9090, False))


def test_types_without_rules_and_headless() -> None:
    assert service_info(service(typ="ExternalName", clusterIP=""), [], None, "n1") is None
    assert service_info(service(clusterIP="None"), [], None, "n1") is None


def test_nodeport_local_policy_affinity_and_loadbalancer_addresses() -> None:
    svc = service(typ="LoadBalancer", externalTrafficPolicy="Local", sessionAffinity="ClientIP",
                  ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}])
    svc["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.2"}]}}
    info = service_info(svc, [], None, "n1")
    assert info is not None
    assert info.ports[0].node_port == 30080 and info.external_local
    assert info.affinity_timeout == 10800
    assert info.lb_addresses == ("127.0.0.1", "192.0.2.2")
    pending = service(typ="LoadBalancer", ports=[{"port": 80, "protocol": "TCP", "nodePort": 30081}])
    info = service_info(pending, [], None, "n1")
    assert info is not None and info.lb_addresses == ()


def test_selectorless_service_uses_its_endpoints_like_the_mirroring_controller() -> None:
    svc = service(name="kubernetes", selector=None, ports=[{"name": "https", "port": 443, "protocol": "TCP"}])
    ep = {"subsets": [{"addresses": [{"ip": "192.0.2.2"}], "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]}]}
    info = service_info(svc, [], ep, "n1")
    assert info is not None and info.ports[0].endpoints == (Endpoint("192.0.2.2", 6443, True),)


def test_merge_of_parts_equals_building_everything() -> None:
    s = Settings("minik", "10.43.0.0/16", "10.42.0.0/16")
    a = service_info(service("a", clusterIP="10.43.0.21"), [eslice(("10.42.0.5", True, "n1"))], None, "n1")
    b = service_info(service("b", clusterIP="10.43.0.22"), [], None, "n1")
    assert a is not None and b is not None
    assert merge([build([a], s), build([b], s)]) == build([a, b], s)


def test_replacing_parts_equals_building_everything_again() -> None:
    s = Settings("minik", "10.43.0.0/16", "10.42.0.0/16")
    a = service_info(service("a", clusterIP="10.43.0.21"), [eslice(("10.42.0.5", True, "n1"))], None, "n1")
    b = service_info(service("b", "NodePort", clusterIP="10.43.0.22",
                             ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
                     [eslice(("10.42.0.6", True, "n1"))], None, "n1")
    a2 = service_info(service("a", clusterIP="10.43.0.21"), [], None, "n1")   # a lost its endpoint
    # c takes b's ClusterIP and nodePort in the same sync as b goes: they must stay.
    c = service_info(service("c", "NodePort", clusterIP="10.43.0.22",
                             ports=[{"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080}]),
                     [eslice(("10.42.0.7", True, "n1"))], None, "n1")
    assert a is not None and b is not None and a2 is not None and c is not None
    current = build([a, b], s)
    before = build([a, b], s)
    new = replace_parts(current, [build([a], s), build([b], s)], [build([a2], s), build([c], s)])
    assert new == build([a2, c], s)
    assert current == before   # the applied ruleset is not changed in place
    assert replace_parts(new, [build([c], s)], []) == build([a2], s)
