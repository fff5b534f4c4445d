"""The ingress reverse proxy: asyncio Protocols and llhttp (httptools) on both sides, bytes
forwarded as soon as a request head is routed.

Per client connection (`Downstream`) one request is in flight at a time (pipelined requests wait
in order). A request head is parsed, checked (llhttp already rejects conflicting Content-Length and
Transfer-Encoding, duplicate Content-Length, obs-fold, bad chunk sizes; we add a header size cap,
a Host requirement and `Transfer-Encoding: chunked` only), routed through the current
`RouteTable` (swapped atomically by the controller: a request keeps the backend it was routed
to), and rewritten once (hop-by-hop headers dropped, `X-Forwarded-*`/`X-Real-IP` set, `Host`
kept). The body is then streamed to a backend connection (`Upstream`) taken from a keep-alive
pool, re-framed as chunked when the client sent chunked. The response head is rewritten the
same way and the body streamed back; back-pressure pauses the other side's reads, so a 100 MB
transfer holds one socket buffer, not the body. A 101 answer turns both sockets into a byte tunnel
(WebSocket). Local answers: 400 (malformed; the connection closes), 404 (no route), 308 (ssl
redirect), 408 (slow client), 413 (body limit), 502 (backend refused or sent garbage), 503 (no
ready endpoint), 504 (backend read timeout).
Retries: a request is sent to another endpoint when the connection could not be opened (it never
reached a backend), or, for an idempotent request without a body, when a reused keep-alive
connection closed before any byte of the answer.
Timeouts are checked by one sweep per second over the open connections (a timer per request would
cost more than the request).
Neighbours: `minik.ingress.routes` (the table), `minik.ingress.tls` (server contexts),
`minik.ingress.controller` (builds the table and starts the listeners).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, cast

import httptools

from minik.ingress.routes import Backend, RouteTable

log = logging.getLogger("minik.ingress")
access_log = logging.getLogger("minik.ingress.access")

HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"trailers",
                        b"transfer-encoding", b"upgrade", b"proxy-authenticate", b"proxy-authorization"})
# Set by the proxy itself: a client's own values are not trusted (this is the edge).
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-real-ip",
                       b"forwarded"})
SPECIAL = HOP_BY_HOP | FORWARDED | {b"host", b"content-length"}
CONNECTION_TOKENS = frozenset({b"keep-alive", b"close", b"upgrade"})
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"})

REASONS = {400: "Bad Request", 404: "Not Found", 408: "Request Timeout", 413: "Content Too Large",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout", 308: "Permanent Redirect",
           500: "Internal Server Error"}

HIGH_WATER = 256 * 1024


@dataclass(frozen=True, slots=True)
class ProxySettings:
    header_timeout: float = 30.0        # a request head must arrive within this (nginx client_header_timeout)
    body_timeout: float = 60.0          # longest silence while reading a request body
    keepalive_timeout: float = 75.0     # idle client connection between requests
    connect_timeout: float = 5.0
    max_header_bytes: int = 32 * 1024
    upstream_idle: int = 256            # idle keep-alive connections kept per endpoint
    upstream_idle_timeout: float = 30.0


@dataclass
class Counters:
    """Prometheus counters (minik_ingress_*)."""

    requests: dict[int, int] = field(default_factory=dict)     # by status code
    upstream_connects: int = 0
    upstream_reused: int = 0
    retries: int = 0
    bad_requests: int = 0
    connections: int = 0

    def lines(self) -> list[str]:
        out = [f'minik_ingress_requests_total{{code="{c}"}} {n}' for c, n in sorted(self.requests.items())]
        out += [f"minik_ingress_upstream_connections_total {self.upstream_connects}",
                f"minik_ingress_upstream_reused_total {self.upstream_reused}",
                f"minik_ingress_retries_total {self.retries}",
                f"minik_ingress_bad_requests_total {self.bad_requests}",
                f"minik_ingress_client_connections_total {self.connections}"]
        return out


class _HeadOnly(Exception):
    """Raised from the response parser's headers callback to end a HEAD answer (llhttp cannot be
    told a response has no body)."""


class Proxy:
    """Shared state of every listener: the route table, the backend pool, counters."""

    def __init__(self, settings: ProxySettings | None = None, https_port: int = 443) -> None:
        self.settings = settings or ProxySettings()
        self.table = RouteTable()
        self.https_port = https_port
        self.counters = Counters()
        self.idle: dict[tuple[str, int], list[Upstream]] = {}
        self._rr: dict[str, int] = {}
        self.downstreams: set[Downstream] = set()
        self.connecting: set[asyncio.Task[None]] = set()
        self._busy = asyncio.Event()          # set while any connection exists (wakes the sweep)
        self.servers: list[asyncio.Server] = []

    # ---- listeners --------------------------------------------------------------------------
    async def listen(self, host: str, port: int, scheme: str, ssl: Any = None) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Downstream(self, scheme, port), host, port, ssl=ssl,
                                          reuse_address=True, backlog=1024)
        self.servers.append(server)
        return server

    async def close(self) -> None:
        for s in self.servers:
            s.close()
        for t in list(self.connecting):
            t.cancel()
        for d in list(self.downstreams):
            d.abort()
        for conns in self.idle.values():
            for u in conns:
                u.close()
        self.idle.clear()
        for s in self.servers:
            await s.wait_closed()
        self.servers.clear()

    async def sweep(self) -> None:
        """Once a second: time out slow clients, slow backends and idle pooled connections. With
        no connection at all it sleeps until one comes (an idle node does not wake up for it)."""
        while True:
            if not self.downstreams and not self.idle:
                self._busy.clear()
                await self._busy.wait()
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for d in list(self.downstreams):
                d.check_timeouts(now)
            limit = now - self.settings.upstream_idle_timeout
            for addr, conns in list(self.idle.items()):
                for u in [u for u in conns if u.idle_since < limit]:
                    conns.remove(u)
                    u.close()
                if not conns:
                    del self.idle[addr]

    # ---- backends ---------------------------------------------------------------------------
    def pick(self, backend: Backend) -> tuple[str, int]:
        eps = backend.endpoints
        i = self._rr.get(backend.key, 0)
        self._rr[backend.key] = i + 1
        return eps[i % len(eps)]

    def take_idle(self, addr: tuple[str, int]) -> Upstream | None:
        conns = self.idle.get(addr)
        while conns:
            u = conns.pop()
            if not u.closed:
                return u
        return None

    def release(self, u: Upstream) -> None:
        conns = self.idle.setdefault(u.addr, [])
        if len(conns) >= self.settings.upstream_idle or u.closed:
            u.close()
            return
        u.ex = None
        u.idle_since = time.monotonic()
        conns.append(u)

    def forget(self, u: Upstream) -> None:
        conns = self.idle.get(u.addr)
        if conns and u in conns:
            conns.remove(u)

    def count(self, status: int) -> None:
        r = self.counters.requests
        r[status] = r.get(status, 0) + 1


def _error_body(status: int, detail: str) -> bytes:
    return f"{status} {REASONS.get(status, '')}: {detail}\n".encode()


class Exchange:
    """One request and its answer. Most fields start from class-level defaults: an exchange is
    created per request, and only what differs from the default is written."""

    backend: Backend | None = None
    head = b""
    buffer: tuple[bytes, ...] | list[bytes] = ()   # framed body bytes not yet handed to a backend (see `hold`)
    request_done = False
    up: Upstream | None = None
    sent_body = False
    response_started = False
    done = False
    status = 0
    attempts = 0
    reused = False
    resp_close = False                 # the answer ends when the backend closes: so does the client connection
    resp_chunked = False               # the answer is re-framed as chunked for the client
    resp_has_body = True
    resp_until_close = False           # the backend's answer has no length: it ends when the backend closes
    tunnel_data = b""
    up_addr: tuple[str, int] | None = None     # the endpoint that answered (access log)
    body_seen = 0
    informational = False
    close = False                      # close the client connection once this answer is sent

    def __init__(self, down: Downstream, method: bytes, url: bytes, version: str, lines: list[tuple[bytes, bytes]],
                 keep_alive: bool, upgrade: bytes, chunked: bool, length: int | None, host: str, host_value: bytes) -> None:
        self.down, self.method, self.url, self.version, self.lines = down, method, url, version, lines
        self.keep_alive, self.upgrade, self.chunked, self.length, self.host = keep_alive, upgrade, chunked, length, host
        self.host_value = host_value
        self.started_at = time.monotonic()

    def hold(self, data: bytes) -> None:
        """Keep body bytes until a backend connection takes them."""
        if isinstance(self.buffer, list):
            self.buffer.append(data)
        else:
            self.buffer = [data]

    @property
    def retryable(self) -> bool:
        return self.method in IDEMPOTENT and not self.chunked and not self.length and not self.upgrade


class Downstream(asyncio.Protocol):
    """A client connection."""

    def __init__(self, proxy: Proxy, scheme: str, port: int) -> None:
        self.proxy, self.scheme, self.port = proxy, scheme, port
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = ""
        self.url: list[bytes] = []
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.cur: Exchange | None = None
        self.parsing: Exchange | None = None
        self.queue: deque[Exchange] = deque()
        self.out: list[bytes] = []
        self.closed = False
        self.close_after = False
        self.tunnel: Upstream | None = None
        self.reading_paused = False
        self.last_read = time.monotonic()
        self.in_head = False          # bytes of a request head have arrived, the head is not complete
        self.head_started = 0.0
        self.writing_paused = False

    # ---- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (cast, not isinstance: other event loops' transports, e.g. uvloop's, are no subclasses)
        self.transport = t = cast(asyncio.Transport, transport)
        t.set_write_buffer_limits(HIGH_WATER)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if isinstance(peer, tuple) else ""
        self.peer_bytes = self.peer.encode()
        self.scheme_bytes = self.scheme.encode()
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self.port = sock[1]
        self.proxy.downstreams.add(self)
        self.proxy._busy.set()
        self.proxy.counters.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.proxy.downstreams.discard(self)
        if self.tunnel is not None:
            self.tunnel.close()
        cur = self.cur
        if cur is not None and cur.up is not None and not cur.done:
            # The client went away mid-exchange: the backend connection's state is unknown.
            cur.up.close()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.send(data)
            return
        if self.closed or self.close_after:
            return
        self.last_read = time.monotonic()
        if self.parsing is None and not self.in_head:
            self.in_head = True
            self.head_started = self.last_read
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            ex = self.parsing or self.cur
            if ex is not None:
                ex.tunnel_data += data[int(e.args[0]):]
            self.pause_reading()
        except httptools.HttpParserCallbackError as e:
            ctx = e.__context__
            if isinstance(ctx, _BadRequest):
                self.bad_request(ctx.detail, ctx.status)
            else:
                log.exception("ingress: request handling failed", exc_info=ctx or e)
                self.bad_request("internal error", 500)
        except httptools.HttpParserError as e:
            self.bad_request(str(e) or type(e).__name__)
        self.flush()

    def eof_received(self) -> bool:
        """The client finished sending (half-close): answer what is in flight, then close."""
        cur = self.cur
        if self.tunnel is None and cur is not None and not cur.done:
            cur.close = True
            return True      # keep the transport open for the answer
        return False

    def pause_writing(self) -> None:
        self.writing_paused = True
        up = self.tunnel or (self.cur.up if self.cur else None)
        if up is not None and up.transport is not None:
            up.transport.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        up = self.tunnel or (self.cur.up if self.cur else None)
        if up is not None and up.transport is not None:
            up.transport.resume_reading()

    # ---- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = []
        self.headers = []
        self.header_bytes = 0

    def on_url(self, url: bytes) -> None:
        self.header_bytes += len(url)
        if self.header_bytes > self.proxy.settings.max_header_bytes:
            raise _BadRequest(f"request target longer than {self.proxy.settings.max_header_bytes} bytes", 414)
        self.url.append(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.proxy.settings.max_header_bytes:
            # 400 as nginx answers ("Request Header Or Cookie Too Large"), then the connection closes.
            raise _BadRequest(f"request header larger than {self.proxy.settings.max_header_bytes} bytes", 400)
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.in_head = False
        p = self.parser
        host = b""
        chunked = False
        length: int | None = None
        hosts = 0
        upgrade = b""
        tokens: list[bytes] = []
        lines: list[tuple[bytes, bytes]] = []      # (lower-case name, header line) to forward
        for name, value in self.headers:
            n = name.lower()
            if n not in SPECIAL:
                lines.append((n, b"%b: %b\r\n" % (name, value)))
            elif n == b"host":
                host = value
                hosts += 1
                lines.append((n, b"%b: %b\r\n" % (name, value)))
            elif n == b"content-length":
                length = int(value)
                lines.append((n, b"%b: %b\r\n" % (name, value)))
            elif n == b"transfer-encoding":
                if value.strip().lower() != b"chunked":
                    raise _BadRequest("only Transfer-Encoding: chunked is accepted", 400)
                chunked = True
            elif n == b"connection":
                tokens += [t.strip().lower() for t in value.split(b",")]
            elif n == b"upgrade":
                upgrade = value
            # other hop-by-hop headers and the client's X-Forwarded-*/X-Real-IP are dropped
        if tokens:
            extra = set(tokens) - CONNECTION_TOKENS
            if extra:   # headers the client named as hop-by-hop (RFC 9110 §7.6.1)
                lines = [line for line in lines if line[0] not in extra]
        version = p.get_http_version()
        if hosts > 1 or (not host and version == "1.1"):
            raise _BadRequest("exactly one Host header is required", 400)
        url = b"".join(self.url)
        if not url.startswith(b"/"):
            # Absolute-form (a forward-proxy request): take the path, the Host header stays authoritative.
            try:
                parsed = httptools.parse_url(url)
            except httptools.HttpParserInvalidURLError:
                raise _BadRequest("invalid request target", 400) from None
            url = (parsed.path or b"/") + (b"?" + parsed.query if parsed.query else b"")
        ex = Exchange(self, p.get_method(), url, version, lines, p.should_keep_alive(),
                      upgrade if p.should_upgrade() else b"", chunked, length, _host_name(host), host)
        self.parsing = ex
        if self.cur is None:
            self.cur = ex
            self.start(ex)
        else:
            self.queue.append(ex)

    def on_body(self, body: bytes) -> None:
        ex = self.parsing
        if ex is None or ex.done:
            return
        ex.body_seen += len(body)
        b = ex.backend
        if b is not None and b.body_limit and ex.body_seen > b.body_limit:
            if not ex.response_started:
                self.respond(ex, 413, f"request body larger than {b.body_limit} bytes", close=True)
            else:
                self.abort()
            return
        framed = b"%x\r\n%b\r\n" % (len(body), body) if ex.chunked else body
        if ex.up is not None and ex.sent_body:
            ex.up.last_activity = self.last_read
            ex.up.send(framed)
        else:
            ex.hold(framed)
            if ex is not self.cur or ex.up is None:
                self.pause_reading()

    def on_message_complete(self) -> None:
        ex = self.parsing
        self.parsing = None
        if ex is None:
            return
        ex.request_done = True
        if ex.chunked:
            if ex.up is not None and ex.sent_body:
                ex.up.send(b"0\r\n\r\n")
            else:
                ex.hold(b"0\r\n\r\n")
        if ex is not self.cur and not ex.done:
            # A pipelined request waits for the answers before it: read no more meanwhile.
            self.pause_reading()

    # ---- exchange -----------------------------------------------------------------------------
    def start(self, ex: Exchange) -> None:
        proxy = self.proxy
        path = ex.url.split(b"?", 1)[0].decode("latin-1")
        b = proxy.table.lookup(ex.host, path)
        if b is None:
            self.respond(ex, 404, f"no ingress rule for host {ex.host!r} and path {path!r}")
            return
        ex.backend = b
        if b.ssl_redirect and self.scheme == "http":
            port = "" if proxy.https_port == 443 else f":{proxy.https_port}"
            loc = f"https://{ex.host}{port}{ex.url.decode('latin-1')}"
            self.respond(ex, 308, f"redirecting to {loc}", extra=[(b"Location", loc.encode("latin-1"))])
            return
        if b.body_limit and ex.length is not None and ex.length > b.body_limit:
            self.respond(ex, 413, f"request body larger than {b.body_limit} bytes", close=True)
            return
        if not b.endpoints:
            self.respond(ex, 503, f"service {b.namespace}/{b.service} has no ready endpoints")
            return
        ex.head = self.upstream_head(ex)
        self.connect(ex)

    def upstream_head(self, ex: Exchange) -> bytes:
        out = [b"%b %b HTTP/1.1\r\n" % (ex.method, ex.url)]
        out += [line for _, line in ex.lines]
        xfh = ex.host_value
        if not xfh:   # HTTP/1.0 without Host: name the route's host
            xfh = ex.host.encode("latin-1")
            out.append(b"Host: %b\r\n" % xfh)
        peer = self.peer_bytes
        out.append(b"X-Forwarded-For: %b\r\nX-Real-IP: %b\r\nX-Forwarded-Proto: %b\r\nX-Forwarded-Host: %b\r\n"
                   b"X-Forwarded-Port: %d\r\n" % (peer, peer, self.scheme_bytes, xfh, self.port))
        if ex.chunked:
            out.append(b"Transfer-Encoding: chunked\r\n")
        if ex.upgrade:
            out.append(b"Upgrade: %b\r\nConnection: Upgrade\r\n\r\n" % ex.upgrade)
        else:
            out.append(b"\r\n")
        return b"".join(out)

    def connect(self, ex: Exchange) -> None:
        proxy = self.proxy
        b = ex.backend
        assert b is not None
        ex.attempts += 1
        addr = proxy.pick(b)
        up = proxy.take_idle(addr)
        if up is not None:
            proxy.counters.upstream_reused += 1
            ex.reused = True
            up.attach(ex)
            self.send_request(ex)
            return
        ex.reused = False
        # A request-scoped task (it ends with the connect): held by the proxy so it is neither
        # garbage-collected mid-flight nor left running when the proxy closes.
        task = asyncio.get_running_loop().create_task(self._open(ex, addr), name="ingress-connect")
        proxy.connecting.add(task)
        task.add_done_callback(proxy.connecting.discard)

    async def _open(self, ex: Exchange, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.proxy.settings.connect_timeout):
                _, up = await loop.create_connection(lambda: Upstream(self.proxy, addr), addr[0], addr[1])
        except (OSError, TimeoutError) as e:
            if self.closed or ex.done:
                return
            b = ex.backend
            assert b is not None
            # Never reached a backend: any method may go to another endpoint.
            if ex.attempts < min(3, len(b.endpoints) + 1):
                self.proxy.counters.retries += 1
                self.connect(ex)
            else:
                timeout = isinstance(e, TimeoutError)
                self.respond(ex, 504 if timeout else 502,
                             f"cannot connect to {b.namespace}/{b.service} at {addr[0]}:{addr[1]}: "
                             f"{'timed out' if timeout else e.strerror or e}", close=not ex.request_done)
            self.flush()
            return
        self.proxy.counters.upstream_connects += 1
        if self.closed or ex.done:
            up.close()
            return
        up.attach(ex)
        self.send_request(ex)
        self.flush()

    def send_request(self, ex: Exchange) -> None:
        up = ex.up
        assert up is not None
        up.last_activity = time.monotonic()
        if ex.buffer:
            up.send(ex.head + b"".join(ex.buffer))
            if not ex.retryable:
                ex.buffer = ()
        else:
            up.send(ex.head)
        ex.sent_body = True
        if not ex.request_done and ex is self.cur and not ex.upgrade:
            self.resume_reading()

    def retry(self, ex: Exchange) -> bool:
        """A reused keep-alive connection closed before answering: try again if that is safe."""
        b = ex.backend
        if ex.response_started or not ex.reused or not ex.retryable or not ex.request_done or b is None or ex.attempts >= 4:
            return False
        self.proxy.counters.retries += 1
        ex.up = None
        ex.sent_body = False
        self.connect(ex)
        return True

    # ---- answers ------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.out.append(data)

    def flush(self) -> None:
        if self.out and self.transport is not None and not self.closed:
            if len(self.out) == 1:
                self.transport.write(self.out[0])
            else:
                self.transport.write(b"".join(self.out))
        self.out.clear()
        if self.close_after and self.transport is not None and not self.closed:
            self.transport.close()
            self.closed = True

    def respond(self, ex: Exchange, status: int, detail: str, close: bool = False,
                extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """A local answer (error page or redirect)."""
        body = _error_body(status, detail) if ex.method != b"HEAD" else b""
        close = close or not ex.keep_alive or (not ex.request_done and (ex.chunked or bool(ex.length)))
        head = [b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                % (status, REASONS.get(status, "").encode(), len(_error_body(status, detail)))]
        for k, v in extra or ():
            head.append(b"%b: %b\r\n" % (k, v))
        head.append(b"Connection: close\r\n\r\n" if close else b"\r\n")
        self.send(b"".join(head) + body)
        ex.status = status
        ex.response_started = True
        ex.close = ex.close or close
        self.finish(ex, reusable_upstream=False)

    def bad_request(self, detail: str, status: int = 400) -> None:
        self.proxy.counters.bad_requests += 1
        self.proxy.count(status)
        cur = self.cur
        if cur is not None and (cur.response_started or cur is not self.parsing):
            # An answer is under way (or owed to an earlier request): a 400 now would be taken
            # as that answer. Cut the connection instead.
            if cur.up is not None:
                cur.up.close()
            self.abort()
            return
        body = _error_body(status, detail)
        self.send(b"HTTP/1.1 %d %b\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n"
                  b"Connection: close\r\n\r\n%b" % (status, REASONS.get(status, "Bad Request").encode(), len(body), body))
        if self.cur is not None and self.cur.up is not None:
            self.cur.up.close()
        self.close_after = True

    def finish(self, ex: Exchange, reusable_upstream: bool) -> None:
        """The answer to `ex` is complete: recycle the backend connection, start the next request."""
        if ex.done:
            return
        ex.done = True
        proxy = self.proxy
        proxy.count(ex.status)
        up = ex.up
        if up is not None:
            ex.up = None
            if reusable_upstream and ex.request_done:
                proxy.release(up)
            else:
                up.close()
        if access_log.isEnabledFor(logging.DEBUG):
            b = ex.backend
            # One structured line per request (logfmt), only when --log-level debug asks for it.
            access_log.debug("client=%s scheme=%s host=%s method=%s path=%s status=%d ms=%.1f upstream=%s ingress=%s "
                             "request_bytes=%d", self.peer, self.scheme, ex.host, ex.method.decode(),
                             json.dumps(ex.url.decode("latin-1")), ex.status, (time.monotonic() - ex.started_at) * 1000,
                             f"{ex.up_addr[0]}:{ex.up_addr[1]}" if ex.up_addr else "-", b.ingress if b else "-", ex.body_seen)
        if ex.close or (not ex.request_done and (ex.chunked or bool(ex.length))):
            # (An answer that came before the whole request body: the rest cannot be skipped safely.)
            self.close_after = True
        self.last_read = time.monotonic()
        if ex is self.cur:
            self.cur = None
            if self.close_after:
                return
            if self.queue:
                nxt = self.queue.popleft()
                self.cur = nxt
                self.start(nxt)
            else:
                self.resume_reading()

    def pause_reading(self) -> None:
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None and not self.closed:
            self.reading_paused = False
            self.last_read = time.monotonic()
            self.transport.resume_reading()

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    def check_timeouts(self, now: float) -> None:
        s = self.proxy.settings
        if self.tunnel is not None or self.closed:
            return
        cur = self.cur
        if cur is None and not self.queue:
            if self.in_head and now - self.head_started > s.header_timeout:
                self.bad_request("request head not received in time", 408)
                self.flush()
            elif not self.in_head and now - self.last_read > s.keepalive_timeout:
                self.close_after = True      # idle keep-alive connection: a clean close
                self.flush()
            return
        if cur is None:
            return
        if not cur.request_done and not self.reading_paused and now - self.last_read > s.body_timeout:
            if not cur.response_started:
                self.respond(cur, 408, "request body not received in time", close=True)
                self.flush()
            else:
                self.abort()
            return
        up = cur.up
        b = cur.backend
        if up is not None and b is not None and not cur.upgrade and now - up.last_activity > b.read_timeout:
            if not cur.response_started:
                self.respond(cur, 504, f"{b.namespace}/{b.service} did not answer within {b.read_timeout:g}s", close=True)
                self.flush()
            else:
                self.abort()

    # ---- response path (called by Upstream) -----------------------------------------------------
    def response_head(self, ex: Exchange, status: int, reason: bytes, headers: list[tuple[bytes, bytes]]) -> None:
        ex.status = status
        informational = 100 <= status < 200 and status != 101
        tokens: list[bytes] = []
        length = False
        chunked = False
        upgrade = b""
        # One flat list joined once: [status line, name, ": ", value, CRLF, name, …].
        out = [b"HTTP/1.1 %d %b\r\n" % (status, reason or REASONS.get(status, "").encode())]
        for name, value in headers:
            n = name.lower()
            if n not in HOP_BY_HOP:
                if n == b"content-length":
                    length = True
                out += (name, b": ", value, b"\r\n")
            elif n == b"connection":
                tokens += [t.strip().lower() for t in value.split(b",")]
            elif n == b"transfer-encoding":
                chunked = True
            elif n == b"upgrade":
                upgrade = value
        if tokens:
            extra = set(tokens) - CONNECTION_TOKENS
            if extra:   # headers the backend named as hop-by-hop
                out = out[:1]
                for name, value in headers:
                    n = name.lower()
                    if n not in HOP_BY_HOP and n not in extra:
                        out += (name, b": ", value, b"\r\n")
        if informational:
            out.append(b"\r\n")
            self.send(b"".join(out))
            return
        ex.response_started = True
        if status == 101:
            out.append(b"Upgrade: %b\r\nConnection: Upgrade\r\n\r\n" % upgrade)
            self.send(b"".join(out))
            return
        no_body = ex.method == b"HEAD" or status == 204 or status == 304
        ex.resp_has_body = not no_body
        if not no_body and (chunked or not length):
            ex.resp_until_close = not chunked and not length
            if ex.version == "1.1":
                ex.resp_chunked = True
                out.append(b"Transfer-Encoding: chunked\r\n")
            else:
                ex.resp_close = True
        keep = ex.keep_alive and not ex.resp_close and not ex.upgrade and (ex.request_done or not ex.length and not ex.chunked)
        if not keep:
            out.append(b"Connection: close\r\n\r\n")
            ex.close = True
        elif ex.version != "1.1":
            out.append(b"Connection: keep-alive\r\n\r\n")
        else:
            out.append(b"\r\n")
        self.send(b"".join(out))

    def response_body(self, ex: Exchange, data: bytes) -> None:
        if ex.resp_chunked:
            self.send(b"%x\r\n%b\r\n" % (len(data), data))
        else:
            self.send(data)

    def response_done(self, ex: Exchange, reusable: bool) -> None:
        if ex.resp_chunked:
            self.send(b"0\r\n\r\n")
        self.finish(ex, reusable)

    def start_tunnel(self, ex: Exchange, up: Upstream, upstream_rest: bytes) -> None:
        """101 Switching Protocols: from now on bytes flow unparsed both ways."""
        self.tunnel = up
        up.tunnel = self
        self.flush()
        if upstream_rest:
            self.send(upstream_rest)
            self.flush()
        if ex.tunnel_data:
            up.send(ex.tunnel_data)
            ex.tunnel_data = b""
        self.proxy.count(101)
        self.cur = None
        self.resume_reading()


class _BadRequest(Exception):
    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail, self.status = detail, status


def _host_name(host: bytes) -> str:
    """Host header → lower-case name without port ("[::1]:80" → "[::1]")."""
    h = host.decode("latin-1").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        return h[:end + 1] if end > 0 else h
    colon = h.rfind(":")
    return h[:colon] if colon >= 0 else h


class Upstream(asyncio.Protocol):
    """A connection to one backend endpoint, reused for many exchanges."""

    def __init__(self, proxy: Proxy, addr: tuple[str, int]) -> None:
        self.proxy, self.addr = proxy, addr
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.ex: Exchange | None = None
        self.closed = False
        self.headers: list[tuple[bytes, bytes]] = []
        self.reason = b""
        self.idle_since = 0.0
        self.last_activity = time.monotonic()
        self.got_bytes = False
        self.tunnel: Downstream | None = None
        self.complete = False

    def attach(self, ex: Exchange) -> None:
        self.ex = ex
        ex.up = self
        ex.up_addr = self.addr
        self.got_bytes = False
        self.complete = False
        if self.transport is not None:
            if ex.down.writing_paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def send(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.close()

    # ---- asyncio.Protocol ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (cast, not isinstance: other event loops' transports, e.g. uvloop's, are no subclasses)
        self.transport = t = cast(asyncio.Transport, transport)
        t.set_write_buffer_limits(HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.tunnel is not None:
            self.tunnel.flush()
            if self.tunnel.transport is not None:
                self.tunnel.transport.close()
            return
        ex = self.ex
        if ex is None:
            self.proxy.forget(self)
            return
        self.ex = None
        down = ex.down
        if ex.done or down.closed:
            return
        if not self.got_bytes and down.retry(ex):
            down.flush()
            return
        if not ex.response_started:
            b = ex.backend
            down.respond(ex, 502, f"{b.namespace}/{b.service} at {self.addr[0]}:{self.addr[1]} closed the connection "
                         f"without an answer" if b else "backend closed the connection", close=True)
        elif ex.resp_until_close:
            down.response_done(ex, False)
        else:
            down.abort()
            return
        down.flush()

    def data_received(self, data: bytes) -> None:
        if self.tunnel is not None:
            self.tunnel.send(data)
            self.tunnel.flush()
            return
        ex = self.ex
        if ex is None:
            # Bytes on an idle connection: the backend is confused; don't reuse it.
            self.proxy.forget(self)
            self.close()
            return
        self.got_bytes = True
        self.last_activity = time.monotonic()
        down = ex.down
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as e:
            if ex.status == 101:
                self.ex = None
                down.start_tunnel(ex, self, data[int(e.args[0]):])
                return
            self.garbage(ex, "unexpected upgrade")
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, _HeadOnly):
                self.parser = httptools.HttpResponseParser(self)
            else:
                log.exception("ingress: response handling failed", exc_info=e.__context__ or e)
                self.garbage(ex, "internal error")
        except httptools.HttpParserError as e:
            self.garbage(ex, str(e) or type(e).__name__)
        down.flush()

    def garbage(self, ex: Exchange, detail: str) -> None:
        down = ex.down
        self.close()
        if ex.done:
            return
        if not ex.response_started:
            down.respond(ex, 502, f"invalid answer from the backend at {self.addr[0]}:{self.addr[1]}: {detail}", close=True)
        else:
            down.abort()

    def pause_writing(self) -> None:
        d = self.tunnel or (self.ex.down if self.ex else None)
        if d is not None:
            d.pause_reading()

    def resume_writing(self) -> None:
        d = self.tunnel or (self.ex.down if self.ex else None)
        if d is not None and (d.tunnel is not None or (d.cur is not None and not d.cur.request_done)):
            d.resume_reading()

    # ---- parser callbacks ---------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.headers = []
        self.reason = b""

    def on_status(self, status: bytes) -> None:
        self.reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        ex = self.ex
        if ex is None:
            return
        status = self.parser.get_status_code()
        ex.down.response_head(ex, status, self.reason, self.headers)
        ex.informational = 100 <= status < 200 and status != 101
        if ex.method == b"HEAD" and not ex.informational:
            self.complete = True
            keep = self.parser.should_keep_alive()
            self.ex = None
            ex.down.response_done(ex, keep)
            raise _HeadOnly()

    def on_body(self, body: bytes) -> None:
        ex = self.ex
        if ex is not None and not ex.informational:
            ex.down.response_body(ex, body)

    def on_message_complete(self) -> None:
        ex = self.ex
        if ex is None:
            return
        if ex.informational:
            ex.informational = False
            return
        if ex.status == 101:
            return
        keep = self.parser.should_keep_alive()
        self.ex = None
        ex.down.response_done(ex, keep)
