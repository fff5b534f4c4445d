"""The node itself, end to end: registration, and pods surviving a kill -9 of minik and of
containerd. A server of this module's own (tests/e2e/conftest.py `node_minik`), since two of
these scenarios kill processes under it; pods run in namespaces of each test's own.
"""

from __future__ import annotations

import calendar
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, condition, containerd_pid, cstatus, get_json, pod, running, wait_node_ready
from tests.e2e.minikd import Minik, free_port
from tests.support.polling import eventually, http_get

pytestmark = pytest.mark.e2e


def the_node(m: Minik) -> Obj:
    items = get_json(m, "/api/v1/nodes")["items"]
    assert len(items) == 1, [n["metadata"]["name"] for n in items]
    node: Obj = items[0]
    return node


def epoch(ts: str) -> int:
    return calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))


def running_tasks(m: Minik) -> set[str]:
    """Container ids containerd reports RUNNING (sandboxes included), asked directly."""
    sock = os.path.join(m.root, "run", "containerd", "containerd.sock")
    out = subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", "tasks", "ls"], capture_output=True,
                         text=True, check=True, timeout=30).stdout
    return {line.split()[0] for line in out.splitlines()[1:] if line.split()[-1] == "RUNNING"}


def snapshot(ns: Ns, names: list[str]) -> dict[str, tuple[str, int, str]]:
    """name → (containerID, restartCount, startedAt) of each pod's only container."""
    out = {}
    for name in names:
        st = cstatus(ns.get(name), "main")
        out[name] = (st["containerID"], st["restartCount"], st["state"]["running"]["startedAt"])
    return out


# ---- 1. registration --------------------------------------------------------------------------

def test_node_ready_within_seconds_and_wide_listing(node_minik: Minik) -> None:
    node = the_node(node_minik)
    name = node["metadata"]["name"]
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["reason"] == "KubeletReady"
    assert epoch(ready["lastTransitionTime"]) - epoch(node["metadata"]["creationTimestamp"]) <= 5
    wide = node_minik.kubectl("get", "nodes", "-o", "wide").stdout.splitlines()
    header, row = wide[0].split(), wide[1].split()
    assert header[:2] == ["NAME", "STATUS"] and "INTERNAL-IP" in header and "CONTAINER-RUNTIME" in header
    assert row[0] == name and row[1] == "Ready"
    internal = next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")
    assert internal in row
    assert row[-1].startswith("containerd://")
    lease = get_json(node_minik, f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}")
    assert lease and lease["spec"]["holderIdentity"] == name


# ---- 14. containerd crash ---------------------------------------------------------------------

def test_containerd_killed_is_restarted_and_pods_keep_running(node_minik: Minik) -> None:
    m = node_minik
    ns = Ns.make(m, "cdkill")
    ns.create(pod("survivor", [bb("main", "exec sleep 3600")]))
    ns.wait("survivor")
    before = snapshot(ns, ["survivor"])
    old = containerd_pid(m)
    assert old is not None
    os.kill(old, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (containerd_pid(m) in (None, old)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert containerd_pid(m) not in (None, old), m.log_tail()
    # The container lived on in its shim; minik talks to the new containerd (exec) and starts pods.
    ns.create(pod("after", [bb("main", "exec sleep 3600")]))
    ns.wait("after", timeout=40)
    p = ns.wait("survivor", lambda p: running(p) and condition(p, "Ready") == "True")
    assert snapshot(ns, ["survivor"]) == before
    assert ns.exec("survivor", "echo", "still-here").stdout == "still-here\n"
    assert before["survivor"][0].split("://", 1)[1] in running_tasks(m)
    assert cstatus(p, "main")["restartCount"] == 0
    assert "containerd" in m.log_tail(200)


# ---- 13. kill -9 of minik ---------------------------------------------------------------------

def test_kill_9_and_restart_keeps_every_container(node_minik: Minik) -> None:
    m = node_minik
    ns = Ns.make(m, "kill9")
    names = [f"p{i}" for i in range(10)]
    # p0 also serves on a hostPort: its DNAT rules must keep working across the restart.
    host_port = free_port()
    served = bb("main", "mkdir -p /www && echo kept > /www/index.html && exec httpd -f -p 8080 -h /www",
                ports=[{"containerPort": 8080, "hostPort": host_port}])
    ns.create(pod("p0", [served]), *(pod(n, [bb("main", "exec sleep 3600")]) for n in names[1:]))
    for n in names:
        ns.wait(n, timeout=60)
    assert eventually(lambda: http_get(f"http://127.0.0.1:{host_port}/") == "kept\n")
    before = snapshot(ns, names)
    tasks_before = running_tasks(m)
    assert {cid.split("://", 1)[1] for cid, _, _ in before.values()} <= tasks_before

    assert m.proc is not None
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    m.start(timeout=90)
    wait_node_ready(m, the_node(m)["metadata"]["name"])
    # A pod started after the restart proves the agent is syncing again, so the statuses
    # below are fresh reports, not what was stored before the kill.
    ns.create(pod("later", [bb("main", "exec sleep 3600")]))
    ns.wait("later", timeout=40)
    time.sleep(2)  # a couple of relist periods
    for n in names:
        ns.wait(n, lambda p: running(p) and condition(p, "Ready") == "True")
    assert snapshot(ns, names) == before
    assert tasks_before <= running_tasks(m)
    assert eventually(lambda: http_get(f"http://127.0.0.1:{host_port}/") == "kept\n")
