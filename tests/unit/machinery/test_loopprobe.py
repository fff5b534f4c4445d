"""Loop probe: percentiles and the slowest callbacks kept; a blocking task step is named with its
CPU time, GC pauses are counted per generation, and the loop is left as it was when cancelled."""

from __future__ import annotations

import asyncio
import gc
import logging
import time

import pytest

from minik.machinery.loopprobe import LagStats, LoopProbe, percentile


def test_percentile_nearest_rank() -> None:
    values = [i / 1000 for i in range(1, 101)]
    assert percentile(values, 0.5) == 0.051
    assert percentile(values, 0.99) == 0.1
    assert percentile([], 0.99) == 0.0


def test_slowest_kept_in_order_and_gc_per_generation() -> None:
    s = LagStats(keep=2)
    s.add_slow(0.002, 0.002, "a")
    s.add_slow(0.005, 0.001, "b")
    s.add_slow(0.001, 0.001, "c")
    s.add_slow(0.004, 0.004, "d")
    assert [w for _, _, w in s.slowest] == ["b", "d"]
    assert s.slow == 4 and s.slow_cpu == pytest.approx(0.008)
    s.add_gc(2, 0.030)
    s.add_gc(2, 0.010)
    s.add_gc(0, 0.001)
    assert s.gc_count == [1, 0, 2] and s.gc_max[2] == 0.030
    s.lags.extend([0.0001, 0.0002, 0.0100])
    line = s.summary()
    assert "max=10.00ms" in line and "b 5.0ms (cpu 1.0)" in line and "gen2=2/40.0ms/max30.0ms" in line


async def test_blocking_step_named_and_loop_restored(caplog: pytest.LogCaptureFixture) -> None:
    original = asyncio.Handle._run
    ready = False
    probe = LoopProbe(interval=0.05, tick=0.001, slow=0.005, ready=lambda: ready)
    caplog.set_level(logging.INFO, logger="minik.loopprobe")
    task = asyncio.create_task(probe.run(), name="probe")
    await asyncio.sleep(0.01)
    probe.interval = 60.0   # after the first report (due at 0.05 s), none (new stats) for a minute
    for _ in range(500):
        if any("loop probe: lag" in r.getMessage() for r in caplog.records):
            break
        await asyncio.sleep(0.01)

    async def hog() -> None:
        end = time.thread_time() + 0.03
        while time.thread_time() < end:   # 30 ms of CPU on the loop
            pass

    await asyncio.create_task(hog(), name="hog")
    await asyncio.sleep(0.01)
    stats = probe.stats
    named = [(wall, cpu) for wall, cpu, what in stats.slowest if what.startswith("task hog")]
    assert named and named[0][1] >= 0.025
    assert max(stats.lags) >= 0.02   # the timer waited behind the hog
    gc.collect(0)
    assert probe.stats.gc_count[0] >= 1
    assert not probe.measured   # not ready: no full collection measured yet
    ready = True
    probe._measure_full_collection()
    assert any("full collection" in r.getMessage() for r in caplog.records)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert asyncio.Handle._run is original
    assert probe._on_gc not in gc.callbacks
