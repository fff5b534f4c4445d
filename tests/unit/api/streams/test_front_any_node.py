"""StreamFront against a node that is not CRI: an in-memory `PodStreams` (what a remote transport
would hand the API). kubectl's protocols on the outside, only the byte-stream interface inside:
exec over websocket v5 (stdin to EOF, stdout/stderr, the exit Status), logs as chunked text, and
port-forward in the websocket channel dialect to an in-memory connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer

from minik.api.streams import StreamFront
from minik.client.streams import ExecOptions, LogOptions, StreamError

Obj = dict[str, Any]
EXIT_3 = json.dumps({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                     "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}).encode()


def pod() -> Obj:
    return {"metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "app"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "app", "containerID": "remote://c1", "state": {"running": {}}}]}}


class EchoSession:
    """Upper-cases stdin onto stdout until stdin ends, then reports exit code 3."""

    def __init__(self) -> None:
        self.out: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def read_stdout(self) -> bytes:
        return await self.out.get()

    async def read_stderr(self) -> bytes:
        return b""

    async def write_stdin(self, data: bytes) -> None:
        self.out.put_nowait(data.upper())

    async def close_stdin(self) -> None:
        self.out.put_nowait(b"")

    async def resize(self, data: bytes) -> None:
        pass

    async def wait(self) -> bytes:
        while not self.out.empty():
            await asyncio.sleep(0.01)
        return EXIT_3

    async def close(self) -> None:
        self.closed = True


class Conn:
    """A connection whose far side answers "pong:<what it got>" and closes."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[bytes] = asyncio.Queue()

    @property
    def reset_by_peer(self) -> bool:
        return False

    async def read(self) -> bytes:
        return await self.inbox.get()

    async def write(self, data: bytes) -> None:
        self.inbox.put_nowait(b"pong:" + data)
        self.inbox.put_nowait(b"")

    async def close_write(self) -> None:
        pass

    async def reset(self) -> None:
        pass

    async def read_error(self) -> bytes:
        return b""


class Forwarder:
    def __init__(self) -> None:
        self.dialed: list[int] = []

    async def dial(self, port: int, request_id: str) -> Conn:
        self.dialed.append(port)
        return Conn()

    async def close(self) -> None:
        pass


class MemoryNode:
    def __init__(self) -> None:
        self.sessions: list[EchoSession] = []
        self.forwarder = Forwarder()
        self.log_opts: list[tuple[str, LogOptions]] = []

    async def exec(self, pod: Obj, opts: ExecOptions) -> EchoSession:
        self.sessions.append(EchoSession())
        return self.sessions[-1]

    async def attach(self, pod: Obj, opts: ExecOptions) -> EchoSession:
        raise StreamError("attach is not offered here", 400)

    async def port_forward(self, pod: Obj) -> Forwarder:
        return self.forwarder

    async def logs(self, pod: Obj, container: str, opts: LogOptions) -> AsyncIterator[bytes]:
        self.log_opts.append((container, opts))

        async def lines() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"line {i}\n".encode()
        return lines()


async def test_front_speaks_kubectl_protocols_to_any_pod_streams() -> None:
    node = MemoryNode()
    front = StreamFront(node)

    async def sub(request: web.Request) -> web.StreamResponse:
        return await front.handle(request, pod(), request.match_info["sub"])

    app = web.Application()
    app.router.add_route("*", "/pods/p/{sub}", sub)
    server = TestServer(app)
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            url = server.make_url("/pods/p/exec?command=sh&stdin=true&stdout=true")
            out, status = b"", b""
            async with http.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
                await ws.send_bytes(b"\x00hello")
                await ws.send_bytes(b"\xff\x00")  # v5: stdin closed
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        if msg.data[0] == 1:
                            out += msg.data[1:]
                        elif msg.data[0] == 3:
                            status += msg.data[1:]
            assert out == b"HELLO" and json.loads(status)["details"]["causes"][0]["message"] == "3"
            assert node.sessions[0].closed

            async with http.get(server.make_url("/pods/p/log?tailLines=5&container=app")) as r:
                assert r.status == 200 and await r.text() == "line 0\nline 1\nline 2\n"
            assert node.log_opts == [("app", LogOptions(tail_lines=5))]

            async with http.get(server.make_url("/pods/p/attach?stdout=true"),
                                headers={"Upgrade": "websocket", "Connection": "Upgrade",
                                         "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                         "Sec-WebSocket-Protocol": "v5.channel.k8s.io"}) as r:
                assert r.status == 400 and (await r.json())["message"] == "attach is not offered here"

            got: dict[int, bytes] = {}
            async with http.ws_connect(server.make_url("/pods/p/portforward?ports=8080"),
                                       protocols=("v4.channel.k8s.io",)) as ws:
                await ws.receive_bytes()  # channel 0: the port
                await ws.receive_bytes()  # channel 1: the port
                await ws.send_bytes(b"\x00ping")
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        got[msg.data[0]] = got.get(msg.data[0], b"") + msg.data[1:]
            assert got.get(0) == b"pong:ping" and node.forwarder.dialed == [8080]
    finally:
        await server.close()
