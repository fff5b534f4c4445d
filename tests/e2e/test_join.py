"""A cluster of three test hosts on one machine: a server in the root network namespace and two
`minik agent`s, each in a network namespace of its own with its own containerd, data dir, bridge,
nftables table and DNS interface, linked by veth pairs to a test bridge (10.<octet>.120.0/24).

Images reach every node as airgap tarballs (`<data-dir>/agent/images/`), so no host needs a
registry the namespaces could not reach.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.e2e.agent_fixtures import (NodeNet, agent_skip_reason, claim_node_net, reap_node, release_node_net,
                                      wait_node_ready)
from tests.e2e.minikd import KUBECTL, Minik, free_port
from tests.support.registry import build_busybox

pytestmark = pytest.mark.e2e

IMAGE = "docker.io/library/busybox:e2e"    # not :latest, so IfNotPresent: the airgap copy is used
VAGRANT_SECRET = "e2e-shared-secret"         # the server's --token, as the Vagrantfile's MINIK_TOKEN
GRACE = 20                                 # --node-monitor-grace-period of the test server


class HostMinik(Minik):
    """A server reached on its test-bridge address instead of 127.0.0.1."""

    host: str = ""

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"


@dataclass
class AgentHost:
    name: str               # node name
    netns: str
    veth: str               # root-namespace end, on the test bridge
    ip: str
    root: str
    net: NodeNet            # unique names for its bridge / nft table / DNS link
    proc: subprocess.Popen[bytes] | None = None
    extra: list[str] = field(default_factory=list)
    vagrant_style: bool = False   # joins as the Vagrantfile provisions an agent (env, token rebuilt from /cacerts)

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "agent.log")

    def log_tail(self, n: int = 60) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def start(self, server: HostMinik, sup: int, token_file: str) -> None:
        # nsenter, not `ip netns exec`: that also remounts /sys for the namespace, which hides the
        # cgroup mount runc needs. A joined host shares the mount namespace here, only its network is its own.
        args = ["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "minik", "agent",
                "--server", server.url, "--token-file", token_file, "--supervisor-port", str(sup),
                "--node-name", self.name, "--data-dir", os.path.join(self.root, "data"),
                "--run-dir", os.path.join(self.root, "run"), "--config-dir", os.path.join(self.root, "etc"),
                "--bridge-name", self.net.bridge, "--nft-table", self.net.nft_table,
                "--dns-interface", self.net.dns_interface, "--resolv-conf", "/dev/null",
                "--vxlan-device", f"mkx{self.net.tag}", *self.extra]
        env = None
        if self.vagrant_style:
            # The Vagrantfile's agent provisioning: fetch the CA from /cacerts (no trust yet), build
            # the K10 token from its SHA-256 and the shared secret, and join with only MINIK_URL,
            # MINIK_TOKEN and MINIK_NODE_IP in the environment (what install.sh writes for the unit).
            ca = subprocess.run(["ip", "netns", "exec", self.netns, "curl", "-ksf", f"{server.url}/cacerts"],
                                capture_output=True, check=True, timeout=60).stdout
            env = {**os.environ, "MINIK_URL": server.url, "MINIK_NODE_IP": self.ip,
                   "MINIK_TOKEN": f"K10{hashlib.sha256(ca).hexdigest()}::server:{VAGRANT_SECRET}"}
            args = [a for a in args if a not in ("--server", server.url, "--token-file", token_file)]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)


def _sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=60)


def _airgap(dest_dir: str, archive: str) -> None:
    os.makedirs(dest_dir, exist_ok=True)
    shutil.copy(archive, os.path.join(dest_dir, "busybox.tar"))


@dataclass
class Cluster:
    server: HostMinik
    net: NodeNet
    sup: int
    token_file: str
    agents: list[AgentHost]
    bridge: str

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl(*args, **kw)

    def nodes(self) -> list[dict[str, Any]]:
        return list(json.loads(self.kubectl("get", "nodes", "-o", "json").stdout)["items"])

    def ready(self, name: str) -> str:
        for n in self.nodes():
            if n["metadata"]["name"] == name:
                for c in n.get("status", {}).get("conditions") or []:
                    if c["type"] == "Ready":
                        return str(c["status"])
        return ""

    def wait_ready(self, name: str, want: str = "True", timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready(name) == want:
                return
            time.sleep(0.5)
        agent = next((a for a in self.agents if a.name == name), None)
        raise AssertionError(f"node {name} not Ready={want}: {self.ready(name)!r}\nserver:\n{self.server.log_tail(40)}\n"
                             f"agent:\n{agent.log_tail(60) if agent else ''}")


@contextlib.contextmanager
def cluster(n_agents: int = 2, backend: tuple[str, ...] = ()) -> Iterator[Cluster]:
    reason = agent_skip_reason()
    if reason:
        pytest.skip(reason)
    if not os.path.exists(KUBECTL):
        pytest.skip(f"{KUBECTL} is not installed")
    net = claim_node_net()
    root = tempfile.mkdtemp(prefix="mk-e2e-join-", dir="/tmp")
    bridge = f"mkh{net.tag}"
    host_ip = f"10.{net.octet}.120.1"
    sup = free_port()
    archive = build_busybox(IMAGE, os.path.join(root, "busybox.tar"))
    os.makedirs(os.path.join(root, "server", "etc"))
    server = HostMinik(os.path.join(root, "server"), free_port(), [
        *net.server_flags(), "--cluster-cidr", f"10.{net.octet}.0.0/18",
        "--bind-address", host_ip, "--advertise-address", host_ip, "--supervisor-port", str(sup),
        "--token", VAGRANT_SECRET,
        "--node-monitor-grace-period", str(GRACE), "--vxlan-device", f"mkx{net.tag}", *backend])
    server.host = host_ip
    agents: list[AgentHost] = []
    try:
        # A fixed MAC: a bridge otherwise takes its lowest port's, and changes it (stale ARP on the
        # hosts) when that port goes away.
        _sh("ip", "link", "add", bridge, "address", f"02:6d:6b:{net.octet:02x}:78:01", "type", "bridge")
        _sh("ip", "addr", "add", f"{host_ip}/24", "dev", bridge)
        _sh("ip", "link", "set", bridge, "up")
        _airgap(os.path.join(server.data_dir, "agent", "images"), archive)
        server.start(timeout=120)
        wait_node_ready(server, net.node_name, timeout=120)
        token_file = os.path.join(server.data_dir, "server", "token")
        for i in range(n_agents):
            letter = "abcdefgh"[i]
            a = AgentHost(name=f"e2e-{net.tag}-{letter}", netns=f"mkn{net.tag}{letter}", veth=f"mkv{net.tag}{letter}",
                          ip=f"10.{net.octet}.120.{11 + i}", root=os.path.join(root, f"agent-{letter}"),
                          net=NodeNet(net.octet, net.tag + letter), extra=["--metric-resolution", "2"],
                          vagrant_style=i == 1)
            agents.append(a)
            _add_host(a, bridge, host_ip)
            _airgap(os.path.join(a.root, "data", "agent", "images"), archive)
        c = Cluster(server, net, sup, token_file, agents, bridge)
        for a in agents:
            a.start(server, sup, token_file)
        yield c
    finally:
        for a in agents:
            _reap_agent(a)
        reap_node(server, net, keep_dir=True)
        _sh("ip", "link", "del", bridge, check=False)
        release_node_net(net)
        if os.environ.get("MINIK_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(root, ignore_errors=True)


def _add_host(a: AgentHost, bridge: str, gateway: str) -> None:
    os.makedirs(os.path.join(a.root, "etc"), exist_ok=True)
    _sh("ip", "netns", "add", a.netns)
    _sh("ip", "link", "add", a.veth, "type", "veth", "peer", "name", a.veth + "p")
    _sh("ip", "link", "set", a.veth, "master", bridge, "up")
    _sh("ip", "link", "set", a.veth + "p", "netns", a.netns)
    inside = ("ip", "netns", "exec", a.netns)
    _sh(*inside, "ip", "link", "set", a.veth + "p", "name", "eth0")
    _sh(*inside, "ip", "addr", "add", f"{a.ip}/24", "dev", "eth0")
    _sh(*inside, "ip", "link", "set", "eth0", "up")
    _sh(*inside, "ip", "link", "set", "lo", "up")
    _sh(*inside, "ip", "route", "add", "default", "via", gateway)


def _reap_agent(a: AgentHost) -> None:
    m = Minik(a.root, 0)
    m.proc = a.proc
    if a.proc is not None and a.proc.poll() is None:
        a.proc.send_signal(signal.SIGTERM)
        try:
            a.proc.wait(30)
        except subprocess.TimeoutExpired:
            a.proc.kill()
            a.proc.wait()
    reap_node(m, a.net, keep_dir=True)   # containerd, shims, mounts (its links die with the netns)
    _sh("ip", "netns", "del", a.netns, check=False)
    _sh("ip", "link", "del", a.veth, check=False)


def _pod(name: str, node: str, script: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", script]}]}}


def _deployment(name: str, replicas: int) -> dict[str, Any]:
    tolerations = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}
                   for k in ("unreachable", "not-ready")]
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "tolerations": tolerations,
                                           "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                                                           "resources": {"requests": {"cpu": "10m"}}}]}}}}


def _pods(c: Cluster, selector: str) -> list[dict[str, Any]]:
    return list(json.loads(c.kubectl("get", "pods", "-l", selector, "-o", "json").stdout)["items"])


def _wait(pred: Any, what: str, timeout: float = 90, interval: float = 0.5, detail: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last!r}\n{detail() if detail else ''}")


def test_three_nodes_join_and_serve_pods_logs_exec_and_survive_a_cut_link() -> None:
    with cluster(2) as c:
        for a in c.agents:
            c.wait_ready(a.name)
        wide = c.kubectl("get", "nodes", "-o", "wide").stdout
        for a in c.agents:
            assert a.name in wide and a.ip in wide, wide
        nodes = c.nodes()
        assert len(nodes) == 3
        cidrs = [n["spec"].get("podCIDR") for n in nodes]
        assert all(cidrs) and len(set(cidrs)) == 3, cidrs
        assert all(c.ready(n["metadata"]["name"]) == "True" for n in nodes)

        # A pod on an agent: logs and exec travel over that agent's link.
        a = c.agents[0]
        c.kubectl("create", "-f", "-", input=json.dumps(_pod("on-agent", a.name, "echo hello-from-agent; sleep 3600")))
        # A pod whose container reads its stdin, for kubectl attach (it starts meanwhile).
        catter = _pod("attach-me", a.name, "while read -r l; do echo \"got $l\"; done")
        catter["spec"]["containers"][0]["stdin"] = True
        c.kubectl("create", "-f", "-", input=json.dumps(catter))
        _wait(lambda: json.loads(c.kubectl("get", "pod", "on-agent", "-o", "json").stdout)["status"].get("phase") == "Running",
              f"pod on {a.name} running\n{a.log_tail(40)}", timeout=120,
              detail=lambda: c.kubectl("describe", "pod", "on-agent", check=False).stdout)
        _wait(lambda: "hello-from-agent" in c.kubectl("logs", "on-agent", check=False).stdout, "kubectl logs")
        r = c.kubectl("exec", "on-agent", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        assert r.returncode == 3 and r.stdout.strip() == "out" and "err" in r.stderr, r
        r = c.kubectl("exec", "-i", "on-agent", "--", "cat", input="stdin-through-the-link\n")
        assert r.stdout == "stdin-through-the-link\n"
        if shutil.which("script"):
            # exec -it: a terminal on kubectl's side (script gives it one); the TTY and its size reach the pod.
            cmd = (f"{KUBECTL} --kubeconfig {c.server.kubeconfig} exec -it on-agent -- sh -c "
                   "'tty; for i in 1 2 3 4 5 6 7 8 9 10; do case \"$(stty size 2>/dev/null)\" in \"\"|\"0 0\") sleep 0.3;; *) break;; esac; done; stty -a; exit 0'")
            # script's stdin stays open (a pipe): at EOF on /dev/null script would end kubectl's stdin
            # and with it the session, before the pod's shell has run.
            sp = subprocess.Popen(["script", "-qec", f"stty cols 91 rows 23; {cmd}", "/dev/null"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                sp.wait(60)     # the output is a few lines: the pipes do not fill
            finally:
                if sp.poll() is None:
                    sp.kill()
            assert sp.stdout is not None and sp.stderr is not None
            r = subprocess.CompletedProcess(sp.args, sp.returncode, sp.stdout.read(), sp.stderr.read())
            if sp.stdin is not None:
                sp.stdin.close()
            # The pod's shell polls for the size: kubectl sends it just after the session opens.
            # (busybox stty reports a 0x0 window as an error with a stale errno.)
            assert "/dev/pts/" in r.stdout and "rows 23; columns 91" in r.stdout, r
        # kubectl attach: the running container's stdin and stdout over the agent's link.
        _wait(lambda: json.loads(c.kubectl("get", "pod", "attach-me", "-o", "json").stdout)["status"].get("phase") == "Running",
              "attach-me running", timeout=120)
        def attached() -> bool:
            p = subprocess.run([KUBECTL, "--kubeconfig", c.server.kubeconfig, "attach", "-i", "attach-me"],
                               input="ping-over-the-link\n", capture_output=True, text=True, timeout=60)
            return "got ping-over-the-link" in p.stdout
        _wait(attached, "kubectl attach -i to a pod on an agent", timeout=60)
        # kubectl top: the agent pushes its usage samples over the link (kept in memory on the server).
        _wait(lambda: a.name in c.kubectl("top", "node", check=False).stdout, "kubectl top node shows the agent",
              timeout=60, detail=lambda: c.kubectl("top", "node", check=False).stderr)
        _wait(lambda: "on-agent" in c.kubectl("top", "pod", "on-agent", check=False).stdout, "kubectl top pod on the agent", timeout=60)
        pod_ip = json.loads(c.kubectl("get", "pod", "on-agent", "-o", "json").stdout)["status"].get("podIP", "")
        node_a = next(n for n in nodes if n["metadata"]["name"] == a.name)
        import ipaddress
        assert ipaddress.ip_address(pod_ip) in ipaddress.ip_network(node_a["spec"]["podCIDR"]), (pod_ip, node_a["spec"])

        # Across nodes: a pod on agent a reaches a pod on agent b by pod IP and through a Service by
        # DNS name (VXLAN overlay); port-forward and cp to a pod on an agent.
        b = c.agents[1]
        web = _pod("web-b", b.name, "mkdir -p /www && echo from-b > /www/index.html && exec httpd -f -p 8080 -h /www")
        web["metadata"]["labels"] = {"app": "web-b"}
        c.kubectl("create", "-f", "-", input=json.dumps(web))
        c.kubectl("create", "service", "clusterip", "web-b", "--tcp=80:8080")
        ip_b = _wait(lambda: json.loads(c.kubectl("get", "pod", "web-b", "-o", "json").stdout)["status"].get("podIP"),
                     f"pod on {b.name} gets an IP\n{b.log_tail(30)}", timeout=120)
        fetch = lambda url: c.kubectl("exec", "on-agent", "--", "timeout", "5", "wget", "-qO-", url, check=False).stdout  # noqa: E731
        _wait(lambda: "from-b" in fetch(f"http://{ip_b}:8080/"), f"pod on a reaches pod on b at {ip_b}",
              detail=lambda: c.server.log_tail(20) + "\n" + a.log_tail(20))
        _wait(lambda: "from-b" in fetch("http://web-b.default.svc.cluster.local/"), "pod on a reaches Service web-b by name",
              detail=lambda: a.log_tail(30))
        # The ingress proxy runs on the agents too: agent a's :80 routes to the pod on agent b.
        from minik.ingress.controller import class_object
        c.kubectl("apply", "-f", "-", input=json.dumps(class_object()))
        c.kubectl("create", "ingress", "web-b", "--rule=web.example/*=web-b:80")
        def via_ingress() -> bool:
            import urllib.request
            req = urllib.request.Request(f"http://{a.ip}/", headers={"Host": "web.example"})
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    return b"from-b" in r.read()
            except OSError:
                return False
        _wait(via_ingress, "the ingress on agent a proxies to the pod on agent b", timeout=60, detail=lambda: a.log_tail(20))
        with tempfile.TemporaryDirectory() as d:
            c.kubectl("cp", "on-agent:/etc/hostname", os.path.join(d, "hostname"))
            assert open(os.path.join(d, "hostname")).read().strip() == "on-agent"
        local = free_port()
        pf = subprocess.Popen([KUBECTL, "--kubeconfig", c.server.kubeconfig, "port-forward", "pod/web-b", f"{local}:8080"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            import urllib.request
            def via_pf() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=5) as r:
                        return b"from-b" in r.read()
                except OSError:
                    return False
            _wait(via_pf, "kubectl port-forward to a pod on an agent", timeout=60)
        finally:
            pf.terminate()
            pf.wait(10)

        # A 6-replica Deployment spreads over the three nodes.
        c.kubectl("create", "-f", "-", input=json.dumps(_deployment("spread", 6)))
        def spread() -> dict[str, int]:
            by: dict[str, int] = {}
            for p in _pods(c, "app=spread"):
                if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp"):
                    by[p["spec"]["nodeName"]] = by.get(p["spec"]["nodeName"], 0) + 1
            return by
        by = _wait(lambda: (lambda d: d if sum(d.values()) == 6 else None)(spread()), "6 spread pods running", timeout=180)
        assert len(by) == 3, by
        # A StatefulSet pod on agent b (its template pins the node).
        sts = _deployment("db", 1)
        sts["kind"], sts["spec"]["serviceName"] = "StatefulSet", "db"
        sts["spec"]["template"]["spec"]["nodeName"] = b.name
        c.kubectl("create", "-f", "-", input=json.dumps(sts))
        sts_uid = _wait(lambda: next((p["metadata"]["uid"] for p in _pods(c, "app=db") if p["status"].get("phase") == "Running"), ""),
                        "db-0 running on b", timeout=120)

        # Cut agent b's link: NotReady (Unknown) after the grace period, its pods replaced elsewhere
        # after their (short) toleration; restore: Ready again, one Node, no duplicate pods.
        _sh("ip", "link", "set", b.veth, "down")
        try:
            c.wait_ready(b.name, "Unknown", timeout=GRACE + 60)
            _wait(lambda: (lambda d: d if sum(d.values()) == 6 and b.name not in d else None)(spread()),
                  "the Deployment's pods replaced on the reachable nodes", timeout=120, detail=lambda: str(spread()))
            # The StatefulSet pod is evicted too, but never duplicated: db-0 stays the one on b
            # (terminating) until b confirms it gone.
            dbs = _pods(c, "app=db")
            assert len(dbs) == 1 and dbs[0]["metadata"]["uid"] == sts_uid and dbs[0]["metadata"].get("deletionTimestamp"), dbs
        finally:
            _sh("ip", "link", "set", b.veth, "up")
        c.wait_ready(b.name, "True", timeout=120)
        _wait(lambda: len(_pods(c, "app=spread")) == 6, "the evicted pods gone once b is back", timeout=120,
              detail=lambda: str([(p["metadata"]["name"], p["spec"].get("nodeName"), p["metadata"].get("deletionTimestamp"))
                                  for p in _pods(c, "app=spread")]))
        assert sum(spread().values()) == 6
        _wait(lambda: [p for p in _pods(c, "app=db") if p["status"].get("phase") == "Running"
                       and p["metadata"]["uid"] != sts_uid and not p["metadata"].get("deletionTimestamp")],
              "db-0 replaced once b confirmed the old one gone", timeout=120)
        assert len(_pods(c, "app=db")) == 1
        names = [n["metadata"]["name"] for n in c.nodes()]
        assert sorted(names) == sorted({*names}) and len(names) == 3
        assert c.ready(a.name) == "True"


def test_same_node_name_from_a_second_machine_refused_until_kubectl_delete_node() -> None:
    with cluster(1) as c:
        a = c.agents[0]
        c.wait_ready(a.name)
        # A second machine (its own netns, data dir, password) claims the same name.
        twin = AgentHost(name=a.name, netns=a.netns + "2", veth=a.veth + "2", ip=f"10.{c.net.octet}.120.21",
                         root=a.root + "-twin", net=NodeNet(c.net.octet, c.net.tag + "t"))
        c.agents.append(twin)
        _add_host(twin, c.bridge, c.server.host)
        twin.start(c.server, c.sup, c.token_file)
        assert twin.proc is not None
        assert twin.proc.wait(120) == 1
        assert f"kubectl delete node {a.name}" in twin.log_tail(20), twin.log_tail(20)
        # The first machine goes away; the operator frees the name; the twin takes it.
        _reap_agent(a)
        c.agents.remove(a)
        c.kubectl("delete", "node", a.name)
        twin.start(c.server, c.sup, c.token_file)
        c.wait_ready(a.name, timeout=180)
        assert [n["metadata"]["name"] for n in c.nodes()].count(a.name) == 1


def test_three_idle_nodes_write_nothing() -> None:
    """Heartbeats of joined nodes are in-memory Leases too: the database files stay still."""
    from tests.e2e.test_idle import db_files, settled, written_since
    idle = float(os.environ.get("MINIK_TEST_JOIN_IDLE_SECONDS", "60"))   # the 60 s
    with cluster(2) as c:
        for a in c.agents:
            c.wait_ready(a.name)
        before_rev = settled(c.server, quiet=5.0, timeout=120)
        before = db_files(c.server)
        time.sleep(idle)
        after = db_files(c.server)
        assert after == before, f"db files changed while idle: {before} -> {after}; written: {written_since(c.server, before_rev)}"
        assert all(c.ready(a.name) == "True" for a in c.agents)


def test_host_gw_backend_routes_pod_to_pod_across_nodes() -> None:
    with cluster(2, backend=("--pod-network-backend", "host-gw")) as c:
        a, b = c.agents
        for x in c.agents:
            c.wait_ready(x.name)
        c.kubectl("create", "-f", "-", input=json.dumps(_pod("pa", a.name, "sleep 3600")))
        c.kubectl("create", "-f", "-", input=json.dumps(
            _pod("pb", b.name, "mkdir -p /www && echo from-b > /www/index.html && exec httpd -f -p 8080 -h /www")))
        ip_b = _wait(lambda: json.loads(c.kubectl("get", "pod", "pb", "-o", "json").stdout)["status"].get("podIP"), "pod IP", timeout=120)
        _wait(lambda: json.loads(c.kubectl("get", "pod", "pa", "-o", "json").stdout)["status"].get("phase") == "Running", "pa running")
        _wait(lambda: "from-b" in c.kubectl("exec", "pa", "--", "timeout", "5", "wget", "-qO-", f"http://{ip_b}:8080/", check=False).stdout,
              "pod on a reaches pod on b over host-gw routes")
        routes = _sh("ip", "netns", "exec", a.netns, "ip", "route").stdout
        assert f"via {b.ip}" in routes and f"mkx{a.net.tag}" not in _sh("ip", "netns", "exec", a.netns, "ip", "link").stdout, routes


def test_agent_restart_adopts_its_pods_and_server_restart_relinks() -> None:
    with cluster(1) as c:
        a = c.agents[0]
        c.wait_ready(a.name)
        c.kubectl("create", "-f", "-", input=json.dumps(_pod("keeper", a.name, "echo started; sleep 3600")))
        def cid() -> str:
            st = json.loads(c.kubectl("get", "pod", "keeper", "-o", "json").stdout)["status"]
            return str(((st.get("containerStatuses") or [{}])[0]).get("containerID", "")) if st.get("phase") == "Running" else ""
        first = _wait(cid, "keeper running", timeout=120)
        # kill -9 the agent: containerd and the pod keep running; the restarted agent reuses its
        # credentials (no second join) and adopts the container.
        assert a.proc is not None
        a.proc.kill()
        a.proc.wait()
        a.start(c.server, c.sup, c.token_file)
        _wait(lambda: "adopt" in a.log_tail(200) or "1 in the runtime" in a.log_tail(200), "agent restarted and adopted", timeout=60,
              detail=lambda: a.log_tail(40))
        c.wait_ready(a.name)
        assert cid() == first
        # The server restarts: the agent's link comes back by itself; streams work again.
        c.server.stop()
        c.server.start(timeout=120)
        c.wait_ready(a.name, timeout=120)
        _wait(lambda: "started" in c.kubectl("logs", "keeper", check=False).stdout, "kubectl logs after the server restart",
              timeout=60, detail=lambda: a.log_tail(30))
        assert cid() == first
        assert [n["metadata"]["name"] for n in c.nodes()].count(a.name) == 1
