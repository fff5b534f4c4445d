"""The bootstrap policy's facts, start-up reconciliation, impersonation headers and escalation checks."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from minik.api import status as st
from minik.api.auth import AllowAuthenticated, ImpersonationError, User, impersonate, impersonation_requests
from minik.api.rbac_bootstrap import AUTOUPDATE, cluster_role_bindings, cluster_roles, needs_recreate, reconcile
from minik.api.rbac_escalation import REQUESTER, Requester, check_write
from minik.api.rbac_rules import rule_allows, url_allows
from minik.apis.registry import Registry

Obj = dict[str, Any]
ROLES = {r["metadata"]["name"]: r for r in cluster_roles()}
BINDINGS = {b["metadata"]["name"]: b for b in cluster_role_bindings()}


def can(role: str, verb: str, group: str, resource: str, name: str = "x") -> bool:
    return any(rule_allows(r, verb, group, resource, name) for r in ROLES[role]["rules"])


@pytest.mark.parametrize("role, verb, group, resource, want", [
    ("view", "get", "", "pods", True),
    ("view", "get", "", "pods/log", True),
    ("view", "get", "", "secrets", False),
    ("view", "list", "", "secrets", False),
    ("view", "get", "", "pods/proxy", False),
    ("view", "get", "", "services/proxy", False),
    ("view", "create", "", "pods/exec", False),
    ("view", "list", "rbac.authorization.k8s.io", "roles", False),
    ("view", "list", "apps", "deployments", True),
    ("edit", "get", "", "secrets", True),
    ("edit", "create", "", "secrets", True),
    ("edit", "create", "", "pods/exec", True),
    ("edit", "get", "", "pods/proxy", True),
    ("edit", "impersonate", "", "serviceaccounts", True),
    ("edit", "create", "rbac.authorization.k8s.io", "rolebindings", False),
    ("edit", "list", "rbac.authorization.k8s.io", "roles", False),
    ("admin", "create", "rbac.authorization.k8s.io", "rolebindings", True),
    ("admin", "delete", "rbac.authorization.k8s.io", "roles", True),
    ("admin", "create", "authorization.k8s.io", "localsubjectaccessreviews", True),
    ("admin", "create", "", "namespaces", False),
    ("admin", "get", "", "nodes", False),
    ("admin", "escalate", "rbac.authorization.k8s.io", "roles", False),
    ("admin", "bind", "rbac.authorization.k8s.io", "clusterroles", False),
    ("cluster-admin", "delete", "", "nodes", True),
    ("system:kube-scheduler", "create", "", "pods/binding", True),
    ("system:node", "get", "", "secrets", True),
    ("system:controller:generic-garbage-collector", "delete", "apps", "replicasets", True),
])
def test_default_roles_as_kubernetes(role: str, verb: str, group: str, resource: str, want: bool) -> None:
    assert can(role, verb, group, resource) is want


def test_labels_annotations_and_aggregation_facts() -> None:
    for o in [*ROLES.values(), *BINDINGS.values()]:
        assert o["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert o["metadata"]["annotations"][AUTOUPDATE] == "true"
    assert ROLES["admin"]["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]}
    assert ROLES["edit"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-admin"] == "true"
    assert ROLES["view"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert ROLES["system:aggregate-to-view"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    # admin ⊇ edit ⊇ view, by aggregation.
    for r in ROLES["view"]["rules"]:
        assert r in ROLES["edit"]["rules"]
    for r in ROLES["edit"]["rules"]:
        assert r in ROLES["admin"]["rules"]
    assert any(url_allows(r, "get", "/apis/apps") for r in ROLES["system:discovery"]["rules"])
    assert not any(url_allows(r, "get", "/api") for r in ROLES["system:public-info-viewer"]["rules"])
    assert BINDINGS["system:public-info-viewer"]["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:unauthenticated"}]
    assert BINDINGS["system:controller:deployment-controller"]["subjects"] == [
        {"kind": "ServiceAccount", "name": "deployment-controller", "namespace": "kube-system"}]
    assert "subjects" not in BINDINGS["system:node"]


def test_reconcile_adds_and_keeps() -> None:
    desired = ROLES["system:basic-user"]
    assert reconcile(desired, desired) is None
    trimmed = {**desired, "rules": desired["rules"][:1] + [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]}
    out = reconcile(trimmed, desired)
    assert out is not None and out["rules"][:2] == trimmed["rules"] and desired["rules"][1] in out["rules"]
    frozen = {**trimmed, "metadata": {**desired["metadata"], "annotations": {AUTOUPDATE: "false"}}}
    assert reconcile(frozen, desired) is None
    # Aggregated roles: selectors are ensured, rules left to the aggregation controller.
    admin = ROLES["admin"]
    custom = {**admin, "rules": [{"apiGroups": ["x"], "resources": ["y"], "verbs": ["get"]}]}
    assert reconcile(custom, admin) is None
    b = BINDINGS["system:discovery"]
    extra = {**b, "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "me"}]}
    out = reconcile(extra, b)
    assert out is not None and out["subjects"] == extra["subjects"] + b["subjects"]
    assert needs_recreate({**b, "roleRef": {**b["roleRef"], "name": "other"}}, b)
    assert not needs_recreate(b, b)


class FakeAuthz(AllowAuthenticated):
    """An authorizer from explicit grants: (user, verb, group, resource, namespace, name)."""

    def __init__(self, grants: set[tuple[str, str, str, str, str, str]], rules: list[Obj] | None = None,
                 roles: dict[str, Obj] | None = None) -> None:
        self.grants, self.rules, self.roles = grants, rules or [], roles or {}

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool:
        return (user.name, verb, group, resource, namespace, name) in self.grants

    def rules_for(self, user: User, namespace: str) -> list[Obj]:
        return self.rules

    def role(self, ref: Obj, namespace: str) -> Obj | None:
        return self.roles.get(str(ref.get("name")))


def test_impersonation_headers() -> None:
    h = CIMultiDict([("Impersonate-User", "system:serviceaccount:ns1:robot"), ("Impersonate-Extra-Scopes%2Fa", "x"),
                     ("Impersonate-Extra-scopes%2fa", "y"), ("Impersonate-Uid", "u1")])
    reqs, user = impersonation_requests(h)
    assert user == User("system:serviceaccount:ns1:robot", ("system:serviceaccounts", "system:serviceaccounts:ns1",
                                                            "system:authenticated"), "u1", {"scopes/a": ["x", "y"]})
    assert [(r.group, r.resource, r.namespace, r.name) for r in reqs] == [
        ("", "serviceaccounts", "ns1", "robot"), ("authentication.k8s.io", "userextras/scopes/a", "", "x"),
        ("authentication.k8s.io", "userextras/scopes/a", "", "y"), ("authentication.k8s.io", "uids", "", "u1")]
    reqs, user = impersonation_requests(CIMultiDict([("Impersonate-User", "jane"), ("Impersonate-Group", "a"),
                                                     ("Impersonate-Group", "b")]))
    assert user is not None and user.groups == ("a", "b", "system:authenticated")
    assert [r.resource for r in reqs] == ["users", "groups", "groups"]
    _, anon = impersonation_requests(CIMultiDict([("Impersonate-User", "system:anonymous")]))
    assert anon is not None and anon.groups == ("system:unauthenticated",)
    assert impersonation_requests(CIMultiDict()) == ([], None)
    with pytest.raises(ImpersonationError) as e:
        impersonation_requests(CIMultiDict([("Impersonate-Group", "system:masters")]))
    assert e.value.code == 400 and "without impersonating a user" in e.value.message


def test_impersonate_authorizes_every_part() -> None:
    me = User("alice", ("system:authenticated",))
    h = CIMultiDict([("Impersonate-User", "bob"), ("Impersonate-Group", "devs")])
    authz = FakeAuthz({("alice", "impersonate", "", "users", "", "bob")})
    with pytest.raises(ImpersonationError) as e:
        impersonate(h, me, authz)
    assert e.value.code == 403
    assert e.value.message == ('groups "devs" is forbidden: User "alice" cannot impersonate resource "groups" '
                               'in API group "" at the cluster scope')
    authz.grants.add(("alice", "impersonate", "", "groups", "", "devs"))
    assert impersonate(h, me, authz) == User("bob", ("devs", "system:authenticated"))
    assert impersonate(CIMultiDict(), me, authz) is me


def _rt(kind: str) -> Any:
    reg = Registry()
    return next(t for t in reg.types if t.kind == kind and t.group == "rbac.authorization.k8s.io")


def _as(user: User, authz: FakeAuthz) -> Any:
    return REQUESTER.set(Requester(user, authz))


def test_escalation_checks() -> None:
    sa = User("system:serviceaccount:ns1:boss", ("system:serviceaccounts", "system:authenticated"))
    held = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]
    authz = FakeAuthz(set(), held, {"cluster-admin": ROLES["cluster-admin"], "pod-reader": {"rules": held}})
    role_rt, rb_rt, crb_rt = _rt("Role"), _rt("RoleBinding"), _rt("ClusterRoleBinding")
    wild: Obj = {"metadata": {"name": "wild", "namespace": "ns1"}, "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    ok: Obj = {"metadata": {"name": "ok", "namespace": "ns1"}, "rules": held}
    bind_admin: Obj = {"metadata": {"name": "root", "namespace": "ns1"},
                       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}}
    check_write(role_rt, wild, None)          # no requester: an in-process write is trusted
    token = _as(sa, authz)
    try:
        with pytest.raises(st.StatusError) as e:
            check_write(role_rt, wild, None)
        assert e.value.code == 403
        assert e.value.message == (
            'roles.rbac.authorization.k8s.io "wild" is forbidden: user "system:serviceaccount:ns1:boss" '
            '(groups=["system:serviceaccounts" "system:authenticated"]) is attempting to grant RBAC permissions not '
            'currently held:\n{APIGroups:["*"], Resources:["*"], Verbs:["*"]}')
        check_write(role_rt, ok, None)
        with pytest.raises(st.StatusError) as e:
            check_write(rb_rt, bind_admin, None)
        assert e.value.code == 403 and "not currently held" in e.value.message
        check_write(rb_rt, {**bind_admin, "roleRef": {**bind_admin["roleRef"], "kind": "Role", "name": "pod-reader"}}, None)
        with pytest.raises(st.StatusError) as e:
            check_write(rb_rt, {**bind_admin, "roleRef": {**bind_admin["roleRef"], "name": "missing"}}, None)
        assert e.value.code == 404
        # GC-only updates pass even on a role the user could not create.
        check_write(role_rt, {**wild, "metadata": {**wild["metadata"], "finalizers": ["x"]}}, wild)
        # escalate / bind verbs lift the checks (bind honours resourceNames).
        authz.grants.add((sa.name, "escalate", "rbac.authorization.k8s.io", "roles", "ns1", "wild"))
        check_write(role_rt, wild, None)
        authz.grants.add((sa.name, "bind", "rbac.authorization.k8s.io", "clusterroles", "ns1", "cluster-admin"))
        check_write(rb_rt, bind_admin, None)
        with pytest.raises(st.StatusError):
            check_write(crb_rt, {**bind_admin, "metadata": {"name": "root"}}, None)   # the grant was for ns1 only
    finally:
        REQUESTER.reset(token)
    masters = User("root", ("system:masters",))
    token = _as(masters, FakeAuthz(set()))
    try:
        check_write(role_rt, wild, None)
        check_write(crb_rt, bind_admin, None)
    finally:
        REQUESTER.reset(token)


def test_namespaced_defaults() -> None:
    from minik.api.rbac import bootstrap_objects
    objs = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for _, o in bootstrap_objects()}
    reader = objs[("Role", "kube-system", "extension-apiserver-authentication-reader")]
    assert reader["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"],
                                "resourceNames": ["extension-apiserver-authentication"]}]
    b = objs[("RoleBinding", "kube-system", "system::leader-locking-kube-scheduler")]
    assert b["roleRef"]["name"] == "system::leader-locking-kube-scheduler"
    # Every RoleBinding refers to a default Role of its namespace.
    for (kind, ns, _), o in objs.items():
        if kind == "RoleBinding":
            assert ("Role", ns, o["roleRef"]["name"]) in objs


def test_malformed_rules_are_left_to_validation() -> None:
    user = User("u", ("system:authenticated",))
    token = _as(user, FakeAuthz(set()))
    try:
        for rules in (5, "x", [1, None], [{"verbs": 3, "apiGroups": "a", "resources": None}]):
            check_write(_rt("ClusterRole"), {"metadata": {"name": "bad"}, "rules": rules}, None)
        check_write(_rt("ClusterRoleBinding"), {"metadata": {"name": "bad"}, "roleRef": 7}, None)
    finally:
        REQUESTER.reset(token)
