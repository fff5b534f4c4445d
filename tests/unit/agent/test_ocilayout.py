"""One-layer OCI archives: layout, annotations, digests, layer contents, determinism."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from minik.agent.ocilayout import (
    ANNOT_CONTAINERD_NAME,
    ANNOT_OCI_REF_NAME,
    Directory,
    FileData,
    Symlink,
    build_layer,
    oci_platform,
    write_oci_archive,
)


def read_archive(path: Path) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                out[m.name] = f.read()
    return out


def blob(files: dict[str, bytes], digest: str) -> bytes:
    data = files["blobs/sha256/" + digest.split(":", 1)[1]]
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    return data


def test_archive_is_a_valid_oci_layout(tmp_path: Path) -> None:
    host = tmp_path / "prog"
    host.write_bytes(b"\x7fELF fake")
    host.chmod(0o755)
    dest = tmp_path / "img.tar"
    img = write_oci_archive(
        str(dest), "localhost/minik/pause:t1", {"/prog": str(host)},
        entrypoint=["/prog", "-P"], env=(), machine="aarch64",
    )
    files = read_archive(dest)
    assert json.loads(files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(files["index.json"])
    (entry,) = index["manifests"]
    assert entry["annotations"] == {ANNOT_CONTAINERD_NAME: "localhost/minik/pause:t1",
                                    ANNOT_OCI_REF_NAME: "t1"}
    assert entry["digest"] == img.manifest_digest
    manifest = json.loads(blob(files, entry["digest"]))
    config = json.loads(blob(files, manifest["config"]["digest"]))
    assert manifest["config"]["digest"] == img.config_digest
    assert config["architecture"] == "arm64" and config["os"] == "linux"
    assert config["config"]["Entrypoint"] == ["/prog", "-P"]
    assert "Cmd" not in config["config"]
    (layer_desc,) = manifest["layers"]
    layer = gzip.decompress(blob(files, layer_desc["digest"]))
    assert config["rootfs"]["diff_ids"] == ["sha256:" + hashlib.sha256(layer).hexdigest()]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        prog = tar.getmember("prog")
        assert prog.mode == 0o755 and prog.uid == 0 and prog.mtime == 0
        f = tar.extractfile(prog)
        assert f is not None and f.read() == b"\x7fELF fake"


def test_build_is_deterministic(tmp_path: Path) -> None:
    entries = {"/bin/busybox": b"bb", "/bin/sh": Symlink("busybox")}
    a = write_oci_archive(str(tmp_path / "a.tar"), "x:1", entries, cmd=["sh"])
    b = write_oci_archive(str(tmp_path / "b.tar"), "x:1", entries, cmd=["sh"])
    assert a.manifest_digest == b.manifest_digest
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_layer_adds_parents_symlinks_and_modes() -> None:
    layer = build_layer({
        "usr/local/bin/tool": FileData(b"x", 0o750),
        "/bin/sh": Symlink("busybox"),
        "/tmp": Directory(0o1777),
        "/etc/motd": b"hi",
    })
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {m.name.rstrip("/"): m for m in tar.getmembers()}
    assert {"usr", "usr/local", "usr/local/bin", "bin", "etc"} <= set(members)
    assert members["usr/local"].isdir()
    assert members["usr/local/bin/tool"].mode == 0o750
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777
    assert members["etc/motd"].mode == 0o644
    names = [m.name.rstrip("/") for m in tarfile.open(fileobj=io.BytesIO(layer)).getmembers()]
    assert names == sorted(names)


@pytest.mark.parametrize("bad", ["", "/", "..", "/a/../.."])
def test_rejects_paths_outside_the_image(bad: str) -> None:
    with pytest.raises(ValueError):
        build_layer({bad: b"x"})


@pytest.mark.parametrize(
    ("machine", "arch", "variant"),
    [("x86_64", "amd64", None), ("aarch64", "arm64", None), ("armv7l", "arm", "v7"),
     ("armv6l", "arm", "v6")],
)
def test_platform(machine: str, arch: str, variant: str | None) -> None:
    p = oci_platform(machine)
    assert p["os"] == "linux" and p["architecture"] == arch
    assert p.get("variant") == variant


def test_digest_reference_has_no_tag_annotation(tmp_path: Path) -> None:
    name = "example.com/a/b@sha256:" + "0" * 64
    write_oci_archive(str(tmp_path / "d.tar"), name, {"/f": b"x"})
    index = json.loads(read_archive(tmp_path / "d.tar")["index.json"])
    assert index["manifests"][0]["annotations"] == {ANNOT_CONTAINERD_NAME: name}
