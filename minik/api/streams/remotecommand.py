"""exec/attach sessions: kubectl's streams on one side, the node's `ExecSession` on the other.

Role: the remotecommand protocol (Kubernetes' stdin/stdout/stderr/error/resize streams). The
front is what kubectl opened: a websocket (`websocket.ChannelWebSocket`, v5/v4) or a SPDY
session (`SpdyFront`, one stream per `streamtype`). The back is a
`minik.client.streams.ExecSession` from the node (today `minik.agent.streams.cri`, which speaks
SPDY to containerd's streaming server).

The session's final Status (Success, or Failure with reason NonZeroExitCode and an ExitCode
cause) is passed through unchanged after the stdout/stderr pumps have drained, so kubectl sees
all output before it exits with that code.
Neighbours: `front` builds the kubectl side and asks the node for the session; `transport` and
`minik.client.spdy` below.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from minik.api.streams import websocket as wsch
from minik.client.spdy import SpdyError, SpdySession, SpdyStream
from minik.client.streams import ExecOptions, ExecSession

__all__ = [
    "ExecOptions",
    "Front",
    "SPDY_PROTOCOLS",
    "SpdyFront",
    "WebSocketFront",
    "bridge",
    "failure_status",
    "parse_exec_query",
]

log = logging.getLogger("minik.api.streams.remotecommand")

V4 = "v4.channel.k8s.io"
# What our SPDY front accepts, in preference order (the client's order decides among them).
SPDY_PROTOCOLS = (V4,)
SUCCESS = b'{"metadata":{},"status":"Success"}'
_STREAM_WAIT = 30.0
_DRAIN_WAIT = 5.0


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


def parse_exec_query(query: Mapping[str, str], commands: list[str]) -> ExecOptions:
    """ExecOptions from the query (`command` repeats, one argv element each)."""
    return ExecOptions(
        command=tuple(commands),
        container=query.get("container", ""),
        stdin=_truthy(query.get("stdin")),
        stdout=_truthy(query.get("stdout")),
        stderr=_truthy(query.get("stderr")),
        tty=_truthy(query.get("tty")),
    )


def failure_status(message: str, reason: str = "InternalError", code: int = 500) -> bytes:
    return json.dumps(
        {"metadata": {}, "status": "Failure", "message": message, "reason": reason,
         "code": code},
        separators=(",", ":"),
    ).encode()


class Front(Protocol):
    """kubectl's side of a session, whatever its transport."""

    async def read_stdin(self) -> bytes: ...  # b"" at EOF

    async def read_resize(self) -> bytes: ...  # b"" at EOF

    async def write_stdout(self, data: bytes) -> None: ...

    async def write_stderr(self, data: bytes) -> None: ...

    async def finish(self, status: bytes) -> None: ...

    async def wait_gone(self) -> None: ...  # returns when the client went away


class WebSocketFront:
    def __init__(self, chan: wsch.ChannelWebSocket) -> None:
        self.chan = chan
        self._reader = asyncio.create_task(chan.run(), name="exec-ws-reader")

    async def read_stdin(self) -> bytes:
        return await self.chan.read(wsch.STDIN)

    async def read_resize(self) -> bytes:
        return await self.chan.read(wsch.RESIZE)

    async def write_stdout(self, data: bytes) -> None:
        await self.chan.write(wsch.STDOUT, data)

    async def write_stderr(self, data: bytes) -> None:
        await self.chan.write(wsch.STDERR, data)

    async def finish(self, status: bytes) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.chan.write(wsch.ERROR, status)
        await self.chan.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    async def wait_gone(self) -> None:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.shield(self._reader)


class SpdyFront:
    """The server end of kubectl's SPDY session: one stream per streamtype."""

    def __init__(self, session: SpdySession, streams: dict[str, SpdyStream],
                 reader: asyncio.Task[None]) -> None:
        self.session = session
        self.streams = streams
        self._reader = reader

    @classmethod
    async def accept(cls, session: SpdySession, opts: ExecOptions) -> SpdyFront:
        """Run the session and wait until every stream the query promised is open."""
        reader = asyncio.create_task(session.run(), name="exec-spdy-reader")
        expected = {"error"}
        if opts.stdin:
            expected.add("stdin")
        if opts.stdout:
            expected.add("stdout")
        if opts.wants_stderr:
            expected.add("stderr")
        if opts.tty:
            expected.add("resize")
        streams: dict[str, SpdyStream] = {}

        async def collect() -> None:
            while not expected <= streams.keys():
                stream = await session.accept()
                if stream is None:
                    raise ConnectionResetError("client closed before opening its streams")
                streams[stream.headers.get("streamtype", "")] = stream

        try:
            await asyncio.wait_for(collect(), _STREAM_WAIT)
        except BaseException:
            await session.close()
            reader.cancel()
            raise
        return cls(session, streams, reader)

    async def _read(self, kind: str) -> bytes:
        stream = self.streams.get(kind)
        return b"" if stream is None else await stream.read()

    async def read_stdin(self) -> bytes:
        return await self._read("stdin")

    async def read_resize(self) -> bytes:
        return await self._read("resize")

    async def _write(self, kind: str, data: bytes) -> None:
        stream = self.streams.get(kind)
        if stream is not None and not stream.closed_for_writing:
            await stream.write(data)

    async def write_stdout(self, data: bytes) -> None:
        await self._write("stdout", data)

    async def write_stderr(self, data: bytes) -> None:
        await self._write("stderr", data)

    async def finish(self, status: bytes) -> None:
        with contextlib.suppress(SpdyError, ConnectionError):
            await self._write("error", status)
            # kubectl reads the error stream to EOF and copies stdout/stderr to EOF.
            for kind in ("error", "stdout", "stderr"):
                stream = self.streams.get(kind)
                if stream is not None:
                    await stream.close_write()
        await self.session.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader

    async def wait_gone(self) -> None:
        await self.session.finished.wait()


async def _pump(read: Callable[[], Awaitable[bytes]],
                write: Callable[[bytes], Awaitable[None]],
                done: Callable[[], Awaitable[None]] | None = None) -> None:
    try:
        while data := await read():
            await write(data)
    except (SpdyError, ConnectionError):
        pass
    if done is not None:
        with contextlib.suppress(SpdyError, ConnectionError):
            await done()


async def bridge(front: Front, session: ExecSession, opts: ExecOptions) -> None:
    """Connect `front` to the node's `session` until the command ends or kubectl goes.

    Always ends by calling `front.finish(status)`.
    """
    tasks: list[asyncio.Task[None]] = []
    status = SUCCESS
    try:
        outputs: list[asyncio.Task[None]] = []
        if opts.stdout:
            outputs.append(asyncio.create_task(_pump(session.read_stdout, front.write_stdout)))
        if opts.wants_stderr:
            outputs.append(asyncio.create_task(_pump(session.read_stderr, front.write_stderr)))
        if opts.stdin:
            tasks.append(asyncio.create_task(_pump(front.read_stdin, session.write_stdin, session.close_stdin)))
        if opts.tty:
            tasks.append(asyncio.create_task(_pump(front.read_resize, session.resize)))
        tasks.extend(outputs)
        status_task = asyncio.create_task(session.wait())
        gone_task = asyncio.create_task(front.wait_gone())
        tasks += [gone_task]
        await asyncio.wait({status_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
        if not status_task.done():
            # kubectl went away: drop the session, which ends the runtime's side.
            status_task.cancel()
            return
        status = status_task.result() or SUCCESS
        if outputs:
            await asyncio.wait(outputs, timeout=_DRAIN_WAIT)
    except (SpdyError, ConnectionError, asyncio.TimeoutError) as err:
        log.info("exec session failed: %s", err)
        status = failure_status(f"error talking to the container runtime: {err}")
    finally:
        for task in tasks:
            task.cancel()
        await session.close()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.gather(*tasks, return_exceptions=True)
        await front.finish(status)
