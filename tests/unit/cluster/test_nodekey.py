"""The agent's key work in a child process (minik.pki.nodekey), checked with the server's own
verification (minik.pki.nodecert), and what a joined agent's process imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from minik.pki import certs, nodekey
from minik.pki.nodecert import sign_node_csr, verify_proof

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


async def test_child_key_csr_proof_and_common_name(tmp_path: Path) -> None:
    pki = certs.ensure_pki(str(tmp_path / "tls"), ["localhost"], ["127.0.0.1"])
    ca, ca_key = Path(pki.ca_cert).read_bytes(), Path(pki.ca_key).read_bytes()
    key, csr, first = await nodekey.key_and_csr("n1")
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----") and csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    cert = sign_node_csr(ca, ca_key, csr, "n1")
    ident = verify_proof(ca, cert, await nodekey.link_proof("n1", key), time.time())
    assert ident.node_name == "n1"
    assert verify_proof(ca, cert, first, time.time()).node_name == "n1"
    assert await nodekey.common_name(cert) == "system:node:n1"
    other, _, _ = await nodekey.key_and_csr("n1")
    with pytest.raises(Exception, match="signature"):
        verify_proof(ca, cert, await nodekey.link_proof("n1", other), time.time())
    with pytest.raises(nodekey.NodeKeyError, match="cn failed"):
        await nodekey.common_name(b"not a certificate")
    with pytest.raises(nodekey.NodeKeyError, match="proof failed"):
        await nodekey.link_proof("n1", b"not a key")


async def test_child_self_signed_default_certificate_loads_as_the_ingress_context() -> None:
    from minik.ingress.tls import TlsStore
    pem = await nodekey.self_signed("minik ingress default certificate", "ingress.minik.invalid")
    assert pem.count(b"-----BEGIN") == 2
    store = TlsStore(pem)    # ssl loads key + certificate or raises
    assert store.context is not None


def test_a_joined_agent_does_not_load_what_it_does_not_use() -> None:
    """The modules a running `minik agent` imports (agentd and every node part it starts) leave
    out the server's packages and the libraries only some pods need (aiohttp for httpGet probes)."""
    code = ("import json, sys, minik.agentd, minik.ingress.controller, minik.agent.prepare\n"
            "minik.agentd._import_node_parts()\n"
            "print(json.dumps(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": ROOT}).stdout
    loaded = set(json.loads(out))
    for name in ("cryptography", "aiohttp", "sqlalchemy", "kubernetes_validate", "jwt", "croniter",
                 "minik.api", "minik.store", "minik.controllers", "minik.scheduler"):
        assert not {m for m in loaded if m == name or m.startswith(name + ".")}, name


async def test_fetch_ca_reads_cacerts_over_tls_without_verifying(tmp_path: Path) -> None:
    """minik.agentd.fetch_ca: one GET /cacerts (the CA is checked against the token's pin after)."""
    import asyncio
    import ssl

    from minik.agentd import AgentError, fetch_ca
    pki = certs.ensure_pki(str(tmp_path / "tls"), ["localhost"], ["127.0.0.1"])
    ca = Path(pki.ca_cert).read_bytes()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(pki.serving_cert, pki.serving_key)
    seen: list[bytes] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        seen.append(head)
        ok = head.startswith(b"GET /cacerts ")
        body = ca if ok else b"404 page not found\n"
        w.write(b"HTTP/1.0 " + (b"200 OK" if ok else b"404 Not Found") + b"\r\nContent-Type: text/plain\r\n"
                + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await w.drain()
        w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=ctx)
    port = srv.sockets[0].getsockname()[1]
    try:
        assert await fetch_ca(f"https://127.0.0.1:{port}") == ca
        assert await fetch_ca(f"https://127.0.0.1:{port}/") == ca
        assert seen[0].startswith(b"GET /cacerts HTTP/1.0\r\nHost: 127.0.0.1\r\n")
        with pytest.raises(AgentError, match="did not answer a CA"):
            await fetch_ca(f"https://127.0.0.1:{port}/other")
    finally:
        srv.close()
        await srv.wait_closed()
    with pytest.raises(AgentError, match="cannot reach"):
        await fetch_ca(f"https://127.0.0.1:{port}", timeout=5)
