"""Join/admin tokens: `K10<sha256(ca)>::server:<secret>`, as k3s formats its node-token."""

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


def token_secret(token: str) -> str:
    """The password part a client presents as a bearer token: everything after '::' (or the whole value)."""
    part = token.split("::", 1)[-1]
    return part.split(":", 1)[-1] if ":" in part else part
