"""Authentication (client certificates, bearer tokens), impersonation, and the authorizer seam.

Neighbours: `minik.api.app` runs `Authenticator.authenticate` and then `impersonate` in a
middleware before any handler; `minik.pki` produced the CA that signs client certificates.
The daemon's `Authorizer` is RBAC (`minik.api.rbac`); `AllowAuthenticated` serves tests.
Impersonation follows kube-apiserver's filter: `Impersonate-User`, `Impersonate-Group`
(repeatable), `Impersonate-Uid` and `Impersonate-Extra-<key>` are each authorized with the
`impersonate` verb (users/groups, serviceaccounts in their namespace for
`system:serviceaccount:<ns>:<name>`, authentication.k8s.io uids and userextras/<key>); the
impersonated user gets `system:authenticated` (or `system:unauthenticated` for anonymous).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol
from urllib.parse import unquote

ANONYMOUS_PATHS = frozenset({"/version", "/healthz", "/livez", "/readyz", "/cacerts", "/ping"})


@dataclass(frozen=True, slots=True)
class User:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ANONYMOUS = User("system:anonymous", ("system:unauthenticated",))


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


class Authorizer(Protocol):
    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool: ...

    def allowed_path(self, user: User, verb: str, path: str) -> bool: ...

    def decide(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> Decision: ...

    def decide_path(self, user: User, verb: str, path: str) -> Decision: ...

    def rules_for(self, user: User, namespace: str) -> list[dict[str, Any]]: ...


class AllowAuthenticated:
    """Allow every authenticated user (for tests and single-user setups; the daemon uses RBAC)."""

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return user.name != ANONYMOUS.name

    def allowed_path(self, user: User, verb: str, path: str) -> bool:
        return user.name != ANONYMOUS.name

    def decide(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> Decision:
        return Decision(self.allowed(user, verb, group, resource, namespace, name))

    def decide_path(self, user: User, verb: str, path: str) -> Decision:
        return Decision(self.allowed_path(user, verb, path))

    def rules_for(self, user: User, namespace: str) -> list[dict[str, Any]]:
        if user.name == ANONYMOUS.name:
            return []
        return [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}]


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


# ---- impersonation -----------------------------------------------------------------------------
IMPERSONATE_USER = "Impersonate-User"
IMPERSONATE_GROUP = "Impersonate-Group"
IMPERSONATE_UID = "Impersonate-Uid"
IMPERSONATE_EXTRA = "Impersonate-Extra-"
SA_PREFIX = "system:serviceaccount:"


class ImpersonationError(Exception):
    """Refused impersonation: `code` 400 (malformed headers) or 403 (not authorized)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, slots=True)
class ImpersonationRequest:
    """One thing to impersonate, as the RBAC attributes that authorize it."""

    group: str        # API group of the attributes
    resource: str     # users, groups, serviceaccounts, uids, userextras/<key>
    namespace: str
    name: str


def impersonation_requests(headers: Mapping[str, str] | Any) -> tuple[list[ImpersonationRequest], User | None]:
    """Parse the Impersonate-* headers: (what to authorize, the user to become), or ([], None).

    `headers` is a multidict (aiohttp's CIMultiDictProxy): Impersonate-Group repeats."""
    user_name = headers.get(IMPERSONATE_USER, "")
    requested_groups = _all(headers, IMPERSONATE_GROUP)
    groups = list(requested_groups)
    uid = headers.get(IMPERSONATE_UID, "")
    extra: dict[str, list[str]] = {}
    for key in headers.keys():
        if key.lower().startswith(IMPERSONATE_EXTRA.lower()):
            ek = unquote(key[len(IMPERSONATE_EXTRA):].lower())
            if ek not in extra:
                extra[ek] = _all(headers, key)
    if not user_name and not groups and not uid and not extra:
        return [], None
    if not user_name:
        # kube prints the requests as Go's %v of []v1.ObjectReference (7 fields, blanks included).
        def ref(kind: str, name: str, field_path: str = "") -> str:
            return "{" + " ".join([kind, "", name, "", "", "", field_path]) + "}"
        what = [ref("Group", g) for g in groups] + [ref("UserExtra", v, k) for k, vs in extra.items() for v in vs] + \
               ([ref("UID", uid)] if uid else [])
        raise ImpersonationError(400, f"requested [{' '.join(what)}] without impersonating a user")
    reqs: list[ImpersonationRequest] = []
    if user_name.startswith(SA_PREFIX) and user_name.count(":") == 3:
        _, _, ns, name = user_name.split(":")
        reqs.append(ImpersonationRequest("", "serviceaccounts", ns, name))
        if not groups:
            groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    else:
        reqs.append(ImpersonationRequest("", "users", "", user_name))
    reqs += [ImpersonationRequest("", "groups", "", g) for g in requested_groups]
    reqs += [ImpersonationRequest("authentication.k8s.io", f"userextras/{k}", "", v) for k, vs in extra.items() for v in vs]
    if uid:
        reqs.append(ImpersonationRequest("authentication.k8s.io", "uids", "", uid))
    if user_name != ANONYMOUS.name:
        if not any(g in ("system:authenticated", "system:unauthenticated") for g in groups):
            groups.append("system:authenticated")
    elif "system:unauthenticated" not in groups:
        groups.append("system:unauthenticated")
    return reqs, User(user_name, tuple(groups), uid, extra)


def _all(headers: Mapping[str, str] | Any, key: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return [str(v) for v in getall(key, [])]
    return [str(headers[key])] if key in headers else []


def impersonate(headers: Mapping[str, str] | Any, user: User, authz: Authorizer) -> User:
    """The user a request acts as: `user` itself, or the one its Impersonate-* headers name when
    `user` may impersonate every part of it; raises ImpersonationError otherwise."""
    reqs, target = impersonation_requests(headers)
    if target is None:
        return user
    for r in reqs:
        if not authz.allowed(user, "impersonate", r.group, r.resource, r.namespace, r.name):
            resource, _, sub = r.resource.partition("/")
            gr = f"{resource}.{r.group}" if r.group else resource
            where = f' in the namespace "{r.namespace}"' if r.namespace else " at the cluster scope"
            res_text = f"{resource}/{sub}" if sub else resource
            raise ImpersonationError(403, f'{gr} "{r.name}" is forbidden: User "{user.name}" cannot impersonate resource '
                                          f'"{res_text}" in API group "{r.group}"{where}')
    return target
