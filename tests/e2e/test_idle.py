"""An idle node writes nothing: with pods running and probes passing, no object but the node's
heartbeat Lease changes and the database files stay still (the SD-card-wear promise: heartbeats
are in-memory Leases, status is written only when it changes, passing probes are not news).

Its own agent-enabled server, so no other module's crash-looping pods make noise.
Neighbours: tests/e2e/agent_fixtures.py (server and pod builders), tests/e2e/test_node.py.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, condition, node_server, pod
from tests.e2e.minikd import Minik

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def idle_minik(local_registry: str) -> Iterator[Minik]:
    with node_server(local_registry) as (m, _net):
        yield m


def revision(m: Minik) -> int:
    code, lst = m.raw_json("GET", "/api/v1/namespaces")
    assert code == 200
    return int(lst["metadata"]["resourceVersion"])


def db_files(m: Minik) -> dict[str, tuple[int, int]]:
    d = os.path.join(m.data_dir, "server", "db")
    out = {}
    for name in sorted(os.listdir(d)):
        if name.startswith("state.db") and not name.endswith("-shm"):  # -shm is shared memory, not wear
            st = os.stat(os.path.join(d, name))
            out[name] = (st.st_size, st.st_mtime_ns)
    return out


def settled(m: Minik, quiet: float = 3.0, timeout: float = 60.0) -> int:
    """The revision once nothing was written for `quiet` seconds (startup events settle)."""
    deadline = time.monotonic() + timeout
    last, since = revision(m), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = revision(m)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return now
    raise AssertionError(f"the store kept being written for {timeout}s (revision {last})")


def written_since(m: Minik, rev: int) -> list[str]:
    """kind/namespace/name of every object written after `rev` (for the failure message)."""
    kinds = m.kubectl("api-resources", "--verbs=list", "-o", "name").stdout.split()
    lst = json.loads(m.kubectl("get", ",".join(kinds), "-A", "-o", "json").stdout)
    return [f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}@{i['metadata']['resourceVersion']}"
            for i in lst["items"] if int(i["metadata"].get("resourceVersion") or 0) > rev]   # metrics have none


def test_idle_node_with_probed_pods_writes_nothing(idle_minik: Minik) -> None:
    m = idle_minik
    ns = Ns.make(m, "idle")
    probes: Obj = {
        "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 1},
    }
    web = "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"
    ns.create(pod("web", [bb("web", web, **probes)]), pod("sleeper", [bb("main", "exec sleep 3600")]))
    ns.wait("web", lambda p: condition(p, "Ready") == "True", timeout=60)
    ns.wait("sleeper")
    before_rev = settled(m)
    before_files = db_files(m)
    time.sleep(12)  # a dozen probe periods, several node-status and lease periods of the agent
    # Node heartbeats renew the node's Lease: in memory only (it takes a revision, as in
    # Kubernetes, but never a disk write). Nothing else may change.
    written = [w for w in written_since(m, before_rev) if not w.startswith("Lease/kube-node-lease/")]
    assert written == [], "an idle node wrote to the store"
    assert db_files(m) == before_files, "an idle node touched the database files"
