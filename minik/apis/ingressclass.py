"""The DefaultIngressClass admission step: an Ingress created without a class gets the default
IngressClass's name in `spec.ingressClassName`, as kube-apiserver's admission plugin does.

Applies only on create, only when neither `spec.ingressClassName` nor the deprecated
`kubernetes.io/ingress.class` annotation names a class, and only when an IngressClass carries
`ingressclass.kubernetes.io/is-default-class: "true"`; with several defaults the newest wins
(creationTimestamp, then name). Pure; called from `minik.api.kinds` with the stored classes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def default_class_name(classes: Iterable[Obj]) -> str | None:
    defaults = [c for c in classes
                if ((c.get("metadata") or {}).get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if not defaults:
        return None
    newest = max(defaults, key=lambda c: (str(c["metadata"].get("creationTimestamp") or ""), str(c["metadata"].get("name") or "")))
    return str(newest["metadata"].get("name") or "") or None


def set_default_class(ingress: Obj, classes: Iterable[Obj]) -> None:
    spec = ingress.get("spec")
    if not isinstance(spec, dict) or spec.get("ingressClassName"):
        return
    if ((ingress.get("metadata") or {}).get("annotations") or {}).get(LEGACY_CLASS_ANNOTATION):
        return
    name = default_class_name(classes)
    if name:
        spec["ingressClassName"] = name
