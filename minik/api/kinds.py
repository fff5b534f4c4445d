"""Per-kind write hooks: what a few kinds need beyond the generic rules of `minik.api.service`.

- Pod: initial status (Pending, qosClass).
- Service: cluster IP and node port allocation from `--service-cidr` / `--service-node-port-range`
  (explicit ports checked: range, taken, duplicates → 422 naming the field).
- CustomResourceDefinition: accepted names, Established condition, and (after the write) the
  served resource types registered in the `Registry` and OpenAPI, so custom resources are served.
- Role/ClusterRole/(Cluster)RoleBinding: escalation prevention (`minik.api.rbac_escalation`).
- Ingress: the default IngressClass's name when none is given (`minik.apis.ingressclass`).
Neighbours: called by `minik.api.service`; updates `minik.apis.registry` and `minik.api.openapi`.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import time
from typing import Any, Protocol

from minik.api import rbac_escalation
from minik.api.admission import Admission
from minik.api import status as st
from minik.api.meta import Obj, rfc3339, utcnow
from minik.apis import errors as api_errors
from minik.apis.ingressclass import set_default_class
from minik.apis.registry import Registry, ResourceType
from minik.store.store import Store

log = logging.getLogger("minik.api")

SA_MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
PENDING_IP_SECONDS = 30.0


def _ident(obj: Obj) -> str:
    m = obj.get("metadata") or {}
    return f"{m.get('namespace') or ''}/{m.get('name') or ''}"


def qos_class(spec: Obj) -> str:
    """Guaranteed / Burstable / BestEffort as Kubernetes computes it from requests and limits."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    any_set = False
    guaranteed = True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and str(req[r]) != str(lim[r])):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


class CustomSchemaSink(Protocol):
    """Where CRD schemas go to be published (`minik.api.openapi.OpenAPI`)."""

    def set_custom_schema(self, group: str, version: str, kind: str, schema: dict[str, Any]) -> None: ...
    def invalidate(self) -> None: ...


class KindHooksImpl:
    def __init__(self, store: Store, registry: Registry, service_cidr: str, openapi: CustomSchemaSink | None = None,
                 node_port_range: str = "30000-32767") -> None:
        self.store, self.registry, self.openapi = store, registry, openapi
        self.service_net = ipaddress.ip_network(service_cidr, strict=False)
        lo, _, hi = node_port_range.partition("-")
        self.node_port_range = (int(lo), int(hi))
        self._custom_schemas: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._custom_status: set[tuple[str, str, str]] = set()
        self._custom_scale: dict[tuple[str, str, str], dict[str, Any]] = {}
        self._custom_columns: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.admission = Admission(store)   # LimitRanger, DefaultStorageClass, storage protection, ResourceQuota
        # ClusterIPs handed out whose Service may not be committed yet (ip → when, "ns/name"):
        # two creates in flight must not get the same address. Forgotten after PENDING_IP_SECONDS.
        self._pending_ips: dict[str, tuple[float, str]] = {}

    # ---- KindHooks protocol -------------------------------------------------------------------
    def custom_schema(self, rt: ResourceType) -> dict[str, Any] | None:
        return self._custom_schemas.get((rt.group, rt.version, rt.plural))

    def has_status(self, rt: ResourceType) -> bool:
        if rt.custom:
            return (rt.group, rt.version, rt.plural) in self._custom_status
        return "status" in rt.subresources

    async def before_create(self, rt: ResourceType, obj: Obj) -> None:
        await self.admission.admit_create(rt, obj)
        if rt.group == "" and rt.kind == "Pod":
            status = obj.setdefault("status", {})
            status.setdefault("phase", "Pending")
            status["qosClass"] = qos_class(obj.get("spec") or {})
            self._mount_service_account_token(obj)
        elif rt.group == "" and rt.kind == "Service":
            self._allocate_service(obj, None)
        elif rt.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        elif rt.group == "rbac.authorization.k8s.io":
            rbac_escalation.check_write(rt, obj, None)
        elif rt.group == "networking.k8s.io" and rt.kind == "Ingress":
            set_default_class(obj, self.store.list("networking.k8s.io/ingressclasses").items)

    async def validate_admission(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        await self.admission.validate(rt, obj, old)

    async def before_update(self, rt: ResourceType, obj: Obj, old: Obj) -> None:
        if rt.group == "" and rt.kind == "Service":
            self._allocate_service(obj, old)
        elif rt.kind == "CustomResourceDefinition":
            self._crd_status(obj)
        elif rt.group == "rbac.authorization.k8s.io":
            rbac_escalation.check_write(rt, obj, old)

    async def after_write(self, rt: ResourceType, obj: Obj | None, old: Obj | None) -> None:
        if obj is not None and old is None:
            self.admission.created(obj)
            if rt.group == "" and rt.kind == "Service":
                # Committed: the store is the allocation table for this address from now on.
                ip = (obj.get("spec") or {}).get("clusterIP")
                if isinstance(ip, str) and self._pending_ips.get(ip, (0.0, ""))[1] == _ident(obj):
                    del self._pending_ips[ip]
        if rt.kind == "CustomResourceDefinition" and rt.group == "apiextensions.k8s.io":
            if obj is not None:
                self.register_crd(obj)
            elif old is not None:
                self.unregister_crd(old)
                await self._delete_custom_objects(old)

    # ---- Pods ------------------------------------------------------------------------------
    def _mount_service_account_token(self, pod: Obj) -> None:
        """The ServiceAccount admission plugin's token volume: a projected `kube-api-access-xxxxx`
        (bound token, cluster CA, namespace) mounted read-only at the well-known path in every
        container, unless the pod or its ServiceAccount opts out."""
        spec = pod.setdefault("spec", {})
        if spec.get("automountServiceAccountToken") is False:
            return
        ns = pod["metadata"].get("namespace", "")
        sa = self.store.get("serviceaccounts", ns, spec.get("serviceAccountName") or "default")
        if sa is not None and sa.get("automountServiceAccountToken") is False and spec.get("automountServiceAccountToken") is None:
            return
        containers = [c for key in ("initContainers", "containers") for c in spec.get(key) or []]
        if any(m.get("mountPath") == SA_MOUNT_PATH for c in containers for m in c.get("volumeMounts") or []):
            return
        name = "kube-api-access-" + "".join(random.choice(GENERATE_ALPHABET) for _ in range(5))
        spec.setdefault("volumes", []).append({"name": name, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}})
        for c in containers:
            c.setdefault("volumeMounts", []).append({"name": name, "readOnly": True, "mountPath": SA_MOUNT_PATH})

    # ---- Services --------------------------------------------------------------------------
    def first_service_ip(self) -> str:
        return str(self.service_net.network_address + 1)

    def _allocate_service(self, obj: Obj, old: Obj | None) -> None:
        spec = obj.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        old_spec = (old or {}).get("spec") or {}
        if stype == "ExternalName":
            spec.pop("clusterIP", None)
            spec.pop("clusterIPs", None)
            return
        if old_spec.get("clusterIP") and not spec.get("clusterIP"):
            spec["clusterIP"] = old_spec["clusterIP"]
        ip = spec.get("clusterIP")
        if ip and ip != "None":
            try:
                addr = ipaddress.ip_address(ip)
            except ValueError:
                raise api_errors.Invalid("Service", obj["metadata"].get("name", ""), [api_errors.Cause(
                    "FieldValueInvalid", f'Invalid value: "{ip}": must be a valid IP address', "spec.clusterIPs[0]")]) from None
            if addr not in self.service_net:
                raise api_errors.Invalid("Service", obj["metadata"].get("name", ""), [api_errors.Cause(
                    "FieldValueInvalid", f'Invalid value: "{ip}": provided IP is not in the valid range. The range of valid IPs is {self.service_net}',
                    "spec.clusterIPs")])
            if old is None and self._ip_in_use(ip, _ident(obj)):
                raise api_errors.Invalid("Service", obj["metadata"].get("name", ""), [api_errors.Cause(
                    "FieldValueInvalid", f'Invalid value: []string{{"{ip}"}}: failed to allocate IP {ip}: provided IP is already allocated',
                    "spec.clusterIPs")])
        elif not ip:
            spec["clusterIP"] = self._free_ip(_ident(obj))
        spec["clusterIPs"] = [spec["clusterIP"]]
        if spec["clusterIP"] != "None":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        if stype in ("NodePort", "LoadBalancer"):
            if stype == "NodePort" or spec.get("allocateLoadBalancerNodePorts", True) is not False:
                self._allocate_node_ports(obj, old_spec)
            if stype == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)
                spec.setdefault("externalTrafficPolicy", "Cluster")
        elif stype == "ClusterIP":
            for p in spec.get("ports") or []:
                p.pop("nodePort", None)
        if stype not in ("NodePort", "LoadBalancer") and old_spec.get("type") in ("NodePort", "LoadBalancer"):
            # Kubernetes drops the fields that only mean something for the old type when they
            # were left as they were (dropTypeDependentFields), so `type: ClusterIP` alone works.
            for f in ("externalTrafficPolicy", "healthCheckNodePort", "allocateLoadBalancerNodePorts", "loadBalancerClass"):
                if f in spec and spec.get(f) == old_spec.get(f):
                    spec.pop(f)

    def _allocate_node_ports(self, obj: Obj, old_spec: Obj) -> None:
        """Explicit nodePorts must be free and in --service-node-port-range (422 naming
        `spec.ports[i].nodePort`); the others keep the port they had or get a free one. A port
        number belongs to one Service (both protocols), as Kubernetes's allocator does; the
        store is the allocation table, so deleting the Service or changing its type frees it."""
        spec = obj["spec"]
        name = obj["metadata"].get("name", "")
        lo, hi = self.node_port_range
        used = self._node_ports_in_use(obj)
        old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports") or []}
        causes: list[api_errors.Cause] = []
        mine: dict[tuple[int, str], int] = {}
        ports = spec.get("ports") or []
        for i, p in enumerate(ports):
            field = f"spec.ports[{i}].nodePort"
            value = p.get("nodePort")
            if not value:
                continue
            if not isinstance(value, int) or isinstance(value, bool):
                continue   # validation reports the type
            if not lo <= value <= hi:
                causes.append(api_errors.Cause("FieldValueInvalid", f"Invalid value: {value}: provided port is not in the valid "
                                                                    f"range. The range of valid ports is {lo}-{hi}", field))
            elif value in used:
                causes.append(api_errors.Cause("FieldValueInvalid", f"Invalid value: {value}: provided port is already allocated", field))
            key = (value, str(p.get("protocol", "TCP")))
            if key in mine:
                causes.append(api_errors.Cause("FieldValueDuplicate", f"Duplicate value: {value}", field))
            mine[key] = i
        if causes:
            raise api_errors.Invalid("Service", name, causes)
        taken = used | {v for v, _ in mine}
        for p in ports:
            if not p.get("nodePort"):
                prev = old_ports.get((p.get("port"), p.get("protocol", "TCP")))
                p["nodePort"] = prev if prev and prev not in taken else self._free_node_port(taken)
                taken.add(int(p["nodePort"]))

    def _services(self) -> list[Obj]:
        return self.store.list("services", None).items

    def _pending(self, owner: str) -> set[str]:
        """Addresses reserved by other Services' creates still in flight."""
        now = time.monotonic()
        for ip, (when, _) in list(self._pending_ips.items()):
            if now - when > PENDING_IP_SECONDS:
                del self._pending_ips[ip]
        return {ip for ip, (_, who) in self._pending_ips.items() if who != owner}

    def _ip_in_use(self, ip: str, owner: str) -> bool:
        if ip in self._pending(owner) or any((s.get("spec") or {}).get("clusterIP") == ip for s in self._services()):
            return True
        self._pending_ips[ip] = (time.monotonic(), owner)
        return False

    def _free_ip(self, owner: str) -> str:
        """A free ClusterIP, from a random point of the range onwards (as Kubernetes's allocator:
        a deleted Service's address is not handed out again at once, and with thousands of
        Services the search does not walk past them all from the start)."""
        net = self.service_net
        base = int(net.network_address)
        # Compared as the strings stored (parsing thousands of addresses per create was the cost).
        used = {(s.get("spec") or {}).get("clusterIP") for s in self._services()} | self._pending(owner)
        size = net.num_addresses
        last = size - 1 if net.version == 4 and size > 2 else size
        hosts = min(last, 1 << 20)     # a huge IPv6 range: search its first million only
        start = random.randrange(hosts)
        for i in range(hosts):
            offset = (start + i) % hosts
            # .1 is the kubernetes service, .10 cluster DNS by k3s convention: allocated only on
            # request; .0 (and the broadcast address of an IPv4 range) never.
            if offset in (0, 1, 10):
                continue
            ip = str(ipaddress.ip_address(base + offset))
            if ip not in used:
                self._pending_ips[ip] = (time.monotonic(), owner)
                return ip
        raise st.StatusError(500, "InternalError", "failed to allocate a serviceIP: range is full")

    def _node_ports_in_use(self, obj: Obj) -> set[int]:
        me = (obj["metadata"].get("namespace"), obj["metadata"].get("name"))
        out: set[int] = set()
        for s in self._services():
            if (s["metadata"].get("namespace"), s["metadata"].get("name")) == me:
                continue
            for p in (s.get("spec") or {}).get("ports") or []:
                if p.get("nodePort"):
                    out.add(int(p["nodePort"]))
        return out

    def _free_node_port(self, used: set[int]) -> int:
        lo, hi = self.node_port_range
        # Random start like Kubernetes's allocator, so a deleted Service's port is not handed to
        # the next one at once (clients may still point at it).
        span = hi - lo + 1
        start = random.randrange(span)
        for i in range(span):
            port = lo + (start + i) % span
            if port not in used:
                return port
        raise st.StatusError(500, "InternalError", "failed to allocate a nodePort: range is full")

    # ---- CRDs ------------------------------------------------------------------------------
    def _crd_status(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        names = dict(spec.get("names") or {})
        if names.get("kind") and not names.get("listKind"):
            names["listKind"] = names["kind"] + "List"
        if names.get("kind") and not names.get("singular"):
            names["singular"] = names["kind"].lower()
        now = rfc3339(utcnow())
        status = obj.setdefault("status", {})
        status["acceptedNames"] = names
        status["storedVersions"] = [v["name"] for v in spec.get("versions") or [] if v.get("storage")]
        status["conditions"] = [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ]

    def register_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        group = spec.get("group", "")
        self._unregister_group_plural(group, names.get("plural", ""))
        for v in spec.get("versions") or []:
            if not v.get("served", True):
                continue
            subs = v.get("subresources") or {}
            sub_names: tuple[str, ...] = tuple(k for k in ("status", "scale") if k in subs)
            rt = ResourceType(group, v["name"], names.get("kind", ""), names.get("plural", ""),
                              spec.get("scope", "Namespaced") == "Namespaced", tuple(names.get("shortNames") or ()),
                              tuple(names.get("categories") or ()), sub_names, custom=True)
            self.registry.add(rt)
            schema = ((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
            key = (group, v["name"], names.get("plural", ""))
            self._custom_schemas[key] = schema
            self._custom_scale[key] = subs.get("scale") or {}
            self._custom_columns[key] = list(v.get("additionalPrinterColumns") or [])
            if "status" in subs:
                self._custom_status.add(key)
            else:
                self._custom_status.discard(key)
            if self.openapi is not None:
                self.openapi.set_custom_schema(group, v["name"], names.get("kind", ""), schema)
        if self.openapi is not None:
            self.openapi.invalidate()

    def _unregister_group_plural(self, group: str, plural: str) -> None:
        for t in list(self.registry.types):
            if t.custom and t.group == group and t.plural == plural:
                self.registry.remove(t.group, t.version, t.plural)
                self._custom_schemas.pop((t.group, t.version, t.plural), None)
                self._custom_status.discard((t.group, t.version, t.plural))

    def unregister_crd(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        self._unregister_group_plural(spec.get("group", ""), (spec.get("names") or {}).get("plural", ""))
        if self.openapi is not None:
            self.openapi.invalidate()

    async def _delete_custom_objects(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        key = f"{spec.get('group', '')}/{(spec.get('names') or {}).get('plural', '')}"
        for obj in self.store.list(key, None).items:
            m = obj["metadata"]
            try:
                await self.store.delete(key, m.get("namespace", ""), m["name"])
            except Exception:  # already gone: fine
                log.debug("custom object %s/%s already deleted", m.get("namespace"), m["name"])

    def printer_columns(self, rt: ResourceType) -> list[dict[str, Any]] | None:
        cols = self._custom_columns.get((rt.group, rt.version, rt.plural))
        return list(cols) if cols else None

    def scale_spec(self, rt: ResourceType) -> dict[str, Any]:
        return self._custom_scale.get((rt.group, rt.version, rt.plural)) or {}
