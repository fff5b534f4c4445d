"""The ingress controller in process: a real `minik.daemon.Server` (store, API, shared informers;
no agent, no containerd), an `IngressController` on the daemon's informers and free loopback
ports, and an aiohttp backend on loopback reached through a selector-less Service whose
EndpointSlice is written by hand. Covers: routes follow Ingress/EndpointSlice/Secret changes,
status.loadBalancer, Warning events for conflicts and resource backends (once each), the default
IngressClass, and one informer per resource shared with the other controllers."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from minik.client import Obj
from minik.config import ServerConfig
from minik.daemon import Server
from minik.ingress.controller import CLASSES, INGRESSES, SLICES, IngressController, IngressSettings, ensure_class

NS = "default"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    cfg = ServerConfig(data_dir=str(tmp_path / "data"), config_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"),
                       bind_address="127.0.0.1", https_listen_port=_free_port(), advertise_address="127.0.0.1",
                       disable_agent=True, node_name="ingress-test")
    srv = Server(cfg)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def backend() -> AsyncIterator[int]:
    async def hello(req: web.Request) -> web.Response:
        return web.Response(text=f"hello {req.path}")
    app = web.Application()
    app.router.add_get("/{tail:.*}", hello)
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def eventually(fn: Any, timeout: float = 10.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"not met in {timeout}s (last: {last!r})")


def ingress(name: str, host: str, svc: str = "web", **extra: Any) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": svc, "port": {"name": "http"}}}}]}}],
                     **extra}}


def endpoint_slice(svc: str, port: int, ready: bool = True) -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{svc}-manual", "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": ready}}]}


async def test_controller_end_to_end_in_process(server: Server, backend: int) -> None:
    client, informers = server.client, server.informers
    assert informers is not None
    await ensure_class(client)
    await ensure_class(client)      # idempotent
    http, https = _free_port(), _free_port()
    ctl = IngressController(client, informers, IngressSettings("127.0.0.1", http, https, ("127.0.0.1",), debounce=0.02))
    server.supervisor.spawn("ingress-test", ctl.run)
    # The controller shares the daemon's informers (one per resource), e.g. the Services one.
    assert informers.count("services") == 1 and informers.count(INGRESSES) == 1

    await client.create("services", NS, {"metadata": {"name": "web"},
                                         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}})
    await client.create(SLICES, NS, endpoint_slice("web", backend))
    await client.create(INGRESSES, NS, ingress("site", "site.test"))

    async def get(host: str, path: str = "/") -> tuple[int, str]:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{http}{path}", headers={"Host": host}) as r:
                return r.status, await r.text()

    async def answers(host: str, want: tuple[int, str]) -> bool:
        try:
            return await get(host) == want
        except aiohttp.ClientConnectorError:
            return False   # the proxy listens once its default certificate is made (a child process)

    await eventually(lambda: answers("site.test", (200, "hello /")))
    # DefaultIngressClass admission named the class of an Ingress created without one.
    site = await client.get(INGRESSES, NS, "site")
    assert site is not None and site["spec"]["ingressClassName"] == "minik"
    # status.loadBalancer.ingress = the node's address
    async def lb() -> Any:
        ing = await client.get(INGRESSES, NS, "site")
        return ((ing or {}).get("status") or {}).get("loadBalancer", {}).get("ingress")
    assert await eventually(lb) == [{"ip": "127.0.0.1"}]
    # The endpoint goes unready → 503; ready again → 200.
    cur = await client.get(SLICES, NS, "web-manual")
    assert cur is not None
    cur["endpoints"][0]["conditions"]["ready"] = False
    await client.update(SLICES, NS, "web-manual", cur)
    status, body = await eventually(lambda: _code(get, "site.test", 503))
    assert "default/web has no ready endpoints" in body

    # A newer Ingress claiming the same host+path loses and gets one Warning; so does a resource backend.
    # (creationTimestamp has one-second resolution: within a second namespace/name decide, so the
    # newcomer's name sorts after the incumbent's here.)
    await client.create(INGRESSES, NS, ingress("site-2", "site.test", svc="other"))
    bad = ingress("res", "res.test")
    bad["spec"]["rules"][0]["http"]["paths"][0]["backend"] = {"resource": {"apiGroup": "x.io", "kind": "Bucket", "name": "b"}}
    await client.create(INGRESSES, NS, bad)

    async def warnings() -> list[tuple[str, str, int]]:
        items, _ = await client.list("events", NS)
        return sorted((e["involvedObject"]["name"], e["reason"], e.get("count", 1)) for e in items if e["type"] == "Warning")
    await eventually(lambda: _has(warnings, 2))
    await asyncio.sleep(0.3)             # more rebuilds (status writes) must not repeat the events
    assert await warnings() == [("res", "UnsupportedBackend", 1), ("site-2", "Conflict", 1)]
    assert ctl.builds >= 3

    # The minik IngressClass exists once, as the default.
    items, _ = await client.list(CLASSES)
    assert [(c["metadata"]["name"], c["metadata"]["annotations"]["ingressclass.kubernetes.io/is-default-class"])
            for c in items] == [("minik", "true")]


async def test_tls_secret_loaded_and_rotated(server: Server, backend: int) -> None:
    client, informers = server.client, server.informers
    assert informers is not None
    await ensure_class(client)
    http, https = _free_port(), _free_port()
    ctl = IngressController(client, informers, IngressSettings("127.0.0.1", http, https, ("127.0.0.1",), debounce=0.02))
    server.supervisor.spawn("ingress-test", ctl.run)
    await client.create("services", NS, {"metadata": {"name": "web"}, "spec": {"ports": [{"name": "http", "port": 80}]}})
    await client.create(SLICES, NS, endpoint_slice("web", backend))
    crt, key, serial1 = _cert("tls.test")
    await client.create("secrets", NS, {"metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
                                        "data": {"tls.crt": crt, "tls.key": key}})
    await client.create(INGRESSES, NS, ingress("tls", "tls.test", tls=[{"hosts": ["tls.test"], "secretName": "tls"}]))
    assert await eventually(lambda: _serial_is(https, "tls.test", serial1))
    crt, key, serial2 = _cert("tls.test")
    cur = await client.get("secrets", NS, "tls")
    assert cur is not None
    cur["data"] = {"tls.crt": crt, "tls.key": key}
    await client.update("secrets", NS, "tls", cur)
    assert await eventually(lambda: _serial_is(https, "tls.test", serial2))


async def _code(get: Any, host: str, want: int) -> tuple[int, str] | None:
    got: tuple[int, str] = await get(host)
    return got if got[0] == want else None


async def _has(fn: Any, n: int) -> bool:
    return len(await fn()) >= n


def _cert(host: str) -> tuple[str, str, int]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    pem_key = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return (base64.b64encode(cert.public_bytes(serialization.Encoding.PEM)).decode(), base64.b64encode(pem_key).decode(), serial)


async def _serial_is(port: int, sni: str, serial: int) -> bool:
    import ssl

    from cryptography import x509
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    except OSError:
        return False
    der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    w.close()
    return bool(x509.load_der_x509_certificate(der).serial_number == serial)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda p: p.update(pathType="Regex"), "spec.rules[0].http.paths[0].pathType"),
    (lambda p: p.update(path="api"), "spec.rules[0].http.paths[0].path"),
    (lambda p: p.update(pathType="Exact", path="no-slash"), "spec.rules[0].http.paths[0].path"),
])
async def test_invalid_ingress_is_422_naming_the_field(server: Server, mutate: Any, field: str) -> None:
    from minik.client import ClientError
    bad = ingress("bad", "ok.test")
    mutate(bad["spec"]["rules"][0]["http"]["paths"][0])
    with pytest.raises(ClientError) as e:
        await server.client.create(INGRESSES, NS, bad)
    assert e.value.code == 422 and field in e.value.message


async def test_invalid_host_is_422(server: Server) -> None:
    from minik.client import ClientError
    with pytest.raises(ClientError) as e:
        await server.client.create(INGRESSES, NS, ingress("bad", "Not_A_Host!"))
    assert e.value.code == 422 and "spec.rules[0].host" in e.value.message
