"""apiextensions.k8s.io/v1 CustomResourceDefinition validation (the basics).

Follows `k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/validation` for names, group,
scope, versions (exactly one storage version, unique DNS-1035 names, a schema per version) and
the `<plural>.<group>` name rule. Structural-schema checks live in `minik.apis.crdschema`.
Neighbours: dispatched from `minik.apis.validation`.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_dns1035_label, is_dns1123_subdomain
from minik.apis.validation.field import GoRaw, as_dict, as_list, child, dicts, index, invalid, not_supported, required

Obj = dict[str, Any]
VERSIONS_RENDERED = GoRaw("[]apiextensions.CustomResourceDefinitionVersion{...}")


def _names(names: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for k in ("plural", "singular"):
        v = names.get(k)
        if v:
            msgs = is_dns1035_label(str(v))
            if msgs:
                causes.append(invalid(child(path, k), v, ",".join(msgs)))
    for k in ("kind", "listKind"):
        v = names.get(k)
        if v:
            msgs = is_dns1035_label(str(v).lower())
            if msgs:
                causes.append(invalid(child(path, k), v, "may have mixed case, but should otherwise match: " + ",".join(msgs)))
    for i, s in enumerate(as_list(names.get("shortNames"))):
        msgs = is_dns1035_label(str(s))
        if msgs:
            causes.append(invalid(index(child(path, "shortNames"), i), s, ",".join(msgs)))
    if names.get("kind") and names.get("kind") == names.get("listKind"):
        causes.append(invalid(child(path, "listKind"), names.get("listKind"), "kind and listKind may not be the same"))
    for i, c in enumerate(as_list(names.get("categories"))):
        msgs = is_dns1035_label(str(c))
        if msgs:
            causes.append(invalid(index(child(path, "categories"), i), c, ",".join(msgs)))
    return causes


def validate_crd(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    names = as_dict(spec.get("names"))
    group = str(spec.get("group") or "")
    causes: list[Cause] = []
    name = str(as_dict(obj.get("metadata")).get("name") or "")
    plural = str(names.get("plural") or "")
    if name and name != f"{plural}.{group}":
        causes.append(invalid("metadata.name", name, 'must be spec.names.plural+"."+spec.group'))
    if not group:
        causes.append(required("spec.group"))
    else:
        msgs = is_dns1123_subdomain(group)
        if msgs:
            causes.append(invalid("spec.group", group, ",".join(msgs)))
        elif len(group.split(".")) < 2:
            causes.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    scope = spec.get("scope")
    if not scope:
        causes.append(required("spec.scope"))
    elif scope not in ("Cluster", "Namespaced"):
        causes.append(not_supported("spec.scope", scope, ("Cluster", "Namespaced")))
    versions = dicts(spec.get("versions"))
    if not versions:
        causes.append(invalid("spec.versions", GoRaw("[]apiextensions.CustomResourceDefinitionVersion(nil)"),
                              "must have exactly one version marked as storage version"))
    seen: set[str] = set()
    unique = True
    storage = 0
    for i, v in enumerate(versions):
        vp = index("spec.versions", i)
        vname = str(v.get("name") or "")
        if v.get("storage") is True:
            storage += 1
        if vname in seen:
            unique = False
        seen.add(vname)
        msgs = is_dns1035_label(vname)
        if msgs:
            causes.append(invalid(child(vp, "name"), vname, ",".join(msgs)))
        schema = as_dict(v.get("schema")).get("openAPIV3Schema")
        if not isinstance(schema, dict):
            causes.append(required(child(vp, "schema", "openAPIV3Schema"), "schemas are required"))
    if versions:
        if not unique:
            causes.append(invalid("spec.versions", VERSIONS_RENDERED, "must contain unique version names"))
        if storage != 1:
            causes.append(invalid("spec.versions", VERSIONS_RENDERED, "must have exactly one version marked as storage version"))
        if not any(v.get("served") for v in versions) and old is None:
            causes.append(invalid("spec.versions", VERSIONS_RENDERED, "must have at least one served version"))
    for k in ("plural", "singular", "kind", "listKind"):
        if not names.get(k):
            causes.append(required(child("spec.names", k)))
    causes += _names(names, "spec.names")
    conv = as_dict(spec.get("conversion"))
    strategy = conv.get("strategy")
    if strategy not in (None, "None", "Webhook"):
        causes.append(not_supported("spec.conversion.strategy", strategy, ("None", "Webhook")))
    if strategy == "Webhook" and not conv.get("webhook"):
        causes.append(required("spec.conversion.webhook", "required when strategy is set to Webhook"))
    if old is not None:
        ospec = as_dict(old.get("spec"))
        if ospec.get("group") != spec.get("group"):
            causes.append(invalid("spec.group", group, "field is immutable"))
        if as_dict(ospec.get("names")).get("plural") != plural:
            causes.append(invalid("spec.names.plural", plural, "field is immutable"))
        stored = as_dict(obj.get("status")).get("storedVersions") or []
        served_names = {str(v.get("name")) for v in versions}
        for sv in stored:
            if sv not in served_names:
                causes.append(invalid("status.storedVersions", GoRaw("[]string{...}"),
                                      "must appear in spec.versions"))
                break
    if spec.get("preserveUnknownFields") is True:
        causes.append(invalid("spec.preserveUnknownFields", True, "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"))
    return causes

