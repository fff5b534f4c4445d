"""Shared fixtures for the patch tests: one schema index (loading it costs ~100 ms)."""

from __future__ import annotations

import pytest

from minik.apis.schema import Schemas


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas()
