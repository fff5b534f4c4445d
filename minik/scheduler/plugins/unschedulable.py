"""Nodes marked `spec.unschedulable` (kubectl cordon) take no pods unless the pod tolerates it."""

from __future__ import annotations

from minik.scheduler.state import ClusterState, Obj


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    if not (node.get("spec") or {}).get("unschedulable"):
        return None
    for t in (pod.get("spec") or {}).get("tolerations") or []:
        if t.get("key") == "node.kubernetes.io/unschedulable" and t.get("operator") == "Exists":
            return None
    return "node(s) were unschedulable"
