"""Port-forward throughput to a pod on a joined agent (through the link's flow-controlled pod
streams, minik.client.window) against the baseline measured in the same run: the same download
through port-forward to a pod on the server's own node (no link). A server and one agent in a
network namespace, as tests/e2e/test_join.py.

Prints MB/s for each (median of --n downloads of --mib MiB through `kubectl port-forward`, taken
alternately), the ratio agent/local (aim ≥ 0.9: the window must not cost throughput), and the
server's RSS before and at its peak during the agent downloads.

    sudo python bench/portforward.py [--n 3] [--mib 128]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/ itself is not a package root: its secrets.py would shadow the standard library's.
sys.path = [os.path.dirname(HERE), *(p for p in sys.path if os.path.abspath(p or ".") != HERE)]

from tests.e2e.minikd import KUBECTL, free_port  # noqa: E402
from tests.e2e.test_join import Cluster, _pod, _wait, cluster  # noqa: E402


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def get(port: int, path: str) -> int:
    """Bytes of the HTTP body of GET path (HTTP/1.0: the server closes at the end)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\n\r\n".encode())
        n, head = 0, b""
        while chunk := s.recv(1 << 20):
            if not head:
                head = chunk
                n += len(chunk) - (chunk.index(b"\r\n\r\n") + 4)
            else:
                n += len(chunk)
        return n


def forward(c: Cluster, pod: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    p = subprocess.Popen([KUBECTL, "--kubeconfig", c.server.kubeconfig, "port-forward", f"pod/{pod}", f"{port}:8080"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def ready() -> bool:
        try:
            return get(port, "/small") == 3
        except OSError:
            return False
    _wait(ready, f"port-forward to {pod}", timeout=90)
    return p, port


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--mib", type=int, default=128)
    args = ap.parse_args()
    size = args.mib << 20
    script = (f"mkdir -p /www && head -c {size} /dev/zero > /www/big && echo ok > /www/small && "
              "exec httpd -f -p 8080 -h /www")
    with cluster(1) as c:
        a = c.agents[0]
        c.wait_ready(a.name)
        pods = {"local": ("pf-local", c.net.node_name), "agent": ("pf-agent", a.name)}
        for name, node in pods.values():
            c.kubectl("create", "-f", "-", input=json.dumps(_pod(name, node, script)))
        for name, _ in pods.values():
            _wait(lambda: json.loads(c.kubectl("get", "pod", name, "-o", "json").stdout)["status"].get("phase") == "Running",
                  f"{name} running", timeout=180)
        fwd = {k: forward(c, name) for k, (name, _) in pods.items()}
        pid = c.server.proc.pid if c.server.proc is not None else 0
        base_rss, peak = rss(pid), [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], rss(pid))
                time.sleep(0.1)
        speeds: dict[str, list[float]] = {"local": [], "agent": []}
        try:
            get(fwd["local"][1], "/big")   # warm-up (page cache, first stream)
            get(fwd["agent"][1], "/big")
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            for _ in range(args.n):
                for k in ("local", "agent"):
                    t0 = time.monotonic()
                    n = get(fwd[k][1], "/big")
                    dt = time.monotonic() - t0
                    assert n == size, (k, n)
                    speeds[k].append(size / dt / 1e6)
        finally:
            stop.set()
            for p, _ in fwd.values():
                p.terminate()
                p.wait(10)
        loc, ag = statistics.median(speeds["local"]), statistics.median(speeds["agent"])
        print(f"port-forward download of {args.mib} MiB, median of {args.n}:")
        print(f"  to a pod on the server's node (baseline): {loc:.1f} MB/s  {[round(s, 1) for s in speeds['local']]}")
        print(f"  to a pod on a joined agent (link):        {ag:.1f} MB/s  {[round(s, 1) for s in speeds['agent']]}")
        print(f"  ratio agent/local: {ag / loc:.2f}  (aim >= 0.9)")
        print(f"  server RSS: {base_rss / 2**20:.1f} MiB before, peak {peak[0] / 2**20:.1f} MiB during the downloads")


if __name__ == "__main__":
    main()
