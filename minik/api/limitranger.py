"""LimitRanger admission: defaults and bounds from the LimitRanges of a namespace.

Mutating: a container without a limit (request) for a resource that a `Container` item lists in
`default` (`defaultRequest`) gets it, and the pod is annotated `kubernetes.io/limit-ranger` with
what was set, as Kubernetes does. Validating: `min` / `max` / `maxLimitRequestRatio` per
Container, per Pod (sums over containers) and per PersistentVolumeClaim (storage); a violation is
403 Forbidden with kube's wording ("minimum cpu usage per Container is 100m, but request is 50m").
`default_containers` and `violations` are pure; `LimitRanger` reads LimitRanges from the store's
cache.
Neighbours: `minik.api.admission` calls it; `minik.apis.defaults.limitrange_defaults` fills
defaultRequest from default/max/min when a LimitRange is stored.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable

from minik.api import status as st
from minik.api.meta import Obj
from minik.apis.quantity import Quantity
from minik.apis.registry import ResourceType
from minik.apis.resourcequota import pod_resources
from minik.store.store import Store

ANNOTATION = "kubernetes.io/limit-ranger"


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def _items(ranges: Iterable[Obj], kind: str) -> list[dict[str, Any]]:
    return [_d(i) for r in ranges for i in _l(_d(r.get("spec")).get("limits")) if _d(i).get("type") == kind]


def default_containers(pod: Obj, ranges: list[Obj]) -> list[str]:
    """Fill container requests/limits from `Container` defaults; returns the annotation parts."""
    items = _items(ranges, "Container")
    if not items:
        return []
    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return []
    notes: list[str] = []
    for key in ("containers", "initContainers"):
        for c in _l(spec.get(key)):
            if not isinstance(c, dict):
                continue
            res = c.get("resources")
            if not isinstance(res, dict):
                res = c["resources"] = {}
            set_req: list[str] = []
            set_lim: list[str] = []
            for item in items:
                for kind, source, changed in (("limits", "default", set_lim), ("requests", "defaultRequest", set_req)):
                    for r, v in _d(item.get(source)).items():
                        have = res.get(kind)
                        if not isinstance(have, dict):
                            have = res[kind] = {}
                        if r not in have:
                            have[r] = v
                            changed.append(r)
            where = f"{'init container' if key == 'initContainers' else 'container'} {c.get('name', '')}"
            if set_req:
                notes.append(f"{', '.join(sorted(set_req))} request for {where}")
            if set_lim:
                notes.append(f"{', '.join(sorted(set_lim))} limit for {where}")
    return notes


def _ratio(lim: Quantity, req: Quantity) -> Fraction:
    return lim.value / req.value if req.value else Fraction(0)


def _check(kind: str, item: dict[str, Any], req: dict[str, Quantity], lim: dict[str, Quantity]) -> list[str]:
    out: list[str] = []
    for r, v in sorted(_d(item.get("min")).items()):
        q = Quantity.of(v)
        if q is None:
            continue
        if r in req and req[r] < q:
            out.append(f"minimum {r} usage per {kind} is {q}, but request is {req[r]}")
        elif r not in req and kind != "PersistentVolumeClaim":
            out.append(f"minimum {r} usage per {kind} is {q}.  No request is specified")
        if r in lim and lim[r] < q:
            out.append(f"minimum {r} usage per {kind} is {q}, but limit is {lim[r]}")
    for r, v in sorted(_d(item.get("max")).items()):
        q = Quantity.of(v)
        if q is None:
            continue
        if kind == "PersistentVolumeClaim":
            if r in req and q < req[r]:
                out.append(f"maximum {r} usage per {kind} is {q}, but request is {req[r]}")
            continue
        if r not in lim:
            out.append(f"maximum {r} usage per {kind} is {q}.  No limit is specified")
        elif q < lim[r]:
            out.append(f"maximum {r} usage per {kind} is {q}, but limit is {lim[r]}")
    for r, v in sorted(_d(item.get("maxLimitRequestRatio")).items()):
        q = Quantity.of(v)
        if q is None:
            continue
        if r not in lim:
            out.append(f"{r} max limit to request ratio per {kind} is {q}, but no limit is specified")
        elif r not in req or req[r].is_zero():
            out.append(f"{r} max limit to request ratio per {kind} is {q}, but no request is specified or request is 0")
        elif _ratio(lim[r], req[r]) > q.value:
            out.append(f"{r} max limit to request ratio per {kind} is {q}, but provided ratio is {float(_ratio(lim[r], req[r])):f}")
    return out


def _quantities(rl: Any) -> dict[str, Quantity]:
    out: dict[str, Quantity] = {}
    for k, v in _d(rl).items():
        q = Quantity.of(v)
        if q is not None:
            out[k] = q
    return out


def violations(kind: str, obj: Obj, ranges: list[Obj]) -> list[str]:
    """Every LimitRange bound `obj` (a Pod or a PersistentVolumeClaim) breaks."""
    out: list[str] = []
    if kind == "Pod":
        spec = _d(obj.get("spec"))
        for item in _items(ranges, "Container"):
            for c in _l(spec.get("initContainers")) + _l(spec.get("containers")):
                res = _d(_d(c).get("resources"))
                out += _check("Container", item, _quantities(res.get("requests")), _quantities(res.get("limits")))
        for item in _items(ranges, "Pod"):
            out += _check("Pod", item, pod_resources(obj, "requests"), pod_resources(obj, "limits"))
    elif kind == "PersistentVolumeClaim":
        res = _d(_d(obj.get("spec")).get("resources"))
        for item in _items(ranges, "PersistentVolumeClaim"):
            out += _check("PersistentVolumeClaim", item, _quantities(res.get("requests")), _quantities(res.get("limits")))
    return out


class LimitRanger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _ranges(self, obj: Obj) -> list[Obj]:
        ns = str(_d(obj.get("metadata")).get("namespace") or "")
        return list(self.store.list("limitranges", ns).items) if ns else []

    def default_pod(self, pod: Obj) -> None:
        notes = default_containers(pod, self._ranges(pod))
        if notes:
            anns = pod.setdefault("metadata", {}).setdefault("annotations", {})
            anns[ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)

    def validate(self, rt: ResourceType, obj: Obj) -> None:
        errs = violations(rt.kind, obj, self._ranges(obj))
        if not errs:
            return
        name = str(_d(obj.get("metadata")).get("name", ""))
        msg = errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]"
        raise st.forbidden(f'{rt.plural} "{name}" is forbidden: {msg}', rt, name)
