"""SPDY/3.1 as Kubernetes uses it: framing, zlib header blocks, and a small async session.

Role: the multiplexing layer under `kubectl exec/attach` (SPDY fallback) and `kubectl
port-forward` (raw SPDY inside a websocket, or SPDY after an HTTP upgrade), and the client side
we use towards containerd's CRI streaming server. Written from the SPDY/3 draft: an 8-byte frame
header (control frames `0x8003 type flags len24`, data frames `stream-id flags len24`), header
blocks `count32 (len32 name len32 value)*` deflated with one zlib stream per direction primed with
the spec's dictionary (kept as `HEADER_DICTIONARY` below, adler32 0xe3c6a7c2).

Like Go's spdystream (what kubectl and containerd speak) we implement no flow control: windows
are neither enforced nor advertised, WINDOW_UPDATE and SETTINGS are read and ignored.
Back-pressure comes from the transport: the read loop stops reading while a stream's unread
buffer is over `_STREAM_BUFFER`.

Both ends of pod streaming speak it, so it lives beside the `minik.client.streams` interface:
the API's front with kubectl (`minik.api.streams`), the node's back with containerd's streaming
server (`minik.agent.streams.cri`).
Neighbours: `minik.api.streams.transport` and `minik.agent.streams.dial` provide the byte
transports (HTTP upgrade, websocket, TCP client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ByteTransport",
    "ControlFrame",
    "DataFrame",
    "Frame",
    "FrameParser",
    "HEADER_DICTIONARY",
    "HeaderCodec",
    "SpdyError",
    "SpdySession",
    "SpdyStream",
    "decode_header_block",
    "encode_header_block",
]

log = logging.getLogger("minik.agent.streams.spdy")

VERSION = 3
# Control frame types.
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, CANCEL, INTERNAL_ERROR = 1, 2, 3, 5, 6
MAX_FRAME_PAYLOAD = 0xFFFFFF
# Data is sent in frames of at most this size so one stream cannot hog the connection.
_DATA_CHUNK = 32 * 1024
_STREAM_BUFFER = 1024 * 1024

_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding accept-language "
    "accept-ranges age allow authorization cache-control connection content-base "
    "content-encoding content-language content-length content-location content-md5 "
    "content-range content-type date etag expect expires from host if-match if-modified-since "
    "if-none-match if-range if-unmodified-since last-modified location max-forwards pragma "
    "proxy-authenticate proxy-authorization range referer retry-after server te trailer "
    "transfer-encoding upgrade user-agent vary via warning www-authenticate method get status"
).split() + ["200 OK", "version", "HTTP/1.1", "url", "public", "set-cookie", "keep-alive", "origin"]
_DICT_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
    "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
    "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
    "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
    "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
    "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
    "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)
# SPDY/3 section 2.6.10.1: length-prefixed header words, then unprefixed common values.
HEADER_DICTIONARY: bytes = (
    b"".join(struct.pack(">I", len(w)) + w.encode() for w in _WORDS) + _DICT_TAIL.encode()
)


class SpdyError(Exception):
    """Malformed SPDY input or use of a closed session/stream."""


@dataclass(frozen=True, slots=True)
class DataFrame:
    stream_id: int
    flags: int
    data: bytes


@dataclass(frozen=True, slots=True)
class ControlFrame:
    type: int
    flags: int
    payload: bytes


Frame = DataFrame | ControlFrame


def encode_control(ftype: int, flags: int, payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_PAYLOAD:
        raise SpdyError("control frame too large")
    return struct.pack(">HHI", 0x8000 | VERSION, ftype, (flags << 24) | len(payload)) + payload


def encode_data(stream_id: int, data: bytes, fin: bool = False) -> bytes:
    if len(data) > MAX_FRAME_PAYLOAD:
        raise SpdyError("data frame too large")
    flags = FLAG_FIN if fin else 0
    return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data


class FrameParser:
    """Incremental: `feed()` any slice of the byte stream, get the complete frames in it."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word0, word1 = struct.unpack_from(">II", self._buf)
            length = word1 & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8: 8 + length])
            del self._buf[: 8 + length]
            flags = word1 >> 24
            if word0 & 0x80000000:
                version = (word0 >> 16) & 0x7FFF
                if version != VERSION:
                    raise SpdyError(f"unsupported SPDY version {version}")
                frames.append(ControlFrame(word0 & 0xFFFF, flags, payload))
            else:
                frames.append(DataFrame(word0 & 0x7FFFFFFF, flags, payload))
        return frames


def encode_header_block(headers: Mapping[str, str]) -> bytes:
    """Uncompressed block; names are lower-cased as SPDY/3 requires."""
    out = [struct.pack(">I", len(headers))]
    for name, value in headers.items():
        n, v = name.lower().encode(), value.encode()
        out.append(struct.pack(">I", len(n)) + n + struct.pack(">I", len(v)) + v)
    return b"".join(out)


def decode_header_block(block: bytes) -> dict[str, str]:
    """Uncompressed block → {name: value}; repeated values (NUL-separated) keep the first."""
    try:
        (count,) = struct.unpack_from(">I", block)
        pos = 4
        headers: dict[str, str] = {}
        for _ in range(count):
            (nlen,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4: pos + 4 + nlen].decode()
            pos += 4 + nlen
            (vlen,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4: pos + 4 + vlen].decode()
            pos += 4 + vlen
            if pos > len(block):
                raise SpdyError("truncated header block")
            headers.setdefault(name.lower(), value.split("\x00", 1)[0])
        return headers
    except (struct.error, UnicodeDecodeError) as err:
        raise SpdyError(f"bad header block: {err}") from None


class HeaderCodec:
    """The connection's two zlib streams; one codec per connection end, used in frame order."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(zdict=HEADER_DICTIONARY)
        self._inflate = zlib.decompressobj(zdict=HEADER_DICTIONARY)

    def compress(self, headers: Mapping[str, str]) -> bytes:
        return self._deflate.compress(encode_header_block(headers)) + self._deflate.flush(
            zlib.Z_SYNC_FLUSH
        )

    def decompress(self, data: bytes) -> dict[str, str]:
        if not data:
            return {}
        try:
            block = self._inflate.decompress(data)
        except zlib.error as err:
            raise SpdyError(f"header block inflate failed: {err}") from None
        return decode_header_block(block)


class ByteTransport(Protocol):
    """A bidirectional byte stream. `read()` returns b"" only at end of stream."""

    async def read(self) -> bytes: ...

    async def write(self, data: bytes) -> None: ...

    async def close(self) -> None: ...


class SpdyStream:
    """One SPDY stream. `read()` gives b"" once the peer sent FIN or reset the stream."""

    def __init__(self, session: SpdySession, stream_id: int, headers: dict[str, str]) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self.reset_by_peer = False
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffered = 0
        self._space = asyncio.Event()
        self._space.set()
        self._remote_done = False
        self._local_done = False
        self._replied = asyncio.Event()

    @property
    def closed_for_writing(self) -> bool:
        return self._local_done or self.reset_by_peer

    # Called by the session's read loop.
    def _feed(self, data: bytes) -> None:
        if self._remote_done:
            return
        if data:
            self._buffered += len(data)
            if self._buffered > _STREAM_BUFFER:
                self._space.clear()
            self._chunks.put_nowait(data)

    def _end(self) -> None:
        if not self._remote_done:
            self._remote_done = True
            self._chunks.put_nowait(b"")
            self._space.set()

    async def read(self) -> bytes:
        if self._remote_done and self._chunks.empty():
            return b""
        data = await self._chunks.get()
        if not data:
            # Keep the EOF marker for later readers.
            self._chunks.put_nowait(b"")
            return b""
        self._buffered -= len(data)
        if self._buffered <= _STREAM_BUFFER:
            self._space.set()
        return data

    async def read_all(self) -> bytes:
        parts = []
        while chunk := await self.read():
            parts.append(chunk)
        return b"".join(parts)

    async def write(self, data: bytes) -> None:
        if self.closed_for_writing:
            raise SpdyError(f"stream {self.id} is closed for writing")
        for i in range(0, len(data), _DATA_CHUNK):
            await self.session._send(encode_data(self.id, data[i: i + _DATA_CHUNK]))

    async def close_write(self) -> None:
        """Half-close: an empty DATA frame with FIN (idempotent)."""
        if self.closed_for_writing:
            return
        self._local_done = True
        with contextlib.suppress(SpdyError, ConnectionError):
            await self.session._send(encode_data(self.id, b"", fin=True))

    async def reset(self, status: int = CANCEL) -> None:
        if self.reset_by_peer:
            return
        self._local_done = True
        self._end()
        with contextlib.suppress(SpdyError, ConnectionError):
            await self.session._send(
                encode_control(RST_STREAM, 0, struct.pack(">II", self.id & 0x7FFFFFFF, status))
            )
        self.session._forget(self)

    async def wait_reply(self, timeout: float) -> None:
        await asyncio.wait_for(self._replied.wait(), timeout)


class SpdySession:
    """One SPDY connection over a ByteTransport, as client (odd stream ids) or server (even).

    Incoming SYN_STREAMs are answered with SYN_REPLY at once (Kubernetes clients block until
    they get one) and queued for `accept()`. `run()` is the read loop; it returns at transport
    EOF or GOAWAY-and-quiet, after which every stream reads EOF and `accept()` returns None.
    """

    def __init__(self, transport: ByteTransport, *, client: bool) -> None:
        self.transport = transport
        self.client = client
        self._codec = HeaderCodec()
        self._parser = FrameParser()
        self._streams: dict[int, SpdyStream] = {}
        self._incoming: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self._next_id = 1 if client else 2
        self._next_ping = 1 if client else 2
        self._wlock = asyncio.Lock()
        self._closed = False
        self._goaway_received = False
        self._last_peer_stream = 0
        self.finished = asyncio.Event()

    # -- sending ----------------------------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        if self._closed:
            raise SpdyError("session closed")
        # The lock keeps frames whole and header blocks in compression order.
        async with self._wlock:
            await self.transport.write(frame)

    async def _send_headers_frame(self, ftype: int, flags: int, prefix: bytes,
                                  headers: Mapping[str, str]) -> None:
        if self._closed:
            raise SpdyError("session closed")
        async with self._wlock:
            block = self._codec.compress(headers)
            await self.transport.write(encode_control(ftype, flags, prefix + block))

    async def open_stream(self, headers: Mapping[str, str], *, fin: bool = False,
                          reply_timeout: float = 30.0) -> SpdyStream:
        """Client side: SYN_STREAM, then wait for the peer's SYN_REPLY."""
        sid = self._next_id
        self._next_id += 2
        stream = SpdyStream(self, sid, dict(headers))
        self._streams[sid] = stream
        if fin:
            stream._local_done = True
        prefix = struct.pack(">IIBB", sid, 0, 0, 0)
        await self._send_headers_frame(SYN_STREAM, FLAG_FIN if fin else 0, prefix, headers)
        await stream.wait_reply(reply_timeout)
        if stream.reset_by_peer:
            raise SpdyError(f"stream {sid} refused by peer")
        return stream

    async def accept(self) -> SpdyStream | None:
        """Server side: the next stream the peer opened, or None when the session ended."""
        stream = await self._incoming.get()
        if stream is None:
            self._incoming.put_nowait(None)
        return stream

    async def ping(self) -> None:
        pid = self._next_ping
        self._next_ping += 2
        await self._send(encode_control(PING, 0, struct.pack(">I", pid)))

    async def goaway(self, status: int = 0) -> None:
        with contextlib.suppress(SpdyError, ConnectionError):
            await self._send(
                encode_control(GOAWAY, 0, struct.pack(">II", self._last_peer_stream, status))
            )

    async def close(self) -> None:
        """GOAWAY, then close the transport; every stream reads EOF."""
        if self._closed:
            return
        await self.goaway()
        self._closed = True
        with contextlib.suppress(Exception):
            await self.transport.close()
        self._shutdown()

    def _forget(self, stream: SpdyStream) -> None:
        self._streams.pop(stream.id, None)

    def _shutdown(self) -> None:
        for stream in list(self._streams.values()):
            stream._end()
        self._streams.clear()
        self._incoming.put_nowait(None)
        self.finished.set()

    # -- receiving --------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            while True:
                data = await self.transport.read()
                if not data:
                    break
                for frame in self._parser.feed(data):
                    await self._dispatch(frame)
        except (ConnectionError, SpdyError) as err:
            log.debug("spdy session ended: %s", err)
        finally:
            self._shutdown()

    async def _dispatch(self, frame: Frame) -> None:
        if isinstance(frame, DataFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is None:
                return
            # Stop reading the connection while this stream's reader is behind.
            await stream._space.wait()
            stream._feed(frame.data)
            if frame.flags & FLAG_FIN:
                stream._end()
            return
        p = frame.payload
        if frame.type == SYN_STREAM:
            sid = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
            headers = self._codec.decompress(p[10:])
            self._last_peer_stream = max(self._last_peer_stream, sid)
            stream = SpdyStream(self, sid, headers)
            stream._replied.set()
            self._streams[sid] = stream
            if frame.flags & FLAG_FIN:
                stream._end()
            if frame.flags & FLAG_UNIDIRECTIONAL:
                stream._local_done = True
            await self._send_headers_frame(SYN_REPLY, 0, struct.pack(">I", sid), {})
            self._incoming.put_nowait(stream)
        elif frame.type == SYN_REPLY:
            sid = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
            self._codec.decompress(p[4:])
            stream = self._streams.get(sid)
            if stream is not None:
                stream._replied.set()
                if frame.flags & FLAG_FIN:
                    stream._end()
        elif frame.type == HEADERS:
            # Never sent by Kubernetes peers, but it advances the inflate state.
            self._codec.decompress(p[4:])
        elif frame.type == RST_STREAM:
            sid = struct.unpack_from(">I", p)[0] & 0x7FFFFFFF
            stream = self._streams.pop(sid, None)
            if stream is not None:
                stream.reset_by_peer = True
                stream._replied.set()
                stream._end()
        elif frame.type == PING:
            (pid,) = struct.unpack_from(">I", p)
            # Echo the peer's pings; ours coming back need nothing.
            if (pid % 2 == 1) != self.client:
                await self._send(encode_control(PING, 0, p[:4]))
        elif frame.type == GOAWAY:
            self._goaway_received = True
        # SETTINGS, WINDOW_UPDATE and unknown types: ignored (no flow control, see above).
