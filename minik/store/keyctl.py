"""Key management for Secrets at rest: status, rotation, and the control socket behind
`minik secrets-encrypt`.

Role: `rotate` is the one rotation procedure, run against a live `Store` (through the daemon's
control socket) or against the database file directly when the daemon is stopped
(`OfflineStore`). It is crash-safe in three steps, each durable before the next:
  1. the key file gets a new first key (new writes use it; the old keys still decrypt);
  2. every stored Secret row is rewritten under the new key (one transaction);
  3. the old keys are dropped from the key file (only when no row still needs them).
A crash after 1 or 2 leaves a key file that still opens every row, and the next start
re-encrypts whatever is not under the first key.

The control socket (`<data-dir>/server/secrets-encrypt.sock`, 0600 in a 0700 directory, peer
uid checked) speaks one JSON line each way: {"command": "status"|"rotate"} →
{"ok": true, "status": {...}} or {"ok": false, "error": "..."}.
Neighbours: `minik.store.encryption` (crypto, key file), `minik.store.store` / `db` (rewrite),
`minik.daemon` (serves the socket), `minik.cli.secrets_encrypt` (the command).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Protocol

from minik.store.db import Database, ReencryptResult
from minik.store.encryption import IDENTITY, KeySet, Transformer, new_key, read_config, write_config

logger = logging.getLogger("minik.store.keyctl")

SOCKET_NAME = "secrets-encrypt.sock"
LOCK_NAME = "secrets-encrypt.lock"
MAX_REQUEST = 4096


class KeyctlError(Exception):
    """A command that cannot be carried out (message for the user)."""


class EncryptedStore(Protocol):
    async def reencrypt(self, transformer: Transformer) -> ReencryptResult: ...
    async def key_usage(self) -> dict[str, int]: ...


@dataclass(frozen=True, slots=True)
class KeyStatus:
    name: str
    hash: str
    active: bool      # encrypts new writes
    rows: int         # stored Secret rows under this key


@dataclass(frozen=True, slots=True)
class EncryptionStatus:
    enabled: bool
    stage: str        # "start" (one key, every row under it), "rotating", "reencrypt_pending"
    keys: tuple[KeyStatus, ...]
    plaintext_rows: int
    other_rows: int   # rows under keys the key file does not hold

    def to_json(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "stage": self.stage, "plaintextRows": self.plaintext_rows,
                "unknownKeyRows": self.other_rows,
                "keys": [{"name": k.name, "hash": k.hash, "active": k.active, "rows": k.rows} for k in self.keys]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EncryptionStatus:
        return cls(bool(d["enabled"]), str(d["stage"]),
                   tuple(KeyStatus(str(k["name"]), str(k["hash"]), bool(k["active"]), int(k["rows"])) for k in d["keys"]),
                   int(d["plaintextRows"]), int(d["unknownKeyRows"]))


def compute_status(keyset: KeySet, enabled: bool, usage: dict[str, int]) -> EncryptionStatus:
    """Pure: the state shown by `minik secrets-encrypt status`."""
    write_key = keyset.primary.name if enabled and keyset.primary is not None else IDENTITY
    keys = tuple(KeyStatus(k.name, k.hash, k.name == write_key, usage.get(k.name, 0)) for k in keyset.keys)
    known = {k.name for k in keyset.keys} | {IDENTITY}
    other = sum(n for name, n in usage.items() if name not in known)
    behind = sum(n for name, n in usage.items() if name != write_key)
    if behind:
        stage = "reencrypt_pending"
    elif len(keyset.keys) > 1:
        stage = "rotating"
    else:
        stage = "start"
    return EncryptionStatus(enabled, stage, keys, usage.get(IDENTITY, 0), other)


def format_status(s: EncryptionStatus) -> str:
    lines = [f"Encryption Status: {'Enabled' if s.enabled else 'Disabled'}",
             f"Current Rotation Stage: {s.stage}",
             f"Plaintext Secret rows: {s.plaintext_rows}"]
    if s.other_rows:
        lines.append(f"Rows under keys missing from the key file: {s.other_rows}")
    lines.append("")
    lines.append(f"{'Active':<7} {'Key Type':<9} {'Name':<36} {'Hash':<24} Rows")
    lines.append(f"{'------':<7} {'--------':<9} {'----':<36} {'----':<24} ----")
    for k in s.keys:
        lines.append(f"{' *' if k.active else '':<7} {'AES-GCM':<9} {k.name:<36} {k.hash:<24} {k.rows}")
    return "\n".join(lines) + "\n"


async def status(config_path: str, store: EncryptedStore, enabled: bool) -> EncryptionStatus:
    keyset = read_config(config_path) or KeySet(())
    return compute_status(keyset, enabled, await store.key_usage())


async def rotate(config_path: str, store: EncryptedStore, enabled: bool) -> EncryptionStatus:
    """Add a new key, re-encrypt every Secret with it, drop the old keys (see module docstring)."""
    if not enabled:
        raise KeyctlError("secrets encryption is disabled (start minik with --secrets-encryption)")
    current = read_config(config_path) or KeySet(())
    key = new_key(current)
    staged = KeySet((key, *current.keys))
    await asyncio.to_thread(write_config, config_path, staged)
    result = await store.reencrypt(Transformer(staged, enabled=True))
    leftover = {name: n for name, n in result.keys.items() if name != key.name and n}
    if leftover:
        # Rows under keys we cannot open (or that failed): keep every key so nothing is lost.
        raise KeyctlError(f"new key {key.name} is active, but {sum(leftover.values())} rows could not be "
                          f"re-encrypted ({', '.join(sorted(leftover))}); the old keys were kept")
    final = KeySet((key,))
    await store.reencrypt(Transformer(final, enabled=True))   # nothing left to rewrite: swaps the keys in use
    await asyncio.to_thread(write_config, config_path, final)
    logger.info("secrets encryption key rotated to %s (%d rows re-encrypted)", key.name, result.rewritten)
    return compute_status(final, True, result.keys)


# ---- offline: the daemon is stopped -----------------------------------------------------------------

class OfflineStore:
    """The database file opened directly (no daemon): enough for status and rotate."""

    def __init__(self, server_dir: str, db_path: str, keyset: KeySet) -> None:
        # enabled=False: opening must not rewrite anything; rotate passes its own transformer.
        self._db = Database(db_path, Transformer(keyset, enabled=False))
        self._server_dir = server_dir
        self._lock = -1

    async def __aenter__(self) -> OfflineStore:
        if not os.path.exists(self._db.path):
            raise KeyctlError(f"no database at {self._db.path}")
        self._lock = hold_lock(self._server_dir)   # no server may start while we work
        try:
            await self._db.open()
        except BaseException:
            os.close(self._lock)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self._db.close()
        finally:
            os.close(self._lock)

    async def reencrypt(self, transformer: Transformer) -> ReencryptResult:
        return await self._db.reencrypt(transformer)

    async def key_usage(self) -> dict[str, int]:
        return await self._db.key_usage()


# ---- who owns the database -------------------------------------------------------------------------

def hold_lock(server_dir: str) -> int:
    """Taken by the daemon for its lifetime (released by the kernel when it exits, kill -9
    included): offline commands must not rewrite rows or drop keys under a running daemon,
    which keeps its keys in memory."""
    import fcntl
    fd = os.open(os.path.join(server_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise KeyctlError(f"another minik server holds {server_dir}") from None
    return fd


def daemon_running(server_dir: str) -> bool:
    import fcntl
    try:
        fd = os.open(os.path.join(server_dir, LOCK_NAME), os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)   # closing drops the lock if we got it
    return False


# ---- the control socket ------------------------------------------------------------------------------

class ControlServer:
    """Serves status/rotate for the running daemon on a root-only unix socket."""

    def __init__(self, path: str, config_path: str, store: EncryptedStore, enabled: bool) -> None:
        self.path, self.config_path, self.store, self.enabled = path, config_path, store, enabled
        self._lock = asyncio.Lock()   # one rotation at a time

    async def run(self) -> None:
        """Serve until cancelled (a supervised task), then remove the socket."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            server = await asyncio.start_unix_server(self._serve, path=self.path)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)
        try:
            async with server:
                await server.serve_forever()
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            reply = await self._answer(reader, writer)
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:
            logger.exception("secrets-encrypt control request failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, Any]:
        sock = writer.get_extra_info("socket")
        uid = _peer_uid(sock) if sock is not None else -1
        if uid not in (0, os.getuid()):
            return {"ok": False, "error": "permission denied"}
        try:
            line = await asyncio.wait_for(reader.readline(), 10.0)
            req = json.loads(line[:MAX_REQUEST])
            command = str(req.get("command", ""))
        except (ValueError, AttributeError, asyncio.TimeoutError):
            return {"ok": False, "error": "bad request"}
        try:
            if command == "status":
                s = await status(self.config_path, self.store, self.enabled)
            elif command == "rotate":
                async with self._lock:
                    s = await rotate(self.config_path, self.store, self.enabled)
            else:
                return {"ok": False, "error": f"unknown command {command!r}"}
        except KeyctlError as e:
            return {"ok": False, "error": str(e)}
        return {"ok": True, "status": s.to_json()}


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return int(uid)


def request(path: str, command: str, timeout: float = 600.0) -> EncryptionStatus:
    """Client side (blocking): ask the running daemon. Raises ConnectionError if nobody listens."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(json.dumps({"command": command}).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf or b"{}")
    if not reply.get("ok"):
        raise KeyctlError(str(reply.get("error") or "no answer from the daemon"))
    return EncryptionStatus.from_json(reply["status"])
