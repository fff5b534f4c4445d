"""Images that reach containerd without a registry pull: the pause image and airgap tarballs.

Role: build the sandbox ("pause") image from a static host binary so a fresh install needs no
registry, import it when CRI does not know it yet, import airgap tarballs from
<data_dir>/agent/images/ at start, and back `minik images import|ls`. Importing is the one place
minik runs `ctr` (DESIGN.md: ctr only for airgap/tarball import); everything else is CRI.
Neighbours: `minik.agent.ocilayout` (archive format), `minik.agent.cri.client` (ImageStatus,
ListImages), `minik.agent.containerd` (socket, snapshotter, pause image name in its config).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from minik.agent.cri.client import CriClient
from minik.agent.ocilayout import (
    DEFAULT_ENV,
    Directory,
    LayerEntry,
    OciImage,
    Symlink,
    write_oci_archive,
)

__all__ = [
    "BUSYBOX_APPLETS",
    "ImageImportError",
    "ImageInfo",
    "Images",
    "PauseSource",
    "airgap_images_dir",
    "build_image",
    "busybox_image_files",
    "find_pause_source",
    "import_images",
    "is_static_elf",
    "list_images",
    "snapshotter_from_config",
]

log = logging.getLogger(__name__)

PAUSE_REPOSITORY = "localhost/minik/pause"
CRI_NAMESPACE = "k8s.io"
# Bump when the way the pause image is assembled changes, so its tag (and image) changes too.
_PAUSE_BUILD_REVISION = "1"

ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd")

# Busybox applets the test images link; small, covering shells, HTTP and file tools.
BUSYBOX_APPLETS = (
    "sh", "ash", "cat", "echo", "ls", "sleep", "httpd", "wget", "tar", "timeout", "env",
    "mkdir", "rm", "cp", "mv", "ps", "kill", "grep", "sed", "head", "tail", "touch", "id",
    "hostname", "nc", "nslookup", "ip", "ifconfig", "true", "false", "test", "[", "printf",
    "date", "uname", "wc", "find", "chmod", "ln", "pwd", "df", "mount", "xargs", "seq",
)


class ImageImportError(Exception):
    """`ctr images import` (or the decompressor in front of it) failed."""


@dataclass(frozen=True, slots=True)
class PauseSource:
    binary: str                 # host path of a statically linked program
    entrypoint: tuple[str, ...]
    kind: str                   # "catatonit" or "busybox", ends up in the image tag

    def image_ref(self) -> str:
        """localhost/minik/pause:<kind>-<hash of binary>: a new binary gives a new image."""
        h = hashlib.sha256(_PAUSE_BUILD_REVISION.encode())
        with open(self.binary, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        return f"{PAUSE_REPOSITORY}:{self.kind}-{h.hexdigest()[:12]}"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    id: str
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    size: int


def is_static_elf(path: str) -> bool:
    """An ELF executable without a PT_INTERP segment needs no dynamic loader in the image."""
    try:
        with open(path, "rb") as f:
            ident = f.read(64)
            if len(ident) < 52 or ident[:4] != b"\x7fELF":
                return False
            is64 = ident[4] == 2
            end = "<" if ident[5] == 1 else ">"
            if is64:
                phoff, = struct.unpack_from(end + "Q", ident, 0x20)
                phentsize, phnum = struct.unpack_from(end + "HH", ident, 0x36)
            else:
                phoff, = struct.unpack_from(end + "I", ident, 0x1C)
                phentsize, phnum = struct.unpack_from(end + "HH", ident, 0x2A)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    pt_interp = 3
    for i in range(phnum):
        if len(table) < (i + 1) * phentsize:
            return False
        p_type, = struct.unpack_from(end + "I", table, i * phentsize)
        if p_type == pt_interp:
            return False
    return True


def find_pause_source(
    catatonit: Sequence[str] = ("/usr/bin/catatonit", "/usr/libexec/catatonit/catatonit",
                                "/usr/libexec/podman/catatonit"),
    busybox: Sequence[str] = ("/bin/busybox", "/usr/bin/busybox"),
) -> PauseSource:
    """catatonit (reaps zombies; runtime-notes pitfall 10), else a static busybox `sleep`."""
    for path in catatonit:
        if os.path.isfile(path) and is_static_elf(path):
            return PauseSource(path, ("/catatonit", "-P"), "catatonit")
    for path in busybox:
        if os.path.isfile(path) and is_static_elf(path):
            log.warning("no static catatonit found; the pause image uses busybox sleep, which "
                        "does not reap zombies (install the catatonit package)")
            return PauseSource(path, ("/busybox", "sleep", "infinity"), "busybox")
    raise ImageImportError(
        "no statically linked catatonit or busybox found to build the pause image "
        "(install the catatonit or busybox-static package)"
    )


def build_pause_image(source: PauseSource, dest: str) -> OciImage:
    name = "/" + os.path.basename(source.entrypoint[0])
    return write_oci_archive(
        dest,
        source.image_ref(),
        {name: source.binary},
        entrypoint=source.entrypoint,
        env=(),
    )


def busybox_image_files(
    busybox: str = "/bin/busybox", applets: Sequence[str] = BUSYBOX_APPLETS
) -> dict[str, LayerEntry]:
    """Layer entries for a small busybox-static image: /bin/busybox plus applet symlinks."""
    files: dict[str, LayerEntry] = {"/bin/busybox": busybox}
    for applet in applets:
        files[f"/bin/{applet}"] = Symlink("busybox")
    files["/tmp"] = Directory(0o1777)
    files["/etc/passwd"] = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
    files["/etc/group"] = b"root:x:0:\nnobody:x:65534:\n"
    return files


def build_image(
    name: str,
    files: Mapping[str, LayerEntry],
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Sequence[str] | None = None,
    *,
    dest: str | None = None,
) -> str:
    """Build a one-layer OCI archive (host platform) and return its path. Blocking.

    `files` maps paths in the image to a host file, bytes or an ocilayout entry. Without
    `dest` the archive goes to a new temporary directory.
    """
    if dest is None:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        dest = os.path.join(tempfile.mkdtemp(prefix="minik-image-"), safe + ".tar")
    write_oci_archive(
        dest, name, files, entrypoint=entrypoint, cmd=cmd,
        env=DEFAULT_ENV if env is None else env,
    )
    return dest


def airgap_images_dir(data_dir: str) -> str:
    """Where airgap image archives are picked up at start (k3s: agent/images/)."""
    return os.path.join(data_dir, "agent", "images")


def snapshotter_from_config(config_file: str) -> str:
    """The CRI snapshotter a rendered containerd config.toml uses ("" if unknown)."""
    try:
        with open(config_file, "rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError):
        return ""
    try:
        value = data["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"]
    except (KeyError, TypeError):
        return ""
    return value if isinstance(value, str) else ""


_UNPACKING = re.compile(r"^unpacking (\S+) \((sha256:[0-9a-f]+)\)", re.MULTILINE)


async def _run_import(
    path: str, *, address: str, snapshotter: str, ctr: str
) -> list[str]:
    """Import one archive; returns the image names ctr reported."""
    args = [ctr, "--address", address, "-n", CRI_NAMESPACE, "images", "import"]
    if snapshotter:
        # Unpack for the snapshotter CRI uses, or the first container pays for the unpack.
        args += ["--snapshotter", snapshotter]
    decompress: list[str] | None = None
    if path.endswith((".tar.zst", ".tar.zstd")):
        zstd = shutil.which("zstd")
        if zstd is None:
            raise ImageImportError(f"{path}: zstd is not installed")
        decompress = [zstd, "-dcq", path]
    elif path.endswith((".tar.gz", ".tgz")):
        decompress = [shutil.which("gzip") or "gzip", "-dc", path]

    if decompress is None:
        proc = await asyncio.create_subprocess_exec(
            *args, path, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        dec_rc = 0
    else:
        read_fd, write_fd = os.pipe()
        try:
            dec = await asyncio.create_subprocess_exec(
                *decompress, stdin=asyncio.subprocess.DEVNULL, stdout=write_fd,
                stderr=asyncio.subprocess.DEVNULL,
            )
            proc = await asyncio.create_subprocess_exec(
                *args, "-", stdin=read_fd,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            )
        finally:
            # The children hold their own copies; ours must go so EOF reaches ctr.
            os.close(read_fd)
            os.close(write_fd)
        out, _ = await proc.communicate()
        dec_rc = await dec.wait()
    text = out.decode("utf-8", "replace")
    if proc.returncode != 0 or dec_rc != 0:
        raise ImageImportError(f"importing {path} failed: {text.strip()}")
    return [m.group(1) for m in _UNPACKING.finditer(text)]


async def import_images(
    files: Sequence[str], *, address: str, snapshotter: str = "", ctr: str = "ctr"
) -> list[str]:
    """Import image archives (OCI or docker-save tarballs, optionally gzip/zstd) into the
    CRI namespace of the containerd at `address`; returns the image names imported."""
    names: list[str] = []
    for path in files:
        names += await _run_import(path, address=address, snapshotter=snapshotter, ctr=ctr)
    return names


async def list_images(cri: CriClient) -> list[ImageInfo]:
    """Images CRI knows, sorted by first tag (for `minik images ls`)."""
    images = await cri.list_images()
    out = [
        ImageInfo(
            id=img.id,
            repo_tags=tuple(img.repo_tags),
            repo_digests=tuple(img.repo_digests),
            size=img.size,
        )
        for img in images
    ]
    out.sort(key=lambda i: (i.repo_tags[0] if i.repo_tags else "~", i.id))
    return out


class Images:
    """Image chores of one node agent against one containerd."""

    def __init__(
        self,
        cri: CriClient,
        address: str,
        work_dir: str,
        *,
        snapshotter: str = "",
        ctr: str = "ctr",
    ) -> None:
        self._cri = cri
        self._address = address
        self._work_dir = work_dir
        self._snapshotter = snapshotter
        self._ctr = ctr

    async def import_images(self, files: Sequence[str]) -> list[str]:
        return await import_images(
            files, address=self._address, snapshotter=self._snapshotter, ctr=self._ctr
        )

    async def list_images(self) -> list[ImageInfo]:
        return await list_images(self._cri)

    async def ensure_pause_image(self, source: PauseSource) -> str:
        """Build and import the pause image unless CRI already has it; returns its ref."""
        ref = await asyncio.to_thread(source.image_ref)
        if await self._cri.image_status(ref) is not None:
            return ref
        t0 = time.monotonic()
        os.makedirs(self._work_dir, exist_ok=True)
        dest = os.path.join(self._work_dir, "pause.tar")
        await asyncio.to_thread(build_pause_image, source, dest)
        t1 = time.monotonic()
        await self.import_images([dest])
        t2 = time.monotonic()
        await self._wait_known(ref)
        log.info("imported pause image %s (from %s; built in %.0f ms, ctr import %.0f ms, CRI saw it %.0f ms later)",
                 ref, source.binary, (t1 - t0) * 1000, (t2 - t1) * 1000, (time.monotonic() - t2) * 1000)
        return ref

    async def _wait_known(self, ref: str, timeout: float = 10.0) -> None:
        # CRI learns about images imported behind its back from containerd events, so it
        # can lag a moment behind ctr's exit.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while await self._cri.image_status(ref) is None:
            if loop.time() > deadline:
                raise ImageImportError(f"{ref} imported but CRI does not report it")
            await asyncio.sleep(0.05)

    async def import_dir(self, images_dir: str) -> list[str]:
        """Import airgap archives in `images_dir` that are new or changed since last time.

        What was imported is remembered by (size, mtime) in <work_dir>/imported.json so a
        restart does not re-import gigabytes; a failing archive is logged and skipped.
        """
        try:
            names = sorted(os.listdir(images_dir))
        except FileNotFoundError:
            return []
        state_file = os.path.join(self._work_dir, "imported.json")
        state = await asyncio.to_thread(_load_state, state_file)
        zstd_ok = shutil.which("zstd") is not None
        imported: list[str] = []
        changed = False
        for name in names:
            path = os.path.join(images_dir, name)
            if not name.endswith(ARCHIVE_SUFFIXES) or not os.path.isfile(path):
                continue
            if name.endswith((".tar.zst", ".tar.zstd")) and not zstd_ok:
                log.warning("skipping %s: zstd is not installed", path)
                continue
            st = os.stat(path)
            stamp = [st.st_size, st.st_mtime_ns]
            if state.get(path) == stamp:
                continue
            try:
                got = await self.import_images([path])
            except ImageImportError as err:
                log.error("airgap import: %s", err)
                continue
            log.info("airgap import of %s: %s", path, ", ".join(got) or "(no names)")
            imported += got
            state[path] = stamp
            changed = True
        if changed:
            await asyncio.to_thread(_save_state, state_file, state)
        return imported


def _load_state(path: str) -> dict[str, list[int]]:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(v, list)} if isinstance(data, dict) else {}


def _save_state(path: str, state: Mapping[str, list[int]]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        json.dump(dict(state), f, indent=1, sort_keys=True)
    os.replace(path + ".tmp", path)
