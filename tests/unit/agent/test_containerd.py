"""Containerd: config rendering (pure) and process supervision with a fake containerd binary
(a Python script serving CRI Version on the configured socket), so no root is needed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakecri import FakeCri
from minik.agent.containerd import (
    DISABLED_PLUGINS,
    Containerd,
    ContainerdError,
    ContainerdPaths,
    render_config,
)
from minik.agent.cri import pb
from minik.agent.hostcheck import HostFacts

CRI = "io.containerd.grpc.v1.cri"


def make_facts(*, cap: bool = False, overlay: bool = True) -> HostFacts:
    return HostFacts(cap_sys_resource=cap, cgroup_version=2, memory_controller=True,
                     overlayfs=overlay)


def test_paths_follow_data_and_run_dirs() -> None:
    p = ContainerdPaths.from_dirs("/var/lib/minik", "/run/minik")
    assert p.root == "/var/lib/minik/agent/containerd/root"
    assert p.state == "/run/minik/containerd/state"
    assert p.socket == "/run/minik/containerd/containerd.sock"
    assert p.config_file == "/var/lib/minik/agent/containerd/config.toml"
    assert p.log_file == "/var/lib/minik/agent/containerd/containerd.log"
    assert p.cni_bin_dir == "/var/lib/minik/agent/cni/bin"
    assert p.cni_conf_dir == "/var/lib/minik/agent/cni/net.d"
    assert p.registry_config_path == "/var/lib/minik/agent/containerd/certs.d"
    assert ContainerdPaths.from_dirs("/d", "/r", "/etc/x/certs.d").registry_config_path == \
        "/etc/x/certs.d"


def test_render_config_is_valid_toml_with_minik_settings() -> None:
    p = ContainerdPaths.from_dirs("/var/lib/minik", "/run/minik")
    text = render_config(p, make_facts(cap=False), "localhost/minik/pause:catatonit-abc")
    cfg = tomllib.loads(text)
    assert cfg["version"] == 2
    assert cfg["root"] == p.root and cfg["state"] == p.state
    assert cfg["grpc"]["address"] == p.socket
    assert set(DISABLED_PLUGINS) == set(cfg["disabled_plugins"])
    # containerd 1.6's CRI does not load without the v1 runtime plugin.
    assert "io.containerd.runtime.v1.linux" not in cfg["disabled_plugins"]
    cri = cfg["plugins"][CRI]
    assert cri["sandbox_image"] == "localhost/minik/pause:catatonit-abc"
    assert cri["restrict_oom_score_adj"] is True
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is False
    assert cri["cni"] == {"bin_dir": p.cni_bin_dir, "conf_dir": p.cni_conf_dir,
                          "max_conf_num": 1}
    assert cri["registry"]["config_path"] == p.registry_config_path


def test_render_config_follows_host_facts() -> None:
    p = ContainerdPaths.from_dirs("/d", "/r")
    cfg = tomllib.loads(render_config(p, make_facts(cap=True, overlay=False), "x"))
    assert cfg["plugins"][CRI]["restrict_oom_score_adj"] is False
    assert cfg["plugins"][CRI]["containerd"]["snapshotter"] == "native"


def test_render_config_escapes_paths() -> None:
    p = ContainerdPaths.from_dirs('/d "quoted"\\x', "/r")
    cfg = tomllib.loads(render_config(p, make_facts(), "x"))
    assert cfg["root"] == p.root


FAKE_CONTAINERD = '''#!{python}
import asyncio, sys, tomllib
import grpc
sys.path.insert(0, {repo!r})
from minik.agent.cri import pb

cfg = tomllib.load(open(sys.argv[sys.argv.index("--config") + 1], "rb"))

async def version(request, context):
    return pb.VersionResponse(version="0.1.0", runtime_name="fake-containerd",
                              runtime_version="0", runtime_api_version="v1")

async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler("runtime.v1.RuntimeService", {{
        "Version": grpc.unary_unary_rpc_method_handler(
            version, request_deserializer=pb.VersionRequest.FromString,
            response_serializer=pb.VersionResponse.SerializeToString),
    }})
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("unix://" + cfg["grpc"]["address"])
    await server.start()
    print("fake containerd serving", flush=True)
    await server.wait_for_termination()

asyncio.run(main())
'''


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 108-byte unix socket path limit.
    d = tempfile.mkdtemp(prefix="mk-cdu-")
    yield Path(d)
    shutil.rmtree(d, ignore_errors=True)


def fake_binary(tmp: Path) -> str:
    repo = str(Path(__file__).resolve().parents[3])
    path = tmp / "containerd"
    path.write_text(FAKE_CONTAINERD.format(python=sys.executable, repo=repo))
    path.chmod(0o755)
    return str(path)


async def test_start_supervise_restart_and_kill(short_tmp: Path) -> None:
    paths = ContainerdPaths.from_dirs(str(short_tmp / "data"), str(short_tmp / "run"))
    restarted = asyncio.Event()
    cd = Containerd(paths, make_facts(), "localhost/minik/pause:t",
                    binary=fake_binary(short_tmp), backoff_initial=0.05,
                    on_restart=restarted.set)
    await cd.start()
    try:
        assert cd.ready and cd.managed
        first = cd.pid
        assert first is not None
        assert Path(paths.pid_file).read_text().strip() == str(first)
        assert Path(paths.config_file).exists()
        assert "fake containerd serving" in Path(paths.log_file).read_text()
        # The child must not share our session: SIGKILL of minik must not reach it.
        assert os.getsid(first) == first != os.getsid(0)

        os.kill(first, signal.SIGKILL)
        await asyncio.wait_for(restarted.wait(), 20)
        assert cd.restarts == 1 and cd.ready
        assert cd.pid not in (None, first)
    finally:
        last = cd.pid
        await cd.stop(kill=True)
    assert last is not None
    assert not Path(f"/proc/{last}").exists()
    assert not Path(paths.pid_file).exists()


async def test_stop_without_kill_leaves_process_running(short_tmp: Path) -> None:
    paths = ContainerdPaths.from_dirs(str(short_tmp / "data"), str(short_tmp / "run"))
    cd = Containerd(paths, make_facts(), "p", binary=fake_binary(short_tmp))
    await cd.start()
    pid = cd.pid
    assert pid is not None
    await cd.stop(kill=False)
    try:
        assert Path(f"/proc/{pid}").exists()
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


async def test_binary_that_exits_reports_log(short_tmp: Path) -> None:
    script = short_tmp / "broken"
    script.write_text("#!/bin/sh\necho 'containerd: boom, bad config' >&2\nexit 1\n")
    script.chmod(0o755)
    paths = ContainerdPaths.from_dirs(str(short_tmp / "data"), str(short_tmp / "run"))
    cd = Containerd(paths, make_facts(), "p", binary=str(script), ready_timeout=10)
    with pytest.raises(ContainerdError, match="boom, bad config"):
        await cd.start()
    await cd.stop(kill=True)


async def test_external_endpoint_starts_nothing(fake_cri: FakeCri, short_tmp: Path) -> None:
    async def version(req: object, ctx: object) -> pb.VersionResponse:
        return pb.VersionResponse(runtime_name="external")

    fake_cri.on("RuntimeService/Version", version)
    paths = ContainerdPaths.from_dirs(str(short_tmp / "data"), str(short_tmp / "run"))
    cd = Containerd(paths, make_facts(), "p", external_endpoint="unix://" + fake_cri.socket)
    await cd.start()
    assert cd.ready and not cd.managed and cd.pid is None
    assert cd.endpoint == fake_cri.socket
    assert not Path(paths.config_file).exists()
    await cd.stop(kill=True)  # must not try to kill anything
