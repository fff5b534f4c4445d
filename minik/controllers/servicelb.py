"""ServiceLB: the built-in load balancer for `type: LoadBalancer` Services (k3s's servicelb, without
helper pods).

A LoadBalancer Service (no `loadBalancerClass`) gets `status.loadBalancer.ingress` = the InternalIP
of every Ready node; the node proxies (`minik.agent.proxier`) then serve its ports on those
addresses (and 127.0.0.1) with the same nftables rules as NodePorts. A port that is already taken
leaves the Service pending (no ingress, so no rules either) with a Warning event that says by
what: another LoadBalancer Service holding the same port/protocol (the one that got it first
keeps it: already published, else older, else by name), or a process on the host listening on
it. Pending Services are looked at again periodically and whenever another Service changes.
Services that stop being LoadBalancers lose their ingress.
`plan(...)` is pure; `sync` reads the caches, plans and writes the status subresource.
Neighbours: shared informers on services and nodes (`minik.machinery`), `minik.machinery.events`;
the daemon injects `listening` (from `minik.net.listeners`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from minik.client import Client, Obj
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.servicelb")

COMPONENT = "service-lb-controller"
RECHECK = 10.0
Listening = Callable[[], set[tuple[str, int]]]


@dataclass(frozen=True, slots=True)
class Plan:
    ingress: tuple[str, ...]       # addresses to publish (empty: none / pending)
    conflict: str = ""             # why it is pending ("" when it is not)
    reason: str = "PortInUse"      # the Warning event's reason when pending


def is_ours(svc: Obj) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


def ingress_of(svc: Obj) -> tuple[str, ...]:
    lb = (svc.get("status") or {}).get("loadBalancer") or {}
    return tuple(str(i.get("ip")) for i in lb.get("ingress") or [] if i.get("ip"))


def ports_of(svc: Obj) -> list[tuple[int, str]]:
    return [(int(p["port"]), str(p.get("protocol") or "TCP")) for p in (svc.get("spec") or {}).get("ports") or []
            if isinstance(p.get("port"), int)]


def node_addresses(nodes: list[Obj]) -> tuple[str, ...]:
    out = []
    for n in nodes:
        st = n.get("status") or {}
        if not any(c.get("type") == "Ready" and c.get("status") == "True" for c in st.get("conditions") or []):
            continue
        if (n.get("spec") or {}).get("unschedulable"):
            continue
        out += [a["address"] for a in st.get("addresses") or [] if a.get("type") == "InternalIP" and a.get("address")]
    return tuple(sorted(set(out)))


def _precedes(a: Obj, b: Obj) -> bool:
    """Whether LoadBalancer `a` has the better claim to a port than `b`."""
    pa, pb = bool(ingress_of(a)), bool(ingress_of(b))
    if pa != pb:
        return pa
    ta, tb = a["metadata"].get("creationTimestamp", ""), b["metadata"].get("creationTimestamp", "")
    if ta != tb:
        return bool(ta < tb)
    return object_key(a) < object_key(b)


def plan(svc: Obj, others: list[Obj], nodes: list[Obj], listening: set[tuple[str, int]]) -> Plan:
    """What `svc`'s load balancer status should be (pure)."""
    if not is_ours(svc):
        return Plan(())
    me = object_key(svc)
    for port, proto in ports_of(svc):
        for other in others:
            if object_key(other) == me or not is_ours(other) or not _precedes(other, svc):
                continue
            if (port, proto) in ports_of(other):
                return Plan((), f"port {port}/{proto} is already in use by LoadBalancer Service {object_key(other)}")
        # A host process on the port: only checked before the Service has the port, so a process
        # started later does not take an established Service's port away.
        if not ingress_of(svc) and (proto, port) in listening:
            return Plan((), f"port {port}/{proto} is already in use by a process on the node")
    addrs = node_addresses(nodes)
    if not addrs:
        return Plan((), "no Ready node to serve it", "NoReadyNodes")
    return Plan(addrs)


class ServiceLBController:
    def __init__(self, client: Client, informers: InformerFactory, listening: Listening,
                 recorder: EventRecorder | None = None, workers: int = 1) -> None:
        self.client = client
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self.listening = listening
        self.services = informers.informer("services")
        self.nodes = informers.informer("nodes")
        self.queue = WorkQueue()
        self._reported: dict[str, str] = {}
        self.services.add_handler(self._on_service)
        self.nodes.add_handler(lambda old, new: self._enqueue_all())
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.services, self.nodes], workers,
                                     run_informers=False)

    async def run(self) -> None:
        await self.controller.run()

    def _on_service(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        if any(o is not None and (is_ours(o) or ingress_of(o)) for o in (old, new)):
            # Any LoadBalancer change may free or take a port another one is waiting for.
            self._enqueue_all()

    def _enqueue_all(self) -> None:
        for s in self.services.list():
            if is_ours(s) or ingress_of(s):
                self.queue.add(object_key(s))

    async def sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        if svc is None:
            self._reported.pop(key, None)
            return None
        listening = self.listening() if is_ours(svc) and not ingress_of(svc) else set()
        p = plan(svc, self.services.list(), self.nodes.list(), listening)
        current = ingress_of(svc)
        if current != p.ingress and (is_ours(svc) or current):
            # `ingress: null` removes the list in a merge patch (`{}` would keep it).
            body = {"status": {"loadBalancer": {"ingress": [{"ip": a, "ipMode": "VIP"} for a in p.ingress]
                                                if p.ingress else None}}}
            await self.client.patch("services", ns, name, body, subresource="status", field_manager=COMPONENT)
            if p.ingress:
                log.info("servicelb: %s served on %s", key, ", ".join(p.ingress))
                await self.recorder.event(svc, "Normal", "EnsuredLoadBalancer",
                                          f"Serving ports on node addresses {', '.join(p.ingress)}")
        if p.conflict:
            if self._reported.get(key) != p.conflict:
                self._reported[key] = p.conflict
                log.info("servicelb: %s pending: %s", key, p.conflict)
                await self.recorder.event(svc, "Warning", p.reason, f"Cannot serve the load balancer: {p.conflict}")
            return RECHECK
        self._reported.pop(key, None)
        return None
