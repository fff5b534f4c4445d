"""Secrets-at-rest benchmark: the cost of AES-GCM on the write path and of a key rotation.

Runs two real servers one after the other, one with `--no-secrets-encryption` (the baseline) and
one with encryption (the default), creates the same Secrets (1 KiB values) at 8 concurrent clients
on each, and prints creates/s with the ratio to the baseline; then times `minik secrets-encrypt
rotate` against the running encrypted server (every Secret re-encrypted) and its start-up time
with those Secrets against the baseline's.

    python bench/secrets.py [--n 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time

import aiohttp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from bench.api import timed_requests  # noqa: E402
from tests.e2e.minikd import Minik, free_port  # noqa: E402


async def creates(m: Minik, n: int) -> float:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    value = "x" * 1024
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=64),
                                     headers={"Authorization": f"Bearer {m.token()}"}) as s:
        url = m.url + "/api/v1/namespaces/default/secrets"
        reqs = [("POST", url, {"metadata": {"name": f"s{i}"}, "stringData": {"v": value}}) for i in range(n)]
        dt, _lat, err = await timed_requests(s, reqs, 8)
    assert err == 0, f"{err} creates failed"
    return n / dt


def run_one(extra: list[str], n: int, rotate: bool) -> tuple[float, float, float]:
    root = tempfile.mkdtemp(prefix="minik-bench-secrets-")
    m = Minik(root, free_port(), ["--disable-agent", *extra])
    try:
        m.start()
        rate = asyncio.run(creates(m, n))
        rotate_s = float("nan")
        if rotate:
            t = time.perf_counter()
            subprocess.run([sys.executable, "-m", "minik", "secrets-encrypt", "rotate", "--data-dir", m.data_dir],
                           check=True, capture_output=True, timeout=600)
            rotate_s = time.perf_counter() - t
        m.stop()
        t = time.perf_counter()
        m.start()
        restart_s = time.perf_counter() - t
        m.stop()
        return rate, rotate_s, restart_s
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=2000)
    a = p.parse_args()
    base_rate, _, base_start = run_one(["--no-secrets-encryption"], a.n, rotate=False)
    rate, rotate_s, start = run_one([], a.n, rotate=True)
    print(f"minik Secrets-at-rest benchmark (n={a.n} Secrets of 1 KiB, 8 clients)\n")
    print(f"Secret creates/s, plaintext (baseline): {base_rate:8.0f}/s")
    print(f"Secret creates/s, AES-GCM (default):    {rate:8.0f}/s   → {rate / base_rate:5.2f}x the baseline")
    print(f"rotate through the CLI ({a.n} Secrets re-encrypted): {rotate_s:6.2f} s")
    print(f"restart with {a.n} Secrets: {start:5.2f} s encrypted vs {base_start:5.2f} s plaintext "
          f"→ {start / base_start:5.2f}x")


if __name__ == "__main__":
    main()
