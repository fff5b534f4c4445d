"""`OverlayAgent.sync`: Nodes from the cache → the VTEP MAC annotation and a plan for the kernel."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any, cast

from minik.agent.overlay import node_net
from minik.agent.overlay import OverlayAgent
from minik.client import Client, Obj
from minik.machinery.informer import Informer
from minik.net.overlay import (
    VTEP_MAC_ANNOTATION, Changes, Desired, Fdb, Overlay, OverlaySettings, Route, parse_backend, vtep_mac,
)
from tests.support.builders import make_node
from tests.unit.controllers.fakeapi import FakeApi


def node(name: str, ip: str = "", cidr: str = "", mac: str = "") -> Obj:
    n = make_node(name)
    if cidr:
        n["spec"] = {"podCIDR": cidr}
    if ip:
        n["status"]["addresses"] = [{"type": "InternalIP", "address": ip}]
    if mac:
        n["metadata"]["annotations"] = {VTEP_MAC_ANNOTATION: mac}
    return n


class Nodes:
    def __init__(self, api: FakeApi) -> None:
        self.api = api
        self.resource = "nodes"

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.api.objects.get(("nodes", "", name))

    def list(self, namespace: str | None = None) -> list[Obj]:
        return [o for (r, _, _), o in self.api.objects.items() if r == "nodes"]

    def add_handler(self, handler: Any) -> None:
        pass


class RecordingOverlay:
    def __init__(self) -> None:
        self.desired: list[Desired] = []

    async def reconcile(self, desired: Desired) -> Changes:
        self.desired.append(desired)
        return Changes()

    async def close(self) -> None:
        pass


def agent(api: FakeApi, backend: str = "vxlan") -> tuple[OverlayAgent, RecordingOverlay]:
    rec = RecordingOverlay()
    settings = OverlaySettings(parse_backend(backend), cluster_cidr=ipaddress.IPv4Network("10.42.0.0/16"))
    a = OverlayAgent(cast(Client, api), cast(Informer, Nodes(api)), "a", settings,
                     overlay=cast(Overlay, rec), resync=30.0)
    return a, rec


def test_publishes_its_vtep_mac_and_plans_routes_to_annotated_nodes() -> None:
    api = FakeApi()
    api.put("nodes", node("a", "192.168.1.10", "10.42.0.0/24"))
    api.put("nodes", node("b", "192.168.1.11", "10.42.1.0/24", vtep_mac("b")))
    api.put("nodes", node("c", "192.168.1.12", "10.42.2.0/24"))      # no MAC published yet
    a, rec = agent(api)
    assert asyncio.run(a.sync("overlay")) == 30.0
    assert api.objects[("nodes", "", "a")]["metadata"]["annotations"] == {VTEP_MAC_ANNOTATION: vtep_mac("a")}
    (d,) = rec.desired
    assert d.device is not None and d.device.mac == vtep_mac("a") and str(d.device.local) == "192.168.1.10"
    assert d.routes == {Route(ipaddress.IPv4Network("10.42.1.0/24"), ipaddress.IPv4Address("10.42.1.0"), True)}
    assert d.fdb == {Fdb(vtep_mac("b"), ipaddress.IPv4Address("192.168.1.11"))}
    assert any(s.startswith("c:") for s in d.skipped)
    # Second sync: the annotation is already right, so no write.
    writes = len(api.writes)
    asyncio.run(a.sync("overlay"))
    assert len(api.writes) == writes


def test_waits_for_its_own_address_and_pod_cidr() -> None:
    api = FakeApi()
    api.put("nodes", node("a"))
    a, rec = agent(api)
    assert asyncio.run(a.sync("overlay")) is None
    assert rec.desired == [] and api.writes == []


def test_host_gw_publishes_nothing() -> None:
    api = FakeApi()
    api.put("nodes", node("a", "192.168.1.10", "10.42.0.0/24"))
    api.put("nodes", node("b", "192.168.1.11", "10.42.1.0/24"))
    a, rec = agent(api, "host-gw")
    asyncio.run(a.sync("overlay"))
    assert api.writes == []
    assert rec.desired[0].routes == {Route(ipaddress.IPv4Network("10.42.1.0/24"), ipaddress.IPv4Address("192.168.1.11"), False)}


def test_node_parsing() -> None:
    assert node_net(node("x", "192.168.1.1")) is None                        # no podCIDR
    assert node_net(node("x", cidr="10.42.3.0/24")) is None                  # no InternalIP
    assert node_net(node("x", "fd00::1", "10.42.3.0/24")) is None            # IPv6-only: not supported
    bad = node_net(node("x", "192.168.1.1", "10.42.3.0/24", mac="nonsense"))
    assert bad is not None and bad.vtep_mac == ""
    ok = node_net(node("x", "192.168.1.1", "10.42.3.0/24", mac="0E:00:00:00:00:01"))
    assert ok is not None and ok.vtep_mac == "0e:00:00:00:00:01"
    over = node_net(node("x", "192.168.1.1", "10.42.3.0/24"), ip_override="10.0.0.5")
    assert over is not None and str(over.ip) == "10.0.0.5"
