"""ServiceAccount tokens: ES256 JWTs signed with the cluster's service-account key (PyJWT does
the JOSE work; cryptography holds the key). Issued by the TokenRequest subresource, verified by the
API's authenticator.

Claims follow Kubernetes's bound tokens: iss, sub `system:serviceaccount:<ns>:<name>`, aud, exp,
iat, nbf and the `kubernetes.io` block (namespace, serviceaccount {name, uid}, optional pod).
Neighbours: `minik.api.reviews`/`minik.api.handlers` issue; `minik.api.auth` verifies.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

DEFAULT_EXPIRATION = 3600
MIN_EXPIRATION = 600


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    namespace: str
    name: str
    uid: str
    audiences: tuple[str, ...]
    pod_name: str = ""
    pod_uid: str = ""

    @property
    def username(self) -> str:
        return f"system:serviceaccount:{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return ("system:serviceaccounts", f"system:serviceaccounts:{self.namespace}", "system:authenticated")


def ensure_key(path: str) -> ec.EllipticCurvePrivateKey:
    """Load the signing key, creating it (0600) on first start. Blocking: call via to_thread."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.replace(path + ".tmp", path)
    return key


class ServiceAccountTokens:
    def __init__(self, key: ec.EllipticCurvePrivateKey, issuer: str, api_audiences: tuple[str, ...],
                 clock: Callable[[], float] = time.time) -> None:
        self.key, self.issuer, self.api_audiences, self.clock = key, issuer, api_audiences, clock
        self.public = key.public_key()

    def issue(self, namespace: str, name: str, uid: str, audiences: list[str] | None = None,
              expiration_seconds: int | None = None, pod: dict[str, str] | None = None) -> tuple[str, int]:
        """Return (token, expiry as unix time)."""
        now = int(self.clock())
        exp = now + max(MIN_EXPIRATION, int(expiration_seconds or DEFAULT_EXPIRATION))
        k8s: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
        if pod:
            k8s["pod"] = pod
        claims = {"iss": self.issuer, "sub": f"system:serviceaccount:{namespace}:{name}",
                  "aud": list(audiences or self.api_audiences), "exp": exp, "iat": now, "nbf": now,
                  "jti": str(uuid.uuid4()), "kubernetes.io": k8s}
        return jwt.encode(claims, self.key, algorithm="ES256"), exp

    def verify(self, token: str, audiences: tuple[str, ...] | None = None) -> TokenIdentity | None:
        """The identity in a valid, unexpired token for one of `audiences` (default: the API's); else None."""
        try:
            claims = jwt.decode(token, self.public, algorithms=["ES256"], audience=list(audiences or self.api_audiences),
                                issuer=self.issuer, options={"require": ["exp", "iat", "sub"]})
        except jwt.PyJWTError:
            return None
        k8s = claims.get("kubernetes.io") or {}
        sa = k8s.get("serviceaccount") or {}
        aud = claims.get("aud")
        auds = tuple(aud) if isinstance(aud, list) else (str(aud),)
        if not k8s.get("namespace") or not sa.get("name"):
            return None
        pod = k8s.get("pod") or {}
        return TokenIdentity(k8s["namespace"], sa["name"], sa.get("uid", ""), auds, pod.get("name", ""), pod.get("uid", ""))
