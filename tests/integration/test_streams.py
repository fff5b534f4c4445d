"""Pod streaming against a real containerd, driven by the REAL kubectl.

A tiny HTTPS aiohttp server (self-signed certificate) answers /version, legacy discovery and
GET pod with a fabricated Running pod dict, and routes pods/x/log|exec|attach|portforward to
`StreamFront.handle` (in front of `CriPodStreams`). Containers are created directly through CRI in a host-network sandbox
(no node agent involved). This proves the wire protocols (websocket v5, SPDY/3.1 fallback, raw
SPDY inside a websocket for port-forward) with the client users actually run.
"""

from __future__ import annotations

import asyncio
import datetime
import os
import shutil
import socket
import ssl
import tempfile
import urllib.request
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from minik.agent.cri import pb
from minik.agent.images import build_image, busybox_image_files
from minik.agent.streams import CriPodStreams
from minik.api.streams import StreamFront

if TYPE_CHECKING:
    from conftest import RuntimeEnv

KUBECTL = "/usr/bin/kubectl"
IMAGE = "localhost/minik-test/busybox:streams"
TOKEN = "streams-test-token"

pytestmark = pytest.mark.skipif(not os.path.exists(KUBECTL), reason="kubectl not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _self_signed(base: str) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "minik-streams-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(base, "tls.crt"), os.path.join(base, "tls.key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@dataclass
class Cluster:
    env: RuntimeEnv
    base: str
    kubeconfig: str
    sandbox_id: str
    sandbox_config: pb.PodSandboxConfig
    pods: dict[str, dict[str, Any]] = field(default_factory=dict)
    # (subresource, method, Upgrade header) of every streaming request, to prove the path taken.
    seen: list[tuple[str, str, str]] = field(default_factory=list)

    async def kubectl(self, *args: str, stdin: bytes | None = None,
                      timeout: float = 60) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", self.kubeconfig,
            "--cache-dir", os.path.join(self.base, "cache"), *args,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(), err.decode()

    async def run_container(self, name: str, command: list[str]) -> str:
        cri = self.env.cri
        cid = await cri.create_container(
            self.sandbox_id,
            pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=name, attempt=0),
                image=pb.ImageSpec(image=IMAGE),
                command=command,
                log_path=f"{name}/0.log",
                stdin=True,
                linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER))),
            ),
            self.sandbox_config,
        )
        await cri.start_container(cid)
        return cid

    def add_pod(self, name: str, containers: dict[str, str]) -> None:
        """A Running pod whose containers (name → runtime id) are all running."""
        self.pods[name] = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": str(uuid.uuid4()),
                         "resourceVersion": "1"},
            "spec": {"containers": [{"name": c, "image": IMAGE} for c in containers],
                     "hostNetwork": True},
            "status": {
                "phase": "Running", "podIP": "127.0.0.1", "hostIP": "127.0.0.1",
                "containerStatuses": [
                    {"name": c, "containerID": f"containerd://{cid}", "ready": True,
                     "restartCount": 0, "image": IMAGE, "imageID": "",
                     "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}}}
                    for c, cid in containers.items()
                ],
            },
        }


def _app(cluster: Cluster, streams: StreamFront) -> web.Application:
    async def version(_: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0",
                                  "platform": "linux/amd64"})

    async def api(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def apis(_: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})

    async def api_v1(_: web.Request) -> web.Response:
        verbs = ["get", "list"]
        return web.json_response({
            "kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "v1",
            "resources": [
                {"name": "pods", "singularName": "pod", "namespaced": True, "kind": "Pod",
                 "verbs": verbs, "shortNames": ["po"], "categories": ["all"]},
                *({"name": f"pods/{sub}", "singularName": "", "namespaced": True,
                   "kind": kind, "verbs": ["get", "create"]}
                  for sub, kind in (("log", "Pod"), ("exec", "PodExecOptions"),
                                    ("attach", "PodAttachOptions"),
                                    ("portforward", "PodPortForwardOptions"))),
            ],
        })

    def _pod(request: web.Request) -> dict[str, Any]:
        assert request.headers.get("Authorization") == f"Bearer {TOKEN}"
        pod = cluster.pods.get(request.match_info["name"])
        if pod is None:
            raise web.HTTPNotFound(text='{"kind":"Status","status":"Failure","code":404}',
                                   content_type="application/json")
        return pod

    async def get_pod(request: web.Request) -> web.Response:
        return web.json_response(_pod(request))

    async def sub(request: web.Request) -> web.StreamResponse:
        cluster.seen.append((request.match_info["sub"], request.method,
                             request.headers.get("Upgrade", "").lower()))
        return await streams.handle(request, _pod(request), request.match_info["sub"])

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/api/v1", api_v1)
    app.router.add_get("/api/v1/namespaces/{ns}/pods/{name}", get_pod)
    app.router.add_route("*", "/api/v1/namespaces/{ns}/pods/{name}/{sub}", sub)
    return app


@pytest.fixture
async def cluster(runtime: RuntimeEnv) -> AsyncIterator[Cluster]:
    base = tempfile.mkdtemp(prefix="mk-streams-")
    archive = await asyncio.to_thread(
        build_image, IMAGE, busybox_image_files(), (), ("sh",), None,
        dest=os.path.join(base, "busybox.tar"))
    await runtime.images.import_images([archive])
    name = f"s-{uuid.uuid4().hex[:6]}"
    sandbox_config = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()), namespace="default"),
        log_directory=os.path.join(runtime.log_root, name),
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER))),
    )
    sandbox_id = await runtime.cri.run_pod_sandbox(sandbox_config)

    cert, key = _self_signed(base)
    port = _free_port()
    kubeconfig = os.path.join(base, "kubeconfig")
    with open(kubeconfig, "w", encoding="utf-8") as f:
        f.write(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
            f"clusters:\n- name: t\n  cluster:\n    server: https://127.0.0.1:{port}\n"
            "    insecure-skip-tls-verify: true\n"
            f"users:\n- name: t\n  user:\n    token: {TOKEN}\n"
            "contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n"
            "    namespace: default\n"
        )
    c = Cluster(runtime, base, kubeconfig, sandbox_id, sandbox_config)
    ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ssl_ctx.load_cert_chain(cert, key)
    runner = web.AppRunner(_app(c, StreamFront(CriPodStreams(runtime.cri))))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_ctx)
    await site.start()
    try:
        yield c
    finally:
        await runner.cleanup()
        shutil.rmtree(base, ignore_errors=True)


async def _wait_log(cluster: Cluster, pod: str, text: str, timeout: float = 10) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        rc, out, _ = await cluster.kubectl("logs", pod)
        if rc == 0 and text in out:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"log never contained {text!r}: {out!r}")
        await asyncio.sleep(0.2)


async def test_logs(cluster: Cluster) -> None:
    cid = await cluster.run_container(
        "talker", ["sh", "-c", "echo one; echo two; sleep 0.3; echo err >&2; sleep 1.1; echo three; sleep 300"])
    cluster.add_pod("talker", {"main": cid})
    await _wait_log(cluster, "talker", "three")
    rc, out, err = await cluster.kubectl("logs", "talker")
    assert rc == 0, err
    assert sorted(out.splitlines()) == ["err", "one", "three", "two"]
    # stdout and stderr are separate pipes: only the order within stdout is guaranteed.
    assert [line for line in out.splitlines() if line != "err"] == ["one", "two", "three"]
    rc, out, _ = await cluster.kubectl("logs", "talker", "--tail=1")
    assert out == "three\n"
    rc, out, _ = await cluster.kubectl("logs", "talker", "--timestamps", "--tail=1")
    stamp, _, rest = out.partition(" ")
    assert rest == "three\n" and stamp.endswith("Z") and "T" in stamp
    rc, out, _ = await cluster.kubectl("logs", "talker", "--limit-bytes=6")
    assert out == "one\ntw"
    rc, out, _ = await cluster.kubectl("logs", "talker", "--since=1h")
    assert out.startswith("one\n")
    rc, out, _ = await cluster.kubectl("logs", "talker", f"--since-time={stamp}")
    assert out == "three\n"
    rc, out, err = await cluster.kubectl("logs", "talker", "--previous")
    assert rc != 0 and 'previous terminated container "main" in pod "talker" not found' in err


async def test_logs_errors(cluster: Cluster) -> None:
    cid = await cluster.run_container("two", ["sleep", "300"])
    cluster.add_pod("duo", {"a": cid, "b": cid})
    rc, _, err = await cluster.kubectl("logs", "duo", "-c", "zzz")
    assert rc != 0 and "container zzz is not valid for pod duo" in err
    cluster.add_pod("waiting", {"main": ""})
    st = cluster.pods["waiting"]["status"]["containerStatuses"][0]
    st["containerID"] = ""
    st["state"] = {"waiting": {"reason": "ContainerCreating"}}
    rc, _, err = await cluster.kubectl("logs", "waiting")
    assert rc != 0
    assert 'container "main" in pod "waiting" is waiting to start: ContainerCreating' in err


async def test_logs_follow_until_exit(cluster: Cluster) -> None:
    cid = await cluster.run_container(
        "ticker", ["sh", "-c", "for i in 1 2 3; do echo tick$i; sleep 1; done"])
    cluster.add_pod("ticker", {"main": cid})
    rc, out, err = await cluster.kubectl("logs", "-f", "ticker", timeout=30)
    assert rc == 0, err
    assert out == "tick1\ntick2\ntick3\n"


async def test_exec_exit_code_and_streams(cluster: Cluster) -> None:
    cid = await cluster.run_container("sleeper", ["sleep", "300"])
    cluster.add_pod("sleeper", {"main": cid})
    rc, out, err = await cluster.kubectl(
        "exec", "sleeper", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert rc == 3, err
    assert out == "out\n"
    assert "err\n" in err
    rc, out, err = await cluster.kubectl("exec", "sleeper", "--", "echo", "hello")
    assert (rc, out) == (0, "hello\n"), err
    # stdin piped through, EOF delivered (v5 close channel).
    rc, out, err = await cluster.kubectl("exec", "-i", "sleeper", "--", "sh", "-c", "cat; echo done",
                                         stdin=b"line1\nline2\n")
    assert (rc, out) == (0, "line1\nline2\ndone\n"), err
    assert {s for s in cluster.seen} == {("exec", "GET", "websocket")}


async def test_exec_tty(cluster: Cluster) -> None:
    cid = await cluster.run_container("ttyer", ["sleep", "300"])
    cluster.add_pod("ttyer", {"main": cid})
    # `script` gives kubectl a terminal so -t is honoured.
    cmd = (f"{KUBECTL} --kubeconfig {cluster.kubeconfig} --cache-dir {cluster.base}/cache "
           "exec -it ttyer -- sh -c 'tty; stty size; exit 4'")
    proc = await asyncio.create_subprocess_exec(
        "script", "-qefc", cmd, "/dev/null",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(b""), 60)
    text = out.decode()
    assert proc.returncode == 4, (text, err)
    assert "/dev/pts/" in text


async def test_spdy_fallback(cluster: Cluster) -> None:
    """Disable the websocket path through kubectl's own switch: exec then goes SPDY."""
    cid = await cluster.run_container("spdy", ["sleep", "300"])
    cluster.add_pod("spdy", {"main": cid})
    env = dict(os.environ, KUBECTL_REMOTE_COMMAND_WEBSOCKETS="false")
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", f"{cluster.base}/cache",
        "exec", "-i", "spdy", "--", "sh", "-c", "cat; echo err >&2; exit 5",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, env=env)
    out, err = await asyncio.wait_for(proc.communicate(b"via-spdy\n"), 60)
    assert proc.returncode == 5, err
    assert out == b"via-spdy\n"
    assert b"err\n" in err
    assert cluster.seen == [("exec", "POST", "spdy/3.1")]


async def test_cp_roundtrip(cluster: Cluster) -> None:
    cid = await cluster.run_container("cp", ["sleep", "300"])
    cluster.add_pod("cper", {"main": cid})
    src = os.path.join(cluster.base, "payload.bin")
    payload = os.urandom(300_000)
    with open(src, "wb") as f:
        f.write(payload)
    rc, _, err = await cluster.kubectl("cp", src, "cper:/tmp/payload.bin")
    assert rc == 0, err
    rc, out, err = await cluster.kubectl("exec", "cper", "--", "wc", "-c", "/tmp/payload.bin")
    assert out.split()[0] == "300000", (out, err)
    dest = os.path.join(cluster.base, "back.bin")
    rc, _, err = await cluster.kubectl("cp", "cper:/tmp/payload.bin", dest)
    assert rc == 0, err
    with open(dest, "rb") as f:
        assert f.read() == payload


async def test_not_running_container(cluster: Cluster) -> None:
    cid = await cluster.run_container("gone", ["sleep", "300"])
    cluster.add_pod("gone", {"main": cid})
    cluster.pods["gone"]["status"]["containerStatuses"][0]["state"] = {
        "waiting": {"reason": "CrashLoopBackOff"}}
    rc, _, err = await cluster.kubectl("exec", "gone", "--", "true")
    assert rc != 0
    assert 'container not found ("main")' in err


async def test_port_forward(cluster: Cluster) -> None:
    port = _free_port()
    cid = await cluster.run_container("web", [
        "sh", "-c",
        f"mkdir -p /tmp/www && echo hello-from-pod > /tmp/www/index.html && "
        f"exec httpd -f -p 127.0.0.1:{port} -h /tmp/www"])
    cluster.add_pod("web", {"main": cid})
    for env_flag in ("true", "false"):  # websocket tunnel, then the SPDY POST fallback
        local = _free_port()
        env = dict(os.environ, KUBECTL_PORT_FORWARD_WEBSOCKETS=env_flag)
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", f"{cluster.base}/cache",
            "port-forward", "pod/web", f"{local}:{port}",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert b"Forwarding from" in line, line

            def fetch() -> bytes:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html",
                                            timeout=10) as r:
                    return r.read()  # type: ignore[no-any-return]

            for _ in range(3):  # several connections over one session
                assert await asyncio.to_thread(fetch) == b"hello-from-pod\n"
        finally:
            proc.terminate()
            await proc.wait()
    assert cluster.seen == [("portforward", "GET", "websocket"),
                            ("portforward", "POST", "spdy/3.1")]


async def test_attach_and_port_forward_refused_port(cluster: Cluster) -> None:
    cid = await cluster.run_container(
        "ticks", ["sh", "-c", "while true; do echo tick; sleep 0.2; done"])
    cluster.add_pod("ticks", {"main": cid})
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", f"{cluster.base}/cache",
        "attach", "ticks", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line == b"tick\n"
    finally:
        proc.terminate()
        await proc.wait()
    # Nothing listens on this port inside the pod: the runtime's error reaches kubectl.
    dead, local = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "--kubeconfig", cluster.kubeconfig, "--cache-dir", f"{cluster.base}/cache",
        "port-forward", "pod/ticks", f"{local}:{dead}",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stderr is not None
        await asyncio.wait_for(proc.stdout.readline(), 30)

        def connect() -> bytes:
            with socket.create_connection(("127.0.0.1", local), timeout=10) as s:
                return s.recv(100)

        assert await asyncio.to_thread(connect) == b""
        err = await asyncio.wait_for(proc.stderr.readline(), 10)
        assert b"error" in err.lower() and str(dead).encode() in err, err
    finally:
        # kubectl 1.32 may exit on its own after the stream error ("lost connection to pod").
        if proc.returncode is None:
            try:
                proc.terminate()
            except ProcessLookupError:
                pass
        await proc.wait()
