"""Routes to other nodes' pod subnets: host-gw routes or a VXLAN overlay, as flannel does.

Role: `plan()` (pure) turns the other nodes (name, InternalIP, podCIDR, VTEP MAC) into the
kernel state this node needs; `PodRoutesApplier` makes the kernel match it with pyroute2.
- host-gw: `<podCIDR> via <node IP>` for each other node (all nodes on one L2 segment).
- vxlan: one device (`minik.1` by default, VNI 1, UDP 8472, MTU = uplink MTU − 50, address
  `<own podCIDR>.0/32`); per other node an FDB entry `<its VTEP MAC> dst <its node IP>`, a
  permanent neighbour `<its podCIDR>.0 lladdr <its VTEP MAC>` and a route
  `<its podCIDR> via <its podCIDR>.0 dev minik.1 onlink`.
Routes are tagged with their own routing protocol number (`RTPROT`) so stale ones are found and
removed after a restart, and only inside this cluster's CIDR: another minik on the same host
(tests run many) keeps its routes.
Neighbours: `minik.agent.podroutes` (the reconciler on Node objects) drives it; imports nothing
else from minik.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

log = logging.getLogger(__name__)

RTPROT = 115           # routes minik's pod network owns
VXLAN_PORT = 8472
VXLAN_VNI = 1
VXLAN_OVERHEAD = 50
BACKENDS = ("vxlan", "host-gw")


@dataclass(frozen=True, slots=True)
class PeerNode:
    name: str
    node_ip: str
    pod_cidr: str
    vtep_mac: str = ""      # vxlan only: the MAC of that node's VXLAN device


@dataclass(frozen=True, slots=True)
class Route:
    dst: str                # a podCIDR
    gateway: str
    onlink: bool = False    # vxlan: the gateway is the peer's VTEP address on the device


@dataclass(frozen=True, slots=True)
class Neighbour:
    ip: str
    mac: str


@dataclass(frozen=True, slots=True)
class Fdb:
    mac: str
    dst: str


@dataclass(frozen=True, slots=True)
class Plan:
    routes: frozenset[Route]
    neighbours: frozenset[Neighbour] = frozenset()
    fdb: frozenset[Fdb] = frozenset()


def vtep_address(pod_cidr: str) -> str:
    return str(ipaddress.ip_network(pod_cidr, strict=False).network_address)


def plan(backend: str, own_name: str, peers: list[PeerNode]) -> Plan:
    routes: set[Route] = set()
    neigh: set[Neighbour] = set()
    fdb: set[Fdb] = set()
    for p in peers:
        if p.name == own_name or not p.node_ip or not p.pod_cidr:
            continue
        if backend == "host-gw":
            routes.add(Route(p.pod_cidr, p.node_ip))
        elif p.vtep_mac:
            vtep = vtep_address(p.pod_cidr)
            routes.add(Route(p.pod_cidr, vtep, onlink=True))
            neigh.add(Neighbour(vtep, p.vtep_mac))
            fdb.add(Fdb(p.vtep_mac, p.node_ip))
    return Plan(frozenset(routes), frozenset(neigh), frozenset(fdb))


class PodRoutesApplier:
    """Makes the kernel match a Plan. Blocking netlink runs in a thread."""

    def __init__(self, backend: str, cluster_cidr: str, device: str = "minik.1") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"pod network backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
        self.backend, self.device = backend, device
        self.cluster = ipaddress.ip_network(cluster_cidr, strict=False)

    async def ensure_vxlan(self, own_pod_cidr: str, node_ip: str) -> str:
        """Create (or keep) the VXLAN device; its MAC, which other nodes need."""
        return await asyncio.to_thread(self._ensure_vxlan, own_pod_cidr, node_ip)

    async def apply(self, p: Plan) -> None:
        await asyncio.to_thread(self._apply, p)

    async def remove(self) -> None:
        await asyncio.to_thread(self._apply, Plan(frozenset()))
        if self.backend == "vxlan":
            await asyncio.to_thread(self._delete_device)

    # ---- blocking -------------------------------------------------------------------------------
    def _ensure_vxlan(self, own_pod_cidr: str, node_ip: str) -> str:
        with IPRoute() as ipr:
            uplink, mtu = _uplink(ipr, node_ip)
            idx = ipr.link_lookup(ifname=self.device)
            if not idx:
                ipr.link("add", ifname=self.device, kind="vxlan", vxlan_id=VXLAN_VNI, vxlan_port=VXLAN_PORT,
                         vxlan_local=node_ip, vxlan_link=uplink, vxlan_learning=0, mtu=max(mtu - VXLAN_OVERHEAD, 576))
                idx = ipr.link_lookup(ifname=self.device)
            i = idx[0]
            vtep = vtep_address(own_pod_cidr)
            have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=i, family=2)}
            for a in have - {vtep}:
                ipr.addr("del", index=i, address=a, prefixlen=32)
            if vtep not in have:
                ipr.addr("add", index=i, address=vtep, prefixlen=32)
            ipr.link("set", index=i, state="up")
            link = ipr.get_links(i)[0]
            return str(link.get_attr("IFLA_ADDRESS"))

    def _delete_device(self) -> None:
        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=self.device)
            if idx:
                try:
                    ipr.link("del", index=idx[0])
                except NetlinkError:
                    pass

    def _apply(self, p: Plan) -> None:
        with IPRoute() as ipr:
            dev = None
            if self.backend == "vxlan":
                found = ipr.link_lookup(ifname=self.device)
                dev = found[0] if found else None
            if dev is not None:
                self._apply_fdb(ipr, dev, p)
                self._apply_neighbours(ipr, dev, p)
            have: dict[str, Any] = {}
            for r in ipr.get_routes(family=2, proto=RTPROT):
                dst = f"{r.get_attr('RTA_DST')}/{r['dst_len']}"
                try:
                    if ipaddress.ip_network(dst).subnet_of(self.cluster):  # type: ignore[arg-type]
                        have[dst] = r
                except (ValueError, TypeError):
                    continue
            want = {r.dst: r for r in p.routes}
            for dst, r in have.items():
                w = want.get(dst)
                if w is None or r.get_attr("RTA_GATEWAY") != w.gateway:
                    try:
                        ipr.route("del", dst=dst, proto=RTPROT)
                    except NetlinkError:
                        pass
                    have_gw = None
                else:
                    have_gw = w.gateway
                if have_gw is not None:
                    want.pop(dst)
            for w in want.values():
                kw: dict[str, Any] = {"dst": w.dst, "gateway": w.gateway, "proto": RTPROT}
                if w.onlink:
                    if dev is None:
                        continue
                    kw.update(oif=dev, flags=4)   # RTNH_F_ONLINK
                try:
                    ipr.route("replace", **kw)
                except NetlinkError as e:
                    log.warning("pod route %s via %s: %s", w.dst, w.gateway, e)

    def _apply_fdb(self, ipr: Any, dev: int, p: Plan) -> None:
        want = {(f.mac, f.dst) for f in p.fdb}
        have = set()
        for e in ipr.fdb("dump", ifindex=dev):
            mac, dst = e.get_attr("NDA_LLADDR"), e.get_attr("NDA_DST")
            if dst and mac and mac != "00:00:00:00:00:00":
                have.add((mac, dst))
        for mac, dst in have - want:
            try:
                ipr.fdb("del", ifindex=dev, lladdr=mac, dst=dst)
            except NetlinkError:
                pass
        for mac, dst in want - have:
            try:
                ipr.fdb("append", ifindex=dev, lladdr=mac, dst=dst)
            except NetlinkError as e:
                log.warning("vxlan fdb %s -> %s: %s", mac, dst, e)

    def _apply_neighbours(self, ipr: Any, dev: int, p: Plan) -> None:
        want = {(n.ip, n.mac) for n in p.neighbours}
        have = set()
        for n in ipr.get_neighbours(ifindex=dev, family=2):
            if n.get_attr("NDA_DST") and n.get_attr("NDA_LLADDR"):
                have.add((n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR")))
        for ip, mac in have - want:
            try:
                ipr.neigh("del", dst=ip, lladdr=mac, ifindex=dev)
            except NetlinkError:
                pass
        for ip, mac in want - have:
            try:
                ipr.neigh("replace", dst=ip, lladdr=mac, ifindex=dev, state=0x80)   # NUD_PERMANENT
            except NetlinkError as e:
                log.warning("vxlan neighbour %s %s: %s", ip, mac, e)


def _uplink(ipr: Any, node_ip: str) -> tuple[int, int]:
    """The interface holding `node_ip` and its MTU."""
    for a in ipr.get_addr(family=2):
        if a.get_attr("IFA_ADDRESS") == node_ip:
            link = ipr.get_links(a["index"])[0]
            return int(a["index"]), int(link.get_attr("IFLA_MTU") or 1500)
    raise OSError(f"no interface holds the node address {node_ip}")
