"""Controller workers: success forgets, failures requeue with back-off, a returned delay requeues later."""

from __future__ import annotations

import asyncio

from minik.client import ClientError
from minik.machinery.controller import Controller, controller_ref, owner_reference
from minik.machinery.workqueue import WorkQueue


async def test_worker_retries_failures_and_honours_delays() -> None:
    q = WorkQueue(base_delay=0.001)
    calls: list[str] = []

    async def sync(key: str) -> float | None:
        calls.append(key)
        if key == "conflict" and calls.count(key) < 3:
            raise ClientError(409, "Conflict", "stale")
        if key == "boom" and calls.count(key) < 2:
            raise RuntimeError("bug")
        if key == "later" and calls.count(key) == 1:
            return 0.01
        return None

    ctl = Controller("test", q, sync, [], workers=2)
    task = asyncio.create_task(ctl.run())
    for k in ("conflict", "boom", "later"):
        q.add(k)
    for _ in range(100):
        if calls.count("conflict") == 3 and calls.count("boom") == 2 and calls.count("later") == 2:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert (calls.count("conflict"), calls.count("boom"), calls.count("later")) == (3, 2, 2)
    assert q.failures("conflict") == 0  # forgotten after the successful sync


def test_owner_reference_round_trip() -> None:
    owner = {"metadata": {"name": "web", "uid": "u1"}}
    ref = owner_reference(owner, "apps/v1", "Deployment")
    assert ref == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "u1",
                   "controller": True, "blockOwnerDeletion": True}
    assert controller_ref({"metadata": {"ownerReferences": [{"uid": "x"}, ref]}}) == ref
    assert controller_ref({"metadata": {}}) is None
