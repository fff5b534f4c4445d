"""spec.nodeSelector and requiredDuringSchedulingIgnoredDuringExecution node affinity."""

from __future__ import annotations

from typing import Any

from minik.scheduler.state import ClusterState, Obj


def _expr_ok(expr: dict[str, Any], labels: dict[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), expr.get("values") or []
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in ("Gt", "Lt"):
        try:
            have, want = int(labels[key]), int(values[0])
        except (KeyError, ValueError, IndexError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def _field_ok(expr: dict[str, Any], node: Obj) -> bool:
    if expr.get("key") != "metadata.name":
        return False
    return _expr_ok(expr, {"metadata.name": node["metadata"]["name"]})


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    spec = pod.get("spec") or {}
    labels = node["metadata"].get("labels") or {}
    for k, v in (spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return "node(s) didn't match Pod's node affinity/selector"
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = req.get("nodeSelectorTerms") or []
    if terms and not any(all(_expr_ok(e, labels) for e in t.get("matchExpressions") or [])
                         and all(_field_ok(e, node) for e in t.get("matchFields") or []) for t in terms):
        return "node(s) didn't match Pod's node affinity/selector"
    return None
