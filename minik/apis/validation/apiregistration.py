"""APIService validation as kube-aggregator does it (apiregistration.k8s.io/v1).

The name must be `<version>.<group>` (`v1.` for the core group, so the name is a path segment,
not a DNS name); version a DNS-1035 label; group a DNS-1123 subdomain; priorities in range; a
Service reference needs a namespace and a name, and a port in 1–65535; no service means a Local
APIService, which must not carry a CA bundle or skip TLS verification.
Neighbours: dispatched by `minik.apis.validation.validate`.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import is_dns1035_label, is_dns1123_subdomain
from minik.apis.validation.field import as_dict, invalid, required

Obj = dict[str, Any]


def validate_apiservice(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = as_dict(obj.get("spec"))
    group, version = str(spec.get("group") or ""), str(spec.get("version") or "")
    name = str(as_dict(obj.get("metadata")).get("name") or "")
    want = f"{version}.{group}"
    if name != want:
        causes.append(invalid("metadata.name", name, f'must be `spec.version+"."+spec.group`: "{want}"'))
    if not version:
        causes.append(required("spec.version", ""))
    else:
        causes += [invalid("spec.version", version, m) for m in is_dns1035_label(version)]
    if group:
        causes += [invalid("spec.group", group, m) for m in is_dns1123_subdomain(group)]
    elif version != "v1":
        causes.append(required("spec.group", "only v1 may have an empty group and it better be legacy kube"))
    for f, hi in (("groupPriorityMinimum", 20000), ("versionPriority", 1000)):
        v = spec.get(f)
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            causes.append(invalid(f"spec.{f}", v, "must be positive and less than 20000" if hi == 20000 else "must be positive and less than 1000"))
        elif v > hi:
            causes.append(invalid(f"spec.{f}", v, f"must be positive and less than {hi}"))
    svc = spec.get("service")
    if isinstance(svc, dict):
        if not svc.get("namespace"):
            causes.append(required("spec.service.namespace", ""))
        if not svc.get("name"):
            causes.append(required("spec.service.name", ""))
        port = svc.get("port", 443)
        if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
            causes.append(invalid("spec.service.port", port, "port is not valid"))
        if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
            causes.append(invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
    else:
        if spec.get("insecureSkipTLSVerify"):
            causes.append(invalid("spec.insecureSkipTLSVerify", True, "local APIServices may not have insecureSkipTLSVerify"))
        if spec.get("caBundle"):
            causes.append(invalid("spec.caBundle", "", "local APIServices may not have a caBundle"))
    return causes
