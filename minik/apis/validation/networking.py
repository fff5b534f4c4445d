"""networking.k8s.io/v1 validation: Ingress, IngressClass, NetworkPolicy.

Follows `k8s.io/kubernetes/pkg/apis/networking/validation`: pathType required (no default in
v1), Prefix/Exact paths absolute, one backend kind, service port name xor number, hosts as DNS
names (wildcards allowed). Neighbours: dispatched from `minik.apis.validation`.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import (is_dns1035_label, is_dns1123_subdomain, is_valid_port_name, is_valid_port_num,
                              is_wildcard_dns1123_subdomain)
from minik.apis.validation.core import PROTOCOLS, port_num_or_name
from minik.apis.validation.field import (GoRaw, as_dict, as_list, child, dicts, index, invalid, not_supported, required)
from minik.apis.validation.meta import validate_label_selector

Obj = dict[str, Any]

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")
_INVALID_PATH_SEQUENCES = ("//", "/./", "/../", "%2f", "%2F")
_INVALID_PATH_SUFFIXES = ("/..", "/.")


def _host(host: str, path: str) -> list[Cause]:
    try:
        ipaddress.ip_address(host)
        return [invalid(path, host, "must be a DNS name, not an IP address")]
    except ValueError:
        pass
    if host.startswith("*."):
        return [invalid(path, host, m) for m in is_wildcard_dns1123_subdomain(host)]
    return [invalid(path, host, m) for m in is_dns1123_subdomain(host)]


def _backend(b: Obj, path: str) -> list[Cause]:
    has_res, has_svc = b.get("resource") is not None, b.get("service") is not None
    if has_res and has_svc:
        return [invalid(path, "", "cannot set both resource and service backends")]
    if has_res:
        r = as_dict(b["resource"])
        causes: list[Cause] = []
        if not r.get("kind"):
            causes.append(required(child(path, "resource", "kind")))
        if not r.get("name"):
            causes.append(required(child(path, "resource", "name")))
        return causes
    if not has_svc:
        return [invalid(path, "", "resource or service backend is required")]
    svc = as_dict(b["service"])
    causes = []
    name = svc.get("name")
    if not name:
        causes.append(required(child(path, "service", "name")))
    else:
        causes += [invalid(child(path, "service", "name"), name, m) for m in is_dns1035_label(str(name))]
    port = as_dict(svc.get("port"))
    pname, pnum = port.get("name"), port.get("number")
    if pname and pnum:
        causes.append(invalid(path, "", "cannot set both port name & port number"))
    elif pname:
        causes += [invalid(child(path, "service", "port", "name"), pname, m) for m in is_valid_port_name(str(pname))]
    elif pnum:
        num = pnum if isinstance(pnum, int) else 0
        causes += [invalid(child(path, "service", "port", "number"), pnum, m) for m in is_valid_port_num(num)]
    else:
        causes.append(required(path, "port name or number is required"))
    return causes


def _http_path(p: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    pt = p.get("pathType")
    value = p.get("path")
    if pt is None:
        causes.append(required(child(path, "pathType"), "pathType must be specified"))
    elif pt in ("Exact", "Prefix"):
        v = str(value or "")
        if not v.startswith("/"):
            causes.append(invalid(child(path, "path"), v, "must be an absolute path"))
        else:
            for seq in _INVALID_PATH_SEQUENCES:
                if seq in v:
                    causes.append(invalid(child(path, "path"), v, f"must not contain '{seq}'"))
            for suf in _INVALID_PATH_SUFFIXES:
                if v.endswith(suf):
                    causes.append(invalid(child(path, "path"), v, f"cannot end with '{suf}'"))
    elif pt == "ImplementationSpecific":
        if value and not str(value).startswith("/"):
            causes.append(invalid(child(path, "path"), value, "must be an absolute path"))
    else:
        causes.append(not_supported(child(path, "pathType"), pt, PATH_TYPES))
    causes += _backend(as_dict(p.get("backend")), child(path, "backend"))
    return causes


def validate_ingress(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    rules = dicts(spec.get("rules"))
    default = spec.get("defaultBackend")
    if not rules and default is None:
        causes.append(invalid("spec", GoRaw("[]networking.IngressRule(nil)"), "either `defaultBackend` or `rules` must be specified"))
    if isinstance(default, dict):
        causes += _backend(default, "spec.defaultBackend")
    for i, r in enumerate(rules):
        rp = index("spec.rules", i)
        if r.get("host"):
            causes += _host(str(r["host"]), child(rp, "host"))
        http = r.get("http")
        if http is None:
            continue
        paths = dicts(as_dict(http).get("paths"))
        if not paths:
            causes.append(required(child(rp, "http", "paths")))
        for j, p in enumerate(paths):
            causes += _http_path(p, index(child(rp, "http", "paths"), j))
    for i, t in enumerate(dicts(spec.get("tls"))):
        for j, h in enumerate(as_list(t.get("hosts"))):
            causes += _host(str(h), index(child(index("spec.tls", i), "hosts"), j))
    icn = spec.get("ingressClassName")
    if icn:
        causes += [invalid("spec.ingressClassName", icn, m) for m in is_dns1123_subdomain(str(icn))]
    return causes


def validate_ingress_class(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    ctrl = spec.get("controller")
    if not ctrl:
        causes.append(required("spec.controller"))
    elif "/" not in str(ctrl):
        causes.append(invalid("spec.controller", ctrl, 'must be a domain-prefixed path (such as "acme.io/foo")'))
    elif len(str(ctrl)) > 250:
        causes.append(invalid("spec.controller", ctrl, "must be no more than 250 characters"))
    params = spec.get("parameters")
    if isinstance(params, dict):
        scope = params.get("scope")
        if scope not in ("Cluster", "Namespace"):
            causes.append(not_supported("spec.parameters.scope", scope or "", ("Cluster", "Namespace")))
        if scope == "Namespace" and not params.get("namespace"):
            causes.append(required("spec.parameters.namespace", "`parameters.scope` is set to 'Namespace'"))
        if not params.get("kind"):
            causes.append(required("spec.parameters.kind"))
        if not params.get("name"):
            causes.append(required("spec.parameters.name"))
    if old is not None:
        oc = as_dict(old.get("spec")).get("controller")
        if oc != ctrl:
            causes.append(invalid("spec.controller", ctrl, "field is immutable"))
    return causes


def _peers(peers: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, peer in enumerate(dicts(peers)):
        pp = index(path, i)
        n = sum(1 for k in ("podSelector", "namespaceSelector", "ipBlock") if peer.get(k) is not None)
        if n == 0:
            causes.append(required(pp, "must specify a peer"))
        if peer.get("ipBlock") is not None:
            if n > 1:
                causes.append(invalid(pp, GoRaw("networking.NetworkPolicyPeer{...}"),
                                      "may not specify both ipBlock and another peer"))
            ib = as_dict(peer["ipBlock"])
            cidr = str(ib.get("cidr") or "")
            if not cidr:
                causes.append(required(child(pp, "ipBlock", "cidr")))
            else:
                try:
                    net = ipaddress.ip_network(cidr, strict=False)
                except ValueError:
                    net = None
                    causes.append(invalid(child(pp, "ipBlock", "cidr"), cidr,
                                          "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
                causes += _except(ib.get("except"), net, child(pp, "ipBlock", "except"))
        for k in ("podSelector", "namespaceSelector"):
            if peer.get(k) is not None:
                causes += validate_label_selector(peer[k], child(pp, k))
    return causes


def _except(entries: Any, net: ipaddress.IPv4Network | ipaddress.IPv6Network | None, path: str) -> list[Cause]:
    """ipBlock.except: valid CIDRs, each a strict subset of `cidr` (ValidateIPBlock)."""
    causes: list[Cause] = []
    for i, raw in enumerate(entries if isinstance(entries, list) else []):
        text = str(raw)
        try:
            ex = ipaddress.ip_network(text, strict=False)
        except ValueError:
            causes.append(invalid(index(path, i), text, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
            continue
        if net is not None and (ex.version != net.version or ex.network_address not in net
                                or net.prefixlen >= ex.prefixlen):
            causes.append(invalid(index(path, i), text, "must be a strict subset of `cidr`"))
    return causes


def _np_ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, p in enumerate(dicts(ports)):
        pp = index(path, i)
        proto = p.get("protocol")
        if proto is not None and proto not in PROTOCOLS:
            causes.append(not_supported(child(pp, "protocol"), proto, PROTOCOLS))
        if p.get("port") is not None:
            causes += port_num_or_name(p["port"], child(pp, "port"))
            end = p.get("endPort")
            if end is not None:
                if isinstance(p["port"], str):
                    causes.append(invalid(child(pp, "endPort"), end, "may not be specified when `port` is non-numeric"))
                elif isinstance(end, int) and end < p["port"]:
                    causes.append(invalid(child(pp, "endPort"), end, "must be greater than or equal to `port`"))
        elif p.get("endPort") is not None:
            causes.append(required(child(pp, "port"), "may not be omitted when `endPort` is specified"))
    return causes


def validate_network_policy(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_label_selector(spec.get("podSelector"), "spec.podSelector")
    for i, rule in enumerate(dicts(spec.get("ingress"))):
        rp = index("spec.ingress", i)
        causes += _np_ports(rule.get("ports"), child(rp, "ports"))
        causes += _peers(rule.get("from"), child(rp, "from"))
    for i, rule in enumerate(dicts(spec.get("egress"))):
        rp = index("spec.egress", i)
        causes += _np_ports(rule.get("ports"), child(rp, "ports"))
        causes += _peers(rule.get("to"), child(rp, "to"))
    types = spec.get("policyTypes") or []
    for i, t in enumerate(types):
        if t not in ("Ingress", "Egress"):
            causes.append(not_supported(index("spec.policyTypes", i), t, ("Ingress", "Egress")))
    if len(types) > 2:
        causes.append(invalid("spec.policyTypes", types, "may not specify more than two policyTypes"))
    return causes
