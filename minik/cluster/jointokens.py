"""Join tokens: parsing `K10<sha256 of the CA>::<secret>` and the server's set of valid secrets.

The server's own token (`<data-dir>/server/token`, secret `server:<hex>`, made by
`minik.pki.token.ensure_token`) never expires. Extra tokens from `minik token create [--ttl]` are
files under `<data-dir>/server/join-tokens/<id>` (JSON: secret, created, expires), shaped like
Kubernetes bootstrap tokens (`<id>.<secret>`, id 6 and secret 16 characters of [a-z0-9]). Files,
not Secrets, so that the command works with the server stopped and no API credential, as
`k3s token` does against its datastore; the server reads them on every Join (joins are rare).
Comparison of secrets is constant-time.
Neighbours: `minik.cluster.server` (Join), `minik.cli.token` (the command), agents parse with
`parse_token`.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import string
import time
from dataclasses import dataclass

_ALPHABET = string.ascii_lowercase + string.digits


class TokenError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ParsedToken:
    ca_hash: str        # "" for a bare secret (no CA pinning)
    secret: str         # "server:<hex>" or "<id>.<secret>"


def parse_token(token: str) -> ParsedToken:
    token = token.strip()
    if not token:
        raise TokenError("no join token given (--token, --token-file or MINIK_TOKEN)")
    if token.startswith("K10"):
        pin, sep, secret = token[3:].partition("::")
        if not sep or len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise TokenError("malformed join token: expected K10<64 hex digits of the CA hash>::<secret>")
        if not secret:
            raise TokenError("malformed join token: nothing after '::'")
        return ParsedToken(pin, secret)
    return ParsedToken("", token)


@dataclass(frozen=True, slots=True)
class JoinToken:
    id: str
    secret: str
    created: float
    expires: float      # 0: never

    @property
    def value(self) -> str:
        return f"{self.id}.{self.secret}"


class JoinTokens:
    """The valid join secrets of one server."""

    def __init__(self, server_dir: str) -> None:
        self.server_dir = server_dir
        self.dir = os.path.join(server_dir, "join-tokens")

    def _server_secret(self) -> str:
        try:
            with open(os.path.join(self.server_dir, "token"), encoding="utf-8") as f:
                return parse_token(f.read()).secret
        except (OSError, TokenError):
            return ""

    def create(self, ttl: float = 0.0, now: float | None = None) -> JoinToken:
        t = now if now is not None else time.time()
        tok = JoinToken("".join(secrets.choice(_ALPHABET) for _ in range(6)),
                        "".join(secrets.choice(_ALPHABET) for _ in range(16)), t, t + ttl if ttl > 0 else 0.0)
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        path = os.path.join(self.dir, tok.id)
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({"secret": tok.secret, "created": tok.created, "expires": tok.expires}, f)
        os.replace(path + ".tmp", path)
        return tok

    def list(self) -> list[JoinToken]:
        out = []
        try:
            names = sorted(os.listdir(self.dir))
        except FileNotFoundError:
            return []
        for name in names:
            if name.endswith(".tmp"):
                continue
            try:
                with open(os.path.join(self.dir, name), encoding="utf-8") as f:
                    d = json.load(f)
                out.append(JoinToken(name, str(d["secret"]), float(d["created"]), float(d.get("expires") or 0)))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return out

    def delete(self, token_id: str) -> bool:
        token_id = token_id.split(".", 1)[0]
        if not token_id or "/" in token_id or token_id.startswith("."):
            return False
        try:
            os.unlink(os.path.join(self.dir, token_id))
        except FileNotFoundError:
            return False
        return True

    def check(self, secret: str, now: float | None = None) -> None:
        """Return when `secret` may join; TokenError saying why not (invalid or expired)."""
        mine = self._server_secret()
        if mine and hmac.compare_digest(secret.encode(), mine.encode()):
            return
        t = now if now is not None else time.time()
        tid, dot, _ = secret.partition(".")
        if dot:
            for tok in self.list():
                if tok.id == tid and hmac.compare_digest(secret.encode(), tok.value.encode()):
                    if tok.expires and tok.expires <= t:
                        raise TokenError(f"join token {tok.id} expired at "
                                         f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(tok.expires))}; "
                                         "create a new one with `minik token create`")
                    return
        raise TokenError("the join token's secret is not valid on this server "
                         "(see <data-dir>/server/token on the server, or `minik token create`)")
