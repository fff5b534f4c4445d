"""The container runtime layer against a real containerd: pause image, registry mirror pull,
a host-network pod with a running container, logs, exec, teardown, supervision, adoption.
Fixtures (private containerd, local registry) live in tests/integration/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import uuid
from typing import TYPE_CHECKING

import pytest

from minik.agent.containerd import Containerd
from minik.agent.cri import CriClient, CriNotFoundError, pb
from minik.agent.images import build_image, busybox_image_files, find_pause_source
from minik.agent.registries import load_registries, write_certs_d

if TYPE_CHECKING:  # tests/ is not a package; the fixture type is for readers and mypy
    from conftest import RuntimeEnv

# CRI log line: "<RFC3339Nano> <stdout|stderr> <F|P> <content>".
CRI_LOG_LINE = re.compile(r"^\S+Z? (stdout|stderr) [FP] (.*)$")


def make_sandbox_config(env: RuntimeEnv, name: str = "") -> pb.PodSandboxConfig:
    name = name or f"p-{uuid.uuid4().hex[:8]}"
    uid = str(uuid.uuid4())
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
        log_directory=os.path.join(env.log_root, f"default_{name}_{uid}"),
        labels={"io.kubernetes.pod.name": name},
        linux=pb.LinuxPodSandboxConfig(
            security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER),
            ),
        ),
    )


def make_container_config(image: str, command: list[str]) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name="main", attempt=0),
        image=pb.ImageSpec(image=image),
        command=command,
        log_path="main/0.log",
        linux=pb.LinuxContainerConfig(
            security_context=pb.LinuxContainerSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE, pid=pb.CONTAINER),
            ),
        ),
    )


def push_to_registry(archive: str, dest: str) -> None:
    subprocess.run(
        ["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
         f"oci-archive:{archive}", f"docker://{dest}"],
        check=True, capture_output=True, timeout=60,
    )


async def wait_for(predicate_coro, timeout: float = 10.0, interval: float = 0.05):  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = await predicate_coro()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)


async def test_pause_image_is_built_and_imported(runtime: RuntimeEnv) -> None:
    image = await runtime.cri.image_status(runtime.pause_image)
    assert image is not None
    assert runtime.pause_image in image.repo_tags
    # Idempotent: the second call finds it through CRI and imports nothing.
    assert await runtime.images.ensure_pause_image(find_pause_source()) == runtime.pause_image
    version = await runtime.cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"


async def test_mirror_pull_run_logs_exec_teardown(
    runtime: RuntimeEnv, registry: str, tmp_path: object
) -> None:
    if shutil.which("skopeo") is None:
        pytest.skip("skopeo not installed")
    base = str(tmp_path)
    archive = await asyncio.to_thread(
        build_image, "docker.io/library/busybox:latest", busybox_image_files(), (), ("sh",),
        None, dest=os.path.join(base, "busybox.tar"),
    )
    await asyncio.to_thread(push_to_registry, archive, f"{registry}/library/busybox:latest")

    # `busybox` means docker.io/library/busybox; the mirror sends it to the local registry.
    reg_yaml = os.path.join(base, "registries.yaml")
    with open(reg_yaml, "w", encoding="utf-8") as f:
        f.write(f'mirrors:\n  docker.io:\n    endpoint:\n      - "http://{registry}"\n')
    write_certs_d(load_registries(reg_yaml), runtime.containerd.paths.registry_config_path)
    image_ref = await runtime.cri.pull_image("busybox", timeout=60)
    assert image_ref.startswith("sha256:")
    assert await runtime.cri.image_status("docker.io/library/busybox:latest") is not None

    sandbox_config = make_sandbox_config(runtime)
    sandbox_id = await runtime.cri.run_pod_sandbox(sandbox_config)
    status = await runtime.cri.pod_sandbox_status(sandbox_id)
    assert status.status.state == pb.SANDBOX_READY

    container_id = await runtime.cri.create_container(
        sandbox_id,
        make_container_config("busybox", ["sh", "-c", "echo hello; sleep 30"]),
        sandbox_config,
    )
    await runtime.cri.start_container(container_id)
    cs = (await runtime.cri.container_status(container_id)).status
    assert cs.state == pb.CONTAINER_RUNNING
    assert cs.started_at > 0
    assert cs.log_path.endswith("main/0.log")

    async def log_has_hello() -> bool:
        try:
            with open(cs.log_path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except FileNotFoundError:
            return False
        parsed = [CRI_LOG_LINE.match(line) for line in lines]
        return any(m is not None and m.group(1) == "stdout" and m.group(2) == "hello"
                   for m in parsed)

    await wait_for(log_has_hello)

    res = await runtime.cri.exec_sync(container_id, ["sh", "-c", "echo out; exit 3"], timeout=10)
    assert res.exit_code == 3
    assert res.stdout == b"out\n"

    listed = await runtime.cri.list_containers(pb.ContainerFilter(pod_sandbox_id=sandbox_id))
    assert [c.id for c in listed] == [container_id]

    await runtime.cri.stop_container(container_id, grace_seconds=0)
    cs = (await runtime.cri.container_status(container_id)).status
    assert cs.state == pb.CONTAINER_EXITED
    assert cs.finished_at > 0
    await runtime.cri.remove_container(container_id)
    with pytest.raises(CriNotFoundError):
        await runtime.cri.container_status(container_id)

    await runtime.cri.stop_pod_sandbox(sandbox_id)
    await runtime.cri.remove_pod_sandbox(sandbox_id)
    assert await runtime.cri.list_pod_sandbox(pb.PodSandboxFilter(id=sandbox_id)) == []


async def test_import_archives_and_list(runtime: RuntimeEnv, tmp_path: object) -> None:
    base = str(tmp_path)
    plain = await asyncio.to_thread(
        build_image, "localhost/minik-test/plain:1", {"/bin/busybox": "/bin/busybox"},
        ("/bin/busybox",), ("true",), None, dest=os.path.join(base, "plain.tar"),
    )
    files = [plain]
    names = ["localhost/minik-test/plain:1"]
    if shutil.which("zstd"):
        other = await asyncio.to_thread(
            build_image, "localhost/minik-test/zst:1", {"/bin/busybox": "/bin/busybox"},
            ("/bin/busybox",), ("true",), None, dest=os.path.join(base, "zst.tar"),
        )
        subprocess.run(["zstd", "-q", "--rm", other], check=True)
        files.append(other + ".zst")
        names.append("localhost/minik-test/zst:1")
    imported = await runtime.images.import_images(files)
    assert sorted(imported) == sorted(names)

    async def all_listed() -> bool:
        tags = {t for i in await runtime.images.list_images() for t in i.repo_tags}
        return set(names) <= tags

    await wait_for(all_listed)


async def test_supervisor_restarts_containerd_after_sigkill(runtime: RuntimeEnv) -> None:
    cd = runtime.containerd
    old_pid = cd.pid
    assert old_pid is not None
    os.kill(old_pid, signal.SIGKILL)

    async def restarted() -> bool:
        return cd.restarts >= 1 and cd.ready

    await wait_for(restarted, timeout=20)
    assert cd.pid != old_pid
    version = await runtime.cri.version()
    assert version.runtime_name == "containerd"


async def test_restarted_daemon_adopts_running_containerd(runtime: RuntimeEnv) -> None:
    cd = runtime.containerd
    pid = cd.pid
    # minik exits: containerd (and its pods) keep running.
    await cd.stop(kill=False)
    assert pid is not None and os.path.exists(f"/proc/{pid}")

    again = Containerd(cd.paths, runtime.facts, runtime.pause_image)
    await again.start()
    try:
        assert again.pid == pid
        async with CriClient(again.endpoint) as cri:
            assert (await cri.version()).runtime_name == "containerd"
    finally:
        # Hand the process back to the fixture's instance for its teardown.
        await again.stop(kill=False)
