"""The pod network across nodes against the real kernel, with hosts played by network namespaces.

Topology (all in namespaces this test creates; the root namespace is only checked, never changed):

    [pod-a 10.x.0.2] ─veth─ [host-a: cni0 10.x.0.1/24, eth0 192.168.y.1] ─┐
                                                                       [switch: br0]
    [pod-b 10.x.1.2] ─veth─ [host-b: cni0 10.x.1.1/24, eth0 192.168.y.2] ─┘

Each host runs `minik.net.overlay.Overlay` bound to its namespace, planned from Node objects as
the API holds them (`minik.agent.overlay.node_nets`); pods ping each other across hosts over
VXLAN and over host-gw, with minik's egress masquerade rules loaded in each host, and a deleted
Node's entries go.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from minik.agent.overlay import node_nets
from minik.net.nft import EgressRules, render_apply
from minik.net.overlay import VTEP_MAC_ANNOTATION, Overlay, OverlaySettings, parse_backend, plan, vtep_mac
from tests.support.builders import make_node

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "ping")),
    reason="needs root, iproute2, nftables and ping",
)

UNDERLAY_MTU = 1500


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check)


def in_ns(ns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return sh("ip", "netns", "exec", ns, *args, check=check)


@dataclass
class Host:
    name: str            # the node name
    ns: str              # the host namespace
    pod_ns: str
    ip: str
    pod_cidr: ipaddress.IPv4Network

    @property
    def pod_ip(self) -> str:
        return str(self.pod_cidr.network_address + 2)

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
        objs = []
        for h in hosts:
            n = make_node(h.name)
            n["spec"] = {"podCIDR": str(h.pod_cidr), "podCIDRs": [str(h.pod_cidr)]}
            n["status"]["addresses"] = [{"type": "InternalIP", "address": h.ip}, {"type": "Hostname", "address": h.name}]
            if backend == "vxlan":
                n["metadata"]["annotations"] = {VTEP_MAC_ANNOTATION: vtep_mac(h.name)}
            objs.append(n)
        return objs

    async def reconcile(self, host: Host, backend: str, present: list[Host]) -> Any:
        """One reconcile on `host` from the Nodes `present`, as a fresh process would do it."""
        nodes = node_nets(self.node_objs(present, backend))
        local = next(n for n in node_nets(self.node_objs([host], backend)))
        overlay = Overlay(self.settings(backend), netns=host.netns_path)
        try:
            return await overlay.reconcile(plan(self.settings(backend), local, nodes))
        finally:
            await overlay.close()


def _root_snapshot(lab: Lab) -> tuple[bool, str]:
    has_device = sh("ip", "link", "show", lab.device, check=False).returncode == 0
    ours = [line for line in sh("ip", "-4", "route", "show", "table", "all").stdout.splitlines()
            if any(line.startswith(str(h.pod_cidr)) for h in lab.hosts)]
    return has_device, "\n".join(ours)


@pytest.fixture
def lab() -> Iterator[Lab]:
    tag = secrets.token_hex(3)
    octet = 100 + secrets.randbelow(100)
    cluster = ipaddress.IPv4Network(f"10.{octet}.0.0/16")
    switch = f"pnsw-{tag}"
    hosts = [Host(f"node-{c}", f"pnh{c}-{tag}", f"pnp{c}-{tag}", f"192.168.{octet}.{i + 1}",
                  ipaddress.IPv4Network(f"10.{octet}.{i}.0/24")) for i, c in enumerate("ab")]
    made: list[str] = []
    try:
        sh("ip", "netns", "add", switch)
        made.append(switch)
        in_ns(switch, "ip", "link", "add", "br0", "type", "bridge")
        in_ns(switch, "ip", "link", "set", "br0", "up")
        for i, h in enumerate(hosts):
            for ns in (h.ns, h.pod_ns):
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
            # The host's pod bridge with the gateway address, and one pod on it (as PodNetwork does),
            # at the MTU the VXLAN backend gives pods.
            gw = f"{h.pod_cidr.network_address + 1}/{h.pod_cidr.prefixlen}"
            mtu = str(UNDERLAY_MTU - 50)
            in_ns(h.ns, "ip", "link", "add", "cni0", "mtu", mtu, "type", "bridge")
            in_ns(h.ns, "ip", "addr", "add", gw, "dev", "cni0")
            in_ns(h.ns, "ip", "link", "set", "cni0", "up")
            in_ns(h.ns, "ip", "link", "add", "vpod", "mtu", mtu, "type", "veth", "peer", "name", "eth0",
                  "netns", h.pod_ns)
            in_ns(h.ns, "ip", "link", "set", "vpod", "master", "cni0", "up")
            in_ns(h.pod_ns, "ip", "addr", "add", f"{h.pod_ip}/{h.pod_cidr.prefixlen}", "dev", "eth0")
            in_ns(h.pod_ns, "ip", "link", "set", "eth0", "up")
            in_ns(h.pod_ns, "ip", "link", "set", "lo", "up")
            in_ns(h.pod_ns, "ip", "route", "add", "default", "via", str(h.pod_cidr.network_address + 1))
            # minik's egress rules: masquerade whatever leaves the cluster CIDR, nothing else.
            proc = subprocess.run(["ip", "netns", "exec", h.ns, "nft", "-f", "-"],
                                  input=render_apply(EgressRules("minik", cluster, "cni0")),
                                  capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        yield Lab(tag, cluster, f"pnv{tag}", switch, hosts)
    finally:
        for ns in reversed(made):
            sh("ip", "netns", "del", ns, check=False)


def ping(src: Host, dst_ip: str, count: int = 2) -> bool:
    return in_ns(src.pod_ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip, check=False).returncode == 0


def seen_source(lab: Lab, client: Host, server: Host) -> str:
    """The source address `server`'s pod sees for a TCP connection from `client`'s pod."""
    script = ("import socket;s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1);"
              "s.bind(('0.0.0.0',7777));s.listen();s.settimeout(20);c,a=s.accept();print(a[0])")
    import sys
    srv = subprocess.Popen(["ip", "netns", "exec", server.pod_ns, sys.executable, "-c", script],
                           stdout=subprocess.PIPE, text=True)
    try:
        connect = ("import socket,time\nfor _ in range(100):\n    try:\n"
                   f"        socket.create_connection(('{server.pod_ip}',7777),timeout=2).close();break\n"
                   "    except OSError:\n        time.sleep(0.1)\n")
        in_ns(client.pod_ns, sys.executable, "-c", connect)
        out, _ = srv.communicate(timeout=30)
        return out.strip()
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()


def test_vxlan_pods_reach_each_other_across_hosts(lab: Lab) -> None:
    a, b = lab.hosts
    root_before = _root_snapshot(lab)
    assert not ping(a, b.pod_ip, 1)

    for h in (a, b):
        changes = asyncio.run(lab.reconcile(h, "vxlan", [a, b]))
        assert changes.create_device is not None and len(changes.add_routes) == 1

    dev = in_ns(a.ns, "ip", "-d", "link", "show", lab.device).stdout
    assert "vxlan id 1 " in dev and f"local {a.ip}" in dev and "dstport 8472" in dev and "nolearning" in dev
    assert f"mtu {UNDERLAY_MTU - 50}" in dev and vtep_mac(a.name) in dev
    assert f"{b.pod_cidr} via {b.pod_cidr.network_address} dev {lab.device}" in in_ns(a.ns, "ip", "route").stdout
    assert f"{vtep_mac(b.name)} dst {b.ip}" in in_ns(a.ns, "bridge", "fdb", "show", "dev", lab.device).stdout
    assert vtep_mac(b.name) in in_ns(a.ns, "ip", "neigh", "show", "dev", lab.device).stdout

    assert ping(a, b.pod_ip) and ping(b, a.pod_ip)
    # Pod to pod across nodes keeps the pod's address (no masquerade inside the cluster CIDR).
    assert seen_source(lab, a, b) == a.pod_ip
    # A full-size pod packet fits the tunnel (pod MTU = underlay − 50): no fragmentation needed.
    assert in_ns(a.pod_ns, "ping", "-c", "1", "-W", "2", "-M", "do", "-s", str(UNDERLAY_MTU - 50 - 28),
                 b.pod_ip, check=False).returncode == 0

    # Idempotent, also from a fresh Overlay (a restarted daemon finds its entries).
    for h in (a, b):
        assert asyncio.run(lab.reconcile(h, "vxlan", [a, b])).empty

    # Node b deleted: a drops b's route, FDB and neighbour entries; the device stays.
    changes = asyncio.run(lab.reconcile(a, "vxlan", [a]))
    assert len(changes.del_routes) == len(changes.del_fdb) == len(changes.del_neigh) == 1
    assert str(b.pod_cidr) not in in_ns(a.ns, "ip", "route").stdout
    assert vtep_mac(b.name) not in in_ns(a.ns, "bridge", "fdb", "show", "dev", lab.device).stdout
    assert vtep_mac(b.name) not in in_ns(a.ns, "ip", "neigh", "show", "dev", lab.device).stdout
    assert in_ns(a.ns, "ip", "link", "show", lab.device, check=False).returncode == 0
    assert not ping(a, b.pod_ip, 1)

    assert _root_snapshot(lab) == root_before == (False, "")


def test_host_gw_pods_reach_each_other_and_switching_backends_cleans_up(lab: Lab) -> None:
    a, b = lab.hosts
    root_before = _root_snapshot(lab)
    # Start from VXLAN, then switch to host-gw: the device and its routes go, direct routes come.
    for h in (a, b):
        asyncio.run(lab.reconcile(h, "vxlan", [a, b]))
    assert ping(a, b.pod_ip, 1)
    for h in (a, b):
        changes = asyncio.run(lab.reconcile(h, "host-gw", [a, b]))
        assert changes.delete_device and len(changes.add_routes) == 1
        assert in_ns(h.ns, "ip", "link", "show", lab.device, check=False).returncode != 0
    assert f"{b.pod_cidr} via {b.ip} dev eth0 proto 77" in in_ns(a.ns, "ip", "route").stdout
    assert ping(a, b.pod_ip) and ping(b, a.pod_ip)
    assert seen_source(lab, b, a) == b.pod_ip
    assert asyncio.run(lab.reconcile(a, "host-gw", [a, b])).empty

    # A route minik did not make is left alone, even inside the cluster CIDR.
    in_ns(a.ns, "ip", "route", "add", str(lab.cluster.network_address + 256 * 200) + "/24", "via", b.ip)
    asyncio.run(lab.reconcile(a, "host-gw", [a]))
    routes = in_ns(a.ns, "ip", "route").stdout
    assert str(b.pod_cidr) not in routes and f"{lab.cluster.network_address + 256 * 200}/24 via {b.ip}" in routes
    assert not ping(a, b.pod_ip, 1)

    assert _root_snapshot(lab) == root_before == (False, "")


def test_teardown_removes_everything(lab: Lab) -> None:
    a, b = lab.hosts
    asyncio.run(lab.reconcile(a, "vxlan", [a, b]))

    async def teardown() -> None:
        overlay = Overlay(lab.settings("vxlan"), netns=a.netns_path)
        try:
            await overlay.teardown()
        finally:
            await overlay.close()

    asyncio.run(teardown())
    assert in_ns(a.ns, "ip", "link", "show", lab.device, check=False).returncode != 0
    assert "proto 77" not in in_ns(a.ns, "ip", "route").stdout
