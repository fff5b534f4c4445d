"""Giving memory back after bursts: glibc allocator settings and a trimmer task.

Why: CPython frees objects as soon as they die, but glibc keeps freed heap for reuse, per thread
arena, and raises its mmap threshold after large frees so later large buffers come from the heap
too. After a watch/LIST storm the daemon's RSS stayed ~160 MB above where it started although
the objects were gone. Three measures, all cheap when idle:
- `tune_allocator`: at most 2 malloc arenas (the SQL thread and the to_thread pool otherwise
  get their own, each holding its peak), and a fixed 128 KiB mmap threshold so large response
  buffers are mmapped and unmapped on free instead of fragmenting the heap;
- `MemoryTrimmer`: a named background task that looks every few seconds at how much glibc holds
  free (mallinfo2; RSS growth where that is missing) and, once more than `slack` bytes were
  freed since the last trim and RSS has stopped climbing, runs `gc.collect()` and
  `malloc_trim(0)`, which hands free pages in the middle of the heap back to the kernel;
- nothing on the request path.
On a libc without these calls (musl, macOS) everything here is a no-op.
Neighbours: `minik.daemon` calls `tune_allocator` and supervises `MemoryTrimmer.run`.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os

from minik.machinery.gcpause import settle

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
    """Collect cycles (and freeze the survivors: `minik.machinery.gcpause`), then return free
    heap pages to the kernel."""
    settle()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def free_heap_bytes() -> int | None:
    """Bytes glibc holds free in its heaps (mallinfo2's fordblks): what a trim can give back.
    None without glibc >= 2.33."""
    libc = _libc()
    fn = getattr(libc, "mallinfo2", None) if libc is not None else None
    if fn is None:
        return None
    fn.restype = _MallInfo2
    info = fn()
    return int(info.fordblks)


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0


class MemoryTrimmer:
    """Trims once glibc holds more than `slack` bytes free (or, without mallinfo2, RSS has grown
    by `slack` since the last trim) and RSS has stopped growing."""

    def __init__(self, interval: float = 3.0, slack: int = 8 * 1024 * 1024) -> None:
        self.interval = interval
        self.slack = slack
        self.trims = 0

    def should_trim(self, floor: int, previous: int, current: int) -> bool:
        """Pure: grown past the slack, and not still climbing (a storm in progress)."""
        return current > floor + self.slack and current <= previous + self.slack // 4

    def should_trim_free(self, free: int, low: int, previous: int, current: int) -> bool:
        """Pure: more than `slack` bytes were freed since the lowest free level seen after the
        last trim (those pages may be resident again; a trim does not lower glibc's free count,
        it only hands the pages back), and RSS is not in the middle of a burst."""
        return free - low > self.slack and current <= previous + self.slack // 4

    async def run(self) -> None:
        floor = previous = rss_bytes()
        low = free_heap_bytes()
        while True:
            await asyncio.sleep(self.interval)
            current = rss_bytes()
            free = free_heap_bytes()
            if free is not None and low is not None:
                low = min(low, free)
                due = self.should_trim_free(free, low, previous, current)
            else:
                due = self.should_trim(floor, previous, current)
            if due:
                trim()   # on the loop: a short pause, and gc must run on the thread that owns the objects
                after = rss_bytes()
                self.trims += 1
                log.debug("memory trimmed: RSS %.1f MB → %.1f MB", current / 2**20, after / 2**20)
                current = after
                floor = after
                low = free_heap_bytes()
            elif current < floor:
                floor = current
            previous = current
