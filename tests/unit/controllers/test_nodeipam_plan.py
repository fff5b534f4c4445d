"""Node IPAM planning: which Node gets which block of the cluster CIDR."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from minik.controllers.nodeipam import Allocation, node_block_prefix, plan

Obj = dict[str, Any]


def node(name: str, cidr: str = "", created: str = "2026-01-01T00:00:00Z", deleting: bool = False) -> Obj:
    meta: Obj = {"name": name, "uid": f"uid-{name}", "creationTimestamp": created}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-02T00:00:00Z"
    return {"metadata": meta, "spec": {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}}


def cidrs(nodes: list[Obj], cluster: str = "10.42.0.0/16", reserved: dict[str, str] | None = None) -> dict[str, str]:
    return {a.node: a.cidr for a in plan(cluster, nodes, reserved).allocations}


@pytest.mark.parametrize("nodes, want", [
    ([node("a")], {"a": "10.42.0.0/24"}),                                   # the first node: as before
    ([node("a", "10.42.0.0/24"), node("b")], {"b": "10.42.1.0/24"}),
    ([node("a", "10.42.0.0/24"), node("c", "10.42.2.0/24"), node("b")], {"b": "10.42.1.0/24"}),  # a freed hole
    ([node("a", "10.42.0.0/24")], {}),                                      # nothing to do: stable
    ([node("b", created="2026-01-02T00:00:00Z"), node("a", created="2026-01-03T00:00:00Z")],
     {"b": "10.42.0.0/24", "a": "10.42.1.0/24"}),                           # oldest first
    ([node("z"), node("y")], {"y": "10.42.0.0/24", "z": "10.42.1.0/24"}),    # then by name
    ([node("a", deleting=True)], {}),                                       # a Node on its way out gets nothing
    ([node("x", "192.168.0.0/24"), node("a")], {"a": "10.42.0.0/24"}),      # outside the range: not ours
    ([node("x", "10.42.0.0/23"), node("a")], {"a": "10.42.2.0/24"}),        # a wider foreign block is skipped whole
    ([node("x", "not-a-cidr"), node("a")], {"a": "10.42.0.0/24"}),
])
def test_plan(nodes: list[Obj], want: dict[str, str]) -> None:
    assert cidrs(nodes) == want


def test_reserved_blocks_are_not_handed_out_twice() -> None:
    # b was given 10.42.0.0/24 but the cache does not show it yet: c must not get it too.
    nodes = [node("b"), node("c")]
    assert cidrs(nodes, reserved={"uid-b": "10.42.0.0/24"}) == {"c": "10.42.1.0/24"}


def test_small_cluster_range_is_one_block_and_then_full() -> None:
    p = plan("10.200.7.0/24", [node("a"), node("b")])
    assert p.allocations == (Allocation("a", "uid-a", "10.200.7.0/24"),)
    assert p.exhausted == ("b",)


def test_allocation_fills_the_whole_range_without_overlap() -> None:
    nodes = [node(f"n{i:03}") for i in range(256)]
    p = plan("10.42.0.0/16", nodes)
    blocks = [ipaddress.ip_network(a.cidr) for a in p.allocations]
    assert len(set(blocks)) == 256 and not p.exhausted
    assert all(b.prefixlen == 24 and b.subnet_of(ipaddress.ip_network("10.42.0.0/16")) for b in blocks)  # type: ignore[arg-type]
    full = [node(f"n{i:03}", a.cidr) for i, a in enumerate(p.allocations)] + [node("extra")]
    assert plan("10.42.0.0/16", full).exhausted == ("extra",)


def test_block_prefix() -> None:
    assert node_block_prefix(ipaddress.ip_network("10.42.0.0/16")) == 24
    assert node_block_prefix(ipaddress.ip_network("10.42.0.0/26")) == 26
    assert node_block_prefix(ipaddress.ip_network("fd00:42::/56")) == 64
    assert cidrs([node("a")], "fd00:42::/56") == {"a": "fd00:42::/64"}
