"""Filter plugins: `filter(pod, node, state) -> reason | None` (None = the pod fits on the node).

The reason strings follow kube-scheduler's wording so `kubectl describe pod` reads the same.
"""

from __future__ import annotations

from minik.scheduler.plugins import hostports, nodeaffinity, resources, taints, unschedulable, volumebinding
from minik.scheduler.state import FilterFn

FILTERS: tuple[tuple[str, FilterFn], ...] = (
    ("NodeUnschedulable", unschedulable.filter),
    ("NodeAffinity", nodeaffinity.filter),
    ("TaintToleration", taints.filter),
    ("NodeResourcesFit", resources.filter),
    ("NodePorts", hostports.filter),
    ("VolumeBinding", volumebinding.filter),
)
