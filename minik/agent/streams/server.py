"""PodStreamsImpl: the node agent's answer to pods/{name}/log|exec|attach|portforward.

Role: the `PodStreams` provider `minik.api.handlers` calls with the (already authorised) aiohttp
request and the Pod as a dict. It picks the container the way the apiserver/kubelet do (and
words its errors the same), asks CRI for the log path or a streaming URL, then hands over to
`logs.stream_log`, `remotecommand.bridge` or `portforward.serve_port_forward` on the transport
kubectl chose (websocket first, SPDY/3.1 upgrade as fallback).
Neighbours: `minik.agent.cri.CriClient` for runtime calls; the other modules of this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from minik.agent.cri import CriClient, CriError, CriNotFoundError, pb
from minik.agent.streams import logs, remotecommand, websocket
from minik.agent.streams.portforward import (
    PORTFORWARD_PROTOCOL,
    WS_CHANNEL_PROTOCOLS,
    WS_PORTFORWARD_PROTOCOL,
    serve_port_forward,
    serve_websocket_channels,
)
from minik.agent.streams.spdy import SpdySession
from minik.agent.streams.transport import WebSocketBytes, accept_upgrade

__all__ = ["ContainerRef", "PodStreamsImpl", "StreamRequestError", "find_container",
           "negotiate"]

Obj = dict[str, Any]
_CLIENT_GONE_POLL = 0.5


class StreamRequestError(Exception):
    """Refuse the request with a Kubernetes Status (before any upgrade)."""

    def __init__(self, message: str, code: int = 400, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.message, self.code, self.reason = message, code, reason


@dataclass(frozen=True, slots=True)
class ContainerRef:
    name: str
    container_id: str  # runtime id without the "containerd://" scheme; "" when none
    running: bool
    waiting_reason: str
    previous_id: str  # lastState.terminated container id, "" when none


def _strip_scheme(cid: str) -> str:
    return cid.split("://", 1)[1] if "://" in cid else cid


def find_container(pod: Obj, name: str) -> ContainerRef:
    """Resolve the `container` parameter against the pod; errors worded like Kubernetes'."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    pod_name = meta.get("name", "")
    mains = [c.get("name", "") for c in spec.get("containers", [])]
    inits = [c.get("name", "") for c in spec.get("initContainers", [])]
    ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers", [])]
    if not name:
        if len(mains) == 1 and not inits:
            name = mains[0]
        else:
            msg = (f"a container name must be specified for pod {pod_name}, "
                   f"choose one of: [{' '.join(mains)}]")
            if inits:
                msg += f" or one of the init containers: [{' '.join(inits)}]"
            raise StreamRequestError(msg)
    if name not in mains + inits + ephemeral:
        raise StreamRequestError(f"container {name} is not valid for pod {pod_name}")
    statuses = (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []) + (
        status.get("ephemeralContainerStatuses") or [])
    st: Obj = next((s for s in statuses if s.get("name") == name), {})
    state: Obj = st.get("state") or {}
    waiting = state.get("waiting")
    last_term = (st.get("lastState") or {}).get("terminated") or {}
    return ContainerRef(
        name=name,
        container_id=_strip_scheme(st.get("containerID", "") or ""),
        running="running" in state,
        waiting_reason=(waiting or {}).get("reason", "") or "ContainerCreating",
        previous_id=_strip_scheme(last_term.get("containerID", "") or ""),
    )


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str:
    """The first protocol the client offered that we support ("" if none); headers may repeat
    and may hold comma-separated lists."""
    for entry in offered:
        for proto in (p.strip() for p in entry.split(",")):
            if proto in supported:
                return proto
    return ""


def _status_response(err: StreamRequestError) -> web.Response:
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": err.message, "reason": err.reason, "code": err.code}
    return web.Response(status=err.code, body=json.dumps(body).encode(),
                        content_type="application/json")


def _ports_param(request: web.Request) -> list[int]:
    """`ports=8080&ports=9090` or `ports=8080,9090` (1-65535), as the websocket port-forward takes them."""
    raw = [p for v in request.query.getall("ports", []) for p in v.split(",") if p.strip()]
    if not raw:
        raise StreamRequestError("query parameter \"ports\" is required")
    try:
        ports = [int(p) for p in raw]
    except ValueError:
        raise StreamRequestError(f"invalid port in {raw!r}") from None
    if any(not 0 < p < 65536 for p in ports):
        raise StreamRequestError(f"port out of range in {ports!r}")
    return ports


def _is_websocket(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket"


def _is_spdy(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower().startswith("spdy/3")


class PodStreamsImpl:
    """Implements `minik.api.handlers.PodStreams` against a local CRI runtime."""

    def __init__(self, cri: CriClient, *, poll_interval: float = 0.1) -> None:
        self._cri = cri
        self._poll = poll_interval

    async def handle(self, request: web.Request, pod: Obj, subresource: str) -> web.StreamResponse:
        try:
            if subresource == "log":
                return await self._logs(request, pod)
            if subresource in ("exec", "attach"):
                return await self._remotecommand(request, pod, subresource)
            if subresource == "portforward":
                return await self._portforward(request, pod)
            raise StreamRequestError(f"unknown pod subresource {subresource!r}", 404, "NotFound")
        except StreamRequestError as err:
            return _status_response(err)

    # -- logs --------------------------------------------------------------------------------

    async def _logs(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        try:
            opts = logs.parse_log_query(request.query, time.time_ns())
        except logs.LogQueryError as err:
            raise StreamRequestError(str(err)) from None
        ref = find_container(pod, request.query.get("container", ""))
        pod_name = pod.get("metadata", {}).get("name", "")
        if opts.previous:
            if not ref.previous_id:
                raise StreamRequestError(
                    f'previous terminated container "{ref.name}" in pod "{pod_name}" not found')
            cid = ref.previous_id
        else:
            if not ref.container_id:
                raise StreamRequestError(
                    f'container "{ref.name}" in pod "{pod_name}" is waiting to start: '
                    f"{ref.waiting_reason}")
            cid = ref.container_id
        try:
            log_path = (await self._cri.container_status(cid)).status.log_path
        except CriNotFoundError:
            raise StreamRequestError(
                f'container "{ref.name}" in pod "{pod_name}" is not available', 404,
                "NotFound") from None
        except CriError as err:
            raise StreamRequestError(str(err), 500, "InternalError") from None

        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)

        async def is_running() -> bool:
            if opts.previous:
                return False
            try:
                st = (await self._cri.container_status(cid)).status
            except CriError:
                return False
            return st.state in (pb.CONTAINER_RUNNING, pb.CONTAINER_CREATED)

        stream = asyncio.create_task(
            logs.stream_log(log_path, opts, resp.write, is_running, poll_interval=self._poll))
        # aiohttp does not cancel handlers when the client disconnects; watch for it so an
        # abandoned `logs -f` does not poll forever.
        gone = asyncio.create_task(self._client_gone(request))
        try:
            await asyncio.wait({stream, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not stream.done():
                stream.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, FileNotFoundError):
                await stream
        with contextlib.suppress(ConnectionError, RuntimeError):
            await resp.write_eof()
        return resp

    @staticmethod
    async def _client_gone(request: web.Request) -> None:
        while True:
            transport = request.transport
            if transport is None or transport.is_closing():
                return
            await asyncio.sleep(_CLIENT_GONE_POLL)

    # -- exec / attach -----------------------------------------------------------------------

    def _check_running(self, pod: Obj, ref: ContainerRef) -> None:
        phase = pod.get("status", {}).get("phase", "")
        if phase in ("Succeeded", "Failed"):
            raise StreamRequestError(
                f"cannot exec into a container in a completed pod; current phase is {phase}")
        if not ref.running or not ref.container_id:
            raise StreamRequestError(f'container not found ("{ref.name}")')

    async def _remotecommand(self, request: web.Request, pod: Obj, kind: str) -> web.StreamResponse:
        query: Mapping[str, str] = request.query
        opts = remotecommand.parse_exec_query(query, request.query.getall("command", []))
        ref = find_container(pod, opts.container)
        self._check_running(pod, ref)
        if kind == "exec" and not opts.command:
            raise StreamRequestError("you must specify at least one command for the container")
        if not (opts.stdin or opts.stdout or opts.stderr):
            raise StreamRequestError("you must specify at least one of stdin, stdout, stderr")

        if _is_websocket(request):
            ws = web.WebSocketResponse(protocols=websocket.CHANNEL_PROTOCOLS,
                                       max_msg_size=16 * 1024 * 1024)
            ready = ws.can_prepare(request)
            if not ready.ok or not ready.protocol:
                # A non-101 answer makes kubectl fall back to SPDY.
                raise StreamRequestError(
                    "websocket requests must offer one of: " + ", ".join(websocket.CHANNEL_PROTOCOLS))
            url = await self._stream_url(kind, ref.container_id, opts)
            await ws.prepare(request)
            front: remotecommand.Front = remotecommand.WebSocketFront(
                websocket.ChannelWebSocket(ws))
            await remotecommand.bridge(front, url, opts)
            return ws
        if _is_spdy(request):
            chosen = negotiate(request.headers.getall("X-Stream-Protocol-Version", []),
                               remotecommand.SPDY_PROTOCOLS)
            if not chosen:
                raise StreamRequestError(
                    "unable to upgrade: unable to negotiate protocol: client supports "
                    f"{request.headers.getall('X-Stream-Protocol-Version', [])}, server supports "
                    f"{list(remotecommand.SPDY_PROTOCOLS)}", 403, "Forbidden")
            url = await self._stream_url(kind, ref.container_id, opts)
            conn = await accept_upgrade(request, "SPDY/3.1",
                                        {"X-Stream-Protocol-Version": chosen})
            session = SpdySession(conn, client=False)
            try:
                front = await remotecommand.SpdyFront.accept(session, opts)
            except (ConnectionError, asyncio.TimeoutError):
                return conn.response  # the client is already gone
            await remotecommand.bridge(front, url, opts)
            return conn.response
        raise StreamRequestError("Upgrade request required")

    async def _stream_url(self, kind: str, cid: str, opts: remotecommand.ExecOptions) -> str:
        try:
            if kind == "exec":
                return await self._cri.exec(cid, opts.command, tty=opts.tty, stdin=opts.stdin,
                                            stdout=opts.stdout, stderr=opts.stderr)
            return await self._cri.attach(cid, tty=opts.tty, stdin=opts.stdin,
                                          stdout=opts.stdout, stderr=opts.stderr)
        except CriNotFoundError:
            raise StreamRequestError(f'container not found ("{opts.container}")') from None
        except CriError as err:
            raise StreamRequestError(str(err), 500, "InternalError") from None

    # -- port-forward ------------------------------------------------------------------------

    async def _portforward(self, request: web.Request, pod: Obj) -> web.StreamResponse:
        phase = pod.get("status", {}).get("phase", "")
        if phase != "Running":
            raise StreamRequestError(
                f"unable to forward port because pod is not running. Current status={phase}")
        sandbox_id = await self._sandbox_id(pod)

        async def get_url() -> str:
            return await self._cri.port_forward(sandbox_id)

        if _is_websocket(request):
            ws = web.WebSocketResponse(protocols=(WS_PORTFORWARD_PROTOCOL, *WS_CHANNEL_PROTOCOLS),
                                       max_msg_size=16 * 1024 * 1024)
            ready = ws.can_prepare(request)
            if not ready.ok:
                raise StreamRequestError("unable to upgrade the port-forward request to a websocket")
            if ready.protocol == WS_PORTFORWARD_PROTOCOL:
                await ws.prepare(request)
                await serve_port_forward(SpdySession(WebSocketBytes(ws), client=False), get_url)
                return ws
            # The channel dialect (Python client and others): ports come in the query.
            ports = _ports_param(request)
            await ws.prepare(request)
            await serve_websocket_channels(ws, ports, get_url)
            await ws.close()
            return ws
        if _is_spdy(request):
            offered = request.headers.getall("X-Stream-Protocol-Version", [])
            if offered and not negotiate(offered, (PORTFORWARD_PROTOCOL,)):
                raise StreamRequestError(
                    f"unable to upgrade: client does not support {PORTFORWARD_PROTOCOL}",
                    403, "Forbidden")
            conn = await accept_upgrade(request, "SPDY/3.1",
                                        {"X-Stream-Protocol-Version": PORTFORWARD_PROTOCOL})
            await serve_port_forward(SpdySession(conn, client=False), get_url)
            return conn.response
        raise StreamRequestError("Upgrade request required")

    async def _sandbox_id(self, pod: Obj) -> str:
        """The pod's sandbox, found through any of its containers (CRI lists the sandbox id)."""
        status = pod.get("status", {})
        for st in (status.get("containerStatuses") or []) + (
                status.get("initContainerStatuses") or []):
            cid = _strip_scheme(st.get("containerID", "") or "")
            if not cid:
                continue
            try:
                found = await self._cri.list_containers(pb.ContainerFilter(id=cid))
            except CriError:
                continue
            if found:
                return str(found[0].pod_sandbox_id)
        name = pod.get("metadata", {}).get("name", "")
        raise StreamRequestError(f'pod "{name}" has no running sandbox on this node')
