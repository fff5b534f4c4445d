"""Volume payloads (pure), the atomic writer, hostPath types and container mounts (tmp dirs)."""

from __future__ import annotations

import base64
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from minik.agent.volumes import (
    FileSpec,
    VolumeError,
    _check_host_path,
    configmap_payload,
    container_mounts,
    downward_payload,
    projected_payload,
    referenced_objects,
    secret_payload,
    write_atomic,
)

CM = {"data": {"a": "1", "b": "2"}, "binaryData": {"bin": base64.b64encode(b"\x00\x01").decode()}}
SECRET = {"data": {"user": base64.b64encode(b"admin").decode()}}
POD: dict[str, Any] = {"metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"x": "y"}},
                       "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "2"}}}]}}


@pytest.mark.parametrize("source,expected", [
    ({"name": "cm"}, {"a": FileSpec(b"1"), "b": FileSpec(b"2"), "bin": FileSpec(b"\x00\x01")}),
    ({"name": "cm", "defaultMode": 0o400, "items": [{"key": "a", "path": "dir/a.txt"}]},
     {"dir/a.txt": FileSpec(b"1", 0o400)}),
    ({"name": "cm", "items": [{"key": "b", "path": "b", "mode": 0o600}]}, {"b": FileSpec(b"2", 0o600)}),
    ({"name": "cm", "optional": True, "items": [{"key": "zz", "path": "zz"}]}, {}),
])
def test_configmap_payload(source: dict[str, Any], expected: dict[str, FileSpec]) -> None:
    assert configmap_payload(CM, source) == expected


@pytest.mark.parametrize("obj,source,message", [
    (None, {"name": "cm"}, 'configmap "cm" not found'),
    (CM, {"name": "cm", "items": [{"key": "zz", "path": "zz"}]}, "non-existent config key: zz"),
    (CM, {"name": "cm", "items": [{"key": "a", "path": "../escape"}]}, "invalid path"),
])
def test_configmap_payload_errors(obj: Any, source: dict[str, Any], message: str) -> None:
    with pytest.raises(VolumeError, match=message):
        configmap_payload(obj, source)


def test_optional_missing_objects_are_empty() -> None:
    assert configmap_payload(None, {"name": "x", "optional": True}) == {}
    assert secret_payload(None, {"secretName": "x", "optional": True}) == {}


def test_secret_and_downward_and_projected() -> None:
    assert secret_payload(SECRET, {"secretName": "s"}) == {"user": FileSpec(b"admin")}
    items = [{"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
             {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
             {"path": "cpu", "resourceFieldRef": {"containerName": "c", "resource": "limits.cpu"}}]
    assert downward_payload(POD, items, 0o644, "10.0.0.1", "1.1.1.1", {}) == {
        "name": FileSpec(b"p"), "labels": FileSpec(b'x="y"'), "cpu": FileSpec(b"2")}
    proj = {"sources": [{"configMap": {"name": "cm", "items": [{"key": "a", "path": "a"}]}},
                        {"secret": {"name": "s"}},
                        {"downwardAPI": {"items": [{"path": "ns", "fieldRef": {"fieldPath": "metadata.namespace"}}]}},
                        {"serviceAccountToken": {"path": "token"}}]}
    out = projected_payload(POD, proj, {"cm": CM}, {"s": SECRET}, "", "", {}, token=b"t")
    assert out == {"a": FileSpec(b"1"), "user": FileSpec(b"admin"), "ns": FileSpec(b"ns"), "token": FileSpec(b"t", 0o600)}
    pod = {"spec": {"volumes": [{"name": "v", "configMap": {"name": "cm"}}, {"name": "w", "secret": {"secretName": "s"}},
                                {"name": "p", "projected": proj}]}}
    assert referenced_objects(pod) == ({"cm"}, {"s"})


def test_write_atomic_swaps_data_and_prunes(tmp_path: Path) -> None:
    target = str(tmp_path / "vol")
    assert write_atomic(target, {"a": FileSpec(b"1"), "sub/b": FileSpec(b"2", 0o600)})
    assert (tmp_path / "vol" / "a").read_bytes() == b"1"
    assert os.readlink(tmp_path / "vol" / "a") == "..data/a"
    assert (tmp_path / "vol" / "sub" / "b").read_bytes() == b"2"
    assert oct(os.stat(tmp_path / "vol" / "sub" / "b").st_mode & 0o777) == "0o600"
    first = os.readlink(tmp_path / "vol" / "..data")
    assert not write_atomic(target, {"a": FileSpec(b"1"), "sub/b": FileSpec(b"2", 0o600)})  # unchanged
    assert write_atomic(target, {"a": FileSpec(b"changed")})
    assert (tmp_path / "vol" / "a").read_bytes() == b"changed"
    assert not os.path.lexists(tmp_path / "vol" / "sub")
    assert os.readlink(tmp_path / "vol" / "..data") != first
    assert not os.path.exists(tmp_path / "vol" / first)  # old generation removed


def test_host_path_types(tmp_path: Path) -> None:
    d = tmp_path / "made" / "dir"
    _check_host_path(str(d), "DirectoryOrCreate")
    assert d.is_dir()
    f = tmp_path / "made" / "file"
    _check_host_path(str(f), "FileOrCreate")
    assert f.is_file()
    _check_host_path(str(d), "Directory")
    _check_host_path(str(f), "File")
    with pytest.raises(VolumeError, match="is not a directory"):
        _check_host_path(str(f), "Directory")
    with pytest.raises(VolumeError, match="is not a file"):
        _check_host_path(str(tmp_path / "nope"), "File")
    sock_path = str(tmp_path / "s.sock")
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock_path)
    try:
        _check_host_path(sock_path, "Socket")
    finally:
        s.close()
    with pytest.raises(VolumeError, match="unsupported"):
        _check_host_path(str(d), "Weird")


def test_container_mounts_subpath_readonly(tmp_path: Path) -> None:
    vols = {"data": (str(tmp_path / "data"), False), "cfg": (str(tmp_path / "cfg"), True)}
    os.makedirs(tmp_path / "data")
    container = {"name": "c", "volumeMounts": [
        {"name": "data", "mountPath": "/d", "subPath": "x/y"},
        {"name": "data", "mountPath": "/e", "subPathExpr": "$(POD)", "mountPropagation": "HostToContainer"},
        {"name": "cfg", "mountPath": "/etc/cfg"},
    ]}
    mounts = container_mounts(container, vols, {"POD": "p1"})
    assert [(m.container_path, m.host_path, m.readonly, m.propagation) for m in mounts] == [
        ("/d", str(tmp_path / "data" / "x" / "y"), False, ""),
        ("/e", str(tmp_path / "data" / "p1"), False, "HostToContainer"),
        ("/etc/cfg", str(tmp_path / "cfg"), True, ""),
    ]
    assert (tmp_path / "data" / "x" / "y").is_dir()
    with pytest.raises(VolumeError, match="without '..'"):
        container_mounts({"volumeMounts": [{"name": "data", "mountPath": "/x", "subPath": "../up"}]}, vols, {})
    with pytest.raises(VolumeError, match="not defined"):
        container_mounts({"name": "c", "volumeMounts": [{"name": "nope", "mountPath": "/x"}]}, vols, {})


def test_host_path_created_0755_under_umask_077(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        _check_host_path(str(tmp_path / "a" / "b" / "c"), "DirectoryOrCreate")
        _check_host_path(str(tmp_path / "f" / "g" / "file"), "FileOrCreate")
    finally:
        os.umask(old)
    for d in ("a", "a/b", "a/b/c", "f", "f/g"):
        assert oct(os.stat(tmp_path / d).st_mode & 0o777) == "0o755", d
    assert oct(os.stat(tmp_path / "f" / "g" / "file").st_mode & 0o777) == "0o644"
