"""A tiny authoritative DNS server for tests (dnspython, UDP and TCP, in a thread): plays the host's
upstream resolver on a loopback address so forwarding is tested without any traffic leaving the
host. Records are given as zone-file-like lines; every query is counted by (name, type)."""

from __future__ import annotations

import socket
import socketserver
import struct
import threading
from collections import Counter
from typing import Any

import dns.flags
import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset


class Upstream:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, ttl: int = 300, soa_minimum: int = 60,
                 silent: bool = False) -> None:
        self.host, self.port, self.ttl, self.soa_minimum, self.silent = host, port, ttl, soa_minimum, silent
        self.records: dict[tuple[str, str], list[str]] = {}
        self.queries: Counter[tuple[str, str]] = Counter()
        self._servers: list[socketserver.BaseServer] = []

    def add(self, name: str, rtype: str, *values: str) -> Upstream:
        self.records.setdefault((name.lower().rstrip(".") + ".", rtype.upper()), []).extend(values)
        return self

    def answer(self, data: bytes) -> bytes | None:
        q = dns.message.from_wire(data)
        question = q.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries[(name, rtype)] += 1
        if self.silent:
            return None
        r = dns.message.make_response(q, recursion_available=True)
        values = self.records.get((name, rtype))
        if values:
            r.answer.append(dns.rrset.from_text_list(name, self.ttl, "IN", rtype, values))
        else:
            if not any(n == name for n, _ in self.records):
                r.set_rcode(dns.rcode.NXDOMAIN)
            r.authority.append(dns.rrset.from_text(
                "example.", self.ttl, "IN", "SOA", f"ns.example. admin.example. 1 60 60 60 {self.soa_minimum}"))
        return r.to_wire()

    def start(self) -> Upstream:
        outer = self
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                out = outer.answer(data)
                if out is not None:
                    if len(out) > 512 and dns.message.from_wire(data).edns < 0:
                        m = dns.message.from_wire(out)
                        m.answer = []
                        m.flags |= dns.flags.TC
                        out = m.to_wire()
                    sock.sendto(out, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                f = self.request.makefile("rb")
                head = f.read(2)
                if len(head) < 2:
                    return
                out = outer.answer(f.read(struct.unpack("!H", head)[0]))
                if out is not None:
                    self.request.sendall(struct.pack("!H", len(out)) + out)

        class UdpServer(socketserver.ThreadingUDPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

        class TcpServer(socketserver.ThreadingTCPServer):
            address_family = family
            allow_reuse_address = True
            daemon_threads = True

        # With port 0, find a port free for UDP and TCP (busy hosts have many TCP ports taken).
        for attempt in range(20 if self.port == 0 else 1):
            udp = UdpServer((self.host, self.port), Udp)
            try:
                tcp = TcpServer((self.host, udp.server_address[1]), Tcp)
                break
            except OSError:
                udp.server_close()
                if attempt == 19 or self.port:
                    raise
        self.port = udp.server_address[1]
        self._servers = [udp, tcp]
        for s in self._servers:
            threading.Thread(target=s.serve_forever, name=f"dns-upstream-{type(s).__name__}", daemon=True).start()
        return self

    def stop(self) -> None:
        for s in self._servers:
            s.shutdown()
            s.server_close()

    def __enter__(self) -> Upstream:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
