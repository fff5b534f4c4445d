"""The connection settings the store depends on: durability (WAL, synchronous FULL) and a small
page cache (reads come from the watch cache; a 2 MiB SQLite cache stayed resident at idle)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from minik.store.db import SQLITE_CACHE_KIB, _set_pragmas


def test_pragmas_make_commits_durable_and_keep_the_page_cache_small(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "state.db")
    try:
        _set_pragmas(conn, None)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (2,)    # FULL
        assert conn.execute("PRAGMA cache_size").fetchone() == (-SQLITE_CACHE_KIB,)
        assert SQLITE_CACHE_KIB <= 512
    finally:
        conn.close()
