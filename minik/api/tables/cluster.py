"""Table printers for networking, discovery, rbac, storage, policy, coordination, autoscaling,
scheduling and apiextensions kinds (kube-apiserver's columns and cell rules).

Neighbours: registered by `minik.api.tables`; cell helpers come from `.format`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minik.api.tables.format import NONE, bool_str, format_selector, get, more, rfc3339, since
from minik.api.tables.printer import AGE, CREATED_AT, NAME, Column, Obj, Printer, col, wide


def _name_age(obj: Obj, now: datetime) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("name", "")), since(meta.get("creationTimestamp"), now)


# ---- networking.k8s.io --------------------------------------------------------------------


def ingress_cells(ing: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(ing, now)
    spec = ing.get("spec") or {}
    rules = spec.get("rules") or []
    hosts: list[str] = []
    for r in rules:
        if len(hosts) == 3:
            break
        if r.get("host"):
            hosts.append(r["host"])
    host_text = "*" if not hosts else (",".join(hosts) + (f" + {len(rules) - 3} more..." if len(rules) > 3 else ""))
    addrs = []
    for lb in get(ing, "status", "loadBalancer", "ingress") or []:
        if lb.get("ip"):
            addrs.append(lb["ip"])
        elif lb.get("hostname"):
            addrs.append(lb["hostname"])
    ports = "80, 443" if spec.get("tls") else "80"
    return [name, spec.get("ingressClassName") or NONE, host_text, ",".join(addrs), ports, age]


INGRESS = Printer((
    NAME,
    col("Class", "The ingress class of the ingress."),
    col("Hosts", "Hosts the ingress routes."),
    col("Address", "Addresses the ingress is reachable on."),
    col("Ports", "Ports the ingress serves."),
    AGE,
), ingress_cells)


def ingressclass_cells(ic: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(ic, now)
    spec = ic.get("spec") or {}
    params = spec.get("parameters")
    text = NONE
    if isinstance(params, dict):
        kind = params.get("kind", "")
        group = params.get("apiGroup") or ""
        text = f"{kind}.{group}/{params.get('name', '')}" if group else f"{kind}/{params.get('name', '')}"
    return [name, spec.get("controller", ""), text, age]


INGRESSCLASS = Printer((
    NAME,
    col("Controller", "The controller implementing the class."),
    col("Parameters", "Extra configuration for the controller."),
    AGE,
), ingressclass_cells)


def networkpolicy_cells(np: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(np, now)
    return [name, format_selector(get(np, "spec", "podSelector")), age]


NETWORKPOLICY = Printer((NAME, col("Pod-Selector", "The pods the policy applies to."), AGE), networkpolicy_cells)


def endpointslice_cells(es: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(es, now)
    ports = [str(p["port"]) if p.get("port") is not None else "<unset>" for p in es.get("ports") or []]
    addrs = [a for e in es.get("endpoints") or [] for a in e.get("addresses") or []]
    return [name, es.get("addressType", ""), more(ports, 3) if ports else "<unset>",
            more(addrs, 3) if addrs else "<unset>", age]


ENDPOINTSLICE = Printer((
    NAME,
    col("AddressType", "IPv4, IPv6 or FQDN."),
    col("Ports", "Ports of the slice."),
    col("Endpoints", "Addresses of the slice (first three)."),
    AGE,
), endpointslice_cells)

# ---- rbac.authorization.k8s.io ------------------------------------------------------------


def created_at_cells(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), rfc3339(meta.get("creationTimestamp"))]


ROLE = Printer((NAME, CREATED_AT), created_at_cells)


def binding_cells(rb: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(rb, now)
    ref = rb.get("roleRef") or {}
    users, groups, sas = [], [], []
    for s in rb.get("subjects") or []:
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
    return [name, f"{ref.get('kind', '')}/{ref.get('name', '')}", age, ", ".join(users), ", ".join(groups),
            ", ".join(sas)]


BINDING = Printer((
    NAME,
    col("Role", "The role bound, as Kind/name."),
    AGE,
    wide("Users", "Users in the binding."),
    wide("Groups", "Groups in the binding."),
    wide("ServiceAccounts", "Service accounts in the binding, as namespace/name."),
), binding_cells)

# ---- storage.k8s.io, coordination.k8s.io --------------------------------------------------


def storageclass_cells(sc: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(sc, now)
    ann = get(sc, "metadata", "annotations") or {}
    if ann.get("storageclass.kubernetes.io/is-default-class") == "true" or \
            ann.get("storageclass.beta.kubernetes.io/is-default-class") == "true":
        name += " (default)"
    return [name, sc.get("provisioner", ""), sc.get("reclaimPolicy") or "Delete",
            sc.get("volumeBindingMode") or "Immediate", bool(sc.get("allowVolumeExpansion")), age]


STORAGECLASS = Printer((
    NAME,
    col("Provisioner", "The volume provisioner of the class."),
    col("ReclaimPolicy", "What happens to released volumes."),
    col("VolumeBindingMode", "When volumes are bound and provisioned."),
    col("AllowVolumeExpansion", "Whether volumes can be expanded.", "boolean"),
    AGE,
), storageclass_cells)


def lease_cells(lease: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(lease, now)
    return [name, get(lease, "spec", "holderIdentity") or "", age]


LEASE = Printer((NAME, col("Holder", "The current holder of the lease."), AGE), lease_cells)

# ---- autoscaling --------------------------------------------------------------------------


def _hpa_targets(hpa: Obj) -> str:
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    if "targetCPUUtilizationPercentage" in spec or ("metrics" not in spec and spec.get("scaleTargetRef") and
                                                     "currentCPUUtilizationPercentage" in status):
        cur = status.get("currentCPUUtilizationPercentage")
        target = spec.get("targetCPUUtilizationPercentage")
        return f"cpu: {'<unknown>' if cur is None else f'{cur}%'}/{'<auto>' if target is None else f'{target}%'}"
    metrics = spec.get("metrics") or []
    if not metrics:
        return NONE
    statuses = status.get("currentMetrics") or []
    out: list[str] = []
    for i, m in enumerate(metrics):
        st = statuses[i] if i < len(statuses) else {}
        typ = m.get("type")
        if typ in ("Resource", "ContainerResource"):
            key = "resource" if typ == "Resource" else "containerResource"
            res = m.get(key) or {}
            target = res.get("target") or {}
            cur_m = get(st, key, "current") or {}
            if target.get("averageValue") is not None:
                cur = cur_m.get("averageValue", "<unknown>")
                out.append(f"{res.get('name', '')}: {cur}/{target['averageValue']}")
            else:
                cur = cur_m.get("averageUtilization")
                tgt = target.get("averageUtilization")
                out.append(f"{res.get('name', '')}: {'<unknown>' if cur is None else f'{cur}%'}/"
                           f"{'<auto>' if tgt is None else f'{tgt}%'}")
        elif typ in ("Pods", "Object", "External"):
            key = typ.lower()
            target = get(m, key, "target") or {}
            cur_m = get(st, key, "current") or {}
            want = target.get("averageValue") or target.get("value") or "<unknown>"
            have = cur_m.get("averageValue") or cur_m.get("value") or "<unknown>"
            prefix = "(avg)" if typ != "Pods" and target.get("averageValue") else ""
            out.append(f"{have}/{want}{' ' + prefix if prefix else ''}")
        else:
            out.append("<unknown type>")
    return more(out, 2, sep=", ")


def hpa_cells(hpa: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(hpa, now)
    spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_pods = spec.get("minReplicas")
    return [name, f"{ref.get('kind', '')}/{ref.get('name', '')}", _hpa_targets(hpa),
            "<unset>" if min_pods is None else str(min_pods), int(spec.get("maxReplicas") or 0),
            int(status.get("currentReplicas") or 0), age]


HPA = Printer((
    NAME,
    col("Reference", "The scaled object, as Kind/name."),
    col("Targets", "Current and target metric values."),
    col("MinPods", "Lower limit of replicas."),
    col("MaxPods", "Upper limit of replicas.", "integer"),
    col("Replicas", "Current number of replicas.", "integer"),
    AGE,
), hpa_cells)

# ---- policy, scheduling, apiextensions ----------------------------------------------------


def pdb_cells(pdb: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(pdb, now)
    spec = pdb.get("spec") or {}
    lo, hi = spec.get("minAvailable"), spec.get("maxUnavailable")
    return [name, "N/A" if lo is None else str(lo), "N/A" if hi is None else str(hi),
            int(get(pdb, "status", "disruptionsAllowed") or 0), age]


PDB = Printer((
    NAME,
    col("Min Available", "Pods that must stay available."),
    col("Max Unavailable", "Pods that may be unavailable."),
    col("Allowed Disruptions", "Evictions allowed right now.", "integer"),
    AGE,
), pdb_cells)


def priorityclass_cells(pc: Obj, now: datetime) -> list[Any]:
    name, age = _name_age(pc, now)
    return [name, int(pc.get("value") or 0), bool_str(pc.get("globalDefault")),
            pc.get("preemptionPolicy") or "PreemptLowerPriority", age]


PRIORITYCLASS = Printer((
    NAME,
    col("Value", "The priority value.", "integer"),
    col("Global-Default", "Whether this is the default priority class.", "boolean"),
    col("Preemption Policy", "Whether pods of this class preempt others."),
    AGE,
), priorityclass_cells)

# ---- apiregistration: NAME SERVICE AVAILABLE AGE as kube-aggregator prints them ------------


def apiservice_cells(svc: Obj, now: datetime) -> list[Any]:
    ref = get(svc, "spec", "service")
    service = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) else "Local"
    available = "Unknown"
    for c in get(svc, "status", "conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Available":
            available = str(c.get("status", "Unknown"))
            if available != "True" and c.get("reason"):
                available += f" ({c['reason']})"
    name, age = _name_age(svc, now)
    return [name, service, available, age]


APISERVICE = Printer((NAME, col("Service", "The reference to the service that hosts this API endpoint."),
                      col("Available", "Whether this service is available."), AGE), apiservice_cells)

# CRDs use kube-apiserver's default table convertor: the creation time as a date.
CRD = Printer((NAME, Column("Created At", "date", description=CREATED_AT.description)), created_at_cells)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("networking.k8s.io", "Ingress"): INGRESS, ("networking.k8s.io", "IngressClass"): INGRESSCLASS,
    ("networking.k8s.io", "NetworkPolicy"): NETWORKPOLICY, ("discovery.k8s.io", "EndpointSlice"): ENDPOINTSLICE,
    ("rbac.authorization.k8s.io", "Role"): ROLE, ("rbac.authorization.k8s.io", "ClusterRole"): ROLE,
    ("rbac.authorization.k8s.io", "RoleBinding"): BINDING, ("rbac.authorization.k8s.io", "ClusterRoleBinding"): BINDING,
    ("storage.k8s.io", "StorageClass"): STORAGECLASS, ("coordination.k8s.io", "Lease"): LEASE,
    ("autoscaling", "HorizontalPodAutoscaler"): HPA, ("policy", "PodDisruptionBudget"): PDB,
    ("scheduling.k8s.io", "PriorityClass"): PRIORITYCLASS,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): CRD,
    ("apiregistration.k8s.io", "APIService"): APISERVICE,
}
