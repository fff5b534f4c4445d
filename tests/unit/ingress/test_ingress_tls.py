"""TLS: certificates by SNI from Secrets, the self-signed default, live replacement, unusable
Secrets reported; and the ingress flags (--disable lists, ports)."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from minik.cli.main import build_server_config
from minik.ingress.routes import RouteTable, TlsHost
from minik.ingress.tls import TlsStore, secret_pem

Obj = dict[str, Any]


def tls_secret(host: str, rv: str = "1") -> tuple[Obj, int]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    serial = x509.random_serial_number()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    crt = cert.public_bytes(serialization.Encoding.PEM)
    k = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return ({"metadata": {"name": "s", "namespace": "ns", "resourceVersion": rv}, "type": "kubernetes.io/tls",
             "data": {"tls.crt": base64.b64encode(crt).decode(), "tls.key": base64.b64encode(k).decode()}}, serial)


async def served(port: int, sni: str) -> x509.Certificate:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    _, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=sni)
    der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    w.close()
    return x509.load_der_x509_certificate(der)


async def test_sni_selects_the_secret_and_follows_rotation() -> None:
    store = TlsStore()
    secrets: dict[tuple[str, str], Obj] = {}
    sec, serial1 = tls_secret("a.test", "1")
    secrets[("ns", "s")] = sec
    table = RouteTable(tls={"a.test": TlsHost("ns", "s", "ns/i"), "*.w.test": TlsHost("ns", "s", "ns/i")})
    assert store.update(table, lambda ns, n: secrets.get((ns, n))) == []
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=store.context)
    port = server.sockets[0].getsockname()[1]
    try:
        assert (await served(port, "a.test")).serial_number == serial1
        assert (await served(port, "x.w.test")).serial_number == serial1
        default = await served(port, "b.test")
        assert default.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "minik ingress default certificate"
        # Rotation: a new resourceVersion is loaded; the same one is reused as is.
        secrets[("ns", "s")], serial2 = tls_secret("a.test", "2")
        assert store.update(table, lambda ns, n: secrets.get((ns, n))) == []
        assert (await served(port, "a.test")).serial_number == serial2
        # A Secret that goes away: the default certificate, and a problem naming the Ingress.
        del secrets[("ns", "s")]
        problems = store.update(table, lambda ns, n: secrets.get((ns, n)))
        assert [p.ingress for p in problems] == ["ns/i"] and "not found" in problems[0].message
        assert (await served(port, "a.test")).serial_number == default.serial_number
    finally:
        server.close()
        await server.wait_closed()


def test_unusable_secrets() -> None:
    good, _ = tls_secret("a.test")
    with pytest.raises(ValueError, match="kubernetes.io/tls"):
        secret_pem({**good, "type": "kubernetes.io/dockerconfigjson"})
    with pytest.raises(ValueError, match="required"):
        secret_pem({**good, "data": {"tls.crt": good["data"]["tls.crt"]}})
    with pytest.raises(ValueError, match="base64"):
        secret_pem({**good, "data": {"tls.crt": "!!!", "tls.key": "???"}})
    other, _ = tls_secret("b.test")
    mismatched = {**good, "data": {"tls.crt": good["data"]["tls.crt"], "tls.key": other["data"]["tls.key"]}}
    store = TlsStore()
    problems = store.update(RouteTable(tls={"a.test": TlsHost("ns", "s", "ns/i")}), lambda ns, n: mismatched)
    assert len(problems) == 1 and "unusable" in problems[0].message


def _parse(*argv: str) -> Any:
    import argparse

    from minik.cli.main import _server_parser
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _server_parser(sub)
    return build_server_config(parser.parse_args(["server", *argv]))


def test_disable_accepts_repeated_and_comma_lists() -> None:
    cfg = _parse("--disable", "servicelb,ingress", "--disable", "metrics-server")
    assert cfg.disable == ("ingress", "metrics-server", "servicelb")
    assert cfg.disabled("ingress") and cfg.disabled("servicelb")
    assert _parse("--disable", "traefik").disabled("ingress")       # k3s's habit
    assert not _parse().disabled("ingress")


def test_ingress_ports_and_bind_address() -> None:
    cfg = _parse()
    assert (cfg.ingress_http_port, cfg.ingress_https_port, cfg.ingress_bind_address) == (80, 443, "0.0.0.0")
    cfg = _parse("--ingress-http-port", "8080", "--ingress-https-port", "8443", "--ingress-bind-address", "127.0.0.1")
    assert (cfg.ingress_http_port, cfg.ingress_https_port, cfg.ingress_bind_address) == (8080, 8443, "127.0.0.1")
