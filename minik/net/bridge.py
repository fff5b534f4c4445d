"""Netlink adapter: the node bridge, per-pod veth pairs, addresses and routes (pyroute2).

Role: the one place in `minik.net` that talks rtnetlink. pyroute2's synchronous `IPRoute`
blocks, so every operation runs on a small private thread pool and is exposed here as a
coroutine. Work inside a pod's network namespace uses a netlink socket opened *in* that
namespace: the worker thread `setns()`s into it only for the instant it takes to open the
socket and switches straight back (a per-thread switch, ~1.5 ms, versus ~13 ms for
pyroute2's own fork-a-helper `netns=` path).

Neighbours: driven by `minik.net.cni_server` (pod ADD/DEL/CHECK) and `minik.net.podnet`
(bridge at start/teardown). Knows nothing about CNI or IPAM: it is given names and addresses.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import functools
import ipaddress
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from minik.net.rtnl import IPRoute
from minik.net.rtnl import NetlinkError as _PyrNetlinkError

_CLONE_NEWNET = 0x40000000
_IFF_UP = 0x1
_MAX_IFNAME = 15
_T = TypeVar("_T")


class NetConfigError(Exception):
    """A netlink operation on the node or in a pod namespace failed."""


class NetnsNotFound(NetConfigError):
    """The pod's network namespace path does not exist (any more)."""


@dataclass(frozen=True, slots=True)
class PodLink:
    """What `add_pod` built: the host end of the veth and the pod end inside `netns`."""

    host_ifname: str
    host_mac: str
    ifname: str
    mac: str
    netns: str


class Netlink:
    """Async facade over blocking pyroute2 calls. One instance per `PodNetwork`."""

    def __init__(self, max_workers: int = 4) -> None:
        # A private pool rather than asyncio.to_thread's shared default executor: our
        # threads switch network namespace for a moment, and should that ever fail to
        # switch back, only this pool would be affected.
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="minik-netlink")
        self._libc = ctypes.CDLL(None, use_errno=True)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._pool.shutdown)

    async def _run(self, fn: Callable[..., _T], *args: Any) -> _T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    # -- public coroutines ---------------------------------------------------------------

    async def ensure_bridge(self, name: str, gateway: ipaddress.IPv4Interface) -> None:
        """Create bridge `name` if missing, give it `gateway` (e.g. 10.42.0.1/24), set it up."""
        _check_ifname(name)
        await self._run(self._ensure_bridge, name, gateway)

    async def delete_bridge(self, name: str) -> bool:
        return await self._run(self._delete_link, name)

    async def default_route_mtu(self, fallback: int = 1500) -> int:
        """MTU of the interface carrying the host's default route, so pod traffic that is
        masqueraded out of it is not silently too big (this VM's uplink is 1400)."""
        return await self._run(self._default_route_mtu, fallback)

    async def add_pod(
        self,
        *,
        netns: str,
        ifname: str,
        host_ifname: str,
        bridge: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address,
        mtu: int,
    ) -> PodLink:
        _check_ifname(ifname)
        _check_ifname(host_ifname)
        return await self._run(
            self._add_pod, netns, ifname, host_ifname, bridge, address, gateway, mtu
        )

    async def delete_pod(self, host_ifname: str) -> bool:
        """Delete the host end of a pod's veth (the peer goes with it). False if absent."""
        return await self._run(self._delete_link, host_ifname)

    async def check_pod(
        self,
        *,
        netns: str,
        ifname: str,
        host_ifname: str,
        bridge: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address,
    ) -> list[str]:
        """Problems found with a pod's plumbing; empty when it is as `add_pod` left it."""
        return await self._run(
            self._check_pod, netns, ifname, host_ifname, bridge, address, gateway
        )

    async def loopback_up(self, netns: str) -> None:
        await self._run(self._loopback_up, netns)

    async def link_exists(self, name: str) -> bool:
        return await self._run(self._link_exists, name)

    # -- blocking implementations (run on the pool) ---------------------------------------

    def _ensure_bridge(self, name: str, gateway: ipaddress.IPv4Interface) -> None:
        with IPRoute() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                try:
                    ipr.link("add", ifname=name, kind="bridge")
                except _PyrNetlinkError as e:
                    if e.code != errno.EEXIST:  # a concurrent start created it
                        raise NetConfigError(f"creating bridge {name}: {e}") from e
                index = _lookup(ipr, name)
                if index is None:
                    raise NetConfigError(f"bridge {name} vanished after creation")
                # Pin the bridge's MAC: otherwise it follows the lowest port MAC and
                # changes as pods come and go, which makes pods' ARP entries for the
                # gateway go stale.
                mac = ipr.link("get", index=index)[0].get("address")
                ipr.link("set", index=index, address=mac)
            link = ipr.link("get", index=index)[0]
            kind = _link_kind(link)
            if kind != "bridge":
                raise NetConfigError(f"{name} exists but is a {kind or 'non-bridge'} link")
            have = {
                (a.get("address"), a.get("prefixlen"))
                for a in ipr.addr("dump", index=index, family=2)
            }
            if (str(gateway.ip), gateway.network.prefixlen) not in have:
                try:
                    ipr.addr(
                        "add", index=index, address=str(gateway.ip),
                        prefixlen=gateway.network.prefixlen,
                    )
                except _PyrNetlinkError as e:
                    if e.code != errno.EEXIST:
                        raise NetConfigError(f"adding {gateway} to {name}: {e}") from e
            ipr.link("set", index=index, state="up")

    def _delete_link(self, name: str) -> bool:
        with IPRoute() as ipr:
            index = _lookup(ipr, name)
            if index is None:
                return False
            try:
                ipr.link("del", index=index)
            except _PyrNetlinkError as e:
                if e.code == errno.ENODEV:  # deleted under us (netns teardown took the pair)
                    return False
                raise NetConfigError(f"deleting {name}: {e}") from e
            return True

    def _link_exists(self, name: str) -> bool:
        with IPRoute() as ipr:
            return _lookup(ipr, name) is not None

    def _default_route_mtu(self, fallback: int) -> int:
        with IPRoute() as ipr:
            for route in ipr.route("dump", family=2, table=254):
                if route.get("dst_len") == 0 and route.get("oif") is not None:
                    links = ipr.link("get", index=route.get("oif"))
                    mtu = links[0].get("mtu") if links else None
                    if isinstance(mtu, int) and mtu >= 576:
                        return mtu
        return fallback

    def _add_pod(
        self,
        netns: str,
        ifname: str,
        host_ifname: str,
        bridge: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address,
        mtu: int,
    ) -> PodLink:
        nsfd = self._open_netns(netns)
        try:
            with IPRoute() as host, self._iproute_in(nsfd, netns) as pod:
                bridge_index = _lookup(host, bridge)
                if bridge_index is None:
                    raise NetConfigError(f"bridge {bridge} does not exist")
                # A retried ADD (runtime timeout, daemon restart) may find our earlier
                # attempt: start from scratch rather than reason about half-built state.
                stale = _lookup(host, host_ifname)
                if stale is not None:
                    _ignore_enodev(host.link, "del", index=stale)
                stale = _lookup(pod, ifname)
                if stale is not None:
                    _ignore_enodev(pod.link, "del", index=stale)
                try:
                    host.link(
                        "add", ifname=host_ifname, kind="veth", mtu=mtu,
                        peer={"ifname": ifname, "net_ns_fd": nsfd, "mtu": mtu},
                    )
                except _PyrNetlinkError as e:
                    raise NetConfigError(f"creating veth {host_ifname}/{ifname}: {e}") from e
                try:
                    return self._configure_pod(
                        host, pod, netns, ifname, host_ifname, bridge_index, address, gateway
                    )
                except BaseException:
                    _ignore_enodev(host.link, "del", ifname=host_ifname)
                    raise
        finally:
            os.close(nsfd)

    def _configure_pod(
        self,
        host: Any,
        pod: Any,
        netns: str,
        ifname: str,
        host_ifname: str,
        bridge_index: int,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address,
    ) -> PodLink:
        try:
            host_index = _require(host, host_ifname)
            host.link("set", index=host_index, master=bridge_index, state="up")
            # Hairpin: a pod talking to a Service address that is DNATed back to itself
            # needs the bridge to send the frame out of the port it came in on.
            host.brport("set", index=host_index, mode=1)
            lo = _require(pod, "lo")
            pod.link("set", index=lo, state="up")
            inner = _require(pod, ifname)
            pod.addr("add", index=inner, address=str(address.ip), prefixlen=address.network.prefixlen)
            pod.link("set", index=inner, state="up")
            pod.route("add", dst="0.0.0.0/0", gateway=str(gateway), oif=inner)
            host_mac = host.link("get", index=host_index)[0].get("address")
            mac = pod.link("get", index=inner)[0].get("address")
        except _PyrNetlinkError as e:
            raise NetConfigError(f"configuring pod interface {ifname} in {netns}: {e}") from e
        return PodLink(host_ifname=host_ifname, host_mac=str(host_mac), ifname=ifname,
                       mac=str(mac), netns=netns)

    def _check_pod(
        self,
        netns: str,
        ifname: str,
        host_ifname: str,
        bridge: str,
        address: ipaddress.IPv4Interface,
        gateway: ipaddress.IPv4Address,
    ) -> list[str]:
        problems: list[str] = []
        nsfd = self._open_netns(netns)
        try:
            with IPRoute() as host, self._iproute_in(nsfd, netns) as pod:
                host_index = _lookup(host, host_ifname)
                bridge_index = _lookup(host, bridge)
                if host_index is None:
                    problems.append(f"host interface {host_ifname} is missing")
                else:
                    link = host.link("get", index=host_index)[0]
                    if bridge_index is None or link.get("master") != bridge_index:
                        problems.append(f"{host_ifname} is not attached to bridge {bridge}")
                    if not link.get("flags", 0) & _IFF_UP:
                        problems.append(f"{host_ifname} is down")
                inner = _lookup(pod, ifname)
                if inner is None:
                    problems.append(f"{ifname} is missing in {netns}")
                    return problems
                addrs = {(a.get("address"), a.get("prefixlen"))
                         for a in pod.addr("dump", index=inner, family=2)}
                if (str(address.ip), address.network.prefixlen) not in addrs:
                    problems.append(f"{ifname} lacks address {address}")
                gateways = {r.get("gateway") for r in pod.route("dump", family=2, table=254)
                            if r.get("dst_len") == 0}
                if str(gateway) not in gateways:
                    problems.append(f"no default route via {gateway} in {netns}")
        finally:
            os.close(nsfd)
        return problems

    def _loopback_up(self, netns: str) -> None:
        nsfd = self._open_netns(netns)
        try:
            with self._iproute_in(nsfd, netns) as pod:
                pod.link("set", index=_require(pod, "lo"), state="up")
        finally:
            os.close(nsfd)

    # -- namespace plumbing ------------------------------------------------------------------

    def _open_netns(self, netns: str) -> int:
        try:
            return os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise NetnsNotFound(f"network namespace {netns} does not exist") from None
        except OSError as e:
            raise NetConfigError(f"opening network namespace {netns}: {e}") from e

    def _iproute_in(self, nsfd: int, netns: str) -> Any:
        """An IPRoute whose socket lives in the namespace behind `nsfd`."""
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._setns(nsfd, netns)
            try:
                return IPRoute()
            finally:
                # Must succeed: this thread is reused for host-side work.
                self._setns(home, "the host namespace")
        finally:
            os.close(home)

    def _setns(self, fd: int, what: str) -> None:
        if self._libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise NetConfigError(f"setns into {what}: {os.strerror(err)}")


def _lookup(ipr: Any, name: str) -> int | None:
    found = ipr.link_lookup(ifname=name)
    return int(found[0]) if found else None


def _require(ipr: Any, name: str) -> int:
    index = _lookup(ipr, name)
    if index is None:
        raise NetConfigError(f"interface {name} not found")
    return index


def _link_kind(link: Any) -> str | None:
    info = link.get("IFLA_LINKINFO")
    return None if info is None else info.get("IFLA_INFO_KIND")


def _ignore_enodev(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    try:
        fn(*args, **kwargs)
    except _PyrNetlinkError as e:
        if e.code != errno.ENODEV:
            raise NetConfigError(str(e)) from e


def _check_ifname(name: str) -> None:
    if not name or len(name) > _MAX_IFNAME or "/" in name or name.strip() != name:
        raise NetConfigError(f"invalid interface name {name!r} (1..{_MAX_IFNAME} chars)")
