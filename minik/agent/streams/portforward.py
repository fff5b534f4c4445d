"""Port-forward sessions: kubectl's SPDY streams relayed to the runtime's port-forward server.

Role: kubectl opens, per local connection, an `error` stream (half-closed at once) and a `data`
stream, both with headers `port` and `requestid`. We pair them by request id and open the same
two streams on a SPDY client session to containerd's CRI PortForward URL, which dials
localhost:<port> inside the pod's network namespace (so a server bound to the pod's loopback is
reachable, like on a kubelet). Bytes are copied both ways; FIN is passed on as FIN and RST as
RST; anything the runtime writes on its error stream goes to kubectl's error stream.
One back session serves every request of the front session; it is opened on first use
because a streaming URL is single-use and short-lived.
Neighbours: `server` builds the front session (websocket-carried or upgraded SPDY) and supplies
`get_url`; `spdy` does the framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from minik.agent.streams.spdy import SpdyError, SpdySession, SpdyStream
from minik.agent.streams.transport import StreamingServerError, dial_upgrade

__all__ = ["PORTFORWARD_PROTOCOL", "WS_CHANNEL_PROTOCOLS", "WS_PORTFORWARD_PROTOCOL", "serve_port_forward",
           "serve_websocket_channels"]

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger("minik.agent.streams.portforward")

PORTFORWARD_PROTOCOL = "portforward.k8s.io"
WS_PORTFORWARD_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
# The websocket channel dialect of port-forward (binary only; "" is what old clients send).
WS_CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "portforward.k8s.io", "channel.k8s.io")


class _Backend:
    def __init__(self, get_url: Callable[[], Awaitable[str]]) -> None:
        self._get_url = get_url
        self._session: SpdySession | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def session(self) -> SpdySession:
        async with self._lock:
            if self._session is None or self._session.finished.is_set():
                url = await self._get_url()
                _, conn = await dial_upgrade(url, (PORTFORWARD_PROTOCOL,))
                self._session = SpdySession(conn, client=True)
                self._reader = asyncio.create_task(self._session.run(),
                                                   name="portforward-backend-reader")
            return self._session

    async def open_pair(self, port: str, request_id: str) -> tuple[SpdyStream, SpdyStream]:
        """The runtime-side (error, data) streams of one forwarded connection; error half-closed."""
        headers = {"port": port, "requestid": request_id}
        back = await self.session()
        err_b = await back.open_stream({"streamtype": "error", **headers})
        await err_b.close_write()
        data_b = await back.open_stream({"streamtype": "data", **headers})
        return err_b, data_b

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


async def _copy(src: SpdyStream, dst: SpdyStream) -> None:
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


async def _forward(backend: _Backend, err_f: SpdyStream, data_f: SpdyStream) -> None:
    port = data_f.headers.get("port", "")
    try:
        err_b, data_b = await backend.open_pair(port, data_f.headers.get("requestid", ""))
    except (SpdyError, StreamingServerError, OSError, asyncio.TimeoutError) as err:
        with contextlib.suppress(SpdyError, ConnectionError):
            await err_f.write(f"error forwarding port {port} to pod: {err}".encode())
            await err_f.close_write()
        await data_f.reset()
        return
    errors = asyncio.create_task(_copy(err_b, err_f))
    try:
        await asyncio.gather(_copy(data_f, data_b), _copy(data_b, data_f))
        # The runtime writes its error (if any) before closing the data stream.
        await asyncio.wait_for(errors, 1.0)
    except asyncio.TimeoutError:
        pass
    finally:
        errors.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await errors
        await err_f.close_write()


async def serve_port_forward(front: SpdySession, get_url: Callable[[], Awaitable[str]]) -> None:
    """Serve one kubectl port-forward session until kubectl closes it."""
    reader = asyncio.create_task(front.run(), name="portforward-front-reader")
    backend = _Backend(get_url)
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
                task = asyncio.create_task(_forward(backend, pair["error"], pair["data"]),
                                           name=f"portforward-{rid}")
                requests.add(task)
                task.add_done_callback(requests.discard)
    finally:
        for task in list(requests):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*requests, return_exceptions=True)
        await backend.close()
        await front.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await reader


async def serve_websocket_channels(ws: "web.WebSocketResponse", ports: list[int],
                                   get_url: Callable[[], Awaitable[str]]) -> None:
    """Port-forward over the websocket channel protocol (v4.channel.k8s.io), as the Python client
    and other non-kubectl clients speak it: port i uses channel 2i for data and 2i+1 for errors;
    the server first sends each channel's port as two little-endian bytes, then every message is
    one channel byte followed by payload. Each port is one connection to the pod, relayed
    through the runtime's port-forward server like the SPDY path."""
    backend = _Backend(get_url)
    streams: dict[int, SpdyStream] = {}
    pumps: list[asyncio.Task[None]] = []

    async def pump(src: SpdyStream, channel: int) -> None:
        with contextlib.suppress(SpdyError, ConnectionError):
            while data := await src.read():
                await ws.send_bytes(bytes([channel]) + data)

    try:
        for i, port in enumerate(ports):
            for ch in (2 * i, 2 * i + 1):
                await ws.send_bytes(bytes([ch]) + port.to_bytes(2, "little"))
        for i, port in enumerate(ports):
            try:
                err_b, data_b = await backend.open_pair(str(port), str(i))
            except (SpdyError, StreamingServerError, OSError, asyncio.TimeoutError) as err:
                await ws.send_bytes(bytes([2 * i + 1]) + f"error forwarding port {port} to pod: {err}".encode())
                return
            streams[2 * i] = data_b
            pumps.append(asyncio.create_task(pump(data_b, 2 * i), name=f"portforward-ws-data-{port}"))
            pumps.append(asyncio.create_task(pump(err_b, 2 * i + 1), name=f"portforward-ws-error-{port}"))

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
        await backend.close()
