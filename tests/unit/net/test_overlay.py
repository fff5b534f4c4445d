"""Pure parts of the pod network across nodes: plan (Nodes → entries) and diff (entries → changes)."""

from __future__ import annotations

import ipaddress

import pytest

from minik.net.overlay import (
    Changes, Desired, Device, Fdb, Neigh, NodeNet, Observed, OverlayError, OverlaySettings, Route,
    diff, normalize_mac, parse_backend, plan, vtep_mac, vxlan_mtu,
)

IP = ipaddress.IPv4Address
NET = ipaddress.IPv4Network
VX = OverlaySettings("vxlan", cluster_cidr=NET("10.42.0.0/16"))
HGW = OverlaySettings("host-gw", cluster_cidr=NET("10.42.0.0/16"))


def node(name: str, ip: str, cidr: str, mac: str | None = None) -> NodeNet:
    return NodeNet(name, IP(ip), NET(cidr), vtep_mac(name) if mac is None else mac)


A = node("a", "192.168.1.10", "10.42.0.0/24")
B = node("b", "192.168.1.11", "10.42.1.0/24")
C = node("c", "192.168.1.12", "10.42.2.0/24")


def test_vtep_mac_is_stable_unicast_and_locally_administered() -> None:
    mac = vtep_mac("node-1")
    assert mac == vtep_mac("node-1") != vtep_mac("node-2")
    first = int(mac.split(":")[0], 16)
    assert first & 0x02 and not first & 0x01
    assert normalize_mac(mac.upper()) == mac


@pytest.mark.parametrize("bad", ["", "zz:00:00:00:00:00", "01:00:5e:00:00:01", "0e:00:00:00:00"])
def test_bad_macs_are_refused(bad: str) -> None:
    with pytest.raises(OverlayError):
        normalize_mac(bad)


def test_vxlan_mtu_leaves_room_for_the_encapsulation() -> None:
    assert vxlan_mtu(1500) == 1450
    assert vxlan_mtu(1400) == 1350


def test_single_node_wants_the_device_and_nothing_else() -> None:
    d = plan(VX, A, [A])
    assert d.device == Device("minik.1", 1, 8472, A.ip, A.vtep_mac, IP("10.42.0.0"))
    assert (d.routes, d.fdb, d.neigh) == (frozenset(), frozenset(), frozenset())


def test_vxlan_entries_per_other_node_as_flannel_keeps_them() -> None:
    d = plan(VX, A, [A, B, C])
    assert d.routes == {Route(B.pod_cidr, IP("10.42.1.0"), True), Route(C.pod_cidr, IP("10.42.2.0"), True)}
    assert d.fdb == {Fdb(B.vtep_mac, B.ip), Fdb(C.vtep_mac, C.ip)}
    assert d.neigh == {Neigh(IP("10.42.1.0"), B.vtep_mac), Neigh(IP("10.42.2.0"), C.vtep_mac)}


def test_host_gw_routes_via_node_ips_and_no_device() -> None:
    d = plan(HGW, A, [A, B, C])
    assert d.device is None
    assert d.routes == {Route(B.pod_cidr, B.ip, False), Route(C.pod_cidr, C.ip, False)}
    assert not d.fdb and not d.neigh


def test_none_backend_wants_nothing() -> None:
    assert plan(OverlaySettings("none"), A, [A, B]) == Desired()


@pytest.mark.parametrize("other,why", [
    (node("b", "192.168.1.11", "10.42.1.0/24", mac=""), "annotation"),
    (node("b", "192.168.1.11", "10.99.1.0/24"), "outside the cluster CIDR"),
    (node("b", "192.168.1.11", "10.42.0.0/24"), "overlaps a"),
    (node("b", "192.168.1.10", "10.42.1.0/24"), "this node's address"),
])
def test_nodes_that_cannot_be_routed_are_skipped_with_a_reason(other: NodeNet, why: str) -> None:
    d = plan(VX, A, [A, other])
    assert not d.routes and not d.fdb and not d.neigh
    assert len(d.skipped) == 1 and why in d.skipped[0]


def test_host_gw_needs_no_mac() -> None:
    assert plan(HGW, A, [node("b", "192.168.1.11", "10.42.1.0/24", mac="")]).routes == {
        Route(B.pod_cidr, B.ip, False)}


def _observed(desired: Desired, **kw: object) -> Observed:
    assert desired.device is not None
    dev = desired.device
    fields: dict[str, object] = dict(
        device=Device(dev.name, dev.vni, dev.port, dev.local, dev.mac, IP(0), 1450),
        addresses=frozenset({ipaddress.IPv4Interface(f"{dev.address}/32")}),
        routes=desired.routes, fdb=desired.fdb, neigh=desired.neigh)
    fields.update(kw)
    return Observed(**fields)  # type: ignore[arg-type]


def _with_mtu(d: Desired, mtu: int = 1450) -> Desired:
    assert d.device is not None
    dev = d.device
    return Desired(Device(dev.name, dev.vni, dev.port, dev.local, dev.mac, dev.address, mtu), d.routes, d.fdb, d.neigh)


def test_nothing_to_do_when_the_kernel_matches() -> None:
    d = _with_mtu(plan(VX, A, [A, B, C]))
    assert diff(d, _observed(d)).empty


def test_fresh_host_creates_everything() -> None:
    d = _with_mtu(plan(VX, A, [A, B]))
    c = diff(d, Observed())
    assert c.create_device == d.device and not c.delete_device
    assert c.add_address == ipaddress.IPv4Interface("10.42.0.0/32")
    assert set(c.add_routes) == d.routes and set(c.add_fdb) == d.fdb and set(c.add_neigh) == d.neigh


def test_deleted_node_loses_its_entries() -> None:
    before = _with_mtu(plan(VX, A, [A, B, C]))
    after = _with_mtu(plan(VX, A, [A, B]))
    c = diff(after, _observed(before))
    assert c.del_routes == (Route(C.pod_cidr, IP("10.42.2.0"), True),)
    assert c.del_fdb == (Fdb(C.vtep_mac, C.ip),)
    assert c.del_neigh == (Neigh(IP("10.42.2.0"), C.vtep_mac),)
    assert not (c.add_routes or c.add_fdb or c.add_neigh or c.create_device or c.delete_device)


def test_node_with_a_new_address_gets_its_fdb_entry_replaced() -> None:
    before = _with_mtu(plan(VX, A, [A, B]))
    moved = node("b", "192.168.1.99", "10.42.1.0/24")
    c = diff(_with_mtu(plan(VX, A, [A, moved])), _observed(before))
    assert c.del_fdb == (Fdb(B.vtep_mac, B.ip),) and c.add_fdb == (Fdb(B.vtep_mac, moved.ip),)
    assert not c.add_routes and not c.del_routes


def test_changed_vni_recreates_the_device_and_its_entries() -> None:
    d = _with_mtu(plan(VX, A, [A, B]))
    assert d.device is not None
    dev = d.device
    obs = _observed(d, device=Device(dev.name, 7, dev.port, dev.local, dev.mac, IP(0), 1450))
    c = diff(d, obs)
    assert c.delete_device and c.create_device == d.device
    # Everything on the old device went with it: all entries are added again.
    assert set(c.add_fdb) == d.fdb and set(c.add_routes) == d.routes and not c.del_fdb


def test_wrong_mtu_is_updated_in_place() -> None:
    d = _with_mtu(plan(VX, A, [A]))
    assert d.device is not None
    dev = d.device
    c = diff(d, _observed(d, device=Device(dev.name, dev.vni, dev.port, dev.local, dev.mac, IP(0), 1500)))
    assert c.update_device == d.device and not c.create_device and not c.delete_device


def test_stray_addresses_on_the_device_are_removed() -> None:
    d = _with_mtu(plan(VX, A, [A]))
    stray = ipaddress.IPv4Interface("10.42.9.0/32")
    c = diff(d, _observed(d, addresses=frozenset({stray, ipaddress.IPv4Interface("10.42.0.0/32")})))
    assert c.del_addresses == (stray,) and c.add_address is None


def test_switching_to_host_gw_removes_the_device_and_its_routes() -> None:
    vx = _with_mtu(plan(VX, A, [A, B]))
    c = diff(plan(HGW, A, [A, B]), _observed(vx))
    assert c.delete_device and c.create_device is None
    assert c.del_routes == (Route(B.pod_cidr, IP("10.42.1.0"), True),)
    assert c.add_routes == (Route(B.pod_cidr, B.ip, False),)


def test_none_backend_tears_everything_down() -> None:
    vx = _with_mtu(plan(VX, A, [A, B]))
    c = diff(Desired(), _observed(vx))
    assert c.delete_device and c.del_routes and c.create_device is None


def test_a_foreign_link_with_the_device_name_is_refused() -> None:
    with pytest.raises(OverlayError, match="not a VXLAN device"):
        diff(plan(VX, A, [A]), Observed(device_other_kind=True))


def test_settings_are_validated() -> None:
    assert parse_backend("host-gw") == "host-gw"
    with pytest.raises(OverlayError):
        parse_backend("wireguard")
    with pytest.raises(OverlayError):
        OverlaySettings(device="a-name-far-too-long")
    with pytest.raises(OverlayError):
        OverlaySettings(vni=0)
    with pytest.raises(OverlayError):
        OverlaySettings(port=70000)


def test_changes_empty() -> None:
    assert Changes().empty and not Changes(delete_device=True).empty


def test_overlap_checks_across_prefix_lengths() -> None:
    big = node("b", "192.168.1.11", "10.42.0.0/23")       # covers a's /24
    small = node("c", "192.168.1.12", "10.42.4.128/25")   # inside d's /22, which sorts after it
    wide = node("d", "192.168.1.13", "10.42.4.0/22")
    d = plan(HGW, A, [A, big, small, wide])
    assert d.routes == {Route(small.pod_cidr, small.ip, False)}
    assert [s.split(":")[0] for s in d.skipped] == ["b", "d"]


def test_every_node_of_a_full_cluster_cidr_is_routed() -> None:
    nodes = [node(f"n{i}", f"192.168.{i // 250}.{i % 250 + 1}", f"10.42.{i}.0/24") for i in range(1, 256)]
    d = plan(VX, A, [A, *nodes])
    assert len(d.routes) == len(d.fdb) == len(d.neigh) == 255 and not d.skipped
