"""WorkQueue: dedup, one worker per key, rate-limited and delayed requeue."""

from __future__ import annotations

import asyncio

import pytest

from minik.machinery.workqueue import ShutDown, WorkQueue


async def test_add_deduplicates_waiting_keys() -> None:
    q = WorkQueue()
    for k in ("a", "b", "a", "a"):
        q.add(k)
    assert len(q) == 2
    assert await q.get() == "a"
    assert await q.get() == "b"


async def test_key_added_while_processing_is_requeued_on_done() -> None:
    q = WorkQueue()
    q.add("a")
    key = await q.get()
    q.add("a")
    assert len(q) == 0  # never handed to a second worker while the first holds it
    q.done(key)
    assert len(q) == 1 and await q.get() == "a"


async def test_get_waits_for_add() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.add("x")
    assert await asyncio.wait_for(waiter, 1) == "x"


@pytest.mark.parametrize(("failures", "delay"), [(0, 0.005), (1, 0.01), (3, 0.04), (20, 60.0)])
async def test_backoff_grows_exponentially_and_caps(failures: int, delay: float) -> None:
    q = WorkQueue(base_delay=0.005, max_delay=60.0)
    for _ in range(failures):
        q.add_rate_limited("k")
    assert q.backoff("k") == pytest.approx(delay)
    q.shutdown()


async def test_forget_resets_backoff() -> None:
    q = WorkQueue()
    q.add_rate_limited("k")
    q.add_rate_limited("k")
    q.forget("k")
    assert q.failures("k") == 0 and q.backoff("k") == q.base_delay
    q.shutdown()


async def test_add_after_keeps_the_earliest_timer() -> None:
    q = WorkQueue()
    q.add_after("k", 5.0)
    q.add_after("k", 0.01)
    assert await asyncio.wait_for(q.get(), 1) == "k"
    q.shutdown()


async def test_shutdown_releases_waiters() -> None:
    q = WorkQueue()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.shutdown()
    with pytest.raises(ShutDown):
        await asyncio.wait_for(waiter, 1)
