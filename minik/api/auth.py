"""Authentication (client certificates, bearer tokens) and the authorizer seam.

Neighbours: `minik.api.app` runs `Authenticator.authenticate` in a middleware before any
handler; `minik.pki` produced the CA that signs client certificates. Full RBAC enforcement plugs
in behind `Authorizer` later; today authenticated users are allowed (as with k3s's admin).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

ANONYMOUS_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz", "/cacerts", "/ping"})


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


class Authorizer(Protocol):
    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool: ...

    def allowed_path(self, user: User, verb: str, path: str) -> bool: ...


class AllowAuthenticated:
    """Allow every authenticated user (for tests and single-user setups; the daemon uses RBAC)."""

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return user.name != ANONYMOUS.name

    def allowed_path(self, user: User, verb: str, path: str) -> bool:
        return user.name != ANONYMOUS.name


class Authenticator:
    """Static bearer tokens (admin, node join secret) and x509 client certs signed by the cluster CA."""

    def __init__(self, tokens: dict[str, User], jwt_verifier: Callable[[str], User | None] | None = None) -> None:
        self._tokens = dict(tokens)
        self.jwt_verifier = jwt_verifier

    def add_token(self, token: str, user: User) -> None:
        self._tokens[token] = user

    def authenticate(self, authorization: str | None, peercert: dict[str, Any] | None) -> User | None:
        """Return the user, ANONYMOUS when no credentials were offered, or None when they were wrong."""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                return None
            value = value.strip()
            for tok, user in self._tokens.items():
                if hmac.compare_digest(tok.encode(), value.encode()):
                    return user
            if self.jwt_verifier is not None and value.count(".") == 2:
                return self.jwt_verifier(value)
            return None
        if peercert:
            return user_from_cert(peercert)
        return ANONYMOUS


def user_from_cert(peercert: dict[str, Any]) -> User | None:
    """CN is the user name, O entries are groups (Kubernetes's x509 convention)."""
    cn, orgs = "", []
    for rdn in peercert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                cn = value
            elif key == "organizationName":
                orgs.append(value)
    if not cn:
        return None
    return User(cn, tuple(orgs) + ("system:authenticated",))
