"""Fixtures for the agent unit tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fakecri import FakeCri, serve_fake_cri


@pytest.fixture
async def fake_cri() -> AsyncIterator[FakeCri]:
    async with serve_fake_cri() as fake:
        yield fake
