"""Pure parts of joining: token parsing and the token set, node password hashes, node
certificates and link proofs, and what a pod makes readable to its node."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from minik.client.grpc import JoinError, check_ca
from minik.cluster.authorizer import references
from minik.cluster.jointokens import JoinTokens, TokenError, parse_token
from minik.cluster.nodepassword import hash_password, password_matches, secret_name
from minik.pki import certs
from minik.pki.nodecert import NodeCertError, make_key_and_csr, make_proof, sign_node_csr, verify_proof


def test_parse_token_shapes() -> None:
    pin = "ab" * 32
    assert parse_token(f"K10{pin}::server:xyz") == parse_token(f" K10{pin}::server:xyz\n")
    assert parse_token(f"K10{pin}::server:xyz").ca_hash == pin
    assert parse_token(f"K10{pin}::abcdef.0123456789abcdef").secret == "abcdef.0123456789abcdef"
    assert parse_token("bare-secret").ca_hash == ""
    for bad in ("", f"K10{pin}", f"K10{pin}::", "K10nothex::x", f"K10{pin[:-2]}::x"):
        with pytest.raises(TokenError):
            parse_token(bad)


def test_token_set_checks_server_secret_extra_tokens_and_expiry(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(f"K10{'cd' * 32}::server:s3cret\n")
    tokens = JoinTokens(str(tmp_path))
    tokens.check("server:s3cret")
    with pytest.raises(TokenError, match="not valid"):
        tokens.check("server:other")
    t0 = 1_000_000.0
    tok = tokens.create(ttl=60, now=t0)
    forever = tokens.create()
    tokens.check(tok.value, now=t0 + 59)
    tokens.check(forever.value, now=t0 + 10 ** 9)
    with pytest.raises(TokenError, match="expired"):
        tokens.check(tok.value, now=t0 + 61)
    with pytest.raises(TokenError):
        tokens.check(tok.id + ".wrongsecret0000")
    assert {t.id for t in tokens.list()} == {tok.id, forever.id}
    assert tokens.delete(tok.value) and not tokens.delete(tok.id) and not tokens.delete("../token")
    with pytest.raises(TokenError):
        tokens.check(tok.value, now=t0)
    assert oct(os.stat(tmp_path / "join-tokens" / forever.id).st_mode & 0o777) == "0o600"


def test_node_password_hash() -> None:
    h = hash_password("pw")
    assert h.startswith("scrypt$") and "pw" not in h.split("$", 1)[1]
    assert password_matches("pw", h) and not password_matches("pw2", h)
    assert not password_matches("pw", "md5$x$y") and not password_matches("pw", "scrypt$zz$00")
    assert hash_password("pw") != h  # salted
    assert secret_name("n1") == "n1.node-password.minik"


def test_node_certificate_and_link_proof(tmp_path: Path) -> None:
    pki = certs.ensure_pki(str(tmp_path / "tls"), ["localhost"], ["127.0.0.1"])
    ca, ca_key = Path(pki.ca_cert).read_bytes(), Path(pki.ca_key).read_bytes()
    key, csr = make_key_and_csr("asked-name")
    cert = sign_node_csr(ca, ca_key, csr, "n1")   # the server names the node, not the CSR
    now = time.time()
    ident = verify_proof(ca, cert, make_proof("n1", key, now), now)
    assert ident.node_name == "n1" and ident.groups == ("system:nodes",)
    with pytest.raises(NodeCertError, match="too old"):
        verify_proof(ca, cert, make_proof("n1", key, now - 3600), now)
    other_key, _ = make_key_and_csr("n1")
    with pytest.raises(NodeCertError, match="signature"):
        verify_proof(ca, cert, make_proof("n1", other_key, now), now)
    with pytest.raises(NodeCertError, match="signature"):
        verify_proof(ca, cert, make_proof("n2", key, now), now)   # a proof for another name
    other = certs.ensure_pki(str(tmp_path / "tls2"), ["localhost"], ["127.0.0.1"])
    with pytest.raises(NodeCertError, match="not issued"):
        verify_proof(Path(other.ca_cert).read_bytes(), cert, make_proof("n1", key, now), now)
    admin = Path(pki.admin_cert).read_bytes()
    with pytest.raises(NodeCertError):
        verify_proof(ca, admin, make_proof("n1", key, now), now)
    with pytest.raises(NodeCertError, match="PEM"):
        sign_node_csr(ca, ca_key, b"junk", "n1")


def test_check_ca_against_the_pin() -> None:
    import hashlib
    ca = b"-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"
    check_ca(ca, hashlib.sha256(ca).hexdigest())
    check_ca(ca, "")
    with pytest.raises(JoinError, match="CA hash"):
        check_ca(ca, "00" * 32)


def test_references_of_a_pod() -> None:
    pod = {"spec": {
        "serviceAccountName": "robot",
        "imagePullSecrets": [{"name": "pull"}],
        "volumes": [{"name": "a", "secret": {"secretName": "vol-secret"}}, {"name": "b", "configMap": {"name": "vol-cm"}},
                    {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                    {"name": "d", "projected": {"sources": [{"configMap": {"name": "kube-root-ca.crt"}},
                                                            {"secret": {"name": "proj-secret"}},
                                                            {"serviceAccountToken": {"path": "token"}}]}}],
        "initContainers": [{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}],
        "containers": [{"name": "c", "env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
                                             {"name": "B", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                                             {"name": "C", "value": "plain"}],
                        "envFrom": [{"configMapRef": {"name": "from-cm"}}]}],
    }}
    refs = references(pod)
    assert refs.secrets == {"pull", "vol-secret", "proj-secret", "init-env", "env-secret"}
    assert refs.configmaps == {"vol-cm", "kube-root-ca.crt", "env-cm", "from-cm"}
    assert refs.pvcs == {"data"}
    assert refs.service_account == "robot"
    assert references({"spec": {}}).service_account == "default"


def test_agent_node_name_and_supervisor_target(tmp_path: Path) -> None:
    from minik.agentd import AgentError, node_name_for, supervisor_target
    from minik.config import JoinConfig
    cfg = JoinConfig("https://10.0.0.1:6443", "t", node_name="Pi", with_node_id=True, data_dir=str(tmp_path))
    first = node_name_for(cfg)
    assert first.startswith("pi-") and len(first) == len("pi-") + 8
    assert node_name_for(cfg) == first              # the id is kept in <data-dir>/agent/node-id
    assert node_name_for(JoinConfig("u", "t", node_name="pi", data_dir=str(tmp_path))) == "pi"
    assert supervisor_target("https://10.0.0.1:6443", 6444) == "10.0.0.1:6444"
    assert supervisor_target("https://[fd00::1]:6443/", 7000) == "[fd00::1]:7000"
    assert supervisor_target("server.lan:6443", 6444) == "server.lan:6444"
    with pytest.raises(AgentError):
        supervisor_target("http://10.0.0.1:6443", 6444)
