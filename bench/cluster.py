"""Multi-node benchmark: a server and two joined agents (network namespaces, as tests/e2e/test_join.py).

Prints, each against a baseline measured in the same run:
- join time: agent process start → its Node Ready (aim ≤ 3 s);
- pod start latency (create → Running, median of N) on an agent vs on the server's own node (aim ≤ 1.1x);
- pod-to-pod throughput (an HTTP download of 256 MiB through busybox) across nodes over the overlay
  vs between two pods on the same node (aim ≥ 0.9 with VXLAN, ≥ 0.97 host-gw);
- RSS of an idle agent vs the server (aim ≤ 60 MB for the agent).

    sudo python bench/cluster.py [--backend vxlan|host-gw] [--n 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/ itself is not a package root: its secrets.py would shadow the standard library's.
sys.path = [os.path.dirname(HERE), *(p for p in sys.path if os.path.abspath(p or ".") != HERE)]

from tests.e2e.test_join import Cluster, _pod, _wait, cluster  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def phase(c: Cluster, name: str) -> str:
    # Straight to the API (a kubectl process per poll would cost ~100 ms of resolution).
    code, pod = c.server.raw_json("GET", f"/api/v1/namespaces/default/pods/{name}")
    return str(((pod or {}).get("status") or {}).get("phase", "")) if code == 200 else ""


def node_ready(c: Cluster, name: str) -> bool:
    code, node = c.server.raw_json("GET", f"/api/v1/nodes/{name}")
    conds = ((node or {}).get("status") or {}).get("conditions") or [] if code == 200 else []
    return any(x.get("type") == "Ready" and x.get("status") == "True" for x in conds)


def started_ago(pid: int) -> float:
    """Seconds since process `pid` started (its start time in /proc, in clock ticks since boot)."""
    with open(f"/proc/{pid}/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")


def join_times(c: Cluster, timeout: float = 120) -> list[float]:
    """Each agent's process start → its Node Ready, polled every 20 ms."""
    joined: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    while len(joined) < len(c.agents) and time.monotonic() < deadline:
        for a in c.agents:
            if a.name not in joined and a.proc is not None and node_ready(c, a.name):
                joined[a.name] = started_ago(a.proc.pid)
        time.sleep(0.02)
    for a in c.agents:
        if a.name not in joined:
            c.wait_ready(a.name, timeout=1)   # raises with both logs
    return [joined[a.name] for a in c.agents]


def pod_start(c: Cluster, node: str, n: int, tag: str) -> float:
    times = []
    for i in range(n):
        name = f"start-{tag}-{i}"
        t0 = time.monotonic()
        c.kubectl("create", "-f", "-", input=json.dumps(_pod(name, node, "sleep 3600")))
        _wait(lambda: phase(c, name) == "Running", f"{name} running", timeout=120, interval=0.02)
        times.append(time.monotonic() - t0)
        c.kubectl("delete", "pod", name, "--wait=false")
    return statistics.median(times)


GETS = 4    # downloads of the 256 MiB file per measurement, timed inside the client pod


def download(c: Cluster, client: str, ip: str) -> float:
    """MiB/s of GETS back-to-back downloads, timed in the pod from /proc/uptime (10 ms ticks over
    about a second of transfer), so neither kubectl exec nor the agent link is in the figure."""
    script = (f"t0=$(cut -d' ' -f1 /proc/uptime); n=0; for i in $(seq {GETS}); do "
              f"n=$((n + $(wget -qO- http://{ip}:8080/big | wc -c))); done; "
              f"t1=$(cut -d' ' -f1 /proc/uptime); echo $n $t0 $t1")
    r = c.kubectl("exec", client, "--", "sh", "-c", script, timeout=300)
    n, t0, t1 = r.stdout.split()
    assert int(n) == GETS * (256 << 20), r.stdout
    return GETS * 256 / max(float(t1) - float(t0), 0.01)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backend", default="vxlan", choices=["vxlan", "host-gw"])
    ap.add_argument("--n", type=int, default=5)
    args = ap.parse_args()
    with cluster(2, backend=("--pod-network-backend", args.backend)) as c:
        joins = join_times(c)
        print(f"join time (agent process start -> Node Ready): {', '.join(f'{j:.2f}s' for j in joins)} "
              "(aim <= 3 s; includes its containerd's start)")
        a, b = c.agents
        server_node = c.net.node_name
        pod_start(c, a.name, 1, "warm-a")
        pod_start(c, server_node, 1, "warm-s")
        on_agent = pod_start(c, a.name, args.n, "a")
        on_server = pod_start(c, server_node, args.n, "s")
        print(f"pod start median: agent {on_agent * 1000:.0f} ms, server node {on_server * 1000:.0f} ms, "
              f"ratio {on_agent / on_server:.2f}x (aim <= 1.1x)")
        serve = "mkdir -p /www && dd if=/dev/zero of=/www/big bs=1048576 count=256 2>/dev/null && exec httpd -f -p 8080 -h /www"
        for name, node, script in (("srv-b", b.name, serve), ("cli-a", a.name, "sleep 3600"), ("cli-b", b.name, "sleep 3600")):
            c.kubectl("create", "-f", "-", input=json.dumps(_pod(name, node, script)))
        for name in ("srv-b", "cli-a", "cli-b"):
            _wait(lambda: phase(c, name) == "Running", name, timeout=120)
        ip = json.loads(c.kubectl("get", "pod", "srv-b", "-o", "json").stdout)["status"]["podIP"]
        _wait(lambda: c.kubectl("exec", "cli-b", "--", "sh", "-c", f"wget -qO- http://{ip}:8080/big | wc -c", check=False).stdout.strip() == str(256 << 20),
              "server pod serving", timeout=60)
        # Interleaved rounds (the order alternating), so machine noise hits both alike; the ratio
        # is the median of the per-round ratios.
        rounds = []
        for r in range(5):
            order = ("cli-b", "cli-a") if r % 2 == 0 else ("cli-a", "cli-b")
            got = {client: download(c, client, ip) for client in order}
            rounds.append((got["cli-b"], got["cli-a"]))
        same = statistics.median(s for s, _ in rounds)
        cross = statistics.median(x for _, x in rounds)
        ratio = statistics.median(x / s for s, x in rounds)
        print(f"pod-to-pod throughput: cross-node ({args.backend}) {cross:.0f} MiB/s, same node {same:.0f} MiB/s, "
              f"ratio {ratio:.2f} (per-round {', '.join(f'{x / s:.2f}' for s, x in rounds)}; "
              f"aim >= {0.9 if args.backend == 'vxlan' else 0.97})")
        for name in ("srv-b", "cli-a", "cli-b"):
            c.kubectl("delete", "pod", name, "--wait=false")
        time.sleep(20)
        assert a.proc is not None and c.server.proc is not None
        print(f"idle RSS: agent {rss_mb(a.proc.pid):.0f} MB (aim <= 60 MB), server with its node {rss_mb(c.server.proc.pid):.0f} MB")


if __name__ == "__main__":
    main()
