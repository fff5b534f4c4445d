"""The outermost middleware: nothing below it can produce aiohttp's plain-text error page."""

from __future__ import annotations

import json

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from minik.api.guard import last_resort


async def _raise_recursion(request: web.Request) -> web.Response:
    raise RecursionError("maximum recursion depth exceeded")


async def _raise_http(request: web.Request) -> web.Response:
    raise web.HTTPServiceUnavailable()


async def _raise_in_error_handling(request: web.Request) -> web.Response:
    try:
        raise ValueError("first")
    except ValueError:
        # what a broken error mapper would do: fail while rendering the first error
        json.dumps({"bad": "\ud800"}).encode("utf-8", "strict")
        return web.Response(body="x\ud800".encode())


async def _fine(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def test_every_failure_is_a_status() -> None:
    app = web.Application(middlewares=[last_resort])
    app.router.add_get("/recursion", _raise_recursion)
    app.router.add_get("/http", _raise_http)
    app.router.add_get("/mapper", _raise_in_error_handling)
    app.router.add_get("/fine", _fine)
    async with TestClient(TestServer(app)) as client:
        for path, code in (("/recursion", 500), ("/http", 503), ("/mapper", 500), ("/nope", 404)):
            resp = await client.get(path)
            assert resp.status == code, path
            assert resp.headers["Content-Type"].startswith("application/json"), path
            body = await resp.json()
            assert body["kind"] == "Status" and body["code"] == code and body["status"] == "Failure", (path, body)
        resp = await client.get("/fine")
        assert resp.status == 200 and await resp.text() == "ok"
