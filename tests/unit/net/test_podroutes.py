"""The cross-node pod network plan (pure): host-gw routes, VXLAN fdb/neighbour/route entries."""

from __future__ import annotations

from minik.agent.podroutes import VTEP_ANNOTATION, peer_of
from minik.net.podroutes import Fdb, Neighbour, PeerNode, Route, plan, vtep_address

PEERS = [PeerNode("me", "192.168.1.10", "10.42.0.0/24", "aa:aa:aa:aa:aa:01"),
         PeerNode("n2", "192.168.1.11", "10.42.1.0/24", "aa:aa:aa:aa:aa:02"),
         PeerNode("n3", "192.168.1.12", "10.42.2.0/24", ""),        # vxlan device not up yet
         PeerNode("n4", "", "10.42.3.0/24", "aa:aa:aa:aa:aa:04"),    # no address yet
         PeerNode("n5", "192.168.1.14", "", "aa:aa:aa:aa:aa:05")]    # no podCIDR yet


def test_host_gw_routes_each_other_node_via_its_address() -> None:
    p = plan("host-gw", "me", PEERS)
    assert p.routes == {Route("10.42.1.0/24", "192.168.1.11"), Route("10.42.2.0/24", "192.168.1.12")}
    assert not p.fdb and not p.neighbours


def test_vxlan_entries_like_flannel() -> None:
    p = plan("vxlan", "me", PEERS)
    assert p.routes == {Route("10.42.1.0/24", "10.42.1.0", onlink=True)}
    assert p.neighbours == {Neighbour("10.42.1.0", "aa:aa:aa:aa:aa:02")}
    assert p.fdb == {Fdb("aa:aa:aa:aa:aa:02", "192.168.1.11")}
    assert plan("vxlan", "me", PEERS[:1]).routes == frozenset()
    assert vtep_address("10.42.7.0/24") == "10.42.7.0"


def test_peer_from_node_object() -> None:
    node = {"metadata": {"name": "n2", "annotations": {VTEP_ANNOTATION: "aa:bb:cc:dd:ee:ff"}},
            "spec": {"podCIDR": "10.42.1.0/24"},
            "status": {"addresses": [{"type": "Hostname", "address": "n2"}, {"type": "InternalIP", "address": "192.168.1.11"}]}}
    assert peer_of(node) == PeerNode("n2", "192.168.1.11", "10.42.1.0/24", "aa:bb:cc:dd:ee:ff")
    assert peer_of({"metadata": {"name": "x"}}) == PeerNode("x", "", "", "")
