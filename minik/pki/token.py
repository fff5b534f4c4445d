"""The join token (`K10<sha256(ca)>::server:<secret>`, as k3s formats its node-token) and the admin bearer token."""

from __future__ import annotations

import os
import secrets

from minik.pki.certs import ca_hash


def ensure_token(path: str, ca_cert: str, given: str = "") -> str:
    """Return the full K10 token, creating `path` (0600) on first start. A `--token` value is kept as the secret."""
    if os.path.exists(path) and not given:
        with open(path) as f:
            return f.read().strip()
    secret = given.split("::", 1)[-1] if given else "server:" + secrets.token_hex(16)
    if not secret.startswith("server:") and ":" not in secret:
        secret = "server:" + secret
    token = f"K10{ca_hash(ca_cert)}::{secret}"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(path + ".tmp", path)
    return token


def ensure_admin_token(path: str) -> str:
    """A bearer token for the admin (system:masters), kept apart from the join token so that
    knowing the join token grants no API access. Created (0600) on first start."""
    if os.path.exists(path):
        with open(path) as f:
            value = f.read().strip()
        if value:
            return value
    value = secrets.token_urlsafe(32)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    os.replace(path + ".tmp", path)
    return value
