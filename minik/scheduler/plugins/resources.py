"""Requests of the pod plus requests of pods already on the node must fit the node's allocatable."""

from __future__ import annotations

from fractions import Fraction

from minik.apis.quantity import Quantity
from minik.scheduler.state import ClusterState, Obj


def _q(v: object) -> Fraction:
    q = Quantity.of(v)
    return q.value if q is not None else Fraction(0)


def _requests(pod: Obj) -> dict[str, Fraction]:
    spec = pod.get("spec") or {}
    total: dict[str, Fraction] = {}
    for c in spec.get("containers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            total[k] = total.get(k, Fraction(0)) + _q(v)
    # Init containers run one at a time: the pod needs the max of them if bigger.
    for c in spec.get("initContainers") or []:
        for k, v in ((c.get("resources") or {}).get("requests") or {}).items():
            q = _q(v)
            if q > total.get(k, Fraction(0)):
                total[k] = q
    return total


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    others = [p for p in state.pods_by_node.get(node["metadata"]["name"], [])
              if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    if "pods" in alloc and len(others) + 1 > int(str(alloc["pods"])):
        return "Too many pods"
    want = _requests(pod)
    for res, q in want.items():
        if res not in alloc or q == 0:
            continue
        used = sum((_requests(p).get(res, Fraction(0)) for p in others), Fraction(0))
        if used + q > _q(alloc[res]):
            return f"Insufficient {res}"
    return None
