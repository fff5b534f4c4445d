"""CriPodStreams: the node's side of pod streaming, on a CRI runtime.

Role: implements `minik.client.streams.PodStreams`. exec/attach ask CRI for a streaming URL and
open a SPDY/3.1 client session to it speaking v4.channel.k8s.io (SPDY, not containerd's
websocket dialect, because SPDY can half-close stdin and `kubectl exec -i`/`kubectl cp` need
stdin EOF to reach the process); port-forward asks CRI for the sandbox's PortForward URL on
first use (it is single-use and short-lived) and opens an error + data stream pair per
connection on one session, so containerd dials localhost:<port> inside the pod's network
namespace (a server bound to the pod's loopback is reachable, as on a kubelet); logs find the
container's log path through CRI and follow it with `logs.stream_log`.
Nothing here knows HTTP requests or kubectl's protocols: that is the API server's `api/streams`.
Neighbours: `minik.agent.cri.CriClient`, `dial` (the upgrade), `logs`, `minik.client.spdy`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from minik.agent.cri import CriClient, CriError, CriNotFoundError, pb
from minik.agent.streams.logs import ProbeFn, stream_log
from minik.agent.streams.dial import StreamingServerError, dial_upgrade
from minik.client.spdy import SpdyError, SpdySession, SpdyStream
from minik.client.streams import (
    ExecOptions,
    LogOptions,
    Obj,
    StreamError,
    find_container,
    strip_scheme,
)

__all__ = ["CriPodStreams", "PORTFORWARD_PROTOCOL", "V4"]

V4 = "v4.channel.k8s.io"
PORTFORWARD_PROTOCOL = "portforward.k8s.io"
SUCCESS = b'{"metadata":{},"status":"Success"}'
_LOG_QUEUE = 16


class _CriExecSession:
    """An `ExecSession` over a SPDY client session to the runtime's streaming server."""

    def __init__(self, session: SpdySession, reader: asyncio.Task[None], streams: dict[str, SpdyStream]) -> None:
        self._session, self._reader, self._streams = session, reader, streams

    @classmethod
    async def open(cls, url: str, opts: ExecOptions) -> _CriExecSession:
        _, conn = await dial_upgrade(url, (V4,))
        session = SpdySession(conn, client=True)
        reader = asyncio.create_task(session.run(), name="exec-backend-reader")
        streams: dict[str, SpdyStream] = {}
        try:
            # Kubernetes clients open the error stream first; the runtime expects that order.
            wanted = ["error"]
            wanted += ["stdin"] if opts.stdin else []
            wanted += ["stdout"] if opts.stdout else []
            wanted += ["stderr"] if opts.wants_stderr else []
            wanted += ["resize"] if opts.tty else []
            for kind in wanted:
                streams[kind] = await session.open_stream({"streamtype": kind})
        except BaseException:
            await session.close()
            reader.cancel()
            raise
        return cls(session, reader, streams)

    async def _read(self, kind: str) -> bytes:
        stream = self._streams.get(kind)
        return b"" if stream is None else await stream.read()

    async def read_stdout(self) -> bytes:
        return await self._read("stdout")

    async def read_stderr(self) -> bytes:
        return await self._read("stderr")

    async def write_stdin(self, data: bytes) -> None:
        stream = self._streams.get("stdin")
        if stream is not None:
            await stream.write(data)

    async def close_stdin(self) -> None:
        stream = self._streams.get("stdin")
        if stream is not None:
            await stream.close_write()

    async def resize(self, data: bytes) -> None:
        stream = self._streams.get("resize")
        if stream is not None:
            await stream.write(data)

    async def wait(self) -> bytes:
        return await self._streams["error"].read_all() or SUCCESS

    async def close(self) -> None:
        await self._session.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class _SpdyPortConnection:
    """A `PortConnection`: the runtime-side (error, data) stream pair of one connection."""

    def __init__(self, error: SpdyStream, data: SpdyStream) -> None:
        self._error, self._data = error, data

    @property
    def reset_by_peer(self) -> bool:
        return self._data.reset_by_peer

    async def read(self) -> bytes:
        return await self._data.read()

    async def write(self, data: bytes) -> None:
        await self._data.write(data)

    async def close_write(self) -> None:
        await self._data.close_write()

    async def reset(self) -> None:
        await self._data.reset()

    async def read_error(self) -> bytes:
        return await self._error.read()


class _CriPortForwarder:
    """One SPDY session to the sandbox's PortForward URL, opened on the first dial and again
    when it ended; every connection is a stream pair on it."""

    def __init__(self, cri: CriClient, sandbox_id: str) -> None:
        self._cri, self._sandbox_id = cri, sandbox_id
        self._session: SpdySession | None = None
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def _live_session(self) -> SpdySession:
        async with self._lock:
            if self._session is None or self._session.finished.is_set():
                try:
                    url = await self._cri.port_forward(self._sandbox_id)
                    _, conn = await dial_upgrade(url, (PORTFORWARD_PROTOCOL,))
                except (CriError, StreamingServerError) as err:
                    raise ConnectionRefusedError(str(err)) from None
                self._session = SpdySession(conn, client=True)
                self._reader = asyncio.create_task(self._session.run(), name="portforward-backend-reader")
            return self._session

    async def dial(self, port: int, request_id: str) -> _SpdyPortConnection:
        headers = {"port": str(port), "requestid": request_id}
        session = await self._live_session()
        try:
            err = await session.open_stream({"streamtype": "error", **headers})
            await err.close_write()
            data = await session.open_stream({"streamtype": "data", **headers})
        except SpdyError as e:
            raise ConnectionResetError(str(e)) from None
        return _SpdyPortConnection(err, data)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader


class CriPodStreams:
    """`minik.client.streams.PodStreams` against a local CRI runtime."""

    def __init__(self, cri: CriClient, *, poll_interval: float = 0.1) -> None:
        self._cri = cri
        self._poll = poll_interval

    # -- exec / attach -----------------------------------------------------------------------

    async def exec(self, pod: Obj, opts: ExecOptions) -> _CriExecSession:
        cid = self._container_id(pod, opts)
        try:
            url = await self._cri.exec(cid, opts.command, tty=opts.tty, stdin=opts.stdin,
                                       stdout=opts.stdout, stderr=opts.stderr)
        except CriNotFoundError:
            raise StreamError(f'container not found ("{opts.container}")') from None
        except CriError as err:
            raise StreamError(str(err), 500, "InternalError") from None
        return await self._open(url, opts)

    async def attach(self, pod: Obj, opts: ExecOptions) -> _CriExecSession:
        cid = self._container_id(pod, opts)
        try:
            url = await self._cri.attach(cid, tty=opts.tty, stdin=opts.stdin, stdout=opts.stdout,
                                         stderr=opts.stderr)
        except CriNotFoundError:
            raise StreamError(f'container not found ("{opts.container}")') from None
        except CriError as err:
            raise StreamError(str(err), 500, "InternalError") from None
        return await self._open(url, opts)

    @staticmethod
    def _container_id(pod: Obj, opts: ExecOptions) -> str:
        ref = find_container(pod, opts.container)
        if not ref.running or not ref.container_id:
            raise StreamError(f'container not found ("{ref.name}")')
        return ref.container_id

    @staticmethod
    async def _open(url: str, opts: ExecOptions) -> _CriExecSession:
        try:
            return await _CriExecSession.open(url, opts)
        except (StreamingServerError, SpdyError, OSError, asyncio.TimeoutError) as err:
            raise StreamError(f"unable to reach the container runtime: {err}", 500, "InternalError") from None

    # -- port-forward ------------------------------------------------------------------------

    async def port_forward(self, pod: Obj) -> _CriPortForwarder:
        phase = pod.get("status", {}).get("phase", "")
        if phase != "Running":
            raise StreamError(f"unable to forward port because pod is not running. Current status={phase}")
        return _CriPortForwarder(self._cri, await self._sandbox_id(pod))

    async def _sandbox_id(self, pod: Obj) -> str:
        """The pod's sandbox, found through any of its containers (CRI lists the sandbox id)."""
        status = pod.get("status", {})
        for st in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            cid = strip_scheme(st.get("containerID", "") or "")
            if not cid:
                continue
            try:
                found = await self._cri.list_containers(pb.ContainerFilter(id=cid))
            except CriError:
                continue
            if found:
                return str(found[0].pod_sandbox_id)
        name = pod.get("metadata", {}).get("name", "")
        raise StreamError(f'pod "{name}" has no running sandbox on this node')

    # -- logs --------------------------------------------------------------------------------

    async def logs(self, pod: Obj, container: str, opts: LogOptions) -> AsyncIterator[bytes]:
        ref = find_container(pod, container)
        pod_name = pod.get("metadata", {}).get("name", "")
        if opts.previous:
            if not ref.previous_id:
                raise StreamError(f'previous terminated container "{ref.name}" in pod "{pod_name}" not found')
            cid = ref.previous_id
        else:
            if not ref.container_id:
                raise StreamError(f'container "{ref.name}" in pod "{pod_name}" is waiting to start: '
                                  f"{ref.waiting_reason}")
            cid = ref.container_id
        try:
            log_path = (await self._cri.container_status(cid)).status.log_path
        except CriNotFoundError:
            raise StreamError(f'container "{ref.name}" in pod "{pod_name}" is not available', 404,
                              "NotFound") from None
        except CriError as err:
            raise StreamError(str(err), 500, "InternalError") from None

        async def is_running() -> bool:
            if opts.previous:
                return False
            try:
                st = (await self._cri.container_status(cid)).status
            except CriError:
                return False
            return st.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)

        return self._log_stream(log_path, opts, is_running)

    async def _log_stream(self, path: str, opts: LogOptions,
                          is_running: ProbeFn) -> AsyncIterator[bytes]:
        # stream_log pushes; a bounded queue turns that into a pull with back-pressure.
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(_LOG_QUEUE)

        failure: list[BaseException] = []

        async def produce() -> None:
            try:
                await stream_log(path, opts, queue.put, is_running, poll_interval=self._poll)
            except FileNotFoundError:
                pass  # the container and its log were removed while we read
            except Exception as err:  # noqa: BLE001 - handed to the reader below
                failure.append(err)
            await queue.put(None)  # not reached when cancelled: nobody reads any more then

        producer = asyncio.create_task(produce(), name=f"logs-{os.path.basename(path)}")
        try:
            while (chunk := await queue.get()) is not None:
                yield chunk
            if failure:
                raise failure[0]
        finally:
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await producer
