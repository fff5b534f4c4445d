"""RBAC escalation prevention: nobody grants permissions they do not hold.

Follows kube-apiserver's policy-based RBAC storage:
- Role/ClusterRole create and update: allowed for `system:masters`, for a user with the
  `escalate` verb on roles/clusterroles, or when every rule of the object is covered by the
  rules the user holds (in the Role's namespace; cluster-wide for a ClusterRole). An
  `aggregationRule` can gather anything, so it needs full authority. An update that touches only
  garbage-collection fields (ownerReferences, finalizers) is not checked.
- RoleBinding/ClusterRoleBinding create and update: allowed for `system:masters`, for a user with
  the `bind` verb on the referenced role (resourceNames honoured), or when the user holds every
  rule of the referenced role (in the binding's namespace).
Refusals are 403 Forbidden with kube's text: `… is attempting to grant RBAC permissions not
currently held:` followed by the missing rules.
The requesting user reaches the write path through a context variable (`REQUESTER`) that
`minik.api.handlers` sets for requests to RBAC kinds; writes without one (bootstrap,
controllers in this process) are trusted.
Neighbours: called from `minik.api.kinds` write hooks; rules logic in `minik.api.rbac_rules`.
"""

from __future__ import annotations

import copy
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from minik.api import status as st
from minik.api.auth import User
from minik.api.rbac_rules import FULL_AUTHORITY, describe_missing, go_strings, uncovered
from minik.apis.registry import ResourceType

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
MASTERS = "system:masters"
GC_FIELDS = ("ownerReferences", "finalizers", "resourceVersion", "managedFields", "generation")


class RoleResolver(Protocol):
    """What the check needs from the RBAC authorizer (`minik.api.rbac.RBACAuthorizer`)."""

    def allowed(self, user: User, verb: str, group: str, resource: str, namespace: str, name: str) -> bool: ...

    def rules_for(self, user: User, namespace: str) -> list[Obj]: ...

    def role(self, ref: Obj, namespace: str) -> Obj | None: ...


@dataclass(frozen=True, slots=True)
class Requester:
    user: User
    resolver: RoleResolver


REQUESTER: ContextVar[Requester | None] = ContextVar("minik_rbac_requester", default=None)


def only_gc_fields_changed(new: Obj, old: Obj | None) -> bool:
    if old is None:
        return False
    a, b = copy.deepcopy(new), copy.deepcopy(old)
    for o in (a, b):
        m = o.get("metadata") or {}
        for k in GC_FIELDS:
            m.pop(k, None)
    return a == b


def not_held(user: User, missing: list[Obj]) -> str:
    return (f'user "{user.name}" (groups={go_strings(list(user.groups))}) is attempting to grant RBAC permissions '
            f"not currently held:\n{describe_missing(missing)}")


def check_write(rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    """Raise 403 when the request's user may not write this Role/ClusterRole/(Cluster)RoleBinding."""
    req = REQUESTER.get()
    if req is None or rt.group != RBAC or MASTERS in req.user.groups:
        return
    if rt.kind in ("Role", "ClusterRole"):
        check_role(req, rt, obj, old)
    elif rt.kind in ("RoleBinding", "ClusterRoleBinding"):
        check_binding(req, rt, obj, old)


def _rules(obj: Obj) -> list[Obj]:
    """The rule objects of a role; anything malformed is left to validation (422)."""
    rules = obj.get("rules")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


def _ns_name(rt: ResourceType, obj: Obj) -> tuple[str, str]:
    m = obj.get("metadata") or {}
    return (str(m.get("namespace") or "") if rt.namespaced else "", str(m.get("name") or ""))


def check_role(req: Requester, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    ns, name = _ns_name(rt, obj)
    user = req.user
    if req.resolver.allowed(user, "escalate", RBAC, rt.plural, ns, name):
        return
    if only_gc_fields_changed(obj, old):
        return
    held = req.resolver.rules_for(user, ns)
    rules = _rules(obj)
    missing = uncovered(held, rules)
    if missing:
        raise st.forbidden(f'{rt.group_resource} "{name}" is forbidden: {not_held(user, missing)}', rt, name)
    agg = rt.kind == "ClusterRole" and (obj.get("aggregationRule") or (old or {}).get("aggregationRule"))
    if agg and uncovered(held, FULL_AUTHORITY):
        raise st.forbidden(f'{rt.group_resource} "{name}" is forbidden: must have cluster-admin privileges to use the aggregationRule',
                           rt, name)


def check_binding(req: Requester, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
    ns, name = _ns_name(rt, obj)
    user = req.user
    if only_gc_fields_changed(obj, old):
        return
    ref = obj.get("roleRef") or {}
    if not isinstance(ref, dict):
        return   # validation answers a malformed roleRef with 422
    kind, role_name = str(ref.get("kind") or ""), str(ref.get("name") or "")
    plural = {"ClusterRole": "clusterroles", "Role": "roles"}.get(kind)
    if plural is None:
        return
    if req.resolver.allowed(user, "bind", RBAC, plural, ns, role_name):
        return
    role = req.resolver.role(ref, ns)
    if role is None:
        raise st.StatusError(404, "NotFound", f'{plural}.{RBAC} "{role_name}" not found',
                             {"name": role_name, "group": RBAC, "kind": plural})
    rules = _rules(role)
    missing = uncovered(req.resolver.rules_for(user, ns), rules)
    if missing:
        raise st.forbidden(f'{rt.group_resource} "{name}" is forbidden: {not_held(user, missing)}', rt, name)
