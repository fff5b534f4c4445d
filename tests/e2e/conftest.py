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


# ---- agent-enabled servers (real containerd, pod network, registry mirror) --------------------

@pytest.fixture(scope="session")
def local_registry() -> Iterator[str]:
    """A local registry (per xdist worker) holding busybox as docker.io's mirror; yields host:port."""
    from tests.e2e.agent_fixtures import agent_skip_reason, seed_registry
    from tests.support.registry import LocalRegistry

    _need_kubectl()
    reason = agent_skip_reason()
    if reason:
        pytest.skip(reason)
    reg = LocalRegistry().start()
    try:
        seed_registry(reg)
        yield reg.host
    finally:
        reg.stop()


@pytest.fixture(scope="module")
def node_minik(local_registry: str) -> Iterator[Minik]:
    """One agent-enabled server per test module whose Node is Ready; reaped afterwards
    (containerd, pods, bridge and nft table outlive the daemon by design)."""
    from tests.e2e.agent_fixtures import node_server

    with node_server(local_registry) as (m, _net):
        yield m
