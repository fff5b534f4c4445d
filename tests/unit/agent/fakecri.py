"""A fake CRI server (grpc.aio on a unix socket) for client and containerd unit tests.

A uniquely named module (not conftest) so test files can import its types unambiguously.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc  # type: ignore[import-untyped]

from minik.agent.cri import pb

Handler = Callable[[Any, Any], Awaitable[Any]]

# method name → (request type, response type)
_TYPES: dict[str, tuple[type, type]] = {
    "RuntimeService/Version": (pb.VersionRequest, pb.VersionResponse),
    "RuntimeService/ContainerStatus": (pb.ContainerStatusRequest, pb.ContainerStatusResponse),
    "RuntimeService/ExecSync": (pb.ExecSyncRequest, pb.ExecSyncResponse),
    "RuntimeService/Exec": (pb.ExecRequest, pb.ExecResponse),
    "RuntimeService/RunPodSandbox": (pb.RunPodSandboxRequest, pb.RunPodSandboxResponse),
    "RuntimeService/ListPodSandbox": (pb.ListPodSandboxRequest, pb.ListPodSandboxResponse),
    "ImageService/ImageStatus": (pb.ImageStatusRequest, pb.ImageStatusResponse),
    "ImageService/PullImage": (pb.PullImageRequest, pb.PullImageResponse),
    "ImageService/ListImages": (pb.ListImagesRequest, pb.ListImagesResponse),
}


@dataclass
class FakeCri:
    socket: str
    handlers: dict[str, Handler] = field(default_factory=dict)
    requests: list[tuple[str, Any]] = field(default_factory=list)

    def on(self, method: str, handler: Handler) -> None:
        self.handlers[method] = handler


class _Generic(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, fake: FakeCri) -> None:
        self._fake = fake

    def service(self, details: Any) -> Any:
        method = details.method.lstrip("/").removeprefix("runtime.v1.")
        types = _TYPES.get(method)
        if types is None:
            return None
        req_type, resp_type = types
        fake = self._fake

        async def behaviour(request: Any, context: Any) -> Any:
            fake.requests.append((method, request))
            handler = fake.handlers.get(method)
            if handler is None:
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"fake: {method}")
            return await handler(request, context)

        return grpc.unary_unary_rpc_method_handler(
            behaviour,
            request_deserializer=req_type.FromString,
            response_serializer=resp_type.SerializeToString,
        )


@contextlib.asynccontextmanager
async def serve_fake_cri() -> AsyncIterator[FakeCri]:
    d = tempfile.mkdtemp(prefix="mk-fakecri-")
    sock = os.path.join(d, "cri.sock")
    fake = FakeCri(sock)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_Generic(fake),))
    server.add_insecure_port("unix://" + sock)
    await server.start()
    try:
        yield fake
    finally:
        await server.stop(None)
        shutil.rmtree(d, ignore_errors=True)
