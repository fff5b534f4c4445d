"""Workload controllers benchmark: Deployment, Indexed Job and StatefulSet against raw CRI on the
same containerd, in one run; then idle controller CPU with pods and CronJobs.

Reuses bench/podstart.py's harness (one `minik server` with its own containerd, bridge, nft table
and CIDRs, busybox imported through the airgap directory). Rows:

  (a) floor: raw CRI (RunPodSandbox + CreateContainer + StartContainer) for N pods, at most P at
      a time — all started, then all removed; and for N run-to-completion pods (`true`): started
      at most P at a time, each waited for until its container exits, then removed;
  (b) a Deployment scaled 0 → N: until N pods are Ready; then N → 0: until neither the API nor
      CRI has any of them; ratio against (a) at the same parallelism (target ≤ 1.3x);
  (c) an Indexed Job of N completions, parallelism P, `true`: until Complete (target ≤ 1.3x);
  (d) a StatefulSet of K with OrderedReady: time per ordinal against one pod POSTed → Ready
      (target ≤ 1.2x);
  (e) idle with N Deployment pods and 20 CronJobs (schedules that do not fire in the window):
      minik's CPU % of one core over S seconds, RSS, and store revisions written in the window
      (expected 0).

N defaults to 30 (not 100): the machine these numbers come from is a shared 2-core VM; run with
`--n 100` on a machine of your own.

    python bench/controllers.py [--n 30] [--parallelism 10] [--sts 20] [--idle 30] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import aiohttp  # noqa: E402

import podstart as ps  # noqa: E402
from minik.agent.containers import container_config  # noqa: E402
from minik.agent.cri import CriClient, pb  # noqa: E402
from minik.agent.sandbox import LABEL_POD_UID, SandboxContext, sandbox_config  # noqa: E402

Obj = dict[str, object]
NS = "default"


# ---- (a) floors ---------------------------------------------------------------------------------
async def raw_run(cri: CriClient, ctx: SandboxContext, name: str, command: list[str], wait_exit: bool) -> str:
    pod = {"metadata": {"name": name, "namespace": NS, "uid": str(uuid.uuid4())},
           "spec": {"containers": [{"name": "c", "image": ps.IMAGE_NAME, "command": command}]}}
    sb_cfg = sandbox_config(pod, 0, ctx)
    os.makedirs(sb_cfg.log_directory, exist_ok=True)
    del sb_cfg.labels[LABEL_POD_UID]
    sid = await cri.run_pod_sandbox(sb_cfg)
    c_cfg = container_config(pod, pod["spec"]["containers"][0], kind="regular", attempt=0, env=(), mounts=())  # type: ignore[index]
    del c_cfg.labels[LABEL_POD_UID]
    cid = await cri.create_container(sid, c_cfg, sb_cfg)
    await cri.start_container(cid)
    if wait_exit:
        while (await cri.container_status(cid)).status.state != pb.CONTAINER_EXITED:
            await asyncio.sleep(0.05)
        await cri.stop_pod_sandbox(sid)
        await cri.remove_pod_sandbox(sid)
    return sid


async def floor(b: ps.Bench, n: int, par: int, job: bool) -> tuple[float, float]:
    """(seconds to start all / run all to completion, seconds to remove all) at parallelism `par`."""
    cri = CriClient(b.paths.socket)
    ctx = SandboxContext(os.path.join(b.root, "floor-logs"), ps.CLUSTER_DNS, "cluster.local", "nameserver 127.0.0.1\n")
    sem = asyncio.Semaphore(par)
    tag = uuid.uuid4().hex[:4]

    async def one(i: int) -> str:
        async with sem:
            return await raw_run(cri, ctx, f"floor-{tag}-{i}", ["true"] if job else ["sleep", "3600"], job)
    try:
        t0 = time.perf_counter()
        sids = await asyncio.gather(*(one(i) for i in range(n)))
        up = time.perf_counter() - t0
        if job:
            return up, 0.0
        t0 = time.perf_counter()

        async def down(sid: str) -> None:
            async with sem:
                await cri.stop_pod_sandbox(sid)
                await cri.remove_pod_sandbox(sid)
        await asyncio.gather(*(down(s) for s in sids))
        return up, time.perf_counter() - t0
    finally:
        await cri.close()


# ---- (b)-(d) minik ---------------------------------------------------------------------------------
def template(app: str, command: list[str], restart: str = "Always") -> Obj:
    return {"metadata": {"labels": {"app": app}},
            "spec": {"terminationGracePeriodSeconds": 0, "restartPolicy": restart, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": command}]}}


async def poll(b: ps.Bench, path: str, pred: object, timeout: float = 600.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code, obj = await b.request("GET", path)
        if code == 200 and pred(obj):  # type: ignore[operator]
            return obj
        await asyncio.sleep(0.1)
    raise RuntimeError(f"timed out on {path}:\n{b.mk.log_tail()}")


async def pods_gone(b: ps.Bench, app: str, timeout: float = 600.0) -> None:
    cri = CriClient(b.paths.socket)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, lst = await b.request("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3D{app}")
            sbs = [s for s in await cri.list_pod_sandbox() if s.metadata.name.startswith(app)]
            if not lst["items"] and not sbs:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"pods of {app} not gone")
    finally:
        await cri.close()


async def deployment(b: ps.Bench, n: int, app: str = "bdep") -> tuple[float, float]:
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": app},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": app}}, "template": template(app, ["sleep", "3600"])}}
    code, out = await b.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", body)
    assert code == 201, out
    path = f"/apis/apps/v1/namespaces/{NS}/deployments/{app}"
    t0 = time.perf_counter()
    await scale(b, path, n)
    await poll(b, path, lambda d: (d.get("status") or {}).get("readyReplicas") == n)
    up = time.perf_counter() - t0
    t0 = time.perf_counter()
    await scale(b, path, 0)
    await pods_gone(b, app)
    return up, time.perf_counter() - t0


async def scale(b: ps.Bench, path: str, n: int) -> None:
    assert b.session is not None
    async with b.session.patch(b.mk.url + path, json={"spec": {"replicas": n}}, ssl=b.ssl,
                               headers={**b.headers, "Content-Type": "application/merge-patch+json"}) as r:
        assert r.status == 200, await r.text()


async def indexed_job(b: ps.Bench, n: int, par: int, name: str = "bjob") -> float:
    body = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"completions": n, "parallelism": par, "completionMode": "Indexed",
                     "template": template(name, ["true"], "Never")}}
    t0 = time.perf_counter()
    code, out = await b.request("POST", f"/apis/batch/v1/namespaces/{NS}/jobs", body)
    assert code == 201, out
    await poll(b, f"/apis/batch/v1/namespaces/{NS}/jobs/{name}",
               lambda j: any(c["type"] == "Complete" and c["status"] == "True" for c in (j.get("status") or {}).get("conditions") or []))
    took = time.perf_counter() - t0
    await b.request("DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/{name}?propagationPolicy=Background")
    await pods_gone(b, name)
    return took


class PodTimes:
    """A pod watch on label app=<app>: when each pod was first seen and first seen Ready."""

    def __init__(self, b: ps.Bench, app: str) -> None:
        self.b, self.app = b, app
        self.added: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        _, lst = await self.b.request("GET", f"/api/v1/namespaces/{NS}/pods?labelSelector=app%3D{self.app}")
        self._task = asyncio.create_task(self._loop(lst["metadata"]["resourceVersion"]), name="pod-times")

    async def _loop(self, rv: str) -> None:
        assert self.b.session is not None
        url = f"{self.b.mk.url}/api/v1/namespaces/{NS}/pods?watch=1&labelSelector=app%3D{self.app}&resourceVersion={rv}"
        async with self.b.session.get(url, headers=self.b.headers, ssl=self.b.ssl,
                                      timeout=aiohttp.ClientTimeout(total=None, sock_read=None)) as r:
            async for line in r.content:
                if not line.strip():
                    continue
                ev = json.loads(line)
                pod = ev.get("object") or {}
                name = (pod.get("metadata") or {}).get("name", "")
                now = time.perf_counter()
                self.added.setdefault(name, now)
                if ev.get("type") != "DELETED" and ps.is_ready(pod):
                    self.ready.setdefault(name, now)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def statefulset(b: ps.Bench, k: int, name: str = "bsts") -> tuple[float, list[float], list[float]]:
    """Total seconds, then per ordinal: previous Ready → created, created → Ready."""
    body = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": k, "serviceName": name, "selector": {"matchLabels": {"app": name}},
                     "template": template(name, ["sleep", "3600"])}}
    w = PodTimes(b, name)
    await w.start()
    t0 = time.perf_counter()
    code, out = await b.request("POST", f"/apis/apps/v1/namespaces/{NS}/statefulsets", body)
    assert code == 201, out
    await poll(b, f"/apis/apps/v1/namespaces/{NS}/statefulsets/{name}", lambda s: (s.get("status") or {}).get("readyReplicas") == k)
    took = time.perf_counter() - t0
    await w.stop()
    gaps = [w.added[f"{name}-{i}"] - w.ready[f"{name}-{i - 1}"] for i in range(1, k)]
    starts = [w.ready[f"{name}-{i}"] - w.added[f"{name}-{i}"] for i in range(k)]
    await b.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/statefulsets/{name}?propagationPolicy=Background")
    await pods_gone(b, name)
    return took, gaps, starts


async def revision(b: ps.Bench) -> int:
    _, lst = await b.request("GET", "/api/v1/namespaces/default/pods?limit=1")
    return int(lst["metadata"]["resourceVersion"])


def db_files(b: ps.Bench) -> dict[str, tuple[int, int]]:
    """(size, mtime) of the SQLite database and its WAL: unchanged means nothing reached the disk."""
    d = os.path.join(b.mk.data_dir, "server", "db")
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith("-shm"):
            continue   # shared memory, not disk wear
        st = os.stat(os.path.join(d, f))
        out[f] = (st.st_size, st.st_mtime_ns)
    return out


async def idle_with_load(b: ps.Bench, n: int, cronjobs: int, seconds: float) -> None:
    res0 = await ps.idle(b, seconds)
    body = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle"},
            "spec": {"replicas": n, "selector": {"matchLabels": {"app": "idle"}}, "template": template("idle", ["sleep", "3600"])}}
    await b.request("POST", f"/apis/apps/v1/namespaces/{NS}/deployments", body)
    for i in range(cronjobs):
        cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": f"cj-{i}"},
              "spec": {"schedule": f"{i % 60} 3 1 1 *", "jobTemplate": {"spec": {"template": template(f"cj{i}", ["true"], "Never")}}}}
        code, out = await b.request("POST", f"/apis/batch/v1/namespaces/{NS}/cronjobs", cj)
        assert code == 201, out
    await poll(b, f"/apis/apps/v1/namespaces/{NS}/deployments/idle", lambda d: (d.get("status") or {}).get("readyReplicas") == n)
    await asyncio.sleep(5)
    rv0, files0 = await revision(b), db_files(b)
    res = await ps.idle(b, seconds)
    rv1, files1 = await revision(b), db_files(b)
    print(f"\n(e) idle over {seconds:.0f} s (CPU % of one core from utime+stime; RSS MiB)")
    print(f"  empty                      minik {res0['minik'][1]:5.2f}%  RSS {res0['minik'][0]:6.1f} MiB")
    print(f"  {n} pods + {cronjobs} CronJobs       minik {res['minik'][1]:5.2f}%  RSS {res['minik'][0]:6.1f} MiB"
          f"   [{'ok' if res['minik'][1] <= 1.0 else 'MISS'} ≤ 1%]")
    changed = [f for f in files1 if files1[f] != files0.get(f)]
    print(f"  database files written in the window: {', '.join(changed) or 'none'} "
          f"(revisions {rv1 - rv0}: the node's Lease renewals, kept in memory)")
    await b.request("DELETE", f"/apis/apps/v1/namespaces/{NS}/deployments/idle")


def ratio(x: float, base: float, target: float) -> str:
    r = x / base if base > 0 else float("nan")
    return f"{r:5.2f}x [{'ok' if r <= target else 'MISS'} ≤ {target}x]"


async def main_async(b: ps.Bench, n: int, par: int, k: int, idle_s: float, only_sts: bool = False) -> None:
    async with aiohttp.ClientSession() as session:
        b.session = session
        await b.wait_node_ready()
        warm = await ps.minik_post(ps._one(b), False)
        await floor(b, 1, 1, False)
        print(f"warm-up (not counted): one pod {warm[0] * 1000:.0f} ms")
        if only_sts:
            one = await ps.minik_post(b, False)
            s, gaps, starts = await statefulset(b, k)
            print(f"(d) StatefulSet of {k}: {s / k * 1000:6.0f} ms per ordinal vs one pod p50 {ps.p50(one):6.0f} ms "
                  f"{ratio(s / k, ps.p50(one) / 1000, 1.2)}")
            print(f"  previous Ready seen → pod created p50 {ps.p50(gaps):5.0f} ms; created → Ready p50 {ps.p50(starts):5.0f} ms")
            return

        f_up, f_down = await floor(b, n, par, job=False)
        d_up, d_down = await deployment(b, n)
        fj, _ = await floor(b, n, par, job=True)
        j = await indexed_job(b, n, par)
        one = await ps.minik_post(b, False) if b.n else []
        s, gaps, starts = await statefulset(b, k)

        print(f"\n(a)/(b) {n} pods, raw CRI at parallelism {par} vs a Deployment 0 → {n} → 0")
        print(f"  raw CRI: all started {f_up:6.2f} s   all removed {f_down:6.2f} s")
        print(f"  Deployment: 0→{n} Ready {d_up:6.2f} s {ratio(d_up, f_up, 1.3)}   {n}→0 gone {d_down:6.2f} s {ratio(d_down, f_down, 1.3)}")
        print(f"(c) {n} completions, parallelism {par}, `true`")
        print(f"  raw CRI run-to-exit: {fj:6.2f} s   Indexed Job → Complete: {j:6.2f} s {ratio(j, fj, 1.3)}")
        per = s / k
        single = ps.p50(one) / 1000
        print(f"(d) StatefulSet of {k}, OrderedReady: {s:6.2f} s, {per * 1000:6.0f} ms per ordinal "
              f"vs one pod POST → Ready p50 {single * 1000:6.0f} ms (N={len(one)}) {ratio(per, single, 1.2)}")
        print(f"  per ordinal: previous Ready seen → pod created p50 {ps.p50(gaps):5.0f} ms; created → Ready p50 {ps.p50(starts):5.0f} ms")
        await idle_with_load(b, n, 20, idle_s)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--parallelism", type=int, default=10)
    ap.add_argument("--sts", type=int, default=20)
    ap.add_argument("--single", type=int, default=5, help="single pod starts for (d)'s baseline")
    ap.add_argument("--idle", type=float, default=30.0)
    ap.add_argument("--only-sts", action="store_true", help="only the StatefulSet row (d)")
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (containerd, netlink, nftables)")
    b = ps.Bench(args.single, args.keep)
    try:
        b.start_server()
        asyncio.run(main_async(b, args.n, args.parallelism, args.sts, args.idle, args.only_sts))
    finally:
        with contextlib.suppress(Exception):
            b.cleanup()


if __name__ == "__main__":
    main()
