"""Event-loop latency probe: a diagnostic for tail latency (off unless `--loop-probe SECONDS`).

Everything in the daemon shares one event loop, so a query to cluster DNS (or any API request)
waits for whatever callback runs when it arrives. The probe says what those waits are, in one
log line (`minik.loopprobe`) every `interval` seconds:
- loop lag: a timer asks to wake every `tick` seconds; how late it runs (p50/p99/max) is what a
  ready socket waits before its reader runs;
- slow callbacks: every callback (a task step, a reader, a timer) is timed; those over `slow`
  seconds are counted and the slowest named (for a task step, the task's name: supervised tasks
  are named after their component), each with the CPU time the thread spent in it: wall time far
  above CPU time means the kernel ran someone else (a busy machine), not that our code was slow;
- garbage collection: `gc.callbacks` times each collection per generation (count, total, max).
Timing every callback costs a few percent of CPU and the timer wakes the loop 1/tick times a
second, so this is for benchmarks and investigations, never on by default.
`LagStats` is pure (percentiles over samples) and unit-tested.
Neighbours: started by `minik.daemon._start_loop_probe`; read by `bench/dns.py --probe`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("minik.loopprobe")


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, nearest rank; 0.0 for none."""
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


@dataclass(slots=True)
class LagStats:
    """What one interval saw. Mutable on purpose: the probe fills one and swaps it for a new one."""
    lags: list[float] = field(default_factory=list)
    slow: int = 0
    slow_cpu: float = 0.0                                              # CPU seconds in slow callbacks
    slowest: list[tuple[float, float, str]] = field(default_factory=list)   # (wall s, CPU s, what), at most `keep`
    gc_count: list[int] = field(default_factory=lambda: [0, 0, 0])
    gc_total: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    gc_max: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    keep: int = 3

    def add_slow(self, seconds: float, cpu: float, what: str) -> None:
        self.slow += 1
        self.slow_cpu += cpu
        if len(self.slowest) < self.keep or seconds > self.slowest[-1][0]:
            self.slowest.append((seconds, cpu, what))
            self.slowest.sort(reverse=True)
            del self.slowest[self.keep:]

    def add_gc(self, generation: int, seconds: float) -> None:
        g = min(max(generation, 0), 2)
        self.gc_count[g] += 1
        self.gc_total[g] += seconds
        self.gc_max[g] = max(self.gc_max[g], seconds)

    def summary(self) -> str:
        lags = sorted(self.lags)
        ms = 1000.0
        slowest = ", ".join(f"{what} {s * ms:.1f}ms (cpu {c * ms:.1f})" for s, c, what in self.slowest) or "-"
        gcs = " ".join(f"gen{g}={self.gc_count[g]}/{self.gc_total[g] * ms:.1f}ms/max{self.gc_max[g] * ms:.1f}ms"
                       for g in range(3))
        return (f"lag p50={percentile(lags, 0.5) * ms:.2f}ms p99={percentile(lags, 0.99) * ms:.2f}ms "
                f"max={(lags[-1] if lags else 0.0) * ms:.2f}ms samples={len(lags)}; slow callbacks={self.slow} "
                f"cpu={self.slow_cpu * ms:.1f}ms "
                f"[{slowest}]; gc {gcs}")


def _describe(handle: asyncio.Handle) -> str:
    cb: Any = getattr(handle, "_callback", None)
    owner = getattr(cb, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro: Any = owner.get_coro()
        return f"task {owner.get_name()} ({getattr(coro, '__qualname__', '?')})"
    name = getattr(cb, "__qualname__", None) or repr(cb)[:80]
    protocol = getattr(owner, "_protocol", None)   # a transport: say whose data it is reading
    if protocol is not None:
        inner = getattr(protocol, "_app_protocol", None)   # under TLS: the protocol TLS feeds
        name += f" ({type(protocol).__name__}{'/' + type(inner).__name__ if inner is not None else ''})"
    return name


class LoopProbe:
    def __init__(self, interval: float, tick: float = 0.001, slow: float = 0.001,
                 ready: Callable[[], bool] = lambda: True) -> None:
        self.interval, self.tick, self.slow, self.ready = interval, tick, slow, ready
        self.measured = False
        self.stats = LagStats()
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.stats.add_gc(info.get("generation", 2), time.perf_counter() - self._gc_start)

    def _measure_full_collection(self) -> None:
        """Once, when the daemon is ready: what one full collection costs in this heap (the pause
        an automatic gen-2 collection would cause), and how much of the heap is frozen."""
        self.measured = True
        t0 = time.perf_counter()
        gc.collect()
        spent = time.perf_counter() - t0
        log.info("loop probe: full collection %.1fms over %d tracked objects (%d frozen, not scanned)",
                 spent * 1000, len(gc.get_objects()), gc.get_freeze_count())
        self.stats = LagStats()

    async def run(self) -> None:
        """Sample until cancelled; the callback timer and the gc hook are removed on the way out."""
        original = asyncio.Handle._run
        probe, clock, cpu_clock, slow = self, time.perf_counter, time.thread_time, self.slow

        def timed_run(handle: asyncio.Handle) -> None:
            t0, c0 = clock(), cpu_clock()
            original(handle)
            spent = clock() - t0
            if spent > slow:
                probe.stats.add_slow(spent, cpu_clock() - c0, _describe(handle))

        setattr(asyncio.Handle, "_run", timed_run)   # undone in `finally`
        gc.callbacks.append(self._on_gc)
        log.info("loop probe on: a line every %.1fs (tick %.1fms, slow callbacks over %.1fms)",
                 self.interval, self.tick * 1000, self.slow * 1000)
        try:
            report_at = clock() + self.interval
            while True:
                due = clock() + self.tick
                await asyncio.sleep(self.tick)
                now = clock()
                self.stats.lags.append(max(0.0, now - due))
                if now >= report_at:
                    stats, self.stats = self.stats, LagStats()
                    log.info("loop probe: %s", stats.summary())
                    if not self.measured and self.ready():
                        self._measure_full_collection()
                    report_at = clock() + self.interval
        finally:
            setattr(asyncio.Handle, "_run", original)
            if self._on_gc in gc.callbacks:
                gc.callbacks.remove(self._on_gc)
