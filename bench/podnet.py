"""Pod network benchmark (issue 11): cross-node vs same-node pod-to-pod in a netns lab.

Hosts are network namespaces joined by veths to a test switch (`tests/support/netlab.py`, the
same lab as tests/integration/test_overlay_netns.py); each host has a pod bridge with two pods, and the
overlay (`minik.net.overlay`) is reconciled in every host from Node objects exactly as the node
agent does it. Measured in the same run, for each backend (vxlan, host-gw):

  (a) baseline: same-node pod-to-pod TCP throughput (pod 0 → pod 1 on one host's bridge);
  (b) cross-node pod-to-pod TCP throughput (host 0's pod → host 1's pod through the overlay);
      ratio (b)/(a), medians of alternating (a)/(b) rounds so drift on a shared machine hits both;
  (c) the overlay's own cost: plan for 1,000 Nodes (pure), first reconcile of 100 remote Nodes into
      a host namespace, and the no-op reconcile the agent repeats every resync period;
  (d) with --rss: an agent-enabled `minik server` (the e2e harness) idle with
      `--pod-network-backend none` vs `vxlan` (device up, VTEP MAC published): the daemon's RSS.

Throughput is a Python stream (no iperf3 in Debian's base here): the sender `sendfile`s a 16 MiB
file from /dev/shm in a loop, the receiver `recv_into`s a 4 MiB buffer and counts --seconds from
the first byte; both run inside the pods' namespaces (`ip netns exec`). Every host shares this machine's kernel and CPUs,
so the ratio is the cost of the extra path (VXLAN encap/decap, routing between bridges), not of a
wire. Aims (issue 11): ≥ 0.9 with VXLAN, ≥ 0.97 with host-gw.

    python bench/podnet.py [--seconds 3] [--rounds 3] [--rss]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/ itself off the path: bench/secrets.py would shadow the standard library's `secrets`.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

from minik.net.overlay import NodeNet, Overlay, OverlaySettings, plan, vtep_mac  # noqa: E402
from tests.support.netlab import Lab, netlab  # noqa: E402

PORT = 5201

RECEIVER = textwrap.dedent("""
    import json, socket, sys, time
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1); seconds = float(sys.argv[2])
    print("ready", flush=True)
    c, _ = s.accept(); c.settimeout(10)
    buf = memoryview(bytearray(4 << 20)); n = 0; t0 = None; now = 0.0
    # Counts what arrives during `seconds` from the first byte, then hangs up (the sender stops
    # on the reset): the figure never waits on a FIN or on the sender's exit.
    while True:
        k = c.recv_into(buf)
        now = time.monotonic()
        if t0 is None:
            t0 = now
        n += k
        if not k or now - t0 >= seconds:
            break
    print(json.dumps({"bytes": n, "seconds": now - (t0 or now)}), flush=True)
""")

SENDER = textwrap.dedent("""
    import socket, sys, time
    host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    c = socket.create_connection((host, port), timeout=10)
    end = time.monotonic() + 120
    with open(path, "rb") as f:
        try:
            while time.monotonic() < end:
                f.seek(0)
                c.sendfile(f)
        except OSError:
            pass   # the receiver hung up: done
""")


def stream(lab: Lab, src_ns: str, dst_ns: str, dst_ip: str, seconds: float, blob: str) -> float:
    """Bytes per second from `src_ns` to `dst_ip` (in `dst_ns`), as the receiver counted them."""
    rx = subprocess.Popen(["ip", "netns", "exec", dst_ns, sys.executable, "-c", RECEIVER, str(PORT), str(seconds)],
                          stdout=subprocess.PIPE, text=True)
    tx: subprocess.Popen[bytes] | None = None
    try:
        assert rx.stdout is not None and rx.stdout.readline().strip() == "ready"
        tx = subprocess.Popen(["ip", "netns", "exec", src_ns, sys.executable, "-c", SENDER, dst_ip, str(PORT), blob])
        out, _ = rx.communicate(timeout=seconds + 60)
        r = json.loads(out.strip().splitlines()[-1])
        return float(r["bytes"]) / max(float(r["seconds"]), 1e-9)
    finally:
        for p in (rx, tx):
            if p is not None and p.poll() is None:
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def throughput(lab: Lab, backend: str, seconds: float, rounds: int, blob: str) -> tuple[float, float]:
    a, b = lab.hosts
    for h in lab.hosts:
        asyncio.run(lab.reconcile(h, backend, lab.hosts))
    assert lab.ping(a.pod_ns, b.pod_ip), f"{backend}: pods cannot reach each other across hosts"
    same: list[float] = []
    cross: list[float] = []
    for i in range(rounds):
        # Alternate which side goes first, so a burst of load elsewhere does not favour one side.
        order = [("same", a.pod_nses[1], a.pod_ip_of(1)), ("cross", b.pod_ns, b.pod_ip)]
        for kind, dst_ns, dst_ip in (order if i % 2 == 0 else order[::-1]):
            bps = stream(lab, a.pod_ns, dst_ns, dst_ip, seconds, blob)
            print(f"  {backend} round {i + 1} {kind}-node: {bps * 8 / 1e9:.2f} Gbit/s", file=sys.stderr, flush=True)
            (same if kind == "same" else cross).append(bps)
    return statistics.median(same), statistics.median(cross)


def overlay_cost(lab: Lab) -> tuple[float, float, float]:
    """Plan for 1,000 Nodes (s), first reconcile of 100 remote Nodes (s), a no-op reconcile (s)."""
    cluster = ipaddress.IPv4Network("10.0.0.0/8")
    settings = OverlaySettings(device=lab.device, cluster_cidr=cluster)
    host = lab.hosts[0]
    local = NodeNet(host.name, ipaddress.IPv4Address(host.ip), ipaddress.IPv4Network("10.0.0.0/24"), vtep_mac(host.name))

    def nodes(n: int) -> list[NodeNet]:
        # Remote VTEPs on the host's own underlay subnet (never contacted: nothing is sent).
        base = ipaddress.IPv4Address(host.ip)
        return [NodeNet(f"n{i}", ipaddress.IPv4Address(int(base) + 1000 + i), ipaddress.IPv4Network(f"10.{1 + i // 256}.{i % 256}.0/24"),
                        vtep_mac(f"n{i}")) for i in range(n)]

    big = nodes(1000)
    t = time.perf_counter()
    for _ in range(10):
        plan(settings, local, big)
    plan_s = (time.perf_counter() - t) / 10
    desired = plan(settings, local, nodes(100))

    async def go() -> tuple[float, float]:
        overlay = Overlay(settings, netns=host.netns_path)
        try:
            t0 = time.perf_counter()
            await overlay.reconcile(desired)
            first = time.perf_counter() - t0
            times = []
            for _ in range(5):
                t0 = time.perf_counter()
                changes = await overlay.reconcile(desired)
                times.append(time.perf_counter() - t0)
                assert changes.empty
            await overlay.teardown()
            return first, statistics.median(times)
        finally:
            await overlay.close()

    first, noop = asyncio.run(go())
    return plan_s, first, noop


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def daemon_rss(idle: float) -> dict[str, float]:
    """Idle RSS (MB) of a node server per backend, each started fresh."""
    from tests.e2e.agent_fixtures import node_server, seed_registry
    from tests.support.registry import LocalRegistry
    out: dict[str, float] = {}
    reg = LocalRegistry().start()
    try:
        seed_registry(reg)
        for backend in ("none", "vxlan"):
            with node_server(reg.host, ["--pod-network-backend", backend]) as (m, net):
                if backend == "vxlan":
                    deadline = time.monotonic() + 60
                    while subprocess.run(["ip", "link", "show", net.vxlan_device], capture_output=True).returncode != 0:
                        assert time.monotonic() < deadline, "the VXLAN device never came up"
                        time.sleep(0.2)
                time.sleep(idle)
                assert m.proc is not None
                out[backend] = rss_mb(m.proc.pid)
    finally:
        reg.stop()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0, help="length of one throughput stream")
    ap.add_argument("--rounds", type=int, default=3, help="alternating same/cross-node rounds per backend")
    ap.add_argument("--rss", action="store_true", help="also measure a node server's idle RSS with and without the overlay")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    blob = f"/dev/shm/minik-bench-{os.getpid()}"
    with open(blob, "wb") as f:
        f.write(os.urandom(16 << 20))
    try:
        with netlab(hosts=2, pods=2) as lab:
            results = {backend: throughput(lab, backend, args.seconds, args.rounds, blob) for backend in ("vxlan", "host-gw")}
            plan_s, first, noop = overlay_cost(lab)
    finally:
        os.unlink(blob)
    rss = daemon_rss(idle=10.0) if args.rss else {}
    print(f"minik pod network across nodes: TCP throughput pod → pod, medians of {args.rounds} rounds of {args.seconds:g} s "
          f"(hosts are network namespaces on one kernel)")
    print(f"{'backend':<10}{'same-node Gbit/s':>18}{'cross-node Gbit/s':>19}{'ratio':>8}{'aim':>7}")
    for backend, (same, cross) in results.items():
        aim = 0.9 if backend == "vxlan" else 0.97
        print(f"{backend:<10}{same * 8 / 1e9:>18.2f}{cross * 8 / 1e9:>19.2f}{cross / same:>8.3f}{aim:>7}")
    print(f"overlay: plan for 1,000 nodes {plan_s * 1000:.1f} ms; reconcile of 100 remote nodes: "
          f"first {first * 1000:.1f} ms, no-op (each resync) {noop * 1000:.1f} ms")
    if rss:
        print(f"node server idle RSS: {rss['none']:.1f} MB with --pod-network-backend none, {rss['vxlan']:.1f} MB with vxlan "
              f"({rss['vxlan'] - rss['none']:+.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
