"""rbac.authorization.k8s.io/v1 validation: Role, ClusterRole, RoleBinding, ClusterRoleBinding.

Follows `k8s.io/kubernetes/pkg/apis/rbac/validation` (rule shapes, roleRef kinds, subject kinds and
their apiGroup, `cannot change roleRef`). Neighbours: dispatched from `minik.apis.validation`.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_dns1123_subdomain, is_path_segment_name
from minik.apis.validation.field import GoRaw, as_dict, child, dicts, go_quote, index, invalid, not_supported, required
from minik.apis.validation.meta import validate_label_selector

Obj = dict[str, Any]
GROUP = "rbac.authorization.k8s.io"


def _rule(rule: Obj, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if not rule.get("verbs"):
        causes.append(required(child(path, "verbs"), "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        if namespaced:
            causes.append(invalid(child(path, "nonResourceURLs"), urls, "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            causes.append(invalid(child(path, "nonResourceURLs"), urls,
                                  "rules cannot apply to both regular resources and non-resource URLs"))
        return causes
    if not rule.get("apiGroups"):
        causes.append(required(child(path, "apiGroups"), "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        causes.append(required(child(path, "resources"), "resource rules must supply at least one resource"))
    return causes


def validate_role(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, r in enumerate(dicts(obj.get("rules"))):
        causes += _rule(r, True, index("rules", i))
    return causes


def validate_cluster_role(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    agg = obj.get("aggregationRule")
    if isinstance(agg, dict):
        sels = dicts(agg.get("clusterRoleSelectors"))
        if not sels:
            causes.append(required("aggregationRule.clusterRoleSelectors", "at least one clusterRoleSelector required if aggregationRule is non-nil"))
        for i, s in enumerate(sels):
            causes += validate_label_selector(s, index("aggregationRule.clusterRoleSelectors", i))
        return causes
    for i, r in enumerate(dicts(obj.get("rules"))):
        causes += _rule(r, False, index("rules", i))
    return causes


def _subject(s: Obj, namespaced: bool, path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = str(s.get("name") or "")
    if not name:
        causes.append(required(child(path, "name")))
    kind = s.get("kind")
    api_group = s.get("apiGroup") or ""
    if kind == "ServiceAccount":
        if name:
            causes += [invalid(child(path, "name"), name, m) for m in is_dns1123_subdomain(name)]
        if api_group:
            causes.append(not_supported(child(path, "apiGroup"), api_group, ("",)))
        if not namespaced and not s.get("namespace"):
            causes.append(required(child(path, "namespace")))
    elif kind in ("User", "Group"):
        if api_group != GROUP:
            causes.append(not_supported(child(path, "apiGroup"), api_group, (GROUP,)))
    else:
        causes.append(not_supported(child(path, "kind"), kind or "", ("ServiceAccount", "User", "Group")))
    return causes


def _role_ref_rendered(ref: Obj) -> GoRaw:
    return GoRaw(f"rbac.RoleRef{{APIGroup:{go_quote(str(ref.get('apiGroup') or ''))}, "
                 f"Kind:{go_quote(str(ref.get('kind') or ''))}, Name:{go_quote(str(ref.get('name') or ''))}}}")


def _binding(obj: Obj, old: Obj | None, namespaced: bool) -> list[Cause]:
    causes: list[Cause] = []
    ref = as_dict(obj.get("roleRef"))
    if ref.get("apiGroup") != GROUP:
        causes.append(not_supported("roleRef.apiGroup", ref.get("apiGroup") or "", (GROUP,)))
    kinds = ("Role", "ClusterRole") if namespaced else ("ClusterRole",)
    if ref.get("kind") not in kinds:
        causes.append(not_supported("roleRef.kind", ref.get("kind") or "", kinds))
    name = str(ref.get("name") or "")
    if not name:
        causes.append(required("roleRef.name"))
    else:
        causes += [invalid("roleRef.name", name, m) for m in is_path_segment_name(name)]
    for i, s in enumerate(dicts(obj.get("subjects"))):
        causes += _subject(s, namespaced, index("subjects", i))
    if old is not None:
        oref = as_dict(old.get("roleRef"))
        if any((ref.get(k) or "") != (oref.get(k) or "") for k in ("apiGroup", "kind", "name")):
            causes.append(invalid("roleRef", _role_ref_rendered(ref), "cannot change roleRef"))
    return causes


def validate_role_binding(obj: Obj, old: Obj | None) -> list[Cause]:
    return _binding(obj, old, True)


def validate_cluster_role_binding(obj: Obj, old: Obj | None) -> list[Cause]:
    return _binding(obj, old, False)
