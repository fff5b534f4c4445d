"""Cluster PKI: the CA, the API serving certificate, the admin client certificate.

Generated on first start under `<data-dir>/server/tls/`, reused after. Neighbours: `minik.daemon`
calls `ensure_pki`; `minik.api.auth` trusts the CA for client certificates; `minik.pki.kubeconfig`
writes the admin kubeconfig from the result.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 365
RENEW_WITHIN = dt.timedelta(days=120)  # like k3s: renew leaf certs at start when this close to expiry


@dataclass(frozen=True, slots=True)
class Pki:
    ca_cert: str        # paths
    ca_key: str
    serving_cert: str
    serving_key: str
    admin_cert: str
    admin_key: str


def _write(path: str, data: bytes, mode: int = 0o600) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _load_key(path: str) -> ec.EllipticCurvePrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _load_cert(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _make_ca(cert_path: str, key_path: str) -> None:
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"minik-server-ca@{int(_now().timestamp())}")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1)).not_valid_after(_now() + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    _write(key_path, _key_pem(key))
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _leaf_ok(path: str, key_path: str, sans: list[x509.GeneralName] | None) -> bool:
    if not (os.path.exists(path) and os.path.exists(key_path)):
        return False
    cert = _load_cert(path)
    if cert.not_valid_after_utc - _now() < RENEW_WITHIN:
        return False
    if sans is not None:
        try:
            have = set(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        except x509.ExtensionNotFound:
            return False
        if not set(sans) <= have:
            return False
    return True


def _make_leaf(ca_cert: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, path: str, key_path: str, cn: str,
               orgs: list[str], server: bool, sans: list[x509.GeneralName]) -> None:
    key = _key()
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs] + [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    b = (
        x509.CertificateBuilder().subject_name(x509.Name(attrs)).issuer_name(ca_cert.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(_now() - dt.timedelta(hours=1)).not_valid_after(_now() + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, True, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = b.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key))
    _write(path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def self_signed_pem(common_name: str, dns_name: str) -> bytes:
    """A fresh EC P-256 key and a self-signed certificate for it (key + cert, PEM), valid for a
    year: the ingress's default certificate for names no Secret covers."""
    key = _key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .sign(key, hashes.SHA256()))
    return _key_pem(key) + cert.public_bytes(serialization.Encoding.PEM)


def serving_sans(hostnames: list[str], ips: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for h in dict.fromkeys(hostnames):
        try:
            ipaddress.ip_address(h)
            ips = ips + [h]
        except ValueError:
            out.append(x509.DNSName(h))
    for ip in dict.fromkeys(ips):
        out.append(x509.IPAddress(ipaddress.ip_address(ip)))
    return out


def ensure_pki(tls_dir: str, hostnames: list[str], ips: list[str]) -> Pki:
    """Create what is missing (or about to expire); keep the rest. Blocking: call via to_thread."""
    os.makedirs(tls_dir, mode=0o700, exist_ok=True)
    p = Pki(*(os.path.join(tls_dir, n) for n in (
        "server-ca.crt", "server-ca.key", "serving-kube-apiserver.crt", "serving-kube-apiserver.key",
        "client-admin.crt", "client-admin.key")))
    if not (os.path.exists(p.ca_cert) and os.path.exists(p.ca_key)):
        _make_ca(p.ca_cert, p.ca_key)
    ca_cert, ca_key = _load_cert(p.ca_cert), _load_key(p.ca_key)
    sans = serving_sans(hostnames, ips)
    if not _leaf_ok(p.serving_cert, p.serving_key, sans):
        _make_leaf(ca_cert, ca_key, p.serving_cert, p.serving_key, "kube-apiserver", [], True, sans)
    if not _leaf_ok(p.admin_cert, p.admin_key, None):
        _make_leaf(ca_cert, ca_key, p.admin_cert, p.admin_key, "system:admin", ["system:masters"], False, [])
    return p


def ca_hash(ca_cert_path: str) -> str:
    """sha256 of the CA certificate file, as pinned in a K10 join token."""
    import hashlib
    with open(ca_cert_path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()
