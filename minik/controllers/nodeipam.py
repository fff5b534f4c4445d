"""Node IPAM: every Node gets its own pod subnet of the cluster CIDR in spec.podCIDR(s).

Role: kube-controller-manager's range allocator (`--allocate-node-cidrs`). Each Node without a
podCIDR gets the lowest free block of the cluster CIDR (a /24 of an IPv4 range, a /64 of an IPv6
one; the whole range when it is already that small), so the first node of a fresh cluster gets
10.42.0.0/24 as before. The allocation lives on the Node object only: the used set is re-derived
from the Nodes at every sync, so it survives restarts and a block is free again once its Node is
deleted. A podCIDR, once set, is never changed (Kubernetes forbids it too); a Node whose podCIDR
lies outside the cluster CIDR keeps it and takes nothing from the range.
`plan` is pure; `NodeIpamController` only patches. One worker and one queue key, because
allocation is a decision over all Nodes at once; blocks handed out but not yet seen in the cache
stay reserved so a stale cache cannot hand the same block out twice.
Neighbours: `minik.daemon` builds it with the client and a Node informer; the node agent
(`minik.agent.runtime`) waits for spec.podCIDR and builds its pod network on it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer
from minik.machinery.workqueue import WorkQueue

__all__ = ["Allocation", "IpamPlan", "NodeIpamController", "node_block_prefix", "plan"]

log = logging.getLogger("minik.controllers.nodeipam")

COMPONENT = "node-ipam-controller"
_KEY = "nodes"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Allocation:
    node: str
    uid: str
    cidr: str


@dataclass(frozen=True, slots=True)
class IpamPlan:
    allocations: tuple[Allocation, ...]
    exhausted: tuple[str, ...]          # nodes left without a block: the range is full


def node_block_prefix(cluster: Network) -> int:
    """kube-controller-manager's default node CIDR mask sizes: /24 (IPv4), /64 (IPv6)."""
    want = 24 if cluster.version == 4 else 64
    return max(want, cluster.prefixlen)


def _pod_cidr(node: Obj) -> str:
    return str((node.get("spec") or {}).get("podCIDR") or "")


def _free_blocks(cluster: Network, used: set[Network]) -> Iterator[Network]:
    for block in cluster.subnets(new_prefix=node_block_prefix(cluster)):
        if not any(block.overlaps(u) for u in used):
            yield block


def plan(cluster_cidr: str, nodes: Sequence[Obj], reserved: Mapping[str, str] | None = None) -> IpamPlan:
    """Blocks for the Nodes that have none, oldest Node first (then by name).

    `reserved` maps node uid → a block already handed out that the Nodes do not show yet."""
    cluster = ipaddress.ip_network(cluster_cidr, strict=False)
    reserved = reserved or {}
    used: set[Network] = set()
    for node in nodes:
        for cidr in (_pod_cidr(node), reserved.get(str(node["metadata"].get("uid", "")), "")):
            if not cidr:
                continue
            try:
                net = ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                continue
            if net.version == cluster.version and net.overlaps(cluster):
                used.add(net)
    wanting = sorted(
        (n for n in nodes
         if not _pod_cidr(n) and not n["metadata"].get("deletionTimestamp")
         and str(n["metadata"].get("uid", "")) not in reserved),
        key=lambda n: (str(n["metadata"].get("creationTimestamp") or ""), str(n["metadata"].get("name", ""))))
    free = _free_blocks(cluster, used)
    allocations: list[Allocation] = []
    exhausted: list[str] = []
    for node in wanting:
        block = next(free, None)
        name = str(node["metadata"].get("name", ""))
        if block is None:
            exhausted.append(name)
            continue
        allocations.append(Allocation(name, str(node["metadata"].get("uid", "")), str(block)))
    return IpamPlan(tuple(allocations), tuple(exhausted))


class NodeIpamController:
    def __init__(self, client: Client, nodes: Informer, cluster_cidr: str, run_informers: bool = True) -> None:
        ipaddress.ip_network(cluster_cidr, strict=False)  # a bad flag fails at construction
        self.client, self.nodes, self.cluster_cidr = client, nodes, cluster_cidr
        self.queue = WorkQueue()
        # uid → block: patched but not yet in the cache.
        self._reserved: dict[str, str] = {}
        nodes.add_handler(self._on_node)
        # run_informers=False when `nodes` is the shared informer the daemon's factory runs.
        self.controller = Controller(COMPONENT, self.queue, self.sync, [nodes], workers=1, run_informers=run_informers)

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None and not _pod_cidr(new):
            self.queue.add(_KEY)

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        nodes = self.nodes.list()
        seen = {str(n["metadata"].get("uid", "")): _pod_cidr(n) for n in nodes}
        # A reservation ends when the cache shows the Node with a block, or without the Node.
        self._reserved = {uid: cidr for uid, cidr in self._reserved.items() if uid in seen and not seen[uid]}
        p = plan(self.cluster_cidr, nodes, self._reserved)
        for name in p.exhausted:
            log.warning("node %s: no pod CIDR left in %s", name, self.cluster_cidr)
        for a in p.allocations:
            body = {"metadata": {"uid": a.uid}, "spec": {"podCIDR": a.cidr, "podCIDRs": [a.cidr]}}
            try:
                await self.client.patch("nodes", "", a.node, body, field_manager=COMPONENT)
            except ClientError as e:
                if e.not_found or e.conflict:
                    continue  # deleted (or replaced by a new Node of that name): the next event decides
                raise
            self._reserved[a.uid] = a.cidr
            log.info("node %s: pod CIDR %s", a.node, a.cidr)
        return None
