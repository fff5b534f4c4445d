"""Store CRUD, compare-and-swap, reads from memory, restarts and commit failures."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from minik.store.errors import AlreadyExists, Conflict, NotFound, Unavailable
from minik.store.store import Store
from minik.store.types import Obj

LEASES = "coordination.k8s.io/leases"


def make_obj(name: str, namespace: str = "default", **fields: Any) -> Obj:
    meta: dict[str, Any] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return {"metadata": meta, **fields}


def rv(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


async def test_create_get_update_delete(store: Store) -> None:
    created = await store.create("pods", make_obj("a", spec={"x": 1}))
    assert rv(created) == 1 and store.revision == 1
    assert store.get("pods", "default", "a") == created
    assert store.get("pods", "other", "a") is None

    with pytest.raises(AlreadyExists):
        await store.create("pods", make_obj("a"))

    updated = await store.update("pods", make_obj("a", spec={"x": 2}), expected_revision=1)
    assert rv(updated) == 2 and updated["spec"] == {"x": 2}
    with pytest.raises(Conflict):
        await store.update("pods", make_obj("a", spec={"x": 3}), expected_revision=1)
    with pytest.raises(NotFound):
        await store.update("pods", make_obj("missing"))

    with pytest.raises(Conflict):
        await store.delete("pods", "default", "a", expected_revision=1)
    deleted = await store.delete("pods", "default", "a", expected_revision=2)
    assert rv(deleted) == 3 and deleted["spec"] == {"x": 2}
    assert store.get("pods", "default", "a") is None
    with pytest.raises(NotFound):
        await store.delete("pods", "default", "a")
    # A failed check spends no revision.
    assert store.revision == 3


async def test_stored_object_is_a_copy(store: Store) -> None:
    obj = make_obj("a", spec={"items": [1]})
    stored = await store.create("pods", obj)
    obj["spec"]["items"].append(2)
    obj["metadata"]["name"] = "changed"
    assert stored["spec"] == {"items": [1]}
    assert store.get("pods", "default", "a") == stored
    assert "resourceVersion" not in obj["metadata"]


async def test_cluster_scoped_and_missing_name(store: Store) -> None:
    node = await store.create("nodes", make_obj("n1", namespace=""))
    assert store.get("nodes", "", "n1") == node
    with pytest.raises(ValueError):
        await store.create("pods", {"metadata": {}})
    with pytest.raises(TypeError):
        await store.create("pods", make_obj("bad", spec={"x": object()}))
    assert store.revision == 1


async def test_list_sorted_and_filtered(store: Store) -> None:
    for ns, name in [("b", "z"), ("a", "y"), ("b", "a"), ("a", "x")]:
        await store.create("pods", make_obj(name, ns))
    await store.create("services", make_obj("s", "a"))
    everything = store.list("pods")
    assert [(o["metadata"]["namespace"], o["metadata"]["name"]) for o in everything.items] == [
        ("a", "x"), ("a", "y"), ("b", "a"), ("b", "z"),
    ]
    assert everything.revision == store.revision == 5
    assert [o["metadata"]["name"] for o in store.list("pods", "b").items] == ["a", "z"]
    assert store.list("pods", "none").items == []
    assert store.list("nothing").items == []
    # The returned list is the caller's; the cache is unaffected.
    everything.items.clear()
    assert len(store.list("pods").items) == 4
    assert store.resources() == ["pods", "services"]
    await store.delete("services", "a", "s")
    assert store.resources() == ["pods"]
    await store.delete("pods", "a", "x")
    assert [o["metadata"]["name"] for o in store.list("pods", "a").items] == ["y"]


async def test_checks_see_queued_writes(store: Store) -> None:
    # Two creates of the same key submitted together: the second sees the first as pending.
    first, second = await asyncio.gather(
        store.create("pods", make_obj("a")),
        store.create("pods", make_obj("a")),
        return_exceptions=True,
    )
    assert isinstance(first, dict) and rv(first) == 1
    assert isinstance(second, AlreadyExists)
    # create → update(CAS on the pending create) → delete → create, all in flight at once.
    in_flight = await asyncio.gather(
        store.create("pods", make_obj("b", v=1)),
        store.update("pods", make_obj("b", v=2), expected_revision=2),
        store.delete("pods", "default", "b", expected_revision=3),
        store.create("pods", make_obj("b", v=4)),
    )
    assert [rv(r) for r in in_flight] == [2, 3, 4, 5]
    assert store.get("pods", "default", "b") == {
        "metadata": {"name": "b", "namespace": "default", "resourceVersion": "5"}, "v": 4,
    }


async def test_checks_see_queued_writes_failures(store: Store) -> None:
    results = await asyncio.gather(
        store.create("pods", make_obj("b")),
        store.delete("pods", "default", "b"),
        store.update("pods", make_obj("b")),
        return_exceptions=True,
    )
    assert isinstance(results[2], NotFound)
    assert store.get("pods", "default", "b") is None


async def test_group_commit_batches(store: Store) -> None:
    async def writer(i: int) -> None:
        for j in range(40):
            await store.create("pods", make_obj(f"p-{i}-{j}"))

    await asyncio.gather(*(writer(i) for i in range(8)))
    stats = store.stats()
    assert stats["writes"] == stats["rows"] == 320
    # 8 writers each waiting for their ack: batches hold several writes each.
    assert stats["commits"] < 320 / 3, stats
    assert store.revision == 320 and len(store.list("pods").items) == 320


async def test_revision_monotonic_across_restart(db_path: str) -> None:
    s = Store(db_path, history=1)
    await s.start()
    await s.create("pods", make_obj("a"))
    await s.create("pods", make_obj("b"))
    await s.delete("pods", "default", "b")
    await s.update("pods", make_obj("a", v=1))
    await s.delete("pods", "default", "a")
    assert s.revision == 5
    # Compaction drops the tombstones holding the newest revisions.
    await s.compact()
    await s.close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM log").fetchone() == (1,)  # a's tombstone at 5
    conn.close()

    s = Store(db_path)
    await s.start()
    assert s.revision == 5 and s.list("pods").items == []
    again = await s.create("pods", make_obj("a"))
    assert rv(again) == 6
    await s.close()


async def test_restart_reloads_current_state(db_path: str) -> None:
    s = Store(db_path)
    await s.start()
    await s.create("pods", make_obj("a", v=1))
    await s.update("pods", make_obj("a", v=2))
    await s.create("pods", make_obj("b"))
    await s.delete("pods", "default", "b")
    await s.create("apps/deployments", make_obj("d", "ns"))
    before = {r: s.list(r).items for r in s.resources()}
    await s.close()

    s = Store(db_path)
    await s.start()
    assert {r: s.list(r).items for r in s.resources()} == before
    assert s.get("pods", "default", "a") == {
        "metadata": {"name": "a", "namespace": "default", "resourceVersion": "2"}, "v": 2,
    }
    assert s.revision == 5
    await s.close()


async def test_volatile_never_hits_disk_and_keeps_revisions(db_path: str) -> None:
    s = Store(db_path, volatile=frozenset({LEASES}))
    await s.start()
    await s.create("pods", make_obj("p"))
    lease = await s.create(LEASES, make_obj("node-1", "kube-node-lease"))
    for i in range(50):
        lease = await s.update(LEASES, make_obj("node-1", "kube-node-lease", renew=i))
    assert s.get(LEASES, "kube-node-lease", "node-1") == lease
    assert rv(lease) == s.revision == 52
    # The revision floor for memory-only changes is reserved once at start; renewals add nothing.
    stats = s.stats()
    assert stats["rows"] == 1 and stats["commits"] == 1, stats
    await s.close()

    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT DISTINCT resource FROM log").fetchall() == [("pods",)]
    conn.close()

    s = Store(db_path, volatile=frozenset({LEASES}))
    await s.start()
    # Leases are gone after a restart, but revisions never go back below what was handed out.
    assert s.get(LEASES, "kube-node-lease", "node-1") is None
    assert s.revision >= 52
    await s.close()


async def test_idle_store_writes_nothing(db_path: str) -> None:
    s = Store(db_path, compact_interval=0.01)
    await s.start()
    await s.create("pods", make_obj("a"))
    await asyncio.sleep(0.1)  # maintenance runs: checkpoint once, then nothing to do
    commits = s.stats()["commits"]
    size = s.stats()["db_bytes"]
    await asyncio.sleep(0.2)
    assert s.stats()["commits"] == commits and s.stats()["db_bytes"] == size
    await s.close()


async def test_commit_failure_leaves_nothing_half_written(
    store: Store, db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    await store.create("pods", make_obj("keep", v=1))
    watch = store.watch("pods")

    def broken(rows: object, floor: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store._db, "_append_sync", broken)
    results = await asyncio.gather(
        store.create("pods", make_obj("new")),
        store.update("pods", make_obj("keep", v=2)),
        store.delete("pods", "default", "keep"),
        return_exceptions=True,
    )
    assert all(isinstance(r, Unavailable) for r in results), results
    assert store.revision == 1
    assert store.get("pods", "default", "new") is None
    assert store.get("pods", "default", "keep") == {
        "metadata": {"name": "keep", "namespace": "default", "resourceVersion": "1"}, "v": 1,
    }
    assert store.stats()["failures"] == 1

    monkeypatch.undo()
    # The pending overlay was discarded: the same writes now pass their checks again.
    created = await store.create("pods", make_obj("new"))
    assert store.get("pods", "default", "new") == created
    event = await asyncio.wait_for(watch.__anext__(), 1)
    assert event.type == "ADDED" and event.name == "new" and event.revision == rv(created)
    watch.close()

    conn = sqlite3.connect(db_path)
    names = [r[0] for r in conn.execute("SELECT name FROM log ORDER BY revision")]
    conn.close()
    assert names == ["keep", "new"]


async def test_closed_store_is_unavailable(db_path: str) -> None:
    s = Store(db_path)
    with pytest.raises(Unavailable):
        await s.create("pods", make_obj("a"))
    await s.start()
    pending = [asyncio.ensure_future(s.create("pods", make_obj(f"p{i}"))) for i in range(20)]
    await asyncio.sleep(0)
    await s.close()  # drains queued writes before stopping
    assert all(rv(p.result()) > 0 for p in pending)
    with pytest.raises(Unavailable):
        await s.create("pods", make_obj("late"))
    s = Store(db_path)
    await s.start()
    assert len(s.list("pods").items) == 20
    await s.close()
