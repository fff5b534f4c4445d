"""Forwarding of names outside the cluster zone to the host's upstream resolvers, with a bounded
cache of answers (positive and negative) whose TTLs count down.

Upstreams come from `--resolv-conf` (default /etc/resolv.conf; systemd-resolved's stub is replaced
by its real upstreams, `minik.net.resolvconf`). The cluster DNS IP itself is never an
upstream (it would loop). The file is re-read when it changes (checked at most every few seconds).
Each upstream query goes out on its own UDP socket (a fresh source port and a random ID, so a
blind spoofer has to guess both), falls back to TCP when the answer is truncated, and tries the
next upstream on timeout. Identical questions in flight share one upstream query; at most
`max_inflight` distinct questions are in flight, beyond that `query` returns None and the caller
drops the client's query (the client retries) instead of queueing without bound.
Negative answers (NXDOMAIN, NODATA) are cached for the SOA's negative TTL (RFC 2308), capped.
Neighbours: `minik.dns.cache.TtlLru`; called by `minik.dns.resolver`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from minik.dns.cache import TtlLru
from minik.net.resolvconf import STUB_ADDRESSES, SYSTEMD_RESOLV_CONF, host_resolv_conf, parse_nameservers

log = logging.getLogger("minik.dns.forward")

UPSTREAM_PAYLOAD = 1232


def host_upstreams(path: str, exclude: Sequence[str] = (), systemd_path: str = SYSTEMD_RESOLV_CONF) -> list[str]:
    servers = parse_nameservers(host_resolv_conf(path, systemd_path))
    return [s for s in servers if s not in exclude and s not in STUB_ADDRESSES]


@dataclass(frozen=True, slots=True)
class Upstreamed:
    """An upstream answer with TTLs as of now; `ttl` is how long it stays valid."""

    rcode: int
    answer: tuple[dns.rrset.RRset, ...]
    authority: tuple[dns.rrset.RRset, ...]
    additional: tuple[dns.rrset.RRset, ...]
    ttl: float


def _aged(rrsets: tuple[dns.rrset.RRset, ...], age: int) -> tuple[dns.rrset.RRset, ...]:
    if age <= 0:
        return rrsets
    out = []
    for rs in rrsets:
        copy = dns.rrset.RRset(rs.name, rs.rdclass, rs.rdtype, rs.covers)
        for rd in rs:
            copy.add(rd)
        copy.ttl = max(0, rs.ttl - age)
        out.append(copy)
    return tuple(out)


def cache_ttl(resp: dns.message.Message, max_ttl: int, max_negative_ttl: int, default_negative_ttl: int = 30,
              failure_ttl: int = 2) -> int:
    """How long an upstream answer may be cached: the smallest answer TTL; for NXDOMAIN/NODATA
    the SOA's negative TTL (min of its TTL and MINIMUM); failures briefly."""
    rcode = resp.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return failure_ttl
    if rcode == dns.rcode.NOERROR and resp.answer:
        return min(max_ttl, min(rs.ttl for rs in resp.answer))
    for rs in resp.authority:
        if rs.rdtype == dns.rdatatype.SOA and len(rs):
            soa = rs[0]
            return int(min(max_negative_ttl, rs.ttl, soa.minimum))
    return min(max_negative_ttl, default_negative_ttl)


Key = tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass]


class Forwarder:
    def __init__(self, resolv_conf: str = "/etc/resolv.conf", exclude: Sequence[str] = (), port: int = 53,
                 timeout: float = 2.0, max_inflight: int = 256, cache_entries: int = 10_000, cache_bytes: int = 2 << 20,
                 max_ttl: int = 3600, max_negative_ttl: int = 300, reload_every: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 upstreams: Callable[[], list[str]] | None = None) -> None:
        self.resolv_conf, self.exclude, self.port, self.timeout = resolv_conf, tuple(exclude), port, timeout
        self.max_inflight, self.max_ttl, self.max_negative_ttl = max_inflight, max_ttl, max_negative_ttl
        self.reload_every, self.clock = reload_every, clock
        self._source = upstreams or (lambda: host_upstreams(self.resolv_conf, self.exclude))
        # Answers are kept as their wire bytes (a parsed dnspython message costs ~10x the memory),
        # within an entry and a byte budget; a hit parses them again.
        self.cache: TtlLru[Key, tuple[bytes, float]] = TtlLru(cache_entries, cache_bytes, clock=clock)
        self._inflight: dict[Key, asyncio.Future[Upstreamed]] = {}
        self._upstreams: list[str] = []
        self._checked = -1e18
        self._stamp: tuple[float, int] | None = None
        self._next = 0
        self.upstream_queries = 0
        self.dropped = 0

    @property
    def upstreams(self) -> list[str]:
        self._refresh()
        return list(self._upstreams)

    def _refresh(self) -> None:
        now = self.clock()
        if now - self._checked < self.reload_every:
            return
        self._checked = now
        try:
            st = os.stat(self.resolv_conf)
            stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp or not self._upstreams:
            self._stamp = stamp
            fresh = self._source()
            if fresh != self._upstreams:
                log.info("DNS upstreams: %s", ", ".join(fresh) or "none")
            self._upstreams = fresh

    def cached(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType,
               qclass: dns.rdataclass.RdataClass = dns.rdataclass.IN) -> Upstreamed | None:
        hit = self.cache.get_with_expiry((qname, qtype, qclass))
        if hit is None:
            return None
        (raw, stored), expires = hit
        try:
            resp = dns.message.from_wire(raw)
        except dns.exception.DNSException:
            return None
        age = int(self.clock() - stored)
        return Upstreamed(resp.rcode(), _aged(tuple(resp.answer), age), _aged(tuple(resp.authority), age),
                          _aged(tuple(resp.additional), age), expires - self.clock())

    async def query(self, qname: dns.name.Name, qtype: dns.rdatatype.RdataType,
               qclass: dns.rdataclass.RdataClass = dns.rdataclass.IN) -> Upstreamed | None:
        """The answer for one question (from the cache, a query in flight or the upstreams);
        None when too many questions are in flight (drop the client's query)."""
        key = (qname, qtype, qclass)
        hit = self.cached(qname, qtype, qclass)
        if hit is not None:
            return hit
        fut = self._inflight.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        if len(self._inflight) >= self.max_inflight:
            self.dropped += 1
            return None
        fut = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            result = await self._resolve(key)
            fut.set_result(result)
            return result
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except Exception as e:
            fut.set_exception(e)
            fut.exception()   # retrieved: waiters re-raise it, nobody logs "never retrieved"
            raise
        finally:
            del self._inflight[key]

    async def _resolve(self, key: Key) -> Upstreamed:
        qname, qtype, qclass = key
        self._refresh()
        query = dns.message.make_query(qname, qtype, qclass, use_edns=0, payload=UPSTREAM_PAYLOAD)
        resp = await self._exchange(query)
        if resp is None:
            return Upstreamed(dns.rcode.SERVFAIL, (), (), (), 0)
        ttl = cache_ttl(resp, self.max_ttl, self.max_negative_ttl)
        raw = resp.to_wire()
        self.cache.put(key, (raw, self.clock()), ttl, len(raw))
        return Upstreamed(resp.rcode(), tuple(resp.answer), tuple(resp.authority), tuple(resp.additional), ttl)

    async def _exchange(self, query: dns.message.Message) -> dns.message.Message | None:
        servers = self._upstreams
        if not servers:
            return None
        wire = query.to_wire()
        for i in range(len(servers)):
            server = servers[(self._next + i) % len(servers)]
            try:
                self.upstream_queries += 1
                resp = await self._udp(server, wire, query)
                if resp.flags & dns.flags.TC:
                    resp = await self._tcp(server, wire, query)
                if resp.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED) and i + 1 < len(servers):
                    continue
                self._next = (self._next + i) % len(servers)
                return resp
            except (OSError, asyncio.TimeoutError, EOFError, dns.exception.DNSException) as e:
                log.debug("upstream %s: %s", server, e)
        return None

    def _address(self, server: str, kind: int) -> tuple[int, tuple[Any, ...]]:
        info = socket.getaddrinfo(server, self.port, type=kind, flags=socket.AI_NUMERICHOST)[0]
        return info[0], tuple(info[4])

    async def _udp(self, server: str, wire: bytes, query: dns.message.Message) -> dns.message.Message:
        loop = asyncio.get_running_loop()
        family, addr = self._address(server, socket.SOCK_DGRAM)
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect(addr)
            await loop.sock_sendall(sock, wire)
            deadline = loop.time() + self.timeout
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError()
                data = await asyncio.wait_for(loop.sock_recv(sock, 65535), left)
                try:
                    resp = dns.message.from_wire(data)
                except dns.exception.DNSException:
                    continue    # garbage on our port: keep waiting for the real answer
                if query.is_response(resp):
                    return resp

    async def _tcp(self, server: str, wire: bytes, query: dns.message.Message) -> dns.message.Message:
        family, addr = self._address(server, socket.SOCK_STREAM)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(addr[0], addr[1]), self.timeout)
        try:
            writer.write(struct.pack("!H", len(wire)) + wire)
            await writer.drain()
            (n,) = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), self.timeout))
            resp = dns.message.from_wire(await asyncio.wait_for(reader.readexactly(n), self.timeout))
            if not query.is_response(resp):
                raise EOFError("answer does not match the question")
            return resp
        finally:
            writer.close()
