"""Cluster DNS end to end: a real agent-enabled server answers on its DNS IP (on a link of its own),
queried from pods (busybox nslookup / wget, through the resolv.conf the agent renders) and from the
host with dnspython. Names outside the cluster go to a test resolver on a loopback address, named
in the server's --resolv-conf: nothing leaves the host.
Neighbours: tests/e2e/agent_fixtures.py (server, pods), tests/support/dnsupstream.py (the upstream).
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from tests.e2e.agent_fixtures import NodeNet, Ns, Obj, bb, node_server, pod
from tests.e2e.minikd import Minik, free_port
from tests.support.dnsupstream import Upstream

pytestmark = pytest.mark.e2e
D = "cluster.local"


@dataclass
class DnsNode:
    m: Minik
    net: NodeNet
    upstream: Upstream

    @property
    def ip(self) -> str:
        return self.net.cluster_dns

    def ask(self, name: str, rtype: str = "A", tcp: bool = False, edns: bool = True) -> dns.message.Message:
        q = dns.message.make_query(name, rtype, use_edns=0 if edns else False)
        if tcp:
            return dns.query.tcp(q, self.ip, timeout=5)
        return dns.query.udp(q, self.ip, timeout=5)

    def values(self, name: str, rtype: str = "A") -> list[str]:
        r = self.ask(name, rtype)
        want = dns.rdatatype.from_text(rtype)
        return sorted(rd.to_text() for rs in r.answer if rs.rdtype == want for rd in rs)


@pytest.fixture(scope="module")
def node(local_registry: str) -> Iterator[DnsNode]:
    up = Upstream(host=f"127.53.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 1}", port=53)
    up.add("outside.example", "A", "192.0.2.7").add("www.example", "A", "192.0.2.8")
    up.start()
    d = tempfile.mkdtemp(prefix="mk-e2e-dns-")
    resolv = os.path.join(d, "resolv.conf")
    with open(resolv, "w", encoding="ascii") as f:
        f.write(f"nameserver {up.host}\n")
    try:
        with node_server(local_registry, ["--resolv-conf", resolv]) as (m, net):
            yield DnsNode(m, net, up)
    finally:
        up.stop()
        os.unlink(resolv)
        os.rmdir(d)


def _until(fn: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, dns.exception.DNSException) as e:
            last = e
        time.sleep(interval)
    raise AssertionError(f"not reached in {timeout}s: last {last!r}")


def web_pod(name: str) -> Obj:
    script = f"mkdir -p /www && echo hi-{name} > /www/index.html && exec httpd -f -p 8080 -h /www"
    p = pod(name, [bb("web", script, ports=[{"name": "http", "containerPort": 8080}])],
            hostname=name, subdomain="db")
    p["metadata"]["labels"] = {"app": "web"}
    return p


def service(name: str, spec: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@dataclass
class App:
    ns: Ns
    web_ip: str              # ClusterIP of web
    pods: dict[str, str]     # pod name → IP
    client: str


@pytest.fixture(scope="module")
def app(node: DnsNode) -> App:
    ns = Ns.make(node.m, "dns")
    big = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
           "metadata": {"name": "big-1", "labels": {"kubernetes.io/service-name": "big"}},
           "addressType": "IPv4", "ports": [{"name": "x", "port": 1, "protocol": "TCP"}],
           "endpoints": [{"addresses": [f"10.{node.net.octet}.120.{i}"], "conditions": {"ready": True}}
                         for i in range(1, 101)]}
    ns.create(web_pod("web-0"), web_pod("web-1"),
              pod("client", [bb("c", "exec sleep 3600")]),
              service("web", {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}),
              service("db", {"clusterIP": "None", "selector": {"app": "web"},
                             "ports": [{"name": "http", "port": 8080}]}),
              service("nobody", {"clusterIP": "None", "selector": {"app": "none"}, "ports": [{"port": 80}]}),
              service("ext", {"type": "ExternalName", "externalName": "outside.example"}),
              service("big", {"clusterIP": "None", "ports": [{"name": "x", "port": 1}]}), big)
    pods = {}
    for name in ("web-0", "web-1", "client"):
        p = ns.wait(name, timeout=90)
        pods[name] = p["status"]["podIP"]
    code, svc = node.m.raw_json("GET", f"/api/v1/namespaces/{ns.name}/services/web")
    assert code == 200
    return App(ns, svc["spec"]["clusterIP"], pods, "client")


def nslookup(app: App, *args: str) -> str:
    r = app.ns.exec(app.client, "nslookup", *args, check=False)
    return str(r.stdout) + str(r.stderr)


# ---- the DNS IP and kube-dns ------------------------------------------------------------------

def test_kube_dns_service_points_at_the_node_local_dns_ip(node: DnsNode) -> None:
    svc = json.loads(node.m.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] == node.ip
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert {(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]} == {
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")}
    assert "selector" not in svc["spec"]
    ep = json.loads(node.m.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == [node.ip]
    slices = json.loads(node.m.kubectl("get", "endpointslices", "-n", "kube-system", "-l",
                                       "kubernetes.io/service-name=kube-dns", "-o", "json").stdout)["items"]
    assert [e["addresses"] for s in slices for e in s["endpoints"]] == [[node.ip]]
    # The DNS IP is an address of this host: the kernel delivers queries locally, never via a gateway.
    route = subprocess.run(["ip", "route", "get", node.ip], capture_output=True, text=True, check=True).stdout
    assert route.startswith("local "), route


def test_kubernetes_service_and_version_from_the_host(node: DnsNode) -> None:
    first = str(ipaddress.ip_network(node.net.service_cidr).network_address + 1)
    assert _until(lambda: node.values(f"kubernetes.default.svc.{D}")) == [first]
    r = node.ask(f"kubernetes.default.svc.{D}", tcp=True)
    assert [rd.to_text() for rd in r.answer[0]] == [first]
    assert node.values(f"dns-version.{D}", "TXT") == ['"1.1.0"']


# ---- Services, from pods and from the host ------------------------------------------------------

def test_service_a_record_and_search_path_from_a_pod(node: DnsNode, app: App) -> None:
    ns = app.ns.name
    assert _until(lambda: node.values(f"web.{ns}.svc.{D}")) == [app.web_ip]
    # busybox's nslookup applies the search list only to names without a dot.
    for name in ("web", f"web.{ns}.svc.{D}"):
        out = nslookup(app, name)
        assert app.web_ip in out, f"nslookup {name}:\n{out}"
    assert "NXDOMAIN" in nslookup(app, f"nope.{ns}.svc.{D}")


def test_headless_service_returns_every_ready_pod_and_hostnames(node: DnsNode, app: App) -> None:
    ns = app.ns.name
    both = sorted([app.pods["web-0"], app.pods["web-1"]])
    assert _until(lambda: node.values(f"db.{ns}.svc.{D}") == both and both)
    out = nslookup(app, "db")
    assert app.pods["web-0"] in out and app.pods["web-1"] in out, out
    assert node.values(f"web-0.db.{ns}.svc.{D}") == [app.pods["web-0"]]
    # The pod reaches a peer by its stable name: resolved here, then connected to the pod IP.
    r = app.ns.exec(app.client, "wget", "-qO-", f"http://web-1.db.{ns}.svc.{D}:8080/", check=False)
    assert "hi-web-1" in r.stdout, r.stderr
    srv = node.values(f"_http._tcp.db.{ns}.svc.{D}", "SRV")
    assert srv == [f"0 50 8080 web-0.db.{ns}.svc.{D}.", f"0 50 8080 web-1.db.{ns}.svc.{D}."]
    # No ready endpoint: the name does not exist.
    assert node.ask(f"nobody.{ns}.svc.{D}").rcode() == dns.rcode.NXDOMAIN


def test_srv_for_a_named_port_and_nodata_vs_nxdomain(node: DnsNode, app: App) -> None:
    ns = app.ns.name
    _until(lambda: node.values(f"web.{ns}.svc.{D}"))
    assert node.values(f"_http._tcp.web.{ns}.svc.{D}", "SRV") == [f"0 100 80 web.{ns}.svc.{D}."]
    out = nslookup(app, "-type=srv", f"_http._tcp.web.{ns}.svc.{D}")
    assert f"web.{ns}.svc.{D}" in out and " 80 " in out, out
    r = node.ask(f"web.{ns}.svc.{D}", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA
    r = node.ask(f"_http._udp.web.{ns}.svc.{D}", "SRV")
    assert r.rcode() == dns.rcode.NXDOMAIN
    # A namespace exists even without Services (NODATA); one that does not is NXDOMAIN.
    empty = Ns.make(node.m, "empty")
    assert _until(lambda: node.ask(f"{empty.name}.svc.{D}").rcode() == dns.rcode.NOERROR)
    assert node.ask(f"no-such-ns.svc.{D}").rcode() == dns.rcode.NXDOMAIN


def test_ptr_for_service_and_pod_ips(node: DnsNode, app: App) -> None:
    ns = app.ns.name

    def ptr(ip: str) -> list[str]:
        return node.values(dns.reversename.from_address(ip).to_text(), "PTR")

    assert _until(lambda: ptr(app.web_ip)) == [f"web.{ns}.svc.{D}."]
    assert _until(lambda: ptr(app.pods["web-0"])) == [f"web-0.db.{ns}.svc.{D}."]
    client_ip = app.pods["client"]
    assert _until(lambda: ptr(client_ip)) == [f"{client_ip.replace('.', '-')}.{ns}.pod.{D}."]
    assert node.values(f"{client_ip.replace('.', '-')}.{ns}.pod.{D}") == [client_ip]
    out = nslookup(app, app.web_ip)
    assert f"web.{ns}.svc.{D}" in out, out


def test_externalname_is_a_cname_resolved_upstream(node: DnsNode, app: App) -> None:
    ns = app.ns.name
    r = _until(lambda: (m := node.ask(f"ext.{ns}.svc.{D}")).answer and m)
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert r.answer[0][0].to_text() == "outside.example."
    assert r.answer[1][0].to_text() == "192.0.2.7"
    out = nslookup(app, "ext")
    assert "192.0.2.7" in out, out


def test_large_answer_truncated_over_udp_then_whole_over_tcp(node: DnsNode, app: App) -> None:
    name = f"big.{app.ns.name}.svc.{D}"
    _until(lambda: node.ask(name, tcp=True).answer)
    r = node.ask(name, edns=False)
    assert r.flags & dns.flags.TC
    r, used_tcp = dns.query.udp_with_fallback(dns.message.make_query(name, "A"), node.ip, timeout=5)
    assert used_tcp and len(r.answer[0]) == 100


def test_names_outside_the_cluster_are_forwarded_and_cached(node: DnsNode, app: App) -> None:
    out = nslookup(app, "outside.example")
    assert "192.0.2.7" in out, out
    before = node.upstream.queries[("www.example.", "A")]
    for _ in range(3):
        assert node.values("www.example") == ["192.0.2.8"]
    assert node.upstream.queries[("www.example.", "A")] - before == 1
    assert node.ask("missing.example").rcode() == dns.rcode.NXDOMAIN


def test_malformed_packets_are_dropped_and_dns_goes_on(node: DnsNode) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for junk in (b"", b"\x00\x01", os.urandom(11), b"\xab\xcd" + os.urandom(200)):
            s.sendto(junk, (node.ip, 53))
    with socket.create_connection((node.ip, 53), timeout=5) as c:
        c.sendall(b"\x00\x04junk")
    assert node.values(f"dns-version.{D}", "TXT") == ['"1.1.0"']
    assert node.m.proc is not None and node.m.proc.poll() is None


def test_headless_answers_follow_endpoints(node: DnsNode, app: App) -> None:
    ns = app.ns.name
    app.ns.kubectl("delete", "pod", "web-1", "--wait=false")
    assert _until(lambda: node.values(f"db.{ns}.svc.{D}") == [app.pods["web-0"]], timeout=60)
    assert node.ask(f"web-1.db.{ns}.svc.{D}").rcode() == dns.rcode.NXDOMAIN


def test_metrics_on_the_kube_dns_metrics_port(node: DnsNode) -> None:
    import urllib.request
    node.values(f"dns-version.{D}", "TXT")
    with urllib.request.urlopen(f"http://{node.ip}:9153/metrics", timeout=5) as r:
        text = r.read().decode()
    counters = dict(line.split() for line in text.splitlines() if line and not line.startswith("#"))
    assert float(counters["minik_dns_requests_total"]) >= 1
    assert float(counters["minik_dns_malformed_requests_total"]) >= 0
    assert float(counters["minik_dns_zone_services"]) >= 2     # kubernetes and kube-dns at least


# ---- kube-dns bootstrap (control plane only: no agent needed) --------------------------------------

KUBE_DNS = [("services", "/api/v1/namespaces/kube-system/services/kube-dns"),
            ("endpoints", "/api/v1/namespaces/kube-system/endpoints/kube-dns"),
            ("endpointslices", "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices/kube-dns-node")]


def _versions(m: Minik) -> dict[str, str]:
    out = {}
    for kind, path in KUBE_DNS:
        code, obj = m.raw_json("GET", path)
        assert code == 200, (kind, obj)
        out[kind] = obj["metadata"]["resourceVersion"]
    return out


def test_kube_dns_objects_are_reconciled_at_start_and_a_restart_writes_nothing(fresh_minik: Minik) -> None:
    m = fresh_minik
    before = _versions(m)
    m.stop()
    m.start()
    assert _versions(m) == before
    m.kubectl("delete", "endpoints", "kube-dns", "-n", "kube-system")
    m.kubectl("label", "svc", "kube-dns", "-n", "kube-system", "k8s-app-")
    m.stop()
    m.start()
    ep = json.loads(m.kubectl("get", "endpoints", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
    assert [a["ip"] for a in ep["subsets"][0]["addresses"]] == ["10.43.0.10"]
    svc = json.loads(m.kubectl("get", "svc", "kube-dns", "-n", "kube-system", "-o", "json").stdout)
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"


def test_disable_dns_creates_no_kube_dns() -> None:
    root = tempfile.mkdtemp(prefix="minik-e2e-")
    m = Minik(root, free_port(), ["--disable-agent", "--disable-dns"])
    m.start()
    try:
        code, _ = m.raw_json("GET", "/api/v1/namespaces/kube-system/services/kube-dns")
        assert code == 404
    finally:
        m.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_dns_policies_use_cluster_dns_or_the_resolv_conf(node: DnsNode, app: App) -> None:
    ns = app.ns
    host_net = pod("hostnet", [bb("c", "exec sleep 3600")], hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet")
    default = pod("dflt", [bb("c", "exec sleep 3600")], dnsPolicy="Default")
    ns.create(host_net, default)
    ns.wait("hostnet", timeout=90)
    ns.wait("dflt", timeout=90)
    conf = ns.exec("hostnet", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {node.ip}" in conf and f"search {ns.name}.svc.{D}" in conf, conf
    # From the host's network namespace the DNS IP is a local address too.
    out = ns.exec("hostnet", "nslookup", f"kubernetes.default.svc.{D}", check=False).stdout
    first = str(ipaddress.ip_network(node.net.service_cidr).network_address + 1)
    assert first in out, out
    # dnsPolicy Default: the resolvers of --resolv-conf, not cluster DNS.
    conf = ns.exec("dflt", "cat", "/etc/resolv.conf").stdout
    assert f"nameserver {node.upstream.host}" in conf and node.ip not in conf, conf


def test_node_names_resolve_like_k3s_node_hosts(node: DnsNode, app: App) -> None:
    code, n = node.m.raw_json("GET", f"/api/v1/nodes/{node.net.node_name}")
    assert code == 200
    internal = sorted(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")
    assert internal
    assert _until(lambda: node.values(node.net.node_name + ".")) == internal
    out = nslookup(app, node.net.node_name + ".")   # busybox never tries a bare name after the search list
    assert internal[0] in out, out


def _counters(table: str) -> dict[str, int]:
    out = subprocess.run(["nft", "-j", "list", "table", "ip", table], capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for item in json.loads(out)["nftables"]:
        rule = item.get("rule")
        if rule:
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[rule["chain"]] = counts.get(rule["chain"], 0) + int(expr["counter"]["packets"])
    return counts


def test_queries_to_the_dns_ip_never_leave_the_node(node: DnsNode, app: App) -> None:
    """nft counters (a table of the test's own): queries from pods and from the host arrive on the
    input hook; none is forwarded or sent out of an interface other than lo."""
    table = f"mkdnsc_{node.net.tag}"
    ip = node.ip
    rules = (f"table ip {table} {{\n"
             f"  chain c_in {{ type filter hook input priority -300; ip daddr {ip} udp dport 53 counter; }}\n"
             f"  chain c_fwd {{ type filter hook forward priority -300; ip daddr {ip} counter; }}\n"
             f"  chain c_post {{ type filter hook postrouting priority -300; ip daddr {ip} oifname != \"lo\" counter; }}\n"
             f"}}\n")
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
    try:
        out = nslookup(app, f"kubernetes.default.svc.{D}")
        assert "Address" in out, out
        node.values(f"kubernetes.default.svc.{D}")
        counts = _counters(table)
        assert counts.get("c_in", 0) >= 2, counts
        assert counts.get("c_fwd", 0) == 0 and counts.get("c_post", 0) == 0, counts
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, check=False)


def test_after_kill_9_queries_fail_fast_on_the_node_and_a_restart_answers_again(local_registry: str) -> None:
    import signal
    with node_server(local_registry) as (m, net):
        name = f"kubernetes.default.svc.{D}"
        q = dns.message.make_query(name, "A")
        assert _until(lambda: dns.query.udp(q, net.cluster_dns, timeout=5).answer)
        m.stop(signal.SIGKILL)
        # The address stays: a query is refused at once on this host (ICMP port unreachable),
        # it neither times out nor goes out of the default route.
        route = subprocess.run(["ip", "route", "get", net.cluster_dns], capture_output=True, text=True).stdout
        assert route.startswith("local "), route
        t0 = time.monotonic()
        with pytest.raises(ConnectionRefusedError):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(3)
                s.connect((net.cluster_dns, 53))
                s.send(q.to_wire())
                s.recv(512)
        assert time.monotonic() - t0 < 1.0
        m.start(timeout=90)
        assert _until(lambda: dns.query.udp(q, net.cluster_dns, timeout=5).answer)
