"""Table printers for core/v1 kinds, following kube-apiserver's printers column for column.

Neighbours: registered by `minik.api.tables`; cell helpers come from `.format`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minik.api.tables.format import (NONE, UNKNOWN, access_modes, containers_and_images, format_labels, get,
                                     human_duration, more, parse_time, rfc3339, since)
from minik.api.tables.printer import AGE, CREATED_AT, NAME, Column, Obj, Printer, col, wide

# ---- Pod ----------------------------------------------------------------------------------


def _restartable_init(c: Any) -> bool:
    # Sidecars: init containers with restartPolicy Always count as regular containers.
    return isinstance(c, dict) and c.get("restartPolicy") == "Always"


def _later(a: datetime | None, b: Any) -> datetime | None:
    t = parse_time(b)
    if t is None:
        return a
    return t if a is None or t > a else a


def _condition_true(conds: Any, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in conds or [])


def pod_cells(pod: Obj, now: datetime) -> list[Any]:
    """Ready, Status, Restarts the way `kubectl get pods` computes them (printPod)."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    init_specs = spec.get("initContainers") or []
    total = len(spec.get("containers") or []) + sum(1 for c in init_specs if _restartable_init(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    conditions = status.get("conditions") or []
    for c in conditions:
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"
    init_by_name = {c.get("name"): c for c in init_specs}
    initializing = False
    for i, cs in enumerate(status.get("initContainerStatuses") or []):
        restarts += int(cs.get("restartCount") or 0)
        finished = get(cs, "lastState", "terminated", "finishedAt")
        last_restart = _later(last_restart, finished)
        sidecar = _restartable_init(init_by_name.get(cs.get("name")))
        if sidecar:
            sidecar_restarts += int(cs.get("restartCount") or 0)
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        state = cs.get("state") or {}
        term = state.get("terminated")
        waiting = state.get("waiting")
        if term is not None and int(term.get("exitCode") or 0) == 0:
            continue
        if sidecar and cs.get("started"):
            if cs.get("ready"):
                ready += 1
            continue
        if term is not None:
            if term.get("reason"):
                reason = "Init:" + term["reason"]
            elif term.get("signal"):
                reason = f"Init:Signal:{term['signal']}"
            else:
                reason = f"Init:ExitCode:{term.get('exitCode', 0)}"
        elif waiting is not None and waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            reason = "Init:" + waiting["reason"]
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break
    if not initializing or _condition_true(conditions, "Initialized"):
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for cs in reversed(status.get("containerStatuses") or []):
            restarts += int(cs.get("restartCount") or 0)
            last_restart = _later(last_restart, get(cs, "lastState", "terminated", "finishedAt"))
            state = cs.get("state") or {}
            waiting, term = state.get("waiting"), state.get("terminated")
            if waiting is not None and waiting.get("reason"):
                reason = waiting["reason"]
            elif term is not None and term.get("reason"):
                reason = term["reason"]
            elif term is not None:
                reason = f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term.get('exitCode', 0)}"
            elif cs.get("ready") and state.get("running") is not None:
                has_running = True
                ready += 1
        # A completed container next to a running one: the pod itself is still running.
        if reason == "Completed" and has_running:
            reason = "Running" if any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions) \
                else "NotReady"
    if meta.get("deletionTimestamp"):
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    restarts_str = str(restarts)
    if restarts and last_restart is not None:
        restarts_str = f"{restarts} ({human_duration((now - last_restart).total_seconds())} ago)"
    ips = status.get("podIPs") or []
    pod_ip = (ips[0].get("ip") if ips else "") or status.get("podIP") or NONE
    gates = spec.get("readinessGates") or []
    gates_str = NONE
    if gates:
        by_type: dict[Any, Any] = {}
        for c in conditions:
            by_type.setdefault(c.get("type"), c.get("status"))
        true_count = len([g for g in gates if by_type.get(g.get("conditionType")) == "True"])
        gates_str = f"{true_count}/{len(gates)}"
    return [meta.get("name", ""), f"{ready}/{total}", reason, restarts_str, since(meta.get("creationTimestamp"), now),
            pod_ip, spec.get("nodeName") or NONE, status.get("nominatedNodeName") or NONE, gates_str]


POD = Printer((
    NAME,
    col("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    col("Status", "The aggregate status of the containers in this pod."),
    col("Restarts", "The number of times the containers in this pod have been restarted and when the last restart happened."),
    AGE,
    wide("IP", "IP address allocated to the pod."),
    wide("Node", "Name of the node the pod is bound to."),
    wide("Nominated Node", "Node the scheduler nominated for this pod after preemption."),
    wide("Readiness Gates", "Readiness gates that report True, out of all gates."),
), pod_cells)

# ---- Service, Endpoints -------------------------------------------------------------------


def _lb_ingress(lb: Any) -> list[str]:
    out = []
    for ing in (lb or {}).get("ingress") or []:
        if ing.get("ip"):
            out.append(ing["ip"])
        elif ing.get("hostname"):
            out.append(ing["hostname"])
    return out


def _service_external_ip(svc: Obj) -> str:
    spec = svc.get("spec") or {}
    typ = spec.get("type") or "ClusterIP"
    external = spec.get("externalIPs") or []
    if typ in ("ClusterIP", "NodePort"):
        return ",".join(external) if external else NONE
    if typ == "LoadBalancer":
        lb = _lb_ingress(get(svc, "status", "loadBalancer"))
        if external:
            return ",".join(lb + external)
        return ",".join(lb) if lb else "<pending>"
    if typ == "ExternalName":
        return str(spec.get("externalName") or "")
    return UNKNOWN


def port_string(ports: Any) -> str:
    parts = []
    for p in ports or []:
        proto = p.get("protocol") or "TCP"
        if p.get("nodePort"):
            parts.append(f"{p.get('port')}:{p['nodePort']}/{proto}")
        else:
            parts.append(f"{p.get('port')}/{proto}")
    return ",".join(parts)


def service_cells(svc: Obj, now: datetime) -> list[Any]:
    meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ips = spec.get("clusterIPs") or []
    cluster_ip = (ips[0] if ips else spec.get("clusterIP")) or NONE
    return [meta.get("name", ""), spec.get("type") or "ClusterIP", cluster_ip, _service_external_ip(svc),
            port_string(spec.get("ports")) or NONE, since(meta.get("creationTimestamp"), now),
            format_labels(spec.get("selector"))]


SERVICE = Printer((
    NAME,
    col("Type", "How the service is exposed: ClusterIP, NodePort, LoadBalancer or ExternalName."),
    col("Cluster-IP", "The IP address of the service inside the cluster."),
    col("External-IP", "External addresses of the service (load balancer ingress or externalIPs)."),
    col("Port(s)", "The ports the service exposes, with node ports when allocated."),
    AGE,
    wide("Selector", "The label selector choosing the pods behind the service."),
), service_cells)


def endpoints_cells(ep: Obj, now: datetime) -> list[Any]:
    meta = ep.get("metadata") or {}
    subsets = ep.get("subsets") or []
    if not subsets:
        text = NONE
    else:
        items: list[str] = []
        count = 0
        for ss in subsets:
            addrs = [a.get("ip", "") for a in ss.get("addresses") or []]
            ports = ss.get("ports") or []
            if not ports:
                count += len(addrs)
                items.extend(addrs)
                continue
            for p in ports:
                count += len(addrs)
                for ip in addrs:
                    host = f"[{ip}]" if ":" in ip else ip
                    items.append(f"{host}:{p.get('port')}")
        text = more(items, 3, count)
    return [meta.get("name", ""), text, since(meta.get("creationTimestamp"), now)]


ENDPOINTS = Printer((NAME, col("Endpoints", "Ready addresses of the endpoints (first three)."), AGE), endpoints_cells)

# ---- Config, identity, namespaces ---------------------------------------------------------


def configmap_cells(cm: Obj, now: datetime) -> list[Any]:
    meta = cm.get("metadata") or {}
    return [meta.get("name", ""), len(cm.get("data") or {}) + len(cm.get("binaryData") or {}),
            since(meta.get("creationTimestamp"), now)]


def secret_cells(sec: Obj, now: datetime) -> list[Any]:
    meta = sec.get("metadata") or {}
    keys = set(sec.get("data") or {}) | set(sec.get("stringData") or {})
    return [meta.get("name", ""), sec.get("type") or "Opaque", len(keys), since(meta.get("creationTimestamp"), now)]


def serviceaccount_cells(sa: Obj, now: datetime) -> list[Any]:
    meta = sa.get("metadata") or {}
    return [meta.get("name", ""), len(sa.get("secrets") or []), since(meta.get("creationTimestamp"), now)]


def namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    meta = ns.get("metadata") or {}
    return [meta.get("name", ""), get(ns, "status", "phase") or "Active", since(meta.get("creationTimestamp"), now)]


CONFIGMAP = Printer((NAME, col("Data", "Number of entries in data and binaryData."), AGE), configmap_cells)
SECRET = Printer((NAME, col("Type", "The type of the secret."), col("Data", "Number of entries in data."), AGE),
                 secret_cells)
SERVICEACCOUNT = Printer((NAME, col("Secrets", "Number of secrets listed by the service account."), AGE),
                         serviceaccount_cells)
NAMESPACE = Printer((NAME, col("Status", "The phase of the namespace: Active or Terminating."), AGE), namespace_cells)

# ---- Node ---------------------------------------------------------------------------------


def node_roles(labels: Any) -> list[str]:
    roles: set[str] = set()
    for k, v in (labels or {}).items():
        if k.startswith("node-role.kubernetes.io/"):
            role = k[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif k == "kubernetes.io/role" and v:
            roles.add(str(v))
    return sorted(roles)


def _node_address(node: Obj, typ: str) -> str:
    for a in get(node, "status", "addresses") or []:
        if a.get("type") == typ:
            return str(a.get("address", ""))
    return NONE


def node_cells(node: Obj, now: datetime) -> list[Any]:
    meta, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    states: list[str] = []
    for c in status.get("conditions") or []:
        if c.get("type") == "Ready":
            states = ["Ready" if c.get("status") == "True" else "NotReady"]
    if not states:
        states = ["Unknown"]
    if spec.get("unschedulable"):
        states.append("SchedulingDisabled")
    info = status.get("nodeInfo") or {}
    return [meta.get("name", ""), ",".join(states), ",".join(node_roles(meta.get("labels"))) or NONE,
            since(meta.get("creationTimestamp"), now), info.get("kubeletVersion", ""),
            _node_address(node, "InternalIP"), _node_address(node, "ExternalIP"),
            info.get("osImage") or UNKNOWN, info.get("kernelVersion") or UNKNOWN,
            info.get("containerRuntimeVersion") or UNKNOWN]


NODE = Printer((
    NAME,
    col("Status", "Ready or NotReady from the Ready condition, plus SchedulingDisabled when cordoned."),
    col("Roles", "Roles of the node, from node-role.kubernetes.io/<role> labels."),
    AGE,
    col("Version", "Kubelet version reported by the node."),
    wide("Internal-IP", "The node's InternalIP address."),
    wide("External-IP", "The node's ExternalIP address."),
    wide("OS-Image", "OS image reported by the node."),
    wide("Kernel-Version", "Kernel version reported by the node."),
    wide("Container-Runtime", "Container runtime and version reported by the node."),
), node_cells)

# ---- Event --------------------------------------------------------------------------------


def event_cells(ev: Obj, now: datetime) -> list[Any]:
    meta = ev.get("metadata") or {}
    first = since(ev.get("firstTimestamp"), now) if ev.get("firstTimestamp") else since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now) if ev.get("lastTimestamp") else first
    count = int(ev.get("count") or 0)
    series = ev.get("series")
    if isinstance(series, dict):
        last = since(series.get("lastObservedTime"), now)
        count = int(series.get("count") or 0)
    elif count == 0:
        count = 1
    inv = ev.get("involvedObject") or {}
    kind = str(inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    src = ev.get("source") or {}
    component = src.get("component") or ev.get("reportingComponent") or ""
    instance = src.get("host") or ev.get("reportingInstance") or ""
    source = f"{component}, {instance}" if instance else component
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""), source,
            str(ev.get("message") or "").strip(), first, count, meta.get("name", "")]


EVENT = Printer((
    col("Last Seen", "Time since the event was last seen."),
    col("Type", "Normal or Warning."),
    col("Reason", "Short machine-readable reason for the event."),
    col("Object", "The object the event is about, as kind/name."),
    wide("Subobject", "The part of the object the event is about (fieldPath)."),
    wide("Source", "The component that reported the event."),
    col("Message", "Human-readable description of the event."),
    wide("First Seen", "Time since the event was first seen."),
    wide("Count", "How many times the event happened."),
    wide("Name", "Name of the event object."),
), event_cells)

# ---- Storage ------------------------------------------------------------------------------


def _class_of(obj: Obj) -> str:
    spec = obj.get("spec") or {}
    ann = get(obj, "metadata", "annotations") or {}
    return str(spec.get("storageClassName") or ann.get("volume.beta.kubernetes.io/storage-class") or "")


def pv_cells(pv: Obj, now: datetime) -> list[Any]:
    meta, spec, status = pv.get("metadata") or {}, pv.get("spec") or {}, pv.get("status") or {}
    ref = spec.get("claimRef")
    claim = f"{ref.get('namespace', '')}/{ref.get('name', '')}" if isinstance(ref, dict) else ""
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    return [meta.get("name", ""), str((spec.get("capacity") or {}).get("storage", "0")),
            access_modes(spec.get("accessModes")), spec.get("persistentVolumeReclaimPolicy", ""), phase, claim,
            _class_of(pv), spec.get("volumeAttributesClassName") or "<unset>", status.get("reason", ""),
            since(meta.get("creationTimestamp"), now), spec.get("volumeMode") or "<unset>"]


PV = Printer((
    NAME,
    col("Capacity", "The storage capacity of the volume."),
    col("Access Modes", "How the volume can be mounted (RWO, ROX, RWX, RWOP)."),
    col("Reclaim Policy", "What happens to the volume when its claim is released."),
    col("Status", "The phase of the volume."),
    col("Claim", "The claim bound to the volume, as namespace/name."),
    col("StorageClass", "The storage class of the volume."),
    col("VolumeAttributesClass", "The volume attributes class of the volume."),
    col("Reason", "Why the volume is in its phase."),
    AGE,
    wide("VolumeMode", "Filesystem or Block."),
), pv_cells)


def pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    meta, spec, status = pvc.get("metadata") or {}, pvc.get("spec") or {}, pvc.get("status") or {}
    phase = "Terminating" if meta.get("deletionTimestamp") else status.get("phase", "")
    capacity = modes = ""
    if spec.get("volumeName"):
        modes = access_modes(status.get("accessModes"))
        capacity = str((status.get("capacity") or {}).get("storage", "0"))
    return [meta.get("name", ""), phase, spec.get("volumeName", ""), capacity, modes, _class_of(pvc),
            spec.get("volumeAttributesClassName") or "<unset>", since(meta.get("creationTimestamp"), now),
            spec.get("volumeMode") or "<unset>"]


PVC = Printer((
    NAME,
    col("Status", "The phase of the claim."),
    col("Volume", "The volume bound to the claim."),
    col("Capacity", "The capacity of the bound volume."),
    col("Access Modes", "Access modes of the bound volume."),
    col("StorageClass", "The storage class of the claim."),
    col("VolumeAttributesClass", "The volume attributes class of the claim."),
    AGE,
    wide("VolumeMode", "Filesystem or Block."),
), pvc_cells)

# ---- Quotas and limits --------------------------------------------------------------------


def quota_cells(q: Obj, now: datetime) -> list[Any]:
    meta = q.get("metadata") or {}
    hard = get(q, "spec", "hard") or {}
    s_hard = get(q, "status", "hard") or {}
    used = get(q, "status", "used") or {}
    requests: list[str] = []
    limits: list[str] = []
    for res in sorted(hard):
        text = f"{res}: {used.get(res, '0')}/{s_hard.get(res, hard[res])}"
        (limits if res.startswith("limits.") else requests).append(text)
    return [meta.get("name", ""), since(meta.get("creationTimestamp"), now), ", ".join(requests), ", ".join(limits)]


QUOTA = Printer((
    NAME, AGE,
    col("Request", "Used and hard request quotas."),
    col("Limit", "Used and hard limit quotas."),
), quota_cells)


def created_at_cells(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), rfc3339(meta.get("creationTimestamp"))]


LIMITRANGE = Printer((NAME, CREATED_AT), created_at_cells)


def rc_cells(rc: Obj, now: datetime) -> list[Any]:
    meta, spec, status = rc.get("metadata") or {}, rc.get("spec") or {}, rc.get("status") or {}
    names, images = containers_and_images(get(spec, "template", "spec"))
    return [meta.get("name", ""), int(spec.get("replicas", 1)), int(status.get("replicas") or 0),
            int(status.get("readyReplicas") or 0), since(meta.get("creationTimestamp"), now), names, images,
            format_labels(spec.get("selector"))]


def replica_columns() -> tuple[Column, ...]:
    return (
        NAME,
        col("Desired", "Number of desired pods.", "integer"),
        col("Current", "Number of pods currently running.", "integer"),
        col("Ready", "Number of ready pods.", "integer"),
        AGE,
        wide("Containers", "Names of each container in the template."),
        wide("Images", "Images referenced by each container in the template."),
        wide("Selector", "The label selector of the pods."),
    )


REPLICATIONCONTROLLER = Printer(replica_columns(), rc_cells)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("", "Pod"): POD, ("", "Service"): SERVICE, ("", "Endpoints"): ENDPOINTS, ("", "ConfigMap"): CONFIGMAP,
    ("", "Secret"): SECRET, ("", "ServiceAccount"): SERVICEACCOUNT, ("", "Namespace"): NAMESPACE,
    ("", "Node"): NODE, ("", "Event"): EVENT, ("", "PersistentVolume"): PV, ("", "PersistentVolumeClaim"): PVC,
    ("", "ResourceQuota"): QUOTA, ("", "LimitRange"): LIMITRANGE, ("", "ReplicationController"): REPLICATIONCONTROLLER,
}
