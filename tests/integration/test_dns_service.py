"""ClusterDns wired to a shared InformerFactory (a client whose watches the test drives): the zone
is loaded before the server binds, and Service, EndpointSlice and pod events change the answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import pytest

from minik.client import Obj, WatchEvent
from minik.dns.forward import Forwarder
from minik.dns.service import SLICES, ClusterDns, DnsSettings, pod_ips, slice_service
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor
from tests.support.builders import make_pod
from tests.support.dns_objects import endpoint, make_service, make_slice

D = "cluster.local."


class DrivenClient:
    """`list` returns the initial objects; `watch` yields what the test pushes."""

    def __init__(self, lists: dict[str, list[Obj]]) -> None:
        self.lists = lists
        self.queues: dict[str, asyncio.Queue[WatchEvent]] = {}
        self.rv = 1

    def _q(self, resource: str) -> asyncio.Queue[WatchEvent]:
        return self.queues.setdefault(resource, asyncio.Queue())

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        return list(self.lists.get(resource, [])), "1"

    async def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        q = self._q(resource)
        while True:
            yield await q.get()

    def push(self, resource: str, kind: str, obj: Obj) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self._q(resource).put_nowait(WatchEvent(kind, obj))


@pytest.fixture
async def cluster_dns() -> AsyncIterator[tuple[ClusterDns, DrivenClient]]:
    client = DrivenClient({"services": [make_service("web", cluster_ip="10.43.0.20")]})
    sup = Supervisor()
    factory = InformerFactory(client, sup)  # type: ignore[arg-type]
    settings = DnsSettings(dns_ip="127.0.0.1", port=0, metrics_port=0, own_address=False)
    cd = ClusterDns(settings, factory, sup, forwarder=Forwarder(upstreams=lambda: []))
    factory.start()
    cd.start()
    deadline = time.monotonic() + 10
    while cd.server.port == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert cd.server.port, "the DNS server did not bind"
    try:
        yield cd, client
    finally:
        await sup.stop()


async def ask(cd: ClusterDns, name: str, rtype: str = "A") -> dns.message.Message:
    return await dns.asyncquery.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=cd.server.port, timeout=5)


async def answers(cd: ClusterDns, name: str, rtype: str = "A", want: Any = None, timeout: float = 5.0) -> list[str]:
    """The answer values, polled until they equal `want` (when given)."""
    deadline = time.monotonic() + timeout
    while True:
        r = await ask(cd, name, rtype)
        got = sorted(rd.to_text() for rs in r.answer for rd in rs)
        if want is None or got == want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.02)


async def test_events_change_the_answers(cluster_dns: tuple[ClusterDns, DrivenClient]) -> None:
    cd, client = cluster_dns
    assert await answers(cd, "web.default.svc." + D) == ["10.43.0.20"]   # loaded before binding
    client.push("services", "ADDED", make_service("db", cluster_ip="None"))
    client.push(SLICES, "ADDED", make_slice("db", [endpoint("10.42.0.5"), endpoint("10.42.0.6", hostname="db-1")]))
    assert await answers(cd, "db.default.svc." + D, want=["10.42.0.5", "10.42.0.6"]) == ["10.42.0.5", "10.42.0.6"]
    client.push(SLICES, "MODIFIED", make_slice("db", [endpoint("10.42.0.6", hostname="db-1"), endpoint("10.42.0.5", ready=False)]))
    assert await answers(cd, "db.default.svc." + D, want=["10.42.0.6"]) == ["10.42.0.6"]
    client.push(SLICES, "DELETED", make_slice("db", []))
    deadline = time.monotonic() + 5
    while (await ask(cd, "db.default.svc." + D)).rcode() != dns.rcode.NXDOMAIN:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    client.push("services", "DELETED", make_service("web", cluster_ip="10.43.0.20"))
    deadline = time.monotonic() + 5
    while (await ask(cd, "web.default.svc." + D)).rcode() != dns.rcode.NXDOMAIN:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    client.push("pods", "ADDED", make_pod("p", ip="10.42.0.9"))
    assert await answers(cd, "9.0.42.10.in-addr.arpa.", "PTR", want=["10-42-0-9.default.pod.cluster.local."]) == [
        "10-42-0-9.default.pod.cluster.local."]


def test_slice_index_and_pod_ips() -> None:
    assert slice_service(make_slice("web", [], namespace="ns")) == ["ns/web"]
    assert slice_service({"metadata": {"name": "x", "namespace": "ns"}}) == []
    assert pod_ips(make_pod("p", ip="10.42.0.9")) == ("10.42.0.9",)
    assert pod_ips(make_pod("p", ip="192.0.2.2", hostNetwork=True)) == ()
    assert pod_ips(make_pod("p")) == ()
    assert pod_ips(None) == ()


def test_node_ips() -> None:
    from minik.dns.service import node_ips
    node = {"metadata": {"name": "n1"}, "status": {"addresses": [{"type": "InternalIP", "address": "192.0.2.2"},
                                                                 {"type": "Hostname", "address": "n1"}]}}
    assert node_ips(node) == ("192.0.2.2",)
    assert node_ips({"metadata": {"name": "n1"}}) == ()
    assert node_ips(None) == ()
