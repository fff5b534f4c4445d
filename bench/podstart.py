"""Pod-start benchmark: minik's Pod → Ready against raw CRI on the same containerd, same run.

One `minik server` (Minik harness from tests/e2e/minikd.py, its own containerd, unique bridge,
nft table and cluster CIDR) with a busybox image imported through the airgap directory. Then:

  (a) the floor: raw CRI from this process with `minik.agent.cri.CriClient` against that
      containerd: RunPodSandbox (pod network through minik's CNI shim and the daemon, built by
      the same `sandbox_config` the agent uses; host network too) + CreateContainer +
      StartContainer, N pods one at a time and as a burst of N;
  (b) minik: raw HTTPS POST of a Pod (aiohttp, keep-alive, admin token) → Ready=True seen on a
      watch, N pods one at a time and as a burst of N, plus `kubectl apply -f -` → Ready one at
      a time (that row includes kubectl's own start-up).

Prints p50/p99 per row and the ratio (b)/(a) next to the targets (≤ 1.3x the floor at p50,
p99 ≤ 1 s), then RSS and idle CPU over 30 s (utime+stime from /proc/<pid>/stat) of minik,
containerd and the shims with 0 and 20 pods. Floor sandboxes carry no pod-UID label, so the
agent's relist leaves them alone. Cleans up at the end (server, containerd, shims, bridge, nft).

    python bench/podstart.py [--n 10] [--idle 30] [--idle-pods 20] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from minik.agent.containerd import ContainerdPaths  # noqa: E402
from minik.agent.containers import container_config  # noqa: E402
from minik.agent.cri import CriClient, pb  # noqa: E402
from minik.agent.images import build_image, busybox_image_files  # noqa: E402
from minik.agent.sandbox import LABEL_POD_UID, SandboxContext, sandbox_config  # noqa: E402
from tests.e2e.minikd import KUBECTL, Minik, free_port  # noqa: E402

Obj = dict[str, Any]
IMAGE_NAME = "docker.io/library/busybox:latest"
TAG = uuid.uuid4().hex[:5]
BRIDGE = f"mkbench{TAG}"
NFT_TABLE = f"mkbench_{TAG}"
DNS_INTERFACE = f"mkbd{TAG}"     # the cluster DNS IP's own link (lo:<name> where there is no dummy driver)
CLUSTER_CIDR = "10.250.0.0/16"
SERVICE_CIDR = "10.251.0.0/16"
CLUSTER_DNS = "10.251.0.10"
TARGET_RATIO = 1.3
TARGET_P99_MS = 1000.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---- numbers ---------------------------------------------------------------------------------

def pct(xs: list[float], p: float) -> float:
    """Nearest-rank percentile in ms (p99 of 10 samples is the maximum)."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p))] * 1000


def p50(xs: list[float]) -> float:
    return statistics.median(xs) * 1000 if xs else float("nan")


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])    # utime, stime (fields 14, 15)
    except OSError:
        return 0


def shim_pids(socket_path: str) -> list[int]:
    """containerd-shim-runc-v2 processes started by our containerd (its socket on the cmdline)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket_path.encode() in argv:
            out.append(int(d))
    return out


# ---- the server ------------------------------------------------------------------------------

class Bench:
    def __init__(self, n: int, keep: bool) -> None:
        self.n = n
        self.keep = keep
        self.root = tempfile.mkdtemp(prefix="mk-podstart-", dir="/tmp")
        self.mk = Minik(self.root, free_port(), extra=[
            "--bridge-name", BRIDGE, "--nft-table", NFT_TABLE, "--cluster-cidr", CLUSTER_CIDR,
            "--service-cidr", SERVICE_CIDR, "--cluster-dns", CLUSTER_DNS, "--node-name", f"bench-{TAG}",
            "--dns-interface", DNS_INTERFACE, "--resolv-conf", "/dev/null",
        ])
        self.paths = ContainerdPaths.from_dirs(self.mk.data_dir, os.path.join(self.root, "run"))
        self.session: aiohttp.ClientSession | None = None
        self.headers: dict[str, str] = {}
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ssl.check_hostname = False
        self.ssl.verify_mode = ssl.CERT_NONE

    def start_server(self) -> None:
        images = os.path.join(self.mk.data_dir, "agent", "images")
        os.makedirs(images)
        build_image(IMAGE_NAME, busybox_image_files(), (), ("sh",), None, dest=os.path.join(images, "busybox.tar"))
        t0 = time.monotonic()
        self.mk.start(timeout=120)
        print(f"server ready in {time.monotonic() - t0:.1f} s (pid {self.mk.proc.pid if self.mk.proc else '?'}, "
              f"bridge {BRIDGE}, nft table {NFT_TABLE}, cluster CIDR {CLUSTER_CIDR})")
        self.headers = {"Authorization": f"Bearer {self.mk.token()}"}

    @property
    def server_pid(self) -> int:
        assert self.mk.proc is not None
        return self.mk.proc.pid

    def containerd_pid(self) -> int:
        with open(self.paths.pid_file) as f:
            return int(f.read().strip())

    async def request(self, method: str, path: str, body: Obj | None = None) -> tuple[int, Any]:
        assert self.session is not None
        async with self.session.request(method, self.mk.url + path, json=body, headers=self.headers,
                                        ssl=self.ssl) as r:
            data = await r.read()
            return r.status, json.loads(data) if data else None

    async def wait_node_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, nodes = await self.request("GET", "/api/v1/nodes")
            _, sas = await self.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")
            ready = [n for n in (nodes or {}).get("items") or []
                     if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"].get("conditions") or [])]
            if ready and (sas or {}).get("kind") == "ServiceAccount":
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("node did not become Ready:\n" + self.mk.log_tail())

    def cleanup(self) -> None:
        if self.keep:
            print(f"kept {self.root}")
            return
        if self.mk.proc is not None:
            self.mk.stop()
        pid = 0
        with contextlib.suppress(OSError, ValueError):
            pid = self.containerd_pid()
        shims = shim_pids(self.paths.socket)
        if pid:
            with contextlib.suppress(Exception):
                asyncio.run(remove_all_sandboxes(self.paths.socket))
            shims = sorted(set(shims) | set(shim_pids(self.paths.socket)))
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for s in shims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(s, signal.SIGKILL)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
        subprocess.run(["nft", "delete", "table", "ip", NFT_TABLE], capture_output=True, check=False)
        subprocess.run(["ip", "link", "del", DNS_INTERFACE], capture_output=True, check=False)
        subprocess.run(["ip", "-4", "addr", "flush", "dev", "lo", "label", f"lo:{DNS_INTERFACE}"], capture_output=True, check=False)
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [line.split()[4] for line in f]
        for p in sorted((p for p in points if p.startswith(self.root + "/")), reverse=True):
            subprocess.run(["umount", "-l", p], capture_output=True, check=False)
        shutil.rmtree(self.root, ignore_errors=True)


async def remove_all_sandboxes(socket_path: str) -> None:
    cri = CriClient(socket_path)
    try:
        for sb in await cri.list_pod_sandbox():
            with contextlib.suppress(Exception):
                await cri.stop_pod_sandbox(sb.id)
                await cri.remove_pod_sandbox(sb.id)
    finally:
        await cri.close()


# ---- (a) the raw CRI floor -------------------------------------------------------------------

def floor_pod(name: str, host_network: bool) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4())},
            "spec": {"hostNetwork": host_network, "containers": [
                {"name": "c", "image": IMAGE_NAME, "command": ["sleep", "3600"]}]}}


async def raw_start(cri: CriClient, ctx: SandboxContext, name: str, host_network: bool) -> tuple[float, str]:
    pod = floor_pod(name, host_network)
    t0 = time.perf_counter()
    sb_cfg = sandbox_config(pod, 0, ctx)
    os.makedirs(sb_cfg.log_directory, exist_ok=True)
    del sb_cfg.labels[LABEL_POD_UID]          # keep the agent's relist from adopting/cleaning it
    sid = await cri.run_pod_sandbox(sb_cfg)
    c_cfg = container_config(pod, pod["spec"]["containers"][0], kind="regular", attempt=0, env=(), mounts=())
    del c_cfg.labels[LABEL_POD_UID]
    cid = await cri.create_container(sid, c_cfg, sb_cfg)
    await cri.start_container(cid)
    return time.perf_counter() - t0, sid


async def raw_teardown(cri: CriClient, sids: list[str]) -> None:
    async def one(sid: str) -> None:
        await cri.stop_pod_sandbox(sid)
        await cri.remove_pod_sandbox(sid)
    await asyncio.gather(*(one(s) for s in sids))


async def floor(b: Bench, host_network: bool, burst: bool) -> list[float]:
    cri = CriClient(b.paths.socket)
    ctx = SandboxContext(os.path.join(b.root, "floor-logs"), CLUSTER_DNS, "cluster.local", "nameserver 127.0.0.1\n")
    kind = "h" if host_network else "p"
    try:
        if burst:
            res = await asyncio.gather(*(raw_start(cri, ctx, f"floor-{kind}b-{i}", host_network) for i in range(b.n)))
        else:
            res = [await raw_start(cri, ctx, f"floor-{kind}s-{i}", host_network) for i in range(b.n)]
        await raw_teardown(cri, [sid for _, sid in res])
        return [t for t, _ in res]
    finally:
        await cri.close()


# ---- (b) minik -------------------------------------------------------------------------------

def manifest(name: str, run: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": {"bench": run}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent",
                 "command": ["sleep", "3600"]}]}}


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


class ReadyWatch:
    """A pod watch on label bench=<run>: records when each pod is first seen Ready."""

    def __init__(self, b: Bench, run: str) -> None:
        self.b = b
        self.run = run
        self.ready_at: dict[str, float] = {}
        self.events: dict[str, asyncio.Event] = {}
        self._task: asyncio.Task[None] | None = None

    def event(self, name: str) -> asyncio.Event:
        return self.events.setdefault(name, asyncio.Event())

    async def start(self) -> None:
        _, lst = await self.b.request("GET", f"/api/v1/namespaces/default/pods?labelSelector=bench%3D{self.run}")
        rv = lst["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._loop(rv), name="ready-watch")

    async def _loop(self, rv: str) -> None:
        assert self.b.session is not None
        url = (f"{self.b.mk.url}/api/v1/namespaces/default/pods?watch=1&labelSelector=bench%3D{self.run}"
               f"&resourceVersion={rv}&allowWatchBookmarks=false")
        async with self.b.session.get(url, headers=self.b.headers, ssl=self.b.ssl,
                                      timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            async for line in r.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                pod = ev.get("object") or {}
                name = (pod.get("metadata") or {}).get("name", "")
                if ev.get("type") != "DELETED" and name not in self.ready_at and is_ready(pod):
                    self.ready_at[name] = time.perf_counter()
                    self.event(name).set()

    async def wait(self, name: str, timeout: float = 60.0) -> float:
        await asyncio.wait_for(self.event(name).wait(), timeout)
        return self.ready_at[name]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def delete_run(b: Bench, run: str, timeout: float = 120.0) -> None:
    """Delete the run's pods (grace 0) and wait until neither the API nor the runtime has them."""
    await b.request("DELETE", f"/api/v1/namespaces/default/pods?labelSelector=bench%3D{run}&gracePeriodSeconds=0")
    cri = CriClient(b.paths.socket)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, lst = await b.request("GET", f"/api/v1/namespaces/default/pods?labelSelector=bench%3D{run}")
            sbs = await cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector={"bench": run}))
            if not lst["items"] and not sbs:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"pods of run {run} not gone after {timeout}s")
    finally:
        await cri.close()


async def minik_post(b: Bench, burst: bool) -> list[float]:
    run = f"post-{'b' if burst else 's'}-{TAG}"
    w = ReadyWatch(b, run)
    await w.start()

    async def one(i: int) -> float:
        name = f"{run}-{i}"
        w.event(name)
        t0 = time.perf_counter()
        code, body = await b.request("POST", "/api/v1/namespaces/default/pods", manifest(name, run))
        if code != 201:
            raise RuntimeError(f"create {name}: {code} {body}")
        return await w.wait(name) - t0

    try:
        if burst:
            lat = list(await asyncio.gather(*(one(i) for i in range(b.n))))
        else:
            lat = [await one(i) for i in range(b.n)]
    finally:
        await w.stop()
    await delete_run(b, run)
    return lat


async def minik_kubectl(b: Bench) -> list[float]:
    run = f"kubectl-{TAG}"
    w = ReadyWatch(b, run)
    await w.start()
    env = dict(os.environ, KUBECONFIG=b.mk.kubeconfig)
    cache = tempfile.mkdtemp(prefix="kcache-", dir=b.root)
    lat = []
    try:
        for i in range(b.n):
            name = f"{run}-{i}"
            w.event(name)
            t0 = time.perf_counter()
            p = await asyncio.create_subprocess_exec(
                KUBECTL, f"--cache-dir={cache}", "apply", "-f", "-", stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
            _, err = await p.communicate(json.dumps(manifest(name, run)).encode())
            if p.returncode != 0:
                raise RuntimeError(f"kubectl apply: {err.decode()}")
            lat.append(await w.wait(name) - t0)
    finally:
        await w.stop()
    await delete_run(b, run)
    return lat


async def kubectl_noop(b: Bench) -> list[float]:
    """kubectl's own cost: `kubectl get --raw /version` (process start, kubeconfig, TLS)."""
    env = dict(os.environ, KUBECONFIG=b.mk.kubeconfig)
    out = []
    for _ in range(5):
        t0 = time.perf_counter()
        p = await asyncio.create_subprocess_exec(KUBECTL, "get", "--raw", "/version",
                                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        await p.wait()
        out.append(time.perf_counter() - t0)
    return out


# ---- idle --------------------------------------------------------------------------------------

async def idle(b: Bench, seconds: float) -> dict[str, tuple[float, float]]:
    """{process: (RSS MiB, CPU % of one core over `seconds`)} for minik, containerd, shims."""
    cd = b.containerd_pid()
    shims = shim_pids(b.paths.socket)
    groups = {"minik": [b.server_pid], "containerd": [cd], f"shims ({len(shims)})": shims}
    before = {k: sum(cpu_ticks(p) for p in ps) for k, ps in groups.items()}
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    dt = time.monotonic() - t0
    out = {}
    for k, ps in groups.items():
        ticks = sum(cpu_ticks(p) for p in ps) - before[k]
        out[k] = (sum(rss_kb(p) for p in ps) / 1024, 100.0 * ticks / CLK_TCK / dt)
    return out


async def start_idle_pods(b: Bench, count: int) -> str:
    run = f"idle-{TAG}"
    w = ReadyWatch(b, run)
    await w.start()
    try:
        for i in range(count):
            w.event(f"{run}-{i}")
            code, body = await b.request("POST", "/api/v1/namespaces/default/pods", manifest(f"{run}-{i}", run))
            if code != 201:
                raise RuntimeError(f"create: {code} {body}")
        for i in range(count):
            await w.wait(f"{run}-{i}", timeout=180)
    finally:
        await w.stop()
    return run


# ---- report ------------------------------------------------------------------------------------

def row(label: str, xs: list[float], base: list[float] | None = None) -> str:
    s = f"  {label:<44} p50 {p50(xs):7.1f} ms   p99 {pct(xs, 0.99):7.1f} ms"
    if base:
        ratio = p50(xs) / p50(base)
        ok50 = "ok" if ratio <= TARGET_RATIO else "MISS"
        ok99 = "ok" if pct(xs, 0.99) <= TARGET_P99_MS else "MISS"
        s += f"   {ratio:5.2f}x floor [{ok50}]  p99 [{ok99}]"
    return s


async def main_async(b: Bench, idle_s: float, idle_pods: int) -> None:
    async with aiohttp.ClientSession() as session:
        b.session = session
        await b.wait_node_ready()
        # Warm-up: the first pod pays for image unpack, first CNI ADD, log dirs; not measured.
        warm = await minik_post(_one(b), False)
        wf = await floor(_one(b), False, False)
        print(f"warm-up (not counted): minik {warm[0] * 1000:.0f} ms, raw {wf[0] * 1000:.0f} ms")

        results: dict[str, list[float]] = {}
        steps: list[tuple[str, Callable[[], Awaitable[list[float]]]]] = [
            ("floor_seq", lambda: floor(b, False, False)),
            ("floor_host_seq", lambda: floor(b, True, False)),
            ("minik_seq", lambda: minik_post(b, False)),
            ("floor_burst", lambda: floor(b, False, True)),
            ("minik_burst", lambda: minik_post(b, True)),
            ("kubectl_seq", lambda: minik_kubectl(b)),
            ("kubectl_noop", lambda: kubectl_noop(b)),
        ]
        for key, fn in steps:
            t0 = time.perf_counter()
            results[key] = await fn()
            results[key + "_wall"] = [time.perf_counter() - t0]

        print(f"\npod start, N={b.n} (busybox `sleep 3600`, one container; minik pods get the default "
              "ServiceAccount token volume, as kubectl-applied pods do)")
        print(" (a) floor: raw CRI RunPodSandbox + CreateContainer + StartContainer")
        print(row("one at a time, pod network (CNI shim)", results["floor_seq"]))
        print(row("one at a time, host network", results["floor_host_seq"]))
        print(row(f"burst of {b.n}, pod network", results["floor_burst"])
              + f"   wall {results['floor_burst_wall'][0] * 1000:.0f} ms")
        print(" (b) minik: HTTPS POST (aiohttp, keep-alive) → Ready=True on a watch")
        print(row("one at a time", results["minik_seq"], results["floor_seq"]))
        print(row(f"burst of {b.n}", results["minik_burst"], results["floor_burst"]))
        print("     kubectl apply -f - → Ready (includes kubectl process start)")
        print(row("one at a time", results["kubectl_seq"], results["floor_seq"]))
        print(row("kubectl get --raw /version alone", results["kubectl_noop"]))
        print(f" targets: p50 ≤ {TARGET_RATIO}x the floor, p99 ≤ {TARGET_P99_MS:.0f} ms")

        print(f"\nidle over {idle_s:.0f} s (RSS MiB, CPU % of one core from utime+stime)")
        for label, count in (("0 pods", 0), (f"{idle_pods} pods", idle_pods)):
            run = await start_idle_pods(b, count) if count else ""
            if count:
                await asyncio.sleep(3)       # let status writes and probes settle
            res = await idle(b, idle_s)
            print(f"  {label:<8} " + "   ".join(f"{k}: {rss:6.1f} MiB {cpu:5.2f}%" for k, (rss, cpu) in res.items()))
            if run:
                await delete_run(b, run, timeout=180)


def _one(b: Bench) -> Bench:
    """The same bench with N=1 (warm-up)."""
    c = Bench.__new__(Bench)
    c.__dict__.update(b.__dict__)
    c.n = 1
    return c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds of each idle CPU sample")
    ap.add_argument("--idle-pods", type=int, default=20)
    ap.add_argument("--keep", action="store_true", help="leave server, containerd and files running")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (containerd, netlink, nftables)")
    b = Bench(args.n, args.keep)
    try:
        b.start_server()
        asyncio.run(main_async(b, args.idle, args.idle_pods))
    finally:
        b.cleanup()


if __name__ == "__main__":
    main()
