"""The node's side of the pod network across nodes: Nodes in, VXLAN/host-gw entries out.

Role: runs on every node (the server's own and, with `minik agent`, every joined one). It reads
the Nodes from the shared informers, publishes this node's VTEP MAC as the Node annotation
`minik.io/vtep-mac` (flannel publishes its `flannel.alpha.coreos.com/backend-data` the same way),
and reconciles the kernel to `minik.net.overlay.plan(...)` whenever a Node changes, and every
`resync` seconds to repair drift (a netlink read; nothing is written when nothing differs).
One queue key: the plan is a decision over all Nodes at once.
Neighbours: `minik.net.overlay` (plan, diff, kernel I/O), `minik.machinery.controller` (the
loop), `minik.client` (the annotation patch); `start_overlay` is the one call that starts it, from
`minik.daemon._start_overlay` for the server's node and from `minik agent` for a joined one.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable

from minik.client import Client, ClientError, Obj
from minik.config import AgentConfig
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor
from minik.machinery.workqueue import WorkQueue
from minik.net.overlay import (
    VTEP_MAC_ANNOTATION, NodeNet, Overlay, OverlayError, OverlaySettings, normalize_mac, parse_backend, plan,
    vtep_mac,
)

__all__ = ["OverlayAgent", "node_net", "node_nets", "overlay_settings", "start_overlay"]

log = logging.getLogger(__name__)

COMPONENT = "pod-network-overlay"
_KEY = "overlay"


def internal_ip(node: Obj) -> str:
    for a in ((node.get("status") or {}).get("addresses") or []):
        if isinstance(a, dict) and a.get("type") == "InternalIP" and a.get("address"):
            return str(a["address"])
    return ""


def node_net(node: Obj, ip_override: str = "") -> NodeNet | None:
    """The overlay's view of a Node; None while it lacks an IPv4 InternalIP or a podCIDR."""
    meta = node.get("metadata") or {}
    try:
        ip = ipaddress.IPv4Address(ip_override or internal_ip(node))
        cidr = ipaddress.IPv4Network(str((node.get("spec") or {}).get("podCIDR") or ""), strict=False)
    except ValueError:
        return None
    mac = str((meta.get("annotations") or {}).get(VTEP_MAC_ANNOTATION) or "")
    try:
        mac = normalize_mac(mac) if mac else ""
    except OverlayError:
        log.warning("node %s: ignoring bad %s annotation %r", meta.get("name"), VTEP_MAC_ANNOTATION, mac)
        mac = ""
    return NodeNet(str(meta.get("name", "")), ip, cidr, mac)


def node_nets(nodes: Iterable[Obj]) -> list[NodeNet]:
    return [n for n in (node_net(o) for o in nodes) if n is not None]


class OverlayAgent:
    def __init__(self, client: Client, nodes: Informer, node_name: str, settings: OverlaySettings,
                 node_ip: str = "", overlay: Overlay | None = None, resync: float = 60.0,
                 run_informers: bool = False) -> None:
        self.client, self.nodes, self.node_name = client, nodes, node_name
        self.settings, self.node_ip, self.resync = settings, node_ip, resync
        self.overlay = overlay or Overlay(settings)
        self.mac = vtep_mac(node_name)
        self.queue = WorkQueue()
        self._last_skipped: tuple[str, ...] = ()
        nodes.add_handler(self._on_node)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [nodes], workers=1,
                                     run_informers=run_informers)

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        self.queue.add(_KEY)

    async def run(self) -> None:
        self.queue.add(_KEY)
        try:
            await self.controller.run()
        finally:
            await self.overlay.close()

    async def sync(self, key: str) -> float | None:
        me = self.nodes.get("", self.node_name)
        if me is None:
            return self.resync
        local = node_net(me, self.node_ip)
        if local is None:
            log.debug("node %s has no InternalIP or podCIDR yet", self.node_name)
            return None  # its next update requeues us
        if self.settings.backend == "vxlan":
            await self._publish_mac(me)
        local = NodeNet(local.name, local.ip, local.pod_cidr, self.mac)
        desired = plan(self.settings, local, node_nets(self.nodes.list()))
        if desired.skipped != self._last_skipped:
            for why in desired.skipped:
                log.info("pod network: no route to node %s", why)
            self._last_skipped = desired.skipped
        changes = await self.overlay.reconcile(desired)
        if not changes.empty:
            log.info("pod network (%s): %d routes added, %d removed; %d FDB/neighbour entries added, %d removed",
                     self.settings.backend, len(changes.add_routes), len(changes.del_routes),
                     len(changes.add_fdb) + len(changes.add_neigh), len(changes.del_fdb) + len(changes.del_neigh))
        return self.resync

    async def _publish_mac(self, me: Obj) -> None:
        have = ((me.get("metadata") or {}).get("annotations") or {}).get(VTEP_MAC_ANNOTATION)
        if have == self.mac:
            return
        try:
            await self.client.patch("nodes", "", self.node_name,
                                    {"metadata": {"annotations": {VTEP_MAC_ANNOTATION: self.mac}}},
                                    field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise


def overlay_settings(cfg: AgentConfig) -> OverlaySettings:
    return OverlaySettings(parse_backend(cfg.pod_network_backend), cfg.vxlan_device, cfg.vxlan_vni, cfg.vxlan_port,
                           ipaddress.IPv4Network(cfg.cluster_cidr, strict=False))


def start_overlay(supervisor: Supervisor, client: Client, informers: InformerFactory, node_name: str,
                  cfg: AgentConfig) -> OverlayAgent | None:
    """Start this node's side of the pod network across nodes (task `pod-network-overlay`); None
    with `--pod-network-backend none`. `informers` is the process's shared factory."""
    settings = overlay_settings(cfg)
    if settings.backend == "none":
        log.info("pod network across nodes: backend none, not managed")
        return None
    agent = OverlayAgent(client, informers.informer("nodes"), node_name, settings, node_ip=cfg.node_ip)
    supervisor.spawn("pod-network-overlay", agent.run)
    return agent
