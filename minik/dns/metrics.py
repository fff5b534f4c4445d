"""Prometheus metrics of cluster DNS on <DNS IP>:9153/metrics, the `metrics` port the kube-dns
Service advertises (where CoreDNS serves its own), so a scraper pointed at kube-dns finds them.

`render` is pure: counters of the resolver, server, forwarder and zone as Prometheus text.
Neighbours: `minik.dns.service` runs `serve_metrics` as the `dns-metrics` task.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

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


async def serve_metrics(host: str, port: int, zone: Zone, resolver: Resolver, server: DnsServer,
                        forwarder: Forwarder | None) -> None:
    """Serve /metrics until cancelled."""
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(text=render(zone, resolver, server, forwarder), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        log.info("cluster DNS metrics on http://%s:%d/metrics", host, port)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
