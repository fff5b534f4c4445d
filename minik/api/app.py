"""The aiohttp application: routes, the authentication and error middlewares, TLS serving.

Neighbours: built by `minik.daemon` from a `ResourceService` (`minik.api.service`), the
`ApiHandlers`, the `OpenAPI` documents and the `Authenticator`; every error leaves through
`minik.api.status` as a Kubernetes Status.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import ssl
from typing import Awaitable, Callable

from aiohttp import web

from minik import KUBE_VERSION, __version__
from minik.api import status as st
from minik.api.auth import ANONYMOUS, ANONYMOUS_PATHS, AllowAuthenticated, Authenticator, Authorizer, ImpersonationError, User, impersonate
from minik.api.guard import last_resort
from minik.api.handlers import ApiHandlers, json_response
from minik.api.health import Check, evaluate
from minik.api.openapi import OpenAPI
from minik.api.openapiv2 import OpenAPIV2

log = logging.getLogger("minik.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _is_resource_path(path: str) -> bool:
    """/api/v1/<…> and /apis/<group>/<version>/<…> name resources; /api, /apis/<group>[/<version>] are discovery."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"]:
        return len(parts) > 2
    if parts[:1] == ["apis"]:
        return len(parts) > 3
    return False


def version_info() -> dict[str, str]:
    major, minor = KUBE_VERSION.lstrip("v").split(".")[:2]
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(platform.machine(), platform.machine())
    return {"major": major, "minor": minor, "gitVersion": f"{KUBE_VERSION}+minik", "gitCommit": __version__,
            "gitTreeState": "clean", "buildDate": "2026-11-23T00:00:00Z", "goVersion": f"python{platform.python_version()}",
            "compiler": "cpython", "platform": f"linux/{arch}"}


class ApiServer:
    def __init__(self, handlers: ApiHandlers, openapi: OpenAPI, authn: Authenticator, ca_pem: bytes,
                 authz: Authorizer | None = None, ready: Callable[[], bool] = lambda: True,
                 metrics: Callable[[], str] = lambda: "", live_checks: tuple[Check, ...] = ()) -> None:
        self.handlers, self.openapi, self.authn, self.authz = handlers, openapi, authn, authz or AllowAuthenticated()
        self.ca_pem, self.metrics = ca_pem, metrics
        # livez/healthz: the process and its store work; readyz also: startup finished.
        self.live_checks = (Check("ping", lambda: True), Check("log", lambda: True)) + live_checks
        self.ready_checks = self.live_checks + (Check("minik-startup", ready),)
        self.runner: web.AppRunner | None = None
        self.openapi_v2 = OpenAPIV2(openapi)   # Swagger 2.0, derived from the v3 documents

    def build(self) -> web.Application:
        app = web.Application(middlewares=[last_resort, self._errors, self._auth, self._body_deadline], client_max_size=3 * 1024 * 1024 + 1024)
        h = self.handlers
        r = app.router
        r.add_get("/version", self._version)
        r.add_get("/version/", self._version)
        for p in ("/healthz", "/livez", "/readyz"):
            r.add_get(p, self._health)
            r.add_get(p + "/{check:.*}", self._health)
        r.add_get("/ping", self._ping)
        r.add_get("/cacerts", self._cacerts)
        r.add_get("/metrics", self._metrics)
        r.add_get("/openapi/v3", self._openapi_index)
        r.add_get("/openapi/v3/{tail:.*}", self._openapi_doc)
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/api", h.api_root)
        r.add_get("/api/", h.api_root)
        r.add_get("/apis", h.apis_root)
        r.add_get("/apis/", h.apis_root)
        r.add_route("*", "/api/{tail:.*}", h.core)
        r.add_route("*", "/apis/{tail:.*}", h.grouped)
        return app

    # ---- middlewares -------------------------------------------------------------------------
    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as e:
            if e.status == 404:
                return json_response(st.status_body(404, "NotFound", "the server could not find the requested resource"), 404)
            if e.status == 405:
                return json_response(st.status_body(405, "MethodNotAllowed", "the server does not allow this method on the requested resource"), 405)
            if e.status == 413:
                return json_response(st.status_body(413, "RequestEntityTooLarge", "the request body is too large (limit 3145728 bytes)"), 413)
            raise
        except Exception as e:  # the one place errors become Status objects
            target = request.get("target")
            mapped = st.from_exception(e, target.rt if target else None, target.name if target else "")
            if mapped is None:
                log.exception("internal error serving %s %s", request.method, request.path)
                mapped = st.StatusError(500, "InternalError", f"Internal error occurred: {type(e).__name__}: {e}")
            return json_response(mapped.body(), mapped.code)

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        peer = None
        ssl_obj = request.transport.get_extra_info("ssl_object") if request.transport else None
        if ssl_obj is not None:
            peer = ssl_obj.getpeercert()
        user = self.authn.authenticate(request.headers.get("Authorization"), peer or None)
        if user is None or (user is ANONYMOUS and request.path not in ANONYMOUS_PATHS):
            return json_response(st.status_body(401, "Unauthorized", "Unauthorized"), 401)
        try:
            user = impersonate(request.headers, user, self.authz)
        except ImpersonationError as e:
            reason = "Forbidden" if e.code == 403 else "BadRequest"
            return json_response(st.status_body(e.code, reason, e.message), e.code)
        request["user"] = user
        # Resource requests are authorized by the handler once it knows the resource; other paths here.
        if user is not ANONYMOUS and not _is_resource_path(request.path) and not self._authorized_path(request, user):
            verb = request.method.lower()
            return json_response(st.status_body(403, "Forbidden", f'forbidden: User "{user.name}" cannot {verb} path "{request.path}"'), 403)
        return await handler(request)

    @web.middleware
    async def _body_deadline(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Slow bodies: the whole body must arrive within `body_deadline` (a minimum rate), or
        the request gets a 408 Status and the connection is closed. Without this a client that
        announces 1 MiB and sends 10 bytes held its connection (and a handler) indefinitely.
        The body read here is cached by aiohttp: handlers' `request.read()` return it."""
        if not request.body_exists or request.headers.get("Upgrade"):
            return await handler(request)
        length = request.content_length
        if length is not None and length > MAX_BODY:
            return await handler(request)   # refused with 413 before reading
        timeout = body_deadline(length)
        try:
            await asyncio.wait_for(request.read(), timeout)
        except asyncio.TimeoutError:
            log.info("dropping %s %s: body not received within %.0f s", request.method, request.path, timeout)
            resp = json_response(st.status_body(408, "Timeout", f"request body not received within {timeout:.0f}s"), 408)
            resp.force_close()
            return resp
        return await handler(request)

    def _authorized_path(self, request: web.Request, user: User) -> bool:
        # Non-resource requests are authorized with the lowercase HTTP method (get, post, put, …).
        return self.authz.allowed_path(user, request.method.lower(), request.path)

    # ---- small endpoints ---------------------------------------------------------------------
    async def _version(self, request: web.Request) -> web.Response:
        return json_response(version_info())

    async def _health(self, request: web.Request) -> web.Response:
        endpoint = request.path.strip("/").split("/")[0]
        checks = self.ready_checks if endpoint == "readyz" else self.live_checks
        report = evaluate(endpoint, checks, request.match_info.get("check", "").strip("/"), request.query,
                          request.query.getall("exclude", []))
        return web.Response(text=report.text, status=report.code, content_type="text/plain")

    async def _ping(self, request: web.Request) -> web.Response:
        return web.Response(text="pong", content_type="text/plain")

    async def _cacerts(self, request: web.Request) -> web.Response:
        return web.Response(body=self.ca_pem, content_type="text/plain")

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics(), content_type="text/plain")

    async def _openapi_index(self, request: web.Request) -> web.Response:
        return json_response(self.openapi.index())

    async def _openapi_doc(self, request: web.Request) -> web.Response:
        tail = request.match_info["tail"].strip("/").split("/")
        if tail[:1] == ["api"] and len(tail) == 2:
            doc = self.openapi.document("", tail[1])
        elif tail[:1] == ["apis"] and len(tail) == 3:
            doc = self.openapi.document(tail[1], tail[2])
        else:
            doc = None
        if doc is None:
            raise st.StatusError(404, "NotFound", "the server could not find the requested resource")
        body, digest = doc
        resp = web.Response(body=body, content_type="application/json")
        if request.query.get("hash") == digest:
            resp.headers["Cache-Control"] = "public, immutable"
        return resp

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        return await self.openapi_v2.respond(request)

    # ---- serving -----------------------------------------------------------------------------
    async def start(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None) -> None:
        limit_tls_read_buffer()
        self.runner = web.AppRunner(self.build(), access_log=None, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, host, port, ssl_context=ssl_ctx, backlog=1024, reuse_address=True)
        await site.start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
        await self.handlers.proxy.close()


TLS_READ_BUFFER = 32 * 1024
MAX_BODY = 3 * 1024 * 1024
BODY_BASE_SECONDS = 10.0
BODY_MIN_RATE = 128 * 1024      # bytes/s a client must sustain beyond the base allowance
BODY_MAX_SECONDS = 60.0         # kube-apiserver's default request timeout


def body_deadline(length: int | None) -> float:
    """Seconds a request body of `length` bytes (None: chunked) may take to arrive:
    1 MiB → 18 s, 3 MiB → 34 s, chunked → 30 s."""
    if length is None:
        return 30.0
    return min(BODY_MAX_SECONDS, BODY_BASE_SECONDS + length / BODY_MIN_RATE)


def limit_tls_read_buffer(size: int = TLS_READ_BUFFER) -> None:
    """asyncio gives every TLS connection a 256 KiB read buffer (`SSLProtocol.max_size`, a
    zero-filled bytearray, so resident at once): 500 open watches held 125 MB for buffers that
    see one request line each. Two TLS records' worth is plenty: larger bodies are read in more
    calls. The attribute is read when a connection is made, so this applies to new connections."""
    import asyncio.sslproto
    if getattr(asyncio.sslproto.SSLProtocol, "max_size", 0) > size:
        asyncio.sslproto.SSLProtocol.max_size = size


def server_ssl_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_OPTIONAL   # client certs authenticate when offered; tokens otherwise
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
