"""Byte transports for kubectl's SPDY sessions: our side of an HTTP upgrade, and a websocket
carrying raw bytes.

Role: hide where the bytes come from so `spdy.SpdySession` only sees `read()/write()/close()`.
- `accept_upgrade` answers an aiohttp request with 101 and takes the connection over. aiohttp
  only treats websocket/tcp upgrades as upgrades, so for `Upgrade: SPDY/3.1` we install our
  own payload parser on the connection *before* sending 101 (the client sends nothing before it
  reads the 101, so no byte can reach aiohttp's HTTP parser).
- `WebSocketBytes` carries a raw byte stream in binary messages (kubectl's port-forward
  tunnel: frames split anywhere, empty messages are not EOF).
Neighbours: `front` picks the transport, `remotecommand`/`portforward` run sessions on it
(`minik.client.spdy` does the framing).
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

__all__ = [
    "UpgradedServerConnection",
    "WebSocketBytes",
    "accept_upgrade",
]

_HIGH_WATER = 1024 * 1024


class _FeedParser:
    """Stands in for aiohttp's payload parser on an upgraded connection."""

    def __init__(self, conn: UpgradedServerConnection) -> None:
        self._conn = conn

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self._conn._on_data(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self._conn._on_data(b"")


class UpgradedServerConnection:
    """The server side of an HTTP connection after we answered 101 (ByteTransport)."""

    def __init__(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        self._request = request
        self._response = response
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffered = 0
        self._paused = False
        self._eof = False

    def _on_data(self, data: bytes) -> None:
        if self._eof:
            return
        if not data:
            self._eof = True
        self._buffered += len(data)
        self._queue.put_nowait(data)
        transport = self._request.transport
        if self._buffered > _HIGH_WATER and not self._paused and transport is not None:
            self._paused = True
            transport.pause_reading()

    @property
    def response(self) -> web.StreamResponse:
        """The prepared 101 response; an aiohttp handler returns it when done."""
        return self._response

    async def read(self) -> bytes:
        data = await self._queue.get()
        if not data:
            self._queue.put_nowait(b"")
            return b""
        self._buffered -= len(data)
        transport = self._request.transport
        if self._paused and self._buffered < _HIGH_WATER // 2 and transport is not None:
            self._paused = False
            transport.resume_reading()
        return data

    async def write(self, data: bytes) -> None:
        transport = self._request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed")
        await self._response.write(data)

    async def close(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()
        self._on_data(b"")


async def accept_upgrade(
    request: web.BaseRequest, upgrade: str, headers: dict[str, str]
) -> UpgradedServerConnection:
    """Answer 101 Switching Protocols and return the raw connection."""
    resp = web.StreamResponse(status=101, reason="Switching Protocols")
    resp.headers["Connection"] = "Upgrade"
    resp.headers["Upgrade"] = upgrade
    for k, v in headers.items():
        resp.headers[k] = v
    conn = UpgradedServerConnection(request, resp)
    protocol = request.protocol
    # Install our parser first: from here on every byte on the socket is ours.
    protocol.set_parser(_FeedParser(conn))  # type: ignore[arg-type]
    protocol.keep_alive(False)
    await resp.prepare(request)
    # Headers may still sit in aiohttp's buffer until the first body write; flush them now
    # because the client waits for the 101 before it sends a single frame.
    await resp.write(b"")
    return conn


class WebSocketBytes:
    """A byte stream inside websocket binary messages (ByteTransport)."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self._ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return bytes(msg.data)
                continue  # zero-length messages carry nothing (not EOF)
            if msg.type == WSMsgType.TEXT:
                continue
            return b""  # CLOSE, CLOSING, CLOSED, ERROR

    async def write(self, data: bytes) -> None:
        if self._ws.closed:
            raise ConnectionResetError("websocket closed")
        await self._ws.send_bytes(data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._ws.close()
