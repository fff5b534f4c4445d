"""The supervisor port: agents join and keep their link here (gRPC over TLS, default :6444).

`Join` (no client credential): the join secret is checked (`jointokens`), the node name claimed
with the node password (`nodepassword`), and the agent's CSR signed as `system:node:<name>`
(`minik.pki.nodecert`). `Link`: the agent proves its certificate in the call metadata; one
`LinkSession` per node serves its calls and carries pod streams back to it. Keepalives notice a
dead peer; a message over `MAX_MESSAGE` or one that does not parse fails that stream only (gRPC
ends the call; the agent reconnects). Every refusal is logged here and returned to the agent
with a message that says what to do.
Neighbours: `minik.daemon` starts it (`_start_cluster`); `minik.client.grpc` is the agent side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from minik.client import Client, ClientError
from minik.client._generated import cluster_pb2 as pb
from minik.client._generated import cluster_pb2_grpc as pbg
from minik.client.grpc import CERT_KEY, PROOF_KEY, channel_options
from minik.client.window import WRITE_BATCH, coalesce
from minik.cluster.authorizer import NodeAuthorizer
from minik.cluster.jointokens import JoinTokens, TokenError
from minik.cluster.link import LinkRegistry, LinkSession
from minik.cluster.nodepassword import NodePasswordRejected, claim_node_name
from minik.pki.nodecert import NodeCertError, sign_node_csr, verify_proof

log = logging.getLogger(__name__)

_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True, slots=True)
class ClusterSettings:
    bind_address: str
    port: int
    server_dir: str
    ca_cert: str        # paths
    ca_key: str
    serving_cert: str
    serving_key: str
    cluster: tuple[tuple[str, str], ...] = ()   # what agents must agree on: cluster_cidr, service_cidr, cluster_dns, cluster_domain


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class ClusterServer(pbg.ClusterServicer):
    def __init__(self, settings: ClusterSettings, client: Client) -> None:
        self.settings, self.client = settings, client
        self.tokens = JoinTokens(settings.server_dir)
        self.links = LinkRegistry()
        self.authorizer = NodeAuthorizer(client)
        self._server: grpc.aio.Server | None = None
        self._ca = _read(settings.ca_cert)
        self.port = settings.port

    async def start(self) -> None:
        s = self.settings
        creds = grpc.ssl_server_credentials([(_read(s.serving_key), _read(s.serving_cert))])
        server = grpc.aio.server(options=[*channel_options(server=True), ("grpc.http2.min_ping_interval_without_data_ms", 5000),
                                          ("grpc.so_reuseport", 0)])  # a second server on the port must fail, not share it
        pbg.add_ClusterServicer_to_server(self, server)  # type: ignore[no-untyped-call]
        host = s.bind_address if s.bind_address not in ("", "0.0.0.0") else "0.0.0.0"
        try:
            self.port = server.add_secure_port(f"{host}:{s.port}", creds)
        except RuntimeError:
            self.port = 0
        if not self.port:
            raise OSError(f"cannot listen on {host}:{s.port} (supervisor port)")
        await server.start()
        self._server = server
        log.info("supervisor port listening on %s:%d (agents join here)", host, self.port)

    async def stop(self) -> None:
        for node in self.links.nodes():
            session = self.links.get(node)
            if session is not None:
                session.close()
        if self._server is not None:
            await self._server.stop(grace=1.0)

    async def Join(self, request: pb.JoinRequest, context: Any) -> pb.JoinResponse:
        node, peer = request.node_name, context.peer()
        try:
            self.tokens.check(request.secret)
        except TokenError as e:
            log.warning("join refused for node %r from %s: %s", node, peer, e)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, f"join token rejected: {e}")
        if not node or len(node) > 253 or not _NODE_NAME.match(node):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                f"invalid node name {node!r}: must be a lowercase DNS subdomain (--node-name)")
        try:
            await claim_node_name(self.client, node, request.node_password)
            cert = await asyncio.to_thread(sign_node_csr, self._ca, _read(self.settings.ca_key), request.csr, node)
        except NodePasswordRejected as e:
            log.warning("join refused for node %r from %s: %s", node, peer, e)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(e))
        except NodeCertError as e:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except ClientError as e:
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the server could not record the node: {e.message}")
        log.info("node %s joined from %s", node, peer)
        return pb.JoinResponse(client_cert=cert, ca_cert=self._ca)

    async def Link(self, request_iterator: AsyncIterator[pb.AgentMessage], context: Any) -> AsyncIterator[pb.ServerMessage]:
        md = {k: v for k, v in (context.invocation_metadata() or ())}
        cert, proof = md.get(CERT_KEY), md.get(PROOF_KEY)
        try:
            if not isinstance(cert, bytes) or not isinstance(proof, str):
                raise NodeCertError("no node certificate: join first")
            ident = verify_proof(self._ca, cert, proof)
        except NodeCertError as e:
            log.warning("link refused from %s: %s", context.peer(), e)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(e))
        session = LinkSession(ident.node_name, self.client, self.authorizer)
        self.links.add(session)
        log.info("node %s linked from %s", ident.node_name, context.peer())

        async def read() -> None:
            try:
                async for msg in request_iterator:
                    session.handle(msg)
            finally:
                session.close()

        reader = asyncio.create_task(read(), name=f"link-{ident.node_name}-reader")
        try:
            settings = json.dumps(dict(self.settings.cluster)).encode()
            yield pb.ServerMessage(welcome=pb.Welcome(server_version="minik", settings=settings))
            while True:
                batch: list[pb.ServerMessage] = []
                msg = await session.out.get()
                while msg is not None:
                    batch.append(msg)
                    if session.out.empty() or len(batch) >= WRITE_BATCH:
                        break
                    msg = session.out.get_nowait()
                for m in coalesce(batch):
                    yield m
                if msg is None:
                    break
        finally:
            reader.cancel()
            session.close()
            self.links.remove(session)
            log.info("node %s unlinked", ident.node_name)
