"""Each installation's pods live under a cgroup parent of their own (`--cgroup-parent`, default
derived from the data dir), not containerd's shared `/k8s.io`, so `scripts/killall.sh` can stop
exactly its own containers by cgroup.

Two agent-enabled instances side by side, each with a running pod: the container process of each
(found through /proc) sits in `<its parent>/<container id>`, the parents differ, the default is the
one `config.default_cgroup_parent` (and killall.sh) compute, and an explicit `--cgroup-parent` is
honoured. killall scoped to A also kills a stray process that is only in A's cgroup (no shim
ancestry), and leaves a process in B's cgroup alone.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from minik.config import default_cgroup_parent
from tests.e2e.agent_fixtures import (NodeNet, Ns, bb, claim_node_net, node_minik_for, pod, reap_node,
                                      release_node_net, wait_node_ready)
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

KILLALL = os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "killall.sh")


def _host_pid(marker: str) -> int:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        return int(entry)
            except OSError:
                continue
    raise AssertionError(f"no host process with {marker}")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _cgroup_paths(pid: int) -> set[str]:
    """The cgroup paths of a process, one per hierarchy (v1) or the unified one (v2)."""
    with open(f"/proc/{pid}/cgroup", encoding="utf-8") as f:
        return {line.rstrip("\n").split(":", 2)[2] for line in f if line.strip()}


def _hierarchies() -> list[str]:
    """Mount points of the cgroup hierarchies whose root is the real root."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            fstype = fields[fields.index("-") + 1]
            if fstype in ("cgroup", "cgroup2") and fields[3] == "/":
                out.append(fields[4])
    return out


def _join_cgroup(parent: str, pid: int) -> None:
    """Move `pid` into `parent` itself in every hierarchy that has it (as a stray process)."""
    for h in _hierarchies():
        d = h + parent
        if os.path.isdir(d):
            with open(os.path.join(d, "cgroup.procs"), "w", encoding="ascii") as f:
                f.write(str(pid))


def _container_id(p: dict[str, Any]) -> str:
    return str(p["status"]["containerStatuses"][0]["containerID"]).split("://", 1)[1]


@pytest.fixture()
def two_nodes(local_registry: str) -> Iterator[list[tuple[Minik, NodeNet]]]:
    started: list[tuple[Minik, NodeNet]] = []
    try:
        for extra in ([], ["--cgroup-parent", "/mke-explicit-" + os.urandom(3).hex()]):
            net = claim_node_net()
            m = node_minik_for(net, local_registry, extra)
            started.append((m, net))
            m.start(timeout=90)
            wait_node_ready(m, net.node_name)
        yield started
    finally:
        for m, net in started:
            reap_node(m, net)
            release_node_net(net)


def test_pods_of_each_installation_have_their_own_cgroup_parent(two_nodes: list[tuple[Minik, NodeNet]]) -> None:
    (a, net_a), (b, net_b) = two_nodes
    parents = [default_cgroup_parent(a.data_dir), b.extra[b.extra.index("--cgroup-parent") + 1]]
    assert parents[0].startswith("/minik-") and parents[0] != parents[1]
    pids = []
    for m, parent in zip((a, b), parents):
        ns = Ns.make(m, "cg")
        ns.create(pod("sleeper", [bb("c", f"exec sh -c 'sleep 3600; :' marker-{ns.name}")]))
        p = ns.wait("sleeper", timeout=90)
        cid = _container_id(p)
        pid = _host_pid(f"marker-{ns.name}")
        paths = _cgroup_paths(pid)
        # Every hierarchy the container joined places it at <parent>/<container id>.
        assert any(path.endswith(f"{parent}/{cid}") for path in paths), (parent, cid, paths)
        assert not any("/k8s.io/" in path for path in paths), paths
        pids.append(pid)

    # Strays: a process in each installation's parent cgroup that no shim of theirs started.
    strays = []
    for parent in parents:
        s = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        _join_cgroup(parent, s.pid)
        assert any(path == parent for path in _cgroup_paths(s.pid))
        strays.append(s)
    try:
        env = dict(os.environ, MINIK_DATA_DIR=a.data_dir, MINIK_RUN_DIR=os.path.join(a.root, "run"),
                   MINIK_BRIDGE_NAME=net_a.bridge, MINIK_NFT_TABLE=net_a.nft_table,
                   MINIK_DNS_INTERFACE=net_a.dns_interface, MINIK_ENV_FILE="/nonexistent")
        r = subprocess.run(["bash", KILLALL], env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        # A's container and A's stray are gone, and A's cgroup directories with them.
        eventually(lambda: strays[0].poll() is not None, timeout=30)
        eventually(lambda: not _alive(pids[0]), timeout=30)
        eventually(lambda: not any(os.path.isdir(h + parents[0]) for h in _hierarchies()), timeout=30)
        # B's are untouched.
        time.sleep(0.5)
        assert strays[1].poll() is None
        assert _alive(pids[1])
    finally:
        for s in strays:
            s.kill()
            s.wait()
