"""Pods on a real node, end to end: the node-agent issue's acceptance scenarios through kubectl.

One agent-enabled `minik server` per module (containerd over CRI, pod network, `busybox` pulled
through a docker.io mirror from a local registry); every test works in a namespace of its own.
Kubelet's real back-offs apply (10 s crash-loop base), so waits are bounded, not tight.
Node-level scenarios (Ready node, kill -9 of minik, containerd crash) are in test_node.py.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import time

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, condition, cstatus, pod, state_of
from tests.e2e.minikd import KUBECTL, Minik, free_port
from tests.support.polling import eventually, http_get

pytestmark = pytest.mark.e2e

HTTPD = "mkdir -p /www && echo {text} > /www/index.html && exec httpd -f -p {port} -h /www"


# ---- 2. networking ----------------------------------------------------------------------------

def test_httpd_reachable_on_pod_ip_from_host_and_pod(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "web")
    ns.create(pod("web", [bb("web", HTTPD.format(text="hello-minik", port=8080), ports=[{"containerPort": 8080}])]),
              pod("other", [bb("main", "exec sleep 3600")]))
    web = ns.wait("web")
    ns.wait("other")
    ip = web["status"]["podIP"]
    assert ip and web["status"]["hostIP"]
    assert eventually(lambda: "hello-minik" in http_get(f"http://{ip}:8080/"))
    out = ns.exec("other", "sh", "-c", f"timeout 5 wget -qO- http://{ip}:8080/").stdout
    assert out == "hello-minik\n"
    wide = ns.kubectl("get", "pod", "web", "-o", "wide").stdout
    assert ip in wide and "Running" in wide


# ---- 3. multi-container pod -------------------------------------------------------------------

def test_multi_container_shares_localhost_and_empty_dir(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "duo")
    fetch = ("until timeout 2 wget -q -O /shared/got http://127.0.0.1:8081/; do sleep 0.2; done; "
             "exec sleep 3600")
    ns.create(pod("duo", [
        bb("server", HTTPD.format(text="from-server", port="127.0.0.1:8081")),
        bb("client", fetch, volumeMounts=[{"name": "shared", "mountPath": "/shared"}]),
        bb("reader", "exec sleep 3600", volumeMounts=[{"name": "shared", "mountPath": "/data", "readOnly": True}]),
    ], volumes=[{"name": "shared", "emptyDir": {}}]))
    ns.wait("duo")
    assert eventually(lambda: ns.exec("duo", "cat", "/data/got", container="reader").stdout == "from-server\n")
    denied = ns.exec("duo", "touch", "/data/x", container="reader", check=False)
    assert denied.returncode != 0  # the reader's mount is read-only
    assert "server client reader" in ns.kubectl("get", "pod", "duo", "-o",
                                               "jsonpath={.spec.containers[*].name}").stdout


# ---- 4. init containers -----------------------------------------------------------------------

def test_init_containers_run_in_order(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "init")
    work = [{"name": "w", "mountPath": "/work"}]
    ns.create(pod("inits", [bb("main", "cat /work/log; exec sleep 3600", volumeMounts=work)],
                  initContainers=[bb("first", "sleep 0.5; echo first >> /work/log", volumeMounts=work),
                                  bb("second", "echo second >> /work/log", volumeMounts=work)],
                  volumes=[{"name": "w", "emptyDir": {}}]))
    p = ns.wait("inits")
    assert condition(p, "Initialized") == "True"
    for name in ("first", "second"):
        term = cstatus(p, name, init=True)["state"]["terminated"]
        assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert eventually(lambda: ns.kubectl("logs", "inits", "-c", "main").stdout == "first\nsecond\n")
    first_done = cstatus(p, "first", init=True)["state"]["terminated"]["finishedAt"]
    second_started = cstatus(p, "second", init=True)["state"]["terminated"]["startedAt"]
    assert first_done <= second_started


# ---- 5. configuration -------------------------------------------------------------------------

def _edit_configmap(ns: Ns, name: str, old: str, new: str) -> None:
    """`kubectl edit` with a non-interactive editor (a script that rewrites the buffer)."""
    editor = os.path.join(ns.m.root, f"editor-{ns.name}.sh")
    with open(editor, "w", encoding="utf-8") as f:
        f.write(f"#!/bin/sh\nsed -i 's/{old}/{new}/' \"$1\"\n")
    os.chmod(editor, 0o755)
    ns.kubectl("edit", "configmap", name, env={"KUBE_EDITOR": editor, "EDITOR": editor})


def test_env_and_volumes_from_configmap_and_secret(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "cfg")
    ns.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hi", "--from-literal=mode=fast")
    ns.kubectl("create", "secret", "generic", "sec", "--from-literal=password=s3cret", "--from-literal=user=admin")
    ns.create(pod("envy", [bb(
        "main", "exec sleep 3600",
        env=[{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
             {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "COMBINED", "value": "$(GREETING)-$(POD_NAME)"}],
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}, {"secretRef": {"name": "sec"}}],
        volumeMounts=[{"name": "c", "mountPath": "/etc/cfg"}, {"name": "s", "mountPath": "/etc/sec"}])],
        volumes=[{"name": "c", "configMap": {"name": "cfg"}}, {"name": "s", "secret": {"secretName": "sec"}}]))
    ns.wait("envy")
    env = dict(line.split("=", 1) for line in ns.exec("envy", "env").stdout.splitlines() if "=" in line)
    assert (env["GREETING"], env["PASSWORD"], env["POD_NAME"], env["COMBINED"]) == ("hi", "s3cret", "envy", "hi-envy")
    assert (env["CFG_greeting"], env["CFG_mode"], env["user"], env["password"]) == ("hi", "fast", "admin", "s3cret")
    assert ns.exec("envy", "cat", "/etc/cfg/greeting", "/etc/cfg/mode").stdout == "hifast"
    assert ns.exec("envy", "cat", "/etc/sec/password").stdout == "s3cret"

    _edit_configmap(ns, "cfg", "mode: fast", "mode: slow")
    ns.kubectl("patch", "configmap", "cfg", "-p", '{"data":{"greeting":"hello again"}}')
    ns.kubectl("patch", "secret", "sec", "-p", '{"data":{"password":"%s"}}' % base64.b64encode(b"n3w").decode())
    assert eventually(lambda: ns.exec("envy", "cat", "/etc/cfg/greeting", "/etc/cfg/mode").stdout
                      == "hello againslow", timeout=30)
    assert eventually(lambda: ns.exec("envy", "cat", "/etc/sec/password").stdout == "n3w", timeout=30)
    # Environment variables are fixed when the container starts.
    assert "GREETING=hi\n" in ns.exec("envy", "env").stdout


# ---- 6. crash loop ----------------------------------------------------------------------------

def test_crash_loop_back_off_grows_and_previous_logs(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "crash")
    # Each instance numbers itself through the emptyDir (it outlives containers) and lives 2 s,
    # long enough to read `logs --previous` while the next one runs.
    script = ("n=$(cat /d/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /d/n; "
              "echo attempt-$n; sleep 2; exit 3")
    ns.create(pod("crash", [bb("main", script, volumeMounts=[{"name": "d", "mountPath": "/d"}])],
                  volumes=[{"name": "d", "emptyDir": {}}]))
    delays: list[str] = []

    def note_back_off(p: Obj) -> None:
        waiting = state_of(p, "main").get("waiting") or {}
        if waiting.get("reason") == "CrashLoopBackOff":
            m = re.match(r"back-off (\S+) restarting failed container", waiting.get("message", ""))
            assert m, waiting
            if not delays or delays[-1] != m.group(1):
                delays.append(m.group(1))

    def third_instance_running(p: Obj) -> bool:
        note_back_off(p)
        return cstatus(p, "main").get("restartCount", 0) == 2 and "running" in state_of(p, "main")

    # Kubelet's policy: restart at once, then wait 10 s, then 20 s (…up to 5 min).
    ns.wait("crash", third_instance_running, timeout=40, interval=0.1)
    previous = ns.kubectl("logs", "crash", "--previous").stdout
    current = ns.kubectl("logs", "crash").stdout
    assert (previous, current) == ("attempt-2\n", "attempt-3\n")

    def second_back_off(p: Obj) -> bool:
        note_back_off(p)
        return len(delays) >= 2

    p = ns.wait("crash", second_back_off, timeout=20, interval=0.1)
    assert delays[:2] == ["10s", "20s"], delays
    st = cstatus(p, "main")
    assert st["restartCount"] == 2
    assert (st["lastState"]["terminated"]["exitCode"], st["lastState"]["terminated"]["reason"]) == (3, "Error")
    assert "CrashLoopBackOff" in ns.kubectl("get", "pod", "crash").stdout
    back_off = [e for e in ns.events("crash") if e["reason"] == "BackOff"]
    assert back_off and "Back-off restarting failed container" in back_off[0]["message"]


# ---- 7. liveness ------------------------------------------------------------------------------

def test_liveness_probe_failure_restarts_container(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "live")
    ns.create(pod("live", [bb("main", "touch /tmp/healthy; sleep 3; rm /tmp/healthy; exec sleep 3600",
                              livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]},
                                             "periodSeconds": 1, "failureThreshold": 1})]))
    ns.wait("live")
    p = ns.wait("live", lambda p: cstatus(p, "main").get("restartCount", 0) >= 1, timeout=30)
    assert cstatus(p, "main")["lastState"]["terminated"]["exitCode"] in (137, 143)
    unhealthy = [e for e in ns.events("live") if e["reason"] == "Unhealthy"]
    assert unhealthy and "Liveness probe failed" in unhealthy[0]["message"], ns.event_lines()
    assert any(e["reason"] == "Killing" for e in ns.events("live"))


# ---- 8. readiness -----------------------------------------------------------------------------

def test_readiness_gates_ready_condition(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "ready")
    ns.create(pod("r", [bb("main", "sleep 4; touch /tmp/ready; exec sleep 3600",
                           readinessProbe={"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1})]))
    p = ns.wait("r", lambda p: "running" in state_of(p, "main"))
    assert condition(p, "Ready") == "False" and cstatus(p, "main")["ready"] is False
    assert "0/1" in ns.kubectl("get", "pod", "r").stdout
    ns.kubectl("wait", "--for=condition=Ready", "pod/r", "--timeout=30s")
    ready = ns.get("r")
    assert condition(ready, "ContainersReady") == "True" and cstatus(ready, "main")["ready"] is True
    assert cstatus(ready, "main")["restartCount"] == 0


# ---- 9. memory limit --------------------------------------------------------------------------

def test_memory_limit_oom_killed(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "oom")
    # The shell doubles a string until it passes the 20 MiB limit. (busybox `tail` of a
    # newline-free stream does not buffer it all: `head -c 100m /dev/zero | tail` survives.)
    grow = "x=0123456789abcdef; while true; do x=$x$x; done"
    ns.create(pod("oom", [bb("main", grow,
                             resources={"limits": {"memory": "20Mi"}})], restartPolicy="Never"))
    p = ns.wait("oom", lambda p: "terminated" in state_of(p, "main") or
                "terminated" in (cstatus(p, "main").get("lastState") or {}), timeout=60)
    term = state_of(p, "main").get("terminated") or cstatus(p, "main")["lastState"]["terminated"]
    assert term["reason"] == "OOMKilled", term
    assert term["exitCode"] == 137
    assert ns.wait("oom", lambda p: p["status"]["phase"] == "Failed")


# ---- 10. exec, tty, cp, port-forward ----------------------------------------------------------

def test_exec_tty_cp_and_port_forward(node_minik: Minik) -> None:
    m = node_minik
    ns = Ns.make(m, "tools")
    ns.create(pod("tools", [bb("main", HTTPD.format(text="through-the-tunnel", port=8080))]))
    ns.wait("tools")
    r = ns.exec("tools", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (r.returncode, r.stdout) == (3, "out\n") and "err" in r.stderr
    assert ns.kubectl("exec", "-i", "tools", "--", "cat", input="piped\n").stdout == "piped\n"

    # -it needs a terminal on kubectl's side: `script` gives it one.
    cmd = (f"{KUBECTL} --kubeconfig {m.kubeconfig} --cache-dir {m.root}/kcache-tty -n {ns.name} "
           "exec -it tools -- sh -c 'tty; exit 4'")
    t = subprocess.run(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    assert t.returncode == 4, (t.stdout, t.stderr)
    assert "/dev/pts/" in t.stdout

    src = os.path.join(m.root, f"payload-{ns.name}.bin")
    payload = os.urandom(200_000)
    with open(src, "wb") as f:
        f.write(payload)
    ns.kubectl("cp", src, "tools:/tmp/payload.bin")
    assert ns.exec("tools", "wc", "-c", "/tmp/payload.bin").stdout.split()[0] == "200000"
    back = src + ".back"
    ns.kubectl("cp", "tools:/tmp/payload.bin", back)
    with open(back, "rb") as f:
        assert f.read() == payload

    local = free_port()
    env = dict(os.environ, KUBECONFIG=m.kubeconfig)
    pf = subprocess.Popen([KUBECTL, f"--cache-dir={m.root}/kcache-pf", "-n", ns.name, "port-forward",
                           "pod/tools", f"{local}:8080"], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    try:
        assert pf.stdout is not None
        assert "Forwarding from" in pf.stdout.readline()
        for _ in range(2):  # two connections over one session
            assert http_get(f"http://127.0.0.1:{local}/") == "through-the-tunnel\n"
    finally:
        pf.terminate()
        pf.wait(10)


# ---- 11. logs -f ------------------------------------------------------------------------------

def test_logs_follow_returns_when_container_exits(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "logs")
    ns.create(pod("ticker", [bb("main", "for i in 1 2 3 4; do echo tick$i; sleep 1; done")], restartPolicy="Never"))
    ns.wait("ticker")
    started = time.monotonic()
    r = ns.kubectl("logs", "-f", "ticker", timeout=30)
    assert r.stdout == "tick1\ntick2\ntick3\ntick4\n"
    assert time.monotonic() - started < 15
    assert ns.wait("ticker", lambda p: p["status"]["phase"] == "Succeeded")


# ---- 12. graceful deletion --------------------------------------------------------------------

def test_delete_runs_pre_stop_and_honours_grace_period(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "bye")
    mark = os.path.join(node_minik.root, f"mark-{ns.name}")
    ns.create(pod("bye", [bb(
        "main", "trap '' TERM; while true; do sleep 1; done",
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /mark/prestop; sleep 1"]}}},
        volumeMounts=[{"name": "mark", "mountPath": "/mark"}])],
        volumes=[{"name": "mark", "hostPath": {"path": mark, "type": "DirectoryOrCreate"}}],
        terminationGracePeriodSeconds=5))
    ns.wait("bye")
    started = time.monotonic()
    ns.kubectl("delete", "pod", "bye", "--wait=true", timeout=60)
    took = time.monotonic() - started
    assert ns.get("bye") is None
    # SIGTERM is ignored, so the pod lives for the whole grace period (preStop included).
    assert 4.0 <= took < 15.0, took
    with open(os.path.join(mark, "prestop"), encoding="utf-8") as f:
        assert f.read() == "stopping\n"
    assert any(e["reason"] == "Killing" for e in ns.events("bye"))


# ---- 15. missing image ------------------------------------------------------------------------

def test_missing_image_err_image_pull_then_back_off(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "noimg")
    image = "busybox-does-not-exist:1.0"
    ns.create(pod("noimg", [{"name": "main", "image": image}]))
    seen: set[str] = set()

    def backing_off(p: Obj) -> bool:
        reason = str((state_of(p, "main").get("waiting") or {}).get("reason", ""))
        seen.add(reason)
        return reason == "ImagePullBackOff"

    p = ns.wait("noimg", backing_off, timeout=60, interval=0.05)
    assert "ErrImagePull" in seen or any(e["reason"] == "Failed" for e in ns.events("noimg")), seen
    assert p["status"]["phase"] == "Pending"
    assert image in (state_of(p, "main")["waiting"].get("message") or "")
    described = ns.kubectl("describe", "pod", "noimg").stdout
    assert "ImagePullBackOff" in described or "ErrImagePull" in described
    assert f'Failed to pull image "{image}"' in described, described
    assert any(e["reason"] == "BackOff" and image in e["message"] for e in ns.events("noimg"))
