"""Supervisor: named tasks, restart with back-off after a failure, join/stop, reuse after stop."""

from __future__ import annotations

import asyncio

import pytest

from minik.machinery.tasks import Supervisor


async def test_failure_restarts_and_quiet_return_resets() -> None:
    sup = Supervisor(max_backoff=0.01)
    calls: list[str] = []

    async def flaky() -> None:
        calls.append("flaky")
        if len(calls) < 3:
            raise RuntimeError("boom")
        await asyncio.Event().wait()

    task = sup.spawn("flaky", flaky)
    assert task.get_name() == "flaky" and sup.names() == ["flaky"]
    with pytest.raises(ValueError):
        sup.spawn("flaky", flaky)
    for _ in range(400):
        if len(calls) >= 3:
            break
        await asyncio.sleep(0.01)
    assert len(calls) == 3
    await sup.stop()
    assert sup.names() == [] and task.done()
    # Reusable after stop (a component restarted by its parent spawns its loops again).
    sup.spawn("again", flaky)
    assert sup.names() == ["again"]
    await sup.stop()


async def test_join_returns_when_one_shot_tasks_finish() -> None:
    sup = Supervisor()
    done: list[int] = []

    async def once() -> None:
        done.append(1)

    sup.spawn("a", once, restart=False)
    sup.spawn("b", once, restart=False)
    await asyncio.wait_for(sup.join(), 1)
    assert done == [1, 1]
