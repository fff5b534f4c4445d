"""Build single-layer OCI image archives (oci-archive tarballs) in pure Python.

Role: lets a fresh node get its pause image from a host binary, with no registry, and lets
tests build small images. The output is an OCI image layout packed in a tar, which both
`ctr images import` and `skopeo copy oci-archive:` accept. Builds are deterministic: fixed
mtimes and owners, sorted entries, gzip without timestamp, so the same inputs give the same
digests (and containerd sees an unchanged image as unchanged).
Neighbours: `minik.agent.images` decides what to build and imports it.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import platform
import posixpath
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DEFAULT_ENV",
    "Directory",
    "FileData",
    "LayerEntry",
    "OciImage",
    "Symlink",
    "build_layer",
    "oci_platform",
    "write_oci_archive",
]

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

# ctr keeps the full image name on import only when the index entry carries this annotation
# (runtime-notes pitfall 11); the OCI one carries the tag, as containerd's own exporter does.
ANNOT_CONTAINERD_NAME = "io.containerd.image.name"
ANNOT_OCI_REF_NAME = "org.opencontainers.image.ref.name"

DEFAULT_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

# Any fixed time works; 0 keeps tools from showing a misleading build date.
_MTIME = 0


@dataclass(frozen=True, slots=True)
class FileData:
    data: bytes
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class Symlink:
    target: str


@dataclass(frozen=True, slots=True)
class Directory:
    mode: int = 0o755


# What a path in the image is made of: a host file path (content and permission bits are
# copied, symlinks followed), raw bytes (mode 0644), or one of the explicit entry types.
LayerEntry = str | bytes | FileData | Symlink | Directory


@dataclass(frozen=True, slots=True)
class OciImage:
    name: str              # full reference written into the index, e.g. localhost/minik/pause:x
    manifest_digest: str   # "sha256:…"
    config_digest: str     # the image id containerd and CRI report
    layer_diff_id: str
    size: int              # bytes of the archive


def oci_platform(machine: str | None = None) -> dict[str, str]:
    """OCI os/architecture/variant of this host (as the registry and containerd spell them)."""
    m = (machine or platform.machine()).lower()
    table: dict[str, tuple[str, str]] = {
        "x86_64": ("amd64", ""),
        "amd64": ("amd64", ""),
        "aarch64": ("arm64", ""),
        "arm64": ("arm64", ""),
        "armv7l": ("arm", "v7"),
        "armv6l": ("arm", "v6"),
        "i686": ("386", ""),
        "i386": ("386", ""),
        "ppc64le": ("ppc64le", ""),
        "s390x": ("s390x", ""),
        "riscv64": ("riscv64", ""),
    }
    arch, variant = table.get(m, (m, ""))
    out = {"os": "linux", "architecture": arch}
    if variant:
        out["variant"] = variant
    return out


def _normalize(path: str) -> str:
    clean = posixpath.normpath("/" + path).lstrip("/")
    if not clean or clean == ".":
        raise ValueError(f"invalid path in image: {path!r}")
    return clean


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = link
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def build_layer(entries: Mapping[str, LayerEntry]) -> bytes:
    """An uncompressed layer tar holding `entries`, parent directories added. Deterministic."""
    items: dict[str, LayerEntry] = {}
    for path, entry in entries.items():
        name = _normalize(path)
        items[name] = entry
        parent = posixpath.dirname(name)
        while parent:
            items.setdefault(parent, Directory())
            parent = posixpath.dirname(parent)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        # Sorted so a directory always precedes its contents and the bytes are reproducible.
        for name in sorted(items):
            entry = items[name]
            if isinstance(entry, Directory):
                tar.addfile(_tarinfo(name + "/", tarfile.DIRTYPE, entry.mode))
            elif isinstance(entry, Symlink):
                tar.addfile(_tarinfo(name, tarfile.SYMTYPE, 0o777, link=entry.target))
            else:
                if isinstance(entry, str):
                    with open(entry, "rb") as f:
                        data = f.read()
                    mode = os.stat(entry).st_mode & 0o7777
                elif isinstance(entry, bytes):
                    data, mode = entry, 0o644
                else:
                    data, mode = entry.data, entry.mode
                tar.addfile(_tarinfo(name, tarfile.REGTYPE, mode, size=len(data)),
                            io.BytesIO(data))
    return buf.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _tag_of(name: str) -> str:
    last = name.rsplit("/", 1)[-1]
    if "@" in last:
        return ""
    return last.split(":", 1)[1] if ":" in last else "latest"


def write_oci_archive(
    dest: str,
    name: str,
    entries: Mapping[str, LayerEntry],
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Sequence[str] = DEFAULT_ENV,
    working_dir: str = "/",
    labels: Mapping[str, str] | None = None,
    machine: str | None = None,
) -> OciImage:
    """Write a one-layer OCI image archive for the host platform to `dest` (atomically)."""
    layer = build_layer(entries)
    diff_id = _digest(layer)
    # mtime=0 keeps the gzip header, and so the blob digest, reproducible.
    blob = gzip.compress(layer, compresslevel=6, mtime=0)
    plat = oci_platform(machine)
    image_config: dict[str, object] = {"Env": list(env), "WorkingDir": working_dir}
    if entrypoint:
        image_config["Entrypoint"] = list(entrypoint)
    if cmd:
        image_config["Cmd"] = list(cmd)
    if labels:
        image_config["Labels"] = dict(labels)
    config = _json({
        **plat,
        "config": image_config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "minik ocilayout"}],
    })
    manifest = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_MANIFEST,
        "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
        "layers": [{"mediaType": MEDIA_LAYER_GZIP, "digest": _digest(blob), "size": len(blob)}],
    })
    annotations = {ANNOT_CONTAINERD_NAME: name}
    tag = _tag_of(name)
    if tag:
        annotations[ANNOT_OCI_REF_NAME] = tag
    index = _json({
        "schemaVersion": 2,
        "mediaType": MEDIA_INDEX,
        "manifests": [{
            "mediaType": MEDIA_MANIFEST,
            "digest": _digest(manifest),
            "size": len(manifest),
            "annotations": annotations,
            "platform": plat,
        }],
    })
    files: list[tuple[str, bytes]] = [
        ("oci-layout", _json({"imageLayoutVersion": "1.0.0"})),
        ("index.json", index),
    ]
    for data in (blob, config, manifest):
        files.append(("blobs/sha256/" + _digest(data).split(":", 1)[1], data))

    tmp = dest + ".tmp"
    with tarfile.open(tmp, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for d in ("blobs/", "blobs/sha256/"):
            tar.addfile(_tarinfo(d, tarfile.DIRTYPE, 0o755))
        for path, data in files:
            tar.addfile(_tarinfo(path, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
    os.replace(tmp, dest)
    return OciImage(
        name=name,
        manifest_digest=_digest(manifest),
        config_digest=_digest(config),
        layer_diff_id=diff_id,
        size=os.path.getsize(dest),
    )
