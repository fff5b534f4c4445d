"""Node client certificates for joined agents: the agent's key and CSR, the server's signature
(`system:node:<name>`, organisation `system:nodes`), and the proof an agent attaches to each link.

Why a proof instead of mutual TLS: one gRPC port serves both the unauthenticated Join (an agent
has no certificate yet) and the Link, and grpc's Python server either asks every client for a
certificate or none. So the agent sends its certificate and a signature over
"<node name>|<unix time>" with its key in the call metadata; the server checks the chain against
the cluster CA, the name, the signature and that the time is fresh. The metadata travels inside
the TLS session that the agent opened after pinning the CA, so it cannot be read or replayed by
anyone between the hosts.
Neighbours: `minik.cluster.server` signs and verifies; the agent creates the key, the CSR and the
proof through `minik.pki.nodekey`, which runs `main` below in a child process.
"""

from __future__ import annotations

import base64
import datetime as dt
import sys
import time
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from minik.pki.nodekey import NODE_USER_PREFIX, NODES_GROUP

NODE_CERT_DAYS = 365
PROOF_SKEW = 300.0   # seconds a link proof stays acceptable (clock skew between hosts)


class NodeCertError(Exception):
    pass


def make_key_and_csr(node_name: str) -> tuple[bytes, bytes]:
    """A fresh P-256 key (PEM) and a CSR naming the node."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                                    x509.NameAttribute(NameOID.COMMON_NAME, NODE_USER_PREFIX + node_name)]))
           .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, csr.public_bytes(serialization.Encoding.PEM)


def sign_node_csr(ca_cert_pem: bytes, ca_key_pem: bytes, csr_pem: bytes, node_name: str) -> bytes:
    """The node's client certificate. The subject is set here: whatever the CSR asks for, the
    certificate names only the node the join was authorised for."""
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as e:
        raise NodeCertError(f"the certificate signing request is not PEM: {e}") from None
    if not csr.is_signature_valid:
        raise NodeCertError("the certificate signing request's signature is invalid")
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                         x509.NameAttribute(NameOID.COMMON_NAME, NODE_USER_PREFIX + node_name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(ca.subject)
            .public_key(csr.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=NODE_CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def make_proof(node_name: str, key_pem: bytes, now: float | None = None) -> str:
    """"<unix time>.<base64 signature of '<node>|<time>'>"."""
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    stamp = str(int(now if now is not None else time.time()))
    sig = key.sign(f"{node_name}|{stamp}".encode(), ec.ECDSA(hashes.SHA256()))
    return stamp + "." + base64.b64encode(sig).decode()


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    node_name: str
    groups: tuple[str, ...]


def verify_proof(ca_cert_pem: bytes, cert_pem: bytes, proof: str, now: float | None = None) -> NodeIdentity:
    """The node a link belongs to, or NodeCertError saying what is wrong."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise NodeCertError("the node certificate is not PEM") from None
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise NodeCertError("the node certificate was not issued by this cluster's CA") from None
    t = dt.datetime.now(dt.timezone.utc)
    if not (cert.not_valid_before_utc <= t <= cert.not_valid_after_utc):
        raise NodeCertError("the node certificate has expired; remove <data-dir>/agent/client-node.* and rejoin")
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    if not cn.startswith(NODE_USER_PREFIX):
        raise NodeCertError(f"certificate {cn!r} is not a node certificate")
    node = cn[len(NODE_USER_PREFIX):]
    stamp, _, sig_b64 = proof.partition(".")
    try:
        sig = base64.b64decode(sig_b64, validate=True)
        when = int(stamp)
    except ValueError:
        raise NodeCertError("malformed link proof") from None
    if abs((now if now is not None else time.time()) - when) > PROOF_SKEW:
        raise NodeCertError("link proof too old (are the clocks of server and agent apart?)")
    pub = cert.public_key()
    if not isinstance(pub, ec.EllipticCurvePublicKey):
        raise NodeCertError("unsupported node key type")
    try:
        pub.verify(sig, f"{node}|{stamp}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise NodeCertError("link proof signature does not match the node certificate") from None
    orgs = tuple(str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME))
    return NodeIdentity(node, orgs)


def main(argv: list[str]) -> int:
    """`python -m minik.pki.nodecert csr NODE (key, CSR and a first link proof) | proof NODE (key
    on stdin) | cn (cert on stdin) | selfsigned CN DNSNAME`: the agent's key work, out of its process (see `minik.pki.nodekey`)."""
    out = sys.stdout.buffer
    if argv[:1] == ["csr"] and len(argv) == 2:
        key, csr = make_key_and_csr(argv[1])
        out.write(key + csr + make_proof(argv[1], key).encode() + b"\n")
    elif argv[:1] == ["proof"] and len(argv) == 2:
        out.write(make_proof(argv[1], sys.stdin.buffer.read()).encode() + b"\n")
    elif argv[:1] == ["selfsigned"] and len(argv) == 3:
        from minik.pki.certs import self_signed_pem
        out.write(self_signed_pem(argv[1], argv[2]))
    elif argv == ["cn"]:
        cert = x509.load_pem_x509_certificate(sys.stdin.buffer.read())
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        out.write((str(cns[0].value) if cns else "").encode() + b"\n")
    else:
        print("usage: python -m minik.pki.nodecert csr NODE | proof NODE | cn | selfsigned CN DNSNAME", file=sys.stderr)
        return 2
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
