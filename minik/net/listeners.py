"""Which ports processes on this host listen on, from /proc/net (pure parser + one reader).

Role: ServiceLB (`minik.controllers.servicelb`) must not hand a port to a LoadBalancer Service
when a host process already serves it: the Service's DNAT on the node addresses would silently
steal that process's traffic. TCP sockets in LISTEN state and bound UDP/SCTP-less UDP sockets
count, on any local address (the wildcard, a node address, loopback).
Neighbours: read by the daemon's ServiceLB wiring; imports nothing else from minik.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


@dataclass(frozen=True, slots=True)
class Listener:
    protocol: str     # "TCP" or "UDP" (Kubernetes spelling)
    address: str      # as /proc shows it, decoded (IPv4 dotted or IPv6 hex)
    port: int


def _decode_v4(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    return ".".join(str(b) for b in reversed(raw))


def parse(text: str, protocol: str, v6: bool = False) -> list[Listener]:
    """Listening sockets of one /proc/net/{tcp,tcp6,udp,udp6} file."""
    want = TCP_LISTEN if protocol == "TCP" else UDP_UNCONNECTED
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 4 or fields[3] != want:
            continue
        addr, _, port = fields[1].partition(":")
        try:
            number = int(port, 16)
            address = addr if v6 else _decode_v4(addr)
        except ValueError:
            continue
        out.append(Listener(protocol, address, number))
    return out


def host_listeners(proc_net: Path = Path("/proc/net")) -> set[tuple[str, int]]:
    """(protocol, port) pairs some host process listens on."""
    out: set[tuple[str, int]] = set()
    for name, proto, v6 in (("tcp", "TCP", False), ("tcp6", "TCP", True), ("udp", "UDP", False), ("udp6", "UDP", True)):
        try:
            text = (proc_net / name).read_text()
        except OSError:
            continue
        out |= {(lst.protocol, lst.port) for lst in parse(text, proto, v6)}
    return out
