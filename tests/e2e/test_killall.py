"""`minik-killall.sh` stays in its lane: it stops one installation and nothing else.

Two agent-enabled minik instances run side by side, each with a running pod, plus a veth pair that
belongs to nobody minik knows. killall, scoped to instance A by MINIK_DATA_DIR / MINIK_RUN_DIR /
MINIK_BRIDGE_NAME / MINIK_NFT_TABLE / MINIK_DNS_INTERFACE, must stop A's server, containerd, shims and containers and
remove A's bridge (with its veths), nft table and DNS IP — and leave B (server, containerd, pod, bridge,
table) and the foreign veth untouched.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.agent_fixtures import (NodeNet, Ns, bb, claim_node_net, containerd_pid, node_minik_for, pod,
                                      reap_node, release_node_net, wait_node_ready)
from tests.e2e.minikd import Minik

pytestmark = pytest.mark.e2e

KILLALL = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "killall.sh")


def _link_exists(name: str) -> bool:
    return subprocess.run(["ip", "link", "show", name], capture_output=True).returncode == 0


def _table_exists(name: str) -> bool:
    return subprocess.run(["nft", "list", "table", "ip", name], capture_output=True).returncode == 0


def _dns_ip_local(net: NodeNet) -> bool:
    route = subprocess.run(["ip", "route", "get", net.cluster_dns], capture_output=True, text=True).stdout
    return route.startswith("local ")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _pod_pid(ns: Ns, name: str) -> int:
    """The host pid of the pod's container (its `sleep`), through /proc of the container."""
    # The container's own pid namespace hides the host pid; find it by its unique argument.
    marker = f"marker-{ns.name}"
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        return int(entry)
            except OSError:
                continue
    raise AssertionError(f"no host process for {name}")


@pytest.fixture()
def two_nodes(local_registry: str) -> Iterator[tuple[tuple[Minik, NodeNet], tuple[Minik, NodeNet]]]:
    started: list[tuple[Minik, NodeNet]] = []
    try:
        for _ in range(2):
            net = claim_node_net()
            m = node_minik_for(net, local_registry)
            started.append((m, net))
            m.start(timeout=90)
            wait_node_ready(m, net.node_name)
        yield started[0], started[1]
    finally:
        for m, net in started:
            reap_node(m, net)
            release_node_net(net)


def test_killall_stops_only_its_own_installation(two_nodes: tuple[tuple[Minik, NodeNet], tuple[Minik, NodeNet]]) -> None:
    (a, net_a), (b, net_b) = two_nodes
    pods = {}
    for m in (a, b):
        ns = Ns.make(m, "ka")
        ns.create(pod("sleeper", [bb("c", f"exec sh -c 'sleep 3600; :' marker-{ns.name}")]))
        ns.wait("sleeper", timeout=90)
        pods[m.root] = (ns, _pod_pid(ns, "sleeper"))
    tag = secrets.token_hex(2)
    foreign, peer = f"veth{tag}f", f"veth{tag}p"
    subprocess.run(["ip", "link", "add", foreign, "type", "veth", "peer", "name", peer], check=True)
    try:
        containerd_a, containerd_b = containerd_pid(a), containerd_pid(b)
        assert containerd_a and containerd_b
        env = dict(os.environ, MINIK_DATA_DIR=a.data_dir, MINIK_RUN_DIR=os.path.join(a.root, "run"),
                   MINIK_BRIDGE_NAME=net_a.bridge, MINIK_NFT_TABLE=net_a.nft_table,
                   MINIK_DNS_INTERFACE=net_a.dns_interface, MINIK_ENV_FILE="/nonexistent")
        assert _dns_ip_local(net_a) and _dns_ip_local(net_b)
        r = subprocess.run(["bash", KILLALL], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert a.proc is not None and a.proc.wait(timeout=30) is not None
        # A is gone, all of it.
        assert not _alive(containerd_a)
        assert not _alive(pods[a.root][1])
        assert not _link_exists(net_a.bridge) and not _table_exists(net_a.nft_table)
        # B and the foreign veth are untouched.
        assert b.proc is not None and b.proc.poll() is None
        assert _alive(containerd_b) and _alive(pods[b.root][1])
        assert _link_exists(net_b.bridge) and _table_exists(net_b.nft_table)
        assert _link_exists(foreign) and _link_exists(peer)
        assert not _dns_ip_local(net_a) and _dns_ip_local(net_b)    # only A's cluster DNS IP went
        wait_node_ready(b, net_b.node_name)
        ns_b = pods[b.root][0]
        assert ns_b.exec("sleeper", "echo", "still-here").stdout.strip() == "still-here"
    finally:
        subprocess.run(["ip", "link", "del", foreign], capture_output=True)
