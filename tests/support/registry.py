"""A throwaway local OCI registry and a busybox-static image pushed into it.

Role: give tests the real image pull path without the internet: `docker-registry serve` on a
free loopback port (plain HTTP, storage in a temp dir), a one-layer busybox image built by
`minik.agent.images.build_image` and pushed with `skopeo`, and the registries.yaml (k3s format)
that mirrors docker.io to it, so `image: busybox` resolves to the local copy.
Neighbours: tests/e2e/agent_fixtures.py (agent-enabled servers); tests/integration/conftest.py
has an older in-file copy of the registry fixture.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field

from minik.agent.images import BUSYBOX_APPLETS, build_image, busybox_image_files

__all__ = [
    "LocalRegistry",
    "TEST_APPLETS",
    "build_busybox",
    "mirror_registries_yaml",
    "push_archive",
    "registry_skip_reason",
]

# The default applets plus what the e2e scenarios call (tty for `exec -it`, dd for OOM).
TEST_APPLETS: tuple[str, ...] = (*BUSYBOX_APPLETS, "tty", "stty", "dd", "yes", "cut", "tr")


def registry_skip_reason() -> str:
    """Why the registry path cannot run here ("" when it can)."""
    missing = [b for b in ("docker-registry", "skopeo") if shutil.which(b) is None]
    return f"not installed: {', '.join(missing)} (apt packages docker-registry, skopeo)" if missing else ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:<port>; `host` is "127.0.0.1:<port>"."""

    base: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="mk-reg-"))
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> str:
        return os.path.join(self.base, "registry.log")

    def start(self, timeout: float = 15.0) -> LocalRegistry:
        cfg = os.path.join(self.base, "config.yml")
        with open(cfg, "w", encoding="utf-8") as f:
            f.write("version: 0.1\nlog:\n  level: warn\n"
                    f"storage:\n  filesystem:\n    rootdirectory: {self.base}/data\n"
                    f"http:\n  addr: {self.host}\n")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    with open(self.log_path, encoding="utf-8", errors="replace") as lf:
                        raise RuntimeError(f"docker-registry did not start: {lf.read()[-2000:]}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.base, ignore_errors=True)


def build_busybox(name: str, dest: str, applets: Sequence[str] = TEST_APPLETS) -> str:
    """A busybox-static OCI archive named `name` at `dest` (entrypoint none, cmd `sh`)."""
    return build_image(name, busybox_image_files(applets=applets), (), ("sh",), None, dest=dest)


def push_archive(archive: str, dest: str) -> None:
    """Push an OCI archive to `dest` ("host:port/repo:tag") over plain HTTP."""
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                    f"oci-archive:{archive}", f"docker://{dest}"],
                   check=True, capture_output=True, timeout=60)


def mirror_registries_yaml(host: str) -> str:
    """registries.yaml sending docker.io pulls to the plain-HTTP registry at `host`."""
    return f'mirrors:\n  docker.io:\n    endpoint:\n      - "http://{host}"\n'
