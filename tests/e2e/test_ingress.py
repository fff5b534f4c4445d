"""The built-in ingress end to end: a real server with its node agent (containerd, pod network)
and the proxy on free ports of the node's address; Deployments and Services created with
kubectl; requests made with curl (--resolve to the node address) and raw sockets.

Covers issue 10's acceptance: blue/green hosts, /api and / on shop, a wildcard host, unknown host
→ 404, no ready endpoints → 503, TLS from a Secret verified with --cacert and rotated live,
ssl-redirect → 308, a WebSocket echo, 100 MB up and down with the daemon's RSS growing < 10 MB,
request-smuggling probes → 400; plus the IngressClass, status.loadBalancer, conflict events and
422 validation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.agent_fixtures import (Ns, bb, claim_node_net, node_minik_for, reap_node, release_node_net,
                                      wait_node_ready)
from tests.e2e.ingress_backend import python_container, python_volumes
from tests.e2e.minikd import Minik, free_port

pytestmark = pytest.mark.e2e

NODE = "127.0.0.1"      # the test server's node address (--advertise-address)
Obj = dict[str, Any]


class Cluster:
    def __init__(self, m: Minik, ns: Ns, http: int, https: int) -> None:
        self.m, self.ns, self.http, self.https = m, ns, http, https

    def curl(self, host: str, path: str = "/", https: bool = False, *args: str) -> tuple[int, str]:
        port = self.https if https else self.http
        scheme = "https" if https else "http"
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "--resolve", f"{host}:{port}:{NODE}", "-o", "-",
                            "-w", "\n%{http_code}", *args, f"{scheme}://{host}:{port}{path}"],
                           capture_output=True, text=True, timeout=60)
        body, _, code = r.stdout.rpartition("\n")
        return int(code or 0), body + r.stderr

    def eventually(self, host: str, path: str, want_code: int, want_text: str = "", timeout: float = 30,
                   https: bool = False, args: tuple[str, ...] = ()) -> str:
        deadline = time.monotonic() + timeout
        got: tuple[int, str] = (0, "")
        while time.monotonic() < deadline:
            got = self.curl(host, path, https, *args)
            if got[0] == want_code and want_text in got[1]:
                return got[1]
            time.sleep(0.3)
        raise AssertionError(f"{host}{path}: wanted {want_code} {want_text!r}, got {got}\n{self.m.log_tail(30)}")

    def apply(self, *objs: Obj) -> None:
        self.ns.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objs))

    def raw(self, data: bytes, port: int | None = None) -> bytes:
        with socket.create_connection((NODE, port or self.http), timeout=20) as s:
            s.sendall(data)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk


def deployment(name: str, container: Obj, replicas: int = 1, volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": [container], "terminationGracePeriodSeconds": 1}
    if volumes:
        spec["volumes"] = volumes
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": spec}}}


def httpd(name: str) -> Obj:
    c = bb(name, f'mkdir -p /www && echo "{name} $(hostname)" > /www/index.html && exec httpd -f -p 8080 -h /www')
    c["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    return c


def service(name: str, target: int = 8080, selector: str | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": selector or name}, "ports": [{"name": "http", "port": 80, "targetPort": target}]}}


def ingress(name: str, rules: list[Obj], annotations: dict[str, str] | None = None, tls: list[Obj] | None = None) -> Obj:
    spec: Obj = {"rules": rules}
    if tls:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


def rule(host: str, *paths: tuple[str, str]) -> Obj:
    return {"host": host, "http": {"paths": [{"path": p, "pathType": "Prefix",
                                              "backend": {"service": {"name": svc, "port": {"number": 80}}}}
                                             for p, svc in paths]}}


@pytest.fixture(scope="module")
def cluster(local_registry: str) -> Iterator[Cluster]:
    if shutil.which("curl") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs curl and the host's /usr/bin/python3 (the backend pods run it)")
    net = claim_node_net()
    m = node_minik_for(net, local_registry)
    http, https = free_port(), free_port()
    m.ingress = True
    m.extra += ["--ingress-http-port", str(http), "--ingress-https-port", str(https), "--ingress-bind-address", NODE]
    try:
        m.start(timeout=90)
        wait_node_ready(m, net.node_name)
        ns = Ns.make(m, "ing")
        c = Cluster(m, ns, http, https)
        py = {"volumes": python_volumes()}
        c.apply(deployment("blue", httpd("blue")), deployment("green", httpd("green")),
                deployment("api", python_container("api", 8080), **py),
                deployment("web", python_container("web", 8080), replicas=2, **py),
                service("blue"), service("green"), service("api"), service("web"), service("empty", selector="nothing"),
                ingress("colors", [rule("blue.example.test", ("/", "blue")), rule("green.example.test", ("/", "green")),
                                   rule("*.wild.example.test", ("/", "blue")), rule("empty.example.test", ("/", "empty"))]),
                ingress("shop", [rule("shop.example.test", ("/api", "api"), ("/", "web"))]))
        for d in ("blue", "green", "api", "web"):
            ns.kubectl("rollout", "status", f"deployment/{d}", "--timeout=180s", timeout=200)
        yield c
    finally:
        reap_node(m, net, keep_dir=os.environ.get("MINIK_KEEP_TEST_DIRS") == "1")
        release_node_net(net)


def test_ingress_class_is_bootstrapped_as_default(cluster: Cluster) -> None:
    ic = json.loads(cluster.m.kubectl("get", "ingressclass", "minik", "-o", "json").stdout)
    assert ic["spec"]["controller"] == "minik.io/ingress"
    assert ic["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"] == "true"


def test_hosts_paths_and_wildcard(cluster: Cluster) -> None:
    c = cluster
    assert c.eventually("blue.example.test", "/", 200, "blue ").startswith("blue blue-")
    assert c.eventually("green.example.test", "/", 200, "green ").startswith("green green-")
    assert c.eventually("anything.wild.example.test", "/", 200, "blue ").startswith("blue ")
    api = c.eventually("shop.example.test", "/api/items?x=1", 200, "GET /api/items?x=1")
    assert api.startswith("api-")
    # The backend sees the forwarded headers, the client's address and the original Host.
    assert "x-forwarded-host=shop.example.test:" in api and "x-forwarded-proto=http;" in api
    assert "x-real-ip=127.0.0.1;" in api
    # Round-robin over both ready endpoints (the second may reach the table a moment after rollout).
    web: set[str] = set()
    deadline = time.monotonic() + 30
    while len(web) < 2 and time.monotonic() < deadline:
        web.add(c.eventually("shop.example.test", "/apiary", 200, "GET /apiary").split()[0])
    assert all(w.startswith("web-") for w in web)
    assert len(web) == 2


def test_unknown_host_404_and_no_endpoints_503(cluster: Cluster) -> None:
    code, body = cluster.curl("nobody.example.test", "/")
    assert code == 404 and "no ingress rule for host 'nobody.example.test'" in body
    code, body = cluster.curl("deep.er.wild.example.test", "/")
    assert code == 404
    assert "has no ready endpoints" in cluster.eventually("empty.example.test", "/", 503)


def test_status_load_balancer_is_the_node_address(cluster: Cluster) -> None:
    deadline = time.monotonic() + 30
    lb: Any = None
    while time.monotonic() < deadline:
        ing = json.loads(cluster.ns.kubectl("get", "ingress", "shop", "-o", "json").stdout)
        lb = (ing.get("status") or {}).get("loadBalancer", {}).get("ingress")
        if lb:
            break
        time.sleep(0.3)
    assert lb == [{"ip": NODE}]
    row = cluster.ns.kubectl("get", "ingress", "shop", "--no-headers").stdout.split()
    assert row[1] == "minik"      # the default IngressClass, set at create (DefaultIngressClass admission)
    assert row[2] == "shop.example.test" and row[3] == NODE


def test_routes_follow_changes(cluster: Cluster) -> None:
    c = cluster
    c.apply(ingress("late", [rule("late.example.test", ("/", "green"))]))
    assert c.eventually("late.example.test", "/", 200, "green ", timeout=10).startswith("green ")
    c.ns.kubectl("delete", "ingress", "late")
    c.eventually("late.example.test", "/", 404, timeout=10)


def test_conflict_goes_to_the_oldest_and_warns_the_newer(cluster: Cluster) -> None:
    c = cluster
    c.apply(ingress("usurper", [rule("blue.example.test", ("/", "green"))]))
    deadline = time.monotonic() + 20
    reasons: list[str] = []
    while time.monotonic() < deadline:
        reasons = [e["reason"] for e in c.ns.events("usurper") if e["type"] == "Warning"]
        if "Conflict" in reasons:
            break
        time.sleep(0.3)
    assert "Conflict" in reasons
    assert c.curl("blue.example.test")[1].startswith("blue ")
    c.ns.kubectl("delete", "ingress", "usurper")


def test_invalid_ingress_422(cluster: Cluster) -> None:
    bad = ingress("bad", [rule("ok.example.test", ("/", "blue"))])
    bad["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Regex"
    r = cluster.ns.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode != 0 and "spec.rules[0].http.paths[0].pathType" in r.stderr and "Unsupported value" in r.stderr
    bad = ingress("bad", [rule("ok.example.test", ("api", "blue"))])
    r = cluster.ns.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode != 0 and "spec.rules[0].http.paths[0].path" in r.stderr
    bad = ingress("bad", [rule("Not_A_Host!", ("/", "blue"))])
    r = cluster.ns.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode != 0 and "spec.rules[0].host" in r.stderr


# ---- TLS ------------------------------------------------------------------------------------------

def _ca_and_leaf(host: str, d: str, tag: str) -> tuple[str, str, str, int]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"test ca {tag}")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    serial = x509.random_serial_number()
    leaf = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(serial)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False).sign(ca_key, hashes.SHA256()))
    paths = [os.path.join(d, f"{n}-{tag}.pem") for n in ("ca", "crt", "key")]
    for p, data in zip(paths, (ca.public_bytes(serialization.Encoding.PEM), leaf.public_bytes(serialization.Encoding.PEM),
                               key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()))):
        with open(p, "wb") as f:
            f.write(data)
    return paths[0], paths[1], paths[2], serial


def _served_serial(port: int, host: str) -> int:
    from cryptography import x509
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((NODE, port), timeout=10) as raw, ctx.wrap_socket(raw, server_hostname=host) as s:
        der = s.getpeercert(binary_form=True)
    assert der is not None
    return int(x509.load_der_x509_certificate(der).serial_number)


def test_tls_from_secret_rotation_and_redirect(cluster: Cluster) -> None:
    c = cluster
    host = "secure.example.test"
    d = tempfile.mkdtemp(prefix="ing-tls-")
    ca1, crt1, key1, serial1 = _ca_and_leaf(host, d, "one")
    c.ns.kubectl("create", "secret", "tls", "secure-tls", f"--cert={crt1}", f"--key={key1}")
    c.apply(ingress("secure", [rule(host, ("/", "green"))], annotations={"minik.io/ssl-redirect": "true"},
                    tls=[{"hosts": [host], "secretName": "secure-tls"}]))
    c.eventually(host, "/", 200, "green ", https=True, args=("--cacert", ca1))
    assert _served_serial(c.https, host) == serial1
    # An unknown name gets the self-signed default certificate, which the test CA does not sign.
    code, out = c.curl("other.example.test", "/", True, "--cacert", ca1)
    assert code == 0 and ("certificate" in out.lower() or "ssl" in out.lower())
    # Plain HTTP to a host with ssl-redirect: 308 to https on the ingress's https port.
    code, out = c.curl(host, "/p?q=1", False, "-D", "-")
    assert code == 308 and f"location: https://{host}:{c.https}/p?q=1" in out.lower()
    # Rotation: a new certificate (another CA) in the same Secret is served without a restart.
    ca2, crt2, key2, serial2 = _ca_and_leaf(host, d, "two")
    manifest = c.ns.kubectl("create", "secret", "tls", "secure-tls", f"--cert={crt2}", f"--key={key2}",
                            "--dry-run=client", "-o", "yaml").stdout
    c.ns.kubectl("apply", "-f", "-", input=manifest)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _served_serial(c.https, host) != serial2:
        time.sleep(0.2)
    assert _served_serial(c.https, host) == serial2
    code, out = c.curl(host, "/", True, "--cacert", ca2)
    assert code == 200 and out.startswith("green "), out


# ---- WebSocket, large bodies, smuggling ------------------------------------------------------------

def test_websocket_echo(cluster: Cluster) -> None:
    import aiohttp

    async def run() -> list[str]:
        out = []
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(f"http://{NODE}:{cluster.http}/ws", headers={"Host": "shop.example.test"}) as ws:
                for i in range(3):
                    await ws.send_str(f"hello {i}")
                    msg = await ws.receive(timeout=10)
                    out.append(msg.data)
        return out

    assert asyncio.run(run()) == ["echo:hello 0", "echo:hello 1", "echo:hello 2"]


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_100mb_up_and_down_stream_without_buffering(cluster: Cluster) -> None:
    c = cluster
    assert c.m.proc is not None
    pid = c.m.proc.pid
    size = 100 * 1024 * 1024
    c.eventually("shop.example.test", "/warm", 200)
    before = _rss_kb(pid)
    with socket.create_connection((NODE, c.http), timeout=60) as s:
        s.sendall(f"POST /upload HTTP/1.1\r\nHost: shop.example.test\r\nContent-Length: {size}\r\n\r\n".encode())
        block = bytes(1 << 20)
        for _ in range(size // len(block)):
            s.sendall(block)
        answer = b""
        while b"received" not in answer:
            chunk = s.recv(65536)
            assert chunk, answer
            answer += chunk
        assert f"received {size}".encode() in answer
        s.sendall(f"GET /big?n={size} HTTP/1.1\r\nHost: shop.example.test\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(65536)
        head, _, got_bytes = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {size}".encode() in head.lower()
        got = len(got_bytes)
        while got < size:
            chunk = s.recv(1 << 20)
            assert chunk
            got += len(chunk)
    grown = (_rss_kb(pid) - before) / 1024
    assert grown < 10, f"daemon RSS grew by {grown:.1f} MB"


SMUGGLING = {
    "cl+te": b"POST / HTTP/1.1\r\nHost: shop.example.test\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
    "duplicate-cl": b"POST / HTTP/1.1\r\nHost: shop.example.test\r\nContent-Length: 3\r\nContent-Length: 8\r\n\r\nabcGET / HTTP/1.1\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: shop.example.test\r\nX-Folded: a\r\n b\r\n\r\n",
    "bad-chunk": b"POST / HTTP/1.1\r\nHost: shop.example.test\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n",
    "te-not-chunked": b"POST / HTTP/1.1\r\nHost: shop.example.test\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("probe", sorted(SMUGGLING))
def test_smuggling_probes_are_rejected(cluster: Cluster, probe: str) -> None:
    out = cluster.raw(SMUGGLING[probe])   # returns once the proxy closed the connection
    assert out.startswith(b"HTTP/1.1 400 "), out[:200]
    assert out.count(b"HTTP/1.1") == 1    # nothing smuggled through to a second answer


def test_metrics_count_requests(cluster: Cluster) -> None:
    cluster.curl("nobody.example.test", "/")
    code, _, body = cluster.m.raw("GET", "/metrics")
    text = body.decode()
    assert code == 200 and 'minik_ingress_requests_total{code="404"}' in text
    assert "minik_ingress_upstream_connections_total" in text and "minik_ingress_route_builds_total" in text
