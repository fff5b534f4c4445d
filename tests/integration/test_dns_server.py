"""The cluster DNS server in process on a loopback port: real UDP/TCP sockets, the resolver over a
zone built from Service/EndpointSlice objects, forwarding to a test upstream on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import dns.asyncquery
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import pytest

from minik.dns.forward import Forwarder
from minik.dns.records import Zone, service_entry
from minik.dns.resolver import Resolver
from minik.dns.server import SO_RCVBUFFORCE, DnsServer
from tests.support.dns_objects import endpoint, make_service, make_slice, svc_port
from tests.support.dnsupstream import Upstream

D = "cluster.local."


@dataclass
class Running:
    server: DnsServer
    resolver: Resolver
    zone: Zone
    upstream: Upstream

    @property
    def port(self) -> int:
        return self.server.port

    async def udp(self, name: str, rtype: str = "A", **kw: object) -> dns.message.Message:
        q = dns.message.make_query(name, rtype, **kw)  # type: ignore[arg-type]
        return await dns.asyncquery.udp(q, "127.0.0.1", port=self.port, timeout=5, ignore_trailing=False)

    async def tcp(self, name: str, rtype: str = "A") -> dns.message.Message:
        return await dns.asyncquery.tcp(dns.message.make_query(name, rtype), "127.0.0.1", port=self.port, timeout=5)


def _zone() -> Zone:
    z = Zone("cluster.local", dns_ip="10.43.0.10")
    big = [endpoint(f"10.42.{i // 250}.{i % 250 + 1}") for i in range(120)]
    for svc, slices in [
        (make_service("web", cluster_ip="10.43.0.20", ports=[svc_port(80, "http")]), []),
        (make_service("big", cluster_ip="None"), [make_slice("big", big)]),
        (make_service("ext", external_name="outside.example"), []),
    ]:
        m = svc["metadata"]
        z.set_service(m["namespace"], m["name"], service_entry(svc, slices))
    return z


@pytest.fixture
async def dns_server() -> AsyncIterator[Running]:
    up = Upstream().start()
    up.add("outside.example", "A", "192.0.2.7").add("www.example", "A", "192.0.2.8")
    up.add("many.example", "A", *[f"192.0.2.{i}" for i in range(1, 60)])
    zone = _zone()
    fwd = Forwarder(port=up.port, upstreams=lambda: ["127.0.0.1"], timeout=1.0)
    resolver = Resolver(zone, fwd)
    server = DnsServer(resolver, "127.0.0.1", 0, max_inflight=8, max_tcp=4, tcp_idle=2.0)
    await server.start()
    try:
        yield Running(server, resolver, zone, up)
    finally:
        await server.close()
        up.stop()


async def test_cluster_names_over_udp_and_tcp(dns_server: Running) -> None:
    r = await dns_server.udp("web.default.svc." + D)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [rd.to_text() for rd in r.answer[0]] == ["10.43.0.20"]
    r = await dns_server.tcp("web.default.svc." + D)
    assert [rd.to_text() for rd in r.answer[0]] == ["10.43.0.20"]
    r = await dns_server.udp("nope.default.svc." + D)
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].rdtype == dns.rdatatype.SOA
    r = await dns_server.udp("web.default.svc." + D, "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority   # NODATA


async def test_repeated_queries_come_from_the_wire_cache_until_the_zone_changes(dns_server: Running) -> None:
    for _ in range(3):
        r = await dns_server.udp("web.default.svc." + D)
        assert [rd.to_text() for rd in r.answer[0]] == ["10.43.0.20"]
    assert dns_server.resolver.wire.hits >= 2
    svc = make_service("web", cluster_ip="10.43.0.21", ports=[svc_port(80, "http")])
    dns_server.zone.set_service("default", "web", service_entry(svc, []))
    r = await dns_server.udp("web.default.svc." + D)
    assert [rd.to_text() for rd in r.answer[0]] == ["10.43.0.21"]


async def test_pod_churn_keeps_cached_service_names_but_refreshes_ptr(dns_server: Running) -> None:
    await dns_server.udp("web.default.svc." + D)
    ptr = "5.9.42.10.in-addr.arpa."
    dns_server.zone.set_pod("default/a", "default", ["10.42.9.5"])
    r = await dns_server.udp(ptr, "PTR")
    assert [rd.to_text() for rd in r.answer[0]] == ["10-42-9-5.default.pod.cluster.local."]
    hits = dns_server.resolver.wire.hits
    dns_server.zone.set_pod("default/a", "default", [])
    dns_server.zone.set_pod("default/b", "other", ["10.42.9.5"])     # the IP went to another pod
    await dns_server.udp("web.default.svc." + D)
    assert dns_server.resolver.wire.hits == hits + 1                 # still cached
    r = await dns_server.udp(ptr, "PTR")
    assert [rd.to_text() for rd in r.answer[0]] == ["10-42-9-5.other.pod.cluster.local."]


async def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(dns_server: Running) -> None:
    r = await dns_server.udp("big.default.svc." + D, use_edns=False)
    assert r.flags & dns.flags.TC
    r = await dns_server.udp("big.default.svc." + D, use_edns=0, payload=1232)
    assert r.flags & dns.flags.TC                       # 120 records do not fit 1232 bytes either
    r = await dns_server.tcp("big.default.svc." + D)
    assert not r.flags & dns.flags.TC
    assert len(r.answer[0]) == 120


async def test_forwarded_names_are_cached_positive_and_negative(dns_server: Running) -> None:
    up = dns_server.upstream
    for _ in range(3):
        r = await dns_server.udp("www.example.")
        assert [rd.to_text() for rd in r.answer[0]] == ["192.0.2.8"]
        assert not r.flags & dns.flags.AA
    assert up.queries[("www.example.", "A")] == 1
    for _ in range(3):
        r = await dns_server.udp("missing.example.")
        assert r.rcode() == dns.rcode.NXDOMAIN
    assert up.queries[("missing.example.", "A")] == 1
    # Upstream truncation is retried over TCP: the client gets the whole answer over TCP.
    r = await dns_server.tcp("many.example.")
    assert len(r.answer[0]) == 59


async def test_externalname_is_chased_upstream(dns_server: Running) -> None:
    r = await dns_server.udp("ext.default.svc." + D)
    assert [rs.rdtype for rs in r.answer] == [dns.rdatatype.CNAME, dns.rdatatype.A]
    assert r.answer[0][0].to_text() == "outside.example."
    assert r.answer[1][0].to_text() == "192.0.2.7"


async def test_malformed_packets_are_dropped_and_the_server_goes_on(dns_server: Running) -> None:
    garbage = [b"", b"\x00", b"\x12\x34" + b"\xff" * 40, dns.message.make_query("web.default.svc." + D, "A").to_wire()[:-3]]
    resp = dns.message.make_response(dns.message.make_query("web.default.svc." + D, "A")).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        for g in [*garbage, resp]:
            s.sendto(g, ("127.0.0.1", dns_server.port))
        await asyncio.sleep(0.2)
        with pytest.raises(TimeoutError):
            s.recv(512)
    assert dns_server.resolver.malformed >= len(garbage)
    # TCP: a garbage message gets no answer, the connection stays usable.
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    good = dns.message.make_query("web.default.svc." + D, "A")
    writer.write(struct.pack("!H", 5) + b"\x01\x02\x03\x04\x05" + struct.pack("!H", len(good.to_wire())) + good.to_wire())
    await writer.drain()
    n = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), 5))[0]
    answer = dns.message.from_wire(await reader.readexactly(n))
    assert answer.id == good.id
    writer.close()
    r = await dns_server.udp("web.default.svc." + D)
    assert r.rcode() == dns.rcode.NOERROR


async def test_other_opcodes_and_classes(dns_server: Running) -> None:
    q = dns.message.make_query("web.default.svc." + D, "A")
    q.set_opcode(dns.opcode.NOTIFY)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=dns_server.port, timeout=5)
    assert r.rcode() == dns.rcode.NOTIMP
    q = dns.message.make_query("web.default.svc." + D, "A", use_edns=1)
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=dns_server.port, timeout=5)
    assert r.rcode() == dns.rcode.BADVERS and r.edns == 0
    q = dns.message.make_query("version.bind.", "TXT", rdclass="CH")
    r = await dns.asyncquery.udp(q, "127.0.0.1", port=dns_server.port, timeout=5)
    assert r.rcode() == dns.rcode.REFUSED


async def test_a_flood_of_upstream_queries_is_bounded() -> None:
    """An upstream that never answers: at most max_inflight queries wait, the rest are dropped."""
    with Upstream(silent=True) as up:
        fwd = Forwarder(port=up.port, upstreams=lambda: ["127.0.0.1"], timeout=2.0, max_inflight=1000)
        server = DnsServer(Resolver(_zone(), fwd), "127.0.0.1", 0, max_inflight=8)
        await server.start()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(200):
                    s.sendto(dns.message.make_query(f"n{i}.example.", "A").to_wire(), ("127.0.0.1", server.port))
                await asyncio.sleep(0.5)
            assert len(server.tasks) <= 8
            assert server.dropped >= 150
            # Cluster names are still answered at once while the upstream hangs.
            r = await dns.asyncquery.udp(dns.message.make_query("web.default.svc." + D, "A"), "127.0.0.1",
                                         port=server.port, timeout=5)
            assert r.answer
        finally:
            await server.close()


async def test_no_upstream_means_servfail() -> None:
    fwd = Forwarder(upstreams=lambda: [])
    server = DnsServer(Resolver(_zone(), fwd), "127.0.0.1", 0)
    await server.start()
    try:
        r = await dns.asyncquery.udp(dns.message.make_query("www.example.", "A"), "127.0.0.1", port=server.port, timeout=5)
        assert r.rcode() == dns.rcode.SERVFAIL
    finally:
        await server.close()


async def test_tcp_connections_are_bounded(dns_server: Running) -> None:
    conns = [await asyncio.open_connection("127.0.0.1", dns_server.port) for _ in range(4)]
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", dns_server.port)
    assert await asyncio.wait_for(reader.read(10), 5) == b""     # closed at once: over the limit
    writer.close()
    for _, w in conns:
        w.close()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_forwarder_ttls_count_down_and_inflight_questions_are_shared() -> None:
    clock = Clock()
    with Upstream(ttl=100) as up:
        up.add("www.example", "A", "192.0.2.8")
        fwd = Forwarder(port=up.port, upstreams=lambda: ["127.0.0.1"], clock=clock)
        name = dns.name.from_text("www.example.")
        first, second = await asyncio.gather(fwd.query(name, dns.rdatatype.A), fwd.query(name, dns.rdatatype.A))
        assert first is not None and second is not None
        assert up.queries[("www.example.", "A")] == 1
        assert first.answer[0].ttl == 100
        clock.now += 40
        later = await fwd.query(name, dns.rdatatype.A)
        assert later is not None and later.answer[0].ttl == 60 and 59 <= later.ttl <= 60
        assert first.answer[0].ttl == 100      # what was handed out earlier is not changed
        clock.now += 61
        await fwd.query(name, dns.rdatatype.A)
        assert up.queries[("www.example.", "A")] == 2


async def test_forwarder_tries_the_next_upstream() -> None:
    with Upstream(silent=True) as dead:
        # One port per Forwarder: the live upstream listens on 127.0.0.2 with the dead one's port.
        live2 = Upstream(host="127.0.0.2", port=dead.port).add("www.example", "A", "192.0.2.8").start()
        try:
            fwd = Forwarder(port=dead.port, upstreams=lambda: ["127.0.0.1", "127.0.0.2"], timeout=0.3)
            got = await fwd.query(dns.name.from_text("www.example."), dns.rdatatype.A)
            assert got is not None and got.rcode == dns.rcode.NOERROR
            assert [rd.to_text() for rd in got.answer[0]] == ["192.0.2.8"]
        finally:
            live2.stop()


async def test_a_burst_while_the_loop_is_busy_waits_in_the_socket(dns_server: Running) -> None:
    """2,000 queries sent while the event loop cannot read (here: this test holds it) are all
    answered once it can: the server's receive buffer holds them (the default ~208 KiB holds a
    few hundred, and a dropped query costs a client a resolver timeout)."""
    n = 2000
    body = dns.message.make_query("web.default.svc." + D, "A").to_wire()[2:]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)   # the answers come back as fast (tests run as root)
        c.connect(("127.0.0.1", dns_server.port))
        c.settimeout(5)
        for qid in range(n):   # the loop is blocked: nothing is read while these go out
            c.send(struct.pack("!H", qid) + body)

        def collect() -> set[int]:
            seen: set[int] = set()
            try:
                while len(seen) < n:
                    seen.add(struct.unpack("!H", c.recv(4096)[:2])[0])
            except TimeoutError:
                pass
            return seen

        got = await asyncio.to_thread(collect)
    assert len(got) == n
