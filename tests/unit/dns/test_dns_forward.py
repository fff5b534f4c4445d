"""Forwarding: upstreams from resolv.conf (systemd-resolved's stub replaced by its real upstreams),
cache TTLs (positive, negative from the SOA, failures), the bounded LRU. (The Forwarder against a
live upstream: tests/integration/test_dns_server.py.)"""

from __future__ import annotations

from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from minik.dns.cache import TtlLru
from minik.dns.forward import cache_ttl, host_upstreams
from minik.net.resolvconf import host_resolv_conf, parse_nameservers


@pytest.mark.parametrize("text,want", [
    ("nameserver 1.1.1.1\nnameserver 9.9.9.9\n", ["1.1.1.1", "9.9.9.9"]),
    ("# comment\nsearch example.com\nnameserver 10.0.0.2 # trailing\noptions ndots:2\n", ["10.0.0.2"]),
    ("nameserver not-an-ip\nnameserver\nnameserver 2001:db8::1\n", ["2001:db8::1"]),
    ("nameserver fe80::1%eth0\nnameserver 1.1.1.1\nnameserver 1.1.1.1\n", ["fe80::1%eth0", "1.1.1.1"]),
    ("", []),
])
def test_parse_nameservers(text: str, want: list[str]) -> None:
    assert parse_nameservers(text) == want


def test_systemd_resolved_stub_is_replaced_by_its_upstreams(tmp_path: Path) -> None:
    stub = tmp_path / "resolv.conf"
    real = tmp_path / "real.conf"
    stub.write_text("nameserver 127.0.0.53\noptions edns0 trust-ad\n")
    real.write_text("nameserver 192.168.1.1\nnameserver 10.43.0.10\n")
    assert host_upstreams(str(stub), exclude=("10.43.0.10",), systemd_path=str(real)) == ["192.168.1.1"]
    # A stub among real servers is just dropped; a missing file means no upstream.
    stub.write_text("nameserver 127.0.0.53\nnameserver 8.8.8.8\n")
    assert host_upstreams(str(stub), systemd_path=str(real)) == ["8.8.8.8"]
    assert host_upstreams(str(tmp_path / "missing"), systemd_path=str(real)) == []
    assert host_upstreams("/dev/null") == []


def _resp(rcode: int = dns.rcode.NOERROR, answer_ttls: tuple[int, ...] = (), soa: tuple[int, int] | None = None) -> dns.message.Message:
    r = dns.message.make_response(dns.message.make_query("x.example.", "A"))
    r.set_rcode(dns.rcode.Rcode(rcode))
    for i, ttl in enumerate(answer_ttls):
        r.answer.append(dns.rrset.from_text(f"a{i}.example.", ttl, "IN", "A", "192.0.2.1"))
    if soa is not None:
        r.authority.append(dns.rrset.from_text("example.", soa[0], "IN", "SOA", f"ns. host. 1 2 3 4 {soa[1]}"))
    return r


@pytest.mark.parametrize("resp,want", [
    (_resp(answer_ttls=(300, 60)), 60),                     # smallest answer TTL
    (_resp(answer_ttls=(86400 * 7,)), 3600),               # capped
    (_resp(dns.rcode.NXDOMAIN, soa=(900, 120)), 120),       # RFC 2308: min(SOA TTL, MINIMUM)
    (_resp(dns.rcode.NXDOMAIN, soa=(30, 120)), 30),
    (_resp(dns.rcode.NOERROR, soa=(3600, 3600)), 300),      # NODATA, capped at the negative maximum
    (_resp(dns.rcode.NXDOMAIN), 30),                        # no SOA: a default
    (_resp(dns.rcode.SERVFAIL), 2),                         # failures only briefly
])
def test_cache_ttl(resp: dns.message.Message, want: int) -> None:
    assert cache_ttl(resp, max_ttl=3600, max_negative_ttl=300) == want


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_lru_bounds_entries_and_bytes_and_expires() -> None:
    clock = Clock()
    c: TtlLru[str, int] = TtlLru(3, max_bytes=100, clock=clock)
    for k in "abc":
        c.put(k, 1, ttl=10, size=10)
    assert c.get("a") == 1                 # a is now the most recent
    c.put("d", 1, ttl=10, size=10)         # evicts b, the least recently used
    assert c.get("b") is None and len(c) == 3
    c.put("e", 1, ttl=10, size=90)         # over the byte budget: oldest go until it fits
    assert c.bytes <= 100 and c.get("e") == 1
    c.put("big", 1, ttl=10, size=101)      # larger than the whole budget: not kept
    assert c.get("big") is None
    clock.now += 11
    assert c.get("e") is None and c.get("a") is None
    c.put("z", 1, ttl=0)
    assert c.get("z") is None


def test_pods_with_dns_policy_default_get_systemd_resolveds_real_file(tmp_path: Path) -> None:
    stub = tmp_path / "resolv.conf"
    real = tmp_path / "real.conf"
    stub.write_text("nameserver 127.0.0.53\nsearch lan\n")
    real.write_text("nameserver 192.168.1.1\nsearch lan corp\n")
    assert host_resolv_conf(str(stub), str(real)) == real.read_text()
    real.write_text("# nothing\n")     # no real upstreams known: keep what we were given
    assert host_resolv_conf(str(stub), str(real)) == stub.read_text()
    stub.write_text("nameserver 10.0.0.2\n")
    assert host_resolv_conf(str(stub), str(real)) == "nameserver 10.0.0.2\n"
