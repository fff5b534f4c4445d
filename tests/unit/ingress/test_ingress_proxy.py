"""The proxy in process, against a real aiohttp backend on loopback and raw client sockets:
routing, forwarded headers, keep-alive and pooling, chunked both ways, HEAD, pipelining,
WebSocket passthrough, local answers (404/503/502/504/413/308) and malformed requests (400 and
the connection closed: CL+TE, duplicate CL, obs-fold, bad chunk size, bad request line, huge
headers)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from minik.ingress.proxy import Proxy, ProxySettings
from minik.ingress.routes import Backend, HostRoutes, RouteTable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _echo(req: web.Request) -> web.Response:
    body = await req.read()
    return web.json_response({"method": req.method, "path": req.path_qs, "headers": dict(req.headers),
                              "body": len(body), "peer": req.remote})


async def _chunked(req: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(req)
    for i in range(5):
        await resp.write(f"part{i};".encode())
    await resp.write_eof()
    return resp


async def _upload(req: web.Request) -> web.Response:
    n = 0
    async for chunk in req.content.iter_any():
        n += len(chunk)
    return web.json_response({"received": n, "te": req.headers.get("Transfer-Encoding", "")})


async def _ws(req: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse()
    await ws.prepare(req)
    async for msg in ws:
        if msg.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str("echo:" + msg.data)
    return ws


async def _delay(req: web.Request) -> web.Response:
    await asyncio.sleep(0.5)
    return web.Response(text="done")


async def _slow(req: web.Request) -> web.Response:
    await asyncio.sleep(5)
    return web.Response(text="late")


@dataclass
class Env:
    proxy: Proxy
    port: int
    backend: tuple[str, int]

    def use(self, **hosts: Backend) -> None:
        self.proxy.table = RouteTable(hosts={h.replace("_", "."): HostRoutes(prefix={"/": b}) for h, b in hosts.items()})

    def backend_to(self, *eps: tuple[str, int], **kw: Any) -> Backend:
        return Backend("default/i", "default", "web", "80", tuple(eps), **kw)


@pytest.fixture()
async def env() -> AsyncIterator[Env]:
    app = web.Application()
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/chunked", _chunked)
    app.router.add_post("/upload", _upload)
    app.router.add_get("/ws", _ws)
    app.router.add_get("/slow", _slow)
    app.router.add_get("/delay", _delay)
    runner = web.AppRunner(app)
    await runner.setup()
    bport = free_port()
    site = web.TCPSite(runner, "127.0.0.1", bport)
    await site.start()
    proxy = Proxy(ProxySettings(header_timeout=1.0, body_timeout=1.0, max_header_bytes=4096), https_port=8443)
    server = await proxy.listen("127.0.0.1", 0, "http")
    port = server.sockets[0].getsockname()[1]
    sweeper = asyncio.create_task(proxy.sweep())
    e = Env(proxy, port, ("127.0.0.1", bport))
    e.use(web_test=e.backend_to(e.backend))
    try:
        yield e
    finally:
        sweeper.cancel()
        await proxy.close()
        await runner.cleanup()


@dataclass
class Resp:
    status: int
    headers: dict[str, str]
    body: bytes


async def read_response(r: asyncio.StreamReader, head_only: bool = False) -> Resp:
    line = await asyncio.wait_for(r.readline(), 10)
    assert line.startswith(b"HTTP/1.1 "), line
    status = int(line.split()[1])
    headers: dict[str, str] = {}
    while True:
        h = await r.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    body = b""
    if head_only or status in (101, 204, 304):
        pass
    elif "content-length" in headers:
        body = await r.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        while True:
            size = int((await r.readline()).strip(), 16)
            chunk = await r.readexactly(size + 2)
            if size == 0:
                break
            body += chunk[:-2]
    else:
        body = await r.read()
    return Resp(status, headers, body)


async def exchange(port: int, raw: bytes) -> tuple[Resp, asyncio.StreamReader, asyncio.StreamWriter]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(raw)
    return await read_response(r), r, w


async def closed(r: asyncio.StreamReader) -> bool:
    return await asyncio.wait_for(r.read(), 5) == b""


def get(path: str, host: str = "web.test", extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode()


async def test_routes_and_rewrites_headers(env: Env) -> None:
    raw = get("/echo?x=1", "Web.Test:8080", "Connection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\n"
              "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nProxy-Authorization: x\r\nForwarded: for=6.6.6.6\r\n")
    resp, r, w = await exchange(env.port, raw)
    assert resp.status == 200
    got = json.loads(resp.body)
    h = {k.lower(): v for k, v in got["headers"].items()}
    assert got["path"] == "/echo?x=1"
    assert h["host"] == "Web.Test:8080"                   # Host kept as sent
    assert h["x-forwarded-for"] == "127.0.0.1" and h["x-real-ip"] == "127.0.0.1"   # client's values not trusted
    assert h["x-forwarded-proto"] == "http" and h["x-forwarded-host"] == "Web.Test:8080"
    assert h["x-forwarded-port"] == str(env.port)
    for hop in ("x-secret", "keep-alive", "proxy-authorization", "forwarded"):
        assert hop not in h
    assert "connection" not in resp.headers or resp.headers["connection"] != "close"
    w.close()


async def test_keep_alive_both_sides(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    for i in range(5):
        w.write(get(f"/echo?i={i}"))
        resp = await read_response(r)
        assert resp.status == 200 and json.loads(resp.body)["path"] == f"/echo?i={i}"
    assert env.proxy.counters.upstream_connects == 1
    assert env.proxy.counters.upstream_reused == 4
    w.close()


async def test_pipelined_requests_answer_in_order(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/echo?n=1") + get("/nowhere", "unknown.test") + get("/echo?n=3"))
    a, b, c = [await read_response(r) for _ in range(3)]
    assert (a.status, b.status, c.status) == (200, 404, 200)
    assert json.loads(a.body)["path"] == "/echo?n=1" and json.loads(c.body)["path"] == "/echo?n=3"
    w.close()


async def test_unknown_host_404_keeps_connection(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/", "nobody.test"))
    resp = await read_response(r)
    assert resp.status == 404 and b"no ingress rule for host 'nobody.test'" in resp.body
    w.write(get("/echo"))
    assert (await read_response(r)).status == 200
    w.close()


async def test_no_endpoints_503(env: Env) -> None:
    env.use(web_test=env.backend_to())
    resp, _, w = await exchange(env.port, get("/echo"))
    assert resp.status == 503 and b"default/web has no ready endpoints" in resp.body
    w.close()


async def test_refused_endpoint_is_retried_elsewhere_then_502(env: Env) -> None:
    dead = ("127.0.0.1", free_port())
    env.use(web_test=env.backend_to(dead, env.backend))
    for _ in range(4):   # round-robin starts on either; the dead one is retried on the live one
        resp, _, w = await exchange(env.port, b"POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\n\r\nhi")
        assert resp.status == 200 and json.loads(resp.body)["body"] == 2
        w.close()
    assert env.proxy.counters.retries >= 1
    env.use(web_test=env.backend_to(dead))
    resp, _, w = await exchange(env.port, get("/echo"))
    assert resp.status == 502 and b"cannot connect" in resp.body
    w.close()


async def test_garbage_from_backend_502(env: Env) -> None:
    async def garbage(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"SMTP ready\r\n\r\n")
        await w.drain()
        w.close()
    srv = await asyncio.start_server(garbage, "127.0.0.1", 0)
    env.use(web_test=env.backend_to(("127.0.0.1", srv.sockets[0].getsockname()[1])))
    resp, _, w = await exchange(env.port, get("/"))
    assert resp.status == 502 and b"invalid answer from the backend" in resp.body
    w.close()
    srv.close()


async def test_read_timeout_504(env: Env) -> None:
    env.use(web_test=env.backend_to(env.backend, read_timeout=1.0))
    resp, _, w = await exchange(env.port, get("/slow"))
    assert resp.status == 504 and b"did not answer within 1s" in resp.body
    w.close()


async def test_chunked_both_ways_and_streamed_upload(env: Env) -> None:
    resp, r, w = await exchange(env.port, get("/chunked"))
    assert resp.status == 200 and resp.headers["transfer-encoding"] == "chunked"
    assert resp.body == b"part0;part1;part2;part3;part4;"
    w.write(b"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    resp = await read_response(r)
    assert json.loads(resp.body) == {"received": 11, "te": "chunked"}
    w.close()


async def test_large_upload_streams(env: Env) -> None:
    size = 20 * 1024 * 1024
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(f"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: {size}\r\n\r\n".encode())
    block = b"x" * 65536
    for _ in range(size // len(block)):
        w.write(block)
        await w.drain()
    resp = await read_response(r)
    assert json.loads(resp.body)["received"] == size
    w.close()


async def test_head(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(b"HEAD /echo HTTP/1.1\r\nHost: web.test\r\n\r\n")
    resp = await read_response(r, head_only=True)
    assert resp.status == 200 and int(resp.headers["content-length"]) > 0
    w.write(get("/echo?after=head"))
    resp = await read_response(r)
    assert json.loads(resp.body)["path"] == "/echo?after=head"
    w.close()


async def test_websocket_passthrough(env: Env) -> None:
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(f"http://127.0.0.1:{env.port}/ws", headers={"Host": "web.test"}) as ws:
            for i in range(3):
                await ws.send_str(f"m{i}")
                assert (await ws.receive(timeout=5)).data == f"echo:m{i}"
            env.use()   # a route change does not cut an established tunnel
            await ws.send_str("still")
            assert (await ws.receive(timeout=5)).data == "echo:still"


async def test_body_limit_413(env: Env) -> None:
    env.use(web_test=env.backend_to(env.backend, body_limit=10))
    resp, r, _ = await exchange(env.port, b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 11\r\n\r\n")
    assert resp.status == 413 and resp.headers["connection"] == "close"
    resp, r, _ = await exchange(env.port, b"POST /upload HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                                            b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert resp.status == 413
    assert await closed(r)


async def test_ssl_redirect_308(env: Env) -> None:
    env.use(web_test=env.backend_to(env.backend, ssl_redirect=True))
    resp, _, w = await exchange(env.port, get("/a/b?c=d"))
    assert resp.status == 308 and resp.headers["location"] == "https://web.test:8443/a/b?c=d"
    w.close()


BAD = {
    "cl+te": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te+cl": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
    "duplicate-cl": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "same-duplicate-cl": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab",
    "obs-fold": b"GET /echo HTTP/1.1\r\nHost: web.test\r\nX-A: b\r\n c\r\n\r\n",
    "bad-chunk-size": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "te-gzip-chunked": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "te-identity": b"POST /echo HTTP/1.1\r\nHost: web.test\r\nTransfer-Encoding: identity\r\n\r\n",
    "bad-request-line": b"GARBAGE\r\n\r\n",
    "bad-version": b"GET / HTTP/9.9\r\nHost: web.test\r\n\r\n",
    "no-host": b"GET /echo HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET /echo HTTP/1.1\r\nHost: web.test\r\nHost: other.test\r\n\r\n",
    "space-before-colon": b"GET /echo HTTP/1.1\r\nHost : web.test\r\n\r\n",
    "header-overflow": b"GET /echo HTTP/1.1\r\nHost: web.test\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n",
    "many-headers": b"GET /echo HTTP/1.1\r\nHost: web.test\r\n" + b"X-A: 0123456789\r\n" * 400 + b"\r\n",
}


async def test_long_request_target_414(env: Env) -> None:
    resp, r, _ = await exchange(env.port, get("/" + "a" * 5000))
    assert resp.status == 414 and resp.headers["connection"] == "close"
    assert await closed(r)


@pytest.mark.parametrize("name", sorted(BAD))
async def test_malformed_requests_get_400_and_close(env: Env, name: str) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(BAD[name])
    resp = await read_response(r)
    assert resp.status == 400, resp
    assert resp.headers["connection"] == "close"
    assert await closed(r)
    w.close()


async def test_slow_header_408(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(b"GET /echo HTTP/1.1\r\nHost: web")
    resp = await asyncio.wait_for(read_response(r), 10)
    assert resp.status == 408
    assert await closed(r)


async def test_slow_body_408(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(b"POST /upload HTTP/1.1\r\nHost: web.test\r\nContent-Length: 100\r\n\r\nabc")
    resp = await asyncio.wait_for(read_response(r), 10)
    assert resp.status == 408
    assert await closed(r)


async def test_stale_pooled_connection_is_retried_only_when_safe(env: Env) -> None:
    """A backend that closes a kept-alive connection when the next request arrives (the classic
    keep-alive race): an idempotent request without a body goes to a fresh connection, a POST
    gets a 502 (it may have been processed)."""
    async def once_per_connection(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in head.lower() else 0
        await r.readexactly(n)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        await w.drain()
        await r.read(1)          # the next request on this connection: hang up without answering
        w.transport.abort()
    srv = await asyncio.start_server(once_per_connection, "127.0.0.1", 0)
    env.use(web_test=env.backend_to(("127.0.0.1", srv.sockets[0].getsockname()[1])))
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    for _ in range(3):
        w.write(get("/"))
        resp = await read_response(r)
        assert (resp.status, resp.body) == (200, b"first")
    assert env.proxy.counters.retries >= 2
    w.write(b"POST / HTTP/1.1\r\nHost: web.test\r\nContent-Length: 1\r\n\r\nx")
    assert (await read_response(r)).status == 502
    w.close()
    srv.close()


async def test_half_closed_client_still_gets_its_answer(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/echo?half=1"))
    w.write_eof()
    resp = await read_response(r)
    assert resp.status == 200 and json.loads(resp.body)["path"] == "/echo?half=1"
    assert await closed(r)


async def test_access_log_line_at_debug(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    import logging
    with caplog.at_level(logging.DEBUG, logger="minik.ingress.access"):
        resp, _, w = await exchange(env.port, get("/echo?a=1"))
        w.close()
    assert resp.status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "minik.ingress.access"]
    assert len(lines) == 1
    line = lines[0]
    assert 'host=web.test method=GET path="/echo?a=1" status=200' in line
    assert f"upstream=127.0.0.1:{env.backend[1]} ingress=default/i" in line


async def test_garbage_pipelined_behind_a_pending_request_cuts_the_connection(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/slow") + b"GARBAGE\r\n\r\n")
    # No 400 may stand in for the answer to /slow: the connection is cut without a response.
    assert await asyncio.wait_for(r.read(), 10) == b""


async def test_route_change_keeps_requests_in_flight(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/delay"))
    await asyncio.sleep(0.1)
    env.use()       # the host's route is gone for new requests
    resp = await read_response(r)
    assert (resp.status, resp.body) == (200, b"done")
    w.write(get("/delay"))
    assert (await read_response(r)).status == 404
    w.close()


async def test_idle_keep_alive_connection_is_closed(env: Env) -> None:
    env.proxy.settings = ProxySettings(keepalive_timeout=1.0)
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(get("/echo"))
    assert (await read_response(r)).status == 200
    assert await closed(r)       # within a couple of sweeps


async def test_http10_client_gets_an_unframed_body_and_a_close(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    w.write(b"GET /chunked HTTP/1.0\r\nHost: web.test\r\n\r\n")
    raw = await asyncio.wait_for(r.read(), 10)     # ends when the proxy closes
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding" not in head.lower()
    assert b"connection: close" in head.lower()
    assert body == b"part0;part1;part2;part3;part4;"


async def test_http10_keep_alive_client(env: Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    for i in range(2):
        w.write(f"GET /echo?i={i} HTTP/1.0\r\nHost: web.test\r\nConnection: keep-alive\r\n\r\n".encode())
        resp = await read_response(r)
        assert resp.status == 200 and resp.headers["connection"] == "keep-alive"
    w.close()
