"""Service data path and control path benchmark, on a real agent-enabled minik.

1. Data path: HTTP requests (wrk when installed; one TCP connection each, so every request goes
   through conntrack and the NAT rules) from the node to one busybox httpd pod, straight to the pod IP (baseline),
   through its ClusterIP and through a NodePort on the node address. Rounds are interleaved so
   machine noise hits all three alike; prints req/s and p99 and the ratios to the baseline.
2. Control path: with N Services present (each selecting the pod, so each has a service chain,
   an endpoint chain and map elements), the time from the API answering a Service create to its
   ClusterIP accepting connections on the node, and from a delete to the rule being gone.
   minik rewrites only the changed Service's chains and map elements (see the proxier's log).
3. Memory: the daemon's RSS at idle with 2 and with N + 2 Services (each with its Endpoints and
   EndpointSlice), in the same daemon and the same run, each measured after the same settling:
   the newest Service answers on its ClusterIP and in the cluster DNS (proxier and DNS synced),
   the API has been quiet for a few seconds, then a fixed idle period in which the daemon's own
   memory trimmer may run (the benchmark triggers nothing in the daemon). `--rss` measures only
   this, `--rss-runs` repeats it in fresh daemons.

    python bench/service.py [--services 1000] [--requests 400] [--rounds 5]
    python bench/service.py --rss [--rss-runs 3]       # memory only
    python bench/service.py --synthetic 1000,10000     # the proxier path alone, no server
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
# bench/ itself off the path: bench/secrets.py would shadow the standard library's `secrets`.
sys.path[:] = [os.path.dirname(HERE)] + [p for p in sys.path if os.path.abspath(p or ".") != HERE]

from minik.net.hostaddr import default_ip  # noqa: E402
from tests.e2e.agent_fixtures import (claim_node_net, node_minik_for, reap_node, release_node_net,  # noqa: E402
                                      seed_registry, wait_node_ready)
from tests.e2e.minikd import Minik  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402

Obj = dict[str, Any]
NS = "bench"


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def request(host: str, port: int) -> float:
    start = time.perf_counter()
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
        while s.recv(65536):
            pass
    return time.perf_counter() - start


def _wrk_seconds(text: str) -> float:
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
    for unit in ("us", "ms", "s"):
        if text.endswith(unit):
            return float(text[:-len(unit)]) * units[unit]
    return float(text)


def load(host: str, port: int, n: int, concurrency: int = 4) -> tuple[float, float]:
    """(requests per second, p99 seconds): wrk for 3 s when installed (busybox httpd closes every
    connection, so each request is a new connection through conntrack and NAT), else n requests
    from `concurrency` Python threads."""
    if shutil.which("wrk") and n > 50:
        out = subprocess.run(["wrk", "-t1", f"-c{concurrency}", "-d1s", "--latency", f"http://{host}:{port}/"],
                             capture_output=True, text=True, timeout=60).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
        p99 = _wrk_seconds(re.search(r"\s99%\s+(\S+)", out).group(1))   # type: ignore[union-attr]
        return rps, p99
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        lat = list(pool.map(lambda _: request(host, port), range(n)))
    return n / (time.perf_counter() - start), pct(lat, 99)


def post(m: Minik, path: str, obj: Obj) -> Obj:
    code, body = m.raw_json("POST", path, obj)
    if code != 201:
        raise SystemExit(f"POST {path}: {code} {body}")
    return dict(body)


def svc(name: str, node_port: int = 0) -> Obj:
    port: Obj = {"port": 80, "targetPort": 8080}
    spec: Obj = {"selector": {"app": "web"}, "ports": [port]}
    if node_port:
        spec["type"] = "NodePort"
        port["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def wait_connect(ip: str, port: int, want: bool, timeout: float = 30.0) -> float:
    """Poll a TCP connect from the node until it succeeds (want) or stops succeeding."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        s = socket.socket()
        # Short: before the rule exists the SYN is dropped on the node (a new IP is unallocated)
        # and would otherwise cost a whole timeout; a live rule answers in well under 10 ms here.
        s.settimeout(0.01)
        try:
            s.connect((ip, port))
            ok = True
        except OSError:
            ok = False
        finally:
            s.close()
        if ok == want:
            return time.perf_counter() - start
        time.sleep(0.001)
    raise SystemExit(f"{ip}:{port} never became {'reachable' if want else 'unreachable'}")


def settle(m: Minik, seconds: float = 3.0, limit: float = 300.0) -> None:
    deadline = time.monotonic() + limit
    last, since = "", time.monotonic()
    while time.monotonic() < deadline:
        code, body = m.raw_json("GET", "/api/v1/namespaces/default/pods?limit=1")
        rv = body["metadata"]["resourceVersion"]
        if rv != last:
            last, since = rv, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.5)


def dns_answers(server: str, name: str, timeout: float = 60.0) -> None:
    """Poll the daemon's DNS until `name` has an A record (the DNS records are built)."""
    import dns.message
    import dns.query
    import dns.rcode
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), server, timeout=1)
            if r.rcode() == dns.rcode.NOERROR and r.answer:
                return
        except Exception:  # noqa: BLE001 - a timeout or a refused port: not serving yet
            pass
        time.sleep(0.2)
    raise SystemExit(f"DNS never answered for {name}")


def idle_rss(m: Minik, pid: int, dns_ip: str, last: str, idle: float) -> float:
    """RSS once the newest Service `last` is live on its ClusterIP and in DNS, the API has been
    quiet, and then `idle` more seconds have passed (the daemon's own trimmer runs every 3 s)."""
    code, body = m.raw_json("GET", f"/api/v1/namespaces/{NS}/services/{last}")
    wait_connect(body["spec"]["clusterIP"], 80, True, timeout=120)
    dns_answers(dns_ip, f"{last}.{NS}.svc.cluster.local")
    settle(m)
    time.sleep(idle)
    return rss_mb(pid)


def change_latency(m: Minik, trials: int) -> tuple[list[float], list[float]]:
    up, down = [], []
    for i in range(trials):
        body = post(m, f"/api/v1/namespaces/{NS}/services", svc(f"probe-{i}"))
        ip = body["spec"]["clusterIP"]
        # The endpoints controller writes the slice first; measured from the API's answer.
        up.append(wait_connect(ip, 80, True))
        start = time.perf_counter()
        m.raw_json("DELETE", f"/api/v1/namespaces/{NS}/services/probe-{i}")
        down.append(time.perf_counter() - start + wait_connect(ip, 80, False))
    return up, down


def synthetic(sizes: list[int], trials: int) -> None:
    """The proxier's own path with N Services, without the API and controllers in the way: one
    Service changed (an endpoint removed, then a new Service added and deleted) → partial build,
    merge, diff and `nft -f` on a scratch table of this benchmark (deleted at the end)."""
    import asyncio

    from minik.agent.proxier import merge
    from minik.net import services as rules
    from minik.net.serviceapply import ServiceRules

    async def run(n: int) -> tuple[float, list[float]]:
        settings = rules.Settings(f"mkbench_{os.getpid()}", "10.254.0.0/16", "10.253.0.0/16")
        applier = ServiceRules(settings, "lo")

        def info(i: int, eps: int = 2) -> rules.ServiceInfo:
            ip = f"10.254.{i // 250}.{i % 250 + 1}"
            endpoints = tuple(rules.Endpoint(f"10.253.{i // 250}.{(i + k) % 250 + 1}", 8080) for k in range(eps))
            return rules.ServiceInfo("bench", f"s{i}", ip, (rules.ServicePort("tcp", 80, 0, endpoints),))

        parts = {i: rules.build([info(i)], settings) for i in range(n)}
        try:
            start = time.perf_counter()
            await applier.sync(merge(list(parts.values())))
            full = time.perf_counter() - start
            lat = []
            for t in range(trials):
                for change in ("endpoint", "add", "delete"):
                    start = time.perf_counter()
                    if change == "endpoint":
                        parts[t] = rules.build([info(t, eps=1)], settings)
                    elif change == "add":
                        parts[n + t] = rules.build([info(n + t)], settings)
                    else:
                        del parts[n + t]
                    await applier.sync(merge(list(parts.values())))
                    lat.append(time.perf_counter() - start)
            return full, lat
        finally:
            subprocess.run(["nft", "delete", "table", "ip", settings.table], capture_output=True)

    print("proxier path alone (partial build + merge + diff + nft -f; scratch table):")
    for n in sizes:
        full, lat = asyncio.run(run(n))
        print(f"  {n:6d} Services: full sync {full * 1000:7.1f} ms; one Service changed p50 "
              f"{statistics.median(lat) * 1000:6.1f} ms, max {max(lat) * 1000:6.1f} ms ({len(lat)} changes)")


def start_node() -> tuple[LocalRegistry, Any, Minik]:
    reg = LocalRegistry().start()
    seed_registry(reg)
    net = claim_node_net()
    m = node_minik_for(net, reg.host)
    # Debug logs carry the proxier's own time per sync (build + diff + nft), reported below.
    m.extra = [*m.extra, "--node-ip", default_ip(), "--log-level", "debug"]
    m.start(timeout=90)
    wait_node_ready(m, net.node_name)
    return reg, net, m


def web_pod(m: Minik) -> str:
    """Create the namespace, the httpd pod every Service selects, and two Services; the pod IP."""
    post(m, "/api/v1/namespaces", {"metadata": {"name": NS}})
    post(m, f"/api/v1/namespaces/{NS}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "busybox", "command": [
            "sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        code, pod = m.raw_json("GET", f"/api/v1/namespaces/{NS}/pods/web")
        conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
        if conds.get("Ready") == "True":
            return str(pod["status"]["podIP"])
        time.sleep(0.2)
    raise SystemExit("web pod never became Ready")


def create_services(m: Minik, n: int) -> float:
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: post(m, f"/api/v1/namespaces/{NS}/services", svc(f"s{i}")), range(n)))
    return time.monotonic() - start


def memory_run(services: int, idle: float) -> float:
    """One fresh daemon: idle RSS with 2 Services, then with services + 2; prints both, returns the delta."""
    reg, net, m = start_node()
    try:
        pid = m.proc.pid if m.proc else 0
        web_pod(m)
        post(m, f"/api/v1/namespaces/{NS}/services", svc("web"))
        post(m, f"/api/v1/namespaces/{NS}/services", svc("web-np", 30999))
        rss0 = idle_rss(m, pid, net.cluster_dns, "web", idle)
        created = create_services(m, services)
        rss1 = idle_rss(m, pid, net.cluster_dns, f"s{services - 1}", idle)
        print(f"memory: daemon RSS idle {rss0:.1f} MB with 2 Services, {rss1:.1f} MB with {services + 2} "
              f"(+{rss1 - rss0:.1f} MB; {services} created in {created:.1f} s; load average {os.getloadavg()[0]:.2f})",
              flush=True)
        return rss1 - rss0
    finally:
        reap_node(m, net)
        release_node_net(net)
        reg.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--services", type=int, default=1000)
    p.add_argument("--requests", type=int, default=400)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--trials", type=int, default=10)
    p.add_argument("--synthetic", default="", help="only the proxier path, e.g. 1000,10000 Services")
    p.add_argument("--rss", action="store_true", help="only the memory measurement")
    p.add_argument("--rss-runs", type=int, default=1, help="with --rss: fresh daemons to measure in")
    p.add_argument("--idle", type=float, default=12.0, help="idle seconds before each RSS reading")
    args = p.parse_args()
    if args.synthetic:
        synthetic([int(x) for x in args.synthetic.split(",")], args.trials)
        return
    if args.rss:
        deltas = [memory_run(args.services, args.idle) for _ in range(args.rss_runs)]
        if len(deltas) > 1:
            print(f"memory: +{statistics.median(deltas):.1f} MB median over {len(deltas)} daemons "
                  f"(min {min(deltas):.1f}, max {max(deltas):.1f}); load average {os.getloadavg()[0]:.2f}")
        return
    reg = LocalRegistry().start()
    seed_registry(reg)
    net = claim_node_net()
    m = node_minik_for(net, reg.host)
    node_ip = default_ip()
    # Debug logs carry the proxier's own time per sync (build + diff + nft), reported below.
    m.extra = [*m.extra, "--node-ip", node_ip, "--log-level", "debug"]
    try:
        m.start(timeout=90)
        wait_node_ready(m, net.node_name)
        pid = m.proc.pid if m.proc else 0
        post(m, "/api/v1/namespaces", {"metadata": {"name": NS}})
        post(m, f"/api/v1/namespaces/{NS}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "busybox", "command": [
                "sh", "-c", "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"],
                "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}})
        cluster = post(m, f"/api/v1/namespaces/{NS}/services", svc("web"))
        node_port = post(m, f"/api/v1/namespaces/{NS}/services", svc("web-np", 30999))
        cip = cluster["spec"]["clusterIP"]
        np_port = node_port["spec"]["ports"][0]["nodePort"]
        deadline = time.monotonic() + 120
        pod_ip = ""
        while time.monotonic() < deadline and not pod_ip:
            code, pod = m.raw_json("GET", f"/api/v1/namespaces/{NS}/pods/web")
            conds = {c["type"]: c["status"] for c in (pod.get("status") or {}).get("conditions") or []}
            if conds.get("Ready") == "True":
                pod_ip = pod["status"]["podIP"]
            time.sleep(0.2)
        if not pod_ip:
            raise SystemExit("web pod never became Ready")
        wait_connect(cip, 80, True)
        wait_connect(node_ip, np_port, True)
        targets = {"pod IP": (pod_ip, 8080), "ClusterIP": (cip, 80), "NodePort": (node_ip, np_port)}
        results: dict[str, list[tuple[float, float]]] = {k: [] for k in targets}
        for name, (h, port) in targets.items():
            load(h, port, 50)      # warm-up
        names = list(targets)
        for r in range(args.rounds):
            # Rotate the order each round so no target always runs first or last.
            for name in names[r % 3:] + names[:r % 3]:
                h, port = targets[name]
                results[name].append(load(h, port, args.requests))
        base_rps = statistics.median(r for r, _ in results["pod IP"])
        base_p99 = statistics.median(q for _, q in results["pod IP"])
        # Ratios per round (the three targets of a round ran back to back, under the same load
        # from everything else on the machine), then their median.
        def ratio(name: str, i: int) -> float:
            return statistics.median(results[name][r][i] / results["pod IP"][r][i] for r in range(args.rounds))
        tool = "wrk -c4 for 1 s" if shutil.which("wrk") else f"{args.requests} requests from 4 Python threads"
        print(f"data path: {args.rounds} rounds, {tool} per round and target (a new TCP connection per request)")
        for name in targets:
            rps = statistics.median(r for r, _ in results[name])
            p99 = statistics.median(q for _, q in results[name])
            print(f"  {name:10s} {rps:8.0f} req/s  p99 {p99 * 1000:6.2f} ms   ratio req/s {ratio(name, 0):.3f}  "
                  f"p99 {ratio(name, 1):.3f}  (of medians: {rps / base_rps:.3f} / {p99 / base_p99:.3f})")

        if args.services <= 0:
            return
        rss0 = idle_rss(m, pid, net.cluster_dns, "web", args.idle)
        up0, down0 = change_latency(m, args.trials)
        created = create_services(m, args.services)
        rss1 = idle_rss(m, pid, net.cluster_dns, f"s{args.services - 1}", args.idle)
        up1, down1 = change_latency(m, args.trials)
        print(f"control path: Service create → ClusterIP answering on the node; delete → gone ({args.trials} trials)")
        print(f"  with 2 Services:    up p50 {statistics.median(up0) * 1000:6.1f} ms max {max(up0) * 1000:6.1f} ms   "
              f"down p50 {statistics.median(down0) * 1000:6.1f} ms")
        print(f"  with {args.services + 2} Services: up p50 {statistics.median(up1) * 1000:6.1f} ms max {max(up1) * 1000:6.1f} ms   "
              f"down p50 {statistics.median(down1) * 1000:6.1f} ms   (ratio p50 {statistics.median(up1) / statistics.median(up0):.2f})")
        print(f"  ({args.services} Services created in {created:.1f} s)")
        print(f"memory: daemon RSS idle {rss0:.1f} MB with 2 Services, {rss1:.1f} MB with {args.services + 2} "
              f"(+{rss1 - rss0:.1f} MB; Services, Endpoints and EndpointSlices in store and informers, rules state)")
        with open(m.log_path, encoding="utf-8", errors="replace") as f:
            syncs = [line for line in f if "proxier: incremental sync" in line]
        totals = [float(line.rsplit("(total ", 1)[1].split(" ms")[0]) for line in syncs[-4 * args.trials:]]
        nft = [float(line.split(" chains written in ")[1].split(" ms")[0]) for line in syncs[-4 * args.trials:]]
        if totals:
            print(f"proxier per incremental sync with {args.services + 2} Services (last {len(totals)}): total p50 "
                  f"{statistics.median(totals):.1f} ms max {max(totals):.1f} ms, of which applying (nft) p50 "
                  f"{statistics.median(nft):.1f} ms; only the changed Service's chains and map elements are written")
    finally:
        reap_node(m, net)
        release_node_net(net)
        reg.stop()


if __name__ == "__main__":
    main()
