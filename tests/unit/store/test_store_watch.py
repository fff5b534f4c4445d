"""Watch from memory: replay and resume, filters, Expired, slow watchers, closing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from minik.store.errors import AlreadyExists, Expired
from minik.store.store import Store
from minik.store.types import Event, Obj
from minik.store.watch import Watch, WatchOverflow


def make_obj(name: str, namespace: str = "default", **fields: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": namespace}, **fields}


async def take(watch: Watch, n: int) -> list[Event]:
    return [await asyncio.wait_for(watch.__anext__(), 1) for _ in range(n)]


async def assert_nothing_pending(watch: Watch) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(watch.__anext__(), 0.05)


async def test_live_events_with_prev_object(store: Store) -> None:
    watch = store.watch("pods")
    a = await store.create("pods", make_obj("a", v=1))
    b = await store.update("pods", make_obj("a", v=2))
    c = await store.delete("pods", "default", "a")
    events = await take(watch, 3)
    assert [(e.type, e.revision) for e in events] == [("ADDED", 1), ("MODIFIED", 2), ("DELETED", 3)]
    assert events[0].object == a and events[0].prev_object is None
    assert events[1].object == b and events[1].prev_object == a
    assert events[2].object == c and events[2].prev_object == b
    assert c["metadata"]["resourceVersion"] == "3" and c["v"] == 2
    watch.close()


async def test_resume_from_revision_and_filters(store: Store) -> None:
    await store.create("pods", make_obj("a", "ns1"))             # 1
    await store.create("pods", make_obj("b", "ns2"))             # 2
    await store.create("services", make_obj("s", "ns1"))         # 3
    await store.update("pods", make_obj("a", "ns1", v=1))        # 4

    everything = store.watch(None, since=0)
    assert [e.revision for e in await take(everything, 4)] == [1, 2, 3, 4]
    pods_ns1 = store.watch("pods", "ns1", since=1)
    assert [e.revision for e in await take(pods_ns1, 1)] == [4]
    ns1 = store.watch(None, "ns1", since=0)
    assert [e.revision for e in await take(ns1, 3)] == [1, 3, 4]

    # since == current revision: only future events.
    now = store.watch("pods", since=store.revision)
    await store.create("pods", make_obj("c", "ns2"))             # 5
    await store.create("pods", make_obj("d", "ns1"))             # 6
    assert [e.revision for e in await take(now, 2)] == [5, 6]
    assert [e.revision for e in await take(pods_ns1, 1)] == [6]
    await assert_nothing_pending(pods_ns1)
    assert now.revision == 6
    for w in (everything, pods_ns1, ns1, now):
        w.close()
    assert store.stats()["watchers"] == 0


async def test_expired_when_history_is_gone(db_path: str) -> None:
    s = Store(db_path, history=3)
    await s.start()
    for i in range(6):
        await s.create("pods", make_obj(f"p{i}"))
    # The ring holds revisions 4..6: resuming after 3 works, after 2 would miss 3.
    w = s.watch("pods", since=3)
    assert [e.revision for e in await take(w, 3)] == [4, 5, 6]
    w.close()
    with pytest.raises(Expired) as info:
        s.watch("pods", since=2)
    assert info.value.requested == 2 and info.value.oldest == 3
    await s.close()

    # After a restart nothing older than the start revision can be replayed.
    s = Store(db_path, history=3)
    await s.start()
    with pytest.raises(Expired):
        s.watch("pods", since=5)
    w = s.watch("pods", since=6)
    await s.create("pods", make_obj("after"))
    assert [e.revision for e in await take(w, 1)] == [7]
    await s.close()


async def test_compaction_bounds_watch_history(db_path: str) -> None:
    s = Store(db_path, history=2)
    await s.start()
    for i in range(5):
        await s.update("pods", make_obj("x", v=i)) if i else await s.create("pods", make_obj("x"))
    s.watch("pods", since=3).close()
    await s.compact()  # compact revision = 5 - 2 = 3
    with pytest.raises(Expired):
        s.watch("pods", since=2)
    s.watch("pods", since=3).close()
    await s.close()


async def test_slow_watcher_is_closed_with_overflow(db_path: str) -> None:
    s = Store(db_path, watch_queue_size=5)
    await s.start()
    slow = s.watch("pods")
    fast = s.watch("pods")
    for i in range(10):
        await s.create("pods", make_obj(f"p{i}"))
        await take(fast, 1)
    with pytest.raises(WatchOverflow) as info:
        await slow.__anext__()
    assert isinstance(info.value, Expired)  # the API maps it to 410 like any Expired
    assert slow.closed and s.stats()["watchers"] == 1
    fast.close()
    await s.close()


async def test_close_ends_iteration_and_does_not_leak(store: Store) -> None:
    received: list[int] = []

    async def consume(w: Watch) -> None:
        async for event in w:
            received.append(event.revision)

    async with store.watch("pods") as w:
        task = asyncio.create_task(consume(w))
        await store.create("pods", make_obj("a"))
        await asyncio.sleep(0.01)
        w.close()
        await asyncio.wait_for(task, 1)
    w.close()  # idempotent
    assert received == [1]
    assert store.stats()["watchers"] == 0

    # Closing the store ends every open watch.
    w2 = store.watch(None)
    task = asyncio.create_task(consume(w2))
    await asyncio.sleep(0)
    await store.close()
    await asyncio.wait_for(task, 1)


async def test_readers_see_only_committed_writes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = store.watch("pods")
    entered, release = threading.Event(), threading.Event()
    real_append = store._db._append_sync

    def slow_append(rows: Any, floor: Any) -> None:
        entered.set()
        release.wait(5)
        real_append(rows, floor)

    monkeypatch.setattr(store._db, "_append_sync", slow_append)
    pending = asyncio.ensure_future(store.create("pods", make_obj("a")))
    await asyncio.to_thread(entered.wait, 5)
    # The commit is in flight: readers still see the old state, and checks see the new one.
    assert store.get("pods", "default", "a") is None
    assert store.list("pods").items == [] and store.revision == 0
    await assert_nothing_pending(watch)
    with pytest.raises(AlreadyExists):
        await store.create("pods", make_obj("a"))
    release.set()
    created = await pending
    assert store.get("pods", "default", "a") is created and store.revision == 1
    assert (await take(watch, 1))[0].object is created
    watch.close()


async def test_fan_out_wakes_waiting_watchers_in_slices_and_next_times_out(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Hundreds of waiting watchers are woken a slice per loop iteration (so requests get the loop
    in between), every one still gets the event; `next(timeout)` returns None on timeout."""
    import asyncio

    from minik.store.store import Store
    from minik.store.watch import WAKE_SLICE

    store = Store(str(tmp_path / "db" / "state.db"))
    await store.start()
    try:
        watches = [store.watch("configmaps") for _ in range(10 * WAKE_SLICE)]
        assert await watches[0].next(0.01) is None
        woken: list[int] = []

        async def wait(i: int) -> None:
            ev = await watches[i].next(30)
            assert ev is not None and ev.name == "a"
            woken.append(i)

        tasks = [asyncio.create_task(wait(i)) for i in range(len(watches))]
        await asyncio.sleep(0)
        await store.create("configmaps", {"metadata": {"name": "a", "namespace": "ns"}})
        # Right after the commit is published, at most one slice has run.
        assert len(woken) <= WAKE_SLICE
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        assert sorted(woken) == list(range(len(watches)))
        assert store.stats()["watchers"] == len(watches)
        for w in watches:
            w.close()
        assert store.stats()["watchers"] == 0
    finally:
        await store.close()
