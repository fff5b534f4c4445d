"""Container logs in the kubelet's CRI file format: parsing, filters and the follow loop.

Role: turn the files a runtime writes at a container's `log_path` (one record a line:
`<RFC3339Nano> <stdout|stderr> <F|P> <content>`, P = partial line continued by the next record)
into the byte stream `kubectl logs` expects, honouring tailLines, sinceSeconds/sinceTime,
timestamps, limitBytes and follow. Rotated siblings `<path>.<suffix>` (uncompressed) are read
before the live file, oldest first.
Neighbours: `minik.agent.streams.cri` resolves the container and its log path through CRI and
hands this module an async `write` and an `is_running` probe; nothing here touches HTTP or CRI,
so everything except `stream_log`'s file I/O is pure and unit-tested. The query string is parsed
into `LogOptions` by the API server's front (`api/streams/logquery.py`).
"""

from __future__ import annotations

import asyncio
import glob
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import BinaryIO

from minik.client.streams import LogOptions, parse_timestamp

__all__ = [
    "LogOptions",
    "LogRecord",
    "LogRenderer",
    "format_timestamp",
    "log_files",
    "parse_record",
    "parse_timestamp",
    "stream_log",
    "tail_start",
]

_NS = 1_000_000_000
_READ_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class LogRecord:
    timestamp_ns: int  # nanoseconds since the Unix epoch
    stream: str  # "stdout" or "stderr"
    partial: bool  # True: the line continues in the next record (no newline here)
    content: bytes


def format_timestamp(ns: int) -> str:
    """Kubelet's output form: UTC, always nine fraction digits (RFC3339NanoFixed)."""
    seconds, nanos = divmod(ns, _NS)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{nanos:09d}Z"


def parse_record(line: bytes) -> LogRecord | None:
    """One CRI log line (with or without its trailing newline); None when malformed."""
    if line.endswith(b"\n"):
        line = line[:-1]
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) == 4 else b""
    if stream not in (b"stdout", b"stderr") or tag not in (b"F", b"P"):
        return None
    try:
        ts = parse_timestamp(stamp.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return LogRecord(ts, stream.decode(), tag == b"P", content)


class LogRenderer:
    """Applies since/timestamps/limitBytes to records, in order; stateful for limitBytes."""

    def __init__(self, opts: LogOptions) -> None:
        self._opts = opts
        self._left = opts.limit_bytes
        # A partial record's continuation gets no second timestamp: kubelet prefixes each
        # record, but a line that began before `since` must not be half-shown either, so we
        # remember whether the current line was admitted.
        self._in_line = False
        self._line_admitted = True

    @property
    def exhausted(self) -> bool:
        return self._left is not None and self._left <= 0

    def render(self, rec: LogRecord) -> bytes:
        if self.exhausted:
            return b""
        starts_line = not self._in_line
        if starts_line:
            self._line_admitted = self._opts.since_ns is None or rec.timestamp_ns >= self._opts.since_ns
        self._in_line = rec.partial
        if not self._line_admitted:
            return b""
        out = rec.content if rec.partial else rec.content + b"\n"
        if self._opts.timestamps:
            out = format_timestamp(rec.timestamp_ns).encode() + b" " + out
        if self._left is not None:
            out = out[: self._left]
            self._left -= len(out)
        return out

    def render_lines(self, lines: Sequence[bytes]) -> bytes:
        parts: list[bytes] = []
        for line in lines:
            rec = parse_record(line)
            if rec is not None:
                parts.append(self.render(rec))
                if self.exhausted:
                    break
        return b"".join(parts)


def log_files(path: str) -> list[str]:
    """Rotated siblings (`<path>.<suffix>`, not compressed) oldest first, then `path` itself.

    Rotation suffixes are timestamps, so name order is age order.
    """
    rotated = sorted(
        p for p in glob.glob(glob.escape(path) + ".*")
        if not p.endswith((".gz", ".tmp")) and os.path.isfile(p)
    )
    return [*rotated, path] if os.path.exists(path) else rotated


def _count_newlines_back(f: BinaryIO, size: int, need: int) -> tuple[int, int]:
    """Scan `f` backwards; returns (offset where the last `need` lines start, lines found).

    A final line without newline counts as a line (the runtime may be mid-write).
    """
    pos = size
    found = 0
    # The last byte being a newline terminates the last line rather than starting a new one.
    skip_final_nl = True
    while pos > 0:
        start = max(0, pos - _READ_CHUNK)
        f.seek(start)
        block = f.read(pos - start)
        i = len(block)
        while True:
            j = block.rfind(b"\n", 0, i)
            if j < 0:
                break
            if skip_final_nl and start + j == size - 1:
                skip_final_nl = False
                i = j
                continue
            skip_final_nl = False
            found += 1
            if found == need:
                return start + j + 1, found
            i = j
        skip_final_nl = False
        pos = start
    # Reached the file start: the first line counts too (if the file is not empty).
    if size > 0:
        found += 1
    return 0, found


def tail_start(paths: Sequence[str], lines: int) -> tuple[int, int]:
    """Where reading must start to yield the last `lines` records: (index in paths, offset).

    Blocking (file I/O); call through a thread.
    """
    if lines <= 0:
        return len(paths), 0
    need = lines
    for idx in range(len(paths) - 1, -1, -1):
        try:
            with open(paths[idx], "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size == 0:
                    continue
                offset, found = _count_newlines_back(f, size, need)
        except FileNotFoundError:
            continue
        if found >= need:
            return idx, offset
        need -= found
    return 0, 0


class _Reader:
    """Reads whole lines from one open file; keeps an incomplete last line for later."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.pending = b""

    def read_lines(self) -> list[bytes]:
        data = self.f.read(_READ_CHUNK)
        if not data:
            return []
        data = self.pending + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.pending = data
            return []
        self.pending = data[cut + 1:]
        return data[: cut + 1].splitlines()

    def flush(self) -> list[bytes]:
        """The incomplete trailing line, when the file will not grow any more."""
        rest, self.pending = self.pending, b""
        return [rest] if rest else []


WriteFn = Callable[[bytes], Awaitable[None]]
ProbeFn = Callable[[], Awaitable[bool]]


async def _drain_file(reader: _Reader, renderer: LogRenderer, write: WriteFn, final: bool) -> None:
    while not renderer.exhausted:
        lines = await asyncio.to_thread(reader.read_lines)
        if not lines:
            break
        out = renderer.render_lines(lines)
        if out:
            await write(out)
    if final and not renderer.exhausted:
        out = renderer.render_lines(reader.flush())
        if out:
            await write(out)


async def stream_log(
    path: str,
    opts: LogOptions,
    write: WriteFn,
    is_running: ProbeFn,
    *,
    poll_interval: float = 0.1,
    running_check_interval: float = 1.0,
) -> None:
    """Write the log at `path` (and its rotated siblings) through `write`.

    With `opts.follow`, keeps polling for new lines until `is_running()` says the container
    stopped (then drains what is left) or the caller cancels. Rotation (the path now names a
    different inode, or the file shrank) re-opens the path from its start.
    """
    renderer = LogRenderer(opts)
    paths = await asyncio.to_thread(log_files, path)
    start_idx, start_off = 0, 0
    if opts.tail_lines is not None:
        start_idx, start_off = await asyncio.to_thread(tail_start, paths, opts.tail_lines)
    live: _Reader | None = None
    try:
        for idx in range(start_idx, len(paths)):
            p = paths[idx]
            try:
                f = await asyncio.to_thread(open, p, "rb")
            except FileNotFoundError:
                continue
            reader = _Reader(f)
            if idx == start_idx and start_off:
                f.seek(start_off)
            is_live = p == path
            if is_live and opts.follow:
                live = reader
                await _drain_file(reader, renderer, write, final=False)
            else:
                try:
                    await _drain_file(reader, renderer, write, final=True)
                finally:
                    f.close()
            if renderer.exhausted:
                return
        if opts.tail_lines is not None and start_idx >= len(paths) and opts.follow:
            # tailLines=0 with follow: only new lines, so start at the live file's end.
            f = await asyncio.to_thread(open, path, "rb")
            f.seek(0, os.SEEK_END)
            live = _Reader(f)
        if not opts.follow:
            return
        if live is None:
            f = await asyncio.to_thread(open, path, "rb")
            live = _Reader(f)
        await _follow(path, live, renderer, write, is_running, poll_interval,
                      running_check_interval)
    finally:
        if live is not None:
            live.f.close()


async def _follow(
    path: str,
    reader: _Reader,
    renderer: LogRenderer,
    write: WriteFn,
    is_running: ProbeFn,
    poll_interval: float,
    running_check_interval: float,
) -> None:
    loop = asyncio.get_running_loop()
    next_check = loop.time() + running_check_interval
    while not renderer.exhausted:
        await _drain_file(reader, renderer, write, final=False)
        if renderer.exhausted:
            return
        # Rotation: the path now names another file (or the same file was truncated).
        try:
            st = os.stat(path)
            cur = os.fstat(reader.f.fileno())
            rotated = (st.st_ino, st.st_dev) != (cur.st_ino, cur.st_dev)
            truncated = not rotated and st.st_size < reader.f.tell()
        except FileNotFoundError:
            rotated = truncated = False
        if rotated or truncated:
            await _drain_file(reader, renderer, write, final=True)
            reader.f.close()
            reader.f = await asyncio.to_thread(open, path, "rb")
            reader.pending = b""
            continue
        now = loop.time()
        if now >= next_check:
            next_check = now + running_check_interval
            if not await is_running():
                # The runtime has closed the file: whatever is there now is final.
                await _drain_file(reader, renderer, write, final=True)
                return
        await asyncio.sleep(poll_interval)
