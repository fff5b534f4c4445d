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
    key, csr = await nodekey.key_and_csr("n1")
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----") and csr.startswith(b"-----BEGIN CERTIFICATE REQUEST-----")
    cert = sign_node_csr(ca, ca_key, csr, "n1")
    ident = verify_proof(ca, cert, await nodekey.link_proof("n1", key), time.time())
    assert ident.node_name == "n1"
    assert await nodekey.common_name(cert) == "system:node:n1"
    other, _ = await nodekey.key_and_csr("n1")
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
