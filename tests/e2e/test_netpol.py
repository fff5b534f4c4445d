"""NetworkPolicy enforced by the node in nftables, with real pods on one bridge (busybox httpd and
wget): default deny, allow by label (pod IP and Service), namespaceSelector, ipBlock with except,
endPort ranges, named ports, egress limited to DNS, and the node's own access to its pods.

Traffic stays on this host: pod IPs on the test's own bridge; a ClusterIP is only contacted once
minik's own rules for it are in the node's nft table (otherwise that test skips)."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest
import yaml

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually, http_get

pytestmark = pytest.mark.e2e

# Each pod serves "<name>" on 8080 and 8090 (two httpd), and on 53 (a stand-in for a DNS port).
SERVE = ("mkdir -p /www && echo $POD > /www/index.html && httpd -p 8090 -h /www && httpd -p 53 -h /www "
         "&& exec httpd -f -p 8080 -h /www")


def server(name: str, **labels: str) -> dict[str, Any]:
    c = bb("srv", SERVE, env=[{"name": "POD", "value": name}],
           ports=[{"name": "http", "containerPort": 8080}, {"name": "alt", "containerPort": 8090}],
           readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})
    p = pod(name, [c])
    p["metadata"]["labels"] = labels
    return p


def ready(p: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in (p.get("status") or {}).get("conditions") or [])


def start(ns: Ns, *pods: dict[str, Any]) -> dict[str, str]:
    """Create the pods, wait until they serve; their IPs by name."""
    ns.create(*pods)
    return {p["metadata"]["name"]: ns.wait(p["metadata"]["name"], ready, timeout=90)["status"]["podIP"] for p in pods}


def reach(ns: Ns, client: str, host: str, port: int = 8080) -> bool:
    r = ns.exec(client, "timeout", "3", "wget", "-qO-", f"http://{host}:{port}/", check=False)
    return r.returncode == 0 and r.stdout.strip() != ""


def policy(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": name}, "spec": spec}


def apply(ns: Ns, *objs: dict[str, Any]) -> None:
    ns.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))


def settle(check: Any, timeout: float = 30.0) -> None:
    """Wait until the expected reachability holds (rules are applied asynchronously)."""
    assert eventually(check, timeout=timeout, interval=0.3)


def nft_table(m: Minik) -> str:
    return m.extra[m.extra.index("--nft-table") + 1]


DENY_ALL = policy("deny", {"podSelector": {}, "policyTypes": ["Ingress"]})


def test_default_deny_then_allow_by_label_reopens_exactly_that_path(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "np-allow")
    ips = start(ns, server("web", app="web"), server("client", role="client"), server("other", role="other"))
    assert reach(ns, "client", ips["web"]) and reach(ns, "other", ips["web"])

    apply(ns, DENY_ALL)
    settle(lambda: not reach(ns, "client", ips["web"]))
    assert not reach(ns, "other", ips["web"])
    assert not reach(ns, "web", ips["client"])
    _, _, metrics = node_minik.raw("GET", "/metrics")
    isolated = [ln for ln in metrics.decode().splitlines() if ln.startswith("minik_netpol_isolated_pods ")]
    assert isolated and int(isolated[0].split()[1]) >= 3, isolated
    # The node always reaches its pods (kubelet probes; Kubernetes exempts the pod's node).
    assert http_get(f"http://{ips['web']}:8080/", timeout=5).strip() == "web"

    apply(ns, policy("web-from-client", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                     "ports": [{"protocol": "TCP", "port": "http"}]}]}))
    settle(lambda: reach(ns, "client", ips["web"]))
    assert not reach(ns, "client", ips["web"], 8090)     # only the named port
    assert not reach(ns, "other", ips["web"])           # only that client
    assert not reach(ns, "web", ips["client"])          # only that direction

    # Removing the policies opens everything again.
    ns.kubectl("delete", "networkpolicy", "--all")
    settle(lambda: reach(ns, "other", ips["web"]))
    assert ns.kubectl("get", "networkpolicy", "-o", "name").stdout.strip() == ""


def test_allow_rule_through_the_service(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "np-svc")
    ips = start(ns, server("web", app="web"), server("client", role="client"), server("other", role="other"))
    ns.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    vip = json.loads(ns.kubectl("get", "service", "web", "-o", "json").stdout)["spec"]["clusterIP"]
    # Only talk to the ClusterIP when minik forwards it on this node (its address is in the node's
    # nft table); otherwise the packets would follow the default route off the host.
    table = nft_table(node_minik)

    def forwarded() -> bool:
        out = subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True).stdout
        return vip in out
    deadline = time.monotonic() + 15
    while not forwarded():
        if time.monotonic() > deadline:
            pytest.skip("ClusterIP forwarding is absent (no Service rules in the node's nft table)")
        time.sleep(0.3)
    settle(lambda: reach(ns, "client", vip, 80))
    assert reach(ns, "other", vip, 80)

    apply(ns, DENY_ALL, policy("web-from-client", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}],
                     "ports": [{"port": 8080}]}]}))
    settle(lambda: not reach(ns, "other", vip, 80))
    # The policy is checked after DNAT: port 8080 of the pod, reached through port 80 of the VIP.
    assert reach(ns, "client", vip, 80)
    assert reach(ns, "client", ips["web"])
    assert not reach(ns, "other", ips["web"])


def test_namespace_selector_alone_and_with_pod_selector(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "np-ns")
    friend = Ns.make(node_minik, "np-friend")
    stranger = Ns.make(node_minik, "np-stranger")
    friend.kubectl("label", "namespace", friend.name, "team=friends")
    ips = start(ns, server("web", app="web"), server("local", role="client"))
    start(friend, server("client", role="client"), server("other", role="other"))
    start(stranger, server("client", role="client"))

    apply(ns, policy("from-friends", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "friends"}}}]}]}))
    settle(lambda: not reach(ns, "local", ips["web"]))
    assert reach(friend, "client", ips["web"]) and reach(friend, "other", ips["web"])
    assert not reach(stranger, "client", ips["web"])

    # Both selectors in one peer: pods with that label in those namespaces (AND, not OR).
    apply(ns, policy("from-friends", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "friends"}},
                               "podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    settle(lambda: not reach(friend, "other", ips["web"]))
    assert reach(friend, "client", ips["web"])
    assert not reach(ns, "local", ips["web"])
    assert not reach(stranger, "client", ips["web"])


def test_ip_block_except_and_end_port(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "np-ip")
    ips = start(ns, server("web", app="web"), server("a", role="client"), server("b", role="client"))
    cluster_cidr = node_minik.extra[node_minik.extra.index("--cluster-cidr") + 1]
    apply(ns, policy("cidr", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": cluster_cidr, "except": [f"{ips['b']}/32"]}}],
                     "ports": [{"protocol": "TCP", "port": 8080, "endPort": 8085}]}]}))
    settle(lambda: not reach(ns, "b", ips["web"]))
    assert reach(ns, "a", ips["web"])
    assert not reach(ns, "a", ips["web"], 8090)           # outside 8080-8085
    assert not reach(ns, "b", ips["web"], 8090)

    apply(ns, policy("cidr", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": cluster_cidr, "except": [f"{ips['b']}/32"]}}],
                     "ports": [{"protocol": "TCP", "port": 8081, "endPort": 8090}]}]}))
    settle(lambda: reach(ns, "a", ips["web"], 8090))
    assert not reach(ns, "a", ips["web"])
    assert not reach(ns, "b", ips["web"], 8090)


def dns_served_locally(m: Minik) -> bool:
    """The cluster DNS IP is on a local interface or in the node's nft table (never ask it
    otherwise: the query would follow the default route off the host)."""
    dns = m.extra[m.extra.index("--cluster-dns") + 1]
    addrs = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    rules = subprocess.run(["nft", "list", "table", "ip", nft_table(m)], capture_output=True, text=True).stdout
    return f" {dns}/" in addrs or f"{dns} " in rules or f"{dns}\n" in rules


class HostServer:
    """An HTTP listener on the node (the pod bridge's gateway address)."""

    def __init__(self, host: str) -> None:
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"node\n")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="np-host-server", daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_egress_policy_blocks_everything_but_dns(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "np-egress")
    ips = start(ns, server("web", app="web"), server("client", role="client"))
    gw = ".".join(ips["web"].split(".")[:3] + ["1"])
    host = HostServer(gw)
    try:
        _egress_only_dns(node_minik, ns, ips, gw, host.port)
    finally:
        host.close()


def _egress_only_dns(m: Minik, ns: Ns, ips: dict[str, str], gw: str, host_port: int) -> None:
    assert reach(ns, "client", gw, host_port)
    dns = dns_served_locally(m)
    api_ip = json.loads(ns.m.kubectl("get", "service", "kubernetes", "-n", "default", "-o", "json").stdout)["spec"]["clusterIP"]

    def resolves() -> bool:
        r = ns.exec("client", "timeout", "5", "nslookup", "kubernetes.default.svc.cluster.local", check=False)
        return r.returncode == 0 and api_ip in r.stdout
    if dns:
        assert eventually(resolves, timeout=20)
    apply(ns, policy("dns-only", {
        "podSelector": {"matchLabels": {"role": "client"}},
        "policyTypes": ["Egress"],
        "egress": [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
    settle(lambda: not reach(ns, "client", ips["web"]))
    assert not reach(ns, "client", ips["web"], 8090)
    assert reach(ns, "client", ips["web"], 53)           # TCP 53 to anywhere is allowed
    # The node itself is no exception for egress (only its own access to pods is).
    assert not reach(ns, "client", gw, host_port)
    # web is not isolated: it still reaches the client (and the reply flows back).
    assert reach(ns, "web", ips["client"])
    if dns:
        # Cluster DNS (served by the node at the DNS IP) still answers.
        assert resolves()
        # The other idiom: DNS allowed only to the kube-dns pods of kube-system. minik serves DNS
        # from the node, which stands in for those pods; port 53 of other pods is now closed.
        apply(ns, policy("dns-only", {
            "podSelector": {"matchLabels": {"role": "client"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]}))
        settle(lambda: not reach(ns, "client", ips["web"], 53))
        assert resolves()


def netpol_listing(m: Minik) -> str:
    """The netpol chains and maps of the node's table, as nft lists them (without counters)."""
    out = subprocess.run(["nft", "list", "table", "ip", nft_table(m)], capture_output=True, text=True).stdout
    keep, inside = [], False
    for line in out.splitlines():
        if line.startswith("\tchain netpol-") or line.startswith("\tmap netpol-"):
            inside = True
        if inside:
            keep.append(line.split(" counter ")[0] if " counter " in line else line)
            if line == "\t}":
                inside = False
    return "\n".join(keep)


def test_rules_survive_kill_9_and_the_restart_resyncs_them(node_minik: Minik) -> None:
    """Runs last in the module: it restarts the module's server."""
    ns = Ns.make(node_minik, "np-restart")
    ips = start(ns, server("web", app="web"), server("client", role="client"), server("other", role="other"))
    apply(ns, DENY_ALL, policy("web-from-client", {
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}))
    settle(lambda: not reach(ns, "other", ips["web"]))
    before = netpol_listing(node_minik)
    assert f"jump netpol-in-{ips['web'].replace('.', '-')}" in before

    assert node_minik.proc is not None
    node_minik.proc.kill()
    node_minik.proc.wait()
    # The kernel keeps enforcing while the daemon is gone.
    assert netpol_listing(node_minik) == before
    node_minik.start(timeout=90)
    # The restarted enforcer took over the rules it left (full resync from its caches) and keeps
    # following changes.
    settle(lambda: netpol_listing(node_minik) == before)
    ns.kubectl("delete", "networkpolicy", "deny")
    settle(lambda: reach(ns, "web", ips["client"]))        # client no longer isolated
    assert reach(ns, "client", ips["web"])
    assert not reach(ns, "other", ips["web"])
    assert f"netpol-in-{ips['client'].replace('.', '-')}" not in netpol_listing(node_minik)
