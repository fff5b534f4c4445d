"""The server's end of one agent's link: its Client calls and watches, and pod streams towards it.

Role: `LinkSession` answers the agent's `ClientRequest`s and `WatchStart`s from the in-process
client (the same `LocalClient` the controllers use), after asking `NodeAuthorizer`; refusals are
403 to the agent and a log line here. `open_stream` opens a pod stream on the agent; the returned
objects implement `minik.client.streams` (ExecSession, PortConnection, log iterator), so the API's
streaming front drives a pod on a joined node exactly as one on the server's node.
`LinkRegistry` maps node name → live session (a newer link of the same node replaces the older).
`RoutingPodStreams` is the `PodStreams` the API uses: local pods go to the server's own
`CriPodStreams`, the rest over their node's link.
Neighbours: `minik.cluster.server` (creates sessions), `minik.client.grpc` (the agent's end).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from minik.client import Client, ClientError, Obj
from minik.client._generated import cluster_pb2 as pb
from minik.client.grpc import CH_ALL, CH_AUX, CH_CONTROL, CH_ERR, CH_IN, CH_OUT, decode_usage
from minik.client.metrics import NodeUsage, PodUsage, ResourceMetrics
from minik.client.streams import ExecOptions, LogOptions, PodStreams, StreamError
from minik.client.window import MAX_STREAMS, RecvWindow, SendGate, WindowError
from minik.cluster.authorizer import NodeAuthorizer, Request

log = logging.getLogger(__name__)

STREAM_OPEN_TIMEOUT = 30.0
FILTERED_WATCH = frozenset({"secrets", "configmaps"})


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class LinkSession:
    def __init__(self, node: str, client: Client, authorizer: NodeAuthorizer) -> None:
        self.node, self.client, self.authorizer = node, client, authorizer
        self.out: asyncio.Queue[pb.ServerMessage | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._watches: dict[int, asyncio.Task[None]] = {}
        self._streams: dict[int, _RemoteStream] = {}
        self._stream_ids = 0
        self.closed = False
        self.pod_usage: list[PodUsage] = []
        self.node_usage: list[NodeUsage] = []

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        t: asyncio.Task[None] = asyncio.create_task(coro, name=name)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def send(self, msg: pb.ServerMessage) -> None:
        if not self.closed:
            self.out.put_nowait(msg)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.out.put_nowait(None)
        for t in list(self._tasks):
            t.cancel()
        for s in list(self._streams.values()):
            s.broken("the node's link closed")
        self._streams.clear()

    def handle(self, msg: pb.AgentMessage) -> None:
        kind = msg.WhichOneof("msg")
        if kind == "request":
            self._spawn(self._request(msg.request), f"link-{self.node}-call")
        elif kind == "watch_start":
            w = msg.watch_start
            self._watches[w.id] = self._spawn(self._watch(w), f"link-{self.node}-watch-{w.resource}")
        elif kind == "watch_stop":
            t = self._watches.pop(msg.watch_stop.id, None)
            if t is not None:
                t.cancel()
        elif kind == "metrics":
            try:
                pods, nodes = decode_usage(msg.metrics.usage)
            except (ValueError, KeyError, TypeError) as e:
                log.warning("node %s sent malformed metrics: %s", self.node, e)
                return
            # A node reports only itself: its node and the pods bound to it (the rest is dropped).
            self.node_usage = [n for n in nodes if n.name == self.node]
            self.pod_usage = pods
        elif kind in ("data", "close"):
            part = msg.data if kind == "data" else msg.close
            s = self._streams.get(part.id)
            if s is not None:
                s.receive(part)
                if kind == "close" and part.channel == CH_ALL:
                    self._streams.pop(part.id, None)
        elif kind == "credit":
            s = self._streams.get(msg.credit.id)
            if s is not None:
                s.credit(msg.credit)

    async def _refused(self, r: Request) -> str:
        why = await self.authorizer.check(self.node, r)
        if why:
            log.warning("node authorizer: %s (%s %s %s/%s)", why, r.verb, r.resource, r.namespace, r.name)
        return why

    async def _request(self, q: pb.ClientRequest) -> None:
        resp = pb.ClientResponse(id=q.id)
        try:
            body: Any = json.loads(q.body) if q.body else None
            name = q.name
            if q.verb == "create" and isinstance(body, dict):
                name = str((body.get("metadata") or {}).get("name") or "")   # a create names its object in the body
            filtered = q.verb == "list" and q.resource in FILTERED_WATCH
            if not filtered:
                why = await self._refused(Request(q.verb, q.resource, q.namespace, name, q.subresource, body))
                if why:
                    raise ClientError(403, "Forbidden", why)
            ns = None if q.all_namespaces else q.namespace
            c = self.client
            result: Any
            if q.verb == "get":
                result = await c.get(q.resource, q.namespace, q.name)
                if result is None:
                    raise ClientError(404, "NotFound", f'{q.resource} "{q.name}" not found')
            elif q.verb == "list":
                items, rv = await c.list(q.resource, ns, q.label_selector, q.field_selector)
                if filtered:   # only what the node may get by name
                    items = [o for o in items if not await self.authorizer.check(self.node, Request(
                        "get", q.resource, str((o.get("metadata") or {}).get("namespace", "")),
                        str((o.get("metadata") or {}).get("name", ""))))]
                result, resp.resource_version = items, rv
            elif q.verb == "create":
                result = await c.create(q.resource, q.namespace, body, q.field_manager)
            elif q.verb == "update":
                result = await c.update(q.resource, q.namespace, q.name, body, q.subresource, q.field_manager)
            elif q.verb == "patch":
                result = await c.patch(q.resource, q.namespace, q.name, body, q.patch_type or "application/merge-patch+json",
                                       q.subresource, q.field_manager)
            elif q.verb == "delete":
                result = await c.delete(q.resource, q.namespace, q.name,
                                        q.grace_period_seconds if q.has_grace_period else None,
                                        q.precondition_uid, q.propagation_policy or "Background")
            elif q.verb == "create_token":
                result = await c.create_token(q.namespace, q.name, body or {})
            else:
                raise ClientError(400, "BadRequest", f"unknown verb {q.verb!r}")
            resp.body = _json(result)
        except ClientError as e:
            resp.code, resp.reason, resp.message = e.code, e.reason, e.message
        except (ValueError, TypeError, KeyError) as e:
            resp.code, resp.reason, resp.message = 400, "BadRequest", f"malformed request: {e}"
        self.send(pb.ServerMessage(response=resp))

    async def _watch(self, w: pb.WatchStart) -> None:
        end = pb.WatchEnd(id=w.id)
        try:
            # Secrets and ConfigMaps may be listed and watched, but only the objects the node may
            # get by name (referenced by its pods, or TLS Secrets of Ingresses) come through (Kubernetes's node authorizer allows a node only those, by name).
            by_name = w.resource in FILTERED_WATCH
            if not by_name:
                why = await self._refused(Request("watch", w.resource, w.namespace, ""))
                if why:
                    raise ClientError(403, "Forbidden", why)
            async for ev in self.client.watch(w.resource, None if w.all_namespaces else w.namespace, w.resource_version,
                                              w.label_selector, w.field_selector):
                if by_name:
                    m = ev.object.get("metadata") or {}
                    if await self.authorizer.check(self.node, Request("get", w.resource, str(m.get("namespace", "")),
                                                                      str(m.get("name", "")))):
                        continue
                self.send(pb.ServerMessage(event=pb.WatchEvent(id=w.id, type=ev.type, object=_json(ev.object))))
        except ClientError as e:
            end.code, end.reason, end.message = e.code, e.reason, e.message
        except asyncio.CancelledError:
            self._watches.pop(w.id, None)
            raise
        self._watches.pop(w.id, None)
        self.send(pb.ServerMessage(watch_end=end))

    # ---- pod streams towards the agent --------------------------------------------------------
    async def open_stream(self, kind: str, pod: Obj, options: Obj) -> _RemoteStream:
        if self.closed:
            raise StreamError(f"node {self.node} is not connected", 503, "ServiceUnavailable")
        if len(self._streams) >= MAX_STREAMS:   # bounds what one link may buffer (minik.client.window)
            raise StreamError(f"node {self.node} already has {MAX_STREAMS} pod streams open over its link; "
                              "try again when one ends", 429, "TooManyRequests")
        self._stream_ids += 1
        sid = self._stream_ids
        s = self._streams[sid] = _RemoteStream(self, sid)
        self.send(pb.ServerMessage(open=pb.StreamOpen(id=sid, kind=kind, pod=_json(pod), options=_json(options))))
        try:
            await asyncio.wait_for(s.opened, STREAM_OPEN_TIMEOUT)
        except asyncio.TimeoutError:
            self._streams.pop(sid, None)
            raise StreamError(f"node {self.node} did not answer the {kind} request", 504, "Timeout") from None
        except StreamError:
            self._streams.pop(sid, None)
            raise
        return s


class _RemoteStream:
    """One pod stream on the agent, seen from the server: inbound channels as queues.

    Flow control (minik.client.window): each inbound channel's queue holds at most WINDOW bytes,
    because the agent may send only what `read` has granted back; writes towards the pod wait for
    the agent's credit. The link's reader therefore never blocks and never buffers without bound."""

    def __init__(self, session: LinkSession, sid: int) -> None:
        self.session, self.id = session, sid
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.final: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.channels: dict[int, asyncio.Queue[bytes | None]] = {c: asyncio.Queue() for c in (CH_OUT, CH_ERR, CH_AUX)}
        self.recv = {c: RecvWindow() for c in self.channels}
        self.gates = {c: SendGate() for c in (CH_IN, CH_AUX)}
        self.reset_by_peer = False
        self.error = ""

    def receive(self, part: pb.StreamData | pb.StreamClose) -> None:
        if isinstance(part, pb.StreamData):
            if part.channel == CH_CONTROL:
                if not self.opened.done():
                    self.opened.set_result(None)
            elif part.channel in self.channels:
                try:
                    self.recv[part.channel].received(len(part.data))
                except WindowError as e:
                    self.violated(f"channel {part.channel}: {e}")
                    return
                self.channels[part.channel].put_nowait(bytes(part.data))
            return
        if part.channel == CH_ALL:
            self._close_gates("the pod stream ended")
            if part.code and not self.opened.done():
                self.opened.set_exception(StreamError(part.message, part.code, part.reason or "BadRequest"))
                return
            if part.reason and part.reason != "reset":
                self.error = part.message or part.reason
            if part.reason == "reset":
                self.reset_by_peer = True
            if not self.final.done():
                self.final.set_result(bytes(part.final))
            for q in self.channels.values():
                q.put_nowait(None)
        elif part.channel in self.channels:
            if part.reason == "reset":
                self.reset_by_peer = True
            self.channels[part.channel].put_nowait(None)

    def credit(self, part: pb.StreamCredit) -> None:
        gate = self.gates.get(part.channel)
        if gate is None:
            self.violated(f"credit for channel {part.channel}, which carries nothing towards the pod")
            return
        try:
            gate.grant(part.bytes)
        except WindowError as e:
            self.violated(f"channel {part.channel}: {e}")

    def violated(self, why: str) -> None:
        """The agent broke this stream's flow control: end THIS stream (both ends), not the link."""
        why = f"node {self.session.node} broke flow control on pod stream {self.id}: {why}"
        log.warning("%s; closing that stream", why)
        self.session.send(pb.ServerMessage(close=pb.StreamClose(id=self.id, channel=CH_ALL, code=400,
                                                                reason="FlowControlError", message=why)))
        self.session._streams.pop(self.id, None)
        self.broken(why)

    def _close_gates(self, why: str) -> None:
        for g in self.gates.values():
            g.close(why)

    def broken(self, why: str) -> None:
        self.error = why
        self._close_gates(why)
        if not self.opened.done():
            self.opened.set_exception(StreamError(why, 503, "ServiceUnavailable"))
        if not self.final.done():
            self.final.set_result(b"")
        for q in self.channels.values():
            q.put_nowait(None)

    async def read(self, channel: int) -> bytes:
        q = self.channels[channel]
        item = await q.get()
        if item is None:
            q.put_nowait(None)  # stay at end for later reads
            if self.error and channel == CH_OUT:
                raise ConnectionError(self.error)
            return b""
        grant = self.recv[channel].taken(len(item))
        if grant:
            self.session.send(pb.ServerMessage(credit=pb.StreamCredit(id=self.id, channel=channel, bytes=grant)))
        return item

    async def data(self, channel: int, data: bytes) -> None:
        """Send towards the pod, waiting (this stream only) for the agent's credit."""
        if self.session.closed:
            raise ConnectionError(f"node {self.session.node} is not connected")
        async for piece in self.gates[channel].pieces(data):
            self.session.send(pb.ServerMessage(data=pb.StreamData(id=self.id, channel=channel, data=piece)))

    def end(self, channel: int, reason: str = "") -> None:
        if channel == CH_ALL:
            self._close_gates("the pod stream was closed")
        self.session.send(pb.ServerMessage(close=pb.StreamClose(id=self.id, channel=channel, reason=reason)))


class RemoteExecSession:
    def __init__(self, s: _RemoteStream) -> None:
        self.s = s

    async def read_stdout(self) -> bytes:
        return await self.s.read(CH_OUT)

    async def read_stderr(self) -> bytes:
        return await self.s.read(CH_ERR)

    async def write_stdin(self, data: bytes) -> None:
        await self.s.data(CH_IN, data)

    async def close_stdin(self) -> None:
        self.s.end(CH_IN)

    async def resize(self, data: bytes) -> None:
        await self.s.data(CH_AUX, data)

    async def wait(self) -> bytes:
        final = await self.s.final
        if not final:
            raise ConnectionError(self.s.error or "the node ended the session without a status")
        return final

    async def close(self) -> None:
        if not self.s.final.done():
            self.s.end(CH_ALL)


class RemotePortConnection:
    def __init__(self, s: _RemoteStream) -> None:
        self.s = s

    @property
    def reset_by_peer(self) -> bool:
        return self.s.reset_by_peer

    async def read(self) -> bytes:
        return await self.s.read(CH_OUT)

    async def write(self, data: bytes) -> None:
        await self.s.data(CH_IN, data)

    async def close_write(self) -> None:
        self.s.end(CH_IN)

    async def reset(self) -> None:
        self.s.end(CH_ALL, "reset")

    async def read_error(self) -> bytes:
        return await self.s.read(CH_AUX)


class RemotePortForwarder:
    def __init__(self, session: LinkSession, pod: Obj) -> None:
        self.session, self.pod = session, pod
        self._open: list[_RemoteStream] = []

    async def dial(self, port: int, request_id: str) -> RemotePortConnection:
        try:
            s = await self.session.open_stream("port-forward", self.pod, {"port": port, "request_id": request_id})
        except StreamError as e:
            raise ConnectionError(e.message) from None
        self._open.append(s)
        return RemotePortConnection(s)

    async def close(self) -> None:
        for s in self._open:
            if not s.final.done():
                s.end(CH_ALL)
        self._open.clear()


class LinkRegistry:
    def __init__(self) -> None:
        self._sessions: dict[str, LinkSession] = {}

    def add(self, session: LinkSession) -> None:
        old = self._sessions.get(session.node)
        self._sessions[session.node] = session
        if old is not None:
            log.info("node %s linked again; closing its previous link", session.node)
            old.close()

    def remove(self, session: LinkSession) -> None:
        if self._sessions.get(session.node) is session:
            del self._sessions[session.node]

    def get(self, node: str) -> LinkSession | None:
        return self._sessions.get(node)

    def nodes(self) -> list[str]:
        return sorted(self._sessions)


class ClusterMetrics:
    """Usage of every node: the server's own node and what each linked agent last reported."""

    def __init__(self, local: ResourceMetrics, links: LinkRegistry) -> None:
        self.local, self.links = local, links

    def _sessions(self) -> list[LinkSession]:
        return [s for s in (self.links.get(n) for n in self.links.nodes()) if s is not None]

    def pods(self) -> list[PodUsage]:
        out = list(self.local.pods())
        for s in self._sessions():
            out += s.pod_usage
        return out

    def nodes(self) -> list[NodeUsage]:
        out = list(self.local.nodes())
        for s in self._sessions():
            out += s.node_usage
        return out


class RoutingPodStreams:
    """The API's PodStreams: by pod.spec.nodeName, the server's own node or a joined one."""

    def __init__(self, links: LinkRegistry, local: PodStreams | None = None, local_node: str = "") -> None:
        self.links, self.local, self.local_node = links, local, local_node

    def _remote(self, pod: Obj) -> LinkSession | None:
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if self.local is not None and node == self.local_node:
            return None
        session = self.links.get(node)
        if session is None:
            if not node:
                raise StreamError("pod is not scheduled to a node yet")
            raise StreamError(f"node {node} is not connected to the server (its agent is down or unreachable)",
                              503, "ServiceUnavailable")
        return session

    async def exec(self, pod: Obj, opts: ExecOptions) -> RemoteExecSession:
        session = self._remote(pod)
        if session is None:
            assert self.local is not None
            return await self.local.exec(pod, opts)  # type: ignore[return-value]
        return RemoteExecSession(await session.open_stream("exec", pod, _exec_opts(opts)))

    async def attach(self, pod: Obj, opts: ExecOptions) -> RemoteExecSession:
        session = self._remote(pod)
        if session is None:
            assert self.local is not None
            return await self.local.attach(pod, opts)  # type: ignore[return-value]
        return RemoteExecSession(await session.open_stream("attach", pod, _exec_opts(opts)))

    async def port_forward(self, pod: Obj) -> RemotePortForwarder:
        session = self._remote(pod)
        if session is None:
            assert self.local is not None
            return await self.local.port_forward(pod)  # type: ignore[return-value]
        return RemotePortForwarder(session, pod)

    async def logs(self, pod: Obj, container: str, opts: LogOptions) -> AsyncIterator[bytes]:
        session = self._remote(pod)
        if session is None:
            assert self.local is not None
            return await self.local.logs(pod, container, opts)
        s = await session.open_stream("logs", pod, {"container": container, **asdict(opts)})

        async def chunks() -> AsyncIterator[bytes]:
            try:
                while chunk := await s.read(CH_OUT):
                    yield chunk
            finally:
                if not s.final.done():
                    s.end(CH_ALL)

        return chunks()


def _exec_opts(opts: ExecOptions) -> Obj:
    d = asdict(opts)
    d["command"] = list(opts.command)
    return d
