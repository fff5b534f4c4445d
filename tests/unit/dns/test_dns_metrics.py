"""The metrics endpoint's HTTP side (minik.dns.metrics.serve_metrics) on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from minik.dns.metrics import serve_metrics
from minik.dns.records import Zone
from minik.dns.resolver import Resolver
from minik.dns.server import DnsServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _get(port: int, request: bytes) -> bytes:
    for _ in range(100):
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            break
        except OSError:
            await asyncio.sleep(0.02)
    w.write(request)
    await w.drain()
    data = await asyncio.wait_for(r.read(), 5)
    w.close()
    return data


async def test_metrics_served_and_other_paths_404() -> None:
    zone = Zone("cluster.local", dns_ip="10.43.0.10")
    resolver = Resolver(zone, None)
    server = DnsServer(resolver, "127.0.0.1", 0)
    port = _free_port()
    task = asyncio.create_task(serve_metrics("127.0.0.1", port, zone, resolver, server, None))
    try:
        ok = await _get(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = ok.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(body)
        assert b"# TYPE minik_dns_requests_total counter\nminik_dns_requests_total 0\n" in body
        assert b"minik_dns_zone_services 0" in body
        missing = await _get(port, b"GET /other HTTP/1.1\r\n\r\n")
        assert missing.startswith(b"HTTP/1.1 404")
        post = await _get(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        assert post.startswith(b"HTTP/1.1 405")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
