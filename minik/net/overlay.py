"""The pod network across nodes: a flannel-like VXLAN overlay, or direct `host-gw` routes.

Role: make every other node's pod subnet reachable from this node. With `vxlan` (the default,
as flannel's), one VXLAN device (`minik.1`, VNI 1, UDP 8472, local VTEP on the node's
InternalIP, learning off, MTU = uplink MTU − 50) carries pod traffic between nodes; the device
holds the node's podCIDR network address as a /32 (its VTEP address), and for every OTHER node
three entries are kept, exactly as flannel keeps them:
  - FDB: remote VTEP MAC → remote node IP (where to send the encapsulated frame),
  - neighbour: remote VTEP address (its podCIDR network address) → remote VTEP MAC,
  - route: remote podCIDR via the remote VTEP address, onlink, dev minik.1.
With `host-gw` the remote podCIDR is routed via the remote node IP (nodes share one L2 segment).
The VTEP MAC is derived from the node name (locally administered), so a recreated device (after
a reboot) keeps the MAC that the other nodes already know.

`plan(settings, local, nodes)` is pure and gives the desired entries; `diff(desired, observed)`
is pure and gives the changes; `Overlay` observes the kernel (pyroute2) and applies the changes,
so reconciling twice does nothing, a restart picks the existing entries up, and entries of
deleted nodes go. Routes minik owns carry their own route protocol number, so the reconcile
never touches routes it did not make. Pod-to-pod traffic across nodes is never masqueraded:
`minik.net.nft` only masquerades traffic leaving the cluster CIDR.
An `Overlay` may be bound to a network namespace path (tests play several hosts that way).

Neighbours: driven by `minik.agent.overlay` (Nodes from the shared informers → `NodeNet`);
`pod_mtu` sizes the pod bridge/veths in `minik.agent.runtime`. Imports nothing else from minik.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import hashlib
import ipaddress
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from minik.net.rtnl import IPRoute
from minik.net.rtnl import NetlinkError as _PyrNetlinkError

log = logging.getLogger(__name__)

Backend = Literal["vxlan", "host-gw", "none"]
BACKENDS: tuple[Backend, ...] = ("vxlan", "host-gw", "none")
VXLAN_OVERHEAD = 50              # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14
ROUTE_PROTOCOL = 77              # rtm_protocol marking minik's routes (unassigned in rt_protos)
VTEP_MAC_ANNOTATION = "minik.io/vtep-mac"
_ONLINK = 0x4                    # RTNH_F_ONLINK
_NUD_PERMANENT = 0x80
_CLONE_NEWNET = 0x40000000
_T = TypeVar("_T")


class OverlayError(Exception):
    """The overlay could not be set up (bad settings, or the kernel refused)."""


@dataclass(frozen=True, slots=True)
class OverlaySettings:
    backend: Backend = "vxlan"
    device: str = "minik.1"
    vni: int = 1
    port: int = 8472
    cluster_cidr: ipaddress.IPv4Network = ipaddress.IPv4Network("10.42.0.0/16")
    route_protocol: int = ROUTE_PROTOCOL

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise OverlayError(f"unknown pod network backend {self.backend!r} (one of {', '.join(BACKENDS)})")
        if not 1 <= len(self.device) <= 15 or "/" in self.device or " " in self.device:
            raise OverlayError(f"invalid VXLAN device name {self.device!r} (1..15 characters)")
        if not 0 < self.vni < 1 << 24:
            raise OverlayError(f"VXLAN VNI {self.vni} out of range 1..16777215")
        if not 0 < self.port < 1 << 16:
            raise OverlayError(f"VXLAN UDP port {self.port} out of range 1..65535")
        if not 4 < self.route_protocol < 256:
            raise OverlayError(f"route protocol {self.route_protocol} out of range 5..255")


@dataclass(frozen=True, slots=True)
class NodeNet:
    """What the overlay needs of one Node."""

    name: str
    ip: ipaddress.IPv4Address
    pod_cidr: ipaddress.IPv4Network
    vtep_mac: str = ""           # "" until the node has published it


@dataclass(frozen=True, slots=True, order=True)
class Route:
    dst: ipaddress.IPv4Network
    via: ipaddress.IPv4Address
    onlink: bool                 # vxlan: via the remote VTEP address on the device


@dataclass(frozen=True, slots=True, order=True)
class Fdb:
    mac: str
    dst: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True, order=True)
class Neigh:
    ip: ipaddress.IPv4Address
    mac: str


@dataclass(frozen=True, slots=True)
class Device:
    """The local VTEP. `link` is the uplink's interface index (the one holding `local`)."""

    name: str
    vni: int
    port: int
    local: ipaddress.IPv4Address
    mac: str
    address: ipaddress.IPv4Address        # the VTEP address (local podCIDR network address) as /32
    mtu: int | None = None                # filled by the I/O side from the uplink


@dataclass(frozen=True, slots=True)
class Desired:
    device: Device | None = None
    routes: frozenset[Route] = frozenset()
    fdb: frozenset[Fdb] = frozenset()
    neigh: frozenset[Neigh] = frozenset()
    skipped: tuple[str, ...] = ()          # why a node got no entries (for logs)


@dataclass(frozen=True, slots=True)
class Observed:
    device: Device | None = None           # None: no device of that name (or not a vxlan one)
    device_other_kind: bool = False        # a non-vxlan link holds the name: refuse to touch it
    addresses: frozenset[ipaddress.IPv4Interface] = frozenset()
    routes: frozenset[Route] = frozenset()
    fdb: frozenset[Fdb] = frozenset()
    neigh: frozenset[Neigh] = frozenset()


@dataclass(frozen=True, slots=True)
class Changes:
    delete_device: bool = False
    create_device: Device | None = None
    update_device: Device | None = None    # MTU or MAC differs: set in place
    add_address: ipaddress.IPv4Interface | None = None
    del_addresses: tuple[ipaddress.IPv4Interface, ...] = ()
    add_routes: tuple[Route, ...] = ()
    del_routes: tuple[Route, ...] = ()
    add_fdb: tuple[Fdb, ...] = ()
    del_fdb: tuple[Fdb, ...] = ()
    add_neigh: tuple[Neigh, ...] = ()
    del_neigh: tuple[Neigh, ...] = ()

    @property
    def empty(self) -> bool:
        return self == Changes()


def vtep_mac(node_name: str) -> str:
    """A stable, locally administered unicast MAC for a node's VTEP."""
    b = bytearray(hashlib.sha256(node_name.encode()).digest()[:6])
    b[0] = (b[0] & 0xFC) | 0x02
    return ":".join(f"{x:02x}" for x in b)


def vxlan_mtu(uplink_mtu: int) -> int:
    return uplink_mtu - VXLAN_OVERHEAD


def normalize_mac(mac: str) -> str:
    """Lower-case colon form; raises OverlayError on anything that is not a unicast MAC."""
    parts = mac.strip().lower().replace("-", ":").split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdef" for c in p) for p in parts):
        raise OverlayError(f"invalid MAC address {mac!r}")
    if int(parts[0], 16) & 1:
        raise OverlayError(f"{mac!r} is a multicast MAC address")
    return ":".join(parts)


def plan(settings: OverlaySettings, local: NodeNet, nodes: Iterable[NodeNet]) -> Desired:
    """The entries this node should have for the other `nodes` (the local one may be among them)."""
    if settings.backend == "none":
        return Desired()
    device: Device | None = None
    if settings.backend == "vxlan":
        device = Device(settings.device, settings.vni, settings.port, local.ip,
                        local.vtep_mac or vtep_mac(local.name), local.pod_cidr.network_address)
    routes: set[Route] = set()
    fdb: set[Fdb] = set()
    neigh: set[Neigh] = set()
    skipped: list[str] = []
    claimed = _Claims()
    claimed.add(local.pod_cidr, local.name)
    for n in sorted(nodes, key=lambda n: n.name):
        if n.name == local.name:
            continue
        if not n.pod_cidr.subnet_of(settings.cluster_cidr):
            skipped.append(f"{n.name}: podCIDR {n.pod_cidr} is outside the cluster CIDR {settings.cluster_cidr}")
            continue
        clash = claimed.overlapping(n.pod_cidr)
        if clash is not None:
            skipped.append(f"{n.name}: podCIDR {n.pod_cidr} overlaps {clash}'s")
            continue
        if n.ip == local.ip:
            skipped.append(f"{n.name}: has this node's address {n.ip}")
            continue
        if settings.backend == "host-gw":
            routes.add(Route(n.pod_cidr, n.ip, onlink=False))
        else:
            if not n.vtep_mac:
                skipped.append(f"{n.name}: no {VTEP_MAC_ANNOTATION} annotation yet")
                continue
            gw = n.pod_cidr.network_address
            routes.add(Route(n.pod_cidr, gw, onlink=True))
            fdb.add(Fdb(n.vtep_mac, n.ip))
            neigh.add(Neigh(gw, n.vtep_mac))
        claimed.add(n.pod_cidr, n.name)
    return Desired(device, frozenset(routes), frozenset(fdb), frozenset(neigh), tuple(skipped))


class _Claims:
    """Pod CIDRs already routed, by prefix length: an overlap test costs one lookup per prefix
    length in use (all /24 in practice), not one comparison per node."""

    def __init__(self) -> None:
        self._by_len: dict[int, dict[ipaddress.IPv4Network, str]] = {}

    def add(self, cidr: ipaddress.IPv4Network, owner: str) -> None:
        self._by_len.setdefault(cidr.prefixlen, {})[cidr] = owner

    def overlapping(self, cidr: ipaddress.IPv4Network) -> str | None:
        for length, nets in self._by_len.items():
            if length <= cidr.prefixlen:
                owner = nets.get(cidr.supernet(new_prefix=length))
                if owner is not None:
                    return owner
            else:
                owner = next((o for net, o in nets.items() if net.subnet_of(cidr)), None)
                if owner is not None:
                    return owner
        return None


def diff(desired: Desired, observed: Observed) -> Changes:
    """What to do to the kernel so it holds `desired` (pure; both sides are full pictures)."""
    want = desired.device
    have = observed.device
    if observed.device_other_kind and want is not None:
        raise OverlayError(f"{want.name} exists and is not a VXLAN device; refusing to replace it")
    delete_device = have is not None and (
        want is None or (have.vni, have.port, have.local) != (want.vni, want.port, want.local))
    create = want if want is not None and (have is None or delete_device) else None
    update = None
    if want is not None and have is not None and not delete_device and (
            have.mac != want.mac or (want.mtu is not None and have.mtu != want.mtu)):
        update = want
    # Entries on a device that is (re)created start from nothing; routes over it vanish with it.
    fresh = create is not None
    fdb_have = frozenset() if fresh else observed.fdb
    neigh_have = frozenset() if fresh else observed.neigh
    addr_have = frozenset() if fresh else observed.addresses
    routes_have = observed.routes
    if fresh:
        routes_have = frozenset(r for r in routes_have if not r.onlink)
    add_address = None
    del_addresses: tuple[ipaddress.IPv4Interface, ...] = ()
    if want is not None:
        vtep = ipaddress.IPv4Interface(f"{want.address}/32")
        if vtep not in addr_have:
            add_address = vtep
        del_addresses = tuple(sorted(a for a in addr_have if a != vtep))
    # A changed MAC for the same destination is a replace: delete first, then add.
    return Changes(
        delete_device=delete_device,
        create_device=create,
        update_device=update,
        add_address=add_address,
        del_addresses=del_addresses,
        add_routes=tuple(sorted(desired.routes - routes_have)),
        del_routes=tuple(sorted(routes_have - desired.routes)),
        add_fdb=tuple(sorted(desired.fdb - fdb_have)),
        del_fdb=tuple(sorted(fdb_have - desired.fdb)),
        add_neigh=tuple(sorted(desired.neigh - neigh_have)),
        del_neigh=tuple(sorted(neigh_have - desired.neigh)),
    )


@dataclass(frozen=True, slots=True)
class Uplink:
    index: int
    name: str
    mtu: int


class Overlay:
    """Kernel side of the overlay for one node (one network namespace: the host's by default)."""

    def __init__(self, settings: OverlaySettings, netns: str | None = None) -> None:
        self.settings = settings
        self.netns = netns
        # One private thread: netlink calls block, and in a test netns the thread switches
        # namespace for the instant it opens its socket (as `minik.net.bridge` does).
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minik-overlay")
        self._libc = ctypes.CDLL(None, use_errno=True)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def uplink(self, ip: ipaddress.IPv4Address) -> Uplink:
        """The interface holding `ip` (the node's InternalIP): the VTEP's underlay."""
        return await self._run(self._uplink, ip)

    async def observe(self) -> Observed:
        return await self._run(self._observe)

    async def reconcile(self, desired: Desired) -> Changes:
        """Make the kernel hold `desired`; returns what was changed. Entries the kernel refuses
        are logged and retried at the next reconcile (raised as OverlayError after the rest)."""
        return await self._run(self._reconcile, desired)

    async def teardown(self) -> None:
        """Remove the device and every route minik made (tests, uninstall, backend none)."""
        await self.reconcile(Desired())

    # -- blocking implementations -----------------------------------------------------------

    @contextmanager
    def _ipr(self) -> Iterator[Any]:
        if self.netns is None:
            with IPRoute() as ipr:
                yield ipr
            return
        nsfd = os.open(self.netns, os.O_RDONLY | os.O_CLOEXEC)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._setns(nsfd, self.netns)
            try:
                ipr = IPRoute()
            finally:
                self._setns(home, "the host namespace")
        finally:
            os.close(home)
            os.close(nsfd)
        with ipr:
            yield ipr

    def _setns(self, fd: int, what: str) -> None:
        if self._libc.setns(fd, _CLONE_NEWNET) != 0:
            raise OverlayError(f"setns into {what}: {os.strerror(ctypes.get_errno())}")

    def _uplink(self, ip: ipaddress.IPv4Address) -> Uplink:
        with self._ipr() as ipr:
            return _uplink(ipr, ip)

    def _observe(self) -> Observed:
        with self._ipr() as ipr:
            return _observe(ipr, self.settings)

    def _reconcile(self, desired: Desired) -> Changes:
        with self._ipr() as ipr:
            want = desired.device
            if want is not None:
                up = _uplink(ipr, want.local)
                mtu = want.mtu if want.mtu is not None else vxlan_mtu(up.mtu)
                desired = Desired(Device(want.name, want.vni, want.port, want.local, want.mac, want.address, mtu),
                                  desired.routes, desired.fdb, desired.neigh, desired.skipped)
            changes = diff(desired, _observe(ipr, self.settings))
            errors = _apply(ipr, self.settings, changes)
        if errors:
            raise OverlayError("; ".join(errors))
        return changes


def _lookup(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _uplink(ipr: Any, ip: ipaddress.IPv4Address) -> Uplink:
    for a in ipr.addr("dump", family=2):
        if a.get("IFA_ADDRESS") == str(ip) or a.get("IFA_LOCAL") == str(ip):
            index = int(a["index"])
            link = ipr.link("get", index=index)[0]
            return Uplink(index, str(link.get("IFLA_IFNAME")), int(link.get("IFLA_MTU") or 1500))
    raise OverlayError(f"no interface holds the node address {ip}")


def _observe(ipr: Any, s: OverlaySettings) -> Observed:
    routes = frozenset(_observe_routes(ipr, s))
    index = _lookup(ipr, s.device)
    if index is None:
        return Observed(routes=routes)
    link = ipr.link("get", index=index)[0]
    info = link.get("IFLA_LINKINFO")
    if info is None or info.get("IFLA_INFO_KIND") != "vxlan":
        return Observed(device_other_kind=True, routes=routes)
    data = info.get("IFLA_INFO_DATA")
    local = data.get("IFLA_VXLAN_LOCAL") if data is not None else None
    device = Device(
        name=s.device,
        vni=int(data.get("IFLA_VXLAN_ID") or 0) if data is not None else 0,
        port=int(data.get("IFLA_VXLAN_PORT") or 0) if data is not None else 0,
        local=ipaddress.IPv4Address(local) if local else ipaddress.IPv4Address(0),
        mac=str(link.get("IFLA_ADDRESS") or "").lower(),
        address=ipaddress.IPv4Address(0),
        mtu=int(link.get("IFLA_MTU") or 0),
    )
    addresses = frozenset(
        ipaddress.IPv4Interface(f"{a.get('IFA_ADDRESS')}/{a['prefixlen']}")
        for a in ipr.addr("dump", index=index, family=2))
    fdb = frozenset(
        Fdb(str(e.get("NDA_LLADDR")).lower(), ipaddress.IPv4Address(e.get("NDA_DST")))
        for e in ipr.fdb("dump", ifindex=index)
        if e.get("ifindex") == index and e.get("NDA_DST") and e.get("NDA_LLADDR")
        and e["state"] & _NUD_PERMANENT and e.get("NDA_LLADDR") != "00:00:00:00:00:00")
    neigh = frozenset(
        Neigh(ipaddress.IPv4Address(e.get("NDA_DST")), str(e.get("NDA_LLADDR")).lower())
        for e in ipr.neigh("dump", ifindex=index, family=2)
        if e.get("ifindex") == index and e["state"] & _NUD_PERMANENT and e.get("NDA_LLADDR"))
    return Observed(device, False, addresses, routes, fdb, neigh)


def _observe_routes(ipr: Any, s: OverlaySettings) -> Iterator[Route]:
    for r in ipr.route("dump", family=2, table=254, proto=s.route_protocol):
        dst, gw = r.get("RTA_DST"), r.get("RTA_GATEWAY")
        if r["proto"] != s.route_protocol or dst is None or gw is None:
            continue
        net = ipaddress.IPv4Network(f"{dst}/{r['dst_len']}", strict=False)
        if net.subnet_of(s.cluster_cidr):  # another instance's cluster CIDR is not ours
            yield Route(net, ipaddress.IPv4Address(gw), onlink=bool(r["flags"] & _ONLINK))


def _apply(ipr: Any, s: OverlaySettings, c: Changes) -> list[str]:
    """Apply `c` in dependency order; every refused entry is reported, the rest still applied."""
    errors: list[str] = []

    def attempt(what: str, ok: Sequence[int], fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except _PyrNetlinkError as e:
            if e.code not in ok:
                errors.append(f"{what}: {e}")

    main = 254
    for r in c.del_routes:
        attempt(f"deleting route {r.dst}", (errno.ESRCH,), ipr.route, "del", dst=str(r.dst),
                gateway=str(r.via), proto=s.route_protocol, table=main)
    if c.delete_device:
        old = _lookup(ipr, s.device)
        if old is not None:
            attempt(f"deleting {s.device}", (errno.ENODEV,), ipr.link, "del", index=old)
            log.info("deleted %s (settings changed or backend is not vxlan)", s.device)
    index = _lookup(ipr, s.device)
    if c.create_device is not None:
        d = c.create_device
        up = _uplink(ipr, d.local)
        try:
            ipr.link("add", ifname=d.name, kind="vxlan", vxlan_id=d.vni, vxlan_local=str(d.local),
                     vxlan_port=d.port, vxlan_learning=0, vxlan_link=up.index, address=d.mac,
                     mtu=d.mtu or vxlan_mtu(up.mtu))
        except _PyrNetlinkError as e:
            if e.code != errno.EEXIST:
                raise OverlayError(f"creating VXLAN device {d.name}: {e}") from e
        index = _lookup(ipr, d.name)
        if index is None:
            raise OverlayError(f"VXLAN device {d.name} vanished after creation")
        log.info("created VXLAN device %s (VNI %d, UDP %d, local %s, dev %s, MAC %s)",
                 d.name, d.vni, d.port, d.local, up.name, d.mac)
    if c.update_device is not None and index is not None:
        d = c.update_device
        # The MAC can only change while the link is down.
        attempt(f"setting {d.name} down", (), ipr.link, "set", index=index, state="down")
        attempt(f"updating {d.name}", (), ipr.link, "set", index=index, address=d.mac, mtu=d.mtu)
    if index is not None and (c.create_device is not None or c.update_device is not None):
        attempt(f"setting {s.device} up", (), ipr.link, "set", index=index, state="up")
    if index is not None:
        for a in c.del_addresses:
            attempt(f"deleting address {a}", (errno.EADDRNOTAVAIL,), ipr.addr, "del", index=index,
                    address=str(a.ip), prefixlen=a.network.prefixlen)
        if c.add_address is not None:
            a = c.add_address
            attempt(f"adding address {a}", (errno.EEXIST,), ipr.addr, "add", index=index,
                    address=str(a.ip), prefixlen=a.network.prefixlen)
        for f in c.del_fdb:
            attempt(f"deleting FDB {f.mac}", (errno.ENOENT,), ipr.fdb, "del", ifindex=index,
                    lladdr=f.mac, dst=str(f.dst))
        for n in c.del_neigh:
            attempt(f"deleting neighbour {n.ip}", (errno.ENOENT,), ipr.neigh, "del", ifindex=index,
                    dst=str(n.ip), lladdr=n.mac)
        for f in c.add_fdb:
            attempt(f"adding FDB {f.mac} -> {f.dst}", (errno.EEXIST,), ipr.fdb, "append", ifindex=index,
                    lladdr=f.mac, dst=str(f.dst), state=_NUD_PERMANENT)
        for n in c.add_neigh:
            attempt(f"adding neighbour {n.ip} -> {n.mac}", (), ipr.neigh, "replace", ifindex=index,
                    dst=str(n.ip), lladdr=n.mac, state=_NUD_PERMANENT)
    for r in c.add_routes:
        if not r.onlink:
            attempt(f"adding route {r.dst} via {r.via}", (), ipr.route, "replace", dst=str(r.dst),
                    gateway=str(r.via), proto=s.route_protocol, table=main)
        elif index is None:
            errors.append(f"route {r.dst}: no {s.device} device")
        else:
            attempt(f"adding route {r.dst} via {r.via}", (), ipr.route, "replace", dst=str(r.dst),
                    gateway=str(r.via), oif=index, flags=_ONLINK, proto=s.route_protocol, table=main)
    return errors


def parse_backend(value: str) -> Backend:
    for b in BACKENDS:
        if value == b:
            return b
    raise OverlayError(f"unknown pod network backend {value!r} (one of {', '.join(BACKENDS)})")


async def pod_mtu(backend: str, node_ip: str) -> int | None:
    """The pod bridge/veth MTU for `backend`: with VXLAN, the overlay's (uplink − 50) so pods'
    packets fit the tunnel, and never above what the default route carries minus the same
    overhead (a node on loopback, as in tests, must not give pods a 64 KiB MTU for egress);
    otherwise None (the pod network uses the default route's MTU)."""
    if backend != "vxlan":
        return None
    overlay = Overlay(OverlaySettings())
    try:
        up = await overlay.uplink(ipaddress.IPv4Address(node_ip))
        default = await overlay._run(_default_route_mtu)
    except (OverlayError, ValueError) as e:
        log.warning("pod MTU: %s; using the default route's MTU", e)
        return None
    finally:
        await overlay.close()
    return vxlan_mtu(min(up.mtu, default or up.mtu))


def _default_route_mtu() -> int | None:
    with IPRoute() as ipr:
        for route in ipr.route("dump", family=2, table=254):
            if route.get("dst_len") == 0 and route.get("oif") is not None:
                links = ipr.link("get", index=route.get("oif"))
                mtu = links[0].get("mtu") if links else None
                if isinstance(mtu, int) and mtu >= 576:
                    return mtu
    return None
