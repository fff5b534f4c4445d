"""Shared fixtures for integration tests against a real containerd and a local registry.

`runtime` starts a private containerd through `minik.agent.containerd.Containerd` (own root,
state and socket under a short /tmp directory, so tests run in parallel with each other and
with anything else on the host), imports the pause image and tears everything down: sandboxes
removed through CRI, containerd killed, leftover mounts unmounted, files deleted.
`registry` runs `docker-registry serve` on a free loopback port with storage in a temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from minik.agent.containerd import Containerd, ContainerdPaths
from minik.agent.cri import CriClient
from minik.agent.hostcheck import HostFacts, check_host
from minik.agent.images import Images, find_pause_source


def _runtime_skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root to run containerd"
    missing = [b for b in ("containerd", "ctr", "runc", "containerd-shim-runc-v2")
               if shutil.which(b) is None]
    if missing:
        return f"containerd not installed (missing {', '.join(missing)})"
    return ""


@dataclass
class RuntimeEnv:
    base: str
    containerd: Containerd
    cri: CriClient
    images: Images
    facts: HostFacts
    pause_image: str

    @property
    def log_root(self) -> str:
        return os.path.join(self.base, "logs")


def _unmount_under(base: str) -> None:
    # Deepest first; lazy so a busy mount cannot fail the teardown.
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(base + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture
async def runtime() -> AsyncIterator[RuntimeEnv]:
    reason = _runtime_skip_reason()
    if reason:
        pytest.skip(reason)
    # Short base path: the containerd socket (plus ".ttrpc") must fit in sun_path (108 bytes).
    base = tempfile.mkdtemp(prefix="mk-cri-", dir="/tmp")
    data_dir, run_dir = os.path.join(base, "data"), os.path.join(base, "run")
    paths = ContainerdPaths.from_dirs(data_dir, run_dir)
    facts = await asyncio.to_thread(check_host, os.path.join(data_dir, "agent"))
    source = find_pause_source()
    pause_image = await asyncio.to_thread(source.image_ref)
    cd = Containerd(paths, facts, pause_image, backoff_initial=0.2, backoff_max=1.0,
                    ready_timeout=30.0)
    cri = CriClient(cd.endpoint)
    try:
        await cd.start()
        images = Images(cri, cd.endpoint, os.path.join(data_dir, "agent", "images-work"),
                        snapshotter=facts.snapshotter)
        await images.ensure_pause_image(source)
        yield RuntimeEnv(base, cd, cri, images, facts, pause_image)
    finally:
        with contextlib.suppress(Exception):
            if cd.ready:
                for sandbox in await cri.list_pod_sandbox():
                    with contextlib.suppress(Exception):
                        await cri.stop_pod_sandbox(sandbox.id)
                        await cri.remove_pod_sandbox(sandbox.id)
        await cri.close()
        await cd.stop(kill=True)
        await asyncio.to_thread(_unmount_under, base)
        shutil.rmtree(base, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def registry() -> Iterator[str]:
    """A plain-HTTP registry on 127.0.0.1:<port>; yields "127.0.0.1:<port>"."""
    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry not installed (apt package docker-registry)")
    base = tempfile.mkdtemp(prefix="mk-reg-")
    port = _free_port()
    cfg = os.path.join(base, "config.yml")
    with open(cfg, "w", encoding="utf-8") as f:
        f.write(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {base}/data\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
    logf = open(os.path.join(base, "registry.log"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=logf, stderr=logf)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    logf.flush()
                    with open(os.path.join(base, "registry.log"), encoding="utf-8") as lf:
                        pytest.fail(f"docker-registry did not start: {lf.read()[-2000:]}")
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        logf.close()
        shutil.rmtree(base, ignore_errors=True)
