"""Flow control of pod streams over an agent's link (minik.client.window), against real processes:
a server and one `minik agent` in its own network namespace (test_join.py's `cluster()`).

A pod on the agent streams far more than the window (kubectl exec of a big output, and an HTTP
download through kubectl port-forward) to readers that pause: the server's RSS stays bounded,
other calls over the same link still answer promptly, and once the readers resume every byte
arrives intact. Stdin towards the pod (the other direction) arrives intact too.
"""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time

from tests.e2e.minikd import KUBECTL, free_port
from tests.e2e.test_join import Cluster, _pod, _wait, cluster

import pytest

pytestmark = pytest.mark.e2e

LINE = b"abcdefghijklmnopqrstuvwxyz0123456789\n"       # what `yes <letters>` prints, 37 bytes a line
EXEC_BYTES = 150_000_000
HTTP_BYTES = 64_000_000
PAUSE = 8.0
RSS_GROWTH_LIMIT = 30 * 1024 * 1024


def _pattern_sha(n: int) -> str:
    h = hashlib.sha256()
    block = LINE * 8192
    while n >= len(block):
        h.update(block)
        n -= len(block)
    h.update((LINE * (n // len(LINE) + 1))[:n])
    return h.hexdigest()


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _running(c: Cluster, name: str) -> None:
    _wait(lambda: json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)["status"].get("phase") == "Running",
          f"pod {name} running", timeout=120, detail=lambda: c.kubectl("describe", "pod", name, check=False).stdout)


def _timed(c: Cluster, *args: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.monotonic()
    r = c.kubectl(*args, check=False, timeout=60)
    return time.monotonic() - t, r


def test_slow_readers_of_pod_streams_on_an_agent_bound_server_memory_and_stall_only_their_stream() -> None:
    with cluster(1) as c:
        a = c.agents[0]
        c.wait_ready(a.name)
        letters = LINE.strip().decode()
        web = _pod("flow-src", a.name, f"mkdir -p /www && yes {letters} | head -c {HTTP_BYTES} > /www/big && "
                                       "echo ok > /www/small && exec httpd -f -p 8080 -h /www")
        other = _pod("flow-other", a.name, "echo hello-from-other; sleep 3600")
        for p in (web, other):
            c.kubectl("create", "-f", "-", input=json.dumps(p))
        _running(c, "flow-src")
        _running(c, "flow-other")
        _wait(lambda: "hello-from-other" in c.kubectl("logs", "flow-other", check=False).stdout, "logs of flow-other")

        # The other direction: 20 MB of stdin through the link reach the pod intact.
        stdin_bytes = 20_000_000
        ex = subprocess.run([KUBECTL, "--kubeconfig", c.server.kubeconfig, "exec", "-i", "flow-other", "--",
                             "busybox", "sha256sum"], input=(LINE * (stdin_bytes // len(LINE) + 1))[:stdin_bytes],
                            capture_output=True, timeout=180)
        assert ex.returncode == 0, ex.stderr
        assert ex.stdout.split()[0].decode() == _pattern_sha(stdin_bytes)

        local = free_port()
        pf = subprocess.Popen([KUBECTL, "--kubeconfig", c.server.kubeconfig, "port-forward", "pod/flow-src",
                               f"{local}:8080"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        execp: subprocess.Popen[bytes] | None = None
        sock: socket.socket | None = None
        try:
            def small() -> bool:
                try:
                    with socket.create_connection(("127.0.0.1", local), timeout=5) as s:
                        s.sendall(b"GET /small HTTP/1.0\r\n\r\n")
                        return b"ok" in s.recv(4096) + s.recv(4096)
                except OSError:
                    return False
            _wait(small, "port-forward to the pod on the agent", timeout=90)
            # Two slow readers: an HTTP download through port-forward and a big exec output.
            sock = socket.create_connection(("127.0.0.1", local), timeout=60)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            sock.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            first = sock.recv(64 * 1024)
            assert first.startswith(b"HTTP/1.1 200") or first.startswith(b"HTTP/1.0 200"), first[:200]
            execp = subprocess.Popen([KUBECTL, "--kubeconfig", c.server.kubeconfig, "exec", "flow-src", "--", "sh", "-c",
                                      f"yes {letters} | head -c {EXEC_BYTES}"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert execp.stdout is not None
            exec_first = execp.stdout.read(64 * 1024)
            assert exec_first == (LINE * 2000)[:len(exec_first)]
            pid = c.server.proc.pid if c.server.proc is not None else 0
            time.sleep(1.0)
            base = _rss(pid)
            peak = base
            deadline = time.monotonic() + PAUSE
            timings: dict[str, float] = {}
            while time.monotonic() < deadline:
                peak = max(peak, _rss(pid))
                if "exec" not in timings:
                    took, r = _timed(c, "exec", "flow-other", "--", "echo", "quick")
                    assert r.returncode == 0 and r.stdout.strip() == "quick", r.stderr
                    timings["exec"] = took
                elif "logs" not in timings:
                    took, r = _timed(c, "logs", "flow-other")
                    assert "hello-from-other" in r.stdout, r.stderr
                    timings["logs"] = took
                time.sleep(0.2)
            print(f"server RSS {base / 2**20:.1f} MiB -> peak {peak / 2**20:.1f} MiB while readers paused; "
                  f"other calls over the link: {timings}")
            assert peak - base < RSS_GROWTH_LIMIT, (base, peak)
            # Loaded shared machine: "a couple of seconds" with headroom; unbounded buffering or a
            # blocked link reader would show as a timeout here, not as 5 s.
            assert timings["exec"] < 10 and timings["logs"] < 10, timings

            # Resume: every byte arrives, in order.
            got = bytearray(first)
            while chunk := sock.recv(1 << 20):
                got += chunk
            head, _, body = bytes(got).partition(b"\r\n\r\n")
            assert len(body) == HTTP_BYTES, (len(body), head)
            assert hashlib.sha256(body).hexdigest() == _pattern_sha(HTTP_BYTES)
            h = hashlib.sha256(exec_first)
            n = len(exec_first)
            while chunk := execp.stdout.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
            assert execp.wait(60) == 0, execp.stderr.read() if execp.stderr else b""
            assert n == EXEC_BYTES and h.hexdigest() == _pattern_sha(EXEC_BYTES), n
        finally:
            if sock is not None:
                sock.close()
            for p in (execp, pf):
                if p is not None and p.poll() is None:
                    p.terminate()
                    p.wait(10)
