"""TLS for the ingress: server certificates chosen by SNI from `kubernetes.io/tls` Secrets,
replaced live when a Secret changes, and a self-signed default certificate for every other name.

`TlsStore.context` is the listening context; its SNI callback looks the name up in the current
`RouteTable.tls` (exact host, then `*.parent`) and switches the connection to that Secret's
context. Contexts are built when the controller calls `update()` after a rebuild and cached per
Secret resourceVersion, so a rotation takes effect on the next handshake (established
connections keep the certificate they negotiated). PEM data is loaded through an anonymous
memory file (memfd): private keys never touch the disk.
Neighbours: `minik.ingress.routes` (which host uses which Secret), `minik.ingress.controller`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from minik.ingress.routes import Obj, RouteTable

log = logging.getLogger("minik.ingress.tls")

DEFAULT_CERT_NAME = "minik ingress default certificate"
DEFAULT_CERT_DNS = "ingress.minik.invalid"

SecretGetter = Callable[[str, str], "Obj | None"]


@dataclass(frozen=True, slots=True)
class SecretProblem:
    namespace: str
    secret: str
    ingress: str         # "namespace/name" of the Ingress that names the Secret
    message: str


def _context(pem: bytes) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    fd = os.memfd_create("minik-ingress-cert", os.MFD_CLOEXEC)
    try:
        os.write(fd, pem)
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return ctx


def self_signed_pem(common_name: str = DEFAULT_CERT_NAME) -> bytes:
    """A fresh EC P-256 key and a self-signed certificate for it (key + cert, PEM), in process."""
    from minik.pki.certs import self_signed_pem as make
    return make(common_name, DEFAULT_CERT_DNS)


def secret_pem(secret: Obj) -> bytes:
    """tls.key + tls.crt of a Secret as one PEM blob; ValueError says what is wrong."""
    if secret.get("type") not in ("kubernetes.io/tls", None, "Opaque"):
        raise ValueError(f"type {secret.get('type')} is not kubernetes.io/tls")
    data = secret.get("data") or {}
    try:
        crt = base64.b64decode(str(data.get("tls.crt") or ""), validate=True)
        key = base64.b64decode(str(data.get("tls.key") or ""), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("tls.crt or tls.key is not base64") from None
    if not crt or not key:
        raise ValueError("tls.crt and tls.key are required")
    return key.strip() + b"\n" + crt.strip() + b"\n"


class TlsStore:
    def __init__(self, default_pem: bytes | None = None) -> None:
        """`default_pem`: key + certificate for names no Secret covers; made here when None
        (the controller has a child process make it, see `minik.pki.nodekey.self_signed`)."""
        self.table = RouteTable()
        self._by_secret: dict[tuple[str, str], tuple[str, ssl.SSLContext]] = {}   # → (resourceVersion, context)
        self.context = _context(default_pem or self_signed_pem())
        self.context.sni_callback = self._sni

    def _sni(self, sslobj: ssl.SSLObject, server_name: str | None, _ctx: ssl.SSLContext) -> int | None:
        if not server_name:
            return None
        t = self.table.tls_for(server_name.lower())
        if t is not None:
            hit = self._by_secret.get((t.namespace, t.secret))
            if hit is not None:
                sslobj.context = hit[1]
        return None

    def update(self, table: RouteTable, get_secret: SecretGetter) -> list[SecretProblem]:
        """Load the Secrets `table` names (reusing contexts of unchanged Secrets), drop the rest."""
        problems: list[SecretProblem] = []
        fresh: dict[tuple[str, str], tuple[str, ssl.SSLContext]] = {}
        for t in {(t.namespace, t.secret, t.ingress) for t in table.tls.values()}:
            ns, name, ing = t
            if (ns, name) in fresh:
                continue
            secret = get_secret(ns, name)
            if secret is None:
                problems.append(SecretProblem(ns, name, ing, f"TLS Secret {ns}/{name} not found; the default certificate is served"))
                continue
            rv = str((secret.get("metadata") or {}).get("resourceVersion") or "")
            cached = self._by_secret.get((ns, name))
            if cached is not None and cached[0] == rv:
                fresh[(ns, name)] = cached
                continue
            try:
                fresh[(ns, name)] = (rv, _context(secret_pem(secret)))
                log.info("ingress: loaded certificate from Secret %s/%s (resourceVersion %s)", ns, name, rv)
            except (ValueError, ssl.SSLError) as e:
                problems.append(SecretProblem(ns, name, ing, f"TLS Secret {ns}/{name} is unusable ({e}); the default certificate is served"))
        self._by_secret = fresh
        self.table = table
        return problems
