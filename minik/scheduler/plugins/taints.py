"""NoSchedule/NoExecute taints must be tolerated (Kubernetes toleration matching rules)."""

from __future__ import annotations

from typing import Any

from minik.scheduler.state import ClusterState, Obj


def tolerates(tol: dict[str, Any], taint: dict[str, Any]) -> bool:
    if tol.get("effect") and tol["effect"] != taint.get("effect"):
        return False
    op = tol.get("operator", "Equal")
    if not tol.get("key"):
        return bool(op == "Exists")
    if tol["key"] != taint.get("key"):
        return False
    return bool(op == "Exists" or tol.get("value", "") == taint.get("value", ""))


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    tols = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        if not any(tolerates(t, taint) for t in tols):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    return None
