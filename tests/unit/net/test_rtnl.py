"""`minik.net.rtnl`: attribute encoding/decoding, and the requests against a real kernel in a
private network namespace (a thread `unshare`s its own; the host's interfaces are never touched).
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

import pytest

from minik.net import rtnl
from minik.net.rtnl import NetlinkError, Rtnl

_CLONE_NEWNET = 0x40000000


def test_attr_is_padded_to_four_bytes() -> None:
    a = rtnl._attr(3, b"br0\0\0")
    assert struct.unpack_from("=HH", a) == (9, 3)
    assert len(a) == 12 and a.endswith(b"\0\0\0")


def test_attrs_round_trip_nested_and_masks_the_nested_flag() -> None:
    data = rtnl._attr(rtnl._IFLA_IFNAME, rtnl._str("eth0")) + rtnl._nested(
        rtnl._IFLA_LINKINFO, rtnl._attr(rtnl._IFLA_INFO_KIND, rtnl._str("veth")))
    parsed = dict(rtnl._attrs(data))
    assert rtnl._cstr(parsed[rtnl._IFLA_IFNAME]) == "eth0"
    inner = dict(rtnl._attrs(parsed[rtnl._IFLA_LINKINFO]))
    assert rtnl._cstr(inner[rtnl._IFLA_INFO_KIND]) == "veth"


def test_parse_link_reads_name_mtu_mac_master_and_kind() -> None:
    body = (rtnl._IFINFOMSG.pack(0, 1, 7, 0x1043, 0)
            + rtnl._attr(rtnl._IFLA_IFNAME, rtnl._str("veth1"))
            + rtnl._attr(rtnl._IFLA_MTU, rtnl._u32(1400))
            + rtnl._attr(rtnl._IFLA_ADDRESS, bytes.fromhex("0a0b0c0d0e0f"))
            + rtnl._attr(rtnl._IFLA_MASTER, rtnl._u32(3))
            + rtnl._nested(rtnl._IFLA_LINKINFO, rtnl._attr(rtnl._IFLA_INFO_KIND, rtnl._str("veth"))))
    link = rtnl._parse_link(body)
    assert link == rtnl.Link(index=7, name="veth1", flags=0x1043, mtu=1400, address="0a:0b:0c:0d:0e:0f",
                             master=3, kind="veth")


def test_truncated_attribute_stops_parsing() -> None:
    assert list(rtnl._attrs(struct.pack("=HH", 2, 1))) == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a network namespace")


def in_private_netns(fn: Callable[[], Any]) -> Any:
    """Run `fn` on a thread that first moves into a new, empty network namespace."""
    out: dict[str, Any] = {}

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWNET) != 0:
            out["error"] = OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET)")
            return
        try:
            out["result"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the test thread
            out["error"] = e

    t = threading.Thread(target=run)
    t.start()
    t.join(30)
    if "error" in out:
        raise out["error"]
    return out.get("result")


@needs_root
def test_bridge_address_route_and_errors_in_a_private_namespace() -> None:
    def body() -> None:
        with Rtnl() as r:
            lo = r.link_lookup("lo")
            assert lo is not None and r.link_lookup("nope0") is None
            r.link_set(lo, up=True)
            r.link_add_bridge("br-test")
            with pytest.raises(NetlinkError) as e:
                r.link_add_bridge("br-test")
            assert e.value.errno == 17  # EEXIST
            br = r.link_lookup("br-test")
            assert br is not None
            link = r.link_get(br)
            assert link.kind == "bridge" and link.name == "br-test" and link.address
            r.link_set(br, address="02:00:00:00:00:01", up=True)
            assert r.link_get(br).address == "02:00:00:00:00:01"
            assert r.link_get(br).flags & 0x1
            r.address_add(br, ipaddress.IPv4Interface("10.99.0.1/24"))
            assert [(a.address, a.prefixlen) for a in r.addresses(br)] == [("10.99.0.1", 24)]
            r.route_add_default(ipaddress.IPv4Address("10.99.0.254"), br)
            default = [rt for rt in r.routes() if rt.dst_len == 0]
            assert [(rt.gateway, rt.oif) for rt in default] == [("10.99.0.254", br)]
            r.link_del(br)
            assert r.link_lookup("br-test") is None
            with pytest.raises(NetlinkError) as e:
                r.link_del(br)
            assert e.value.errno == 19  # ENODEV

    in_private_netns(body)


@needs_root
def test_veth_peer_lands_in_the_other_namespace_and_joins_a_bridge() -> None:
    def body() -> None:
        ns_a = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            assert libc.unshare(_CLONE_NEWNET) == 0           # now in namespace B
            with Rtnl() as b:
                b.link_add_bridge("br0")
                br = b.link_lookup("br0")
                assert br is not None
                b.link_add_veth("vhost0", "eth0", ns_a, 1400)
                host = b.link_lookup("vhost0")
                assert host is not None and b.link_lookup("eth0") is None
                b.link_set(host, master=br, up=True)
                b.bridge_port_hairpin(host)
                link = b.link_get(host)
                assert link.master == br and link.mtu == 1400 and link.kind == "veth"
            assert libc.setns(ns_a, _CLONE_NEWNET) == 0         # back in A
            with Rtnl() as a:
                eth0 = a.link_lookup("eth0")
                assert eth0 is not None and a.link_get(eth0).mtu == 1400
        finally:
            os.close(ns_a)

    in_private_netns(body)
