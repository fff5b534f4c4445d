"""The Kubernetes websocket channel protocol (v5.channel.k8s.io, v4.channel.k8s.io), server side.

Role: the first transport `kubectl exec/attach` tries. Every binary message is one channel
byte plus payload: 0 stdin, 1 stdout, 2 stderr, 3 error (a Status JSON at the end), 4 resize
(`{"Width":W,"Height":H}`), and in v5 only 255 close, whose payload byte names the channel the
client will not write any more (stdin EOF). v4 has no close signal: stdin ends with the socket.
Neighbours: `front` does the handshake check; `remotecommand` bridges the channels to the
node's exec session.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiohttp import WSMsgType, web

__all__ = [
    "CHANNEL_PROTOCOLS",
    "STDIN",
    "STDOUT",
    "STDERR",
    "ERROR",
    "RESIZE",
    "CLOSE",
    "ChannelWebSocket",
]

V5, V4 = "v5.channel.k8s.io", "v4.channel.k8s.io"
CHANNEL_PROTOCOLS = (V5, V4)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class ChannelWebSocket:
    """Demultiplexes client messages into per-channel queues; writes framed messages."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self.protocol = ws.ws_protocol or ""
        self._queues: dict[int, asyncio.Queue[bytes]] = {STDIN: asyncio.Queue(),
                                                         RESIZE: asyncio.Queue()}
        self._ended: set[int] = set()
        self._lock = asyncio.Lock()

    def _end(self, channel: int) -> None:
        if channel in self._queues and channel not in self._ended:
            self._ended.add(channel)
            self._queues[channel].put_nowait(b"")

    async def run(self) -> None:
        """Read loop; ends when the client closes. Every input channel then reads EOF."""
        try:
            async for msg in self.ws:
                # Text frames carry the same channel byte + payload (the Python client sends
                # str stdin that way); kube's wsstream accepts both.
                if msg.type == WSMsgType.TEXT and msg.data:
                    data = msg.data.encode()
                elif msg.type == WSMsgType.BINARY and msg.data:
                    data = bytes(msg.data)
                else:
                    continue
                channel, payload = data[0], data[1:]
                if channel == CLOSE and self.protocol == V5:
                    if payload:
                        self._end(payload[0])
                    continue
                if channel in self._queues and channel not in self._ended and payload:
                    self._queues[channel].put_nowait(payload)
        finally:
            for channel in list(self._queues):
                self._end(channel)

    async def read(self, channel: int) -> bytes:
        """Next payload on an input channel (stdin, resize); b"" at end."""
        queue = self._queues[channel]
        data = await queue.get()
        if not data:
            queue.put_nowait(b"")
        return data

    async def write(self, channel: int, data: bytes) -> None:
        if self.ws.closed:
            raise ConnectionResetError("websocket closed")
        async with self._lock:
            await self.ws.send_bytes(bytes((channel,)) + data)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
