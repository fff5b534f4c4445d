"""PolicyRule logic, pure: does a rule allow a request, does a set of rules cover another, and the
rule text Kubernetes prints in escalation errors.

Follows Kubernetes's RBAC semantics:
- matching (`rbac.RuleAllows`): verb, API group, resource (`*`, exact `pods/log`, or `*/log` for a
  subresource), resourceNames (empty = any name), non-resource URLs (exact or `/prefix*`);
- coverage (`validation.Covers`): every requested rule is broken down into single-verb,
  single-group, single-resource, single-name pieces; each piece must be covered by one owner rule;
- `compact` merges the uncovered pieces again per (group, resource) and `compact_string` renders
  `{APIGroups:["apps"], Resources:["deployments"], Verbs:["get" "list"]}` like `CompactString`.
- aggregation: the rules of an aggregated ClusterRole are the rules of the ClusterRoles its
  `aggregationRule.clusterRoleSelectors` select, in name order, without duplicates.
Neighbours: used by `minik.api.rbac` (authorizer), `minik.api.rbac_escalation` and
`minik.api.rbac_aggregation`; imports only `minik.apis.selectors`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from minik.apis.selectors import LabelSelector, SelectorError

Obj = dict[str, Any]

FULL_AUTHORITY: list[Obj] = [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                             {"nonResourceURLs": ["*"], "verbs": ["*"]}]


def _strs(rule: Mapping[str, Any], key: str) -> list[str]:
    v = rule.get(key)
    return [str(x) for x in v] if isinstance(v, list) else []


# ---- matching a request ---------------------------------------------------------------------
def resource_matches(resources: Sequence[Any], resource: str) -> bool:
    """`resource` is "pods" or "pods/log"; `*/log` in the rule matches any resource's log."""
    if "*" in resources or resource in resources:
        return True
    _, _, sub = resource.partition("/")
    return bool(sub) and "*/" + sub in resources


def _seq(rule: Mapping[str, Any], key: str) -> Sequence[Any]:
    """The list at `key` without copying (authorization runs on every request); () otherwise."""
    v = rule.get(key)
    return v if isinstance(v, list) else ()


def rule_allows(rule: Mapping[str, Any], verb: str, group: str, resource: str, name: str) -> bool:
    verbs, groups = _seq(rule, "verbs"), _seq(rule, "apiGroups")
    if not ("*" in verbs or verb in verbs) or not ("*" in groups or group in groups):
        return False
    if not resource_matches(_seq(rule, "resources"), resource):
        return False
    names = _seq(rule, "resourceNames")
    return not names or name in names


def url_matches(pattern: str, path: str) -> bool:
    return pattern == "*" or pattern == path or (pattern.endswith("*") and path.startswith(pattern.rstrip("*")))


def url_allows(rule: Mapping[str, Any], verb: str, path: str) -> bool:
    verbs = _seq(rule, "verbs")
    if not ("*" in verbs or verb in verbs):
        return False
    return any(isinstance(u, str) and url_matches(u, path) for u in _seq(rule, "nonResourceURLs"))


# ---- coverage (escalation prevention) -------------------------------------------------------
def breakdown(rule: Mapping[str, Any]) -> list[Obj]:
    """Equivalent rules with at most one verb, group, resource and resource name each."""
    out: list[Obj] = []
    verbs, names = _strs(rule, "verbs"), _strs(rule, "resourceNames")
    for g in _strs(rule, "apiGroups"):
        for r in _strs(rule, "resources"):
            for v in verbs:
                if names:
                    out += [{"apiGroups": [g], "resources": [r], "verbs": [v], "resourceNames": [n]} for n in names]
                else:
                    out.append({"apiGroups": [g], "resources": [r], "verbs": [v]})
    for u in _strs(rule, "nonResourceURLs"):
        out += [{"nonResourceURLs": [u], "verbs": [v]} for v in verbs]
    return out


def _resources_cover(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    if "*" in owner:
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: Sequence[str], wanted: Sequence[str]) -> bool:
    return all(any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*"))) for o in owner) for w in wanted)


def rule_covers(owner: Mapping[str, Any], piece: Mapping[str, Any]) -> bool:
    """Does one owner rule cover a broken-down piece (kube's `ruleCovers`)?"""
    o_verbs, o_groups, o_names = _strs(owner, "verbs"), _strs(owner, "apiGroups"), _strs(owner, "resourceNames")
    p_names = _strs(piece, "resourceNames")
    verbs = "*" in o_verbs or set(_strs(piece, "verbs")) <= set(o_verbs)
    groups = "*" in o_groups or set(_strs(piece, "apiGroups")) <= set(o_groups)
    resources = _resources_cover(_strs(owner, "resources"), _strs(piece, "resources"))
    urls = _urls_cover(_strs(owner, "nonResourceURLs"), _strs(piece, "nonResourceURLs"))
    names = not o_names or (bool(p_names) and set(p_names) <= set(o_names))
    return verbs and groups and resources and urls and names


def uncovered(owner_rules: Sequence[Mapping[str, Any]], wanted: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The broken-down pieces of `wanted` that no owner rule covers (empty: fully covered)."""
    return [p for w in wanted for p in breakdown(w) if not any(rule_covers(o, p) for o in owner_rules)]


def compact(rules: Sequence[Obj]) -> list[Obj]:
    """Merge simple single-group single-resource rules per (group, resource), verbs joined."""
    out: list[Obj] = []
    merged: dict[tuple[str, str], Obj] = {}
    for r in rules:
        groups, resources = _strs(r, "apiGroups"), _strs(r, "resources")
        if len(groups) == 1 and len(resources) == 1 and not r.get("resourceNames") and not r.get("nonResourceURLs"):
            key = (groups[0], resources[0])
            if key in merged:
                for v in _strs(r, "verbs"):
                    if v not in merged[key]["verbs"]:
                        merged[key]["verbs"].append(v)
                continue
            merged[key] = {"apiGroups": groups, "resources": resources, "verbs": list(_strs(r, "verbs"))}
            out.append(merged[key])
        else:
            out.append(dict(r))
    return out


def go_strings(values: Sequence[str]) -> str:
    """Go's %q of a []string: ["a" "b"]."""
    return "[" + " ".join(go_quote(v) for v in values) + "]"


def go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def compact_string(rule: Mapping[str, Any]) -> str:
    parts = [f"{label}:{go_strings(_strs(rule, key))}"
             for label, key in (("APIGroups", "apiGroups"), ("Resources", "resources"), ("NonResourceURLs", "nonResourceURLs"),
                                ("ResourceNames", "resourceNames"), ("Verbs", "verbs")) if _strs(rule, key)]
    return "{" + ", ".join(parts) + "}"


def describe_missing(missing: Sequence[Obj]) -> str:
    """The sorted, compacted lines kube prints after "not currently held:"."""
    return "\n".join(sorted(compact_string(r) for r in compact(missing)))


# ---- aggregation ----------------------------------------------------------------------------
def selectors_of(role: Mapping[str, Any]) -> list[LabelSelector]:
    agg = role.get("aggregationRule")
    if not isinstance(agg, dict):
        return []
    out: list[LabelSelector] = []
    for s in agg.get("clusterRoleSelectors") or []:
        if isinstance(s, dict):
            try:
                out.append(LabelSelector.from_api(s))
            except SelectorError:
                continue
    return out


def aggregated_rules(role: Mapping[str, Any], roles: Iterable[Mapping[str, Any]]) -> list[Obj] | None:
    """The rules an aggregated ClusterRole should have, or None when it has no aggregationRule.
    Selected roles are taken in name order and their rules appended once each (kube's
    clusterrole-aggregation controller)."""
    sels = selectors_of(role)
    if not sels:
        return None
    own = (role.get("metadata") or {}).get("name")
    chosen: list[Mapping[str, Any]] = []
    for other in roles:
        m = other.get("metadata") or {}
        if m.get("name") == own:
            continue
        labels = m.get("labels") or {}
        if any(s.matches(labels) for s in sels):
            chosen.append(other)
    rules: list[Obj] = []
    for other in sorted(chosen, key=lambda o: str((o.get("metadata") or {}).get("name", ""))):
        for r in other.get("rules") or []:
            if isinstance(r, dict) and r not in rules:
                rules.append(r)
    return rules


def resolve_aggregation(roles: list[Obj], rounds: int = 8) -> list[Obj]:
    """Fill the rules of every aggregated role among `roles` (copies), repeating until nested
    aggregations (admin ← edit ← view) are stable."""
    out = [dict(r) for r in roles]
    for _ in range(rounds):
        changed = False
        for r in out:
            want = aggregated_rules(r, out)
            if want is not None and want != (r.get("rules") or []):
                r["rules"] = want
                changed = True
        if not changed:
            break
    return out
