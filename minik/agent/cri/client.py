"""Thin async client for CRI v1 (RuntimeService + ImageService) over a unix socket.

Role: the only place minik speaks gRPC to a container runtime. Methods take and return the
generated messages from `minik.agent.cri._generated.api_pb2`; building those messages from pods
is the pod workers' job (minik.agent), starting the runtime is `minik.agent.containerd`'s.

Every call has a deadline so a wedged runtime can never hang a pod worker; gRPC failures are
mapped once, here, to the narrow `CriError` family.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from minik.agent.cri._generated import api_pb2 as pb

__all__ = [
    "CriClient",
    "CriError",
    "CriNotFoundError",
    "CriTimeoutError",
    "CriUnavailableError",
]

_RUNTIME = "/runtime.v1.RuntimeService/"
_IMAGE = "/runtime.v1.ImageService/"

# CRI's API version string; the runtime rejects a Version call naming one it does not speak.
CRI_API_VERSION = "v1"

DEFAULT_TIMEOUT = 10.0
# Pulls of big images over slow links take minutes; kubelet's default runtime-request-timeout
# is 2 minutes but it lets image pulls run longer, as do we.
DEFAULT_PULL_TIMEOUT = 15 * 60.0
# Stopping waits for the container's grace period, so the deadline is grace + this margin.
_STOP_MARGIN = 10.0

_Resp = TypeVar("_Resp")


class CriError(Exception):
    """A CRI call failed. `code` is the gRPC status code name (e.g. "INVALID_ARGUMENT")."""

    def __init__(self, method: str, code: str, details: str) -> None:
        super().__init__(f"CRI {method}: {code}: {details}")
        self.method = method
        self.code = code
        self.details = details


class CriNotFoundError(CriError):
    """The sandbox, container or image named in the call does not exist."""


class CriUnavailableError(CriError):
    """The runtime socket does not answer (containerd down or restarting)."""


class CriTimeoutError(CriError):
    """The call's deadline passed before the runtime answered."""


def _map_error(method: str, err: Any) -> CriError:
    code = err.code()
    name = code.name if code is not None else "UNKNOWN"
    details = err.details() or ""
    if code == grpc.StatusCode.NOT_FOUND:
        return CriNotFoundError(method, name, details)
    if code == grpc.StatusCode.UNAVAILABLE:
        return CriUnavailableError(method, name, details)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CriTimeoutError(method, name, details)
    return CriError(method, name, details)


def socket_target(endpoint: str) -> str:
    """Accept "/path/sock", "unix:///path/sock" or "unix:/path/sock" and return a gRPC target."""
    if endpoint.startswith("unix:"):
        path = endpoint[len("unix:"):]
        while path.startswith("//"):
            path = path[1:]
        return "unix://" + path
    return "unix://" + endpoint


class CriClient:
    """One gRPC channel to a CRI runtime; safe to share between tasks of one event loop."""

    def __init__(
        self,
        endpoint: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        pull_timeout: float = DEFAULT_PULL_TIMEOUT,
    ) -> None:
        self._target = socket_target(endpoint)
        self._timeout = timeout
        self._pull_timeout = pull_timeout
        self._channel: Any = None
        self._calls: dict[str, Any] = {}

    @property
    def target(self) -> str:
        return self._target

    # -- lifecycle --------------------------------------------------------------------------

    def _ensure_channel(self) -> Any:
        # grpc.aio binds a channel to the running loop, so it is created on first use rather
        # than in __init__ (which may run before the loop exists).
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(
                self._target,
                options=[
                    # Exec output and ListContainers on a busy node exceed the 4 MiB default;
                    # CRI caps ExecSync output at 16 MiB per stream.
                    ("grpc.max_receive_message_length", 40 * 1024 * 1024),
                    # Reconnect quickly after containerd restarts instead of backing off to 2m.
                    ("grpc.max_reconnect_backoff_ms", 1000),
                ],
            )
        return self._channel

    async def close(self) -> None:
        if self._channel is not None:
            channel, self._channel = self._channel, None
            self._calls.clear()
            await channel.close()

    async def __aenter__(self) -> CriClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _call(
        self, path: str, request: Any, response_type: type[_Resp], timeout: float | None
    ) -> _Resp:
        call = self._calls.get(path)
        if call is None:
            call = self._ensure_channel().unary_unary(
                path,
                request_serializer=type(request).SerializeToString,
                response_deserializer=response_type.FromString,  # type: ignore[attr-defined]
            )
            self._calls[path] = call
        method = path.rsplit("/", 1)[-1]
        try:
            response: _Resp = await call(
                request, timeout=self._timeout if timeout is None else timeout
            )
        except grpc.aio.AioRpcError as err:
            raise _map_error(method, err) from None
        except asyncio.TimeoutError:
            raise CriTimeoutError(method, "DEADLINE_EXCEEDED", "client deadline") from None
        return response

    # -- runtime ----------------------------------------------------------------------------

    async def version(self, *, timeout: float | None = None) -> pb.VersionResponse:
        return await self._call(
            _RUNTIME + "Version",
            pb.VersionRequest(version=CRI_API_VERSION),
            pb.VersionResponse,
            timeout,
        )

    async def status(self, *, verbose: bool = False) -> pb.StatusResponse:
        return await self._call(
            _RUNTIME + "Status", pb.StatusRequest(verbose=verbose), pb.StatusResponse, None
        )

    # -- sandboxes --------------------------------------------------------------------------

    async def run_pod_sandbox(
        self, config: pb.PodSandboxConfig, runtime_handler: str = "", *, timeout: float = 120.0
    ) -> str:
        """Create and start a sandbox; returns its id. Slow on a cold node (CNI, pause image)."""
        resp = await self._call(
            _RUNTIME + "RunPodSandbox",
            pb.RunPodSandboxRequest(config=config, runtime_handler=runtime_handler),
            pb.RunPodSandboxResponse,
            timeout,
        )
        return resp.pod_sandbox_id

    async def stop_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float = 60.0) -> None:
        await self._call(
            _RUNTIME + "StopPodSandbox",
            pb.StopPodSandboxRequest(pod_sandbox_id=pod_sandbox_id),
            pb.StopPodSandboxResponse,
            timeout,
        )

    async def remove_pod_sandbox(self, pod_sandbox_id: str, *, timeout: float = 60.0) -> None:
        await self._call(
            _RUNTIME + "RemovePodSandbox",
            pb.RemovePodSandboxRequest(pod_sandbox_id=pod_sandbox_id),
            pb.RemovePodSandboxResponse,
            timeout,
        )

    async def pod_sandbox_status(
        self, pod_sandbox_id: str, *, verbose: bool = False
    ) -> pb.PodSandboxStatusResponse:
        return await self._call(
            _RUNTIME + "PodSandboxStatus",
            pb.PodSandboxStatusRequest(pod_sandbox_id=pod_sandbox_id, verbose=verbose),
            pb.PodSandboxStatusResponse,
            None,
        )

    async def list_pod_sandbox(
        self, filter: pb.PodSandboxFilter | None = None
    ) -> list[pb.PodSandbox]:
        resp = await self._call(
            _RUNTIME + "ListPodSandbox",
            pb.ListPodSandboxRequest(filter=filter),
            pb.ListPodSandboxResponse,
            None,
        )
        return list(resp.items)

    # -- containers -------------------------------------------------------------------------

    async def create_container(
        self,
        pod_sandbox_id: str,
        config: pb.ContainerConfig,
        sandbox_config: pb.PodSandboxConfig,
        *,
        timeout: float = 60.0,
    ) -> str:
        resp = await self._call(
            _RUNTIME + "CreateContainer",
            pb.CreateContainerRequest(
                pod_sandbox_id=pod_sandbox_id, config=config, sandbox_config=sandbox_config
            ),
            pb.CreateContainerResponse,
            timeout,
        )
        return resp.container_id

    async def start_container(self, container_id: str, *, timeout: float = 60.0) -> None:
        await self._call(
            _RUNTIME + "StartContainer",
            pb.StartContainerRequest(container_id=container_id),
            pb.StartContainerResponse,
            timeout,
        )

    async def stop_container(self, container_id: str, grace_seconds: int = 0) -> None:
        """Send the stop signal, then SIGKILL after `grace_seconds` (CRI semantics)."""
        await self._call(
            _RUNTIME + "StopContainer",
            pb.StopContainerRequest(container_id=container_id, timeout=grace_seconds),
            pb.StopContainerResponse,
            grace_seconds + _STOP_MARGIN,
        )

    async def remove_container(self, container_id: str, *, timeout: float = 60.0) -> None:
        await self._call(
            _RUNTIME + "RemoveContainer",
            pb.RemoveContainerRequest(container_id=container_id),
            pb.RemoveContainerResponse,
            timeout,
        )

    async def list_containers(
        self, filter: pb.ContainerFilter | None = None
    ) -> list[pb.Container]:
        resp = await self._call(
            _RUNTIME + "ListContainers",
            pb.ListContainersRequest(filter=filter),
            pb.ListContainersResponse,
            None,
        )
        return list(resp.containers)

    async def container_status(
        self, container_id: str, *, verbose: bool = False
    ) -> pb.ContainerStatusResponse:
        return await self._call(
            _RUNTIME + "ContainerStatus",
            pb.ContainerStatusRequest(container_id=container_id, verbose=verbose),
            pb.ContainerStatusResponse,
            None,
        )

    async def update_container_resources(
        self, container_id: str, linux: pb.LinuxContainerResources
    ) -> None:
        await self._call(
            _RUNTIME + "UpdateContainerResources",
            pb.UpdateContainerResourcesRequest(container_id=container_id, linux=linux),
            pb.UpdateContainerResourcesResponse,
            None,
        )

    async def reopen_container_log(self, container_id: str) -> None:
        await self._call(
            _RUNTIME + "ReopenContainerLog",
            pb.ReopenContainerLogRequest(container_id=container_id),
            pb.ReopenContainerLogResponse,
            None,
        )

    async def container_stats(self, container_id: str) -> pb.ContainerStats:
        resp = await self._call(
            _RUNTIME + "ContainerStats",
            pb.ContainerStatsRequest(container_id=container_id),
            pb.ContainerStatsResponse,
            None,
        )
        return resp.stats

    async def list_container_stats(
        self, filter: pb.ContainerStatsFilter | None = None
    ) -> list[pb.ContainerStats]:
        resp = await self._call(
            _RUNTIME + "ListContainerStats",
            pb.ListContainerStatsRequest(filter=filter),
            pb.ListContainerStatsResponse,
            None,
        )
        return list(resp.stats)

    # -- exec / attach / port-forward -------------------------------------------------------

    async def exec_sync(
        self, container_id: str, cmd: Sequence[str], timeout: int = 0
    ) -> pb.ExecSyncResponse:
        """Run `cmd` to completion. `timeout` (s) is enforced by the runtime; 0 = no limit.

        Our deadline is the command's timeout plus a margin so the runtime's own timeout error
        (with partial output) wins; with no command timeout we still cap the wait at one hour.
        """
        deadline = (timeout + _STOP_MARGIN) if timeout > 0 else 3600.0
        return await self._call(
            _RUNTIME + "ExecSync",
            pb.ExecSyncRequest(container_id=container_id, cmd=list(cmd), timeout=timeout),
            pb.ExecSyncResponse,
            deadline,
        )

    async def exec(
        self,
        container_id: str,
        cmd: Sequence[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        """Returns the runtime's streaming URL for an interactive exec."""
        resp = await self._call(
            _RUNTIME + "Exec",
            pb.ExecRequest(
                container_id=container_id,
                cmd=list(cmd),
                tty=tty,
                stdin=stdin,
                stdout=stdout,
                # CRI: with a TTY stderr is merged into stdout and must not be requested.
                stderr=stderr and not tty,
            ),
            pb.ExecResponse,
            None,
        )
        return resp.url

    async def attach(
        self,
        container_id: str,
        *,
        tty: bool = False,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
    ) -> str:
        resp = await self._call(
            _RUNTIME + "Attach",
            pb.AttachRequest(
                container_id=container_id,
                tty=tty,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr and not tty,
            ),
            pb.AttachResponse,
            None,
        )
        return resp.url

    async def port_forward(self, pod_sandbox_id: str, ports: Sequence[int] = ()) -> str:
        resp = await self._call(
            _RUNTIME + "PortForward",
            pb.PortForwardRequest(pod_sandbox_id=pod_sandbox_id, port=list(ports)),
            pb.PortForwardResponse,
            None,
        )
        return resp.url

    # -- images -----------------------------------------------------------------------------

    async def pull_image(
        self,
        image: str,
        auth: pb.AuthConfig | None = None,
        sandbox_config: pb.PodSandboxConfig | None = None,
        *,
        annotations: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> str:
        """Pull `image`; returns the image ref (the runtime's image id)."""
        resp = await self._call(
            _IMAGE + "PullImage",
            pb.PullImageRequest(
                image=pb.ImageSpec(image=image, annotations=dict(annotations or {})),
                auth=auth,
                sandbox_config=sandbox_config,
            ),
            pb.PullImageResponse,
            self._pull_timeout if timeout is None else timeout,
        )
        return resp.image_ref

    async def image_status(self, image: str, *, verbose: bool = False) -> pb.Image | None:
        """The image, or None when the runtime does not have it (CRI answers with no image)."""
        resp = await self._call(
            _IMAGE + "ImageStatus",
            pb.ImageStatusRequest(image=pb.ImageSpec(image=image), verbose=verbose),
            pb.ImageStatusResponse,
            None,
        )
        return resp.image if resp.HasField("image") else None

    async def list_images(self, image: str = "") -> list[pb.Image]:
        request = pb.ListImagesRequest(
            filter=pb.ImageFilter(image=pb.ImageSpec(image=image)) if image else None
        )
        resp = await self._call(_IMAGE + "ListImages", request, pb.ListImagesResponse, None)
        return list(resp.images)

    async def remove_image(self, image: str) -> None:
        await self._call(
            _IMAGE + "RemoveImage",
            pb.RemoveImageRequest(image=pb.ImageSpec(image=image)),
            pb.RemoveImageResponse,
            None,
        )

    async def image_fs_info(self) -> pb.ImageFsInfoResponse:
        return await self._call(
            _IMAGE + "ImageFsInfo", pb.ImageFsInfoRequest(), pb.ImageFsInfoResponse, None
        )
