"""The pod network across nodes in a running server (one real node; other nodes are Node objects).

The server's overlay creates its own VXLAN device (a per-instance name and VNI from the fixture),
publishes the node's VTEP MAC annotation, gives pods the tunnel's MTU, and keeps FDB/route
entries for every other Node: here a Node object whose InternalIP is a loopback address, so
nothing is ever sent off this host. Deleting that Node removes its entries.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator

import pytest

from minik.net.overlay import VTEP_MAC_ANNOTATION, vtep_mac
from tests.e2e.agent_fixtures import NodeNet, Ns, bb, node_server, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(local_registry: str) -> Iterator[tuple[Minik, NodeNet]]:
    with node_server(local_registry) as mn:
        yield mn


def ip(*args: str) -> str:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=False).stdout


def link_mtu(name: str) -> int:
    return int(json.loads(ip("-j", "link", "show", name))[0]["mtu"])


def default_route_mtu() -> int:
    routes = json.loads(ip("-j", "-4", "route", "show", "default"))
    return link_mtu(routes[0]["dev"]) if routes else 1500


def test_vxlan_device_annotation_and_pod_mtu(server: tuple[Minik, NodeNet]) -> None:
    m, net = server
    dev = eventually(lambda: ip("-d", "link", "show", net.vxlan_device), timeout=30)
    assert f"vxlan id {net.octet} " in str(dev) and "local 127.0.0.1" in str(dev) and "dstport 8472" in str(dev)
    assert link_mtu(net.vxlan_device) == link_mtu("lo") - 50

    def annotated() -> bool:
        code, node = m.raw_json("GET", f"/api/v1/nodes/{net.node_name}")
        return code == 200 and node["metadata"].get("annotations", {}).get(VTEP_MAC_ANNOTATION) == vtep_mac(net.node_name)
    eventually(annotated, timeout=30)
    assert vtep_mac(net.node_name) in str(dev)

    # Pods get the tunnel's MTU (never above what the default route carries, minus the overhead).
    ns = Ns.make(m, "overlay")
    ns.create(pod("mtu", [bb("c", "cat /sys/class/net/eth0/mtu; sleep 3600")]))
    ns.wait("mtu", timeout=90)
    out = eventually(lambda: ns.kubectl("logs", "mtu").stdout.strip(), timeout=30)
    assert int(str(out)) == min(link_mtu("lo"), default_route_mtu()) - 50


def test_entries_follow_other_nodes(server: tuple[Minik, NodeNet]) -> None:
    m, net = server
    peer = f"{net.node_name}-peer"
    mac = vtep_mac(peer)
    code, body = m.raw_json("POST", "/api/v1/nodes", {"metadata": {"name": peer, "annotations": {VTEP_MAC_ANNOTATION: mac}}})
    assert code == 201, body
    try:
        code, body = m.raw_json("PATCH", f"/api/v1/nodes/{peer}/status",
                                {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.2"}]}},
                                content_type="application/merge-patch+json")
        assert code == 200, body

        def pod_cidr() -> str:
            return str(m.raw_json("GET", f"/api/v1/nodes/{peer}")[1].get("spec", {}).get("podCIDR") or "")
        cidr = str(eventually(pod_cidr, timeout=30))
        gw = cidr.split("/")[0]

        def entries() -> tuple[bool, bool, bool]:
            return (f"{cidr} via {gw} dev {net.vxlan_device} proto 77 onlink" in ip("-4", "route", "show", cidr),
                    f"{mac} dst 127.0.0.2" in subprocess.run(["bridge", "fdb", "show", "dev", net.vxlan_device],
                                                              capture_output=True, text=True).stdout,
                    mac in ip("neigh", "show", "dev", net.vxlan_device))
        eventually(lambda: all(entries()), timeout=30)
    finally:
        m.raw_json("DELETE", f"/api/v1/nodes/{peer}")
    eventually(lambda: not any(entries()), timeout=30)
    assert ip("-d", "link", "show", net.vxlan_device)  # the device stays
