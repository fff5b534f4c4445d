"""`minik images import FILE…` and `minik images ls`: airgap image tarballs and what the node has.

Talks to the containerd minik supervises (its socket under --run-dir) or --container-runtime-endpoint.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from minik.config import ServerConfig


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = ServerConfig()
    p = sub.add_parser("images", help="import image tarballs into the node's containerd, list images",
                       description="Manage the images of this node's containerd (the k8s.io namespace CRI uses).")
    p.add_argument("--data-dir", default=os.environ.get("MINIK_DATA_DIR", d.data_dir), help="minik's data directory (default %(default)s)")
    p.add_argument("--run-dir", default=os.environ.get("MINIK_RUN_DIR", d.run_dir), help="minik's runtime directory (default %(default)s)")
    p.add_argument("--container-runtime-endpoint", default=os.environ.get("MINIK_CONTAINER_RUNTIME_ENDPOINT", ""),
                   help="containerd socket (default: the one minik runs under --run-dir)")
    isub = p.add_subparsers(dest="images_command", metavar="SUBCOMMAND")
    imp = isub.add_parser("import", help="import OCI or docker-save tarballs (.tar, .tar.gz, .tar.zst)")
    imp.add_argument("files", nargs="+", metavar="FILE")
    isub.add_parser("ls", help="list images")


def _socket(a: argparse.Namespace) -> str:
    ep = a.container_runtime_endpoint or os.path.join(a.run_dir, "containerd", "containerd.sock")
    return ep.removeprefix("unix://")


async def _run(a: argparse.Namespace) -> int:
    from minik.agent.containerd import ContainerdPaths
    from minik.agent.images import import_images, list_images, snapshotter_from_config
    sock = _socket(a)
    if not os.path.exists(sock):
        print(f"minik: containerd socket {sock} not found: is minik running (or pass --run-dir / --container-runtime-endpoint)?", file=sys.stderr)
        return 1
    if a.images_command == "import":
        missing = [f for f in a.files if not os.path.isfile(f)]
        if missing:
            print(f"minik: no such file: {', '.join(missing)}", file=sys.stderr)
            return 1
        paths = ContainerdPaths.from_dirs(a.data_dir, a.run_dir)
        snap = await asyncio.to_thread(snapshotter_from_config, paths.config_file) if os.path.exists(paths.config_file) else ""
        for name in await import_images(a.files, address=sock, snapshotter=snap or ""):
            print(f"imported {name}")
        return 0
    from minik.agent.cri.client import CriClient
    async with CriClient(sock) as cri:
        images = await list_images(cri)
    print(f"{'IMAGE':<60} {'ID':<20} SIZE")
    for img in images:
        tag = img.repo_tags[0] if img.repo_tags else (img.repo_digests[0] if img.repo_digests else "<none>")
        print(f"{tag:<60} {img.id.removeprefix('sha256:')[:13]:<20} {img.size / 1e6:.1f}MB")
    return 0


def run(a: argparse.Namespace) -> int:
    if not a.images_command:
        print("usage: minik images {import FILE…|ls}", file=sys.stderr)
        return 2
    return asyncio.run(_run(a))
