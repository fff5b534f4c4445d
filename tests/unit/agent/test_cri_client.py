"""CriClient against an in-process fake CRI server."""

from __future__ import annotations

from typing import Any

import grpc  # type: ignore[import-untyped]
import pytest

from fakecri import FakeCri
from minik.agent.cri import (
    CriClient,
    CriError,
    CriNotFoundError,
    CriTimeoutError,
    CriUnavailableError,
    pb,
)
from minik.agent.cri.client import socket_target


@pytest.mark.parametrize(
    ("endpoint", "target"),
    [
        ("/run/x.sock", "unix:///run/x.sock"),
        ("unix:///run/x.sock", "unix:///run/x.sock"),
        ("unix:/run/x.sock", "unix:///run/x.sock"),
    ],
)
def test_socket_target(endpoint: str, target: str) -> None:
    assert socket_target(endpoint) == target


async def test_version_sends_api_version(fake_cri: FakeCri) -> None:
    async def version(req: Any, ctx: Any) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="fake",
                                  runtime_version="1", runtime_api_version=req.version)

    fake_cri.on("RuntimeService/Version", version)
    async with CriClient(fake_cri.socket) as cri:
        resp = await cri.version()
    assert resp.runtime_name == "fake"
    assert resp.runtime_api_version == "v1"


async def test_not_found_maps_to_narrow_error(fake_cri: FakeCri) -> None:
    async def status(req: Any, ctx: Any) -> Any:
        await ctx.abort(grpc.StatusCode.NOT_FOUND, f"container {req.container_id} not found")

    fake_cri.on("RuntimeService/ContainerStatus", status)
    async with CriClient(fake_cri.socket) as cri:
        with pytest.raises(CriNotFoundError) as info:
            await cri.container_status("abc")
    assert info.value.code == "NOT_FOUND"
    assert info.value.method == "ContainerStatus"
    assert "abc" in info.value.details


async def test_other_errors_and_unimplemented(fake_cri: FakeCri) -> None:
    async with CriClient(fake_cri.socket) as cri:
        with pytest.raises(CriError) as info:
            await cri.exec("c", ["ls"])
    assert info.value.code == "UNIMPLEMENTED"
    assert not isinstance(info.value, CriNotFoundError)


async def test_deadline_maps_to_timeout(fake_cri: FakeCri) -> None:
    import asyncio

    async def slow(req: Any, ctx: Any) -> pb.VersionResponse:
        await asyncio.sleep(2)
        return pb.VersionResponse()

    fake_cri.on("RuntimeService/Version", slow)
    async with CriClient(fake_cri.socket) as cri:
        with pytest.raises(CriTimeoutError):
            await cri.version(timeout=0.2)


async def test_unavailable_socket() -> None:
    async with CriClient("/nonexistent/minik-test.sock") as cri:
        with pytest.raises(CriUnavailableError):
            await cri.version(timeout=1.0)


async def test_image_status_absent_is_none(fake_cri: FakeCri) -> None:
    async def status(req: Any, ctx: Any) -> pb.ImageStatusResponse:
        if req.image.image == "present":
            return pb.ImageStatusResponse(image=pb.Image(id="sha256:1", repo_tags=["present"]))
        return pb.ImageStatusResponse()

    fake_cri.on("ImageService/ImageStatus", status)
    async with CriClient(fake_cri.socket) as cri:
        assert await cri.image_status("absent") is None
        img = await cri.image_status("present")
    assert img is not None and img.id == "sha256:1"


async def test_pull_image_passes_auth_and_returns_ref(fake_cri: FakeCri) -> None:
    async def pull(req: Any, ctx: Any) -> pb.PullImageResponse:
        return pb.PullImageResponse(image_ref="sha256:" + req.auth.username)

    fake_cri.on("ImageService/PullImage", pull)
    async with CriClient(fake_cri.socket) as cri:
        ref = await cri.pull_image("busybox", pb.AuthConfig(username="u", password="p"))
    assert ref == "sha256:u"
    method, req = fake_cri.requests[-1]
    assert method == "ImageService/PullImage"
    assert req.image.image == "busybox" and req.auth.password == "p"


async def test_exec_sync_and_tty_exec_drop_stderr(fake_cri: FakeCri) -> None:
    async def exec_sync(req: Any, ctx: Any) -> pb.ExecSyncResponse:
        return pb.ExecSyncResponse(stdout=" ".join(req.cmd).encode(), exit_code=req.timeout)

    async def exec_(req: Any, ctx: Any) -> pb.ExecResponse:
        return pb.ExecResponse(url=f"http://x/exec?stderr={req.stderr}")

    fake_cri.on("RuntimeService/ExecSync", exec_sync)
    fake_cri.on("RuntimeService/Exec", exec_)
    async with CriClient(fake_cri.socket) as cri:
        res = await cri.exec_sync("c1", ["echo", "hi"], timeout=7)
        url = await cri.exec("c1", ["sh"], tty=True, stdin=True)
    assert res.stdout == b"echo hi" and res.exit_code == 7
    # CRI: with a TTY stderr is merged into stdout and must not be requested.
    assert url.endswith("stderr=False")


async def test_run_and_list_sandboxes(fake_cri: FakeCri) -> None:
    async def run(req: Any, ctx: Any) -> pb.RunPodSandboxResponse:
        return pb.RunPodSandboxResponse(pod_sandbox_id="sb-" + req.config.metadata.name)

    async def list_(req: Any, ctx: Any) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=[pb.PodSandbox(id="sb-a"), pb.PodSandbox(id="x")])

    fake_cri.on("RuntimeService/RunPodSandbox", run)
    fake_cri.on("RuntimeService/ListPodSandbox", list_)
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(name="a", uid="u", namespace="n"))
    async with CriClient(fake_cri.socket) as cri:
        assert await cri.run_pod_sandbox(cfg, "runc") == "sb-a"
        items = await cri.list_pod_sandbox(pb.PodSandboxFilter(id="sb-a"))
    assert [i.id for i in items] == ["sb-a", "x"]
    _, req = fake_cri.requests[0]
    assert req.runtime_handler == "runc"
