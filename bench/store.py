"""Micro benchmark of the store's write path: acknowledged creates/s at 1 and 8 writers.

Prints the store's rate next to raw sqlite3 baselines measured in the same run on the same disk
(WAL, synchronous=FULL): one commit per insert, and inserts batched by 8 per commit.
Run: /opt/minik-dev/bin/python bench/store.py [--count N] [--dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time

from minik.store.store import Store


def make_pod(name: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]},
    }


def raw_sqlite(path: str, count: int, batch: int) -> float:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE log (revision INTEGER PRIMARY KEY, name TEXT, value TEXT)")
    start = time.perf_counter()
    for i in range(0, count, batch):
        conn.executemany(
            "INSERT INTO log VALUES (?, ?, ?)",
            [(j + 1, f"p{j}", json.dumps(make_pod(f"p{j}"))) for j in range(i, i + batch)],
        )
        conn.commit()
    elapsed = time.perf_counter() - start
    conn.close()
    return count / elapsed


async def store_creates(path: str, count: int, writers: int) -> tuple[float, dict[str, int]]:
    store = Store(path)
    await store.start()
    per_writer = count // writers

    async def writer(w: int) -> None:
        for j in range(per_writer):
            await store.create("pods", make_pod(f"p-{w}-{j}"))

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    stats = store.stats()
    await store.close()
    return per_writer * writers / elapsed, stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="directory on the disk to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        base1 = raw_sqlite(os.path.join(tmp, "raw1.db"), args.count, 1)
        base8 = raw_sqlite(os.path.join(tmp, "raw8.db"), args.count, 8)
        print(f"raw sqlite, 1 insert/commit : {base1:9.0f} inserts/s")
        print(f"raw sqlite, 8 inserts/commit: {base8:9.0f} inserts/s")
        for writers in (1, 8):
            rate, stats = asyncio.run(
                store_creates(os.path.join(tmp, f"store{writers}.db"), args.count, writers)
            )
            per_commit = stats["rows"] / max(stats["commits"], 1)
            print(
                f"store, {writers} writer(s)        : {rate:9.0f} creates/s "
                f"({rate / base1:.2f}x raw single, {per_commit:.1f} rows/commit)"
            )


if __name__ == "__main__":
    main()
