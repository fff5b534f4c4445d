"""A lab of test "hosts" made of network namespaces, for the pod network across nodes.

    [pod 10.x.i.2..] ─veth─ [host i: cni0 10.x.i.1/24, eth0 192.168.x.(i+1)] ─ [switch: br0] ─ …

Every namespace is created here and deleted on exit, so the root namespace is never changed.
Each host gets a pod bridge with its podCIDR's gateway and `pods` pod namespaces on it (as
`minik.net.podnet` plumbs them), IP forwarding, and minik's egress masquerade rules; the overlay
itself is what the caller reconciles (`Lab.reconcile`). Used by tests/integration/test_overlay_netns.py
and bench/podnet.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from minik.agent.overlay import node_nets
from minik.net.nft import EgressRules, render_apply
from minik.net.overlay import VTEP_MAC_ANNOTATION, Changes, Overlay, OverlaySettings, parse_backend, plan, vtep_mac
from tests.support.builders import make_node

UNDERLAY_MTU = 1500


def sh(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(args), capture_output=True, text=True, check=False, input=input)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:6])}… failed ({r.returncode}): {r.stderr.strip()[-800:]}")
    return r


def in_ns(ns: str, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check, input=input)


@dataclass
class Host:
    name: str            # the node name
    ns: str              # the host namespace
    ip: str
    pod_cidr: ipaddress.IPv4Network
    pod_nses: list[str] = field(default_factory=list)

    @property
    def pod_ns(self) -> str:
        return self.pod_nses[0]

    def pod_ip_of(self, i: int) -> str:
        return str(self.pod_cidr.network_address + 2 + i)

    @property
    def pod_ip(self) -> str:
        return self.pod_ip_of(0)

    @property
    def netns_path(self) -> str:
        return f"/var/run/netns/{self.ns}"


@dataclass
class Lab:
    tag: str
    cluster: ipaddress.IPv4Network
    device: str
    switch: str
    hosts: list[Host]

    def settings(self, backend: str) -> OverlaySettings:
        return OverlaySettings(parse_backend(backend), device=self.device, cluster_cidr=self.cluster)

    def node_objs(self, hosts: list[Host], backend: str) -> list[dict[str, Any]]:
        """The Nodes as the API holds them once each node registered and published its VTEP MAC."""
        objs = []
        for h in hosts:
            n = make_node(h.name)
            n["spec"] = {"podCIDR": str(h.pod_cidr), "podCIDRs": [str(h.pod_cidr)]}
            n["status"]["addresses"] = [{"type": "InternalIP", "address": h.ip}, {"type": "Hostname", "address": h.name}]
            if backend == "vxlan":
                n["metadata"]["annotations"] = {VTEP_MAC_ANNOTATION: vtep_mac(h.name)}
            objs.append(n)
        return objs

    async def reconcile(self, host: Host, backend: str, present: list[Host]) -> Changes:
        """One reconcile on `host` from the Nodes `present`, as a freshly started agent does it."""
        nodes = node_nets(self.node_objs(present, backend))
        local = node_nets(self.node_objs([host], backend))[0]
        overlay = Overlay(self.settings(backend), netns=host.netns_path)
        try:
            return await overlay.reconcile(plan(self.settings(backend), local, nodes))
        finally:
            await overlay.close()

    def ping(self, src_ns: str, dst_ip: str, count: int = 2) -> bool:
        return in_ns(src_ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip, check=False).returncode == 0

    def root_snapshot(self) -> tuple[bool, str]:
        """Whether the root namespace has our device, and its routes into our pod subnets."""
        has_device = sh("ip", "link", "show", self.device, check=False).returncode == 0
        ours = [line for line in sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines()
                if any(line.startswith(str(h.pod_cidr)) for h in self.hosts)]
        return has_device, "\n".join(ours)


def _build_host(switch: str, cluster: ipaddress.IPv4Network, i: int, h: Host, pods: int, made: list[str]) -> None:
    for ns in (h.ns, *h.pod_nses):
        sh("ip", "netns", "add", ns)
        made.append(ns)
    # The host's uplink: eth0 in the host, its peer on the switch's bridge.
    in_ns(switch, "ip", "link", "add", f"p{i}", "mtu", str(UNDERLAY_MTU), "type", "veth",
          "peer", "name", "eth0", "netns", h.ns)
    in_ns(switch, "ip", "link", "set", f"p{i}", "master", "br0", "up")
    in_ns(h.ns, "ip", "addr", "add", f"{h.ip}/24", "dev", "eth0")
    in_ns(h.ns, "ip", "link", "set", "eth0", "up")
    in_ns(h.ns, "ip", "link", "set", "lo", "up")
    in_ns(h.ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    # The pod bridge with the gateway address, at the MTU the VXLAN backend gives pods.
    gw = f"{h.pod_cidr.network_address + 1}/{h.pod_cidr.prefixlen}"
    mtu = str(UNDERLAY_MTU - 50)
    in_ns(h.ns, "ip", "link", "add", "cni0", "mtu", mtu, "type", "bridge")
    in_ns(h.ns, "ip", "addr", "add", gw, "dev", "cni0")
    in_ns(h.ns, "ip", "link", "set", "cni0", "up")
    for k, pod_ns in enumerate(h.pod_nses):
        in_ns(h.ns, "ip", "link", "add", f"vpod{k}", "mtu", mtu, "type", "veth", "peer", "name", "eth0",
              "mtu", mtu, "netns", pod_ns)
        in_ns(h.ns, "ip", "link", "set", f"vpod{k}", "master", "cni0", "up")
        in_ns(pod_ns, "ip", "addr", "add", f"{h.pod_ip_of(k)}/{h.pod_cidr.prefixlen}", "dev", "eth0")
        in_ns(pod_ns, "ip", "link", "set", "eth0", "up")
        in_ns(pod_ns, "ip", "link", "set", "lo", "up")
        in_ns(pod_ns, "ip", "route", "add", "default", "via", str(h.pod_cidr.network_address + 1))
    # minik's egress rules: masquerade whatever leaves the cluster CIDR, nothing else.
    in_ns(h.ns, "nft", "-f", "-", input=render_apply(EgressRules("minik", cluster, "cni0")))


@contextlib.contextmanager
def netlab(hosts: int = 2, pods: int = 1) -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    octet = 100 + secrets.randbelow(100)
    cluster = ipaddress.IPv4Network(f"10.{octet}.0.0/16")
    switch = f"pnsw-{tag}"
    hs = [Host(f"node-{i}", f"pnh{i}-{tag}", f"192.168.{octet}.{i + 1}", ipaddress.IPv4Network(f"10.{octet}.{i}.0/24"),
               [f"pnp{i}{k}-{tag}" for k in range(pods)]) for i in range(hosts)]
    made: list[str] = []
    try:
        sh("ip", "netns", "add", switch)
        made.append(switch)
        in_ns(switch, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(switch, "ip", "link", "set", "br0", "up")
        for i, h in enumerate(hs):
            _build_host(switch, cluster, i, h, pods, made)
        yield Lab(tag, cluster, f"pnv{tag}", switch, hs)
    finally:
        for ns in reversed(made):
            sh("ip", "netns", "del", ns, check=False)


def seen_source(server_ns: str, server_ip: str, client_ns: str, port: int = 7777) -> str:
    """The source address a TCP server in `server_ns` sees for a connection from `client_ns`."""
    script = ("import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
              f"s.bind(('0.0.0.0',{port}));s.listen();s.settimeout(20);c,a=s.accept();print(a[0])")
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, sys.executable, "-c", script],
                           stdout=subprocess.PIPE, text=True)
    try:
        connect = ("import socket,time\nfor _ in range(100):\n    try:\n"
                   f"        socket.create_connection(('{server_ip}',{port}),timeout=2).close();break\n"
                   "    except OSError:\n        time.sleep(0.1)\n")
        in_ns(client_ns, sys.executable, "-c", connect)
        out, _ = srv.communicate(timeout=30)
        return out.strip()
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
