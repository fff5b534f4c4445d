"""Giving memory back after bursts: glibc allocator settings and a trimmer task.

Why: CPython frees objects as soon as they die, but glibc keeps freed heap for reuse, per thread
arena, and raises its mmap threshold after large frees so later large buffers come from the heap
too. After a watch/LIST storm the daemon's RSS stayed ~160 MB above where it started although
the objects were gone. Three measures, all cheap when idle:
- `tune_allocator`: at most 2 malloc arenas (the SQL thread and the to_thread pool otherwise
  get their own, each holding its peak), and a fixed 128 KiB mmap threshold so large response
  buffers are mmapped and unmapped on free instead of fragmenting the heap;
- `MemoryTrimmer`: a named background task that reads RSS every few seconds (a /proc read) and,
  once a growth of `slack` bytes has stopped growing, runs `gc.collect()` and `malloc_trim(0)`,
  which hands free pages in the middle of the heap back to the kernel;
- nothing on the request path.
On a libc without these calls (musl, macOS) everything here is a no-op.
Neighbours: `minik.daemon` calls `tune_allocator` and supervises `MemoryTrimmer.run`.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import os

log = logging.getLogger("minik.memory")

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only
        libc.mallopt  # noqa: B018
        return libc
    except (OSError, AttributeError):
        return None


def tune_allocator(arenas: int = 2, mmap_threshold: int = 128 * 1024) -> bool:
    """Set glibc's arena count and a fixed mmap threshold; True when applied."""
    libc = _libc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(M_ARENA_MAX, arenas)) and bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold))
    return ok


def trim() -> None:
    """Collect cycles, then return free heap pages to the kernel."""
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryTrimmer:
    """Trims once RSS has grown by `slack` over the level after the last trim and stopped growing."""

    def __init__(self, interval: float = 3.0, slack: int = 8 * 1024 * 1024) -> None:
        self.interval = interval
        self.slack = slack
        self.trims = 0

    def should_trim(self, floor: int, previous: int, current: int) -> bool:
        """Pure: grown past the slack, and not still climbing (a storm in progress)."""
        return current > floor + self.slack and current <= previous + self.slack // 4

    async def run(self) -> None:
        floor = previous = rss_bytes()
        while True:
            await asyncio.sleep(self.interval)
            current = rss_bytes()
            if self.should_trim(floor, previous, current):
                trim()   # on the loop: a short pause, and gc must run on the thread that owns the objects
                after = rss_bytes()
                self.trims += 1
                log.debug("memory trimmed: RSS %.1f MB → %.1f MB", current / 2**20, after / 2**20)
                current = after
                floor = after
            elif current < floor:
                floor = current
            previous = current
