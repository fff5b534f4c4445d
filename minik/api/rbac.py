"""RBAC authorization (rbac.authorization.k8s.io/v1), evaluated against the store's in-memory cache.

Follows Kubernetes's RBAC authorizer: `system:masters` may do anything; otherwise a request is
allowed when a rule of a Role/ClusterRole bound to the user (by name, group or ServiceAccount)
matches its verb, API group, resource (`pods/log` for subresources), resource name, or — for
non-resource requests — its URL (`/healthz`, `/api/*`). Nothing matching means denied.
The bootstrap roles minik creates at start (cluster-admin, admin, edit, view, system:discovery,
system:basic-user, system:public-info-viewer) are in `BOOTSTRAP`.
Neighbours: `minik.api.handlers` asks `allowed`; `minik.daemon` writes the bootstrap objects.
"""

from __future__ import annotations

from typing import Any, Iterable

from minik.api.auth import User
from minik.store.store import Store

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"

_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]
_EDIT_RESOURCES = [
    ("", ["pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "pods/log", "pods/status", "configmaps",
          "endpoints", "persistentvolumeclaims", "replicationcontrollers", "replicationcontrollers/scale", "secrets",
          "serviceaccounts", "services", "services/proxy", "events"]),
    ("apps", ["daemonsets", "deployments", "deployments/scale", "deployments/rollback", "replicasets", "replicasets/scale",
              "statefulsets", "statefulsets/scale", "controllerrevisions"]),
    ("autoscaling", ["horizontalpodautoscalers"]),
    ("batch", ["cronjobs", "jobs"]),
    ("networking.k8s.io", ["ingresses", "networkpolicies"]),
    ("policy", ["poddisruptionbudgets"]),
    ("discovery.k8s.io", ["endpointslices"]),
    ("coordination.k8s.io", ["leases"]),
]


def _rules(verbs: list[str], admin: bool = False) -> list[Obj]:
    out = [{"apiGroups": [g], "resources": rs, "verbs": verbs} for g, rs in _EDIT_RESOURCES]
    if admin:
        out.append({"apiGroups": [RBAC], "resources": ["roles", "rolebindings"], "verbs": _READ + _WRITE})
        out.append({"apiGroups": ["authorization.k8s.io"], "resources": ["localsubjectaccessreviews"], "verbs": ["create"]})
    out.append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]})
    out.append({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]} if verbs != _READ else
               {"apiGroups": [""], "resources": ["limitranges", "resourcequotas", "namespaces/status", "pods/status"], "verbs": _READ})
    return out


_SELF = [{"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]},
         {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]}]

BOOTSTRAP_ROLES: list[Obj] = [
    {"name": "cluster-admin", "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                                        {"nonResourceURLs": ["*"], "verbs": ["*"]}]},
    {"name": "admin", "rules": _rules(_READ + _WRITE, admin=True)},
    {"name": "edit", "rules": _rules(_READ + _WRITE)},
    {"name": "view", "rules": _rules(_READ)},
    {"name": "system:discovery", "rules": [{"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/readyz",
                                                                "/openapi", "/openapi/*", "/version", "/version/"], "verbs": ["get"]}]},
    {"name": "system:basic-user", "rules": _SELF},
    {"name": "system:public-info-viewer", "rules": [{"nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"], "verbs": ["get"]}]},
]
BOOTSTRAP_BINDINGS: list[Obj] = [
    {"name": "cluster-admin", "role": "cluster-admin", "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "system:masters"}]},
    {"name": "system:discovery", "role": "system:discovery", "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"}]},
    {"name": "system:basic-user", "role": "system:basic-user", "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"}]},
    {"name": "system:public-info-viewer", "role": "system:public-info-viewer",
     "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"},
                  {"kind": "Group", "apiGroup": RBAC, "name": "system:unauthenticated"}]},
]


def bootstrap_objects() -> list[tuple[str, Obj]]:
    """(store key, object) pairs for the bootstrap ClusterRoles and ClusterRoleBindings."""
    labels = {"kubernetes.io/bootstrapping": "rbac-defaults"}
    out: list[tuple[str, Obj]] = []
    for r in BOOTSTRAP_ROLES:
        out.append((f"{RBAC}/clusterroles", {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole",
                                             "metadata": {"name": r["name"], "labels": labels,
                                                          "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
                                             "rules": r["rules"]}))
    for b in BOOTSTRAP_BINDINGS:
        out.append((f"{RBAC}/clusterrolebindings", {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding",
                                                    "metadata": {"name": b["name"], "labels": labels,
                                                                 "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"}},
                                                    "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": b["role"]},
                                                    "subjects": b["subjects"]}))
    return out


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


def _has(values: Iterable[str] | None, want: str) -> bool:
    vals = list(values or [])
    return "*" in vals or want in vals


def rule_allows(rule: Obj, verb: str, group: str, resource: str, name: str) -> bool:
    if not _has(rule.get("verbs"), verb) or not _has(rule.get("apiGroups"), group):
        return False
    resources = list(rule.get("resources") or [])
    main, _, sub = resource.partition("/")
    if not ("*" in resources or resource in resources or (sub and f"*/{sub}" in resources) or (not sub and main in resources)):
        return False
    names = rule.get("resourceNames") or []
    return not names or name in names


def url_allows(rule: Obj, verb: str, path: str) -> bool:
    if not _has(rule.get("verbs"), verb):
        return False
    for u in rule.get("nonResourceURLs") or []:
        if u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])):
            return True
    return False


class RBACAuthorizer:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _rules_for(self, user: User, namespace: str) -> Iterable[Obj]:
        for b in self.store.list(f"{RBAC}/clusterrolebindings").items:
            if any(subject_matches(s, user, "") for s in b.get("subjects") or []):
                yield from self._role_rules(b.get("roleRef") or {}, "")
        if namespace:
            for b in self.store.list(f"{RBAC}/rolebindings", namespace).items:
                if any(subject_matches(s, user, namespace) for s in b.get("subjects") or []):
                    yield from self._role_rules(b.get("roleRef") or {}, namespace)

    def _role_rules(self, ref: Obj, namespace: str) -> list[Obj]:
        if ref.get("kind") == "ClusterRole":
            role = self.store.get(f"{RBAC}/clusterroles", "", ref.get("name", ""))
        else:
            role = self.store.get(f"{RBAC}/roles", namespace, ref.get("name", ""))
        return list((role or {}).get("rules") or [])

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        if "system:masters" in user.groups:
            return True
        return any(rule_allows(r, verb, group, resource, name) for r in self._rules_for(user, namespace))

    def allowed_path(self, user: User, verb: str, path: str) -> bool:
        if "system:masters" in user.groups:
            return True
        return any(url_allows(r, verb, path) for r in self._rules_for(user, ""))
