"""pods/proxy and services/proxy: the API server as an HTTP proxy into the pod network.

`kubectl proxy` users and dashboards reach workloads through
`/api/v1/namespaces/NS/pods/[scheme:]NAME[:PORT]/proxy/PATH` and the same form for services. The
pod network lives on this host (the bridge), so the API server dials the pod IP itself. A
service resolves to a ready address of its Endpoints, on the target port that matches the
requested service port. Upstream failures are reported as Status 503 with what was tried.
Connections are opened through a `minik.client.streams.PodDialer` (today `DirectDialer`: this
host routes to the pod network), so a node reached another way can be dialed without changing
the HTTP side.

Resolution (`resolve_pod`, `resolve_service`) is pure; `ProxyForwarder` does the HTTP.
Neighbours: `minik.api.handlers` routes the subresource here after authorization.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import aiohttp
from aiohttp import web

from minik.api import status as st
from minik.client.streams import DirectDialer, PodDialer

if TYPE_CHECKING:
    from aiohttp.client_proto import ResponseHandler
    from aiohttp.client_reqrep import ClientRequest
    from aiohttp.tracing import Trace

Obj = dict[str, Any]

# Headers that describe one hop, not the message (RFC 9110 §7.6.1), and credentials meant for us.
_HOP = frozenset(h.lower() for h in ("Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
                                     "TE", "Trailer", "Transfer-Encoding", "Upgrade", "Host", "Authorization",
                                     "Content-Length"))


@dataclass(frozen=True, slots=True)
class ProxyName:
    scheme: str     # "" | http | https
    name: str
    port: str       # "" | number | port name


@dataclass(frozen=True, slots=True)
class Upstream:
    scheme: str
    host: str
    port: int


def parse_proxy_name(segment: str) -> ProxyName:
    """`name`, `name:port`, `scheme:name:port` or `scheme:name:` as kube-apiserver accepts."""
    parts = segment.split(":")
    if len(parts) == 1:
        return ProxyName("", parts[0], "")
    if len(parts) == 2:
        return ProxyName("", parts[0], parts[1])
    if len(parts) == 3 and parts[0] in ("http", "https"):
        return ProxyName(parts[0], parts[1], parts[2])
    raise st.bad_request(f"invalid proxy name {segment!r}: want [scheme:]name[:port]")


def _host(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def resolve_pod(pod: Obj, want: ProxyName) -> Upstream:
    ip = (pod.get("status") or {}).get("podIP")
    if not ip:
        raise st.StatusError(503, "ServiceUnavailable", f'pod "{want.name}" has no IP address yet')
    scheme = want.scheme or "http"
    if not want.port:
        return Upstream(scheme, ip, 443 if scheme == "https" else 80)
    if want.port.isdigit():
        return Upstream(scheme, ip, int(want.port))
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == want.port:
                return Upstream(scheme, ip, int(p["containerPort"]))
    raise st.StatusError(503, "ServiceUnavailable", f'pod "{want.name}" has no container port named "{want.port}"')


def resolve_service(svc: Obj, endpoints: Obj | None, want: ProxyName) -> Upstream:
    ports = (svc.get("spec") or {}).get("ports") or []
    chosen: Mapping[str, Any] | None = None
    for p in ports:
        if (not want.port and len(ports) == 1) or want.port in (p.get("name", ""), str(p.get("port"))):
            chosen = p
            break
    if chosen is None:
        raise st.StatusError(503, "ServiceUnavailable", f'no service port "{want.port}" found for service "{want.name}"')
    for subset in (endpoints or {}).get("subsets") or []:
        addresses = subset.get("addresses") or []
        for ep_port in subset.get("ports") or []:
            if ep_port.get("name", "") == chosen.get("name", "") and addresses:
                scheme = want.scheme or ("https" if ep_port.get("appProtocol") == "https" else "http")
                return Upstream(scheme, addresses[0]["ip"], int(ep_port["port"]))
    raise st.StatusError(503, "ServiceUnavailable", f'no endpoints available for service "{want.name}"')


def proxied_path(raw_path: str, name_segment: str) -> str:
    """What follows `/<name>/proxy` in the raw request path ("/" when nothing does)."""
    marker = f"/{name_segment}/proxy"
    idx = raw_path.find(marker)
    rest = raw_path[idx + len(marker):] if idx >= 0 else ""
    return rest if rest.startswith("/") else "/" + rest


def _insecure_context() -> ssl.SSLContext:
    # kube-apiserver does not verify pod certificates on the proxy path either.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class _DialerConnector(aiohttp.BaseConnector):
    """aiohttp's connection pool on top of a `PodDialer` (the way aiohttp's UnixConnector sits
    on unix sockets)."""

    def __init__(self, dialer: PodDialer) -> None:
        super().__init__()
        self._dialer = dialer
        self._insecure: ssl.SSLContext | None = None

    async def _create_connection(self, req: "ClientRequest", traces: list["Trace"],
                                 timeout: aiohttp.ClientTimeout) -> "ResponseHandler":
        ctx = None
        if req.is_ssl():
            ctx = self._insecure = self._insecure or _insecure_context()
        try:
            async with asyncio.timeout(timeout.sock_connect):
                proto = await self._dialer.create_connection(self._factory, req.host, req.port or 80, ssl=ctx)
        except OSError as e:
            raise aiohttp.ClientConnectorError(req.connection_key, e) from e
        return proto  # type: ignore[return-value]  # made by self._factory: a ResponseHandler


class ProxyForwarder:
    """One HTTP exchange with an upstream, streamed back to the client."""

    def __init__(self, timeout: float = 30.0, dialer: PodDialer | None = None) -> None:
        self._timeout = timeout
        self._dialer: PodDialer = dialer or DirectDialer()
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=_DialerConnector(self._dialer),
                                                  timeout=aiohttp.ClientTimeout(total=self._timeout),
                                                  auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request, up: Upstream, path: str) -> web.StreamResponse:
        url = f"{up.scheme}://{_host(up.host)}:{up.port}{path}"
        if request.query_string:
            url += "?" + request.query_string
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["X-Forwarded-Host"] = request.host
        body = await request.read() if request.body_exists else None
        resp: web.StreamResponse | None = None
        try:
            async with self._client().request(request.method, url, headers=headers, data=body,
                                              allow_redirects=False, ssl=False) as upstream:
                resp = web.StreamResponse(status=upstream.status, reason=upstream.reason)
                for k, v in upstream.headers.items():
                    if k.lower() not in _HOP:
                        resp.headers.add(k, v)
                await resp.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            if resp is not None and resp.prepared:
                return resp  # the upstream broke off mid-body: the client sees a short response
            raise st.StatusError(503, "ServiceUnavailable",
                                 f"error trying to reach {up.host}:{up.port}: {type(e).__name__}: {e}") from None
