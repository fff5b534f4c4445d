"""The cross-node pod network of this node: routes (host-gw) or a VXLAN overlay to every other
node's podCIDR, kept from the Node objects (flannel's job).

Role: reads the shared `nodes` informer; for vxlan it creates the device once another node
exists, publishes its MAC in this Node's `minik.io/vxlan-vtep-mac` annotation (written only when
it changes: an idle cluster writes nothing) and plans FDB/neighbour/route entries from the other
nodes' InternalIP, podCIDR and annotation (`minik.net.podroutes.plan`, pure). Runs on the server's
node and on every joined agent.
Neighbours: `minik.net.podroutes` (plan + netlink applier), `minik.machinery.informers`.
"""

from __future__ import annotations

import asyncio
import logging

from minik.client import Client, Obj
from minik.machinery.informers import InformerFactory
from minik.net.podroutes import PeerNode, Plan, PodRoutesApplier, plan

log = logging.getLogger(__name__)

VTEP_ANNOTATION = "minik.io/vxlan-vtep-mac"


def peer_of(node: Obj) -> PeerNode:
    m, spec, status = node.get("metadata") or {}, node.get("spec") or {}, node.get("status") or {}
    ip = next((a.get("address", "") for a in status.get("addresses") or [] if a.get("type") == "InternalIP"), "")
    return PeerNode(str(m.get("name", "")), str(ip), str(spec.get("podCIDR") or ""),
                    str((m.get("annotations") or {}).get(VTEP_ANNOTATION, "")))


class PodRoutes:
    def __init__(self, informers: InformerFactory, client: Client, node_name: str, backend: str,
                 cluster_cidr: str, device: str = "minik.1") -> None:
        self.client, self.node_name, self.backend = client, node_name, backend
        self.nodes = informers.informer("nodes")
        self.applier = PodRoutesApplier(backend, cluster_cidr, device)
        self._wake = asyncio.Event()
        self.nodes.add_handler(lambda old, new: self._wake.set())
        self._mac = ""
        self.last: Plan | None = None

    async def run(self) -> None:
        await self.nodes.wait_synced()
        while True:
            self._wake.clear()
            await self.sync()
            await self._wake.wait()

    async def sync(self) -> None:
        peers = [peer_of(n) for n in self.nodes.list()]
        me = next((p for p in peers if p.name == self.node_name), None)
        others = [p for p in peers if p.name != self.node_name and p.pod_cidr]
        if me is None or not me.pod_cidr:
            return
        if self.backend == "vxlan" and others and me.node_ip:
            if not self._mac:
                self._mac = await self.applier.ensure_vxlan(me.pod_cidr, me.node_ip)
                log.info("vxlan device %s up (VTEP MAC %s)", self.applier.device, self._mac)
            if me.vtep_mac != self._mac:
                await self.client.patch("nodes", "", self.node_name,
                                        {"metadata": {"annotations": {VTEP_ANNOTATION: self._mac}}})
        p = plan(self.backend, self.node_name, others)
        if p != self.last:
            await self.applier.apply(p)
            log.info("pod network (%s): routes to %d other node(s)", self.backend, len(p.routes))
            self.last = p
