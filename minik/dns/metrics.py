"""Prometheus metrics of cluster DNS on <DNS IP>:9153/metrics, the `metrics` port the kube-dns
Service advertises (where CoreDNS serves its own), so a scraper pointed at kube-dns finds them.

`render` is pure: counters of the resolver, server, forwarder and zone as Prometheus text. The
HTTP side is a few lines of asyncio (GET /metrics, one request per connection): a joined agent
runs cluster DNS too, and aiohttp's server would cost it ~11 MB of RSS for one scrape URL.
Neighbours: `minik.dns.service` runs `serve_metrics` as the `dns-metrics` task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from minik.dns.forward import Forwarder
from minik.dns.records import Zone
from minik.dns.resolver import Resolver
from minik.dns.server import DnsServer

log = logging.getLogger("minik.dns.metrics")


def render(zone: Zone, resolver: Resolver, server: DnsServer, forwarder: Forwarder | None) -> str:
    rows: list[tuple[str, str, float]] = [
        ("minik_dns_requests_total", "counter", resolver.queries),
        ("minik_dns_malformed_requests_total", "counter", resolver.malformed),
        ("minik_dns_dropped_requests_total", "counter", server.dropped + (forwarder.dropped if forwarder else 0)),
        ("minik_dns_response_cache_hits_total", "counter", resolver.wire.hits),
        ("minik_dns_response_cache_entries", "gauge", len(resolver.wire)),
        ("minik_dns_response_cache_bytes", "gauge", resolver.wire.bytes),
        ("minik_dns_inflight_requests", "gauge", len(server.tasks)),
        ("minik_dns_tcp_connections", "gauge", server.tcp_connections),
        ("minik_dns_zone_services", "gauge", len(zone)),
        ("minik_dns_zone_generation", "counter", zone.generation),
    ]
    if forwarder is not None:
        rows += [("minik_dns_forward_requests_total", "counter", forwarder.upstream_queries),
                 ("minik_dns_forward_cache_hits_total", "counter", forwarder.cache.hits),
                 ("minik_dns_forward_cache_entries", "gauge", len(forwarder.cache))]
    out = []
    for name, kind, value in rows:
        out.append(f"# TYPE {name} {kind}\n{name} {value:g}")
    return "\n".join(out) + "\n"


def _response(status: str, body: str) -> bytes:
    data = body.encode()
    head = (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n")
    return head.encode() + data


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, body: Callable[[], str]) -> None:
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10.0)
        method, _, rest = head.split(b"\r\n", 1)[0].decode("latin-1").partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/metrics":
            writer.write(_response("404 Not Found", "404 page not found\n"))
        elif method not in ("GET", "HEAD"):
            writer.write(_response("405 Method Not Allowed", "method not allowed\n"))
        else:
            out = _response("200 OK", body())
            writer.write(out if method == "GET" else out[:out.index(b"\r\n\r\n") + 4])
        await writer.drain()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, asyncio.TimeoutError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def serve_metrics(host: str, port: int, zone: Zone, resolver: Resolver, server: DnsServer,
                        forwarder: Forwarder | None) -> None:
    """Serve /metrics until cancelled."""
    srv = await asyncio.start_server(
        lambda r, w: _answer(r, w, lambda: render(zone, resolver, server, forwarder)), host, port, reuse_address=True)
    try:
        log.info("cluster DNS metrics on http://%s:%d/metrics", host, port)
        await asyncio.Event().wait()
    finally:
        srv.close()
        await srv.wait_closed()
