"""The NetworkPolicy planner: which local pods are isolated and what each one allows."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from minik.agent.netpolicy import plan
from minik.net.netpol import Allow, PodRules, PortRange

NODE = "n1"
DNS = "10.43.0.10"
N = ipaddress.IPv4Network


def mkpod(name: str, ip: str, ns: str = "default", labels: dict[str, str] | None = None, node: str = NODE,
          ports: list[dict[str, Any]] | None = None, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels or {}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports or []}], **spec},
            "status": {"podIP": ip, "phase": "Running"}}


def mkns(name: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}}


def mkpol(name: str, ns: str = "default", selector: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"podSelector": selector if selector is not None else {}, **spec}
    if "policyTypes" not in s:   # the API server's default
        s["policyTypes"] = ["Ingress"] + (["Egress"] if s.get("egress") else [])
    return {"metadata": {"name": name, "namespace": ns}, "spec": s}


PODS = [
    mkpod("web", "10.42.0.5", labels={"app": "web"}, ports=[{"name": "http", "containerPort": 8080}]),
    mkpod("client", "10.42.0.6", labels={"role": "client"}),
    mkpod("other", "10.42.0.7", labels={"role": "other"}),
    mkpod("prod-client", "10.42.0.8", ns="prod", labels={"role": "client"}),
    mkpod("remote-web", "10.42.1.5", labels={"app": "web"}, node="n2",
          ports=[{"name": "http", "containerPort": 9090}]),
]
NSS = [mkns("default"), mkns("prod", team="a"), mkns("kube-system")]


def rules_of(result: tuple[PodRules, ...], ip: str) -> PodRules:
    return next(r for r in result if str(r.ip) == ip)


def test_unselected_pods_are_not_isolated() -> None:
    assert plan([], PODS, NSS, NODE, DNS) == ()
    result = plan([mkpol("p", selector={"matchLabels": {"app": "web"}})], PODS, NSS, NODE, DNS)
    # Only web (local); remote-web is enforced by its own node.
    assert [str(r.ip) for r in result] == ["10.42.0.5"]


def test_default_deny_selects_only_its_namespace() -> None:
    result = plan([mkpol("deny", policyTypes=["Ingress", "Egress"])], PODS, NSS, NODE, DNS)
    assert {str(r.ip) for r in result} == {"10.42.0.5", "10.42.0.6", "10.42.0.7"}
    for r in result:
        assert r.ingress == () and r.egress == ()


def test_ingress_only_policy_leaves_egress_open() -> None:
    (r,) = plan([mkpol("p", selector={"matchLabels": {"app": "web"}})], PODS, NSS, NODE, DNS)
    assert r.ingress == () and r.egress is None


def test_pod_selector_peer_and_ports() -> None:
    pol = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
        "ports": [{"protocol": "TCP", "port": 8080}, {"protocol": "UDP", "port": 5000, "endPort": 5010}],
    }])
    (r,) = plan([pol], PODS, NSS, NODE, DNS)
    # Only the client of the policy's namespace, not prod's client.
    assert r.ingress == (Allow((N("10.42.0.6/32"),), (PortRange("tcp", 8080, 8080), PortRange("udp", 5000, 5010))),)


def test_namespace_selector_alone_and_combined() -> None:
    alone = mkpol("a", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}])
    (r,) = plan([alone], PODS, NSS, NODE, DNS)
    assert r.ingress == (Allow((N("10.42.0.8/32"),)),)

    both = mkpol("b", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"role": "client"}}}]}])
    (r,) = plan([both], PODS, NSS, NODE, DNS)
    assert r.ingress == (Allow((N("10.42.0.6/32"), N("10.42.0.8/32"))),)

    by_name = mkpol("c", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "prod"}}}]}])
    (r,) = plan([by_name], PODS, NSS, NODE, DNS)
    assert r.ingress == (Allow((N("10.42.0.8/32"),)),)


def test_two_peers_are_or_not_and() -> None:
    pol = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"namespaceSelector": {"matchLabels": {"team": "a"}}},
                 {"podSelector": {"matchLabels": {"role": "other"}}}]}])
    (r,) = plan([pol], PODS, NSS, NODE, DNS)
    assert r.ingress == (Allow((N("10.42.0.7/32"), N("10.42.0.8/32"))),)


def test_ip_block_with_except() -> None:
    pol = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{
        "from": [{"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24", "192.168.128.0/17"]}}]}])
    (r,) = plan([pol], PODS, NSS, NODE, DNS)
    assert r.ingress is not None
    (allow,) = r.ingress
    assert allow.peers is not None
    for ip in ("192.168.1.1", "192.168.200.1", "10.0.0.1"):
        assert not any(ipaddress.IPv4Address(ip) in n for n in allow.peers)
    for ip in ("192.168.0.1", "192.168.2.1", "192.168.127.255"):
        assert any(ipaddress.IPv4Address(ip) in n for n in allow.peers)


def test_named_ingress_port_resolves_on_the_isolated_pod() -> None:
    pol = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": "http"}]}])
    (r,) = plan([pol], PODS, NSS, NODE, DNS)
    assert r.ingress == (Allow(None, (PortRange("tcp", 8080, 8080),)),)
    missing = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"ports": [{"port": "nope"}]}])
    (r,) = plan([missing], PODS, NSS, NODE, DNS)
    assert r.ingress == ()   # an unresolved name allows nothing (never everything)


def test_named_egress_port_resolves_on_each_destination() -> None:
    pol = mkpol("p", selector={"matchLabels": {"role": "client"}}, policyTypes=["Egress"], egress=[{
        "to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]}])
    (r,) = plan([pol], PODS, NSS, NODE, DNS)
    assert r.ingress is None
    assert r.egress == (Allow((N("10.42.0.5/32"),), (PortRange("tcp", 8080, 8080),)),
                        Allow((N("10.42.1.5/32"),), (PortRange("tcp", 9090, 9090),)))


def test_egress_dns_only() -> None:
    pol = mkpol("dns", policyTypes=["Egress"], egress=[{"ports": [{"protocol": "UDP", "port": 53},
                                                                  {"protocol": "TCP", "port": 53}]}])
    r = rules_of(plan([pol], PODS, NSS, NODE, DNS), "10.42.0.6")
    assert r.egress == (
        Allow(None, (PortRange("udp", 53, 53), PortRange("tcp", 53, 53))),
        Allow((N("10.43.0.10/32"),), (PortRange("tcp", 53, 53), PortRange("udp", 53, 53)), original=True),
    )


@pytest.mark.parametrize("peer,ports,expected", [
    ({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
      "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}, None, ("tcp", "udp")),
    ({"namespaceSelector": {}}, [{"protocol": "UDP", "port": 53}], ("udp",)),
    ({"namespaceSelector": {}}, [{"protocol": "UDP", "port": "dns"}], ("udp",)),
    ({"namespaceSelector": {}}, [{"protocol": "TCP", "port": 50, "endPort": 60}], ("tcp",)),
    ({"ipBlock": {"cidr": "10.43.0.0/16"}}, None, ("tcp", "udp")),
    ({"ipBlock": {"cidr": "10.43.0.0/16", "except": ["10.43.0.0/24"]}}, None, ()),
    ({"podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}, None, ()),     # not kube-system
    ({"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "x"}}}, None, ()),
    ({"namespaceSelector": {}}, [{"protocol": "TCP", "port": 80}], ()),
])
def test_dns_stand_in(peer: dict[str, Any], ports: list[dict[str, Any]] | None, expected: tuple[str, ...]) -> None:
    rule: dict[str, Any] = {"to": [peer]}
    if ports:
        rule["ports"] = ports
    pol = mkpol("p", selector={"matchLabels": {"role": "client"}}, policyTypes=["Egress"], egress=[rule])
    r = rules_of(plan([pol], PODS, NSS, NODE, DNS), "10.42.0.6")
    assert r.egress is not None
    dns = [a for a in r.egress if a.original]
    got = tuple(sorted(p.protocol for a in dns for p in a.ports))
    assert got == expected
    for a in dns:
        assert a.peers == (N("10.43.0.10/32"),)


def test_policies_are_additive() -> None:
    a = mkpol("a", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}])
    b = mkpol("b", selector={}, ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "other"}}}]}])
    r = rules_of(plan([a, b], PODS, NSS, NODE, DNS), "10.42.0.5")
    assert r.ingress == (Allow((N("10.42.0.6/32"),)), Allow((N("10.42.0.7/32"),)))
    # An empty rule allows everything; it wins over a default deny in another policy.
    allow_all = mkpol("all", ingress=[{}])
    deny = mkpol("deny")
    r = rules_of(plan([allow_all, deny], PODS, NSS, NODE, DNS), "10.42.0.5")
    assert r.ingress == (Allow(None),)


def test_peers_without_address_host_network_and_finished_pods_are_ignored() -> None:
    pods = PODS + [
        mkpod("pending", "", labels={"role": "client"}),
        mkpod("hostnet", "192.168.5.5", labels={"role": "client"}, hostNetwork=True),
        {**mkpod("done", "10.42.0.9", labels={"role": "client"}), "status": {"podIP": "10.42.0.9", "phase": "Succeeded"}},
    ]
    pol = mkpol("p", selector={"matchLabels": {"app": "web"}}, ingress=[{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}])
    (r,) = plan([pol], pods, NSS, NODE, DNS)
    assert r.ingress == (Allow((N("10.42.0.6/32"),)),)


def test_selector_expressions_and_malformed_policy() -> None:
    pol = mkpol("p", selector={"matchExpressions": [{"key": "role", "operator": "In", "values": ["client", "other"]}]})
    result = plan([pol, {"metadata": {"name": "bad", "namespace": "default"},
                         "spec": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}}],
                  PODS, NSS, NODE, DNS)
    assert {str(r.ip) for r in result} == {"10.42.0.6", "10.42.0.7"}


def test_policy_types_default_from_spec_when_absent() -> None:
    raw = {"metadata": {"name": "p", "namespace": "default"},
           "spec": {"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "1.2.3.0/24"}}]}]}}
    r = rules_of(plan([raw], PODS, NSS, NODE, DNS), "10.42.0.6")
    assert r.ingress == () and r.egress == (Allow((N("1.2.3.0/24"),)),)


def test_stored_objects_that_would_break_the_ruleset_are_skipped() -> None:
    """Only old stored objects can hold these (validation rejects them); one such policy or pod
    must not stop enforcement of the others."""
    bad_proto = mkpol("icmp", ingress=[{"ports": [{"protocol": "ICMP", "port": 1}]}])
    bad_range = mkpol("range", ingress=[{"ports": [{"port": 90, "endPort": 80}]}])
    good = mkpol("good", selector={"matchLabels": {"app": "web"}})
    pods = PODS + [mkpod("weird", "10.42.0.9", labels={"app": "web"},
                         ports=[{"name": "x", "containerPort": 99999}, {"name": "y", "containerPort": 5, "protocol": "ICMP"}])]
    result = plan([bad_proto, bad_range, good], pods, NSS, NODE, DNS)
    assert {str(r.ip) for r in result} == {"10.42.0.5", "10.42.0.9"}
