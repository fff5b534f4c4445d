"""SPDY/3.1: dictionary, framing, header compression round trip, and a client/server session
over an in-memory transport pair (streams, FIN, RST, PING, GOAWAY/close)."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from minik.client.spdy import (
    FLAG_FIN,
    HEADER_DICTIONARY,
    PING,
    RST_STREAM,
    SYN_REPLY,
    SYN_STREAM,
    ControlFrame,
    DataFrame,
    FrameParser,
    HeaderCodec,
    SpdyError,
    SpdySession,
    decode_header_block,
    encode_control,
    encode_data,
    encode_header_block,
)


def test_dictionary_matches_the_spec() -> None:
    # SPDY/3 §2.6.10.1: 1423 bytes; zlib's dictionary id (adler32) is what peers check.
    assert len(HEADER_DICTIONARY) == 1423
    assert zlib.adler32(HEADER_DICTIONARY) == 0xE3C6A7C2
    assert HEADER_DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert HEADER_DICTIONARY.endswith(b"charset=utf-8charset=iso-8859-1,utf-,*,enq=0.")


def test_frames_round_trip_through_a_byte_at_a_time_parser() -> None:
    wire = (encode_control(PING, 0, struct.pack(">I", 7)) + encode_data(3, b"hello", fin=True)
            + encode_data(5, b""))
    parser = FrameParser()
    frames = []
    for i in range(len(wire)):
        frames += parser.feed(wire[i:i + 1])
    assert frames == [ControlFrame(PING, 0, struct.pack(">I", 7)),
                      DataFrame(3, FLAG_FIN, b"hello"), DataFrame(5, 0, b"")]
    assert wire[:4] == b"\x80\x03\x00\x06"


def test_parser_rejects_other_versions() -> None:
    with pytest.raises(SpdyError):
        FrameParser().feed(b"\x80\x02\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01")


def test_header_block_codec() -> None:
    block = encode_header_block({"StreamType": "data", "port": "80"})
    assert decode_header_block(block) == {"streamtype": "data", "port": "80"}
    # Multiple values are NUL-separated; we keep the first.
    raw = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 3) + b"x\x00y"
    assert decode_header_block(raw) == {"a": "x"}
    with pytest.raises(SpdyError):
        decode_header_block(struct.pack(">I", 2) + struct.pack(">I", 1) + b"a")


def test_zlib_streams_keep_state_across_blocks() -> None:
    a, b = HeaderCodec(), HeaderCodec()
    for i in range(5):
        headers = {"streamtype": "error", "port": str(8000 + i), "requestid": str(i)}
        blob = a.compress(headers)
        # The first block carries the dictionary id (FDICT) as the spec requires.
        if i == 0:
            assert blob[0] & 0x0F == 8 and blob[1] & 0x20
            assert struct.unpack(">I", blob[2:6])[0] == 0xE3C6A7C2
        assert b.decompress(blob) == headers
    assert b.decompress(b"") == {}
    with pytest.raises(SpdyError):
        HeaderCodec().decompress(b"\x00garbage")


class Pipe:
    """One direction of an in-memory connection."""

    def __init__(self) -> None:
        self.q: asyncio.Queue[bytes] = asyncio.Queue()


class End:
    """ByteTransport over two pipes; writes are split to exercise reassembly."""

    def __init__(self, rx: Pipe, tx: Pipe) -> None:
        self.rx, self.tx = rx, tx
        self.closed = False

    async def read(self) -> bytes:
        data = await self.rx.q.get()
        if not data:
            self.rx.q.put_nowait(b"")
        return data

    async def write(self, data: bytes) -> None:
        if self.closed:
            raise ConnectionResetError("closed")
        mid = len(data) // 2
        for part in (data[:mid], data[mid:]):
            if part:
                self.tx.q.put_nowait(part)

    async def close(self) -> None:
        self.closed = True
        self.tx.q.put_nowait(b"")
        self.rx.q.put_nowait(b"")


def pair() -> tuple[End, End]:
    a, b = Pipe(), Pipe()
    return End(a, b), End(b, a)


async def test_session_streams_fin_and_reset() -> None:
    c_end, s_end = pair()
    client, server = SpdySession(c_end, client=True), SpdySession(s_end, client=False)
    tasks = [asyncio.create_task(client.run()), asyncio.create_task(server.run())]

    s1 = await client.open_stream({"streamtype": "data", "port": "80", "requestid": "0"})
    assert s1.id == 1
    r1 = await server.accept()
    assert r1 is not None and r1.headers == {"streamtype": "data", "port": "80",
                                             "requestid": "0"}
    big = bytes(range(256)) * 400  # several DATA frames
    await s1.write(big)
    await s1.close_write()
    assert await r1.read_all() == big
    await r1.write(b"pong")
    await r1.close_write()
    assert await s1.read_all() == b"pong"

    s3 = await client.open_stream({"streamtype": "error"}, fin=True)
    assert s3.id == 3
    r3 = await server.accept()
    assert r3 is not None and await r3.read() == b""  # FIN on SYN_STREAM
    await r3.reset()
    await asyncio.sleep(0.01)
    assert s3.reset_by_peer and await s3.read() == b""
    with pytest.raises(SpdyError):
        await s3.write(b"x")

    await client.ping()  # the server echoes; the client ignores its own ping coming back
    await client.close()
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert await server.accept() is None


async def test_server_echoes_client_ping_and_replies_to_syn_stream() -> None:
    c_end, s_end = pair()
    server = SpdySession(s_end, client=False)
    task = asyncio.create_task(server.run())
    codec = HeaderCodec()
    syn = encode_control(SYN_STREAM, 0, struct.pack(">IIBB", 1, 0, 0, 0)
                         + codec.compress({"streamtype": "stdout"}))
    await c_end.write(syn + encode_control(PING, 0, struct.pack(">I", 5)))
    parser = FrameParser()
    frames: list[object] = []
    while len(frames) < 2:
        frames += parser.feed(await c_end.read())
    reply, ping = frames[0], frames[1]
    assert isinstance(reply, ControlFrame) and reply.type == SYN_REPLY
    assert struct.unpack(">I", reply.payload[:4])[0] == 1
    assert codec.decompress(b"") == {}
    assert ping == ControlFrame(PING, 0, struct.pack(">I", 5))
    await c_end.write(encode_control(RST_STREAM, 0, struct.pack(">II", 1, 5)))
    stream = await server.accept()
    assert stream is not None
    assert await stream.read() == b""
    await c_end.close()
    await asyncio.wait_for(task, 2)
