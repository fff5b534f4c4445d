"""StreamFront in front of CriPodStreams, without containerd: container resolution and errors,
protocol negotiation, and exec over websocket v5 and SPDY bridged to a fake CRI streaming server
built from our own SPDY server side (so the whole remotecommand path runs in-process)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from minik.agent.streams import CriPodStreams
from minik.agent.streams.dial import dial_upgrade
from minik.api.streams import StreamFront
from minik.api.streams.front import negotiate
from minik.api.streams.transport import accept_upgrade
from minik.client.spdy import SpdySession
from minik.client.streams import StreamError, find_container


def make_pod(containers: dict[str, str], *, phase: str = "Running",
             inits: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {"containers": [{"name": n} for n in containers],
                 "initContainers": [{"name": n} for n in inits]},
        "status": {"phase": phase, "containerStatuses": [
            {"name": n, "containerID": f"containerd://{cid}" if cid else "",
             "state": {"running": {}} if cid else {"waiting": {"reason": "ContainerCreating"}}}
            for n, cid in containers.items()]},
    }


def test_find_container() -> None:
    ref = find_container(make_pod({"app": "abc"}), "")
    assert (ref.name, ref.container_id, ref.running) == ("app", "abc", True)
    with pytest.raises(StreamError,
                       match=r"a container name must be specified for pod p, choose one of: "
                             r"\[a b\] or one of the init containers: \[i\]"):
        find_container(make_pod({"a": "1", "b": "2"}, inits=("i",)), "")
    with pytest.raises(StreamError, match="container x is not valid for pod p"):
        find_container(make_pod({"a": "1"}), "x")
    waiting = find_container(make_pod({"a": ""}), "a")
    assert waiting.container_id == "" and waiting.waiting_reason == "ContainerCreating"
    pod = make_pod({"a": "new"})
    pod["status"]["containerStatuses"][0]["lastState"] = {
        "terminated": {"containerID": "containerd://old"}}
    assert find_container(pod, "a").previous_id == "old"


def test_negotiate() -> None:
    offered = ["v5.channel.k8s.io", "v4.channel.k8s.io, v3.channel.k8s.io", "channel.k8s.io"]
    assert negotiate(offered, ("v4.channel.k8s.io",)) == "v4.channel.k8s.io"
    assert negotiate(["v2.channel.k8s.io"], ("v4.channel.k8s.io",)) == ""


class FakeRuntime:
    """Stands in for CriClient (exec/attach) and containerd's streaming server."""

    def __init__(self) -> None:
        self.url = ""
        self.exec_calls: list[tuple[str, tuple[str, ...], bool]] = []

    async def exec(self, cid: str, cmd: Any, *, tty: bool, stdin: bool, stdout: bool,
                   stderr: bool) -> str:
        self.exec_calls.append((cid, tuple(cmd), tty))
        return self.url

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Echo stdin to stdout upper-cased, 'E' to stderr, then exit 7 (v4 Status)."""
        conn = await accept_upgrade(request, "SPDY/3.1",
                                    {"X-Stream-Protocol-Version": "v4.channel.k8s.io"})
        session = SpdySession(conn, client=False)
        reader = asyncio.create_task(session.run())
        streams = {}
        while len(streams) < 4:
            s = await session.accept()
            assert s is not None
            streams[s.headers["streamtype"]] = s
        data = await streams["stdin"].read_all()
        await streams["stdout"].write(data.upper())
        await streams["stderr"].write(b"E")
        status = {"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
                  "message": "command terminated with non-zero exit code: exit status 7",
                  "details": {"causes": [{"reason": "ExitCode", "message": "7"}]}}
        await streams["error"].write(json.dumps(status).encode())
        for s in streams.values():
            await s.close_write()
        await session.close()
        reader.cancel()
        return conn.response


@pytest.fixture
async def served() -> AsyncIterator[tuple[TestServer, FakeRuntime]]:
    fake = FakeRuntime()
    streams = StreamFront(CriPodStreams(fake))  # type: ignore[arg-type]
    pods = {"p": make_pod({"app": "cid1"}), "pending": make_pod({"app": ""}, phase="Pending")}

    async def sub(request: web.Request) -> web.StreamResponse:
        return await streams.handle(request, pods[request.match_info["name"]],
                                    request.match_info["sub"])

    app = web.Application()
    app.router.add_route("*", "/pods/{name}/{sub}", sub)
    app.router.add_route("*", "/exec/token", fake.serve)
    server = TestServer(app)
    await server.start_server()
    fake.url = str(server.make_url("/exec/token"))
    try:
        yield server, fake
    finally:
        await server.close()


async def test_exec_over_websocket_v5(served: tuple[TestServer, FakeRuntime]) -> None:
    server, fake = served
    url = server.make_url("/pods/p/exec?command=sh&command=-c&command=x&stdin=true"
                          "&stdout=true&stderr=true&container=app")
    out, err, status = b"", b"", b""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("v5.channel.k8s.io",)) as ws:
            assert ws.protocol == "v5.channel.k8s.io"
            await ws.send_bytes(b"\x00hello")
            await ws.send_bytes(b"\xff\x00")  # close stdin
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY:
                    continue
                ch, payload = msg.data[0], msg.data[1:]
                if ch == 1:
                    out += payload
                elif ch == 2:
                    err += payload
                elif ch == 3:
                    status += payload
    assert (out, err) == (b"HELLO", b"E")
    assert json.loads(status)["details"]["causes"][0] == {"reason": "ExitCode", "message": "7"}
    assert fake.exec_calls == [("cid1", ("sh", "-c", "x"), False)]


async def test_exec_over_spdy_fallback(served: tuple[TestServer, FakeRuntime]) -> None:
    server, _ = served
    url = str(server.make_url("/pods/p/exec?command=cat&stdin=true&stdout=true&stderr=true"))
    proto, conn = await dial_upgrade(url, ("v5.channel.k8s.io", "v4.channel.k8s.io"))
    assert proto == "v4.channel.k8s.io"
    session = SpdySession(conn, client=True)
    reader = asyncio.create_task(session.run())
    error = await session.open_stream({"streamtype": "error"})
    stdin = await session.open_stream({"streamtype": "stdin"})
    stdout = await session.open_stream({"streamtype": "stdout"})
    stderr = await session.open_stream({"streamtype": "stderr"})
    await stdin.write(b"abc")
    await stdin.close_write()
    assert await stdout.read_all() == b"ABC"
    assert await stderr.read_all() == b"E"
    assert json.loads(await error.read_all())["reason"] == "NonZeroExitCode"
    await session.close()
    reader.cancel()


async def test_refusals_are_status_errors(served: tuple[TestServer, FakeRuntime]) -> None:
    server, _ = served
    async with aiohttp.ClientSession() as http:
        r = await http.get(server.make_url("/pods/pending/exec?command=ls&stdout=true"),
                           headers={"Connection": "Upgrade", "Upgrade": "websocket",
                                    "Sec-WebSocket-Version": "13",
                                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                                    "Sec-WebSocket-Protocol": "v5.channel.k8s.io"})
        body = await r.json()
        assert r.status == 400 and body["message"] == 'container not found ("app")'
        r = await http.get(server.make_url("/pods/pending/log"))
        assert (await r.json())["message"] == (
            'container "app" in pod "p" is waiting to start: ContainerCreating')
        r = await http.get(server.make_url("/pods/p/log?previous=true"))
        assert (await r.json())["message"] == (
            'previous terminated container "app" in pod "p" not found')
        r = await http.post(server.make_url("/pods/pending/portforward"))
        assert "pod is not running" in (await r.json())["message"]
        r = await http.get(server.make_url("/pods/p/exec?stdout=true"))
        assert r.status == 400
