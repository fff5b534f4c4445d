"""`minik secrets-encrypt status|rotate`: Secrets-at-rest keys, like `k3s secrets-encrypt`.

Talks to the running daemon over its root-only control socket under
`<data-dir>/server/`; when no daemon listens there, works on the database file directly.
The procedure itself lives in `minik.store.keyctl`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING

from minik.config import ServerConfig

if TYPE_CHECKING:
    from minik.store.keyctl import EncryptionStatus


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = ServerConfig()
    p = sub.add_parser("secrets-encrypt", help="show or rotate the key Secrets are encrypted with at rest",
                       description="Secrets are encrypted at rest with AES-GCM. `status` shows the state and key "
                                   "hashes; `rotate` adds a new key, re-encrypts every Secret with it, then drops "
                                   "the old key. Works against the running server, or offline when it is stopped.")
    p.add_argument("--data-dir", default=os.environ.get("MINIK_DATA_DIR", d.data_dir),
                   help="minik's data directory (default %(default)s)")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text", help="output format (default %(default)s)")
    p.add_argument("secrets_command", choices=["status", "rotate"], metavar="status|rotate")


def run(a: argparse.Namespace) -> int:
    from minik.store.keyctl import SOCKET_NAME, KeyctlError, format_status, request
    cfg = ServerConfig(data_dir=os.path.abspath(a.data_dir))
    server_dir = cfg.server_dir
    sock = os.path.join(server_dir, SOCKET_NAME)
    try:
        try:
            status = request(sock, a.secrets_command)
            where = "server"
        except (FileNotFoundError, ConnectionRefusedError):
            status = asyncio.run(_offline(cfg, a.secrets_command))
            where = "offline"
    except KeyctlError as e:
        print(f"minik: secrets-encrypt {a.secrets_command}: {e}", file=sys.stderr)
        return 1
    except PermissionError as e:
        print(f"minik: secrets-encrypt: {e} (run as root)", file=sys.stderr)
        return 1
    if a.output == "json":
        import json
        print(json.dumps({"source": where, **status.to_json()}, indent=2))
    else:
        if a.secrets_command == "rotate":
            print(f"rotated: new key {next(k.name for k in status.keys if k.active)} ({where})")
        print(format_status(status), end="")
    return 0


async def _offline(cfg: ServerConfig, command: str) -> EncryptionStatus:
    from minik.store.encryption import KeySet, read_config
    from minik.store.keyctl import KeyctlError, OfflineStore, daemon_running, rotate, status
    config_path = cfg.encryption_config_path
    if not os.path.isdir(cfg.server_dir):
        raise KeyctlError(f"{cfg.server_dir} does not exist: wrong --data-dir?")
    if daemon_running(cfg.server_dir):
        raise KeyctlError("the minik server is running but its control socket does not answer; try again "
                          "or stop the server")
    keyset = read_config(config_path)
    enabled = keyset is not None and bool(keyset.keys)
    async with OfflineStore(cfg.server_dir, cfg.db_path, keyset or KeySet(())) as store:
        if command == "rotate":
            return await rotate(config_path, store, enabled)
        return await status(config_path, store, enabled)
