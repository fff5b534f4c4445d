"""APIServices as kube-apiserver keeps them: one `Local` APIService per served group-version.

Role: kube-apiserver's autoregistration. Every group-version minik serves itself (built-in kinds,
established CRDs and the resource metrics API `v1beta1.metrics.k8s.io`) gets an APIService named
`<version>.<group>` (`v1.` for the core group) with no `spec.service` and
`Available=True, reason Local`; they are recreated when deleted and removed when a CRD's group
goes away (only the ones marked `kube-aggregator.kubernetes.io/automanaged`). minik does not proxy
aggregated API servers: a user's APIService that names a Service is kept and shown
`Available=False` with the reason, so `kubectl get apiservices` says plainly why.
`plan` is pure; the controller writes what it returns.
Neighbours: `minik.daemon` gives it the served group-versions (the registry, CRDs included) and
the shared apiservices/services informers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.apiservice")

COMPONENT = "apiservice-controller"
RESOURCE = "apiregistration.k8s.io/apiservices"
AUTOMANAGED = "kube-aggregator.kubernetes.io/automanaged"
_KEY = "apiservices"

# kube-apiserver's priorities for the built-in group-versions (group → minimum, version priority).
_PRIORITY: Mapping[str, tuple[int, int]] = {
    "": (18000, 1), "apiregistration.k8s.io": (18000, 15), "apps": (17800, 15), "events.k8s.io": (17750, 15),
    "authentication.k8s.io": (17700, 15), "authorization.k8s.io": (17600, 15), "autoscaling": (17500, 15),
    "batch": (17400, 15), "certificates.k8s.io": (17300, 15), "networking.k8s.io": (17200, 15),
    "policy": (17100, 15), "rbac.authorization.k8s.io": (17000, 15), "storage.k8s.io": (16800, 15),
    "apiextensions.k8s.io": (16700, 15), "admissionregistration.k8s.io": (16700, 15),
    "scheduling.k8s.io": (16600, 15), "coordination.k8s.io": (16500, 15), "node.k8s.io": (16300, 15),
    "discovery.k8s.io": (16200, 15), "flowcontrol.apiserver.k8s.io": (16100, 21), "metrics.k8s.io": (100, 100),
}
_VERSION_PRIORITY = {("autoscaling", "v2"): 30, ("autoscaling", "v1"): 15}


def apiservice_name(group: str, version: str) -> str:
    return f"{version}.{group}"


def local_apiservice(group: str, version: str, builtin: bool) -> Obj:
    minimum, vprio = _PRIORITY.get(group, (1000, 100))
    vprio = _VERSION_PRIORITY.get((group, version), vprio)
    spec: Obj = {"version": version, "groupPriorityMinimum": minimum, "versionPriority": vprio}
    if group:
        spec["group"] = group
    return {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": apiservice_name(group, version), "labels": {AUTOMANAGED: "onstart" if builtin else "true"}},
            "spec": spec}


@dataclass(frozen=True, slots=True)
class Condition:
    status: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    create: tuple[Obj, ...]
    delete: tuple[str, ...]
    status: tuple[tuple[str, Condition], ...]


def availability(svc: Obj, services: Mapping[tuple[str, str], Obj]) -> Condition:
    ref = (svc.get("spec") or {}).get("service")
    if not isinstance(ref, dict):
        return Condition("True", "Local", "Local APIServices are always available")
    ns, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
    if (ns, name) not in services:
        return Condition("False", "ServiceNotFound", f'service/{name} in "{ns}" is not present')
    return Condition("False", "FailedDiscoveryCheck",
                     "minik does not proxy aggregated API servers; serve this API from a CRD or run the server outside minik")


def _condition(obj: Obj) -> Condition | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == "Available":
            return Condition(str(c.get("status", "")), str(c.get("reason", "")), str(c.get("message", "")))
    return None


def plan(served: Mapping[tuple[str, str], bool], existing: Sequence[Obj], services: Mapping[tuple[str, str], Obj]) -> Plan:
    """`served`: (group, version) → built-in; `existing`: the APIServices; `services`: (ns, name) → Service."""
    by_name = {str(o["metadata"].get("name", "")): o for o in existing}
    want = {apiservice_name(g, v): (g, v, b) for (g, v), b in served.items()}
    create = tuple(local_apiservice(g, v, b) for name, (g, v, b) in sorted(want.items()) if name not in by_name)
    delete = tuple(name for name, o in sorted(by_name.items())
                   if name not in want and ((o["metadata"].get("labels") or {}).get(AUTOMANAGED) == "true")
                   and not isinstance((o.get("spec") or {}).get("service"), dict))
    status: list[tuple[str, Condition]] = []
    for name, o in sorted(by_name.items()):
        if name in delete or o["metadata"].get("deletionTimestamp"):
            continue
        cond = availability(o, services)
        if _condition(o) != cond:
            status.append((name, cond))
    return Plan(create, delete, tuple(status))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class APIServiceController:
    def __init__(self, client: Client, apiservices: Informer, services: Informer,
                 served: Callable[[], Mapping[tuple[str, str], bool]], crds: Informer | None = None,
                 run_informers: bool = True) -> None:
        self.client, self.apiservices, self.services, self.served = client, apiservices, services, served
        self.queue = WorkQueue()
        informers = [apiservices, services]
        if crds is not None:
            informers.append(crds)
        for inf in informers:
            if inf is not services:
                inf.add_handler(lambda old, new: self.queue.add(_KEY))
        services.add_handler(self._on_service)
        self.controller = Controller(COMPONENT, self.queue, self.sync, informers, workers=1, run_informers=run_informers)

    async def run(self) -> None:
        self.queue.add(_KEY)
        await self.controller.run()

    def _referenced(self) -> set[tuple[str, str]]:
        """(namespace, name) of the Services the APIServices point at (a handful at most)."""
        out: set[tuple[str, str]] = set()
        for o in self.apiservices.list():
            ref = (o.get("spec") or {}).get("service")
            if isinstance(ref, dict):
                out.add((str(ref.get("namespace") or ""), str(ref.get("name") or "")))
        return out

    def _on_service(self, old: Obj | None, new: Obj | None) -> None:
        # Only Services an APIService points at matter: with thousands of Services, a sync per
        # Service event (each over every Service) made creating them quadratic.
        m = (new if new is not None else old or {}).get("metadata") or {}
        if (str(m.get("namespace") or ""), str(m.get("name") or "")) in self._referenced():
            self.queue.add(_KEY)

    async def sync(self, key: str) -> float | None:
        services = {}
        for ns, name in self._referenced():
            svc = self.services.get(ns, name)
            if svc is not None:
                services[(ns, name)] = svc
        p = plan(self.served(), self.apiservices.list(), services)
        for obj in p.create:
            try:
                await self.client.create(RESOURCE, "", obj, field_manager=COMPONENT)
            except ClientError as e:
                if e.code != 409:
                    raise
        for name in p.delete:
            await self.client.delete(RESOURCE, "", name)
        for name, cond in p.status:
            body = {"status": {"conditions": [{"type": "Available", "status": cond.status, "reason": cond.reason,
                                               "message": cond.message, "lastTransitionTime": _now()}]}}
            try:
                await self.client.patch(RESOURCE, "", name, body, subresource="status", field_manager=COMPONENT)
            except ClientError as e:
                if not (e.not_found or e.conflict):
                    raise
        # A CRD becoming established changes what is served without an event here: look again soon.
        return 30.0
