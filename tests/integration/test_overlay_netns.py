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
import os
import shutil
from collections.abc import Iterator

import pytest

from minik.net.overlay import Overlay, vtep_mac
from tests.support.netlab import UNDERLAY_MTU, Host, Lab, in_ns, netlab
from tests.support.netlab import seen_source as _seen_source

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nft", "ping", "bridge")),
    reason="needs root, iproute2, nftables and ping",
)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with netlab(hosts=2) as lab:
        yield lab


def ping(src: Host, dst_ip: str, count: int = 2) -> bool:
    return in_ns(src.pod_ns, "ping", "-c", str(count), "-i", "0.2", "-W", "2", dst_ip, check=False).returncode == 0


def seen_source(lab: Lab, client: Host, server: Host) -> str:
    return _seen_source(server.pod_ns, server.pod_ip, client.pod_ns)


def _root_snapshot(lab: Lab) -> tuple[bool, str]:
    return lab.root_snapshot()


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
    # The host itself reaches the other node's pods too (from its VTEP address, as with flannel).
    assert in_ns(a.ns, "ping", "-c", "1", "-W", "2", b.pod_ip, check=False).returncode == 0
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
