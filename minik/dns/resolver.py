"""From a query's bytes to a response's bytes: the cluster zone first, the upstreams for the rest.

`handle(data, tcp)` returns the response bytes when it can answer at once (a wire-cache hit, or a
cluster name: no task, no await), a `Deferred` when the answer needs an upstream (the server runs
it only if it has room), or None when the packet is to be dropped (malformed, a response, or too
much work in flight).
The wire cache maps a query's bytes after the ID (flags, question, EDNS) to the response's bytes
after the ID: a repeated question costs one dict lookup. Cluster answers stay valid until the zone
changes (the entry carries the zone generation, and for reverse names the pod generation too);
forwarded ones for at most a second, so the TTLs a client sees keep counting down. Records are
turned into dnspython rrsets through a small memo, so re-answering unchanged records after a zone
change skips the text parsing. Responses over UDP are truncated (TC set) at 512 bytes, or at
the client's EDNS payload size capped at 1232; the client then asks again over TCP.
CNAMEs (ExternalName Services) are followed inside the zone and chased upstream when they leave it.
Neighbours: `minik.dns.records.Zone`, `minik.dns.forward.Forwarder`, `minik.dns.cache.TtlLru`;
called by `minik.dns.server`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from minik.dns.cache import TtlLru
from minik.dns.forward import Forwarder, Upstreamed
from minik.dns.records import CNAME, RR, Answer, Zone

log = logging.getLogger("minik.dns.resolver")

Deferred = Callable[[], Awaitable[bytes | None]]
MAX_CNAME_CHAIN = 8
ZONE_ENTRY_TTL = 3600.0      # a cluster answer lives until the zone's generation moves
FORWARD_ENTRY_TTL = 1.0


def to_rrsets(records: Sequence[RR]) -> list[dns.rrset.RRset]:
    """Group records by (name, type), keeping their order."""
    groups: dict[tuple[str, int], list[RR]] = {}
    for r in records:
        groups.setdefault((r.name, r.rtype), []).append(r)
    return [dns.rrset.from_text_list(name, rs[0].ttl, dns.rdataclass.IN, dns.rdatatype.RdataType(rtype), [r.value for r in rs])
            for (name, rtype), rs in groups.items()]


class Resolver:
    def __init__(self, zone: Zone, forwarder: Forwarder | None, cache_entries: int = 10_000,
                 cache_bytes: int = 4 << 20, udp_payload: int = 1232, memo_entries: int = 1024) -> None:
        self.zone, self.forwarder, self.udp_payload = zone, forwarder, udp_payload
        # query bytes after the ID → (response bytes after the ID, zone generation, pod generation); -1: any
        self.wire: TtlLru[bytes, tuple[bytes, int, int]] = TtlLru(cache_entries, cache_bytes)
        self._memo: TtlLru[tuple[RR, ...], list[dns.rrset.RRset]] = TtlLru(memo_entries)
        self.malformed = 0
        self.queries = 0

    # ---- entry point --------------------------------------------------------------------------
    def handle(self, data: bytes, tcp: bool) -> bytes | Deferred | None:
        self.queries += 1
        key = (b"T" if tcp else b"U") + data[2:]
        hit = self.wire.get(key)
        if hit is not None and (hit[1] < 0 or hit[1] == self.zone.generation) and (hit[2] < 0 or hit[2] == self.zone.pod_generation):
            return data[:2] + hit[0]
        try:
            q = dns.message.from_wire(data)
        except Exception:   # untrusted bytes: whatever the parser chokes on, the packet is dropped
            self.malformed += 1
            return None
        if q.flags & dns.flags.QR:
            self.malformed += 1
            return None
        if q.opcode() != dns.opcode.QUERY:
            return self._error(q, dns.rcode.NOTIMP, tcp)
        if len(q.question) != 1:
            return self._error(q, dns.rcode.FORMERR, tcp)
        if q.edns > 0:   # RFC 6891: we speak EDNS version 0 only
            return self._error(q, dns.rcode.BADVERS, tcp)
        question = q.question[0]
        qname, qtype, qclass = question.name, question.rdtype, question.rdclass
        if qclass not in (dns.rdataclass.IN, dns.rdataclass.ANY):
            return self._error(q, dns.rcode.REFUSED, tcp)
        if qtype in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return self._error(q, dns.rcode.NOTIMP, tcp)
        generation = self.zone.generation
        text = qname.to_text().lower()
        pod_generation = self.zone.pod_generation if text.endswith(".arpa.") else -1
        ans = self.zone.resolve(text, qtype)
        if ans is None:
            if self.forwarder is None:
                return self._error(q, dns.rcode.SERVFAIL, tcp)
            fwd = self.forwarder
            return lambda: self._forwarded(fwd, q, key, tcp)
        records, rcode, authority, additional, chase = self._follow(ans, qtype)
        if chase and self.forwarder is not None:
            fwd = self.forwarder
            return lambda: self._chased(fwd, q, key, tcp, records, chase, generation)
        wire = self._render(q, rcode, self._rrsets(records), self._rrsets(authority), self._rrsets(additional), True, tcp)
        self.wire.put(key, (wire[2:], generation, pod_generation), ZONE_ENTRY_TTL, len(key) + len(wire))
        return wire

    def _rrsets(self, records: Sequence[RR]) -> list[dns.rrset.RRset]:
        """`to_rrsets` through a memo keyed on the records themselves (never stale; the rrsets
        are shared between responses and never modified)."""
        if not records:
            return []
        key = tuple(records)
        got = self._memo.get(key)
        if got is None:
            got = to_rrsets(records)
            self._memo.put(key, got, ZONE_ENTRY_TTL)
        return list(got)

    # ---- pieces -------------------------------------------------------------------------------
    def _follow(self, ans: Answer, qtype: int) -> tuple[list[RR], int, tuple[RR, ...], tuple[RR, ...], str]:
        """Follow CNAMEs through the zone: (records, rcode, authority, additional, name to chase
        upstream or "")."""
        records, rcode, authority, additional = list(ans.answer), ans.rcode, ans.authority, ans.additional
        if qtype in (CNAME, dns.rdatatype.ANY):
            return records, rcode, authority, additional, ""
        seen: set[str] = set()
        while rcode == dns.rcode.NOERROR and records and records[-1].rtype == CNAME and len(seen) < MAX_CNAME_CHAIN:
            target = records[-1].value
            if target in seen:
                break
            seen.add(target)
            nxt = self.zone.resolve(target, qtype)
            if nxt is None:
                return records, rcode, (), (), target
            records.extend(nxt.answer)
            rcode, authority, additional = nxt.rcode, nxt.authority, nxt.additional
        return records, rcode, authority, additional, ""

    async def _forwarded(self, fwd: Forwarder, q: dns.message.Message, key: bytes, tcp: bool) -> bytes | None:
        question = q.question[0]
        up = await fwd.query(question.name, question.rdtype, question.rdclass)
        if up is None:
            return None
        wire = self._render(q, up.rcode, list(up.answer), list(up.authority), list(up.additional), False, tcp)
        self.wire.put(key, (wire[2:], -1, -1), min(FORWARD_ENTRY_TTL, up.ttl), len(key) + len(wire))
        return wire

    async def _chased(self, fwd: Forwarder, q: dns.message.Message, key: bytes, tcp: bool, records: list[RR],
                      target: str, generation: int) -> bytes | None:
        question = q.question[0]
        try:
            name = dns.name.from_text(target)
        except dns.exception.DNSException:
            up = Upstreamed(dns.rcode.SERVFAIL, (), (), (), 0)
        else:
            got = await fwd.query(name, question.rdtype, question.rdclass)
            if got is None:
                return None
            up = got
        wire = self._render(q, up.rcode, [*self._rrsets(records), *up.answer], list(up.authority), [], False, tcp)
        self.wire.put(key, (wire[2:], generation, -1), min(FORWARD_ENTRY_TTL, up.ttl), len(key) + len(wire))
        return wire

    def _limit(self, q: dns.message.Message, tcp: bool) -> int:
        if tcp:
            return 65535
        if q.edns >= 0:
            return max(512, min(q.payload, self.udp_payload))
        return 512

    def _render(self, q: dns.message.Message, rcode: int, answer: list[dns.rrset.RRset],
                authority: list[dns.rrset.RRset], additional: list[dns.rrset.RRset], authoritative: bool,
                tcp: bool) -> bytes:
        r = dns.message.make_response(q, recursion_available=True, our_payload=self.udp_payload)
        r.set_rcode(dns.rcode.Rcode(rcode))
        if authoritative:
            r.flags |= dns.flags.AA
        r.answer, r.authority, r.additional = answer, authority, additional
        return r.to_wire(max_size=self._limit(q, tcp), prefer_truncation=True)

    def _error(self, q: dns.message.Message, rcode: int, tcp: bool) -> bytes:
        return self._render(q, rcode, [], [], [], False, tcp)
