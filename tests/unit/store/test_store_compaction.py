"""Compaction and WAL checkpointing keep the database bounded; idle runs do nothing."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from minik.store.store import Store
from minik.store.types import Obj


def make_obj(name: str, **fields: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default"}, **fields}


def row_count(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT count(*) FROM log").fetchone()[0])
    finally:
        conn.close()


def disk_bytes(path: str) -> int:
    return sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))


async def churn(s: Store, rounds: int) -> None:
    for r in range(rounds):
        for k in range(10):
            obj = make_obj(f"cm{k}", data="x" * 2000, round=r)
            if s.get("configmaps", "default", f"cm{k}") is None:
                await s.create("configmaps", obj)
            else:
                await s.update("configmaps", obj)


async def test_compaction_shrinks_rows_and_file(db_path: str) -> None:
    s = Store(db_path, history=20)
    await s.start()
    await churn(s, 100)
    await s.create("configmaps", make_obj("gone"))
    await s.delete("configmaps", "default", "gone")
    assert row_count(db_path) == 1002
    before = disk_bytes(db_path)

    await s.compact()
    # Kept: the last 20 revisions of history plus the newest row of every live key.
    assert row_count(db_path) <= 20 + 10
    after = disk_bytes(db_path)
    assert after < before / 4, (before, after)
    assert not os.path.exists(db_path + "-wal") or os.path.getsize(db_path + "-wal") == 0
    stats = s.stats()
    assert stats["compactions"] == 1 and stats["compacted_rows"] == 1002 - row_count(db_path)

    # No writes since the last run: nothing happens.
    await s.compact()
    assert s.stats()["compactions"] == 1
    state = s.list("configmaps")
    await s.close()

    s = Store(db_path, history=20)
    await s.start()
    assert s.list("configmaps") == state
    await s.close()


async def test_file_does_not_grow_under_updates_of_the_same_keys(db_path: str) -> None:
    s = Store(db_path, history=20)
    await s.start()
    sizes = []
    for _ in range(6):
        await churn(s, 30)
        await s.compact()
        sizes.append(disk_bytes(db_path))
    assert max(sizes[1:]) <= sizes[0] * 1.5, sizes
    await s.close()


async def test_restart_compacts_leftover_history(db_path: str) -> None:
    s = Store(db_path, history=5)
    await s.start()
    await churn(s, 20)
    await s.close()  # no compaction ran in this process
    s = Store(db_path, history=5)
    await s.start()
    await s.compact()  # garbage found at load time is enough to run
    assert row_count(db_path) <= 5 + 10
    await s.close()
