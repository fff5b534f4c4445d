"""Port-forward sessions: kubectl's SPDY streams relayed to connections the node dials.

Role: kubectl opens, per local connection, an `error` stream (half-closed at once) and a `data`
stream, both with headers `port` and `requestid`. We pair them by request id and ask the node's
`PortForwarder` (`minik.client.streams`) for a connection to that port inside the pod. Bytes are
copied both ways; FIN is passed on as FIN and RST as RST; anything the node reports on the
connection's error channel goes to kubectl's error stream. The websocket channel dialect
(`serve_websocket_channels`, the Python client's) uses the same forwarder.
Neighbours: `front` builds the kubectl session (websocket-carried or upgraded SPDY) and gets the
forwarder from the node; `minik.client.spdy` does the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from minik.client.spdy import SpdyError, SpdySession, SpdyStream
from minik.client.streams import PortConnection, PortForwarder

__all__ = ["PORTFORWARD_PROTOCOL", "WS_CHANNEL_PROTOCOLS", "WS_PORTFORWARD_PROTOCOL", "serve_port_forward",
           "serve_websocket_channels"]

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("minik.api.streams.portforward")

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
WS_PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# The websocket channel dialect of port-forward (binary only; "" is what old clients send).
WS_CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io", "channel.k8s.io")

_DIAL_ERRORS = (OSError, asyncio.TimeoutError, SpdyError)


class _Pipe(Protocol):
    @property
    def reset_by_peer(self) -> bool: ...

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close_write(self) -> None: ...

    async def reset(self) -> None: ...


async def _copy(src: _Pipe, dst: _Pipe) -> None:
    """src → dst until src ends; a reset travels on as a reset, an end as FIN."""
    try:
        while data := await src.read():
            await dst.write(data)
    except (SpdyError, ConnectionError):
        await dst.reset()
        return
    if src.reset_by_peer:
        await dst.reset()
    else:
        await dst.close_write()


async def _copy_errors(conn: PortConnection, dst: SpdyStream) -> None:
    with contextlib.suppress(SpdyError, ConnectionError):
        while data := await conn.read_error():
            await dst.write(data)


async def _forward(forwarder: PortForwarder, err_f: SpdyStream, data_f: SpdyStream) -> None:
    port = data_f.headers.get("port", "")
    try:
        conn = await forwarder.dial(int(port), data_f.headers.get("requestid", ""))
    except (*_DIAL_ERRORS, ValueError) as err:
        with contextlib.suppress(SpdyError, ConnectionError):
            await err_f.write(f"error forwarding port {port} to pod: {err}".encode())
            await err_f.close_write()
        await data_f.reset()
        return
    errors = asyncio.create_task(_copy_errors(conn, err_f))
    try:
        await asyncio.gather(_copy(data_f, conn), _copy(conn, data_f))
        # The runtime writes its error (if any) before closing the data stream.
        await asyncio.wait_for(errors, 1.0)
    except asyncio.TimeoutError:
        pass
    finally:
        errors.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await errors
        await err_f.close_write()


async def serve_port_forward(front: SpdySession, forwarder: PortForwarder) -> None:
    """Serve one kubectl port-forward session until kubectl closes it."""
    reader = asyncio.create_task(front.run(), name="portforward-front-reader")
    pending: dict[str, dict[str, SpdyStream]] = {}
    requests: set[asyncio.Task[None]] = set()
    try:
        while (stream := await front.accept()) is not None:
            kind = stream.headers.get("streamtype", "")
            rid = stream.headers.get("requestid", "")
            if kind not in ("error", "data"):
                await stream.reset()
                continue
            pair = pending.setdefault(rid, {})
            pair[kind] = stream
            if "error" in pair and "data" in pair:
                del pending[rid]
                task = asyncio.create_task(_forward(forwarder, pair["error"], pair["data"]),
                                           name=f"portforward-{rid}")
                requests.add(task)
                task.add_done_callback(requests.discard)
    finally:
        for task in list(requests):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*requests, return_exceptions=True)
        await forwarder.close()
        await front.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def serve_websocket_channels(ws: "web.WebSocketResponse", ports: list[int],
                                   forwarder: PortForwarder) -> None:
    """Port-forward over the websocket channel protocol (v4.channel.k8s.io), as the Python client
    and other non-kubectl clients speak it: port i uses channel 2i for data and 2i+1 for errors;
    the server first sends each channel's port as two little-endian bytes, then every message is
    one channel byte followed by payload. Each port is one connection to the pod, relayed
    through the node's forwarder like the SPDY path."""
    streams: dict[int, PortConnection] = {}
    pumps: list[asyncio.Task[None]] = []

    async def pump(read: Callable[[], Awaitable[bytes]], channel: int) -> None:
        with contextlib.suppress(SpdyError, ConnectionError):
            while data := await read():
                await ws.send_bytes(bytes([channel]) + data)

    try:
        for i, port in enumerate(ports):
            for ch in (2 * i, 2 * i + 1):
                await ws.send_bytes(bytes([ch]) + port.to_bytes(2, "little"))
        for i, port in enumerate(ports):
            try:
                conn = await forwarder.dial(port, str(i))
            except _DIAL_ERRORS as err:
                await ws.send_bytes(bytes([2 * i + 1]) + f"error forwarding port {port} to pod: {err}".encode())
                return
            streams[2 * i] = conn
            pumps.append(asyncio.create_task(pump(conn.read, 2 * i), name=f"portforward-ws-data-{port}"))
            pumps.append(asyncio.create_task(pump(conn.read_error, 2 * i + 1), name=f"portforward-ws-error-{port}"))

        data_pumps = pumps[::2]

        async def close_when_done() -> None:
            # Each port is a single connection: when the pod side of every one has closed, so
            # does the websocket (the client sees EOF).
            await asyncio.gather(*data_pumps, return_exceptions=True)
            await ws.close()

        pumps.append(asyncio.create_task(close_when_done(), name="portforward-ws-closer"))
        async for msg in ws:
            if msg.type.name != "BINARY" or not msg.data:
                if msg.type.name in ("CLOSE", "CLOSING", "CLOSED", "ERROR"):
                    break
                continue
            target = streams.get(msg.data[0])
            if target is not None and len(msg.data) > 1:
                await target.write(msg.data[1:])
    finally:
        for s in streams.values():
            with contextlib.suppress(SpdyError, ConnectionError):
                await s.close_write()
        for t in pumps:
            t.cancel()
        for t in pumps:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        await forwarder.close()
