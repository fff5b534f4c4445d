"""API discovery documents: aggregated (apidiscovery.k8s.io/v2) and the legacy per-group-version ones.

Neighbours: rendered from `minik.apis.registry.Registry` for `minik.api.app`'s /api and /apis routes.
"""

from __future__ import annotations

from typing import Any

from minik.apis.registry import Registry, ResourceType

AGGREGATED_CT = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGGREGATED_CT_BETA = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"

_SUB_KIND = {
    "status": None, "scale": ("autoscaling", "v1", "Scale"), "binding": ("", "v1", "Binding"),
    "eviction": ("policy", "v1", "Eviction"), "log": ("", "v1", "Pod"), "exec": ("", "v1", "PodExecOptions"),
    "attach": ("", "v1", "PodAttachOptions"), "portforward": ("", "v1", "PodPortForwardOptions"),
    "proxy": ("", "v1", "PodProxyOptions"), "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "ephemeralcontainers": ("", "v1", "Pod"), "finalize": ("", "v1", "Namespace"),
}
_SUB_VERBS = {
    "status": ["get", "patch", "update"], "scale": ["get", "patch", "update"], "binding": ["create"],
    "eviction": ["create"], "log": ["get"], "exec": ["create", "get"], "attach": ["create", "get"],
    "portforward": ["create", "get"], "proxy": ["create", "delete", "get", "patch", "update"],
    "token": ["create"], "ephemeralcontainers": ["get", "patch", "update"], "finalize": ["update"],
}


def wants_aggregated(accept: str | None) -> str:
    """The aggregated content type to answer with, or "" for the legacy documents."""
    if not accept:
        return ""
    for part in accept.split(","):
        if "as=APIGroupDiscoveryList" in part and "g=apidiscovery.k8s.io" in part:
            if "v=v2beta1" in part:
                return AGGREGATED_CT_BETA
            if "v=v2" in part:
                return AGGREGATED_CT
    return ""


def _sub_kind(rt: ResourceType, sub: str) -> tuple[str, str, str]:
    if sub == "proxy" and rt.kind != "Pod":
        return ("", "v1", f"{rt.kind}ProxyOptions")
    k = _SUB_KIND.get(sub)
    return k if k else (rt.group, rt.version, rt.kind)


def _resource_v2(rt: ResourceType, siblings: list[ResourceType]) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resource": rt.plural, "singularResource": rt.singular,
        "scope": "Namespaced" if rt.namespaced else "Cluster",
        "responseKind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
        "verbs": sorted(rt.verbs),
    }
    if rt.short_names:
        r["shortNames"] = list(rt.short_names)
    if rt.categories:
        r["categories"] = list(rt.categories)
    subs = []
    for s in rt.subresources:
        g, v, k = _sub_kind(rt, s)
        subs.append({"subresource": s, "responseKind": {"group": g, "version": v, "kind": k}, "verbs": _SUB_VERBS.get(s, ["get"])})
    if subs:
        r["subresources"] = subs
    return r


def aggregated(registry: Registry, core: bool, content_type: str) -> dict[str, Any]:
    items = []
    for group, versions in registry.group_versions().items():
        if (group == "") != core:
            continue
        vs = []
        for v in versions:
            rts = registry.in_group_version(group, v)
            vs.append({"version": v, "freshness": "Current", "resources": [_resource_v2(rt, rts) for rt in rts]})
        item: dict[str, Any] = {"metadata": {"name": group} if group else {}, "versions": vs}
        if not group:
            item["metadata"] = {"creationTimestamp": None}
        items.append(item)
    api_version = "apidiscovery.k8s.io/v2beta1" if "v2beta1" in content_type else "apidiscovery.k8s.io/v2"
    return {"kind": "APIGroupDiscoveryList", "apiVersion": api_version, "metadata": {}, "items": items}


def api_versions(server_address: str) -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]}


def _group(registry: Registry, group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    pref = registry.preferred_version(group)
    return {"name": group, "versions": gvs, "preferredVersion": {"groupVersion": f"{group}/{pref}", "version": pref}}


def api_group_list(registry: Registry) -> dict[str, Any]:
    groups = [_group(registry, g, vs) for g, vs in registry.group_versions().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_group(registry: Registry, group: str) -> dict[str, Any] | None:
    vs = registry.group_versions().get(group)
    if not vs or not group:
        return None
    doc = _group(registry, group, vs)
    doc.update({"kind": "APIGroup", "apiVersion": "v1"})
    return doc


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    rts = registry.in_group_version(group, version)
    if not rts:
        return None
    gv = f"{group}/{version}" if group else version
    resources: list[dict[str, Any]] = []
    for rt in rts:
        r: dict[str, Any] = {"name": rt.plural, "singularName": rt.singular, "namespaced": rt.namespaced,
                             "kind": rt.kind, "verbs": sorted(rt.verbs)}
        if rt.short_names:
            r["shortNames"] = list(rt.short_names)
        if rt.categories:
            r["categories"] = list(rt.categories)
        resources.append(r)
        for s in rt.subresources:
            g, v, k = _sub_kind(rt, s)
            sr: dict[str, Any] = {"name": f"{rt.plural}/{s}", "singularName": "", "namespaced": rt.namespaced,
                                  "kind": k, "verbs": _SUB_VERBS.get(s, ["get"])}
            if (g, v) != (rt.group, rt.version):
                sr["group"], sr["version"] = g, v
            resources.append(sr)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}
