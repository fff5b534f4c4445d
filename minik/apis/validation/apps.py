"""apps/v1 validation: Deployment, ReplicaSet, StatefulSet, DaemonSet, ControllerRevision.

Follows `k8s.io/kubernetes/pkg/apis/apps/validation`: selector required and matching the template
labels, template restartPolicy Always, strategies, immutable selectors and the StatefulSet
"updates to statefulset spec for fields other than …" rule. Neighbours: dispatched from
`minik.apis.validation`; reuses `core.validate_pod_template` and `meta.validate_label_selector`.
"""

from __future__ import annotations

import copy
from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_valid_percent
from minik.apis.selectors import LabelSelector, SelectorError
from minik.apis.validation.core import validate_pod_template, validate_pvc_spec
from minik.apis.validation.field import (IMMUTABLE, as_dict, child, dicts, forbidden, go_int_or_string,
                                         go_label_selector, immutable, index, invalid, nonnegative, not_supported,
                                         required, semantic_equal)
from minik.apis.validation.meta import validate_label_selector

Obj = dict[str, Any]

STATEFULSET_UPDATE_FORBIDDEN = ("updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                                "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' "
                                "and 'minReadySeconds' are forbidden")


def _selector_checks(spec: Obj, kind_word: str, required_selector: bool = True) -> tuple[list[Cause], LabelSelector | None]:
    causes: list[Cause] = []
    sel = spec.get("selector")
    if sel is None or not isinstance(sel, dict):
        if required_selector:
            causes.append(required("spec.selector"))
    else:
        causes += validate_label_selector(sel, "spec.selector")
        if not (sel.get("matchLabels") or sel.get("matchExpressions")):
            causes.append(invalid("spec.selector", go_label_selector(sel), f"empty selector is invalid for {kind_word}"))
    try:
        return causes, LabelSelector.from_api(sel if isinstance(sel, dict) else None)
    except SelectorError:
        causes.append(invalid("spec.selector", go_label_selector(sel), "invalid label selector"))
        return causes, None


def template_labels_match(selector: LabelSelector, tmpl: Any, path: str) -> list[Cause]:
    labels = as_dict(as_dict(as_dict(tmpl).get("metadata")).get("labels"))
    if selector.empty or selector.matches({str(k): str(v) for k, v in labels.items()}):
        return []
    return [invalid(child(path, "metadata", "labels"), labels, "`selector` does not match template `labels`")]


def _template_for_replicas(spec: Obj, selector: LabelSelector | None, kind: str) -> list[Cause]:
    """ValidatePodTemplateSpecForReplicaSet."""
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        return [required("spec.template")]
    causes: list[Cause] = []
    if selector is not None:
        causes += template_labels_match(selector, tmpl, "spec.template")
    causes += validate_pod_template(tmpl, "spec.template")
    tspec = as_dict(tmpl.get("spec"))
    rp = tspec.get("restartPolicy")
    if rp != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", rp or "", ("Always",)))
    if tspec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid("spec.template.spec.activeDeadlineSeconds", tspec["activeDeadlineSeconds"],
                              f"activeDeadlineSeconds in {kind} is not Supported"))
    return causes


def _int_or_percent(v: Any, path: str) -> list[Cause]:
    if isinstance(v, str):
        return [invalid(path, go_int_or_string(v), m) for m in is_valid_percent(v)]
    if isinstance(v, int) and not isinstance(v, bool) and v < 0:
        return [invalid(path, v, "must be greater than or equal to 0")]
    return []


def _int_or_percent_value(v: Any) -> int:
    if isinstance(v, str):
        try:
            return int(v.rstrip("%"))
        except ValueError:
            return 0
    return v if isinstance(v, int) else 0


def _not_more_than_100(v: Any, path: str) -> list[Cause]:
    if isinstance(v, str) and not is_valid_percent(v) and _int_or_percent_value(v) > 100:
        return [invalid(path, go_int_or_string(v), "must not be greater than 100%")]
    return []


def _rolling_update(ru: Obj, path: str) -> list[Cause]:
    causes = _int_or_percent(ru.get("maxUnavailable"), child(path, "maxUnavailable"))
    causes += _int_or_percent(ru.get("maxSurge"), child(path, "maxSurge"))
    if _int_or_percent_value(ru.get("maxUnavailable")) == 0 and _int_or_percent_value(ru.get("maxSurge")) == 0:
        causes.append(invalid(child(path, "maxUnavailable"), go_int_or_string(ru.get("maxUnavailable", 0)),
                              "may not be 0 when `maxSurge` is 0"))
    causes += _not_more_than_100(ru.get("maxUnavailable"), child(path, "maxUnavailable"))
    return causes


def validate_deployment(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative("spec.replicas", spec.get("replicas"))
    sel_causes, selector = _selector_checks(spec, "deployment")
    causes += sel_causes
    causes += _template_for_replicas(spec, selector, "ReplicaSet")
    strategy = as_dict(spec.get("strategy"))
    typ = strategy.get("type")
    if typ == "Recreate":
        if strategy.get("rollingUpdate") is not None:
            causes.append(forbidden("spec.strategy.rollingUpdate", "may not be specified when strategy `type` is 'Recreate'"))
    elif typ == "RollingUpdate":
        ru = strategy.get("rollingUpdate")
        if not isinstance(ru, dict):
            causes.append(required("spec.strategy.rollingUpdate", "this should be defaulted and never be nil"))
        else:
            causes += _rolling_update(ru, "spec.strategy.rollingUpdate")
    else:
        causes.append(not_supported("spec.strategy", typ or "", ("Recreate", "RollingUpdate")))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    pds = spec.get("progressDeadlineSeconds")
    if isinstance(pds, int) and not isinstance(pds, bool):
        causes += nonnegative("spec.progressDeadlineSeconds", pds)
        if pds <= (spec.get("minReadySeconds") or 0):
            causes.append(invalid("spec.progressDeadlineSeconds", pds, "must be greater than minReadySeconds"))
    if old is not None:
        causes += _immutable_selector(spec, as_dict(old.get("spec")))
    return causes


def _immutable_selector(spec: Obj, old_spec: Obj) -> list[Cause]:
    if semantic_equal(spec.get("selector"), old_spec.get("selector")):
        return []
    return [invalid("spec.selector", go_label_selector(spec.get("selector")), IMMUTABLE)]


def validate_replicaset(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    sel_causes, selector = _selector_checks(spec, "deployment")  # kube's ReplicaSet message says "deployment" too
    causes += sel_causes
    causes += _template_for_replicas(spec, selector, "ReplicaSet")
    if old is not None:
        causes += _immutable_selector(spec, as_dict(old.get("spec")))
    return causes


def validate_daemonset(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    sel = spec.get("selector")
    causes += validate_label_selector(sel, "spec.selector")
    try:
        selector = LabelSelector.from_api(sel if isinstance(sel, dict) else None)
        tmpl = as_dict(spec.get("template"))
        labels = as_dict(as_dict(tmpl.get("metadata")).get("labels"))
        if not selector.matches({str(k): str(v) for k, v in labels.items()}):
            causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    except SelectorError:
        pass
    if isinstance(sel, dict) and not (sel.get("matchLabels") or sel.get("matchExpressions")):
        causes.append(invalid("spec.selector", go_label_selector(sel), "empty selector is invalid for daemonset"))
    causes += validate_pod_template(spec.get("template"), "spec.template")
    tspec = as_dict(as_dict(spec.get("template")).get("spec"))
    rp = tspec.get("restartPolicy")
    if rp != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", rp or "", ("Always",)))
    if tspec.get("activeDeadlineSeconds") is not None:
        causes.append(invalid("spec.template.spec.activeDeadlineSeconds", tspec["activeDeadlineSeconds"],
                              "activeDeadlineSeconds must be nil for DaemonSet"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    us = as_dict(spec.get("updateStrategy"))
    typ = us.get("type")
    if typ == "RollingUpdate":
        ru = us.get("rollingUpdate")
        if isinstance(ru, dict):
            p = "spec.updateStrategy.rollingUpdate"
            causes += _int_or_percent(ru.get("maxUnavailable"), child(p, "maxUnavailable"))
            causes += _int_or_percent(ru.get("maxSurge"), child(p, "maxSurge"))
            if _int_or_percent_value(ru.get("maxUnavailable")) == 0 and _int_or_percent_value(ru.get("maxSurge")) == 0:
                causes.append(invalid(child(p, "maxUnavailable"), go_int_or_string(ru.get("maxUnavailable", 0)),
                                      "may not be 0 when `maxSurge` is 0"))
            causes += _not_more_than_100(ru.get("maxUnavailable"), child(p, "maxUnavailable"))
    elif typ != "OnDelete":
        causes.append(not_supported("spec.updateStrategy.type", typ or "", ("OnDelete", "RollingUpdate")))
    causes += nonnegative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    if old is not None:
        causes += _immutable_selector(spec, as_dict(old.get("spec")))
    return causes


def validate_statefulset(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    pmp = spec.get("podManagementPolicy")
    if not pmp:
        causes.append(required("spec.podManagementPolicy"))
    elif pmp not in ("OrderedReady", "Parallel"):
        causes.append(invalid("spec.podManagementPolicy", pmp, "must be 'OrderedReady' or 'Parallel'"))
    us = as_dict(spec.get("updateStrategy"))
    typ = us.get("type")
    if not typ:
        causes.append(required("spec.updateStrategy"))
    elif typ == "OnDelete":
        if us.get("rollingUpdate") is not None:
            causes.append(invalid("spec.updateStrategy.rollingUpdate", "", "only allowed for updateStrategy 'RollingUpdate'"))
    elif typ == "RollingUpdate":
        ru = as_dict(us.get("rollingUpdate"))
        causes += nonnegative("spec.updateStrategy.rollingUpdate.partition", ru.get("partition"))
        if "maxUnavailable" in ru:
            causes += _int_or_percent(ru["maxUnavailable"], "spec.updateStrategy.rollingUpdate.maxUnavailable")
    else:
        causes.append(invalid("spec.updateStrategy", "", "must be 'RollingUpdate' or 'OnDelete'"))
    policy = as_dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for k in ("whenDeleted", "whenScaled"):
        v = policy.get(k)
        if v is not None and v not in ("Retain", "Delete"):
            causes.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{k}", v, ("Retain", "Delete")))
    causes += nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    ordinals = spec.get("ordinals")
    if isinstance(ordinals, dict):
        causes += nonnegative("spec.ordinals.start", ordinals.get("start"))
    sel_causes, selector = _selector_checks(spec, "statefulset")
    causes += sel_causes
    tmpl = spec.get("template")
    if selector is not None:
        causes += template_labels_match(selector, tmpl, "spec.template")
    causes += validate_pod_template(_with_claim_volumes(tmpl, spec.get("volumeClaimTemplates")), "spec.template")
    tspec = as_dict(as_dict(tmpl).get("spec"))
    rp = tspec.get("restartPolicy")
    if rp != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", rp or "", ("Always",)))
    if tspec.get("activeDeadlineSeconds") is not None:
        causes.append(forbidden("spec.template.spec.activeDeadlineSeconds", "activeDeadlineSeconds in StatefulSet is not Supported"))
    for i, t in enumerate(dicts(spec.get("volumeClaimTemplates"))):
        causes += validate_pvc_spec(as_dict(t.get("spec")), child(index("spec.volumeClaimTemplates", i), "spec"))
    if old is not None:
        clone = copy.deepcopy(spec)
        ospec = as_dict(old.get("spec"))
        for k in ("replicas", "template", "updateStrategy", "minReadySeconds", "ordinals", "revisionHistoryLimit",
                  "persistentVolumeClaimRetentionPolicy"):
            clone.pop(k, None)
        ocopy = {k: v for k, v in ospec.items() if k in clone or k not in (
            "replicas", "template", "updateStrategy", "minReadySeconds", "ordinals", "revisionHistoryLimit",
            "persistentVolumeClaimRetentionPolicy")}
        if not semantic_equal(_strip_pvc_status(clone), _strip_pvc_status(ocopy)):
            causes.append(forbidden("spec", STATEFULSET_UPDATE_FORBIDDEN))
    return causes


def _with_claim_volumes(tmpl: Any, claim_templates: Any) -> Any:
    """The template as the controller will create its pods: one volume per volumeClaimTemplate
    (a mount may name a claim template; the StatefulSet controller adds that volume)."""
    names = [str(as_dict(t.get("metadata")).get("name") or "") for t in dicts(claim_templates)]
    if not isinstance(tmpl, dict) or not any(names):
        return tmpl
    out = copy.deepcopy(tmpl)
    spec = out.get("spec")
    if not isinstance(spec, dict):
        return tmpl
    vols: list[Any] = spec["volumes"] if isinstance(spec.get("volumes"), list) else []
    have = {str(v.get("name")) for v in dicts(vols)}
    spec["volumes"] = [*vols, *({"name": n, "persistentVolumeClaim": {"claimName": n}} for n in names if n and n not in have)]
    return out


def _strip_pvc_status(spec: Obj) -> Obj:
    """volumeClaimTemplates carry a defaulted `status`; it is not part of what users change."""
    out = copy.deepcopy(spec)
    for t in dicts(out.get("volumeClaimTemplates")):
        t.pop("status", None)
    return out


def validate_controller_revision(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    rev = obj.get("revision")
    if isinstance(rev, int) and not isinstance(rev, bool) and rev < 0:
        causes.append(invalid("revision", rev, "must be greater than or equal to 0"))
    if old is not None:
        causes += immutable("data", obj.get("data"), old.get("data"), rendered="")
    return causes
