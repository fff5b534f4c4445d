"""CRI log parsing, query options, rendering filters, tail offsets and the follow loop."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from minik.agent.streams.logs import (
    LogOptions,
    LogRecord,
    LogRenderer,
    format_timestamp,
    log_files,
    parse_record,
    parse_timestamp,
    stream_log,
    tail_start,
)
from minik.api.streams.logquery import LogQueryError, parse_log_query

T0 = "2025-03-01T10:00:00.000000001Z"
T0_NS = parse_timestamp(T0)


def line(ts: str, text: str, stream: str = "stdout", tag: str = "F") -> bytes:
    return f"{ts} {stream} {tag} {text}\n".encode()


def at(seconds: int, text: str, tag: str = "F") -> bytes:
    return line(format_timestamp(T0_NS + seconds * 1_000_000_000), text, tag=tag)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0),
        ("1970-01-01T00:00:01.5Z", 1_500_000_000),
        ("1970-01-01T01:00:00+01:00", 0),
        ("1970-01-01T00:00:00.000000007-00:00", 7),
    ],
)
def test_parse_timestamp(text: str, expected: int) -> None:
    assert parse_timestamp(text) == expected


def test_timestamp_round_trip_is_fixed_width_utc() -> None:
    assert format_timestamp(T0_NS) == T0
    assert format_timestamp(1_500_000_000) == "1970-01-01T00:00:01.500000000Z"
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def test_parse_record() -> None:
    assert parse_record(line(T0, "hello world")) == LogRecord(T0_NS, "stdout", False, b"hello world")
    assert parse_record(line(T0, "part", "stderr", "P")) == LogRecord(T0_NS, "stderr", True, b"part")
    assert parse_record(f"{T0} stdout F".encode()) == LogRecord(T0_NS, "stdout", False, b"")
    assert parse_record(b"garbage") is None
    assert parse_record(f"{T0} stdin F x".encode()) is None
    assert parse_record(b"notatime stdout F x") is None


def test_parse_log_query() -> None:
    now = T0_NS
    opts = parse_log_query({"follow": "true", "tailLines": "3", "timestamps": "true",
                            "limitBytes": "10", "sinceSeconds": "60"}, now)
    assert opts == LogOptions(follow=True, tail_lines=3, since_ns=now - 60 * 10**9,
                              timestamps=True, limit_bytes=10)
    assert parse_log_query({"sinceTime": T0}, 0).since_ns == T0_NS
    assert parse_log_query({"previous": "true"}, 0).previous
    for bad in ({"tailLines": "-1"}, {"tailLines": "x"}, {"limitBytes": "0"},
                {"sinceSeconds": "0"}, {"sinceSeconds": "5", "sinceTime": T0},
                {"sinceTime": "nope"}, {"follow": "maybe"}):
        with pytest.raises(LogQueryError):
            parse_log_query(bad, 0)


def test_renderer_joins_partials_and_filters() -> None:
    lines = [at(0, "old"), at(5, "ne", "P"), at(6, "w"), at(7, "last")]
    assert LogRenderer(LogOptions()).render_lines(lines) == b"old\nnew\nlast\n"
    since = LogRenderer(LogOptions(since_ns=T0_NS + 5 * 10**9))
    assert since.render_lines(lines) == b"new\nlast\n"
    # A line that began before `since` is dropped whole, continuation included.
    since = LogRenderer(LogOptions(since_ns=T0_NS + 6 * 10**9))
    assert since.render_lines(lines) == b"last\n"
    stamped = LogRenderer(LogOptions(timestamps=True)).render_lines([at(0, "x")])
    assert stamped == f"{T0} x\n".encode()
    limited = LogRenderer(LogOptions(limit_bytes=6))
    assert limited.render_lines(lines) == b"old\nne"
    assert limited.exhausted
    assert LogRenderer(LogOptions()).render_lines([b"junk", at(0, "ok")]) == b"ok\n"


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(lines))


def test_tail_start_across_rotated_files(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    rotated = tmp_path / "0.log.20250301-100000"
    _write(rotated, [at(0, "a"), at(1, "b")])
    _write(live, [at(2, "c"), at(3, "d")])
    paths = log_files(str(live))
    assert paths == [str(rotated), str(live)]
    assert tail_start(paths, 1) == (1, len(at(2, "c")))
    assert tail_start(paths, 2) == (1, 0)
    assert tail_start(paths, 3) == (0, len(at(0, "a")))
    assert tail_start(paths, 10) == (0, 0)
    assert tail_start(paths, 0) == (2, 0)


def test_tail_counts_an_unterminated_last_line(tmp_path: Path) -> None:
    p = tmp_path / "x.log"
    p.write_bytes(at(0, "a") + at(1, "b")[:-1])
    assert tail_start([str(p)], 1) == (0, len(at(0, "a")))


async def _collect(path: Path, opts: LogOptions, running: bool = False) -> bytes:
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    async def is_running() -> bool:
        return running

    await stream_log(str(path), opts, write, is_running, poll_interval=0.01,
                     running_check_interval=0.01)
    return b"".join(out)


async def test_stream_log_reads_rotated_then_live(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    _write(tmp_path / "0.log.20250301-100000", [at(0, "a")])
    _write(tmp_path / "0.log.20250301-100000.gz", [b"compressed, ignored"])
    _write(live, [at(1, "b"), at(2, "c")])
    assert await _collect(live, LogOptions()) == b"a\nb\nc\n"
    assert await _collect(live, LogOptions(tail_lines=2)) == b"b\nc\n"
    assert await _collect(live, LogOptions(tail_lines=0)) == b""


async def test_follow_sees_appends_and_rotation_then_stops(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    _write(live, [at(0, "first")])
    out: list[bytes] = []
    running = True

    async def write(data: bytes) -> None:
        out.append(data)

    async def is_running() -> bool:
        return running

    task = asyncio.create_task(stream_log(str(live), LogOptions(follow=True), write, is_running,
                                          poll_interval=0.01, running_check_interval=0.05))

    async def until(text: bytes) -> None:
        for _ in range(300):
            if text in b"".join(out):
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{text!r} not seen in {b''.join(out)!r}")

    await until(b"first\n")
    with open(live, "ab") as f:
        f.write(at(1, "second"))
    await until(b"second\n")
    os.rename(live, tmp_path / "0.log.20250301-100001")
    _write(live, [at(2, "third")])
    await until(b"third\n")
    running = False
    await asyncio.wait_for(task, 5)
    assert b"".join(out) == b"first\nsecond\nthird\n"


async def test_follow_with_tail_zero_only_shows_new_lines(tmp_path: Path) -> None:
    live = tmp_path / "0.log"
    _write(live, [at(0, "old")])
    out: list[bytes] = []

    async def write(data: bytes) -> None:
        out.append(data)

    async def is_running() -> bool:
        return False

    with open(live, "ab") as f:
        task = asyncio.create_task(stream_log(str(live), LogOptions(follow=True, tail_lines=0),
                                              write, is_running, poll_interval=0.01,
                                              running_check_interval=10))
        await asyncio.sleep(0.05)
        f.write(at(1, "new"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert b"".join(out) == b"new\n"
