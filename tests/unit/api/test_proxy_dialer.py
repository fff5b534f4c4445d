"""ProxyForwarder opens its upstream connections through a `PodDialer` (in process: a real
upstream aiohttp server on 127.0.0.1, a front server whose handler forwards to it)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from minik.api import status as st
from minik.api.proxy import ProxyForwarder, Upstream
from minik.client.streams import DirectDialer


class RecordingDialer:
    def __init__(self) -> None:
        self.dialed: list[tuple[str, int]] = []
        self._direct = DirectDialer()

    async def create_connection(self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int,
                                *, ssl: object = None) -> asyncio.Protocol:
        self.dialed.append((host, port))
        return await self._direct.create_connection(protocol_factory, host, port, ssl=None)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_forward_goes_through_the_dialer() -> None:
    async def upstream_handler(request: web.Request) -> web.Response:
        return web.Response(text=f"{request.method} {request.path_qs} {request.headers.get('X-Forwarded-Host')}")

    up_app = web.Application()
    up_app.router.add_route("*", "/{tail:.*}", upstream_handler)
    upstream = TestServer(up_app, host="127.0.0.1")
    await upstream.start_server()
    dialer = RecordingDialer()
    forwarder = ProxyForwarder(dialer=dialer)
    closed = _closed_port()

    async def front_handler(request: web.Request) -> web.StreamResponse:
        port = upstream.port if request.path == "/up" else closed
        try:
            return await forwarder.forward(request, Upstream("http", "127.0.0.1", port or 0), "/inside")
        except st.StatusError as e:
            return web.Response(status=e.code, text=e.message)

    front_app = web.Application()
    front_app.router.add_route("*", "/{tail:.*}", front_handler)
    front = TestServer(front_app, host="127.0.0.1")
    await front.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(front.make_url("/up?x=1")) as r:
                assert r.status == 200
                assert (await r.text()).startswith("GET /inside?x=1 127.0.0.1:")
            async with http.get(front.make_url("/down")) as r:
                assert r.status == 503
                assert f"error trying to reach 127.0.0.1:{closed}" in await r.text()
        assert dialer.dialed == [("127.0.0.1", upstream.port), ("127.0.0.1", closed)]
    finally:
        await forwarder.close()
        await front.close()
        await upstream.close()
