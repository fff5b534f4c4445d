"""Validation for the smaller groups: autoscaling (HPA v1/v2), policy (PodDisruptionBudget),
storage.k8s.io (StorageClass), discovery.k8s.io (EndpointSlice), coordination.k8s.io (Lease).

Follows the corresponding `k8s.io/kubernetes/pkg/apis/*/validation` packages for the fields
users set. Neighbours: dispatched from `minik.apis.validation`.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_valid_percent
from minik.apis.validation.field import (GoRaw, as_dict, child, dicts, go_int_or_string, immutable, index, invalid,
                                         nonnegative, not_supported, required)
from minik.apis.validation.meta import validate_label_selector

Obj = dict[str, Any]


def validate_hpa(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    ref = as_dict(spec.get("scaleTargetRef"))
    if not ref.get("kind"):
        causes.append(required("spec.scaleTargetRef.kind"))
    if not ref.get("name"):
        causes.append(required("spec.scaleTargetRef.name"))
    mn, mx = spec.get("minReplicas"), spec.get("maxReplicas")
    if isinstance(mn, int) and mn < 1:
        causes.append(invalid("spec.minReplicas", mn, "must be greater than or equal to 1"))
    if not isinstance(mx, int) or mx < 1:
        causes.append(invalid("spec.maxReplicas", mx if mx is not None else 0, "must be greater than or equal to 1"))
    elif isinstance(mn, int) and mx < mn:
        causes.append(invalid("spec.maxReplicas", mx, "must be greater than or equal to `minReplicas`"))
    tcpu = spec.get("targetCPUUtilizationPercentage")
    if isinstance(tcpu, int) and tcpu < 1:
        causes.append(invalid("spec.targetCPUUtilizationPercentage", tcpu, "must be greater than or equal to 1"))
    for i, m in enumerate(dicts(spec.get("metrics"))):
        mp = index("spec.metrics", i)
        t = m.get("type")
        if t not in ("ContainerResource", "External", "Object", "Pods", "Resource"):
            causes.append(not_supported(child(mp, "type"), t or "",
                                        ("ContainerResource", "External", "Object", "Pods", "Resource")))
            continue
        src_key = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
                   "Pods": "pods", "Resource": "resource"}[t]
        src = m.get(src_key)
        if not isinstance(src, dict):
            causes.append(required(child(mp, src_key), "must populate information for the given metric source"))
            continue
        target = as_dict(src.get("target"))
        tt = target.get("type")
        if tt not in ("AverageValue", "Utilization", "Value"):
            causes.append(not_supported(child(mp, src_key, "target", "type"), tt or "", ("AverageValue", "Utilization", "Value")))
        au = target.get("averageUtilization")
        if isinstance(au, int) and au < 1:
            causes.append(invalid(child(mp, src_key, "target", "averageUtilization"), au, "must be greater than 0"))
    return causes


def validate_pdb(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        causes.append(invalid("spec", GoRaw("policy.PodDisruptionBudgetSpec{...}"), "minAvailable and maxUnavailable cannot be both set"))
    for k in ("minAvailable", "maxUnavailable"):
        v = spec.get(k)
        if isinstance(v, str):
            msgs = is_valid_percent(v)
            causes += [invalid(f"spec.{k}", go_int_or_string(v), m) for m in msgs]
            if not msgs and int(v[:-1]) > 100:
                causes.append(invalid(f"spec.{k}", go_int_or_string(v), "must not be greater than 100%"))
        elif isinstance(v, int):
            causes += nonnegative(f"spec.{k}", v)
    causes += validate_label_selector(spec.get("selector"), "spec.selector")
    uhp = spec.get("unhealthyPodEvictionPolicy")
    if uhp is not None and uhp not in ("AlwaysAllow", "IfHealthyBudget"):
        causes.append(not_supported("spec.unhealthyPodEvictionPolicy", uhp, ("AlwaysAllow", "IfHealthyBudget")))
    return causes


def validate_storage_class(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    prov = obj.get("provisioner")
    if not prov:
        causes.append(required("provisioner"))
    rp = obj.get("reclaimPolicy")
    if rp is not None and rp not in ("Delete", "Retain"):
        causes.append(not_supported("reclaimPolicy", rp, ("Delete", "Retain")))
    vbm = obj.get("volumeBindingMode")
    if vbm is not None and vbm not in ("Immediate", "WaitForFirstConsumer"):
        causes.append(not_supported("volumeBindingMode", vbm, ("Immediate", "WaitForFirstConsumer")))
    if old is not None:
        causes += immutable("provisioner", obj.get("provisioner"), old.get("provisioner"))
        causes += immutable("parameters", obj.get("parameters"), old.get("parameters"), rendered=GoRaw("map[string]string{...}"))
        causes += immutable("reclaimPolicy", obj.get("reclaimPolicy"), old.get("reclaimPolicy"))
        causes += immutable("volumeBindingMode", obj.get("volumeBindingMode"), old.get("volumeBindingMode"))
    return causes


def validate_endpoint_slice(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    at = obj.get("addressType")
    if not at:
        causes.append(required("addressType"))
    elif at not in ("FQDN", "IPv4", "IPv6"):
        causes.append(not_supported("addressType", at, ("FQDN", "IPv4", "IPv6")))
    for i, ep in enumerate(dicts(obj.get("endpoints"))):
        if not ep.get("addresses"):
            causes.append(required(child(index("endpoints", i), "addresses"), "must contain at least 1 address"))
    if old is not None:
        causes += immutable("addressType", obj.get("addressType"), old.get("addressType"))
    return causes


def validate_lease(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    lds = spec.get("leaseDurationSeconds")
    if isinstance(lds, int) and lds <= 0:
        causes.append(invalid("spec.leaseDurationSeconds", lds, "must be greater than 0"))
    causes += nonnegative("spec.leaseTransitions", spec.get("leaseTransitions"))
    return causes
