"""Container termination messages: kubelet's terminationMessagePath and FallbackToLogsOnError.

Role: before a container is created the worker asks for a fresh empty host file
(`new_message_file`), which is bind-mounted writable at the container's terminationMessagePath
(default /dev/termination-log); once the container has exited the observer reads it back
(`read_message`): the last 4096 bytes of the file, or — with terminationMessagePolicy
FallbackToLogsOnError, an empty file and a failed container — the tail of its CRI log (last
80 lines, at most 2048 bytes). The text becomes `state.terminated.message`. All functions here
block (file I/O); callers go through `asyncio.to_thread`.
Neighbours: `minik.agent.worker` (creates the file, adds the mount), `minik.agent.observe`
(reads the message into `ContainerObs.message`), `minik.agent.containers` (annotations naming
the path and the policy), `minik.agent.streams.logs` (CRI log parsing).
"""

from __future__ import annotations

import os
import secrets

from minik.agent.streams.logs import log_files, parse_record, tail_start

__all__ = [
    "DEFAULT_MESSAGE_PATH",
    "MAX_LOG_BYTES",
    "MAX_LOG_LINES",
    "MAX_MESSAGE_BYTES",
    "new_message_file",
    "read_message",
]

DEFAULT_MESSAGE_PATH = "/dev/termination-log"
# Kubelet's limits (MaxContainerTerminationMessageLength, and its log fallback's tail).
MAX_MESSAGE_BYTES = 4096
MAX_LOG_LINES = 80
MAX_LOG_BYTES = 2048


def new_message_file(pod_dir: str, container: str) -> str:
    """An empty, world-writable file under `<pod_dir>/containers/<name>/` for one container
    instance (kubelet's layout). A random name, so a restart never inherits a stale message."""
    d = os.path.join(pod_dir, "containers", container)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, secrets.token_hex(4))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    os.close(fd)
    # Writable whatever user the container runs as (the umask took some bits away).
    os.chmod(path, 0o666)
    return path


def _file_tail(path: str, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            f.seek(max(0, size - limit))
            return f.read(limit).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _log_tail(log_path: str) -> str:
    paths = log_files(log_path)
    start_idx, offset = tail_start(paths, MAX_LOG_LINES)
    out = bytearray()
    for i in range(start_idx, len(paths)):
        try:
            with open(paths[i], "rb") as f:
                if i == start_idx:
                    f.seek(offset)
                for line in f:
                    rec = parse_record(line)
                    if rec is not None:
                        out += rec.content if rec.partial else rec.content + b"\n"
        except OSError:
            continue
    # Kubelet caps the tail at 2048 bytes; the end is kept, as the last words matter most.
    return bytes(out[-MAX_LOG_BYTES:]).decode("utf-8", errors="replace")


def read_message(message_file: str, log_path: str, *, fallback_to_logs: bool, failed: bool) -> str:
    """The termination message of an exited container ("" when there is none)."""
    text = _file_tail(message_file, MAX_MESSAGE_BYTES) if message_file else ""
    if not text and fallback_to_logs and failed and log_path:
        text = _log_tail(log_path)
    return text
