"""StreamFront: the API server's answer to pods/{name}/log|exec|attach|portforward.

Role: speaks kubectl's protocols. It validates the request the way the apiserver does (query
parameters, container choice, pod phase) and words its errors the same, picks the transport
kubectl chose (websocket first, SPDY/3.1 upgrade as fallback; raw SPDY inside a websocket or the
channel dialect for port-forward; chunked text for logs), and joins it to the node's
`minik.client.streams.PodStreams` (`remotecommand.bridge`, `portforward.serve_*`, the log
iterator). It never sees CRI: the node behind `PodStreams` may be this process or another host.
Neighbours: `minik.api.handlers` calls `handle` after authorization; `websocket`, `transport`,
`remotecommand`, `portforward`, `logquery` of this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

from aiohttp import web

from minik.api.streams import logquery, remotecommand, websocket
from minik.api.streams.portforward import (
    PORTFORWARD_PROTOCOL,
    WS_CHANNEL_PROTOCOLS,
    WS_PORTFORWARD_PROTOCOL,
    serve_port_forward,
    serve_websocket_channels,
)
from minik.api.streams.transport import WebSocketBytes, accept_upgrade
from minik.client.spdy import SpdySession
from minik.client.streams import ExecSession, PodStreams, StreamError, find_container

__all__ = ["StreamFront", "negotiate"]

Obj = dict[str, Any]
_CLIENT_GONE_POLL = 0.5


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str:
    """The first protocol the client offered that we support ("" if none); headers may repeat
    and may hold comma-separated lists."""
    for entry in offered:
        for proto in (p.strip() for p in entry.split(",")):
            if proto in supported:
                return proto
    return ""


def _status_response(err: StreamError) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": err.message, "reason": err.reason, "code": err.code}
    return web.Response(status=err.code, body=json.dumps(body).encode(),
                        content_type="application/json")


def _ports_param(request: web.Request) -> list[int]:
    """`ports=8080&ports=9090` or `ports=8080,9090` (1-65535), as the websocket port-forward takes them."""
    raw = [p for v in request.query.getall("ports", []) for p in v.split(",") if p.strip()]
    if not raw:
        raise StreamError("query parameter \"ports\" is required")
    try:
        ports = [int(p) for p in raw]
    except ValueError:
        raise StreamError(f"invalid port in {raw!r}") from None
    if any(not 0 < p < 65536 for p in ports):
        raise StreamError(f"port out of range in {ports!r}")
    return ports


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/3")


class StreamFront:
    """kubectl's streaming subresources in front of a node's `PodStreams`."""

    def __init__(self, streams: PodStreams) -> None:
        self._streams = streams

    async def handle(self, request: web.Request, pod: Obj, subresource: str) -> web.StreamResponse:
        try:
            if subresource == "log":
                return await self._logs(request, pod)
            if subresource in ("exec", "attach"):
                return await self._remotecommand(request, pod, subresource)
            if subresource == "portforward":
                return await self._portforward(request, pod)
            raise StreamError(f"unknown pod subresource {subresource!r}", 404, "NotFound")
        except StreamError as err:
            return _status_response(err)

    # -- logs --------------------------------------------------------------------------------

    async def _logs(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        try:
            opts = logquery.parse_log_query(request.query, time.time_ns())
        except logquery.LogQueryError as err:
            raise StreamError(str(err)) from None
        chunks = await self._streams.logs(pod, request.query.get("container", ""), opts)
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def copy() -> None:
            async for chunk in chunks:
                await resp.write(chunk)

        stream = asyncio.create_task(copy(), name="pod-logs")
        # aiohttp does not cancel handlers when the client disconnects; watch for it so an
        # abandoned `logs -f` does not poll forever.
        gone = asyncio.create_task(self._client_gone(request), name="pod-logs-client")
        try:
            await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not stream.done():
                stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, FileNotFoundError):
                await stream
            await _aclose(chunks)
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    @staticmethod
    async def _client_gone(request: web.Request) -> None:
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(_CLIENT_GONE_POLL)

    # -- exec / attach -----------------------------------------------------------------------

    @staticmethod
    def _check_running(pod: Obj, container: str) -> None:
        ref = find_container(pod, container)
        phase = pod.get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            raise StreamError(f"cannot exec into a container in a completed pod; current phase is {phase}")
        if not ref.running or not ref.container_id:
            raise StreamError(f'container not found ("{ref.name}")')

    async def _session(self, kind: str, pod: Obj, opts: remotecommand.ExecOptions) -> ExecSession:
        if kind == "exec":
            return await self._streams.exec(pod, opts)
        return await self._streams.attach(pod, opts)

    async def _remotecommand(self, request: web.Request, pod: Obj, kind: str) -> web.StreamResponse:
        query: Mapping[str, str] = request.query
        opts = remotecommand.parse_exec_query(query, request.query.getall("command", []))
        self._check_running(pod, opts.container)
        if kind == "exec" and not opts.command:
            raise StreamError("you must specify at least one command for the container")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise StreamError("you must specify at least one of stdin, stdout, stderr")

        if _is_websocket(request):
            ws = web.WebSocketResponse(protocols=websocket.CHANNEL_PROTOCOLS,
                                       max_msg_size=16 * 1024 * 1024)
            ready = ws.can_prepare(request)
            if not ready.ok or not ready.protocol:
                # A non-101 answer makes kubectl fall back to SPDY.
                raise StreamError(
                    "websocket requests must offer one of: " + ", ".join(websocket.CHANNEL_PROTOCOLS))
            session = await self._session(kind, pod, opts)
            try:
                await ws.prepare(request)
            except BaseException:
                await session.close()
                raise
            front: remotecommand.Front = remotecommand.WebSocketFront(websocket.ChannelWebSocket(ws))
            await remotecommand.bridge(front, session, opts)
            return ws
        if _is_spdy(request):
            chosen = negotiate(request.headers.getall("X-Stream-Protocol-Version", []),
                               remotecommand.SPDY_PROTOCOLS)
            if not chosen:
                raise StreamError(
                    "unable to upgrade: unable to negotiate protocol: client supports "
                    f"{request.headers.getall('X-Stream-Protocol-Version', [])}, server supports "
                    f"{list(remotecommand.SPDY_PROTOCOLS)}", 403, "Forbidden")
            session = await self._session(kind, pod, opts)
            try:
                conn = await accept_upgrade(request, "SPDY/3.1", {"X-Stream-Protocol-Version": chosen})
            except BaseException:
                await session.close()
                raise
            try:
                front = await remotecommand.SpdyFront.accept(SpdySession(conn, client=False), opts)
            except (ConnectionError, asyncio.TimeoutError):
                await session.close()
                return conn.response  # the client is already gone
            except BaseException:
                await session.close()
                raise
            await remotecommand.bridge(front, session, opts)
            return conn.response
        raise StreamError("Upgrade request required")

    # -- port-forward ------------------------------------------------------------------------

    async def _portforward(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        forwarder = await self._streams.port_forward(pod)
        try:
            if _is_websocket(request):
                ws = web.WebSocketResponse(protocols=(WS_PORTFORWARD_PROTOCOL, *WS_CHANNEL_PROTOCOLS),
                                           max_msg_size=16 * 1024 * 1024)
                ready = ws.can_prepare(request)
                if not ready.ok:
                    raise StreamError("unable to upgrade the port-forward request to a websocket")
                if ready.protocol == WS_PORTFORWARD_PROTOCOL:
                    await ws.prepare(request)
                    await serve_port_forward(SpdySession(WebSocketBytes(ws), client=False), forwarder)
                    return ws
                # The channel dialect (Python client and others): ports come in the query.
                ports = _ports_param(request)
                await ws.prepare(request)
                await serve_websocket_channels(ws, ports, forwarder)
                await ws.close()
                return ws
            if _is_spdy(request):
                offered = request.headers.getall("X-Stream-Protocol-Version", [])
                if offered and not negotiate(offered, (PORTFORWARD_PROTOCOL,)):
                    raise StreamError(
                        f"unable to upgrade: client does not support {PORTFORWARD_PROTOCOL}",
                        403, "Forbidden")
                conn = await accept_upgrade(request, "SPDY/3.1",
                                            {"X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL})
                await serve_port_forward(SpdySession(conn, client=False), forwarder)
                return conn.response
            raise StreamError("Upgrade request required")
        finally:
            await forwarder.close()  # safe to repeat: the serve_* functions close it too


async def _aclose(chunks: AsyncIterator[bytes]) -> None:
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
