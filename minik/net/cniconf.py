"""CNI configuration for containerd: the conflist and the shim executables.

Role: render minik's network config list and write it atomically into containerd's CNI
`conf_dir`, and install the stdlib-only shim (`minik/net/minik_cni.py`) into `bin_dir`
under both names containerd will exec: `minik-cni` (our network) and `loopback` (the
`cni-loopback` network containerd 1.6 always adds, runtime notes pitfall 3).

Ordering matters (pitfall 2): containerd picks up a conflist as soon as it appears and
sends pods to it, so `minik.net.podnet` writes it only after the daemon's socket server is
listening, and installs the shim before the conflist.

Neighbours: used by `minik.net.podnet`; the shim's source sits next to this file.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CONFLIST_NAME = "10-minik.conflist"
PLUGIN_TYPE = "minik-cni"
SHIM_NAMES = (PLUGIN_TYPE, "loopback")
CNI_VERSION = "1.0.0"
SHIM_SOURCE = Path(__file__).with_name("minik_cni.py")
DEFAULT_PYTHON = "/usr/bin/python3"


@dataclass(frozen=True, slots=True)
class NetConf:
    """What goes into the conflist; the daemon is the authority, the values are there
    so the file is self-describing and the shim knows where to connect."""

    socket: str
    bridge: str
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    cluster_cidr: ipaddress.IPv4Network
    mtu: int
    name: str = "minik"


def render_conflist(conf: NetConf) -> dict[str, Any]:
    return {
        "cniVersion": CNI_VERSION,
        "name": conf.name,
        "plugins": [
            {
                "type": PLUGIN_TYPE,
                "socket": conf.socket,
                "bridge": conf.bridge,
                "subnet": str(conf.subnet),
                "gateway": str(conf.gateway),
                "clusterCIDR": str(conf.cluster_cidr),
                "mtu": conf.mtu,
                # Without this containerd leaves the pod's hostPorts out of the request;
                # with it they arrive as runtimeConfig.portMappings (minik.net.hostports).
                "capabilities": {"portMappings": True},
            }
        ],
    }


def plugin_stdin(conflist: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The config a runtime pipes to plugin `index`: the plugin's own object with the
    list's `name` and `cniVersion` injected (what libcni does). Used by tests."""
    plugin = dict(conflist["plugins"][index])
    plugin["name"] = conflist["name"]
    plugin["cniVersion"] = conflist["cniVersion"]
    return plugin


def write_conflist(conf_dir: str | os.PathLike[str], conf: NetConf) -> Path:
    path = Path(conf_dir) / CONFLIST_NAME
    _write_atomic(path, (json.dumps(render_conflist(conf), indent=2) + "\n").encode(), 0o644)
    return path


def remove_conflist(conf_dir: str | os.PathLike[str]) -> None:
    (Path(conf_dir) / CONFLIST_NAME).unlink(missing_ok=True)


def shim_text(python: str = DEFAULT_PYTHON) -> bytes:
    """The shim's source with its shebang pointing at `python` (the host interpreter, not
    minik's venv: the shim needs only the standard library and must start fast)."""
    source = SHIM_SOURCE.read_bytes()
    first, _, rest = source.partition(b"\n")
    if not first.startswith(b"#!"):
        rest = source
    return f"#!{python} -IS\n".encode() + rest


def install_shim(
    bin_dir: str | os.PathLike[str], python: str = DEFAULT_PYTHON
) -> list[Path]:
    """Install the shim as every name in SHIM_NAMES (mode 0755). Rewrites only when the
    content differs; replacement is by rename, so a running exec of the old file is safe."""
    data = shim_text(python)
    installed = []
    for name in SHIM_NAMES:
        path = Path(bin_dir) / name
        try:
            current = path.read_bytes()
        except OSError:
            current = None
        if current != data or (path.stat().st_mode & 0o777) != 0o755:
            _write_atomic(path, data, 0o755)
        installed.append(path)
    return installed


def remove_shim(bin_dir: str | os.PathLike[str]) -> None:
    for name in SHIM_NAMES:
        (Path(bin_dir) / name).unlink(missing_ok=True)


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # containerd watches conf_dir and may read a half-written file; a dotted temp name is
    # also skipped by libcni's extension filter (it only loads .conf/.conflist/.json).
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    with open(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fchmod(fd, mode)  # O_CREAT's mode is filtered by umask
        os.fsync(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
