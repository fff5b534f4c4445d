"""`kubectl debug` with ephemeral containers on a real node, end to end.

kubectl PATCHes pods/ephemeralcontainers (strategic merge), minik's agent starts the container
once in the pod's sandbox — in the target container's PID namespace with `--target` — and reports
it in status.ephemeralContainerStatuses; exec, logs and attach reach it like any container.
One agent-enabled `minik server` per module; every test works in a namespace of its own.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
from collections.abc import Callable

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, pod
from tests.e2e.minikd import KUBECTL, Minik

pytestmark = pytest.mark.e2e

SMP = "application/strategic-merge-patch+json"


def eph_status(p: Obj | None, name: str) -> Obj:
    for s in ((p or {}).get("status") or {}).get("ephemeralContainerStatuses") or []:
        if s["name"] == name:
            return dict(s)
    return {}


def eph_running(name: str) -> Callable[[Obj], bool]:
    return lambda p: "running" in (eph_status(p, name).get("state") or {})


def test_debug_target_shares_pid_namespace(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "debug")
    ns.create(pod("app", [bb("app", "exec sleep 3600")]))
    ns.wait("app")
    ns.kubectl("debug", "app", "--image=busybox", "--target=app", "-c", "dbg",
                     "--", "sh", "-c", "echo debug-started; exec sleep 3599")
    p = ns.wait("app", eph_running("dbg"))
    st = eph_status(p, "dbg")
    assert (st["ready"], st["restartCount"], st["image"]) == (False, 0, "busybox")
    assert st["containerID"].startswith("containerd://") and st["imageID"]
    assert p["status"]["phase"] == "Running"
    assert all(c["status"] == "True" for c in p["status"]["conditions"] if c["type"] in ("Ready", "ContainersReady"))

    # --target: the debug container sees the target's processes, the target's sleep as PID 1.
    ps = ns.exec("app", "ps", container="dbg").stdout
    assert any(line.split()[:1] == ["1"] and "sleep 3600" in line for line in ps.splitlines()), ps
    assert "sleep 3599" in ps
    assert ns.kubectl("logs", "app", "-c", "dbg").stdout == "debug-started\n"

    base = f"/api/v1/namespaces/{ns.name}/pods/app"
    code, body = node_minik.raw_json("PATCH", base + "/ephemeralcontainers", {"spec": {"ephemeralContainers": [
        {"name": "dbg", "image": "busybox:1.36"}]}}, content_type=SMP)
    assert code == 422, body
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.ephemeralContainers"]
    code, body = node_minik.raw_json("PATCH", base, {"spec": {"ephemeralContainers": [
        {"name": "other", "image": "busybox"}]}}, content_type=SMP)
    assert code == 422, body
    assert "pod updates may not change fields" in body["message"]
    code, body = node_minik.raw_json("GET", base + "/ephemeralcontainers")
    assert code == 200 and [e["name"] for e in body["spec"]["ephemeralContainers"]] == ["dbg"]

    # Never restarted: once it exits it stays terminated, the pod keeps running.
    ns.exec("app", "sh", "-c", "ps | grep '[s]leep 3599' | while read pid _; do kill $pid; done",
            container="dbg", check=False)   # the exec may die with the container
    p = ns.wait("app", lambda q: "terminated" in (eph_status(q, "dbg").get("state") or {}))
    assert eph_status(p, "dbg")["restartCount"] == 0


def test_debug_interactive(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "debugi")
    ns.create(pod("app", [bb("app", "exec sleep 3600")]))
    ns.wait("app")
    env = dict(os.environ, KUBECONFIG=node_minik.kubeconfig)
    cmd = [KUBECTL, "-n", ns.name, "debug", "app", "-i", "--image=busybox", "--target=app", "-c", "shell", "--", "sh"]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        # Keep stdin open until the answer is back: the end of stdin ends an attach session, and
        # output the shell writes after that point is not delivered.
        proc.stdin.write(b"echo hi-from-debug; ps\n")
        proc.stdin.flush()
        out = _read_until(proc.stdout.fileno(), b"sleep 3600", 30.0)
        assert b"hi-from-debug" in out, out
        # The target's process is PID 1 of the shared namespace.
        assert any(line.split()[:1] == [b"1"] and b"sleep 3600" in line for line in out.splitlines()), out
        proc.stdin.write(b"exit 3\n")
        proc.stdin.close()
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    p = ns.wait("app", lambda q: "terminated" in (eph_status(q, "shell").get("state") or {}))
    term = eph_status(p, "shell")["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert p["status"]["phase"] == "Running" and eph_status(p, "shell")["restartCount"] == 0


def test_kill_9_and_restart_does_not_rerun_ephemeral_containers(node_minik: Minik) -> None:
    m = node_minik
    ns = Ns.make(m, "debugr")
    ns.create(pod("app", [bb("app", "exec sleep 3600")]))
    ns.wait("app")
    ns.kubectl("debug", "app", "--image=busybox", "--target=app", "-c", "long", "--", "sleep", "3600")
    ns.kubectl("debug", "app", "--image=busybox", "-c", "once", "--", "echo", "ran-once")
    ns.wait("app", lambda q: "running" in (eph_status(q, "long").get("state") or {})
            and "terminated" in (eph_status(q, "once").get("state") or {}))
    before = {n: eph_status(ns.get("app"), n)["containerID"] for n in ("long", "once")}

    assert m.proc is not None
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait()
    m.start(timeout=90)
    # A pod started after the restart proves the agent syncs again (fresh reports below).
    ns.create(pod("later", [bb("main", "exec sleep 3600")]))
    ns.wait("later", timeout=40)
    time.sleep(2)  # a couple of relist periods
    p = ns.wait("app")
    assert {n: eph_status(p, n)["containerID"] for n in ("long", "once")} == before
    assert "running" in eph_status(p, "long")["state"] and "terminated" in eph_status(p, "once")["state"]
    assert ns.kubectl("logs", "app", "-c", "once").stdout == "ran-once\n"


def _read_until(fd: int, marker: bytes, timeout: float) -> bytes:
    """Unbuffered reads from `fd` until `marker` shows up, EOF, or `timeout` seconds pass."""
    out = b""
    deadline = time.monotonic() + timeout
    while marker not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            out += chunk
    return out
