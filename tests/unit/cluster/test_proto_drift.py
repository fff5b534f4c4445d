"""The committed cluster-link stubs match what scripts/gen-proto.sh generates from proto/minik."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.gencode import unstamped

REPO = Path(__file__).resolve().parents[3]
GENERATED = REPO / "minik" / "client" / "_generated"


def test_generated_stubs_match_proto(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools")
    env = dict(os.environ, PYTHON=sys.executable)
    subprocess.run(["sh", str(REPO / "scripts" / "gen-proto.sh"), str(tmp_path / "cri"), str(tmp_path / "cluster")],
                   check=True, env=env, capture_output=True, timeout=120)
    fresh = sorted(p.name for p in (tmp_path / "cluster").iterdir() if p.is_file())
    committed = sorted(p.name for p in GENERATED.iterdir() if p.is_file() and p.suffix != ".pyc")
    assert fresh == committed
    for name in fresh:
        assert unstamped((tmp_path / "cluster" / name).read_text()) == unstamped((GENERATED / name).read_text()), (
            f"{name} is stale: run scripts/gen-proto.sh and commit the result")


def test_link_messages_cover_calls_watches_and_streams() -> None:
    from minik.client._generated import cluster_pb2 as pb, cluster_pb2_grpc

    assert pb.DESCRIPTOR.package == "minik.cluster.v1"
    assert hasattr(cluster_pb2_grpc, "ClusterStub")
    agent = {f.name for f in pb.AgentMessage.DESCRIPTOR.fields}
    server = {f.name for f in pb.ServerMessage.DESCRIPTOR.fields}
    assert {"request", "watch_start", "watch_stop", "data", "close"} <= agent
    assert {"response", "event", "watch_end", "open", "data", "close"} <= server
