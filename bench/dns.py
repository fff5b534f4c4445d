"""Cluster DNS benchmark: queries/s and latency percentiles of the daemon's DNS server, and the
daemon's idle RSS with and without DNS, in one run.

One agent-enabled `minik server` (harness from tests/e2e: its own containerd, bridge, nft table,
DNS IP on its own link, `--resolv-conf` naming a test resolver on a loopback address, so nothing
leaves the host) holding `--services` ClusterIP Services. A load generator in another process,
pinned to the other core when there are two (the daemon is pinned to the first), keeps
`--window` queries outstanding over UDP for `--seconds`:

  (a) baseline: a bare asyncio UDP echo server in Python (same load generator, same loopback):
      the ceiling of a Python event loop answering datagrams, with no DNS work at all;
  (b) a cluster name (`svc-7.default.svc.cluster.local A`);
  (c) an external name, cached after its first query (`www.example A`, forwarded upstream once).

Rows print q/s, p50/p99 latency and the ratio to (a), and the server's CPU time per query
(utime+stime over the row / answers): on a shared, loaded machine wall-clock rates and tails
measure everyone's processes, CPU per query mostly ours; 1e6 / that is the q/s one core could give.
Row (d) asks a different name every query (the uncached path: parse, zone lookup, render with
dnspython). Rows (b1)/(c1) repeat (b)/(c) with one query outstanding (latency without queueing). dnsperf, when installed, is run on (b)
too (its q/s; it reports no percentiles). Then the idle RSS of the daemon with DNS (after the
load: caches filled) and of a second daemon started with `--disable-dns`.

Fixed-rate rows come first (`--rate`, default 8,000 q/s, `--runs` times): an open-loop generator
sends each query at its time whatever the answers do, so a stall of the server delays every query
that arrives during it (a closed window would stop sending and count the stall once). Each run
has (a) the echo baseline, (b) the cluster name, (c) the cached external name and (e) the cluster
name while `--churn` ConfigMap writes/s go through the API, each with p50/p99/p99.9/max, the load
average before the row, and how late the generator itself sent (its p99): when the baseline or the
generator is late too, the tail is the machine's, not the daemon's. `--probe` starts the daemon
with `--loop-probe 1` and prints, per row, its loop lag, slowest callbacks (wall and CPU time: wall
far above CPU = the kernel ran someone else) and GC pauses, and the cost of one full collection.

    python bench/dns.py [--services 100] [--seconds 5] [--window 32] [--rate 8000 --runs 3 --churn 20]
                        [--only-rate] [--probe]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import select
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# This file is bench/dns.py: its own directory must not shadow dnspython's `dns` package.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != HERE]
sys.path.insert(0, os.path.dirname(HERE))

import dns.message  # noqa: E402
import yaml  # noqa: E402

from tests.e2e.agent_fixtures import node_server  # noqa: E402
from tests.e2e.minikd import Minik  # noqa: E402
from tests.support.dnsupstream import Upstream  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) >= 2:
        os.sched_setaffinity(pid, {cpu})


# ---- load generator (runs in its own process) ----------------------------------------------------

def _generate(host: str, port: int, wire: bytes | list[bytes], seconds: float, window: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    pin(0, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.settimeout(1.0)
    bodies = [w[2:] for w in (wire if isinstance(wire, list) else [wire])]
    count = len(bodies)
    sent: dict[int, float] = {}
    lat: list[float] = []
    lost = 0
    qid = 0
    clock = time.perf_counter

    def send() -> None:
        nonlocal qid
        qid = (qid + 1) & 0xFFFF
        sent[qid] = clock()
        sock.send(struct.pack("!H", qid) + bodies[qid % count])

    for _ in range(window):
        send()
    end = clock() + seconds
    while clock() < end:
        try:
            data = sock.recv(4096)
        except TimeoutError:
            lost += len(sent)
            sent.clear()
            for _ in range(window):
                send()
            continue
        t0 = sent.pop(struct.unpack("!H", data[:2])[0], None)
        if t0 is None:
            continue
        lat.append(clock() - t0)
        send()
    out.put((len(lat), seconds, sorted(lat), lost))


def _generate_rate(host: str, port: int, wire: bytes, seconds: float, rate: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    """Open loop: query i leaves at start + i/rate whatever the answers do (a closed window hides
    a stall: while the server is stuck, nobody sends, so the stall counts once, not once per query
    that would have arrived). Latency runs from the actual send to the answer; how late the
    generator itself sent (its own scheduling noise) is reported beside it."""
    pin(0, 1)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    body = wire[2:]
    total = int(seconds * rate)
    interval = 1.0 / rate
    sent: dict[int, float] = {}
    lat: list[float] = []
    late: list[float] = []
    clock = time.perf_counter
    start = clock() + 0.05
    i = 0
    while True:
        now = clock()
        while i < total and start + i * interval <= now:
            qid = i & 0xFFFF
            late.append(now - (start + i * interval))
            sent[qid] = clock()
            try:
                sock.send(struct.pack("!H", qid) + body)
            except BlockingIOError:
                pass
            i += 1
            now = clock()
        while True:
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                break
            t1 = clock()
            t0 = sent.pop(struct.unpack("!H", data[:2])[0], None)
            if t0 is not None:
                lat.append(t1 - t0)
        if i >= total and (not sent or clock() > start + seconds + 1.0):
            break
        wait = (start + i * interval - clock()) if i < total else 0.05
        if wait > 0:
            select.select([sock], [], [], wait)
    late.sort()
    out.put((len(lat), seconds, sorted(lat), total - len(lat), late[int(len(late) * 0.99)] if late else 0.0))


def load_rate(host: str, port: int, wire: bytes, seconds: float, rate: float,
              server_pid: int) -> tuple[float, float, float, float, float, int, float, float]:
    """(q/s answered, p50, p99, p99.9, max ms, lost, generator p99 lateness ms, server CPU µs/query)."""
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    p = mp.Process(target=_generate_rate, args=(host, port, wire, seconds, rate, q))
    cpu0 = cpu_seconds(server_pid)
    p.start()
    n, secs, lat, lost, late = q.get(timeout=seconds + 60)
    cpu = cpu_seconds(server_pid) - cpu0
    p.join()
    if not lat:
        return 0.0, *(4 * (float("nan"),)), lost, late * 1000, float("nan")  # type: ignore[return-value]

    def pct(x: float) -> float:
        return lat[min(len(lat) - 1, int(len(lat) * x))] * 1000

    return n / secs, pct(0.5), pct(0.99), pct(0.999), lat[-1] * 1000, lost, late * 1000, cpu / n * 1e6


class Churn:
    """API writes in the background while a row runs (`--churn` per second): ConfigMaps created
    and deleted through the API over new TLS connections, as kubectl does. The daemon's other
    work (API handlers, the store, watches, informers) then shares the event loop with DNS, and
    its garbage drives the collector: the loop lag and GC pauses a busy cluster adds to DNS."""

    def __init__(self, m: Minik, per_second: float) -> None:
        import threading
        self.m, self.interval = m, 1.0 / per_second
        self.stop = threading.Event()
        self.done = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        blob = "x" * 2048
        next_at = time.monotonic()
        while not self.stop.is_set():
            name = f"churn-{i}"
            self.m.raw_json("POST", "/api/v1/namespaces/default/configmaps",
                            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"churn": "1"}},
                             "data": {"k": blob}})
            if i >= 10:
                self.m.raw_json("DELETE", f"/api/v1/namespaces/default/configmaps/churn-{i - 10}")
            i += 1
            self.done += 1
            next_at += self.interval
            self.stop.wait(max(0.0, next_at - time.monotonic()))

    def __enter__(self) -> Churn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def probe_lines(path: str, offset: int) -> tuple[list[str], int]:
    """The daemon's `loop probe:` log lines written since `offset` (with --probe)."""
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read()
    lines = [ln.split("loop probe: ", 1)[1] for ln in data.decode(errors="replace").splitlines() if "loop probe: " in ln]
    return lines, offset + len(data)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(host: str, port: int, wire: bytes | list[bytes], seconds: float, window: int,
         server_pid: int) -> tuple[float, float, float, int, float]:
    """(q/s, p50 ms, p99 ms, lost, server CPU µs per query) with the generator in another process.
    CPU per query is the figure that survives a busy machine: wall-clock rates and tails also
    measure everybody else's processes."""
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    p = mp.Process(target=_generate, args=(host, port, wire, seconds, window, q))
    cpu0 = cpu_seconds(server_pid)
    p.start()
    n, secs, lat, lost = q.get(timeout=seconds + 60)
    cpu = cpu_seconds(server_pid) - cpu0
    p.join()
    if not lat:
        return 0.0, float("nan"), float("nan"), lost, float("nan")
    return (n / secs, lat[len(lat) // 2] * 1000, lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, lost,
            cpu / n * 1e6)


# ---- baseline: a bare asyncio UDP echo server -------------------------------------------------------

def _echo_server(port_q: mp.Queue) -> None:  # type: ignore[type-arg]
    pin(0, 0)

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: object) -> None:
            self.t.sendto(data[:2] + bytes([data[2] | 0x80]) + data[3:], addr)  # type: ignore[attr-defined]

    async def main() -> None:
        t, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
        port_q.put(t.get_extra_info("sockname")[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def dnsperf(host: str, name: str, seconds: float) -> str:
    if shutil.which("dnsperf") is None:
        return "dnsperf not installed"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(f"{name} A\n")
    try:
        r = subprocess.run(["taskset", "-c", "1", "dnsperf", "-s", host, "-d", f.name, "-l", str(int(seconds)), "-q", "64"]
                           if (os.cpu_count() or 1) >= 2 else ["dnsperf", "-s", host, "-d", f.name, "-l", str(int(seconds))],
                           capture_output=True, text=True, timeout=seconds + 60)
    finally:
        os.unlink(f.name)
    lines = [ln.strip() for ln in r.stdout.splitlines() if "Queries per second" in ln or "Average Latency" in ln]
    return "; ".join(lines) or r.stdout[-300:]


def wait_idle(m: Minik, seconds: float = 3.0, limit: float = 60.0) -> None:
    deadline = time.monotonic() + limit
    last, since = "", time.monotonic()
    while time.monotonic() < deadline:
        code, body = m.raw_json("GET", "/api/v1/namespaces/default/services?limit=1")
        rv = body["metadata"]["resourceVersion"] if code == 200 else ""
        if rv != last:
            last, since = rv, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of quiet before each RSS reading")
    ap.add_argument("--rate", type=float, default=8000.0, help="open-loop rows: queries/s sent at a fixed pace (0: none)")
    ap.add_argument("--runs", type=int, default=3, help="repetitions of the fixed-rate rows")
    ap.add_argument("--churn", type=float, default=20.0,
                    help="row (e): (b) while this many ConfigMap writes/s go through the API (0: no row (e))")
    ap.add_argument("--only-rate", action="store_true", help="skip the closed-window rows, dnsperf and the RSS comparison")
    ap.add_argument("--probe", action="store_true",
                    help="start the daemon with --loop-probe 1 and print its loop lag / slow callback / GC lines per fixed-rate row")
    args = ap.parse_args()

    up = Upstream(host=f"127.53.{random.randrange(250) + 1}.{random.randrange(250) + 1}", port=53, ttl=3600)
    up.add("www.example", "A", "192.0.2.8")
    up.start()
    d = tempfile.mkdtemp(prefix="minik-bench-dns-")
    resolv = os.path.join(d, "resolv.conf")
    with open(resolv, "w") as f:
        f.write(f"nameserver {up.host}\n")

    port_q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    echo = mp.Process(target=_echo_server, args=(port_q,), daemon=True)
    echo.start()
    echo_port = port_q.get(timeout=30)
    echo_pid = echo.pid or 0
    rows: list[tuple[str, float, float, float, int, float]] = []
    rate_rows: list[tuple[int, str, str, float, float, float, float, float, int, float, float]] = []
    probes: list[tuple[int, str, list[str]]] = []
    perf, with_dns, without_dns, upstream_queries = "", float("nan"), float("nan"), 0
    cluster_q = dns.message.make_query("svc-7.default.svc.cluster.local.", "A").to_wire()
    external_q = dns.message.make_query("www.example.", "A").to_wire()

    try:
        flags = ["--resolv-conf", resolv, *(["--loop-probe", "1"] if args.probe else [])]
        with node_server("127.0.0.1:9", flags) as (m, net):
            assert m.proc is not None
            pid = m.proc.pid
            pin(pid, 0)
            svcs = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}", "namespace": "default"},
                     "spec": {"ports": [{"name": "http", "port": 80}]}} for i in range(args.services)]
            m.kubectl("create", "-f", "-", input=yaml.safe_dump_all(svcs), timeout=300)
            ip = net.cluster_dns
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    r = dns.message.from_wire(_ask(ip, cluster_q))
                    if r.answer:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            dns.message.from_wire(_ask(ip, external_q))   # fills the forwarder's cache
            wait_idle(m)   # the controllers are done with the new Services before anything is timed
            # Fixed rate first: a cluster name, the echo baseline, a cached external name and the
            # cluster name under API writes, one after the other in each run, so every run's rows
            # share the machine's state (the baseline between DNS rows: not right after the
            # writes, whose aftermath still keeps the daemon busy on the same core).
            offset = os.path.getsize(m.log_path)
            for run in range(args.runs if args.rate > 0 else 0):
                for label, host, port, wire, target, churn in (
                        ("(b) cluster name", ip, 53, cluster_q, pid, 0.0),
                        ("(a) echo baseline", "127.0.0.1", echo_port, cluster_q, echo_pid, 0.0),
                        ("(c) external, cached", ip, 53, external_q, pid, 0.0),
                        (f"(e) (b) + {args.churn:.0f} API writes/s", ip, 53, cluster_q, pid, args.churn)):
                    if label.startswith("(e)") and churn <= 0:
                        continue
                    before = loadavg()
                    if churn > 0:
                        with Churn(m, churn) as c:
                            got = load_rate(host, port, wire, args.seconds, args.rate, target)
                        label = f"(e) (b) + {c.done / args.seconds:.0f} API writes/s"
                    else:
                        got = load_rate(host, port, wire, args.seconds, args.rate, target)
                    rate_rows.append((run + 1, label, before, *got))
                    lines, offset = probe_lines(m.log_path, offset)
                    if args.probe and target == pid:
                        probes.append((run + 1, label, lines))
            if args.probe:
                with open(m.log_path, errors="replace") as f:
                    probes.append((0, "daemon", [ln.split("loop probe: ", 1)[1].strip() for ln in f
                                                 if "loop probe: full collection" in ln]))
            if args.only_rate:
                echo.terminate()
                raise _Done
            # The baseline runs now, next to the idle daemon, so all rows share the machine's state.
            rows.append(("(a) baseline: bare asyncio UDP echo", *load("127.0.0.1", echo_port, cluster_q, args.seconds, args.window, echo_pid)))
            echo.terminate()
            rows.append(("(b) cluster name (svc-7.default.svc)", *load(ip, 53, cluster_q, args.seconds, args.window, pid)))
            rows.append(("(c) external name, cached (www.example)", *load(ip, 53, external_q, args.seconds, args.window, pid)))
            # The slow path: a name never asked before for every query (no response cache hit;
            # dnspython parses and renders each one). 65,536 names, one per query ID.
            fresh = [dns.message.make_query(f"n{i}.default.svc.cluster.local.", "A").to_wire() for i in range(65536)]
            rows.append(("(d) a new cluster name each query (uncached)", *load(ip, 53, fresh, min(args.seconds, 3.0), args.window, pid)))
            # Latency without queueing: one query outstanding at a time.
            lat_rows = [("(b1) cluster name, 1 outstanding", *load(ip, 53, cluster_q, args.seconds, 1, pid)),
                        ("(c1) external cached, 1 outstanding", *load(ip, 53, external_q, args.seconds, 1, pid))]
            perf = dnsperf(ip, "svc-7.default.svc.cluster.local", args.seconds)
            wait_idle(m)
            time.sleep(args.idle)
            with_dns = rss_mb(pid)
            upstream_queries = up.queries[("www.example.", "A")]
        with node_server("127.0.0.1:9", ["--disable-dns"]) as (m2, _):
            assert m2.proc is not None
            m2.kubectl("create", "-f", "-", input=yaml.safe_dump_all(svcs), timeout=300)
            wait_idle(m2)
            time.sleep(args.idle)
            without_dns = rss_mb(m2.proc.pid)
    except _Done:
        pass
    finally:
        up.stop()
        shutil.rmtree(d, ignore_errors=True)
    cores = "daemon and load generator on separate cores" if (os.cpu_count() or 1) >= 2 else "one core"
    if rate_rows:
        print(f"fixed rate: {args.rate:.0f} q/s open loop for {args.seconds:.0f} s per row, {args.services} Services, {cores}; "
              f"load average (1/5/15 min) before each row; gen late = the generator's own p99 send delay")
        print(f"{'run':>3} {'row':28} {'load avg':16} {'q/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'p99.9':>7} {'max ms':>7} "
              f"{'lost':>5} {'gen late':>8} {'CPU µs/q':>8}")
        for run, label, la, qps, p50, p99, p999, mx, lost, late, cpu in rate_rows:
            print(f"{run:3d} {label:28} {la:16} {qps:7.0f} {p50:7.3f} {p99:7.3f} {p999:7.3f} {mx:7.2f} {lost:5d} {late:8.3f} {cpu:8.1f}")
        if args.runs > 1:
            print(f"over {args.runs} runs: p99 ms median / best (the quietest run) / worst; lost in all runs")
            labels = list(dict.fromkeys(r[1].split(" + ")[0] for r in rate_rows))
            for lab in labels:
                mine = [r for r in rate_rows if r[1].split(" + ")[0] == lab]
                p99s = sorted(r[5] for r in mine)
                print(f"    {lab:28} {p99s[len(p99s) // 2]:7.3f} / {p99s[0]:7.3f} / {p99s[-1]:7.3f}   lost {sum(r[8] for r in mine)}")
        for run, label, lines in probes:
            print(f"-- run {run} {label}: daemon loop probe" + (", one line per second" if run else ""))
            for ln in lines:
                print("   " + ln)
    if not rows:
        return

    base = rows[0][1] or 1.0
    print()
    print(f"minik cluster DNS ({args.services} Services, UDP, {args.window} queries outstanding, {args.seconds:.0f} s each; "
          f"daemon and load generator on separate cores)")
    base_cpu = rows[0][5] or 1.0
    print(f"{'row':44} {'q/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'lost':>5} {'vs (a)':>7} {'CPU µs/q':>9} "
          f"{'q/s/core':>9} {'CPU vs (a)':>10}")
    for name, qps, p50, p99, lost, cpu in [*rows, *lat_rows]:
        print(f"{name:44} {qps:9.0f} {p50:8.3f} {p99:8.3f} {lost:5d} {qps / base:7.2f} {cpu:9.1f} "
              f"{1e6 / cpu if cpu else 0:9.0f} {cpu / base_cpu:10.2f}")
    print("(q/s/core = 1e6 / CPU µs per query: what one core would answer with the same work per query)")
    print(f"dnsperf on (b): {perf}")
    print(f"upstream queries for www.example during (c): {upstream_queries} (the rest came from the cache)")
    print("aim (issue 8): >= 8000 q/s on one core, p99 <= 2 ms; CoreDNS anchor ~16-17k q/s per core")
    print(f"idle RSS with DNS (after the load): {with_dns:6.1f} MB; with --disable-dns: {without_dns:6.1f} MB; "
          f"DNS costs {with_dns - without_dns:+.1f} MB")


class _Done(Exception):
    """--only-rate: leave the daemon section after the fixed-rate rows."""


def _ask(ip: str, wire: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(wire, (ip, 53))
        return s.recv(4096)


if __name__ == "__main__":
    main()
