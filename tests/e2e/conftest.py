"""Fixtures that start real `minik server` processes (control plane only: --disable-agent)."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Iterator

import pytest

from tests.e2e.minikd import KUBECTL, Minik, free_port


def _need_kubectl() -> None:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"{KUBECTL} is not installed (the e2e suite drives the real kubectl)")


@pytest.fixture(scope="module")
def minik() -> Iterator[Minik]:
    """One server per test module, in its own directory and port."""
    _need_kubectl()
    root = tempfile.mkdtemp(prefix="minik-e2e-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    try:
        yield m
    finally:
        m.stop()
        if os.environ.get("MINIK_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture()
def fresh_minik() -> Iterator[Minik]:
    """A server of the test's own (for restart and kill -9 tests)."""
    _need_kubectl()
    root = tempfile.mkdtemp(prefix="minik-e2e-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    try:
        yield m
    finally:
        if m.proc is not None and m.proc.poll() is None:
            m.stop()
        if os.environ.get("MINIK_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(root, ignore_errors=True)
