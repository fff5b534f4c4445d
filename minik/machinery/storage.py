"""Persistent volume facts shared by the PV binder, the local-path provisioner and the scheduler.

Pure functions over API objects (dicts), tolerant of malformed stored objects:
- which StorageClass a claim names (the default class when the claim names none is filled in by
  admission, so here "" means "no class");
- whether a PersistentVolume can satisfy a claim (class, capacity, access modes, volume mode,
  selector, and the selected node of a WaitForFirstConsumer claim), and the smallest that does
  (Kubernetes's `findMatchingVolume`);
- whether a PV's required node affinity admits a node;
- the annotations the PV controller writes (`pv.kubernetes.io/bind-completed`, …).
Neighbours: `minik.controllers.pvbinder`, `minik.controllers.localpath`,
`minik.scheduler.plugins.volumebinding`; admission (`minik.api.storage_admission`) defaults
claims to the default class and adds the protection finalizers.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from minik.apis.quantity import Quantity
from minik.apis.selectors import LabelSelector
from minik.client import Obj

PROVISIONER = "minik.io/local-path"
DEFAULT_CLASS = "local-path"
IS_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
IS_DEFAULT_CLASS_BETA = "storageclass.beta.kubernetes.io/is-default-class"

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_STORAGE_PROVISIONER_BETA = "volume.beta.kubernetes.io/storage-provisioner"
ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_BETA_CLASS = "volume.beta.kubernetes.io/storage-class"

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"

WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def meta(obj: Obj) -> dict[str, Any]:
    return _d(obj.get("metadata"))


def annotations_of(obj: Obj) -> dict[str, str]:
    return _d(meta(obj).get("annotations"))


def claim_class(pvc: Obj) -> str:
    """The class a claim asks for ("" = none); the beta annotation still wins as in Kubernetes."""
    ann = annotations_of(pvc).get(ANN_BETA_CLASS)
    if isinstance(ann, str):
        return ann
    v = _d(pvc.get("spec")).get("storageClassName")
    return v if isinstance(v, str) else ""


def volume_class(pv: Obj) -> str:
    ann = annotations_of(pv).get(ANN_BETA_CLASS)
    if isinstance(ann, str):
        return ann
    v = _d(pv.get("spec")).get("storageClassName")
    return v if isinstance(v, str) else ""


def is_default_class(sc: Obj) -> bool:
    ann = annotations_of(sc)
    return bool(ann.get(IS_DEFAULT_CLASS) == "true" or ann.get(IS_DEFAULT_CLASS_BETA) == "true")


def default_class(classes: Iterable[Obj]) -> Obj | None:
    """The default StorageClass; with several, the newest (then the name), as Kubernetes 1.28+."""
    defaults = [c for c in classes if is_default_class(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (str(meta(c).get("creationTimestamp") or ""), str(meta(c).get("name") or "")))


def claim_request(pvc: Obj) -> Quantity | None:
    return Quantity.of(_d(_d(_d(pvc.get("spec")).get("resources")).get("requests")).get("storage"))


def volume_capacity(pv: Obj) -> Quantity | None:
    return Quantity.of(_d(_d(pv.get("spec")).get("capacity")).get("storage"))


def access_modes(obj: Obj) -> set[str]:
    return {m for m in _l(_d(obj.get("spec")).get("accessModes")) if isinstance(m, str)}


def volume_mode(obj: Obj) -> str:
    v = _d(obj.get("spec")).get("volumeMode")
    return v if isinstance(v, str) and v else "Filesystem"


def claim_ref(pv: Obj) -> dict[str, Any]:
    return _d(_d(pv.get("spec")).get("claimRef"))


def phase(obj: Obj) -> str:
    v = _d(obj.get("status")).get("phase")
    return v if isinstance(v, str) else ""


def _expr_ok(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, op, values = expr.get("key", ""), expr.get("operator", ""), _l(expr.get("values"))
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
        except (KeyError, ValueError, IndexError, TypeError):
            return False
        return have > want if op == "Gt" else have < want
    return False


def node_selector_admits(selector: Mapping[str, Any], node: Obj) -> bool:
    """A NodeSelector (ORed terms of ANDed expressions and fields) admits `node`."""
    terms = [t for t in _l(selector.get("nodeSelectorTerms")) if isinstance(t, dict)]
    if not terms:
        return False
    labels = {k: v for k, v in _d(meta(node).get("labels")).items() if isinstance(v, str)}
    fields = {"metadata.name": str(meta(node).get("name", ""))}
    return any(all(_expr_ok(e, labels) for e in _l(t.get("matchExpressions")) if isinstance(e, dict))
               and all(_expr_ok(e, fields) for e in _l(t.get("matchFields")) if isinstance(e, dict))
               for t in terms)


def volume_admits_node(pv: Obj, node: Obj) -> bool:
    """The PV's spec.nodeAffinity.required admits `node` (no affinity: every node)."""
    req = _d(_d(_d(pv.get("spec")).get("nodeAffinity")).get("required"))
    if not req:
        return True
    return node_selector_admits(req, node)


def volume_node_names(pv: Obj) -> list[str]:
    """The node names a local volume's affinity pins it to (`kubernetes.io/hostname In [...]` or
    `metadata.name In [...]`); [] when not pinned by name."""
    req = _d(_d(_d(pv.get("spec")).get("nodeAffinity")).get("required"))
    out: list[str] = []
    for t in _l(req.get("nodeSelectorTerms")):
        for e in _l(_d(t).get("matchExpressions")) + _l(_d(t).get("matchFields")):
            e = _d(e)
            if e.get("key") in ("kubernetes.io/hostname", "metadata.name") and e.get("operator") == "In":
                out += [v for v in _l(e.get("values")) if isinstance(v, str)]
    return out


def volume_available_for(pv: Obj, pvc: Obj) -> bool:
    """Free to bind to this claim: not being deleted, and either unclaimed (Available) or
    pre-bound to this very claim."""
    if meta(pv).get("deletionTimestamp"):
        return False
    ref = claim_ref(pv)
    if ref:
        pm = meta(pvc)
        if ref.get("name") != pm.get("name") or ref.get("namespace") != pm.get("namespace"):
            return False
        if ref.get("uid") and ref.get("uid") != pm.get("uid"):
            return False
        return True
    return phase(pv) in ("", "Available", "Pending")


def mismatch(pv: Obj, pvc: Obj) -> str:
    """Why a volume the claim names (`spec.volumeName`) cannot serve it, in the PV controller's
    words ("" when it can): checkVolumeSatisfyClaim."""
    want, have = claim_request(pvc), volume_capacity(pv)
    if want is None or have is None or have < want:
        return "requested PV is too small"
    if volume_class(pv) != claim_class(pvc):
        return "storageClassName does not match"
    if volume_mode(pv) != volume_mode(pvc):
        return "incompatible volumeMode"
    if not access_modes(pvc) <= access_modes(pv):
        return "incompatible accessMode"
    return ""


def volume_matches(pv: Obj, pvc: Obj, selected_node: Obj | None = None) -> bool:
    """Kubernetes's checkVolumeSatisfyClaim plus the claim's selector and, for a claim whose
    node is chosen, the PV's node affinity."""
    if not volume_available_for(pv, pvc):
        return False
    if volume_class(pv) != claim_class(pvc):
        return False
    want, have = claim_request(pvc), volume_capacity(pv)
    if want is None or have is None or have < want:
        return False
    if not access_modes(pvc) <= access_modes(pv):
        return False
    if volume_mode(pv) != volume_mode(pvc):
        return False
    sel = _d(pvc.get("spec")).get("selector")
    if isinstance(sel, dict) and sel:
        try:
            if not LabelSelector.from_api(sel).matches(_d(meta(pv).get("labels"))):
                return False
        except Exception:  # a malformed stored selector matches nothing
            return False
    if selected_node is not None and not volume_admits_node(pv, selected_node):
        return False
    return True


def best_volume(pvs: Iterable[Obj], pvc: Obj, selected_node: Obj | None = None) -> Obj | None:
    """A PV pre-bound to the claim first, else the smallest matching one (then by name)."""
    fits = [pv for pv in pvs if volume_matches(pv, pvc, selected_node)]
    if not fits:
        return None
    pre = [pv for pv in fits if claim_ref(pv)]
    if pre:
        return pre[0]
    return min(fits, key=lambda pv: (volume_capacity(pv) or Quantity.parse(0), str(meta(pv).get("name", ""))))


def pod_claim_names(pod: Obj) -> list[str]:
    """The claims a pod's volumes name (persistentVolumeClaim and generic ephemeral volumes)."""
    out: list[str] = []
    pm = meta(pod)
    for v in _l(_d(pod.get("spec")).get("volumes")):
        v = _d(v)
        src = _d(v.get("persistentVolumeClaim"))
        if src.get("claimName"):
            out.append(str(src["claimName"]))
        elif v.get("ephemeral") is not None:
            out.append(f"{pm.get('name', '')}-{v.get('name', '')}")
    return out


def pod_uses_claims(pod: Obj) -> bool:
    return bool(pod_claim_names(pod))
