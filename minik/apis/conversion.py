"""Conversion between served versions whose shapes differ (today: HorizontalPodAutoscaler).

Role: the store holds one shape per resource; a version that spells the same object differently
is converted at the API boundary, on the way in (`to_storage`, before defaults and validation) and
on the way out (`from_storage`, for every read, write answer and watch event).
HorizontalPodAutoscaler is stored in the autoscaling/v2 shape. autoscaling/v1 carries the CPU
utilization target in `spec.targetCPUUtilizationPercentage` (`status.currentCPUUtilizationPercentage`)
and everything v1 cannot say in the `autoscaling.alpha.kubernetes.io/*` annotations, in v1's
MetricSpec/MetricStatus spelling, as Kubernetes's v1 conversion does. `kubectl autoscale` posts v1.
Neighbours: `minik.api.service.ResourceService` calls both functions; `minik.apis.defaults` then
defaults the stored shape.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from typing import Any

from minik.apis.registry import ResourceType

__all__ = ["from_storage", "hpa_v1_to_v2", "hpa_v2_to_v1", "to_storage"]

Obj = dict[str, Any]

ANN_METRICS = "autoscaling.alpha.kubernetes.io/metrics"
ANN_CURRENT = "autoscaling.alpha.kubernetes.io/current-metrics"
ANN_CONDITIONS = "autoscaling.alpha.kubernetes.io/conditions"
ANN_BEHAVIOR = "autoscaling.alpha.kubernetes.io/behavior"
_ANNOTATIONS = (ANN_METRICS, ANN_CURRENT, ANN_CONDITIONS, ANN_BEHAVIOR)


def _prune(d: Obj) -> Obj:
    return {k: v for k, v in d.items() if v is not None}


def _sel(metric: Mapping[str, Any]) -> Any:
    return metric.get("selector")


# ---- one metric, v2 ↔ v1 spelling ----------------------------------------------------------

def _spec_to_v1(m: Mapping[str, Any]) -> Obj:
    t = str(m.get("type", ""))
    if t in ("Resource", "ContainerResource"):
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        tgt = src.get("target") or {}
        return {"type": t, key: _prune({"name": src.get("name"), "container": src.get("container"),
                                        "targetAverageUtilization": tgt.get("averageUtilization"),
                                        "targetAverageValue": tgt.get("averageValue")})}
    if t == "Pods":
        src = m.get("pods") or {}
        metric, tgt = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "pods": _prune({"metricName": metric.get("name"), "selector": _sel(metric),
                                           "targetAverageValue": tgt.get("averageValue")})}
    if t == "Object":
        src = m.get("object") or {}
        metric, tgt = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "object": _prune({"target": src.get("describedObject"), "metricName": metric.get("name"),
                                             "selector": _sel(metric), "targetValue": tgt.get("value"),
                                             "averageValue": tgt.get("averageValue")})}
    if t == "External":
        src = m.get("external") or {}
        metric, tgt = src.get("metric") or {}, src.get("target") or {}
        return {"type": t, "external": _prune({"metricName": metric.get("name"), "metricSelector": _sel(metric),
                                               "targetValue": tgt.get("value"),
                                               "targetAverageValue": tgt.get("averageValue")})}
    return dict(m)


def _target(util: Any, avg: Any, value: Any) -> Obj:
    if util is not None:
        return {"type": "Utilization", "averageUtilization": util}
    if avg is not None:
        return {"type": "AverageValue", "averageValue": avg}
    return _prune({"type": "Value", "value": value})


def _spec_from_v1(m: Mapping[str, Any]) -> Obj:
    t = str(m.get("type", ""))
    if t in ("Resource", "ContainerResource"):
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        return {"type": t, key: _prune({"name": src.get("name"), "container": src.get("container"),
                                        "target": _target(src.get("targetAverageUtilization"),
                                                          src.get("targetAverageValue"), None)})}
    if t == "Pods":
        src = m.get("pods") or {}
        return {"type": t, "pods": {"metric": _prune({"name": src.get("metricName"), "selector": src.get("selector")}),
                                    "target": _target(None, src.get("targetAverageValue"), None)}}
    if t == "Object":
        src = m.get("object") or {}
        return {"type": t, "object": _prune({
            "describedObject": src.get("target"),
            "metric": _prune({"name": src.get("metricName"), "selector": src.get("selector")}),
            "target": _target(None, src.get("averageValue"), src.get("targetValue"))})}
    if t == "External":
        src = m.get("external") or {}
        return {"type": t, "external": {
            "metric": _prune({"name": src.get("metricName"), "selector": src.get("metricSelector")}),
            "target": _target(None, src.get("targetAverageValue"), src.get("targetValue"))}}
    return dict(m)


def _status_to_v1(m: Mapping[str, Any]) -> Obj:
    t = str(m.get("type", ""))
    if t in ("Resource", "ContainerResource"):
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        cur = src.get("current") or {}
        return {"type": t, key: _prune({"name": src.get("name"), "container": src.get("container"),
                                        "currentAverageUtilization": cur.get("averageUtilization"),
                                        "currentAverageValue": cur.get("averageValue")})}
    if t in ("Pods", "Object", "External"):
        key = t.lower()
        src = m.get(key) or {}
        metric, cur = src.get("metric") or {}, src.get("current") or {}
        out: Obj = {"metricName": metric.get("name")}
        if t == "Pods":
            out.update(selector=_sel(metric), currentAverageValue=cur.get("averageValue"))
        elif t == "Object":
            out.update(target=src.get("describedObject"), selector=_sel(metric), currentValue=cur.get("value"),
                       averageValue=cur.get("averageValue"))
        else:
            out.update(metricSelector=_sel(metric), currentValue=cur.get("value"),
                       currentAverageValue=cur.get("averageValue"))
        return {"type": t, key: _prune(out)}
    return dict(m)


def _status_from_v1(m: Mapping[str, Any]) -> Obj:
    t = str(m.get("type", ""))
    if t in ("Resource", "ContainerResource"):
        key = "resource" if t == "Resource" else "containerResource"
        src = m.get(key) or {}
        return {"type": t, key: _prune({"name": src.get("name"), "container": src.get("container"),
                                        "current": _prune({"averageUtilization": src.get("currentAverageUtilization"),
                                                           "averageValue": src.get("currentAverageValue")})})}
    if t in ("Pods", "Object", "External"):
        key = t.lower()
        src = m.get(key) or {}
        selector = src.get("metricSelector") if t == "External" else src.get("selector")
        out: Obj = {"metric": _prune({"name": src.get("metricName"), "selector": selector})}
        if t == "Pods":
            out["current"] = _prune({"averageValue": src.get("currentAverageValue")})
        elif t == "Object":
            out["describedObject"] = src.get("target")
            out["current"] = _prune({"value": src.get("currentValue"), "averageValue": src.get("averageValue")})
        else:
            out["current"] = _prune({"value": src.get("currentValue"), "averageValue": src.get("currentAverageValue")})
        return {"type": t, key: _prune(out)}
    return dict(m)


def _is_cpu_utilization(m: Mapping[str, Any]) -> bool:
    res = m.get("resource") or {}
    return (m.get("type") == "Resource" and res.get("name") == "cpu"
            and (res.get("target") or {}).get("type") == "Utilization")


# ---- whole objects ---------------------------------------------------------------------------

def hpa_v2_to_v1(obj: Obj) -> Obj:
    """The stored (v2-shaped) HPA as autoscaling/v1 spells it. Returns a new object."""
    out = copy.deepcopy(obj)
    spec: Obj = out.get("spec") or {}
    status: Obj | None = out.get("status")
    annotations: Obj = {}
    metrics = spec.pop("metrics", None) or []
    others = []
    for m in metrics:
        if _is_cpu_utilization(m) and "targetCPUUtilizationPercentage" not in spec:
            spec["targetCPUUtilizationPercentage"] = m["resource"]["target"].get("averageUtilization")
        else:
            others.append(_spec_to_v1(m))
    if others:
        annotations[ANN_METRICS] = json.dumps(others, separators=(",", ":"))
    behavior = spec.pop("behavior", None)
    if behavior:
        annotations[ANN_BEHAVIOR] = json.dumps(behavior, separators=(",", ":"))
    if isinstance(status, dict):
        current = status.pop("currentMetrics", None) or []
        rest = []
        for m in current:
            res = m.get("resource") or {}
            util = (res.get("current") or {}).get("averageUtilization")
            if (m.get("type") == "Resource" and res.get("name") == "cpu" and util is not None
                    and "currentCPUUtilizationPercentage" not in status):
                status["currentCPUUtilizationPercentage"] = util
            else:
                rest.append(_status_to_v1(m))
        if rest:
            annotations[ANN_CURRENT] = json.dumps(rest, separators=(",", ":"))
        conditions = status.pop("conditions", None)
        if conditions:
            annotations[ANN_CONDITIONS] = json.dumps(conditions, separators=(",", ":"))
    if annotations:
        meta: Obj = out.setdefault("metadata", {})
        meta["annotations"] = {**(meta.get("annotations") or {}), **annotations}
    return out


def _json_list(text: Any) -> list[Obj]:
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return []
    return [d for d in data if isinstance(d, dict)] if isinstance(data, list) else []


def hpa_v1_to_v2(obj: Obj) -> Obj:
    """An autoscaling/v1 HPA in the stored v2 shape (the alpha annotations folded back in).
    Idempotent on an object already in the v2 shape. Returns a new object."""
    out = copy.deepcopy(obj)
    spec = out.get("spec")
    meta: Obj = out.get("metadata") or {}
    annotations: Obj = dict(meta.get("annotations") or {})
    if isinstance(spec, dict):
        metrics: list[Obj] = list(spec.get("metrics") or [])
        cpu = spec.pop("targetCPUUtilizationPercentage", None)
        if cpu is not None:
            metrics = [m for m in metrics if not _is_cpu_utilization(m)]
            metrics.insert(0, {"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}})
        metrics += [_spec_from_v1(m) for m in _json_list(annotations.get(ANN_METRICS))]
        if metrics:
            spec["metrics"] = metrics
        if ANN_BEHAVIOR in annotations and not spec.get("behavior"):
            try:
                behavior = json.loads(str(annotations[ANN_BEHAVIOR]))
            except ValueError:
                behavior = None
            if isinstance(behavior, dict):
                spec["behavior"] = behavior
    status = out.get("status")
    if isinstance(status, dict):
        current: list[Obj] = list(status.get("currentMetrics") or [])
        cpu_now = status.pop("currentCPUUtilizationPercentage", None)
        if cpu_now is not None and not any((m.get("resource") or {}).get("name") == "cpu" for m in current):
            current.insert(0, {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": cpu_now}}})
        current += [_status_from_v1(m) for m in _json_list(annotations.get(ANN_CURRENT))]
        if current:
            status["currentMetrics"] = current
        conditions = _json_list(annotations.get(ANN_CONDITIONS))
        if conditions and not status.get("conditions"):
            status["conditions"] = conditions
    if any(a in annotations for a in _ANNOTATIONS):
        for a in _ANNOTATIONS:
            annotations.pop(a, None)
        if annotations:
            meta["annotations"] = annotations
        else:
            meta.pop("annotations", None)
    return out


_IN: Mapping[tuple[str, str, str], Callable[[Obj], Obj]] = {
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): hpa_v1_to_v2,
}
_OUT: Mapping[tuple[str, str, str], Callable[[Obj], Obj]] = {
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): hpa_v2_to_v1,
    # Objects stored before this conversion existed may still carry the v1 field.
    ("autoscaling", "v2", "HorizontalPodAutoscaler"): hpa_v1_to_v2,
}


def to_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A request body of version `rt` in the stored shape (the same object when nothing differs)."""
    fn = _IN.get((rt.group, rt.version, rt.kind))
    return obj if fn is None or rt.custom else fn(obj)


def from_storage(rt: ResourceType, obj: Obj) -> Obj:
    """A stored object as version `rt` spells it (the same object when nothing differs)."""
    fn = _OUT.get((rt.group, rt.version, rt.kind))
    if fn is None or rt.custom:
        return obj
    if fn is hpa_v1_to_v2 and "targetCPUUtilizationPercentage" not in (obj.get("spec") or {}) \
            and "currentCPUUtilizationPercentage" not in (obj.get("status") or {}):
        return obj  # the common case: already v2, no copy
    return fn(obj)
