"""A throwaway local OCI registry and a busybox-static image pushed into it.

Role: give tests the real image pull path without the internet: `docker-registry serve` on a
free loopback port (plain HTTP, storage in a temp dir), a one-layer busybox image built by
`minik.agent.images.build_image` and pushed with `skopeo`, and the registries.yaml (k3s format)
that mirrors docker.io to it, so `image: busybox` resolves to the local copy. With `auth` set the
registry demands HTTP basic credentials (htpasswd, bcrypt), for imagePullSecrets scenarios.
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
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from minik.agent.images import BUSYBOX_APPLETS, build_image, busybox_image_files

__all__ = [
    "LocalRegistry",
    "TEST_APPLETS",
    "build_busybox",
    "htpasswd_line",
    "mirror_registries_yaml",
    "push_archive",
    "registries_yaml",
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


def htpasswd_line(user: str, password: str) -> str:
    """One htpasswd entry with a bcrypt hash (the only kind docker-registry accepts).

    `htpasswd -B` (apache2-utils) when installed, else libcrypt's bcrypt through the stdlib
    `crypt` module (deprecated, still in 3.11/3.12): no new Python dependency either way.
    """
    if shutil.which("htpasswd"):
        out = subprocess.run(["htpasswd", "-nbB", user, password], check=True, capture_output=True,
                             text=True, timeout=30).stdout
        return out.strip().splitlines()[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    # Cost 4 (the minimum): every authenticated request re-checks the hash.
    hashed = crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
    if not hashed or not hashed.startswith("$2"):
        raise RuntimeError("no bcrypt available (install apache2-utils for htpasswd)")
    return f"{user}:{hashed}"


@dataclass
class LocalRegistry:
    """`docker-registry serve` on 127.0.0.1:<port>; `host` is "127.0.0.1:<port>".

    `auth` = (user, password) turns on htpasswd basic auth for every /v2/ request."""

    base: str = field(default_factory=lambda: tempfile.mkdtemp(prefix="mk-reg-"))
    port: int = field(default_factory=_free_port)
    proc: subprocess.Popen[bytes] | None = None
    auth: tuple[str, str] | None = None

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
            if self.auth is not None:
                htpasswd = os.path.join(self.base, "htpasswd")
                with open(htpasswd, "w", encoding="utf-8") as hf:
                    hf.write(htpasswd_line(*self.auth) + "\n")
                f.write(f"auth:\n  htpasswd:\n    realm: minik-test\n    path: {htpasswd}\n")
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return self
            except OSError as e:
                if isinstance(e, urllib.error.HTTPError) and e.code == 401 and self.auth is not None:
                    return self  # up, and asking for credentials as configured
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


def push_archive(archive: str, dest: str, creds: tuple[str, str] | None = None) -> None:
    """Push an OCI archive to `dest` ("host:port/repo:tag") over plain HTTP."""
    auth = [f"--dest-creds={creds[0]}:{creds[1]}"] if creds is not None else []
    subprocess.run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false", *auth,
                    f"oci-archive:{archive}", f"docker://{dest}"],
                   check=True, capture_output=True, timeout=60)


def mirror_registries_yaml(host: str) -> str:
    """registries.yaml sending docker.io pulls to the plain-HTTP registry at `host`."""
    return f'mirrors:\n  docker.io:\n    endpoint:\n      - "http://{host}"\n'


def registries_yaml(mirrors: Mapping[str, str]) -> str:
    """registries.yaml sending pulls for each registry name to a plain-HTTP `host:port`
    (e.g. {"docker.io": mirror, "127.0.0.1:5001": "127.0.0.1:5001"} for a private one)."""
    lines = ["mirrors:"]
    for name, host in mirrors.items():
        lines += [f'  "{name}":', "    endpoint:", f'      - "http://{host}"']
    return "\n".join(lines) + "\n"
