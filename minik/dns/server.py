"""The DNS server's transports: UDP and TCP on one address and port (53 on the cluster DNS IP).

Each datagram or TCP message goes to a `QueryHandler` (the resolver). An answer available at once
is sent from the receive callback itself (UDP datagrams are read in batches per wake-up); one that needs an upstream runs as a task only while
fewer than `max_inflight` such tasks exist, otherwise the query is dropped (the client retries):
the work a flood can queue is bounded, and nothing waits in an unbounded queue. TCP serves at most
`max_tcp` connections, each message after the other, and closes connections idle for `tcp_idle`
seconds. Malformed packets come back from the handler as None and are dropped.
Neighbours: `minik.dns.resolver.Resolver` (the handler); run by `minik.dns.service.ClusterDns`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import sys
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

log = logging.getLogger("minik.dns.server")

Deferred = Callable[[], Awaitable[bytes | None]]


# Queries that arrive while the loop is busy elsewhere (another component's callback, a GC pause,
# or the kernel running another process) wait in the socket's receive buffer. The default
# (net.core.rmem_default, ~208 KiB) holds ~300 queries — 40 ms at 8,000 q/s — and a query dropped
# there costs its client a resolver timeout (5 s with glibc's defaults), the worst tail of all.
# The kernel only charges memory for datagrams actually queued.
UDP_RCVBUF = 4 << 20
SO_RCVBUFFORCE = 33   # Linux's number; Python's socket module does not name it


def _grow_receive_buffer(sock: socket.socket, size: int) -> None:
    """SO_RCVBUFFORCE (root: past net.core.rmem_max), else SO_RCVBUF (capped at rmem_max)."""
    if sys.platform.startswith("linux"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
            return
        except OSError:   # not privileged
            pass
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class QueryHandler(Protocol):
    def handle(self, data: bytes, tcp: bool) -> bytes | Deferred | None: ...


class _Udp:
    """The UDP side without asyncio's datagram transport: one reader callback drains up to
    `BATCH` datagrams per wake-up (asyncio's transport reads one per loop iteration, so under load
    most of the time went to the event loop, not to DNS). Replies go straight out with a
    non-blocking sendto; a reply the socket buffer cannot take is dropped, as UDP may."""

    BATCH = 64

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server, self.sock = server, sock
        self.loop = asyncio.get_running_loop()
        self.closed = False
        self.loop.add_reader(sock.fileno(), self._readable)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()

    def _send(self, data: bytes, addr: Any) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError:   # buffer full, or the client's port is unreachable: the client retries
            pass

    def _readable(self) -> None:
        server, sock, handle = self.server, self.sock, self.server.handler.handle
        for _ in range(self.BATCH):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:   # e.g. ECONNREFUSED from an ICMP error for an earlier reply
                continue
            try:
                out = handle(data, False)
            except Exception:   # one bad query must never stop the server
                log.exception("DNS query from %s failed", addr)
                continue
            if out is None:
                continue
            if isinstance(out, bytes):
                self._send(out, addr)
                continue
            if len(server.tasks) >= server.max_inflight:
                server.dropped += 1
                continue
            task = self.loop.create_task(self._finish(out, addr), name="dns-udp-query")
            server.tasks.add(task)
            task.add_done_callback(server.tasks.discard)

    async def _finish(self, deferred: Deferred, addr: Any) -> None:
        try:
            out = await deferred()
        except Exception:
            log.exception("DNS query from %s failed", addr)
            return
        if out is not None and not self.closed:
            self._send(out, addr)


class DnsServer:
    def __init__(self, handler: QueryHandler, host: str, port: int = 53, max_inflight: int = 1024,
                 max_tcp: int = 128, tcp_idle: float = 10.0) -> None:
        self.handler, self.host, self.port = handler, host, port
        self.max_inflight, self.max_tcp, self.tcp_idle = max_inflight, max_tcp, tcp_idle
        self.tasks: set[asyncio.Task[None]] = set()
        self.dropped = 0
        self.tcp_connections = 0
        self._udp: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self._tcp_tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Bind UDP, then TCP on the same port (with port 0: a port free for both, tried a few times)."""
        attempts = 20 if self.port == 0 else 1
        for attempt in range(attempts):
            try:
                await self._bind(self.port if attempts == 1 else 0)
                break
            except OSError:
                if attempt + 1 == attempts:
                    raise
        log.info("cluster DNS serving on %s:%d (UDP and TCP)", self.host, self.port)

    async def _bind(self, port: int) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        udp_sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            udp_sock.setblocking(False)
            _grow_receive_buffer(udp_sock, UDP_RCVBUF)
            udp_sock.bind((self.host, port))
            port = udp_sock.getsockname()[1]
            self._tcp = await asyncio.start_server(self._connection, self.host, port, reuse_address=True,
                                                   family=family, backlog=self.max_tcp)
        except OSError:
            udp_sock.close()
            raise
        self._udp, self.port = _Udp(self, udp_sock), port

    async def serve(self) -> None:
        """Start and serve until cancelled (a supervised task), then close."""
        await self.start()
        try:
            await asyncio.Event().wait()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            self._tcp = None
        for task in [*self.tasks, *self._tcp_tasks]:
            task.cancel()
        for task in [*self.tasks, *self._tcp_tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if self.tcp_connections >= self.max_tcp:
            self.dropped += 1
            writer.close()
            return
        self.tcp_connections += 1
        if task is not None:
            self._tcp_tasks.add(task)
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), self.tcp_idle)
                (n,) = struct.unpack("!H", head)
                data = await asyncio.wait_for(reader.readexactly(n), self.tcp_idle)
                try:
                    out = self.handler.handle(data, True)
                    if out is not None and not isinstance(out, bytes):
                        out = await out()
                except Exception:
                    log.exception("DNS query over TCP failed")
                    out = None
                if out is None:
                    continue
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            self.tcp_connections -= 1
            if task is not None:
                self._tcp_tasks.discard(task)
            writer.close()
