"""The committed CRI stubs match what scripts/gen-proto.sh generates from proto/cri/v1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gencode import unstamped

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "minik" / "agent" / "cri" / "_generated"


def test_generated_stubs_match_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(
        # The cluster stubs into a directory of their own too: without $2 the script would
        # regenerate the committed ones in the tree.
        ["sh", str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path), str(tmp_path / "cluster")],
        check=True, env=env, capture_output=True, timeout=120,
    )
    fresh = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file() and p.suffix != ".pyc")
    assert fresh == committed
    for name in fresh:
        assert unstamped((tmp_path / name).read_text()) == unstamped((GENERATED / name).read_text()), (
            f"{name} is stale: run scripts/gen-proto.sh and commit the result"
        )


def test_unstamped_ignores_only_the_generator_version() -> None:
    a = "# Protobuf Python Version: 7.35.1\nx = 1\nGRPC_GENERATED_VERSION = '1.85.1'\n"
    b = "# Protobuf Python Version: 7.36.0\nx = 1\nGRPC_GENERATED_VERSION = '1.85.4'\n"
    assert unstamped(a) == unstamped(b)
    assert unstamped(a) != unstamped(a.replace("x = 1", "x = 2"))
    v = "_runtime_version.ValidateProtobufRuntimeVersion(\n    _runtime_version.Domain.PUBLIC,\n    7,\n)\n"
    assert unstamped(v) == unstamped(v.replace("7,", "8,"))


def test_stubs_import_as_package_module() -> None:
    from minik.agent.cri._generated import api_pb2, api_pb2_grpc

    assert api_pb2.DESCRIPTOR.package == "runtime.v1"
    assert hasattr(api_pb2_grpc, "RuntimeServiceStub")
    assert hasattr(api_pb2_grpc, "ImageServiceStub")


def test_published_field_numbers() -> None:
    """Spot checks of wire numbers that are easy to get wrong (non-sequential in CRI)."""
    from minik.agent.cri._generated import api_pb2 as pb

    def num(msg: type, field: str) -> int:
        return int(msg.DESCRIPTOR.fields_by_name[field].number)  # type: ignore[attr-defined]

    assert num(pb.LinuxSandboxSecurityContext, "run_as_group") == 8
    assert num(pb.LinuxContainerSecurityContext, "run_as_group") == 12
    assert num(pb.LinuxContainerSecurityContext, "no_new_privs") == 11
    assert num(pb.LinuxContainerSecurityContext, "seccomp") == 15
    assert num(pb.Namespace, "options") == 2
    assert num(pb.ImageSpec, "user_specified_image") == 18
    assert num(pb.ContainerStatus, "image_id") == 17
    assert num(pb.UpdateContainerResourcesRequest, "annotations") == 4
    assert num(pb.LinuxContainerResources, "memory_swap_limit_in_bytes") == 10
