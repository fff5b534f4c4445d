"""A minimal, blocking rtnetlink client on a stdlib `AF_NETLINK` socket.

Role: the few route-netlink requests minik's pod network needs (links, bridge ports,
IPv4 addresses and routes), encoded and decoded with `struct`. It replaces pyroute2 in the
daemon: importing pyroute2 loads ~160 modules (≈8 MB RSS, ~100 ms) for the dozen messages
used here. Like pyroute2's `IPRoute`, an `Rtnl` talks to the network namespace its socket
was opened in, so opening one while a thread is `setns()`ed into a pod's namespace gives a
handle on that namespace.
Neighbours: used only by `minik.net.bridge`, which runs it on worker threads and turns its
`NetlinkError`s into `NetConfigError`s.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType

__all__ = ["Address", "Link", "NetlinkError", "Route", "Rtnl"]

# Message types, flags and attribute numbers from <linux/netlink.h>, <linux/rtnetlink.h>,
# <linux/if_link.h>, <linux/if_addr.h>, <linux/veth.h>.
_NETLINK_ROUTE = 0
_NLMSG_ERROR = 2
_NLMSG_DONE = 3
_RTM_NEWLINK, _RTM_DELLINK, _RTM_GETLINK, _RTM_SETLINK = 16, 17, 18, 19
_RTM_NEWADDR, _RTM_GETADDR = 20, 22
_RTM_NEWROUTE, _RTM_GETROUTE = 24, 26
_F_REQUEST, _F_MULTI, _F_ACK = 0x1, 0x2, 0x4
_F_EXCL, _F_CREATE, _F_DUMP = 0x200, 0x400, 0x300
_NLA_F_NESTED = 0x8000
_NLA_TYPE_MASK = 0x3FFF

_IFLA_ADDRESS, _IFLA_IFNAME, _IFLA_MTU, _IFLA_MASTER = 1, 3, 4, 10
_IFLA_PROTINFO, _IFLA_LINKINFO, _IFLA_NET_NS_FD = 12, 18, 28
_IFLA_INFO_KIND, _IFLA_INFO_DATA = 1, 2
_VETH_INFO_PEER = 1
_IFLA_BRPORT_MODE = 4          # "hairpin mode"
_IFA_ADDRESS, _IFA_LOCAL = 1, 2
_RTA_DST, _RTA_OIF, _RTA_GATEWAY, _RTA_TABLE = 1, 4, 5, 15
_RT_TABLE_MAIN = 254
_RTPROT_BOOT = 3               # what `ip route add` and pyroute2 use by default
_RTN_UNICAST = 1
_AF_BRIDGE = 7
_IFF_UP = 0x1

_NLMSGHDR = struct.Struct("=IHHII")       # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")     # family, type, index, flags, change
_IFADDRMSG = struct.Struct("=BBBBi")      # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct("=BBBBBBBBI")      # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_RTATTR = struct.Struct("=HH")            # len, type
_U32 = struct.Struct("=I")
_RECV_SIZE = 1 << 16


class NetlinkError(OSError):
    """The kernel refused a request; `errno` is the positive error number."""


@dataclass(frozen=True, slots=True)
class Link:
    index: int
    name: str
    flags: int
    mtu: int | None
    address: str | None           # "aa:bb:cc:dd:ee:ff"
    master: int | None
    kind: str | None              # IFLA_INFO_KIND: "bridge", "veth", … (None for plain devices)


@dataclass(frozen=True, slots=True)
class Address:
    index: int
    address: str
    prefixlen: int


@dataclass(frozen=True, slots=True)
class Route:
    table: int
    dst_len: int
    oif: int | None
    gateway: str | None


def _align(n: int) -> int:
    return (n + 3) & ~3


def _attr(kind: int, payload: bytes) -> bytes:
    length = _RTATTR.size + len(payload)
    return _RTATTR.pack(length, kind) + payload + b"\0" * (_align(length) - length)


def _nested(kind: int, *attrs: bytes) -> bytes:
    return _attr(kind | _NLA_F_NESTED, b"".join(attrs))


def _str(value: str) -> bytes:
    return value.encode() + b"\0"


def _u32(value: int) -> bytes:
    return _U32.pack(value)


def _attrs(data: bytes, offset: int = 0) -> Iterator[tuple[int, bytes]]:
    while offset + _RTATTR.size <= len(data):
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return
        yield kind & _NLA_TYPE_MASK, data[offset + _RTATTR.size:offset + length]
        offset += _align(length)


def _cstr(payload: bytes) -> str:
    return payload.split(b"\0", 1)[0].decode(errors="replace")


def _mac(payload: bytes) -> str:
    return ":".join(f"{b:02x}" for b in payload)


def _parse_link(body: bytes) -> Link:
    _, _, index, flags, _ = _IFINFOMSG.unpack_from(body)
    name, mtu, address, master, kind = "", None, None, None, None
    for t, p in _attrs(body, _IFINFOMSG.size):
        if t == _IFLA_IFNAME:
            name = _cstr(p)
        elif t == _IFLA_MTU:
            mtu = _U32.unpack_from(p)[0]
        elif t == _IFLA_ADDRESS:
            address = _mac(p)
        elif t == _IFLA_MASTER:
            master = _U32.unpack_from(p)[0]
        elif t == _IFLA_LINKINFO:
            for it, ip in _attrs(p):
                if it == _IFLA_INFO_KIND:
                    kind = _cstr(ip)
    return Link(index=index, name=name, flags=flags, mtu=mtu, address=address, master=master, kind=kind)


class Rtnl:
    """One NETLINK_ROUTE socket in the current thread's network namespace. Not thread-safe."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, _NETLINK_ROUTE)
        try:
            self._sock.bind((0, 0))
        except OSError:
            self._sock.close()
            raise
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- transport ----------------------------------------------------------------------------

    def _request(self, msg_type: int, flags: int, body: bytes) -> list[tuple[int, bytes]]:
        """Send one request; return the (type, body) replies (a dump's parts, or none for an ACK)."""
        self._seq += 1
        seq = self._seq
        self._sock.send(_NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type, flags | _F_REQUEST, seq, 0) + body)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self._sock.recv(_RECV_SIZE)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, mtype, mflags, mseq, _ = _NLMSGHDR.unpack_from(data, offset)
                if length < _NLMSGHDR.size:
                    raise NetlinkError(0, "malformed netlink message")
                payload = data[offset + _NLMSGHDR.size:offset + length]
                offset += _align(length)
                if mseq != seq:
                    continue                     # a late reply to an earlier, abandoned request
                if mtype == _NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out                   # the ACK
                if mtype == _NLMSG_DONE:
                    return out
                out.append((mtype, payload))
                if not mflags & _F_MULTI and not flags & _F_ACK:
                    return out

    def _do(self, msg_type: int, flags: int, body: bytes) -> None:
        self._request(msg_type, flags | _F_ACK, body)

    # -- links ----------------------------------------------------------------------------------

    def link_lookup(self, name: str) -> int | None:
        """Index of the interface called `name`, or None."""
        try:
            return self.link_by_name(name).index
        except NetlinkError as e:
            if e.errno == 19:                    # ENODEV
                return None
            raise

    def link_by_name(self, name: str) -> Link:
        replies = self._request(_RTM_GETLINK, 0, _IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _str(name)))
        return _parse_link(replies[0][1])

    def link_get(self, index: int) -> Link:
        replies = self._request(_RTM_GETLINK, 0, _IFINFOMSG.pack(0, 0, index, 0, 0))
        return _parse_link(replies[0][1])

    def link_add_bridge(self, name: str) -> None:
        body = _IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _str(name)) + _nested(
            _IFLA_LINKINFO, _attr(_IFLA_INFO_KIND, _str("bridge")))
        self._do(_RTM_NEWLINK, _F_CREATE | _F_EXCL, body)

    def link_add_veth(self, name: str, peer: str, peer_netns_fd: int, mtu: int) -> None:
        """A veth pair: `name` here, `peer` moved into the namespace behind `peer_netns_fd`."""
        peer_msg = (_IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _str(peer))
                    + _attr(_IFLA_NET_NS_FD, _u32(peer_netns_fd)) + _attr(_IFLA_MTU, _u32(mtu)))
        body = (_IFINFOMSG.pack(0, 0, 0, 0, 0) + _attr(_IFLA_IFNAME, _str(name)) + _attr(_IFLA_MTU, _u32(mtu))
                + _nested(_IFLA_LINKINFO, _attr(_IFLA_INFO_KIND, _str("veth")),
                          _nested(_IFLA_INFO_DATA, _attr(_VETH_INFO_PEER, peer_msg))))
        self._do(_RTM_NEWLINK, _F_CREATE | _F_EXCL, body)

    def link_set(self, index: int, *, up: bool = False, master: int | None = None,
                 address: str | None = None) -> None:
        """Set what is given: the UP flag, the master (bridge) index, the MAC address."""
        attrs = b""
        if master is not None:
            attrs += _attr(_IFLA_MASTER, _u32(master))
        if address is not None:
            attrs += _attr(_IFLA_ADDRESS, bytes.fromhex(address.replace(":", "")))
        flags = _IFF_UP if up else 0
        self._do(_RTM_NEWLINK, 0, _IFINFOMSG.pack(0, 0, index, flags, flags) + attrs)

    def link_del(self, index: int) -> None:
        self._do(_RTM_DELLINK, 0, _IFINFOMSG.pack(0, 0, index, 0, 0))

    def bridge_port_hairpin(self, index: int, on: bool = True) -> None:
        """`bridge link set dev <index> hairpin on`: IFLA_BRPORT_MODE in AF_BRIDGE protinfo."""
        body = _IFINFOMSG.pack(_AF_BRIDGE, 0, index, 0, 0) + _nested(
            _IFLA_PROTINFO, _attr(_IFLA_BRPORT_MODE, bytes([1 if on else 0])))
        self._do(_RTM_SETLINK, 0, body)

    # -- addresses and routes (IPv4) -----------------------------------------------------------

    def addresses(self, index: int) -> list[Address]:
        out = []
        for _, body in self._request(_RTM_GETADDR, _F_DUMP, _IFADDRMSG.pack(socket.AF_INET, 0, 0, 0, 0)):
            family, prefixlen, _, _, idx = _IFADDRMSG.unpack_from(body)
            if family != socket.AF_INET or idx != index:
                continue
            for t, p in _attrs(body, _IFADDRMSG.size):
                if t == _IFA_ADDRESS:
                    out.append(Address(idx, socket.inet_ntoa(p), prefixlen))
        return out

    def address_add(self, index: int, address: ipaddress.IPv4Interface) -> None:
        packed = address.ip.packed
        body = (_IFADDRMSG.pack(socket.AF_INET, address.network.prefixlen, 0, 0, index)
                + _attr(_IFA_LOCAL, packed) + _attr(_IFA_ADDRESS, packed))
        self._do(_RTM_NEWADDR, _F_CREATE | _F_EXCL, body)

    def routes(self, table: int = _RT_TABLE_MAIN) -> list[Route]:
        out = []
        for _, body in self._request(_RTM_GETROUTE, _F_DUMP, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0)):
            family, dst_len, _, _, rtm_table, _, _, _, _ = _RTMSG.unpack_from(body)
            if family != socket.AF_INET:
                continue
            oif, gateway, tbl = None, None, rtm_table
            for t, p in _attrs(body, _RTMSG.size):
                if t == _RTA_OIF:
                    oif = _U32.unpack_from(p)[0]
                elif t == _RTA_GATEWAY:
                    gateway = socket.inet_ntoa(p)
                elif t == _RTA_TABLE:
                    tbl = _U32.unpack_from(p)[0]
            if tbl == table:
                out.append(Route(tbl, dst_len, oif, gateway))
        return out

    def route_add_default(self, gateway: ipaddress.IPv4Address, oif: int) -> None:
        body = (_RTMSG.pack(socket.AF_INET, 0, 0, 0, _RT_TABLE_MAIN, _RTPROT_BOOT, 0, _RTN_UNICAST, 0)
                + _attr(_RTA_GATEWAY, gateway.packed) + _attr(_RTA_OIF, _u32(oif)))
        self._do(_RTM_NEWROUTE, _F_CREATE | _F_EXCL, body)
