"""RBAC authorization (rbac.authorization.k8s.io/v1), evaluated against the store's in-memory cache.

Follows Kubernetes's RBAC authorizer: `system:masters` may do anything; otherwise a request is
allowed when a rule of a Role/ClusterRole bound to the user (by name, group or ServiceAccount)
matches its verb, API group, resource (`pods/log` for subresources), resource name, or — for
non-resource requests — its URL (`/healthz`, `/api/*`). Nothing matching means denied (no
reason, as kube's RBAC gives none); an allow names the binding, as kube's reason does:
`RBAC: allowed by RoleBinding "b/ns" of ClusterRole "view" to ServiceAccount "sa/ns"`.
`rules_for(user, namespace)` is kube's `RulesFor`: what SelfSubjectRulesReview lists and what
escalation prevention compares against. The default roles live in `minik.api.rbac_bootstrap`.
Neighbours: `minik.api.handlers` and `minik.api.app` ask `allowed`/`allowed_path`;
`minik.api.reviews` asks `decide`/`rules_for`; `minik.daemon` writes `bootstrap_objects()`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, Iterator

from minik.api.auth import Decision, User
from minik.api.rbac_bootstrap import cluster_role_bindings, cluster_roles, namespaced_defaults
from minik.api.rbac_rules import FULL_AUTHORITY, rule_allows, url_allows
from minik.store.store import Store

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
MASTERS = "system:masters"


def bootstrap_objects() -> list[tuple[str, Obj]]:
    """(store key, object) pairs for the bootstrap ClusterRoles and ClusterRoleBindings, then the
    Roles and RoleBindings of kube-system/kube-public (`minik.api.rbac_bootstrap`, Kubernetes
    1.32's default policy)."""
    return ([(f"{RBAC}/clusterroles", o) for o in cluster_roles()]
            + [(f"{RBAC}/clusterrolebindings", o) for o in cluster_role_bindings()]
            + [(f"{RBAC}/{o['kind'].lower()}s", o) for o in namespaced_defaults()])


def subject_matches(subject: Obj, user: User, namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return bool(subject.get("name") == user.name)
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or namespace
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


def _describe(kind: str, name: str, ref: Obj, subject: Obj, namespace: str) -> str:
    return f'{kind} "{name}" of {ref.get("kind")} "{ref.get("name")}" to {describe_subject(subject, namespace)}'


def describe_subject(subject: Obj, namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace") or namespace}"'
    return f'{subject.get("kind")} "{subject.get("name")}"'


class RBACAuthorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _bound(self, user: User, namespace: str) -> Iterator[tuple[Callable[[], str], list[Obj]]]:
        """(description of the binding, rules of its role) for every binding naming the user; the
        description is built only when a decision needs it."""
        for b in self.store.list(f"{RBAC}/clusterrolebindings").items:
            s = next((s for s in b.get("subjects") or [] if subject_matches(s, user, "")), None)
            if s is not None:
                ref = b.get("roleRef") or {}
                yield (partial(_describe, "ClusterRoleBinding", b["metadata"]["name"], ref, s, ""), self.role_rules(ref, ""))
        if namespace:
            for b in self.store.list(f"{RBAC}/rolebindings", namespace).items:
                s = next((s for s in b.get("subjects") or [] if subject_matches(s, user, namespace)), None)
                if s is not None:
                    ref = b.get("roleRef") or {}
                    yield (partial(_describe, "RoleBinding", f'{b["metadata"]["name"]}/{namespace}', ref, s, namespace),
                           self.role_rules(ref, namespace))

    def role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        """The rules of a roleRef (a ClusterRole, or a Role in `namespace`); [] when it is missing."""
        role = self.role(ref, namespace)
        rules = (role or {}).get("rules")
        return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []

    def role(self, ref: Obj, namespace: str) -> Obj | None:
        if ref.get("kind") == "ClusterRole":
            return self.store.get(f"{RBAC}/clusterroles", "", str(ref.get("name", "")))
        if ref.get("kind") == "Role" and namespace:
            return self.store.get(f"{RBAC}/roles", namespace, str(ref.get("name", "")))
        return None

    def rules_for(self, user: User, namespace: str) -> list[Obj]:
        """Every rule the user holds in `namespace` ("" = cluster-wide bindings only)."""
        rules: list[Obj] = list(FULL_AUTHORITY) if MASTERS in user.groups else []
        for _, rs in self._bound(user, namespace):
            rules += rs
        return rules

    def decide(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> Decision:
        if MASTERS in user.groups:
            return Decision(True)
        for source, rules in self._bound(user, namespace):
            if any(rule_allows(r, verb, group, resource, name) for r in rules):
                return Decision(True, f"RBAC: allowed by {source()}")
        return Decision(False)

    def decide_path(self, user: User, verb: str, path: str) -> Decision:
        if MASTERS in user.groups:
            return Decision(True)
        for source, rules in self._bound(user, ""):
            if any(url_allows(r, verb, path) for r in rules):
                return Decision(True, f"RBAC: allowed by {source()}")
        return Decision(False)

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return self.decide(user, verb, group, resource, namespace, name).allowed

    def allowed_path(self, user: User, verb: str, path: str) -> bool:
        return self.decide_path(user, verb, path).allowed
