"""Start and drive a real `minik server` process for end-to-end tests (builders, not fixtures full of literals)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

KUBECTL = os.environ.get("MINIK_TEST_KUBECTL", "/usr/bin/kubectl")


_SSL: list[ssl.SSLContext] = []


def _client_ssl() -> ssl.SSLContext:
    """One unverified client context (building one loads the system CA store: ~40 ms)."""
    if not _SSL:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        _SSL.append(ctx)
    return _SSL[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Minik:
    root: str
    port: int
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    cache_dir: str = ""
    # The ingress proxy would take ports 80/443: off unless a test asks for it (with its own ports).
    ingress: bool = False

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.root, "etc", "kubeconfig.yaml")

    @property
    def data_dir(self) -> str:
        return os.path.join(self.root, "data")

    @property
    def log_path(self) -> str:
        return os.path.join(self.root, "minik.log")

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> None:
        args = [sys.executable, "-m", "minik", "server", "--data-dir", self.data_dir,
                "--config-dir", os.path.join(self.root, "etc"), "--run-dir", os.path.join(self.root, "run"),
                "--bind-address", "127.0.0.1", "--https-listen-port", str(self.port), "--advertise-address", "127.0.0.1",
                "--supervisor-port", str(free_port()),
                *self.extra, *([] if self.ingress else ["--disable", "ingress"])]
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"minik exited with {self.proc.returncode}:\n{self.log_tail()}")
            if os.path.exists(self.kubeconfig):
                try:
                    if self.raw("GET", "/readyz", auth=False)[0] == 200:
                        return
                except OSError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"minik did not become ready:\n{self.log_tail()}")

    def log_tail(self, n: int = 60) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"\n".join(f.read().splitlines()[-n:]).decode(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return int(self.proc.returncode)

    def token(self) -> str:
        with open(os.path.join(self.data_dir, "server", "admin-token")) as f:
            return f.read().strip()

    def raw(self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
            auth: bool = True, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS request with the admin token (or `token`, or none)."""
        ctx = _client_ssl()
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        elif auth:
            h["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def raw_json(self, method: str, path: str, obj: Any = None, content_type: str = "application/json", **kw: Any) -> tuple[int, Any]:
        body = json.dumps(obj).encode() if obj is not None else None
        code, _, data = self.raw(method, path, body, {"Content-Type": content_type} if body is not None else {}, **kw)
        return code, json.loads(data) if data else None

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, env: dict[str, str] | None = None,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        if not self.cache_dir:
            self.cache_dir = tempfile.mkdtemp(prefix="kcache-", dir=self.root)
        e = dict(os.environ)
        e.update(env or {})
        e["KUBECONFIG"] = self.kubeconfig
        cmd = [KUBECTL, f"--cache-dir={self.cache_dir}", *args]
        r = subprocess.run(cmd, input=input, capture_output=True, text=True, env=e, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({r.returncode}):\nstdout: {r.stdout}\nstderr: {r.stderr}\nserver log:\n{self.log_tail(30)}")
        return r

    def client(self) -> Any:
        from kubernetes import config
        return config.new_client_from_config(config_file=self.kubeconfig)
