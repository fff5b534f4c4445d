"""A minimal HTTP/1.1 client that upgrades to SPDY/3.1 at the runtime's streaming server.

Role: containerd's CRI calls Exec/Attach/PortForward answer with a short-lived, single-use URL
(`http://127.0.0.1:<port>/exec/<token>`); `dial_upgrade` POSTs it with `Upgrade: SPDY/3.1` and the
wanted `X-Stream-Protocol-Version`s and returns the raw connection once the server answered 101.
Neighbours: `minik.agent.streams.cri` runs `minik.client.spdy.SpdySession`s on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from urllib.parse import urlsplit

__all__ = ["StreamingServerError", "dial_upgrade"]


class StreamingServerError(Exception):
    """The runtime's streaming server refused the upgrade (message is its answer)."""


class _ClientConnection:
    """An upgraded client connection (ByteTransport)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self) -> bytes:
        try:
            return await self._reader.read(64 * 1024)
        except ConnectionError:
            return b""

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


async def dial_upgrade(
    url: str, protocols: Sequence[str], *, timeout: float = 10.0
) -> tuple[str, _ClientConnection]:
    """POST `url` asking for `Upgrade: SPDY/3.1` with `protocols` (X-Stream-Protocol-Version).

    Returns the negotiated protocol and the connection. Raises StreamingServerError with the
    server's message when it does not switch protocols.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or parts.hostname is None:
        raise StreamingServerError(f"unsupported streaming URL {url!r}")
    port = parts.port or 80
    path = parts.path + ("?" + parts.query if parts.query else "")
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(parts.hostname, port, limit=1024 * 1024), timeout
    )
    lines = [
        f"POST {path or '/'} HTTP/1.1",
        f"Host: {parts.netloc}",
        "Connection: Upgrade",
        "Upgrade: SPDY/3.1",
        *(f"X-Stream-Protocol-Version: {p}" for p in protocols),
        "Content-Length: 0",
        "",
        "",
    ]
    try:
        writer.write("\r\n".join(lines).encode("latin-1"))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        fields = status_line.split(" ", 2)
        status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        headers: dict[str, str] = {}
        for line in header_lines:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if status != 101:
            body = b""
            length = int(headers.get("content-length", "0") or 0)
            if length:
                body = await asyncio.wait_for(reader.readexactly(min(length, 65536)), timeout)
            raise StreamingServerError(_error_text(status, body))
    except BaseException:
        writer.close()
        raise
    return headers.get("x-stream-protocol-version", ""), _ClientConnection(reader, writer)


def _error_text(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError, AttributeError):
        msg = json.loads(text).get("message")
        if isinstance(msg, str):
            return msg
    return text or f"streaming server answered {status}"
