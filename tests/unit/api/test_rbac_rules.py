"""Pure RBAC rule logic: matching, coverage (escalation prevention), compact text, aggregation."""

from __future__ import annotations

from typing import Any

import pytest

from minik.api.rbac_rules import (FULL_AUTHORITY, aggregated_rules, breakdown, compact, compact_string, describe_missing,
                                  resolve_aggregation, rule_allows, rule_covers, uncovered, url_allows)

Obj = dict[str, Any]


def rule(groups: str, resources: str, verbs: str, names: str = "") -> Obj:
    r: Obj = {"apiGroups": [g if g != "core" else "" for g in groups.split()], "resources": resources.split(),
              "verbs": verbs.split()}
    if names:
        r["resourceNames"] = names.split()
    return r


def urls(paths: str, verbs: str) -> Obj:
    return {"nonResourceURLs": paths.split(), "verbs": verbs.split()}


@pytest.mark.parametrize("r, verb, group, resource, name, want", [
    (rule("core", "pods", "get"), "get", "", "pods", "x", True),
    (rule("core", "pods", "get"), "list", "", "pods", "", False),
    (rule("core", "pods", "*"), "delete", "", "pods", "x", True),
    (rule("apps", "pods", "get"), "get", "", "pods", "x", False),
    (rule("*", "*", "get"), "get", "apps", "deployments/scale", "x", True),
    (rule("core", "pods", "get"), "get", "", "pods/log", "x", False),          # a subresource is not the resource
    (rule("core", "*/log", "get"), "get", "", "pods/log", "x", True),
    (rule("core", "*/log", "get"), "get", "", "pods", "x", False),
    (rule("core", "configmaps", "get", "a b"), "get", "", "configmaps", "b", True),
    (rule("core", "configmaps", "get", "a b"), "get", "", "configmaps", "c", False),
    (rule("core", "configmaps", "list", "a"), "list", "", "configmaps", "", False),  # names never allow a list
    (urls("/healthz", "get"), "get", "", "pods", "", False),
])
def test_rule_allows(r: Obj, verb: str, group: str, resource: str, name: str, want: bool) -> None:
    assert rule_allows(r, verb, group, resource, name) is want


@pytest.mark.parametrize("r, verb, path, want", [
    (urls("/healthz", "get"), "get", "/healthz", True),
    (urls("/healthz", "get"), "get", "/healthz/ping", False),
    (urls("/healthz/*", "get"), "get", "/healthz/ping", True),
    (urls("/api/*", "get"), "get", "/apis", False),
    (urls("*", "*"), "post", "/anything", True),
    (urls("/metrics", "get"), "post", "/metrics", False),
])
def test_url_allows(r: Obj, verb: str, path: str, want: bool) -> None:
    assert url_allows(r, verb, path) is want


def test_breakdown_one_of_each() -> None:
    pieces = breakdown(rule("core apps", "pods", "get list", "a b"))
    assert len(pieces) == 2 * 2 * 2
    assert {"apiGroups": ["apps"], "resources": ["pods"], "verbs": ["list"], "resourceNames": ["b"]} in pieces
    assert breakdown(urls("/a /b", "get")) == [urls("/a", "get"), urls("/b", "get")]


@pytest.mark.parametrize("owner, piece, want", [
    (rule("*", "*", "*"), rule("apps", "deployments", "get"), True),
    (rule("apps", "deployments", "get list"), rule("apps", "deployments", "list"), True),
    (rule("apps", "deployments", "get"), rule("apps", "deployments", "list"), False),
    (rule("apps", "deployments", "get"), rule("core", "deployments", "get"), False),
    (rule("core", "*/scale", "get"), rule("core", "deployments/scale", "get"), True),
    (rule("core", "*/scale", "get"), rule("core", "deployments", "get"), False),
    (rule("core", "pods", "get"), rule("core", "pods/log", "get"), False),
    # An owner limited to names covers only those names; an unnamed owner covers any name.
    (rule("core", "secrets", "get", "a"), rule("core", "secrets", "get", "a"), True),
    (rule("core", "secrets", "get", "a"), rule("core", "secrets", "get", "b"), False),
    (rule("core", "secrets", "get", "a"), rule("core", "secrets", "get"), False),
    (rule("core", "secrets", "get"), rule("core", "secrets", "get", "z"), True),
    # A wildcard requested literally is only covered by a wildcard.
    (rule("core", "pods secrets", "get"), rule("core", "*", "get"), False),
    (rule("core", "pods", "get list"), rule("core", "pods", "*"), False),
    (urls("/healthz/*", "get"), urls("/healthz/etcd", "get"), True),
    (urls("/healthz", "get"), urls("/healthz/etcd", "get"), False),
    (urls("*", "*"), urls("/anything", "post"), True),
    (rule("*", "*", "*"), urls("/metrics", "get"), False),       # resources never cover URLs
    (urls("*", "*"), rule("core", "pods", "get"), False),
])
def test_rule_covers(owner: Obj, piece: Obj, want: bool) -> None:
    assert rule_covers(owner, piece) is want


def test_uncovered_lists_only_what_is_missing() -> None:
    held = [rule("core", "pods", "get list watch"), rule("apps", "deployments", "*")]
    assert uncovered(held, [rule("core", "pods", "get list"), rule("apps", "deployments", "delete")]) == []
    missing = uncovered(held, [rule("core apps", "pods", "get delete")])
    assert missing == [rule("core", "pods", "delete"), rule("apps", "pods", "get"), rule("apps", "pods", "delete")]
    assert uncovered(FULL_AUTHORITY, [rule("*", "*", "*"), urls("*", "*")]) == []
    assert uncovered(held, FULL_AUTHORITY) == [rule("*", "*", "*"), urls("*", "*")]


def test_compact_and_kube_text() -> None:
    merged = compact([rule("core", "pods", "get"), rule("core", "pods", "delete"), rule("apps", "pods", "get")])
    assert merged == [rule("core", "pods", "get delete"), rule("apps", "pods", "get")]
    assert compact_string(rule("core", "pods", "get delete")) == '{APIGroups:[""], Resources:["pods"], Verbs:["get" "delete"]}'
    assert compact_string(rule("core", "secrets", "get", "a")) == \
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}'
    assert compact_string(urls("/x", "get")) == '{NonResourceURLs:["/x"], Verbs:["get"]}'
    assert describe_missing([urls("*", "*"), rule("*", "*", "*")]) == \
        '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}\n{NonResourceURLs:["*"], Verbs:["*"]}'


def role(name: str, rules: list[Obj], labels: dict[str, str] | None = None, selects: str = "") -> Obj:
    r: Obj = {"metadata": {"name": name, "labels": labels or {}}, "rules": rules}
    if selects:
        r["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {selects: "true"}}]}
    return r


def test_aggregation_in_name_order_without_duplicates() -> None:
    agg = role("agg", [rule("core", "stale", "get")], selects="to-agg")
    b = role("b", [rule("core", "pods", "get"), rule("core", "secrets", "get")], {"to-agg": "true"})
    a = role("a", [rule("core", "secrets", "get")], {"to-agg": "true"})
    other = role("c", [rule("core", "nodes", "get")], {"to-agg": "false"})
    assert aggregated_rules(agg, [agg, b, a, other]) == [rule("core", "secrets", "get"), rule("core", "pods", "get")]
    assert aggregated_rules(b, [agg, b, a]) is None
    assert aggregated_rules(agg, [agg]) == []


def test_nested_aggregation_resolves() -> None:
    view = role("view", [], {"to-edit": "true"}, selects="to-view")
    edit = role("edit", [], {"to-admin": "true"}, selects="to-edit")
    admin = role("admin", [], selects="to-admin")
    extra = role("my-crd-reader", [rule("example.com", "widgets", "get")], {"to-view": "true"})
    out = {r["metadata"]["name"]: r for r in resolve_aggregation([admin, edit, view, extra])}
    assert out["admin"]["rules"] == out["edit"]["rules"] == out["view"]["rules"] == [rule("example.com", "widgets", "get")]
