"""Admission cost benchmark: pod creates in a namespace with a ResourceQuota and a LimitRange
against creates in a plain namespace, same server, same run.

One `minik server --disable-agent`; an aiohttp session with keep-alive and the admin token. Two
namespaces: `plain` (nothing) and `governed` (a LimitRange with container defaults and bounds, and
a quota on pods, requests.cpu, limits.memory and count/configmaps). For each, N pod creates one
at a time (then N as a burst of concurrent creates); prints p50 per create and the ratio
governed/plain. The governed namespace counts its pods from the store's cache on every create, so
the ratio grows with the pods already there: the rows say how many.

    python bench/admission.py [--n 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import time
from typing import Any

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.e2e.minikd import Minik, free_port  # noqa: E402

Obj = dict[str, Any]


def pod(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


async def run(m: Minik, n: int) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    headers = {"Authorization": f"Bearer {m.token()}"}
    async with aiohttp.ClientSession(m.url, headers=headers, connector=aiohttp.TCPConnector(ssl=ctx, limit=32)) as s:
        async def post(path: str, body: Obj) -> None:
            async with s.post(path, json=body) as r:
                if r.status != 201:
                    raise SystemExit(f"{path}: {r.status} {await r.text()}")

        for ns in ("plain", "governed"):
            await post("/api/v1/namespaces", {"metadata": {"name": ns}})
        await post("/api/v1/namespaces/governed/limitranges", {"metadata": {"name": "lr"}, "spec": {"limits": [{
            "type": "Container", "default": {"cpu": "100m", "memory": "64Mi"}, "defaultRequest": {"cpu": "10m", "memory": "32Mi"},
            "max": {"cpu": "2"}, "min": {"cpu": "1m"}}]}})
        await post("/api/v1/namespaces/governed/resourcequotas", {"metadata": {"name": "q"}, "spec": {"hard": {
            "pods": str(4 * n), "requests.cpu": "1000", "limits.memory": "1000Gi", "count/configmaps": "100"}}})

        async def one_by_one(ns: str, prefix: str) -> list[float]:
            out = []
            for i in range(n):
                t = time.perf_counter()
                await post(f"/api/v1/namespaces/{ns}/pods", pod(f"{prefix}-{i}"))
                out.append(time.perf_counter() - t)
            return out

        async def burst(ns: str, prefix: str) -> float:
            t = time.perf_counter()
            await asyncio.gather(*(post(f"/api/v1/namespaces/{ns}/pods", pod(f"{prefix}-{i}")) for i in range(n)))
            return time.perf_counter() - t

        await one_by_one("plain", "warm")       # warm-up: imports, caches, TLS session
        rows: list[tuple[str, float, float]] = []
        for label, ns in (("plain", "plain"), ("quota+limits", "governed")):
            seq = statistics.median(await one_by_one(ns, "seq"))
            b = await burst(ns, "burst")
            rows.append((label, seq, b))
        base_seq, base_burst = rows[0][1], rows[0][2]
        print(f"{'namespace':14} {'create p50 ms (0→' + str(n) + ' pods)':>26} {'ratio':>6} {'burst of ' + str(n) + ' s':>13} {'ratio':>6}")
        for label, seq, b in rows:
            print(f"{label:14} {seq * 1000:26.2f} {seq / base_seq:6.2f} {b:13.2f} {b / base_burst:6.2f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=200)
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="minik-bench-adm-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    try:
        asyncio.run(run(m, args.n))
    finally:
        m.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
