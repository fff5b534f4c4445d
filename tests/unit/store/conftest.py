"""Fixtures shared by the store tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minik.store.store import Store

LEASES = "coordination.k8s.io/leases"


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state.db")


@pytest.fixture
async def store(db_path: str) -> AsyncIterator[Store]:
    s = Store(db_path, volatile=frozenset({LEASES}))
    await s.start()
    try:
        yield s
    finally:
        await s.close()
