"""ObjectMeta validation (ValidateObjectMeta / ValidateObjectMetaUpdate) and label selectors.

Neighbours: `minik.apis.validation` runs these for every kind before the kind's own checks;
the workload modules reuse `validate_labels` and `validate_label_selector`.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_dns1123_label, is_label_value, is_qualified_name, name_rule
from minik.apis.registry import ResourceType
from minik.apis.validation.field import (GoRaw, as_dict, as_list, child, dicts, forbidden, go_value, immutable, index, invalid,
                                         nonnegative, required, too_long)

TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024
_STANDARD_FINALIZERS = ("orphan", "foregroundDeletion")


def validate_labels(labels: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for k, v in as_dict(labels).items():
        causes += [invalid(path, k, msg) for msg in is_qualified_name(str(k))]
        if not isinstance(v, str):
            causes.append(invalid(path, v, "label values must be strings"))
            continue
        causes += [invalid(path, v, msg) for msg in is_label_value(v)]
    return causes


def validate_label_name(name: str, path: str) -> list[Cause]:
    return [invalid(path, name, msg) for msg in is_qualified_name(name)]


def validate_annotations(annotations: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    for k, v in as_dict(annotations).items():
        # The rule is QualifiedName except that case does not matter.
        causes += [invalid(path, k, msg) for msg in is_qualified_name(str(k).lower())]
        total += len(str(k).encode()) + len(str(v).encode())
    if total > TOTAL_ANNOTATION_SIZE_LIMIT:
        causes.append(too_long(path, TOTAL_ANNOTATION_SIZE_LIMIT))
    return causes


def validate_label_selector(sel: Any, path: str, allow_invalid_values: bool = False) -> list[Cause]:
    """unversioned ValidateLabelSelector: requirement shapes, keys, values, matchLabels."""
    if not isinstance(sel, dict):
        return []
    causes: list[Cause] = []
    for i, e in enumerate(dicts(sel.get("matchExpressions"))):
        ep = index(child(path, "matchExpressions"), i)
        op = e.get("operator")
        vals = as_list(e.get("values"))
        if op in ("In", "NotIn"):
            if not vals:
                causes.append(required(child(ep, "values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if vals:
                causes.append(forbidden(child(ep, "values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            causes.append(invalid(child(ep, "operator"), op if op is not None else "", "not a valid selector operator"))
        causes += validate_label_name(str(e.get("key", "")), child(ep, "key"))
        if not allow_invalid_values:
            for j, v in enumerate(vals):
                causes += [invalid(index(child(ep, "values"), j), v, msg) for msg in is_label_value(str(v))]
    causes += validate_labels(sel.get("matchLabels"), child(path, "matchLabels"))
    return causes


def _owner_references(refs: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    controller = ""
    for ref in dicts(refs):
        api_version = str(ref.get("apiVersion") or "")
        version = api_version.rsplit("/", 1)[-1] if api_version else ""
        if not version:
            causes.append(invalid(child(path, "apiVersion"), api_version, "version must not be empty"))
        if not ref.get("kind"):
            causes.append(invalid(child(path, "kind"), ref.get("kind") or "", "must not be empty"))
        if not ref.get("name"):
            causes.append(invalid(child(path, "name"), ref.get("name") or "", "must not be empty"))
        if not ref.get("uid"):
            causes.append(invalid(child(path, "uid"), ref.get("uid") or "", "must not be empty"))
        if ref.get("controller") is True:
            cur = f"{ref.get('kind', '')}/{ref.get('name', '')}"
            if controller:
                causes.append(invalid(path, GoRaw("[]v1.OwnerReference{...}"),
                                      f'Only one reference can have Controller set to true. Found "true" in references for {controller} and {cur}'))
            else:
                controller = cur
    return causes


def _finalizers(finalizers: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    fins = [str(f) for f in as_list(finalizers) if f is not None]
    for f in fins:
        causes += [invalid(path, f, msg) for msg in is_qualified_name(f)]
    if all(s in fins for s in _STANDARD_FINALIZERS):
        causes.append(invalid(path, fins, f"finalizer {_STANDARD_FINALIZERS[0]} and {_STANDARD_FINALIZERS[1]} cannot be both set"))
    return causes


def validate_object_meta(rt: ResourceType, obj: dict[str, Any]) -> list[Cause]:
    m = as_dict(obj.get("metadata"))
    p = "metadata"
    causes: list[Cause] = []
    check = name_rule(rt.group, rt.kind)
    gen = m.get("generateName")
    if gen:
        causes += [invalid(child(p, "generateName"), gen, msg) for msg in check(str(gen), True)]
    name = m.get("name")
    if not name:
        causes.append(required(child(p, "name"), "name or generateName is required"))
    else:
        causes += [invalid(child(p, "name"), name, msg) for msg in check(str(name), False)]
    ns = m.get("namespace")
    if rt.namespaced:
        if not ns:
            causes.append(required(child(p, "namespace")))
        else:
            causes += [invalid(child(p, "namespace"), ns, msg) for msg in is_dns1123_label(str(ns))]
    elif ns:
        causes.append(forbidden(child(p, "namespace"), "not allowed on this type"))
    causes += nonnegative(child(p, "generation"), m.get("generation"))
    causes += validate_labels(m.get("labels"), child(p, "labels"))
    causes += validate_annotations(m.get("annotations"), child(p, "annotations"))
    causes += _owner_references(m.get("ownerReferences"), child(p, "ownerReferences"))
    causes += _finalizers(m.get("finalizers"), child(p, "finalizers"))
    return causes


def validate_object_meta_update(rt: ResourceType, obj: dict[str, Any], old: dict[str, Any]) -> list[Cause]:
    m, om = as_dict(obj.get("metadata")), as_dict(old.get("metadata"))
    p = "metadata"
    causes: list[Cause] = []
    if om.get("deletionTimestamp"):
        added = [f for f in as_list(m.get("finalizers")) if f not in as_list(om.get("finalizers"))]
        if added:
            causes.append(forbidden(child(p, "finalizers"),
                                    f"no new finalizers can be added if the object is being deleted, found new finalizers {go_value(added)}"))
    causes += immutable(child(p, "name"), m.get("name") or "", om.get("name") or "")
    if rt.namespaced:
        causes += immutable(child(p, "namespace"), m.get("namespace") or "", om.get("namespace") or "")
    if m.get("uid"):
        causes += immutable(child(p, "uid"), m.get("uid"), om.get("uid") or "")
    causes += nonnegative(child(p, "generation"), m.get("generation"))
    causes += validate_labels(m.get("labels"), child(p, "labels"))
    causes += validate_annotations(m.get("annotations"), child(p, "annotations"))
    causes += _owner_references(m.get("ownerReferences"), child(p, "ownerReferences"))
    causes += _finalizers(m.get("finalizers"), child(p, "finalizers"))
    return causes
