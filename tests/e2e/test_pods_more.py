"""More pods on a real node, end to end: pull secrets, hostPorts, sidecars (gating Ready,
restarted under restartPolicy Never, stopped after the job), tcp/grpc probes, postStart hooks,
attach and termination messages, through the real kubectl.

One agent-enabled `minik server` for the module, started here rather than by the shared
`node_minik` fixture because its registries.yaml must also name a private registry: docker.io is
mirrored to the session's busybox registry (`local_registry`) and 127.0.0.1:<port> — a
docker-registry with htpasswd auth holding `private/busybox:1` — is declared plain HTTP.
Every test works in a namespace of its own; waits are bounded.
Neighbours: tests/e2e/test_pods.py (the first fifteen scenarios, same helpers),
tests/e2e/agent_fixtures.py (server builders, pod builders, `Ns`), tests/support/registry.py.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.agent_fixtures import (
    Ns,
    Obj,
    bb,
    claim_node_net,
    condition,
    cstatus,
    pod,
    reap_node,
    release_node_net,
    state_of,
    wait_node_ready,
)
from tests.e2e.minikd import KUBECTL, Minik, free_port
from tests.support.registry import LocalRegistry, build_busybox, push_archive, registries_yaml
from tests.support.polling import eventually, http_get

pytestmark = pytest.mark.e2e

HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"
PRIVATE_USER, PRIVATE_PASSWORD = "minik", "pull-s3cret"
PRIVATE_REPO = "private/busybox:1"


@dataclass(frozen=True)
class Node:
    m: Minik
    private_host: str      # 127.0.0.1:<port> of the authenticated registry
    bridge: str


@pytest.fixture(scope="module")
def node(local_registry: str) -> Iterator[Node]:
    """An agent-enabled server whose registries.yaml knows the docker.io mirror and the private
    registry; everything is reaped afterwards (the `node_server` pattern of agent_fixtures)."""
    reg = LocalRegistry(auth=(PRIVATE_USER, PRIVATE_PASSWORD)).start()
    net = claim_node_net()
    root = tempfile.mkdtemp(prefix="mk-e2e-node-", dir="/tmp")
    m = Minik(root, free_port(), net.server_flags())
    try:
        d = tempfile.mkdtemp(prefix="mk-e2e-img-")
        try:
            archive = build_busybox(f"{reg.host}/{PRIVATE_REPO}", os.path.join(d, "busybox.tar"))
            push_archive(archive, f"{reg.host}/{PRIVATE_REPO}", creds=(PRIVATE_USER, PRIVATE_PASSWORD))
        finally:
            shutil.rmtree(d, ignore_errors=True)
        os.makedirs(os.path.join(root, "etc"))
        with open(os.path.join(root, "etc", "registries.yaml"), "w", encoding="utf-8") as f:
            f.write(registries_yaml({"docker.io": local_registry, reg.host: reg.host}))
        m.start(timeout=90)
        wait_node_ready(m, net.node_name)
        yield Node(m, reg.host, net.bridge)
    finally:
        reap_node(m, net, keep_dir=os.environ.get("MINIK_KEEP_TEST_DIRS") == "1")
        release_node_net(net)
        reg.stop()


def refused(host: str, port: int) -> bool:
    """Nothing answers host:port any more (refused, reset or silently dropped)."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.settimeout(1.0)
            return s.recv(1) == b""
    except OSError:
        return True


def waiting_reason(p: Obj, name: str) -> str:
    return str((state_of(p, name).get("waiting") or {}).get("reason", ""))


# ---- 1. imagePullSecrets ----------------------------------------------------------------------

def test_image_pull_secret_for_private_registry(node: Node) -> None:
    ns = Ns.make(node.m, "pull")
    image = f"{node.private_host}/{PRIVATE_REPO}"
    main = {"name": "main", "image": image, "command": ["sh", "-c", "echo private-ok; exec sleep 3600"],
            "imagePullPolicy": "Always"}
    # Without credentials first: the node must not have the image yet, and Always re-asks anyway.
    ns.create(pod("nocreds", [main]))
    seen: set[str] = set()

    def pull_failed(p: Obj) -> bool:
        seen.add(waiting_reason(p, "main"))
        return bool(seen & {"ErrImagePull", "ImagePullBackOff"})

    p = ns.wait("nocreds", pull_failed, timeout=45)
    assert p["status"]["phase"] == "Pending"
    failed = [e["message"] for e in ns.events("nocreds") if e["reason"] == "Failed" and image in e["message"]]
    assert failed, ns.event_lines()
    assert any("401" in msg or "unauthorized" in msg.lower() for msg in failed), failed

    ns.kubectl("create", "secret", "docker-registry", "regcred", f"--docker-server={node.private_host}",
               f"--docker-username={PRIVATE_USER}", f"--docker-password={PRIVATE_PASSWORD}")
    ns.create(pod("withcreds", [main], imagePullSecrets=[{"name": "regcred"}]))
    ns.wait("withcreds", timeout=45)
    assert eventually(lambda: ns.kubectl("logs", "withcreds").stdout == "private-ok\n")
    assert any(e["reason"] == "Pulled" and image in e["message"] for e in ns.events("withcreds"))


# ---- 2. hostPort ------------------------------------------------------------------------------

def _bridge_address(bridge: str) -> str:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", bridge], capture_output=True,
                         text=True, check=True).stdout
    return out.split()[3].split("/")[0]


def _primary_address() -> str:
    """The host's own address on its default route ("" without one); no packet is sent."""
    out = subprocess.run(["ip", "-4", "-o", "route", "get", "192.0.2.1"], capture_output=True,
                         text=True, check=False).stdout.split()
    return out[out.index("src") + 1] if "src" in out else ""


def test_host_port_reaches_pod_until_deleted(node: Node) -> None:
    ns = Ns.make(node.m, "hostport")
    hp = free_port()
    ns.create(pod("hp", [bb("web", HTTPD.format(text="via-host-port", port=8080),
                            ports=[{"containerPort": 8080, "hostPort": hp}])]),
              pod("client", [bb("main", "exec sleep 3600")]))
    p = ns.wait("hp")
    ns.wait("client")
    host_ip = p["status"]["hostIP"]
    gateway = _bridge_address(node.bridge)   # a local address of the node, on the pod bridge
    # Every local address of the node answers (portmap's `--dst-type LOCAL`).
    def answers(addr: str) -> Callable[[], bool]:
        return lambda: http_get(f"http://{addr}:{hp}/") == "via-host-port\n"

    for addr in dict.fromkeys(a for a in ["127.0.0.1", host_ip, gateway, _primary_address()] if a):
        assert eventually(answers(addr)), addr
    # Hairpin: a pod reaching another pod through the node's hostPort.
    out = ns.exec("client", "sh", "-c", f"timeout 5 wget -qO- http://{gateway}:{hp}/").stdout
    assert out == "via-host-port\n"

    ns.kubectl("delete", "pod", "hp", "--wait=true", timeout=60)
    assert eventually(lambda: refused("127.0.0.1", hp) and refused(gateway, hp), timeout=15)


# ---- 3. sidecar init containers ---------------------------------------------------------------

def test_sidecar_runs_alongside_and_gates_ready(node: Node) -> None:
    ns = Ns.make(node.m, "sidecar")
    shared = [{"name": "s", "mountPath": "/s"}]
    # The sidecar's startup probe passes after ~3 s; the main container may only start after it.
    sidecar = bb("proxy", "date +%s > /s/sidecar-started; sleep 3; touch /tmp/up; exec sleep 3600",
                 restartPolicy="Always", volumeMounts=shared,
                 startupProbe={"exec": {"command": ["cat", "/tmp/up"]}, "periodSeconds": 1,
                               "failureThreshold": 30})
    ns.create(pod("sc", [bb("main", "date +%s > /s/main-started; exec sleep 3600", volumeMounts=shared)],
                  initContainers=[sidecar], volumes=[{"name": "s", "emptyDir": {}}]))
    p = ns.wait("sc", lambda p: "running" in (cstatus(p, "proxy", init=True).get("state") or {}), timeout=30)
    assert condition(p, "Ready") != "True"
    assert cstatus(p, "proxy", init=True).get("started") is False, cstatus(p, "proxy", init=True)
    assert "running" not in state_of(p, "main")

    ns.kubectl("wait", "--for=condition=Ready", "pod/sc", "--timeout=30s")
    ready = ns.get("sc")
    assert ready is not None
    p = ready
    st = cstatus(p, "proxy", init=True)
    assert "running" in st["state"] and st["started"] is True and st["ready"] is True, st
    assert "running" in state_of(p, "main")
    assert condition(p, "Initialized") == "True"
    # A running init container takes `exec` like any other.
    started = ns.exec("sc", "cat", "/s/sidecar-started", "/s/main-started", container="proxy").stdout.split()
    assert int(started[1]) - int(started[0]) >= 3, started
    assert cstatus(p, "proxy", init=True).get("restartCount", 0) == 0


def test_sidecar_restarts_and_stops_when_main_completes(node: Node) -> None:
    ns = Ns.make(node.m, "sidecar2")
    # restartPolicy Never does not apply to sidecars: the crashing one comes back; once the
    # regular container has completed, the sidecar is stopped and the pod Succeeds.
    ns.create(pod("job", [bb("main", "sleep 4; echo done")],
                  initContainers=[bb("helper", "sleep 1; exit 1", restartPolicy="Always")],
                  restartPolicy="Never"))
    p = ns.wait("job", lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), timeout=40)
    assert p["status"]["phase"] == "Succeeded", p["status"]
    helper = cstatus(p, "helper", init=True)
    assert helper.get("restartCount", 0) >= 1, helper
    assert "running" not in helper["state"], helper
    assert state_of(p, "main")["terminated"]["exitCode"] == 0


# ---- 4. tcpSocket and grpc probes -------------------------------------------------------------

def test_tcp_readiness_and_grpc_liveness(node: Node) -> None:
    ns = Ns.make(node.m, "probes")
    ns.create(pod("tcp", [bb("web", "sleep 3; " + HTTPD.format(text="up", port=8080),
                             ports=[{"name": "http", "containerPort": 8080}],
                             readinessProbe={"tcpSocket": {"port": "http"}, "periodSeconds": 1})]),
              pod("grpc", [bb("main", "exec sleep 3600",
                              livenessProbe={"grpc": {"port": 9555}, "periodSeconds": 1,
                                             "failureThreshold": 2})]))
    p = ns.wait("tcp", lambda p: "running" in state_of(p, "web"))
    assert condition(p, "Ready") == "False" and cstatus(p, "web")["ready"] is False
    ns.kubectl("wait", "--for=condition=Ready", "pod/tcp", "--timeout=30s")
    assert cstatus(ns.get("tcp"), "web")["restartCount"] == 0

    p = ns.wait("grpc", lambda p: cstatus(p, "main").get("restartCount", 0) >= 1, timeout=40)
    assert cstatus(p, "main")["lastState"]["terminated"]["exitCode"] in (137, 143)
    unhealthy = [e["message"] for e in ns.events("grpc") if e["reason"] == "Unhealthy"]
    assert unhealthy and all(m.startswith("Liveness probe failed") for m in unhealthy), ns.event_lines()
    assert any(e["reason"] == "Killing" and "liveness" in e["message"] for e in ns.events("grpc"))


# ---- 5. postStart hooks -----------------------------------------------------------------------

def test_post_start_hook_runs_and_failure_kills(node: Node) -> None:
    ns = Ns.make(node.m, "poststart")
    ns.create(pod("hooked", [bb("main", "until [ -f /tmp/hook ]; do sleep 0.1; done; cat /tmp/hook; exec sleep 3600",
                                lifecycle={"postStart": {"exec": {"command": [
                                    "sh", "-c", "echo from-post-start > /tmp/hook"]}}})]),
              pod("badhook", [bb("main", "exec sleep 3600",
                                 lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}})]))
    ns.wait("hooked")
    assert eventually(lambda: ns.kubectl("logs", "hooked").stdout == "from-post-start\n")
    assert cstatus(ns.get("hooked"), "main")["restartCount"] == 0

    p = ns.wait("badhook", lambda p: cstatus(p, "main").get("restartCount", 0) >= 1, timeout=40)
    assert "terminated" in (cstatus(p, "main").get("lastState") or {}), cstatus(p, "main")
    events = ns.events("badhook")
    assert any(e["reason"] == "FailedPostStartHook" for e in events), ns.event_lines()
    assert not any(e["reason"] == "FailedPostStartHook" for e in ns.events("hooked"))


# ---- 6. attach --------------------------------------------------------------------------------

def test_attach_stdin_echoes(node: Node) -> None:
    m = node.m
    ns = Ns.make(m, "attach")
    ns.create(pod("cat", [{"name": "main", "image": "busybox", "command": ["cat"], "stdin": True}]))
    ns.wait("cat")
    env = dict(os.environ, KUBECONFIG=m.kubeconfig)
    proc = subprocess.Popen([KUBECTL, f"--cache-dir={m.root}/kcache-attach", "-n", ns.name, "attach",
                             "-i", "cat", "-c", "main"], env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stdin is not None

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        # Input written before the stream is up may be lost: repeat until one comes back.
        deadline = time.monotonic() + 20
        got = ""
        while time.monotonic() < deadline and got != "hello-attach\n":
            proc.stdin.write("hello-attach\n")
            proc.stdin.flush()
            try:
                got = lines.get(timeout=1.0)
            except queue.Empty:
                continue
        assert got == "hello-attach\n", (got, proc.poll())
    finally:
        proc.kill()
        proc.wait(10)
    # `cat` is still running (detaching does not close its stdin unless stdinOnce).
    assert "running" in state_of(ns.get("cat"), "main")


# ---- 7. termination messages ------------------------------------------------------------------

def test_termination_message_from_file_and_logs(node: Node) -> None:
    ns = Ns.make(node.m, "termmsg")
    ns.create(pod("file", [bb("main", "echo -n 'bye from file' > /dev/termination-log; echo noise; exit 1")],
                  restartPolicy="Never"),
              pod("custom", [bb("main", "echo -n custom-path > /tmp/why; exit 0",
                                terminationMessagePath="/tmp/why")], restartPolicy="Never"),
              pod("logs", [bb("main", "echo first line; echo last words; exit 2",
                              terminationMessagePolicy="FallbackToLogsOnError")], restartPolicy="Never"),
              pod("again", [bb("main", "echo -n \"run $(date +%s%N)\" > /dev/termination-log; exit 1")]))

    def terminated(name: str) -> Obj:
        p = ns.wait(name, lambda p: "terminated" in state_of(p, "main"), timeout=30)
        return dict(state_of(p, "main")["terminated"])

    t = terminated("file")
    assert (t["exitCode"], t.get("message")) == (1, "bye from file"), t
    t = terminated("custom")
    assert (t["exitCode"], t.get("message")) == (0, "custom-path"), t
    t = terminated("logs")
    assert t["exitCode"] == 2 and "last words" in t.get("message", ""), t
    described = ns.kubectl("describe", "pod", "file").stdout
    assert "bye from file" in described
    # A restarted container's previous message stays in lastState; the new instance got a
    # fresh file (no stale message is inherited).
    p = ns.wait("again", lambda p: cstatus(p, "main").get("restartCount", 0) >= 1
                and "terminated" in (cstatus(p, "main").get("lastState") or {}), timeout=30)
    last = cstatus(p, "main")["lastState"]["terminated"]
    assert last["exitCode"] == 1 and last.get("message", "").startswith("run "), last
