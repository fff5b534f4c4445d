"""The agent's key work (its key and CSR, link proofs, the name in a certificate, the ingress's
self-signed default certificate) done in a short-lived child process, so a joined agent never
loads `cryptography`.

Why: `cryptography`'s Rust extension and its Python side cost an idle agent about 10 MB of RSS
for good (pages of a loaded library stay resident), against a budget of 60 MB, for work it does
once per join or link (re)connection. The child is this interpreter running `python -m
minik.pki.nodecert`, so it uses the same library versions as the server; it takes ~0.1–0.2 s,
which a join overlaps with starting containerd. The server keeps signing in process.
Neighbours: `minik.pki.nodecert` does the cryptography (and is the child's entry point);
`minik.agentd` (credentials), `minik.client.grpc` (link proofs) and `minik.ingress.controller`
(default certificate) call these.
"""

from __future__ import annotations

import asyncio
import os
import sys

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"

_PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_CSR_BEGIN = b"-----BEGIN CERTIFICATE REQUEST-----"


class NodeKeyError(Exception):
    pass


async def _child(args: list[str], stdin: bytes = b"", timeout: float = 60.0) -> bytes:
    env = dict(os.environ)
    # The child must import this minik, wherever it was imported from (a checkout, a venv).
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH", "")) if p)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "minik.pki.nodecert", *args, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        msg = err.decode(errors="replace").strip().splitlines()
        raise NodeKeyError(f"node key helper {args[0]} failed ({proc.returncode}): {msg[-1] if msg else 'no output'}")
    return out


async def key_and_csr(node_name: str) -> tuple[bytes, bytes, str]:
    """A fresh P-256 key (PEM), a CSR naming the node (`nodecert.make_key_and_csr`) and a link
    proof signed with the key now, for the first link (saves a second child on a join)."""
    out = await _child(["csr", node_name])
    key, sep, rest = out.partition(_CSR_BEGIN)
    end = b"-----END CERTIFICATE REQUEST-----\n"
    csr, sep2, proof = rest.partition(end)
    if not sep or not sep2 or b"PRIVATE KEY" not in key or not proof.strip():
        raise NodeKeyError("node key helper csr: unexpected output")
    return key, sep + csr + sep2, proof.decode().strip()


async def link_proof(node_name: str, key_pem: bytes) -> str:
    """The proof a link carries (`nodecert.make_proof`), signed now."""
    return (await _child(["proof", node_name], key_pem)).decode().strip()


async def common_name(cert_pem: bytes) -> str:
    """The subject CN of a PEM certificate ("" when it has none); NodeKeyError when unreadable."""
    return (await _child(["cn"], cert_pem)).decode().strip()


async def self_signed(common_name: str, dns_name: str) -> bytes:
    """A fresh key and a self-signed certificate for it (key + cert PEM, `certs.self_signed_pem`):
    the ingress's default certificate, which every joined agent's ingress proxy needs."""
    out = await _child(["selfsigned", common_name, dns_name])
    if b"PRIVATE KEY" not in out or b"BEGIN CERTIFICATE" not in out:
        raise NodeKeyError("node key helper selfsigned: unexpected output")
    return out
