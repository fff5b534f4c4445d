"""Endpoints and EndpointSlice controller: for every Service with a selector, the pods behind it.

One sync per Service key (Kubernetes 1.32's endpoints and endpointslice controllers, merged):
- Endpoints `<svc>`: ready pods in `addresses`, the others in `notReadyAddresses` (all in
  `addresses` with publishNotReadyAddresses), each with `targetRef` to the pod; terminating and
  finished pods and pods without an IP are left out; service ports are resolved per pod
  (`targetPort` by name from the containers' ports), so pods group into subsets by port set.
- EndpointSlices `<svc>-xxxxx` (IPv4), one per distinct port set, labelled
  `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by`, owned by the Service
  (the garbage collector removes them with it); terminating pods stay listed with
  `ready: false, terminating: true` as kube does.
Objects are written only when their content changed. `default/kubernetes` is the API server's.
Neighbours: `minik.machinery` (shared informers on services, pods, endpoints, endpointslices;
`pods.pod_ready`); the
Service rules (net/nft), DNS and ingress read what this writes.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller, owner_reference
from minik.machinery.events import EventRecorder
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import SERVICE_INDEX, InformerFactory, slice_service
from minik.machinery.pods import pod_ready
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.endpoints")

COMPONENT = "endpoint-controller"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"


# ---- pure helpers --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EndpointPort:
    name: str
    port: int
    protocol: str
    app_protocol: str = ""

    def to_api(self) -> Obj:
        out: Obj = {"port": self.port, "protocol": self.protocol}
        if self.name:
            out["name"] = self.name
        if self.app_protocol:
            out["appProtocol"] = self.app_protocol
        return out


def pod_ip(pod: Obj) -> str:
    status = pod.get("status") or {}
    ip = status.get("podIP") or ""
    if not ip:
        ips = status.get("podIPs") or []
        ip = (ips[0] or {}).get("ip", "") if ips else ""
    return str(ip)


def should_include(pod: Obj, include_terminating: bool) -> bool:
    """ShouldPodBeInEndpoints: an IP, not finished, and (unless asked) not terminating."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    if not pod_ip(pod):
        return False
    return include_terminating or not pod["metadata"].get("deletionTimestamp")


def resolve_port(svc_port: Obj, pod: Obj) -> int | None:
    """The pod port a service port sends to: a number, or a named containerPort with the same protocol."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    proto = svc_port.get("protocol", "TCP")
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == target and p.get("protocol", "TCP") == proto:
                return int(p["containerPort"])
    return None


def pod_ports(svc: Obj, pod: Obj) -> tuple[EndpointPort, ...]:
    out = []
    for sp in (svc.get("spec") or {}).get("ports") or []:
        port = resolve_port(sp, pod)
        if port is not None:
            out.append(EndpointPort(sp.get("name") or "", port, sp.get("protocol", "TCP"), sp.get("appProtocol") or ""))
    return tuple(sorted(out, key=lambda p: (p.name, p.port, p.protocol)))


def is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m["name"], "uid": m.get("uid", "")}


def _address(svc: Obj, pod: Obj) -> Obj:
    spec = pod.get("spec") or {}
    addr: Obj = {"ip": pod_ip(pod)}
    if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
        addr["hostname"] = spec["hostname"]
    if spec.get("nodeName"):
        addr["nodeName"] = spec["nodeName"]
    addr["targetRef"] = target_ref(pod)
    return addr


def _groups(svc: Obj, pods: list[Obj], include_terminating: bool) -> dict[tuple[EndpointPort, ...], list[Obj]]:
    """Pods behind the Service grouped by their resolved port set (pods resolving none are left out,
    except for a headless Service without ports, whose endpoints carry no ports)."""
    groups: dict[tuple[EndpointPort, ...], list[Obj]] = {}
    has_ports = bool((svc.get("spec") or {}).get("ports"))
    for pod in pods:
        if not should_include(pod, include_terminating):
            continue
        ports = pod_ports(svc, pod)
        if has_ports and not ports:
            continue
        if not has_ports and not is_headless(svc):
            continue
        groups.setdefault(ports, []).append(pod)
    return groups


def _sort_key(addr: Obj) -> tuple[str, str]:
    return (addr.get("ip", ""), (addr.get("targetRef") or {}).get("uid", ""))


def endpoints_subsets(svc: Obj, pods: list[Obj]) -> list[Obj]:
    """The `subsets` of the Service's Endpoints object, in a stable order."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    subsets = []
    for ports, members in _groups(svc, pods, include_terminating=publish).items():
        ready = [_address(svc, p) for p in members if publish or pod_ready(p)]
        not_ready = [_address(svc, p) for p in members if not (publish or pod_ready(p))]
        ss: Obj = {}
        if ready:
            ss["addresses"] = sorted(ready, key=_sort_key)
        if not_ready:
            ss["notReadyAddresses"] = sorted(not_ready, key=_sort_key)
        if ports:
            ss["ports"] = [p.to_api() for p in ports]
        subsets.append(ss)
    return sorted(subsets, key=lambda s: repr(s.get("ports")))


def slice_endpoints(svc: Obj, pods: list[Obj]) -> list[tuple[list[Obj], list[Obj]]]:
    """(ports, endpoints) per EndpointSlice the Service needs, in a stable order."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    out = []
    for ports, members in _groups(svc, pods, include_terminating=True).items():
        eps = []
        for pod in sorted(members, key=lambda p: (pod_ip(p), p["metadata"].get("uid", ""))):
            spec = pod.get("spec") or {}
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            serving = publish or pod_ready(pod)
            ep: Obj = {"addresses": [pod_ip(pod)],
                       "conditions": {"ready": serving and not terminating, "serving": serving, "terminating": terminating},
                       "targetRef": target_ref(pod)}
            if spec.get("nodeName"):
                ep["nodeName"] = spec["nodeName"]
            if spec.get("hostname") and spec.get("subdomain") == svc["metadata"]["name"]:
                ep["hostname"] = spec["hostname"]
            eps.append(ep)
        api_ports = [{"name": p.name, "port": p.port, "protocol": p.protocol,
                      **({"appProtocol": p.app_protocol} if p.app_protocol else {})} for p in ports]
        out.append((api_ports, eps))
    return sorted(out, key=lambda g: repr(g[0]))


def service_labels(svc: Obj) -> dict[str, str]:
    labels = dict(svc["metadata"].get("labels") or {})
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    return labels


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = service_labels(svc)
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return labels


def manages_endpoints(svc: Obj) -> bool:
    m, spec = svc["metadata"], svc.get("spec") or {}
    if m.get("namespace") == "default" and m.get("name") == "kubernetes":
        return False  # the API server keeps this one
    # A Service without a selector has user-managed Endpoints (an empty map decodes to none in Go).
    return bool(spec.get("selector")) and spec.get("type") != "ExternalName"


# ---- the controller ------------------------------------------------------------------------------
class EndpointsController:
    def __init__(self, client: Client, workers: int = 2, informers: InformerFactory | None = None,
                 recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        # Without a factory from the daemon the controller owns private informers and runs them.
        factory = informers or InformerFactory(client)
        self.services = factory.informer("services")
        self.pods = factory.informer("pods")
        self.endpoints = factory.informer("endpoints")
        self.slices = factory.informer("discovery.k8s.io/endpointslices")
        # A Service's slices by index: a scan of the namespace's slices per Service sync made
        # creating 10,000 Services quadratic (minutes of CPU before the last one had a slice).
        self.slices.add_indexer(SERVICE_INDEX, slice_service)
        self.queue = WorkQueue()
        # Slices we created that the informer has not shown yet, so a quick resync cannot duplicate them.
        self._created: dict[str, dict[str, Obj]] = {}
        self.services.add_handler(lambda old, new: self.queue.add(object_key(new if new is not None else old or {})))
        self.pods.add_handler(self._on_pod)
        self.endpoints.add_handler(lambda old, new: self.queue.add(object_key(new if new is not None else old or {})))
        self.slices.add_handler(self._on_slice)
        self.controller = Controller(COMPONENT, self.queue, self.sync,
                                     [self.services, self.pods, self.endpoints, self.slices], workers,
                                     run_informers=informers is None, failed=self._failed)

    async def run(self) -> None:
        await self.controller.run()

    async def _failed(self, key: str, e: Exception) -> None:
        svc = self.services.get_by_key(key)
        if svc is not None:
            await self.recorder.event(svc, "Warning", "FailedToUpdateEndpoint", f"{type(e).__name__}: {e}")

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        pod = new if new is not None else old
        assert pod is not None
        label_sets = [o["metadata"].get("labels") or {} for o in (old, new) if o is not None]
        for svc in self.services.list(pod["metadata"].get("namespace", "")):
            sel = (svc.get("spec") or {}).get("selector")
            if not sel:
                continue
            if any(all(labels.get(k) == v for k, v in sel.items()) for labels in label_sets):
                self.queue.add(object_key(svc))

    def _on_slice(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        m = obj["metadata"]
        svc = (m.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if svc:
            key = f"{m.get('namespace', '')}/{svc}"
            self._forget_created(key, m["name"])
            self.queue.add(key)

    async def sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            self._created.pop(key, None)
            ep = self.endpoints.get(ns, name)
            if ep is not None and not (ns == "default" and name == "kubernetes"):
                # Kubernetes deletes the Endpoints of a deleted Service; slices go with the GC.
                await self.client.delete("endpoints", ns, name)
            return None
        if not manages_endpoints(svc):
            return None
        try:
            selector = LabelSelector.from_api({"matchLabels": (svc.get("spec") or {}).get("selector") or {}})
        except SelectorError:
            return None
        pods = [p for p in self.pods.list(ns) if selector.matches(p["metadata"].get("labels") or {})]
        await self._sync_endpoints(svc, pods)
        await self._sync_slices(svc, pods)
        return None

    async def _sync_endpoints(self, svc: Obj, pods: list[Obj]) -> None:
        m = svc["metadata"]
        ns, name = m["namespace"], m["name"]
        subsets = endpoints_subsets(svc, pods)
        labels = service_labels(svc)
        cur = self.endpoints.get(ns, name)
        if cur is None:
            body: Obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns, "labels": labels}}
            if subsets:
                body["subsets"] = subsets
            try:
                await self.client.create("endpoints", ns, body, field_manager=COMPONENT)
            except ClientError as e:
                if e.code != 409:
                    raise
                raise ClientError(409, "Conflict", f"endpoints {ns}/{name} exist but are not in the cache yet") from None
            return
        if (cur.get("subsets") or []) == subsets and (cur["metadata"].get("labels") or {}) == labels:
            return
        upd = copy.deepcopy(cur)
        upd["metadata"]["labels"] = labels
        if subsets:
            upd["subsets"] = subsets
        else:
            upd.pop("subsets", None)
        await self.client.update("endpoints", ns, name, upd, field_manager=COMPONENT)

    async def _sync_slices(self, svc: Obj, pods: list[Obj]) -> None:
        m = svc["metadata"]
        ns, name = m["namespace"], m["name"]
        key = f"{ns}/{name}"
        existing = {s["metadata"]["name"]: s for s in self.slices.by_index(SERVICE_INDEX, key)
                    if (s["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY}
        for sname, s in self._created.get(key, {}).items():
            existing.setdefault(sname, s)
        # kube keeps one (empty) slice for a Service without endpoints.
        wanted = slice_endpoints(svc, pods) or [([], [])]
        labels = slice_labels(svc)
        owner = owner_reference(svc, "v1", "Service")
        unmatched = dict(existing)
        todo: list[tuple[list[Obj], list[Obj]]] = []
        for ports, eps in wanted:
            match = next((n for n, s in unmatched.items() if _ports_of(s) == ports), None)
            if match is None:
                todo.append((ports, eps))
                continue
            await self._write_slice(unmatched.pop(match), ports, eps, labels, owner)
        for ports, eps in todo:
            if unmatched:  # reuse a slice whose port set went away rather than delete + create
                await self._write_slice(unmatched.pop(next(iter(unmatched))), ports, eps, labels, owner)
                continue
            body: Obj = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                         "metadata": {"generateName": f"{name}-", "namespace": ns, "labels": labels,
                                      "ownerReferences": [owner]},
                         "addressType": "IPv4", "endpoints": eps, "ports": ports}
            created = await self.client.create("discovery.k8s.io/endpointslices", ns, body, field_manager=COMPONENT)
            # In process the informer may have shown the slice before create() returned: then
            # it is not remembered (nothing would ever forget it, a copy per Service forever).
            if self.slices.get(ns, created["metadata"]["name"]) is None:
                self._created.setdefault(key, {})[created["metadata"]["name"]] = created
        for sname in unmatched:
            await self.client.delete("discovery.k8s.io/endpointslices", ns, sname)
            self._forget_created(key, sname)

    def _forget_created(self, key: str, name: str) -> None:
        created = self._created.get(key)
        if created is not None:
            created.pop(name, None)
            if not created:
                del self._created[key]

    async def _write_slice(self, cur: Obj, ports: list[Obj], eps: list[Obj], labels: dict[str, str], owner: Obj) -> None:
        m = cur["metadata"]
        if (_ports_of(cur) == ports and (cur.get("endpoints") or []) == eps and (m.get("labels") or {}) == labels
                and cur.get("addressType") == "IPv4" and owner in (m.get("ownerReferences") or [])):
            return
        upd = copy.deepcopy(cur)
        upd["metadata"]["labels"] = labels
        refs = [r for r in m.get("ownerReferences") or [] if r.get("uid") != owner["uid"]]
        upd["metadata"]["ownerReferences"] = refs + [owner]
        upd["endpoints"], upd["ports"] = eps, ports
        await self.client.update("discovery.k8s.io/endpointslices", m["namespace"], m["name"], upd, field_manager=COMPONENT)


def _ports_of(s: Obj) -> list[Any]:
    return list(s.get("ports") or [])
