"""Pause image source selection, image builder, airgap import (with a fake `ctr`)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from fakecri import FakeCri
from minik.agent.cri import CriClient, pb
from minik.agent.images import (
    ImageImportError,
    Images,
    PauseSource,
    build_image,
    busybox_image_files,
    find_pause_source,
    import_images,
    is_static_elf,
    list_images,
    snapshotter_from_config,
)

# Records its argv and stdin size, then prints what ctr 1.6 prints for an import.
FAKE_CTR = """#!{python}
import json, sys
args = sys.argv[1:]
src = args[-1]
data = sys.stdin.buffer.read() if src == "-" else open(src, "rb").read()
with open({log!r}, "a") as f:
    f.write(json.dumps({{"args": args, "size": len(data)}}) + "\\n")
if data.startswith(b"BAD"):
    print("ctr: unrecognized image format", file=sys.stderr)
    sys.exit(1)
name = data.split(b"\\n", 1)[0][:60].decode(errors="replace").split()[0] if data.strip() else "none"
print(f"unpacking {{name}} (sha256:{{'ab' * 32}})...done")
"""


@pytest.fixture
def fake_ctr(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "ctr.log"
    ctr = tmp_path / "ctr"
    ctr.write_text(FAKE_CTR.format(python=sys.executable, log=str(log)))
    ctr.chmod(0o755)
    return str(ctr), log


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def elf_header(interp: bool) -> bytes:
    """A minimal 64-bit little-endian ELF header with one program header."""
    import struct

    ehdr = bytearray(64)
    ehdr[:4] = b"\x7fELF"
    ehdr[4], ehdr[5] = 2, 1
    struct.pack_into("<Q", ehdr, 0x20, 64)          # e_phoff
    struct.pack_into("<HH", ehdr, 0x36, 56, 1)      # e_phentsize, e_phnum
    phdr = bytearray(56)
    struct.pack_into("<I", phdr, 0, 3 if interp else 1)  # PT_INTERP or PT_LOAD
    return bytes(ehdr + phdr)


def test_is_static_elf(tmp_path: Path) -> None:
    static, dynamic, text = tmp_path / "s", tmp_path / "d", tmp_path / "t"
    static.write_bytes(elf_header(interp=False))
    dynamic.write_bytes(elf_header(interp=True))
    text.write_text("#!/bin/sh\n")
    assert is_static_elf(str(static))
    assert not is_static_elf(str(dynamic))
    assert not is_static_elf(str(text))
    assert not is_static_elf(str(tmp_path / "missing"))


def test_find_pause_source_prefers_catatonit(tmp_path: Path) -> None:
    cat, bb, dyn = tmp_path / "catatonit", tmp_path / "busybox", tmp_path / "dyn"
    cat.write_bytes(elf_header(False))
    bb.write_bytes(elf_header(False))
    dyn.write_bytes(elf_header(True))
    src = find_pause_source([str(dyn), str(cat)], [str(bb)])
    assert src == PauseSource(str(cat), ("/catatonit", "-P"), "catatonit")
    src = find_pause_source([str(dyn)], [str(bb)])
    assert src.kind == "busybox" and src.entrypoint[0] == "/busybox"
    with pytest.raises(ImageImportError, match="catatonit"):
        find_pause_source([str(dyn)], [])


def test_pause_ref_changes_with_binary(tmp_path: Path) -> None:
    binary = tmp_path / "catatonit"
    binary.write_bytes(b"v1")
    src = PauseSource(str(binary), ("/catatonit", "-P"), "catatonit")
    first = src.image_ref()
    assert first.startswith("localhost/minik/pause:catatonit-")
    assert src.image_ref() == first
    binary.write_bytes(b"v2")
    assert src.image_ref() != first


def test_build_busybox_image(tmp_path: Path) -> None:
    fake_bb = tmp_path / "busybox"
    fake_bb.write_bytes(b"bb")
    fake_bb.chmod(0o755)
    path = build_image("docker.io/library/busybox:latest", busybox_image_files(str(fake_bb)),
                       cmd=["sh"], dest=str(tmp_path / "bb.tar"))
    with tarfile.open(path) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    ann = index["manifests"][0]["annotations"]
    assert ann["io.containerd.image.name"] == "docker.io/library/busybox:latest"
    default = build_image("a/b:c", {"/x": b"1"})
    try:
        assert default.endswith("a_b_c.tar") and os.path.exists(default)
    finally:
        shutil.rmtree(os.path.dirname(default))


def test_snapshotter_from_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[plugins."io.containerd.grpc.v1.cri".containerd]\n  snapshotter = "native"\n')
    assert snapshotter_from_config(str(cfg)) == "native"
    assert snapshotter_from_config(str(tmp_path / "none.toml")) == ""


async def test_import_plain_and_compressed(tmp_path: Path, fake_ctr: tuple[str, Path]) -> None:
    ctr, log = fake_ctr
    plain = tmp_path / "a.tar"
    plain.write_bytes(b"example.com/a:1\n" + b"x" * 100)
    gz = tmp_path / "b.tar.gz"
    import gzip

    gz.write_bytes(gzip.compress(b"example.com/b:1\n" + b"y" * 100))
    files = [str(plain), str(gz)]
    if shutil.which("zstd"):
        import subprocess

        z = tmp_path / "c.tar"
        z.write_bytes(b"example.com/c:1\n")
        subprocess.run(["zstd", "-q", "--rm", str(z)], check=True)
        files.append(str(z) + ".zst")
    names = await import_images(files, address="/run/x.sock", snapshotter="native", ctr=ctr)
    assert names[:2] == ["example.com/a:1", "example.com/b:1"]
    c = calls(log)
    assert c[0]["args"] == ["--address", "/run/x.sock", "-n", "k8s.io", "images", "import",
                            "--snapshotter", "native", str(plain)]
    # Compressed archives are decompressed into ctr's stdin.
    assert c[1]["args"][-1] == "-" and c[1]["size"] == len(b"example.com/b:1\n") + 100


async def test_import_failure_raises(tmp_path: Path, fake_ctr: tuple[str, Path]) -> None:
    bad = tmp_path / "bad.tar"
    bad.write_bytes(b"BAD")
    with pytest.raises(ImageImportError, match="unrecognized image format"):
        await import_images([str(bad)], address="/s", ctr=fake_ctr[0])


async def test_import_dir_skips_unchanged(
    tmp_path: Path, fake_ctr: tuple[str, Path], fake_cri: FakeCri
) -> None:
    ctr, log = fake_ctr
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    (images_dir / "one.tar").write_bytes(b"example.com/one:1\n")
    (images_dir / "broken.tar").write_bytes(b"BAD")
    (images_dir / "notes.txt").write_text("ignored")
    async with CriClient(fake_cri.socket) as cri:
        images = Images(cri, "/s", str(tmp_path / "work"), ctr=ctr)
        assert await images.import_dir(str(images_dir)) == ["example.com/one:1"]
        assert await images.import_dir(str(images_dir)) == []  # remembered
        (images_dir / "one.tar").write_bytes(b"example.com/one:2\n")
        assert await images.import_dir(str(images_dir)) == ["example.com/one:2"]
        assert await images.import_dir(str(tmp_path / "missing")) == []
    imported = [c["args"][-1] for c in calls(log)]
    # broken.tar is retried every time, one.tar only when it changed.
    assert imported.count(str(images_dir / "one.tar")) == 2
    assert imported.count(str(images_dir / "broken.tar")) == 3


async def test_ensure_pause_image_imports_once(
    tmp_path: Path, fake_ctr: tuple[str, Path], fake_cri: FakeCri
) -> None:
    ctr, log = fake_ctr
    binary = tmp_path / "catatonit"
    binary.write_bytes(elf_header(False))
    source = PauseSource(str(binary), ("/catatonit", "-P"), "catatonit")
    known: set[str] = set()

    async def status(req: Any, ctx: Any) -> pb.ImageStatusResponse:
        if req.image.image in known:
            return pb.ImageStatusResponse(image=pb.Image(id="sha256:p"))
        # The import happened (fake ctr logged it): CRI "learns" about it.
        if calls(log):
            known.add(req.image.image)
        return pb.ImageStatusResponse()

    fake_cri.on("ImageService/ImageStatus", status)
    async with CriClient(fake_cri.socket) as cri:
        images = Images(cri, "/s", str(tmp_path / "work"), ctr=ctr)
        ref = await images.ensure_pause_image(source)
        assert ref == source.image_ref()
        assert await images.ensure_pause_image(source) == ref
    assert len(calls(log)) == 1


async def test_list_images_sorted(fake_cri: FakeCri) -> None:
    async def list_(req: Any, ctx: Any) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=[
            pb.Image(id="sha256:2", repo_tags=["z:1"], size=5),
            pb.Image(id="sha256:3", repo_digests=["x@sha256:3"], size=1),
            pb.Image(id="sha256:1", repo_tags=["a:1"], size=7),
        ])

    fake_cri.on("ImageService/ListImages", list_)
    async with CriClient(fake_cri.socket) as cri:
        infos = await list_images(cri)
    assert [i.id for i in infos] == ["sha256:1", "sha256:2", "sha256:3"]
    assert infos[0].repo_tags == ("a:1",) and infos[0].size == 7
