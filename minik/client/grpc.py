"""The agent's transport of `minik.client.Client`: every call and watch over one gRPC link.

Role: a joined agent runs the same agent code as the server's own node; this module is what makes
that possible. `GrpcLink` keeps one bidirectional `Link` stream to the server's supervisor port
(TLS pinned to the cluster CA, keepalives, the node certificate proven in the call metadata,
signed out of process by `minik.pki.nodekey`), reconnecting with back-off. Calls are request/response messages matched by
id; a watch is a start message, events, and an end (code 0: the stream ended, resume; 410:
relist), so `minik.machinery.informer` resumes from its last resourceVersion after a reconnect
exactly as it does locally. While the link is down, calls wait a little for it and then fail with
503, and open watches end with 503 (the informer backs off and resumes).
The server also opens pod streams (exec/attach/port-forward/logs) over the same link; they are
served by the node's local `PodStreams` (`serve_pod_stream` below), multiplexed by stream id with
the channel numbers of `CH_*`, each channel flow-controlled both ways (`minik.client.window`), so a
slow reader on either side stalls its own stream only and nothing buffers without bound.
`join()` is the bootstrap: check the CA against the token's pin, present the secret, node name
and password, and receive the node's client certificate.
Neighbours: `minik.cluster.server` / `minik.cluster.link` (the other end),
`minik.agentd` (builds it), `minik.client.streams` (the PodStreams seam).
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import hashlib
import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, AsyncIterator, Protocol

import grpc

from minik.client import ClientError, Obj, ResourceEvent, ResourceInfo, WatchEvent
from minik.client.metrics import ContainerUsage, NodeUsage, PodUsage, ResourceMetrics
from minik.client.streams import ExecOptions, ExecSession, LogOptions, PodStreams, StreamError
from minik.client.window import MAX_STREAMS, WRITE_BATCH, RecvWindow, SendGate, WindowError, coalesce
from minik.client._generated import cluster_pb2 as pb
from minik.client._generated import cluster_pb2_grpc as pbg
from minik.pki.nodekey import NodeKeyError, link_proof

log = logging.getLogger(__name__)

CH_IN, CH_OUT, CH_ERR, CH_AUX, CH_CONTROL = 0, 1, 2, 3, 4
CH_ALL = 255
MAX_MESSAGE = 8 * 1024 * 1024
CALL_TIMEOUT = 60.0
CONNECT_WAIT = 15.0

CERT_KEY = "minik-node-cert-bin"
PROOF_KEY = "minik-node-proof"


def channel_options(server: bool = False) -> list[tuple[str, Any]]:
    """Keepalives (a cut link is noticed in ~30 s even when idle) and the message size limit.
    The server enforces the limit on what it receives (an oversized message fails that link
    only); the agent does not pre-check what it sends, so the server's rule is the one that holds."""
    return [("grpc.keepalive_time_ms", 15000), ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.keepalive_permit_without_calls", 1), ("grpc.http2.max_pings_without_data", 0),
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE if server else -1)]


class JoinError(Exception):
    pass


def check_ca(ca_pem: bytes, pin: str) -> None:
    """The CA the server presented must be the one the token pins (K10<sha256>)."""
    got = hashlib.sha256(ca_pem).hexdigest()
    if pin and got != pin:
        raise JoinError(f"the server's CA certificate does not match the join token's CA hash "
                        f"(token pins {pin[:12]}…, server has {got[:12]}…): wrong server or token from another cluster")


@dataclass(frozen=True, slots=True)
class LinkCredentials:
    node_name: str
    ca_pem: bytes
    cert_pem: bytes
    key_pem: bytes
    first_proof: str = ""    # signed with the key at bootstrap; used by the first link attempt only


async def join(target: str, ca_pem: bytes, secret: str, node_name: str, password: str, csr_pem: bytes,
               timeout: float = 30.0) -> bytes:
    """Ask the server for the node's client certificate; JoinError with the server's reason."""
    creds = grpc.ssl_channel_credentials(ca_pem)
    async with grpc.aio.secure_channel(target, creds, options=channel_options()) as ch:
        try:
            resp = await pbg.ClusterStub(ch).Join(  # type: ignore[no-untyped-call]
                pb.JoinRequest(secret=secret, node_name=node_name, node_password=password, csr=csr_pem), timeout=timeout)
        except grpc.aio.AioRpcError as e:
            raise JoinError(e.details() or str(e.code())) from None
    return bytes(resp.client_cert)


class _Ended:
    __slots__ = ("code", "reason", "message")

    def __init__(self, code: int, reason: str, message: str) -> None:
        self.code, self.reason, self.message = code, reason, message


class GrpcLink:
    """One link to the server. `run()` is the supervised task; `client` is the Client over it."""

    def __init__(self, target: str, creds: LinkCredentials, pod_streams: PodStreams | None = None,
                 backoff: tuple[float, float] = (0.5, 10.0)) -> None:
        self.target, self.creds, self.pod_streams, self.backoff = target, creds, pod_streams, backoff
        self._first_proof = creds.first_proof
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[pb.ClientResponse]] = {}
        self._watches: dict[int, asyncio.Queue[pb.WatchEvent | _Ended]] = {}
        self._streams: dict[int, _PodStream] = {}
        self._stream_tasks: dict[int, asyncio.Task[None]] = {}
        self._out: asyncio.Queue[pb.AgentMessage] | None = None
        self._connected = asyncio.Event()
        self.connects = 0
        self.last_error = ""
        self.settings: dict[str, str] = {}   # the server's cluster addressing, from its welcome
        self.client = GrpcClient(self)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float = CONNECT_WAIT) -> None:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except asyncio.TimeoutError:
            raise ClientError(503, "ServiceUnavailable",
                              f"no link to the server {self.target}: {self.last_error or 'connecting'}") from None

    def send(self, msg: pb.AgentMessage) -> None:
        if self._out is None:
            raise ClientError(503, "ServiceUnavailable", "the link to the server is down")
        self._out.put_nowait(msg)

    def next_id(self) -> int:
        return next(self._ids)

    async def run(self) -> None:
        delay = self.backoff[0]
        while True:
            started = time.monotonic()
            try:
                await self._session()
                self.last_error = "the server closed the link"
            except grpc.aio.AioRpcError as e:
                self.last_error = f"{e.code().name}: {e.details()}"
            except (OSError, ConnectionError, NodeKeyError) as e:
                self.last_error = str(e)
            finally:
                self._down()
            if time.monotonic() - started > 30:
                delay = self.backoff[0]
            log.warning("link to %s lost (%s); reconnecting in %.1fs", self.target, self.last_error, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _session(self) -> None:
        c = self.creds
        creds = grpc.ssl_channel_credentials(c.ca_pem, c.key_pem, c.cert_pem)
        async with grpc.aio.secure_channel(self.target, creds, options=channel_options()) as ch:
            stub = pbg.ClusterStub(ch)  # type: ignore[no-untyped-call]
            proof, self._first_proof = self._first_proof, ""
            if not proof:
                proof = await link_proof(c.node_name, c.key_pem)
            call = stub.Link(metadata=((CERT_KEY, c.cert_pem), (PROOF_KEY, proof)))
            await call.write(pb.AgentMessage(hello=pb.Hello(node_name=c.node_name)))
            first = await call.read()
            if first is grpc.aio.EOF or not first.HasField("welcome"):
                await call.code()  # raises the server's refusal as AioRpcError when there is one
                raise ConnectionError("the server ended the link before welcoming it")
            try:
                self.settings = {str(k): str(v) for k, v in json.loads(first.welcome.settings or b"{}").items()}
            except (ValueError, AttributeError):
                self.settings = {}
            out: asyncio.Queue[pb.AgentMessage] = asyncio.Queue()
            self._out = out

            async def writer() -> None:
                while True:
                    batch = [await out.get()]
                    while not out.empty() and len(batch) < WRITE_BATCH:
                        batch.append(out.get_nowait())
                    for m in coalesce(batch):
                        await call.write(m)

            wtask = asyncio.create_task(writer(), name="link-writer")
            self.connects += 1
            self._connected.set()
            log.info("linked to %s as node %s", self.target, c.node_name)
            try:
                while True:
                    msg = await call.read()
                    if msg is grpc.aio.EOF:
                        await call.code()
                        return
                    self._dispatch(msg)
                    if wtask.done():
                        wtask.result()
            finally:
                wtask.cancel()
                call.cancel()

    def _down(self) -> None:
        self._connected.clear()
        self._out = None
        err = ClientError(503, "ServiceUnavailable", f"link to the server lost: {self.last_error}")
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(err)
        self._pending.clear()
        for q in self._watches.values():
            q.put_nowait(_Ended(503, "ServiceUnavailable", err.message))
        self._watches.clear()
        for t in self._stream_tasks.values():
            t.cancel()
        self._stream_tasks.clear()
        for s in self._streams.values():
            s.shut("the link to the server was lost")
        self._streams.clear()

    def _dispatch(self, msg: pb.ServerMessage) -> None:
        kind = msg.WhichOneof("msg")
        if kind == "response":
            fut = self._pending.pop(msg.response.id, None)
            if fut is not None and not fut.done():
                fut.set_result(msg.response)
        elif kind == "event":
            q = self._watches.get(msg.event.id)
            if q is not None:
                q.put_nowait(msg.event)
        elif kind == "watch_end":
            q = self._watches.pop(msg.watch_end.id, None)
            if q is not None:
                q.put_nowait(_Ended(msg.watch_end.code, msg.watch_end.reason, msg.watch_end.message))
        elif kind == "open":
            sid = msg.open.id
            if len(self._streams) >= MAX_STREAMS:   # the server keeps to this too; it bounds our buffers
                self._try_send(pb.AgentMessage(close=pb.StreamClose(
                    id=sid, channel=CH_ALL, code=429, reason="TooManyRequests",
                    message=f"this node already serves {MAX_STREAMS} pod streams over its link")))
                return
            stream = self._streams[sid] = _PodStream(self, sid)
            self._stream_tasks[sid] = asyncio.create_task(self._serve(msg.open, stream), name=f"pod-stream-{sid}")
        elif kind in ("data", "close"):
            part = msg.data if kind == "data" else msg.close
            s = self._streams.get(part.id)
            if s is not None:
                self._stream_violated(s, s.receive(part))
        elif kind == "credit":
            s = self._streams.get(msg.credit.id)
            if s is not None:
                self._stream_violated(s, s.credit(msg.credit))

    def _stream_violated(self, s: _PodStream, why: str) -> None:
        """The server broke one stream's flow control: close THAT stream with why, keep the link."""
        if not why:
            return
        why = f"the server broke flow control on pod stream {s.sid}: {why}"
        log.warning("%s; closing that stream", why)
        s.close(CH_ALL, code=400, reason="FlowControlError", message=why)
        s.shut(why)
        self._streams.pop(s.sid, None)
        t = self._stream_tasks.pop(s.sid, None)
        if t is not None:
            t.cancel()

    async def _serve(self, open_: pb.StreamOpen, stream: _PodStream) -> None:
        sid = open_.id
        try:
            if self.pod_streams is None:
                raise StreamError("this node serves no pod streams", 503, "ServiceUnavailable")
            await serve_pod_stream(self.pod_streams, open_, stream, stream)
        except StreamError as e:
            stream.close(CH_ALL, code=e.code, reason=e.reason, message=e.message)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # a broken stream must not take the link down
            log.warning("pod stream %s (%s) failed: %s", sid, open_.kind, e)
            stream.close(CH_ALL, code=500, reason="InternalError", message=str(e))
        finally:
            # Every stream ends with the agent's CH_ALL, also one the server ended itself, so the
            # server forgets it (its per-link stream count is what bounds the link's buffers).
            if not stream.ended:
                stream.close(CH_ALL)
            stream.shut("the pod stream ended")
            if self._streams.get(sid) is stream:
                del self._streams[sid]
            self._stream_tasks.pop(sid, None)

    def _try_send(self, msg: pb.AgentMessage) -> None:
        try:
            self.send(msg)
        except ClientError:
            pass

    async def report_metrics(self, source: ResourceMetrics, interval: float) -> None:
        """Push this node's latest usage samples to the server every `interval` (memory only there)."""
        while True:
            await asyncio.sleep(interval)
            if self.connected:
                self._try_send(pb.AgentMessage(metrics=pb.Metrics(usage=encode_usage(source))))

    # ---- calls ----------------------------------------------------------------------------------
    async def call(self, req: pb.ClientRequest) -> pb.ClientResponse:
        await self.wait_connected()
        req.id = self.next_id()
        fut: asyncio.Future[pb.ClientResponse] = asyncio.get_running_loop().create_future()
        self._pending[req.id] = fut
        try:
            self.send(pb.AgentMessage(request=req))
            resp = await asyncio.wait_for(fut, CALL_TIMEOUT)
        except asyncio.TimeoutError:
            raise ClientError(504, "Timeout", f"no answer from the server to {req.verb} {req.resource}") from None
        finally:
            self._pending.pop(req.id, None)
        if resp.code:
            raise ClientError(resp.code, resp.reason, resp.message)
        return resp

    async def watch(self, start: pb.WatchStart) -> AsyncIterator[WatchEvent]:
        await self.wait_connected()
        start.id = wid = self.next_id()
        q: asyncio.Queue[pb.WatchEvent | _Ended] = asyncio.Queue()
        self._watches[wid] = q
        try:
            self.send(pb.AgentMessage(watch_start=start))
            while True:
                item = await q.get()
                if isinstance(item, _Ended):
                    if item.code:
                        raise ClientError(item.code, item.reason, item.message)
                    return
                yield WatchEvent(item.type, json.loads(item.object))
        finally:
            if self._watches.pop(wid, None) is not None:
                self._try_send(pb.AgentMessage(watch_stop=pb.WatchStop(id=wid)))


class _Sender(Protocol):
    async def data(self, channel: int, data: bytes) -> None: ...

    def close(self, channel: int, final: bytes = b"", reason: str = "") -> None: ...


class _Inbox(Protocol):
    async def get(self) -> pb.StreamData | pb.StreamClose: ...


class _PodStream:
    """The agent's end of one server-opened pod stream: its inbox, and its windows both ways.

    Data towards the pod (stdin / port data, resizes) is accounted on arrival and credited back
    as the serving pumps take it from the inbox; data from the pod waits for the server's credit,
    so a pump with none stops reading the container / socket. Everything is dropped while the
    link is down."""

    RECV = (CH_IN, CH_AUX)
    SEND = (CH_OUT, CH_ERR, CH_AUX)

    def __init__(self, link: GrpcLink, sid: int) -> None:
        self.link, self.sid = link, sid
        self.inbox: asyncio.Queue[pb.StreamData | pb.StreamClose] = asyncio.Queue()
        self.recv = {c: RecvWindow() for c in self.RECV}
        self.gates = {c: SendGate() for c in self.SEND}
        self.ended = False

    def receive(self, part: pb.StreamData | pb.StreamClose) -> str:
        """Queue what the server sent; a flow-control violation's description, else ""."""
        if isinstance(part, pb.StreamData):
            w = self.recv.get(part.channel)
            if w is None:
                return f"data on channel {part.channel}, which carries nothing towards the pod"
            try:
                w.received(len(part.data))
            except WindowError as e:
                return f"channel {part.channel}: {e}"
        elif part.channel == CH_ALL:
            self.shut("the server ended the pod stream")   # pumps waiting for credit stop now
        self.inbox.put_nowait(part)
        return ""

    def credit(self, part: pb.StreamCredit) -> str:
        gate = self.gates.get(part.channel)
        if gate is None:
            return f"credit for channel {part.channel}, which carries nothing from the pod"
        try:
            gate.grant(part.bytes)
        except WindowError as e:
            return f"channel {part.channel}: {e}"
        return ""

    def shut(self, why: str) -> None:
        for g in self.gates.values():
            g.close(why)

    async def get(self) -> pb.StreamData | pb.StreamClose:
        m = await self.inbox.get()
        if isinstance(m, pb.StreamData):
            grant = self.recv[m.channel].taken(len(m.data))
            if grant:
                self.link._try_send(pb.AgentMessage(credit=pb.StreamCredit(id=self.sid, channel=m.channel, bytes=grant)))
        return m

    async def data(self, channel: int, data: bytes) -> None:
        if channel == CH_CONTROL:   # not flow-controlled: a few bytes once per stream
            self.link._try_send(pb.AgentMessage(data=pb.StreamData(id=self.sid, channel=channel, data=data)))
            return
        async for piece in self.gates[channel].pieces(data):
            self.link._try_send(pb.AgentMessage(data=pb.StreamData(id=self.sid, channel=channel, data=piece)))

    def close(self, channel: int, final: bytes = b"", reason: str = "", code: int = 0, message: str = "") -> None:
        if channel == CH_ALL:
            if self.ended:
                return
            self.ended = True
        self.link._try_send(pb.AgentMessage(close=pb.StreamClose(id=self.sid, channel=channel, final=final, reason=reason,
                                                                 code=code, message=message)))


async def serve_pod_stream(streams: PodStreams, open_: pb.StreamOpen, inbox: _Inbox, out: _Sender) -> None:
    """One server-opened stream, served by the node's PodStreams. Refusals raise StreamError
    before the CH_CONTROL "opened" message; afterwards everything travels as data and closes."""
    pod: Obj = json.loads(open_.pod)
    opts: Obj = json.loads(open_.options or b"{}")
    if open_.kind in ("exec", "attach"):
        eo = ExecOptions(tuple(opts.get("command") or ()), str(opts.get("container", "")), bool(opts.get("stdin")),
                         bool(opts.get("stdout")), bool(opts.get("stderr")), bool(opts.get("tty")))
        session = await (streams.exec(pod, eo) if open_.kind == "exec" else streams.attach(pod, eo))
        await out.data(CH_CONTROL, b"opened")
        await _serve_exec(session, inbox, out)
    elif open_.kind == "port-forward":
        fwd = await streams.port_forward(pod)
        try:
            try:
                conn = await fwd.dial(int(opts.get("port", 0)), str(opts.get("request_id", "")))
            except (OSError, ConnectionError, asyncio.TimeoutError) as e:
                raise StreamError(str(e) or "dial failed", 503, "DialFailed") from None
            await out.data(CH_CONTROL, b"opened")

            async def pump_out() -> None:
                while chunk := await conn.read():
                    await out.data(CH_OUT, chunk)
                out.close(CH_OUT, reason="reset" if conn.reset_by_peer else "")

            async def pump_err() -> None:
                while chunk := await conn.read_error():
                    await out.data(CH_AUX, chunk)
                out.close(CH_AUX)

            async def pump_in() -> None:
                while True:
                    m = await inbox.get()
                    if isinstance(m, pb.StreamData):
                        if m.channel == CH_IN:
                            await conn.write(m.data)
                    elif m.channel == CH_IN:
                        await conn.close_write()
                    elif m.channel == CH_ALL:
                        if m.reason == "reset":
                            await conn.reset()
                        return

            inp = asyncio.create_task(pump_in())
            outs: asyncio.Future[Any] = asyncio.gather(pump_out(), pump_err())
            try:
                waits: set[asyncio.Future[Any]] = {inp, outs}
                done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
                if outs not in done and inp.exception() is not None:
                    await outs   # writing to the pod failed; what it still sends drains as before
                    done = {outs}
                if outs in done:
                    outs.result()
                    out.close(CH_ALL)
                # else the server ended the stream (CH_ALL): stop pumping; _serve acknowledges it
            finally:
                inp.cancel()
                outs.cancel()
        finally:
            await fwd.close()
    elif open_.kind == "logs":
        lo = LogOptions(bool(opts.get("follow")), opts.get("tail_lines"), opts.get("since_ns"),
                        bool(opts.get("timestamps")), opts.get("limit_bytes"), bool(opts.get("previous")))
        it = await streams.logs(pod, str(opts.get("container", "")), lo)
        await out.data(CH_CONTROL, b"opened")

        async def produce() -> None:
            async for chunk in it:
                await out.data(CH_OUT, chunk)

        prod = asyncio.create_task(produce())
        stop = asyncio.create_task(inbox.get())
        try:
            await asyncio.wait({prod, stop}, return_when=asyncio.FIRST_COMPLETED)
            if prod.done():
                prod.result()
                out.close(CH_ALL)
        finally:
            prod.cancel()
            stop.cancel()
            aclose = getattr(it, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        raise StreamError(f"unknown pod stream kind {open_.kind!r}")


async def _serve_exec(session: ExecSession, inbox: _Inbox, out: _Sender) -> None:
    async def pump(read: Any, channel: int) -> None:
        while chunk := await read():
            await out.data(channel, chunk)
        out.close(channel)

    async def pump_in() -> None:
        while True:
            m = await inbox.get()
            if isinstance(m, pb.StreamData):
                if m.channel == CH_IN:
                    await session.write_stdin(m.data)
                elif m.channel == CH_AUX:
                    await session.resize(m.data)
            elif m.channel == CH_IN:
                await session.close_stdin()
            elif m.channel == CH_ALL:
                await session.close()
                return

    inp = asyncio.create_task(pump_in())
    try:
        await asyncio.gather(pump(session.read_stdout, CH_OUT), pump(session.read_stderr, CH_ERR))
        final = await session.wait()
        out.close(CH_ALL, final=final)
    except ConnectionError as e:
        out.close(CH_ALL, reason=str(e) or "broken")
    finally:
        inp.cancel()
        await session.close()


def _body(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class GrpcClient:
    """`minik.client.Client` over a `GrpcLink`."""

    def __init__(self, link: GrpcLink) -> None:
        self.link = link

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            resp = await self.link.call(pb.ClientRequest(verb="get", resource=resource, namespace=namespace, name=name))
        except ClientError as e:
            if e.code == 404:
                return None
            raise
        out: Obj = json.loads(resp.body)
        return out

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[builtins.list[Obj], str]:
        resp = await self.link.call(pb.ClientRequest(verb="list", resource=resource, namespace=namespace or "",
                                                     all_namespaces=namespace is None, label_selector=label_selector,
                                                     field_selector=field_selector))
        items: builtins.list[Obj] = json.loads(resp.body)
        return items, resp.resource_version

    def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
              label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        return self.link.watch(pb.WatchStart(resource=resource, namespace=namespace or "", all_namespaces=namespace is None,
                                             resource_version=resource_version, label_selector=label_selector,
                                             field_selector=field_selector))

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj:
        resp = await self.link.call(pb.ClientRequest(verb="create", resource=resource, namespace=namespace,
                                                     body=_body(obj), field_manager=field_manager))
        out: Obj = json.loads(resp.body)
        return out

    async def update(self, resource: str, namespace: str, name: str, obj: Obj, subresource: str = "",
                     field_manager: str = "") -> Obj:
        resp = await self.link.call(pb.ClientRequest(verb="update", resource=resource, namespace=namespace, name=name,
                                                     body=_body(obj), subresource=subresource, field_manager=field_manager))
        out: Obj = json.loads(resp.body)
        return out

    async def patch(self, resource: str, namespace: str, name: str, body: Any,
                    patch_type: str = "application/merge-patch+json", subresource: str = "",
                    field_manager: str = "") -> Obj:
        resp = await self.link.call(pb.ClientRequest(verb="patch", resource=resource, namespace=namespace, name=name,
                                                     body=_body(body), patch_type=patch_type, subresource=subresource,
                                                     field_manager=field_manager))
        out: Obj = json.loads(resp.body)
        return out

    async def delete(self, resource: str, namespace: str, name: str, grace_period_seconds: int | None = None,
                     precondition_uid: str = "", propagation_policy: str = "Background") -> Obj | None:
        try:
            resp = await self.link.call(pb.ClientRequest(
                verb="delete", resource=resource, namespace=namespace, name=name,
                has_grace_period=grace_period_seconds is not None, grace_period_seconds=grace_period_seconds or 0,
                precondition_uid=precondition_uid, propagation_policy=propagation_policy))
        except ClientError as e:
            if e.code == 404:
                return None
            raise
        out: Obj | None = json.loads(resp.body)
        return out

    async def resources(self) -> builtins.list[ResourceInfo]:
        raise ClientError(405, "MethodNotAllowed", "discovery is not served over the node link")

    async def watch_all(self, resource_version: str) -> AsyncIterator[ResourceEvent]:
        raise ClientError(405, "MethodNotAllowed", "watching every resource is not served over the node link")
        yield  # pragma: no cover  (makes this an async generator)

    async def create_token(self, namespace: str, service_account: str, spec: Obj) -> Obj:
        resp = await self.link.call(pb.ClientRequest(verb="create_token", resource="serviceaccounts", namespace=namespace,
                                                     name=service_account, body=_body(spec)))
        out: Obj = json.loads(resp.body)
        return out


def encode_cert(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def encode_usage(source: ResourceMetrics) -> bytes:
    return _body({"pods": [asdict(p) for p in source.pods()], "nodes": [asdict(n) for n in source.nodes()]})


def decode_usage(data: bytes) -> tuple[builtins.list[PodUsage], builtins.list[NodeUsage]]:
    """Raises ValueError/KeyError/TypeError on a malformed report."""
    d = json.loads(data)
    pods = [PodUsage(str(p["namespace"]), str(p["name"]), float(p["timestamp"]), float(p["window"]),
                     tuple(ContainerUsage(str(c["name"]), int(c["cpu_nanocores"]), int(c["memory_bytes"]))
                           for c in p["containers"]))
            for p in d.get("pods") or []]
    nodes = [NodeUsage(str(n["name"]), float(n["timestamp"]), float(n["window"]), int(n["cpu_nanocores"]),
                       int(n["memory_bytes"])) for n in d.get("nodes") or []]
    return pods, nodes
