"""Cluster DNS records (schema 1.1.0) as tables: name and type → rcode and answers."""

from __future__ import annotations

import pytest

from minik.dns.records import (
    NOERROR,
    NXDOMAIN,
    Endpoint,
    Port,
    ServiceEntry,
    Zone,
    dashed,
    ready_endpoints,
    service_entry,
    undashed,
)
from tests.support.dns_objects import endpoint, make_service, make_slice, svc_port
from dns.rdatatype import RdataType as T

D = "cluster.local."


def zone() -> Zone:
    z = Zone("cluster.local", dns_ip="10.43.0.10")
    objs = [
        (make_service("web", cluster_ip="10.43.0.20",
                      ports=[svc_port(80, "http"), svc_port(53, "dns", "UDP"), svc_port(8443)]), []),
        (make_service("db", cluster_ip="None", ports=[svc_port(5432, "pg")]),
         [make_slice("db", [endpoint("10.42.0.5", hostname="db-0"), endpoint("10.42.0.6", hostname="db-1"),
                            endpoint("10.42.0.7"), endpoint("10.42.0.8", ready=False)],
                     ports=[{"name": "pg", "port": 15432, "protocol": "TCP"}])]),
        (make_service("empty", cluster_ip="None"), [make_slice("empty", [endpoint("10.42.0.30", ready=False)])]),
        (make_service("ext", external_name="Example.COM"), []),
        (make_service("inner", external_name="web.default.svc.cluster.local"), []),
        (make_service("v6", "other", cluster_ip="fd00::20"), []),
    ]
    for svc, slices in objs:
        m = svc["metadata"]
        z.set_service(m["namespace"], m["name"], service_entry(svc, slices))
    z.set_pod("default/client", "default", ["10.42.0.9"])
    return z


def values(ans: object) -> list[str]:
    return sorted(r.value for r in ans.answer)  # type: ignore[attr-defined]


CASES = [
    # ClusterIP Service
    ("web.default.svc." + D, T.A, NOERROR, ["10.43.0.20"]),
    ("WEB.Default.svc." + D, T.A, NOERROR, ["10.43.0.20"]),   # the resolver lower-cases; covered below
    ("web.default.svc." + D, T.AAAA, NOERROR, []),            # NODATA: the name exists
    ("web.default.svc." + D, T.TXT, NOERROR, []),
    ("nope.default.svc." + D, T.A, NXDOMAIN, []),
    ("web.nope.svc." + D, T.A, NXDOMAIN, []),
    ("v6.other.svc." + D, T.AAAA, NOERROR, ["fd00::20"]),
    ("v6.other.svc." + D, T.A, NOERROR, []),
    # SRV for named ports only
    ("_http._tcp.web.default.svc." + D, T.SRV, NOERROR, ["0 100 80 web.default.svc.cluster.local."]),
    ("_dns._udp.web.default.svc." + D, T.SRV, NOERROR, ["0 100 53 web.default.svc.cluster.local."]),
    ("_http._udp.web.default.svc." + D, T.SRV, NXDOMAIN, []),
    ("_nope._tcp.web.default.svc." + D, T.SRV, NXDOMAIN, []),
    ("_http._tcp.web.default.svc." + D, T.A, NOERROR, []),
    ("_tcp.web.default.svc." + D, T.SRV, NOERROR, []),       # empty non-terminal
    ("_sctp.web.default.svc." + D, T.SRV, NXDOMAIN, []),
    # headless: ready endpoints only, by hostname or dashed IP
    ("db.default.svc." + D, T.A, NOERROR, ["10.42.0.5", "10.42.0.6", "10.42.0.7"]),
    ("db-0.db.default.svc." + D, T.A, NOERROR, ["10.42.0.5"]),
    ("10-42-0-7.db.default.svc." + D, T.A, NOERROR, ["10.42.0.7"]),
    ("10-42-0-8.db.default.svc." + D, T.A, NXDOMAIN, []),      # not ready
    ("db-9.db.default.svc." + D, T.A, NXDOMAIN, []),
    ("db-0.db.default.svc." + D, T.AAAA, NOERROR, []),
    ("db-0.web.default.svc." + D, T.A, NXDOMAIN, []),          # ClusterIP Services have no endpoint names
    ("_pg._tcp.db.default.svc." + D, T.SRV, NOERROR, ["0 33 15432 10-42-0-7.db.default.svc.cluster.local.",
                                                      "0 33 15432 db-0.db.default.svc.cluster.local.",
                                                      "0 33 15432 db-1.db.default.svc.cluster.local."]),
    ("empty.default.svc." + D, T.A, NXDOMAIN, []),             # headless without ready endpoints
    # ExternalName
    ("ext.default.svc." + D, T.A, NOERROR, ["example.com."]),
    ("ext.default.svc." + D, T.CNAME, NOERROR, ["example.com."]),
    ("x.ext.default.svc." + D, T.A, NXDOMAIN, []),
    # pods (insecure, as k3s), version, apex
    ("10-42-0-99.default.pod." + D, T.A, NOERROR, ["10.42.0.99"]),
    ("fd00--5.default.pod." + D, T.AAAA, NOERROR, ["fd00::5"]),
    ("10-42-0-99.default.pod." + D, T.AAAA, NOERROR, []),
    ("not-an-ip.default.pod." + D, T.A, NXDOMAIN, []),
    ("default.pod." + D, T.A, NOERROR, []),
    ("dns-version." + D, T.TXT, NOERROR, ['"1.1.0"']),
    ("dns-version." + D, T.A, NOERROR, []),
    (D, T.SOA, NOERROR, ["ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 5"]),
    (D, T.NS, NOERROR, ["ns.dns.cluster.local."]),
    (D, T.A, NOERROR, []),
    ("ns.dns." + D, T.A, NOERROR, ["10.43.0.10"]),
    ("svc." + D, T.A, NOERROR, []),
    ("default.svc." + D, T.A, NOERROR, []),                      # a namespace with Services
    ("nothing.svc." + D, T.A, NXDOMAIN, []),
    ("foo." + D, T.A, NXDOMAIN, []),
    ("a.b.c.d.e.f.svc." + D, T.A, NXDOMAIN, []),
    # PTR: ClusterIPs, headless endpoints, pods
    ("20.0.43.10.in-addr.arpa.", T.PTR, NOERROR, ["web.default.svc.cluster.local."]),
    ("5.0.42.10.in-addr.arpa.", T.PTR, NOERROR, ["db-0.db.default.svc.cluster.local."]),
    ("7.0.42.10.in-addr.arpa.", T.PTR, NOERROR, ["10-42-0-7.db.default.svc.cluster.local."]),
    ("9.0.42.10.in-addr.arpa.", T.PTR, NOERROR, ["10-42-0-9.default.pod.cluster.local."]),
    ("20.0.43.10.in-addr.arpa.", T.A, NOERROR, []),
    ("0.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", T.PTR, NOERROR,
     ["v6.other.svc.cluster.local."]),
]


@pytest.mark.parametrize("qname,qtype,rcode,answer", CASES, ids=[f"{c[0]}/{c[1].name}" for c in CASES])
def test_answers(qname: str, qtype: T, rcode: int, answer: list[str]) -> None:
    ans = zone().resolve(qname.lower(), qtype)
    assert ans is not None
    assert ans.rcode == rcode
    assert values(ans) == answer
    if not answer:   # NXDOMAIN and NODATA carry the SOA for negative caching
        assert [r.rtype for r in ans.authority] == [T.SOA]


@pytest.mark.parametrize("qname", ["example.com.", "cluster.local.example.com.", "local.", "99.0.42.10.in-addr.arpa.",
                                   "42.10.in-addr.arpa.", "1.1.1.1.in-addr.arpa.", "xcluster.local."])
def test_names_outside_the_cluster_are_not_answered(qname: str) -> None:
    assert zone().resolve(qname, T.A if "arpa" not in qname else T.PTR) is None


def test_srv_additional_records_carry_the_targets() -> None:
    z = zone()
    ans = z.resolve("_pg._tcp.db.default.svc." + D, T.SRV)
    assert ans is not None
    assert sorted((r.name, r.value) for r in ans.additional) == [
        ("10-42-0-7.db.default.svc.cluster.local.", "10.42.0.7"),
        ("db-0.db.default.svc.cluster.local.", "10.42.0.5"),
        ("db-1.db.default.svc.cluster.local.", "10.42.0.6")]
    ans = z.resolve("_http._tcp.web.default.svc." + D, T.SRV)
    assert ans is not None and [(r.name, r.value) for r in ans.additional] == [("web.default.svc.cluster.local.", "10.43.0.20")]


def test_ttl_is_five_seconds_and_any_returns_every_type() -> None:
    z = zone()
    ans = z.resolve("web.default.svc." + D, T.ANY)
    assert ans is not None and {r.ttl for r in ans.answer} == {5}
    apex = z.resolve(D, T.ANY)
    assert apex is not None and {r.rtype for r in apex.answer} == {T.SOA, T.NS}


def test_updates_are_per_service_and_bump_the_generation() -> None:
    z = zone()
    g = z.generation
    svc = make_service("web", cluster_ip="10.43.0.20",
                       ports=[svc_port(80, "http"), svc_port(53, "dns", "UDP"), svc_port(8443)])
    assert not z.set_service("default", "web", service_entry(svc, []))   # unchanged: nothing to do
    assert z.generation == g
    assert z.set_service("default", "web", None)
    assert z.generation == g + 1
    assert z.resolve("web.default.svc." + D, T.A).rcode == NXDOMAIN  # type: ignore[union-attr]
    assert z.resolve("20.0.43.10.in-addr.arpa.", T.PTR) is None     # its PTR went with it
    for name in ("db", "empty", "ext", "inner"):
        z.set_service("default", name, None)
    assert z.resolve("default.svc." + D, T.A).rcode == NXDOMAIN  # type: ignore[union-attr]


def test_pod_ptr_follows_the_pod() -> None:
    z = zone()
    assert z.set_pod("default/client", "default", ["10.42.0.19"])
    assert z.resolve("9.0.42.10.in-addr.arpa.", T.PTR) is None
    assert values(z.resolve("19.0.42.10.in-addr.arpa.", T.PTR)) == ["10-42-0-19.default.pod.cluster.local."]
    assert not z.set_pod("default/client", "default", ["10.42.0.19"])
    assert z.set_pod("default/client", "default", [])
    assert z.resolve("19.0.42.10.in-addr.arpa.", T.PTR) is None


SERVICE_CASES = [
    ("no ClusterIP yet", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "n"}, "spec": {}}, None),
    ("no name", {"metadata": {"namespace": "n"}, "spec": {"clusterIP": "10.43.0.1"}}, None),
    ("garbage IP", make_service("a", "n", cluster_ip="x.y"), None),
    ("empty externalName", make_service("a", "n", external_name=" "), None),
    ("externalName made absolute", make_service("a", "n", external_name="Foo.Example"),
     ServiceEntry("n", "a", external_name="foo.example.")),
    ("unnamed ports have no SRV", make_service("a", "n", cluster_ip="10.43.0.7", ports=[svc_port(80), svc_port(81, "Web")]),
     ServiceEntry("n", "a", cluster_ips=("10.43.0.7",), ports=(Port("web", "tcp", 81),))),
]


@pytest.mark.parametrize("svc,want", [c[1:] for c in SERVICE_CASES], ids=[c[0] for c in SERVICE_CASES])
def test_service_entry(svc: dict, want: ServiceEntry | None) -> None:  # type: ignore[type-arg]
    assert service_entry(svc, []) == want


def test_ready_endpoints_merge_slices_and_honour_publish_not_ready() -> None:
    slices = [make_slice("s", [endpoint("10.42.0.2", hostname="a"), endpoint("10.42.0.3", ready=None)],
                         ports=[{"name": "x", "port": 1, "protocol": "UDP"}]),
              make_slice("s", [endpoint("10.42.0.2", hostname="a"), endpoint("10.42.0.4", ready=False)], name="s-2",
                         ports=[{"name": "y", "port": 2, "protocol": "TCP"}]),
              make_slice("s", [{"addresses": ["db.example."]}], name="s-3", address_type="FQDN")]
    assert ready_endpoints(slices) == (
        Endpoint("10-42-0-3", "10.42.0.3", (Port("x", "udp", 1),)),
        Endpoint("a", "10.42.0.2", (Port("x", "udp", 1), Port("y", "tcp", 2))))
    assert [e.ip for e in ready_endpoints(slices, include_not_ready=True)] == ["10.42.0.3", "10.42.0.4", "10.42.0.2"]
    svc = make_service("s", cluster_ip="None", publish_not_ready=True)
    entry = service_entry(svc, slices)
    assert entry is not None and {e.ip for e in entry.endpoints} == {"10.42.0.2", "10.42.0.3", "10.42.0.4"}


@pytest.mark.parametrize("ip,label", [("10.42.0.7", "10-42-0-7"), ("fd00::7", "fd00--7"), ("2001:db8:0:1::a", "2001-db8-0-1--a")])
def test_dashed_round_trip(ip: str, label: str) -> None:
    assert dashed(ip) == label
    assert undashed(label) == ip


@pytest.mark.parametrize("label", ["10-42-0", "a-b-c-d", "10-42-0-300", "web", "1-2-3-4-5-6-7-8-9"])
def test_undashed_rejects(label: str) -> None:
    assert undashed(label) is None


def test_node_names_answer_with_their_internal_ips() -> None:
    z = zone()
    g = z.generation
    assert z.set_node("Node-1", ["192.0.2.2", "fd00::2"])
    assert z.generation == g + 1
    assert not z.set_node("node-1", ["fd00::2", "192.0.2.2"])
    assert values(z.resolve("node-1.", T.A)) == ["192.0.2.2"]
    assert values(z.resolve("node-1.", T.AAAA)) == ["fd00::2"]
    assert values(z.resolve("node-1.", T.MX)) == []
    assert z.resolve("node-2.", T.A) is None               # not a node: forwarded
    assert values(z.resolve("2.2.0.192.in-addr.arpa.", T.PTR)) == ["node-1."]
    assert z.set_node("node-1", [])
    assert z.resolve("node-1.", T.A) is None
    assert z.resolve("2.2.0.192.in-addr.arpa.", T.PTR) is None


def test_an_existing_namespace_without_services_is_nodata() -> None:
    z = zone()
    assert z.resolve("empty-ns.svc." + D, T.A).rcode == NXDOMAIN  # type: ignore[union-attr]
    assert z.set_namespace("empty-ns", True)
    assert not z.set_namespace("empty-ns", True)
    ans = z.resolve("empty-ns.svc." + D, T.A)
    assert ans is not None and ans.rcode == NOERROR and not ans.answer
    assert z.resolve("x.empty-ns.svc." + D, T.A).rcode == NXDOMAIN  # type: ignore[union-attr]
    assert z.set_namespace("empty-ns", False)
    assert z.resolve("empty-ns.svc." + D, T.A).rcode == NXDOMAIN  # type: ignore[union-attr]
