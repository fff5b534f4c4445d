"""API benchmark: a real `minik server` against baselines measured in the same run.

Prints creates/s and p50/p99 latency at 1 and 8 concurrent clients (1 KiB ConfigMaps), GETs/s,
LIST of 1,000 objects, watch delivery latency to 100 watchers, and the baselines: raw SQLite
inserts with the same durability (WAL, synchronous=FULL; one commit per insert and batches of 8)
and a bare aiohttp TLS handler (the HTTP ceiling), with ratios. Ends with the server's RSS after
the run and at idle, then the cost of structural schema validation: creates/s of ConfigMaps and
Pods at 8 clients against a server with it and one without it, and the server CPU per create in
one in-process server toggling it (`--validation-only` runs just these).

`--storm` measures memory and latency under a watch/LIST storm instead: GET p99 with 500 open
watches (idle, then with 10 writes/s fanned out to all of them) against the same GETs with none
(the baselines), and RSS before, at the peak of, and
after a 500-watch + 200-concurrent-LIST storm (1,000 ConfigMaps of 1 KiB), plus how fast the
server's watcher count comes back down when the clients go away.

    python bench/api.py [--n 2000] [--keep] [--validation-only]
    python bench/api.py --storm [--watches 500] [--lists 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.e2e.minikd import Minik, free_port  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] * 1000 if xs else float("nan")


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sqlite_baseline(path: str, n: int, batch: int) -> float:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT, v TEXT)")
    value = "x" * 1024
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        db.execute("BEGIN")
        for j in range(batch):
            db.execute("INSERT INTO t (k, v) VALUES (?, ?)", (f"k{i + j}", value))
        db.execute("COMMIT")
    dt = time.perf_counter() - t0
    db.close()
    return n / dt


BARE_SERVER = r'''
import ssl, sys
from aiohttp import web
async def h(request):
    return web.Response(body=b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}}', content_type="application/json")
app = web.Application(); app.router.add_get("/x", h)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); ctx.load_cert_chain(sys.argv[2], sys.argv[3])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=ctx, print=None, access_log=None)
'''


async def timed_requests(session: aiohttp.ClientSession, reqs: list[tuple[str, str, Any]], concurrency: int) -> tuple[float, list[float], int]:
    lat: list[float] = []
    errors = 0
    it = iter(reqs)

    async def worker() -> None:
        nonlocal errors
        for method, url, body in it:
            t = time.perf_counter()
            async with session.request(method, url, json=body) as r:
                await r.read()
                if r.status >= 300:
                    errors += 1
            lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - t0, lat, errors


async def watch_latency(m: Minik, session: aiohttp.ClientSession, watchers: int, events: int) -> list[float]:
    base = m.url + "/api/v1/namespaces/bench-watch/configmaps"
    async with session.post(m.url + "/api/v1/namespaces", json={"metadata": {"name": "bench-watch"}}) as r:
        await r.read()
    async with session.get(base) as r:
        rv = (await r.json())["metadata"]["resourceVersion"]
    lat: list[float] = []
    ready = 0

    async def watcher() -> None:
        nonlocal ready
        async with session.get(base, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "60"}) as r:
            ready += 1
            seen = 0
            async for line in r.content:
                now = time.time()
                ev = json.loads(line)
                sent_at = (ev["object"]["metadata"].get("annotations") or {}).get("sent")
                if sent_at is None:
                    continue  # e.g. kube-root-ca.crt published by the namespace controller
                sent = float(sent_at)
                lat.append(now - sent)
                seen += 1
                if seen >= events:
                    return

    tasks = [asyncio.create_task(watcher()) for _ in range(watchers)]
    while ready < watchers:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    for i in range(events):
        async with session.post(base, json={"metadata": {"name": f"w{i}", "annotations": {"sent": repr(time.time())}}, "data": {"a": "b"}}) as r:
            await r.read()
        await asyncio.sleep(0.02)
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    return lat


async def run(args: argparse.Namespace) -> None:
    root = tempfile.mkdtemp(prefix="minik-bench-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    pid = m.proc.pid if m.proc else 0
    token = m.token()
    sslctx = ssl.create_default_context()
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {token}"}
    conn = aiohttp.TCPConnector(ssl=sslctx, limit=200)
    value = "x" * 1024
    n = args.n
    print(f"minik API benchmark (n={n}, 2 vCPU class machine)\n")
    async with aiohttp.ClientSession(connector=conn, headers=headers) as s:
        base = m.url + "/api/v1/namespaces/default/configmaps"
        results: dict[str, float] = {}
        for conc in (1, 8):
            reqs = [("POST", base, {"metadata": {"name": f"c{conc}-{i}"}, "data": {"v": value}}) for i in range(n)]
            dt, lat, err = await timed_requests(s, reqs, conc)
            results[f"create{conc}"] = n / dt
            print(f"creates, {conc} client(s):  {n / dt:8.0f}/s   p50 {pct(lat, .5):6.2f} ms   p99 {pct(lat, .99):6.2f} ms   errors {err}")
        reqs = [("GET", base + f"/c8-{i % n}", None) for i in range(n * 2)]
        dt, lat, _ = await timed_requests(s, reqs, 8)
        results["get"] = 2 * n / dt
        print(f"GETs, 8 clients:          {2 * n / dt:8.0f}/s   p50 {pct(lat, .5):6.2f} ms   p99 {pct(lat, .99):6.2f} ms")
        lbase = m.url + "/api/v1/namespaces/bench-list/configmaps"
        async with s.post(m.url + "/api/v1/namespaces", json={"metadata": {"name": "bench-list"}}) as r:
            await r.read()
        _, _, err = await timed_requests(s, [("POST", lbase, {"metadata": {"name": f"l{i}"}, "data": {"v": value}}) for i in range(1000)], 8)
        assert err == 0, f"{err} creates failed"
        times = []
        for _ in range(10):
            t = time.perf_counter()
            async with s.get(lbase) as r:
                assert len((await r.json())["items"]) >= 1000  # plus kube-root-ca.crt
            times.append(time.perf_counter() - t)
        print(f"LIST of 1,000 ConfigMaps: p50 {pct(times, .5):6.2f} ms")
        wl = await watch_latency(m, s, 100, 20)
        print(f"watch delivery, 100 watchers x 20 events (create sent → event received): p50 {pct(wl, .5):6.2f} ms   p99 {pct(wl, .99):6.2f} ms")
    rss_run = rss_mb(pid)

    # Baselines in the same run.
    db_path = os.path.join(root, "baseline.db")
    single = sqlite_baseline(db_path, min(n, 2000), 1)
    batched = sqlite_baseline(db_path, min(n, 4000), 8)
    port = free_port()
    tls = os.path.join(m.data_dir, "server", "tls")
    bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port), os.path.join(tls, "serving-kube-apiserver.crt"),
                             os.path.join(tls, "serving-kube-apiserver.key")])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sslctx, limit=200)) as s:
        dt, lat, _ = await timed_requests(s, [("GET", f"https://127.0.0.1:{port}/x", None) for _ in range(n * 2)], 8)
        bare_rate = 2 * n / dt
    bare.terminate()
    bare.wait()
    print("\nbaselines (same run):")
    print(f"raw SQLite WAL+FULL, 1 insert/commit:  {single:8.0f}/s   → minik 1-client creates at {results['create1'] / single:5.2f}x")
    print(f"raw SQLite WAL+FULL, 8 inserts/commit: {batched:8.0f}/s   → minik 8-client creates at {results['create8'] / batched:5.2f}x")
    print(f"bare aiohttp TLS GET, 8 clients:       {bare_rate:8.0f}/s   → minik GETs at {results['get'] / bare_rate:5.2f}x")
    print(f"\nserver RSS after the run: {rss_run:.1f} MB")
    await asyncio.sleep(10)
    print(f"server RSS at idle (10 s later): {rss_mb(pid):.1f} MB")
    m.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


def metric(m: Minik, name: str) -> float:
    _, _, body = m.raw("GET", "/metrics")
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return float("nan")


async def storm(args: argparse.Namespace) -> None:
    """GET p99 with N open watches vs none; RSS before/peak/after an N-watch + M-LIST storm."""
    root = tempfile.mkdtemp(prefix="minik-bench-storm-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    pid = m.proc.pid if m.proc else 0
    sslctx = ssl.create_default_context()
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {m.token()}"}
    ns_url = m.url + "/api/v1/namespaces/bench-storm/configmaps"
    print(f"minik API storm benchmark ({args.watches} watches, {args.lists} concurrent LISTs of 1,000 ConfigMaps)\n")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sslctx, limit=0), headers=headers) as s:
        async with s.post(m.url + "/api/v1/namespaces", json={"metadata": {"name": "bench-storm"}}) as r:
            await r.read()
        value = "x" * 1024
        _, _, err = await timed_requests(s, [("POST", ns_url, {"metadata": {"name": f"s{i}"}, "data": {"v": value}})
                                             for i in range(1000)], 8)
        assert err == 0
        async with s.post(ns_url, json={"metadata": {"name": "ticker"}, "data": {"n": "0"}}) as r:
            await r.read()
        await asyncio.sleep(5)
        rss_start = rss_mb(pid)
        watchers_idle = metric(m, "minik_store_watchers")
        stop_ticker = asyncio.Event()

        async def ticker() -> None:
            """10 writes/s: every open watch gets each of them."""
            i = 0
            while not stop_ticker.is_set():
                i += 1
                async with s.patch(ns_url + "/ticker", data=json.dumps({"data": {"n": str(i)}}),
                                   headers={"Content-Type": "application/merge-patch+json"}) as r:
                    await r.read()
                await asyncio.sleep(0.1)

        async def gets(count: int) -> list[float]:
            lat: list[float] = []
            for i in range(count):
                t = time.perf_counter()
                async with s.get(ns_url + f"/s{i % 1000}") as r:
                    await r.read()
                lat.append(time.perf_counter() - t)
                await asyncio.sleep(0.005)
            return lat

        base_idle = await gets(args.gets)
        tick = asyncio.create_task(ticker())
        base_lat = await gets(args.gets)
        stop_ticker.set()
        await tick
        peak = rss_mb(pid)
        opened = 0
        received = 0

        async def watcher() -> None:
            nonlocal opened, received
            async with s.get(ns_url, params={"watch": "true", "resourceVersion": rv, "timeoutSeconds": "600"}) as r:
                opened += 1
                async for _line in r.content:
                    received += 1

        async with s.get(ns_url, params={"limit": "1"}) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        watches = [asyncio.create_task(watcher()) for _ in range(args.watches)]
        deadline = time.monotonic() + 120
        while opened < args.watches and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await asyncio.sleep(args.hold)
        watch_idle = await gets(args.gets)
        stop_ticker.clear()
        tick = asyncio.create_task(ticker())
        watch_lat = await gets(args.gets)
        rss_watches = rss_mb(pid)
        peak = max(peak, rss_watches)
        watchers_open = metric(m, "minik_store_watchers")

        async def one_list() -> int:
            async with s.get(ns_url) as r:
                body = await r.read()
            return len(body)

        t0 = time.perf_counter()
        sampling = True

        async def sample() -> None:
            nonlocal peak
            while sampling:
                peak = max(peak, rss_mb(pid))
                await asyncio.sleep(0.1)

        sampler = asyncio.create_task(sample())
        sizes = await asyncio.gather(*(one_list() for _ in range(args.lists)))
        list_time = time.perf_counter() - t0
        storm_lat = await gets(args.gets // 2)
        sampling = False
        await sampler
        stop_ticker.set()
        await tick
        for w in watches:
            w.cancel()
        await asyncio.gather(*watches, return_exceptions=True)
    t_closed = time.perf_counter()
    settled = float("nan")
    while time.perf_counter() - t_closed < 30:
        if metric(m, "minik_store_watchers") <= watchers_idle:
            settled = time.perf_counter() - t_closed
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(10)
    rss_after = rss_mb(pid)
    await asyncio.sleep(20)
    rss_later = rss_mb(pid)
    print(f"GET p50/p99, no watches (baseline):                 {pct(base_idle, .5):6.2f} / {pct(base_idle, .99):6.2f} ms")
    print(f"GET p50/p99, {args.watches} open watches, no writes:        {pct(watch_idle, .5):6.2f} / {pct(watch_idle, .99):6.2f} ms"
          f"   → p99 at {pct(watch_idle, .99) / pct(base_idle, .99):5.2f}x the baseline")
    print(f"GET p50/p99, no watches, 10 writes/s (baseline):    {pct(base_lat, .5):6.2f} / {pct(base_lat, .99):6.2f} ms")
    print(f"GET p50/p99, {args.watches} watches x 10 writes/s fan-out:  {pct(watch_lat, .5):6.2f} / {pct(watch_lat, .99):6.2f} ms"
          f"   → p99 at {pct(watch_lat, .99) / pct(base_lat, .99):5.2f}x the baseline")
    print(f"GET p50/p99 right after {args.lists} LISTs:       {pct(storm_lat, .5):6.2f} / {pct(storm_lat, .99):6.2f} ms")
    print(f"{args.lists} concurrent LISTs of {sizes[0] / 1e6:.2f} MB: {list_time:6.2f} s ({args.lists / list_time:.1f} LISTs/s)")
    print(f"watch events received by clients: {received} (10 writes/s fanned out to {args.watches} watches)")
    print(f"server watchers: {watchers_idle:.0f} idle, {watchers_open:.0f} with the watches open, back to idle "
          f"{settled:.1f} s after the clients closed")
    print(f"server RSS: {rss_start:.1f} MB before the storm, {rss_watches:.1f} MB with the watches open, {peak:.1f} MB peak, {rss_after:.1f} MB 10 s after "
          f"(+{rss_after - rss_start:.1f} MB), {rss_later:.1f} MB 30 s after (+{rss_later - rss_start:.1f} MB; target < 20 MB)")
    m.stop()
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


POD = {"metadata": {"labels": {"app": "bench", "tier": "web"}, "annotations": {"note": "x" * 200}},
       "spec": {"schedulerName": "none", "terminationGracePeriodSeconds": 5,
                "containers": [{"name": "web", "image": "registry.local/web:1.2.3", "ports": [{"containerPort": 8080, "name": "http"}],
                                "env": [{"name": f"E{i}", "value": str(i)} for i in range(5)],
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}},
                                "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 5}}]}}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process: its own CPU, whatever else loads the machine."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def creates_per_second(m: Minik, n: int, kind: str, rounds: int, tag: str = "") -> float:
    """Best of `rounds` runs of n creates at 8 clients (ConfigMaps of 1 KiB, or Pods as above),
    each in a new namespace `bench-<kind>-<tag><round>`."""
    sslctx = ssl.create_default_context()
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    best = 0.0
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=sslctx, limit=200),
                                     headers={"Authorization": f"Bearer {m.token()}"}) as s:
        for r in range(rounds):
            ns = f"bench-{kind}-{tag}{r}"
            async with s.post(m.url + "/api/v1/namespaces", json={"metadata": {"name": ns}}) as resp:
                await resp.read()
            base = f"{m.url}/api/v1/namespaces/{ns}/{kind}"
            if kind == "pods":
                reqs = [("POST", base, dict(POD, metadata=dict(POD["metadata"], name=f"p{i}"))) for i in range(n)]
            else:
                reqs = [("POST", base, {"metadata": {"name": f"c{i}"}, "data": {"v": "x" * 1024}}) for i in range(n)]
            cpu0 = cpu_seconds(m.proc.pid) if m.proc else 0.0
            dt, _, err = await timed_requests(s, reqs, 8)
            assert err == 0, f"{err} creates failed"
            best = max(best, n / dt)
            if m.proc:
                cpu_per_create = (cpu_seconds(m.proc.pid) - cpu0) / n
                CPU_PER_CREATE.setdefault((m.port, kind), []).append(cpu_per_create)
    return best


CPU_PER_CREATE: dict[tuple[int, str], list[float]] = {}


async def validation_cost(args: argparse.Namespace) -> None:
    """Creates/s at 8 clients with structural validation (minik/apis/structural.py) and without
    it (the hidden MINIK_BENCH_NO_STRUCTURAL_VALIDATION switch), servers started side by side,
    measured alternately so machine noise hits both."""
    from minik.api.service import NO_STRUCTURAL_ENV
    servers: dict[str, Minik] = {}
    roots = []
    for label in ("with", "without"):
        root = tempfile.mkdtemp(prefix="minik-bench-")
        roots.append(root)
        m = Minik(root, free_port(), ["--disable-agent"])
        if label == "without":
            os.environ[NO_STRUCTURAL_ENV] = "1"
        try:
            m.start()
        finally:
            os.environ.pop(NO_STRUCTURAL_ENV, None)
        servers[label] = m
    n = max(200, args.n // 4)
    print(f"\nstructural validation cost (creates/s at 8 clients, best of 5, n={n}):")
    try:
        for kind in ("configmaps", "pods"):
            rates = {label: 0.0 for label in servers}
            for attempt in range(5):
                order = list(servers.items())
                for label, m in (order if attempt % 2 == 0 else order[::-1]):  # neither always goes first
                    rates[label] = max(rates[label], await creates_per_second(m, n, kind, 1, f"a{attempt}-"))
            ratio = rates["with"] / rates["without"]
            print(f"{kind:10s} with {rates['with']:7.0f}/s   without {rates['without']:7.0f}/s   "
                  f"→ with/without {ratio:5.2f}x ({(1 - ratio) * 100:+.1f}% slower)")
            # Server CPU per create (median over the rounds) is immune to other load on the machine.
            cpu = {label: statistics.median(CPU_PER_CREATE[(m.port, kind)]) * 1e6 for label, m in servers.items()}
            print(f"{'':10s} server CPU per create: with {cpu['with']:6.0f} µs   without {cpu['without']:6.0f} µs   "
                  f"→ {cpu['with'] / cpu['without']:5.2f}x")
        for label, m in servers.items():
            print(f"server RSS {label} validation: {rss_mb(m.proc.pid if m.proc else 0):.1f} MB")
    finally:
        for m in servers.values():
            m.stop()
        if not args.keep:
            for root in roots:
                shutil.rmtree(root, ignore_errors=True)


async def validation_cost_in_process(rounds: int = 6, n: int = 300) -> None:
    """The same comparison in one in-process server, switching validation on and off between
    rounds and timing with process CPU time: the steadiest figure on a shared machine."""
    # bench/dns.py would shadow dnspython (`import dns`) for the in-process server's DNS part.
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]
    from minik.api.request import decode_body
    from minik.api.service import WriteOptions
    from minik.config import ServerConfig
    from minik.daemon import Server

    root = tempfile.mkdtemp(prefix="minik-bench-")
    srv = Server(ServerConfig(data_dir=os.path.join(root, "data"), config_dir=os.path.join(root, "etc"),
                              run_dir=os.path.join(root, "run"), bind_address="127.0.0.1", https_listen_port=free_port(),
                              advertise_address="127.0.0.1", disable_agent=True, node_name="bench"))
    await srv.start()
    assert srv.service is not None and srv.client is not None
    print(f"\nin-process create (decode + service.create), CPU per create, median of {rounds} rounds of {n}:")
    try:
        for kind, plural in (("configmaps", "configmaps"), ("pods", "pods")):
            rt = srv.registry.lookup("", "v1", plural)
            assert rt is not None
            cpu: dict[bool, list[float]] = {True: [], False: []}
            for r in range(rounds):
                for enabled in ((True, False) if r % 2 == 0 else (False, True)):
                    srv.service.structural_enabled = enabled
                    ns = f"cpu-{kind}-{r}-{int(enabled)}"
                    await srv.client.create("namespaces", "", {"metadata": {"name": ns}})
                    if kind == "pods":
                        bodies = [json.dumps(dict(POD, metadata=dict(POD["metadata"], name=f"p{i}"))).encode() for i in range(n)]
                    else:
                        bodies = [json.dumps({"metadata": {"name": f"c{i}"}, "data": {"v": "x" * 1024}}).encode() for i in range(n)]
                    t0 = time.process_time()
                    for b in bodies:
                        body, _ = decode_body(b, "application/json")
                        await srv.service.create(rt, ns, body, WriteOptions("bench", "Warn"))
                    cpu[enabled].append((time.process_time() - t0) / n * 1e6)
            w, wo = statistics.median(cpu[True]), statistics.median(cpu[False])
            print(f"{kind:10s} with {w:6.0f} µs   without {wo:6.0f} µs   → {w / wo:5.2f}x ({(w / wo - 1) * 100:+.1f}%)")
    finally:
        await srv.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--storm", action="store_true", help="the watch/LIST storm benchmark instead of the throughput one")
    p.add_argument("--watches", type=int, default=500)
    p.add_argument("--lists", type=int, default=200)
    p.add_argument("--gets", type=int, default=400)
    p.add_argument("--hold", type=float, default=2.0, help="seconds the watches stay open before GETs are timed")
    p.add_argument("--validation-only", action="store_true", help="only the structural validation cost")
    args = p.parse_args()
    if args.storm:
        asyncio.run(storm(args))
        return
    if not args.validation_only:
        asyncio.run(run(args))
    asyncio.run(validation_cost(args))
    asyncio.run(validation_cost_in_process())


if __name__ == "__main__":
    main()
