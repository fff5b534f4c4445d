"""The store's public interface: revisioned JSON objects with get/list/watch from memory.

Role: `Store` is what `minik.api` handlers and in-process clients call. Writes are checked and
given their revision synchronously on the event loop against the committed state plus a
"pending" overlay of writes queued or in flight, then committed by the group-commit writer
(`minik.store.writer`) through the SQL adapter (`minik.store.db`). Only after the commit are they
applied to the read cache (`minik.store.cache`) and published to the watch hub
(`minik.store.watch`), in revision order, so readers never see a write that could still fail.

Revisions: one global counter; every write (including to volatile resources) takes the next one
and stamps it as `metadata.resourceVersion` on the stored copy. Objects handed out are shared
with the cache and must be treated as read-only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

from minik.apis.size import MAX_OBJECT_BYTES
from minik.store.cache import ObjectCache
from minik.store.codec import decode
from minik.store.db import Database, LogRow, ReencryptResult
from minik.store.encryption import Transformer
from minik.store.errors import AlreadyExists, Conflict, NotFound, TooLarge, Unavailable
from minik.store.types import Event, EventType, ListResult, Obj
from minik.store.watch import Watch, WatchHub
from minik.store.writer import VOLATILE_RESERVE, GroupCommitWriter, PendingWrite

logger = logging.getLogger("minik.store")

_Key = tuple[str, str, str]  # (resource, namespace, name)


def _identity(obj: Obj) -> tuple[str, str]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or not meta.get("name"):
        raise ValueError("object has no metadata.name")
    return str(meta.get("namespace") or ""), str(meta["name"])


def _revision_of(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _stamp(obj: Obj, revision: int, *, deep: bool) -> tuple[str, Obj]:
    """JSON text and a private copy of `obj` with resourceVersion = revision.

    deep=True for callers' objects (they may mutate theirs afterwards; the JSON round trip is
    both the deep copy and the check that it is serialisable, before a revision is spent).
    deep=False for objects already owned by the cache, which are immutable by contract.
    """
    top = dict(obj)
    meta = dict(top["metadata"])
    meta["resourceVersion"] = str(revision)
    top["metadata"] = meta
    text = json.dumps(top, separators=(",", ":"), ensure_ascii=False)
    return text, (decode(text) if deep else top)


class Store:
    """Revisioned object store over SQLite (see module docstring)."""

    def __init__(
        self,
        path: str,
        *,
        volatile: frozenset[str] = frozenset(),
        history: int = 10000,
        compact_interval: float = 300.0,
        watch_queue_size: int = 1000,
        batch_cap: int = 256,
        transformer: Transformer | None = None,
    ) -> None:
        self._db = Database(path, transformer)
        self._transformer = transformer
        self._volatile = volatile
        self._history = history
        self._compact_interval = compact_interval
        self._watch_queue_size = watch_queue_size
        self._batch_cap = batch_cap
        self._cache = ObjectCache()
        # Writes checked and queued but not yet committed: key → (revision, object or None for
        # a pending delete). Create/update/delete check against this first, in submission order.
        self._pending: dict[_Key, tuple[int, Obj | None]] = {}
        self._revision = 0        # latest committed (published) revision
        self._next_revision = 0   # latest assigned revision (>= _revision)
        self._compact_revision = 0
        self._rows_since_compact = 0
        self._compactions = 0
        self._compacted_rows = 0
        self._hub: WatchHub | None = None
        self._writer: GroupCommitWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._compact_lock = asyncio.Lock()
        self._open = False

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        loaded = await self._db.open()
        for live in loaded.objects:
            self._cache.put(live.resource, live.namespace, live.name, live.object)
        self._revision = self._next_revision = loaded.revision
        self._compact_revision = loaded.compact_revision
        # Rows beyond one per live key are garbage from before the last compaction: let the
        # first maintenance run take them even if nothing is written in this process.
        self._rows_since_compact = loaded.total_rows - len(loaded.objects)
        self._hub = WatchHub(
            history=self._history,
            queue_size=self._watch_queue_size,
            start_revision=loaded.revision,
        )
        self._writer = GroupCommitWriter(
            self._db,
            durable_revision=loaded.revision,
            publish=self._publish,
            on_failure=self._pending.clear,
            batch_cap=self._batch_cap,
        )
        if self._volatile and loaded.revision - loaded.newest_row < VOLATILE_RESERVE // 2:
            # Reserve revisions for memory-only writes now, at start, so the first Lease renewal
            # of an idle cluster does not have to write the floor (idle writes nothing).
            floor = loaded.revision + VOLATILE_RESERVE
            await self._db.append([], floor)
            self._writer.note_durable(floor)
        self._open = True
        self._tasks = [
            self._spawn(self._writer.run(), "minik-store-writer"),
            self._spawn(self._maintain(), "minik-store-maintenance"),
        ]
        logger.info(
            "store %s opened at revision %d with %d objects (%d rows)",
            self._db.path, loaded.revision, len(loaded.objects), loaded.total_rows,
        )

    async def close(self) -> None:
        if not self._open:
            return
        self._open = False
        writer_task, maintenance_task = self._tasks
        assert self._writer is not None and self._hub is not None
        maintenance_task.cancel()
        await self._writer.close()
        await asyncio.gather(writer_task, maintenance_task, return_exceptions=True)
        self._tasks = []
        self._hub.close_all()
        try:
            await self._db.close()  # checkpoints the WAL, disposes the engine
        except Exception:
            logger.exception("closing the store database failed")
        logger.info("store %s closed at revision %d", self._db.path, self._revision)

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        return task

    @staticmethod
    def _task_done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    # ---- reads (memory only) ----------------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """Open, and the writer that commits every write is still running."""
        return self._open and bool(self._tasks) and not self._tasks[0].done()

    @property
    def revision(self) -> int:
        return self._revision

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return self._cache.get(resource, namespace, name)

    def resources(self) -> list[str]:
        return self._cache.resources()

    def list(self, resource: str, namespace: str | None = None) -> ListResult:
        return ListResult(items=self._cache.list(resource, namespace), revision=self._revision)

    def watch(
        self, resource: str | None, namespace: str | None = None, since: int | None = None
    ) -> Watch:
        """Events with revision > since (None: from now). Raises Expired if since is too old."""
        if not self._open or self._hub is None:
            raise Unavailable("store is not open")
        return self._hub.watch(resource, namespace, self._revision if since is None else since)

    def stats(self) -> dict[str, int]:
        w = self._writer.stats if self._writer is not None else None
        return {
            "revision": self._revision,
            "objects": len(self._cache),
            "commits": w.commits if w else 0,
            "batches": w.batches if w else 0,
            "rows": w.rows if w else 0,
            "writes": w.writes if w else 0,
            "failures": w.failures if w else 0,
            "queued": self._writer.queued if self._writer else 0,
            "watchers": self._hub.watchers if self._hub else 0,
            "compact_revision": self._compact_revision,
            "compactions": self._compactions,
            "compacted_rows": self._compacted_rows,
            "db_bytes": self._db.size_on_disk(),
        }

    # ---- writes -----------------------------------------------------------------------------

    async def create(self, resource: str, obj: Obj) -> Obj:
        namespace, name = _identity(obj)
        if self._current(resource, namespace, name) is not None:
            raise AlreadyExists(resource, namespace, name)
        return await self._submit("ADDED", resource, namespace, name, obj, None)

    async def update(
        self, resource: str, obj: Obj, *, expected_revision: int | None = None
    ) -> Obj:
        """Replace the object; expected_revision (if given) must be its current revision.

        The resourceVersion inside `obj` is not looked at: the API layer decides whether an
        update is conditional and passes it as expected_revision.
        """
        namespace, name = _identity(obj)
        current = self._current(resource, namespace, name)
        if current is None:
            raise NotFound(resource, namespace, name)
        if expected_revision is not None and _revision_of(current) != expected_revision:
            raise Conflict(resource, namespace, name)
        return await self._submit("MODIFIED", resource, namespace, name, obj, current)

    async def delete(
        self, resource: str, namespace: str, name: str, *, expected_revision: int | None = None
    ) -> Obj:
        """Write a tombstone; returns the last state with resourceVersion = the delete's revision."""
        current = self._current(resource, namespace, name)
        if current is None:
            raise NotFound(resource, namespace, name)
        if expected_revision is not None and _revision_of(current) != expected_revision:
            raise Conflict(resource, namespace, name)
        return await self._submit("DELETED", resource, namespace, name, current, current)

    def _current(self, resource: str, namespace: str, name: str) -> Obj | None:
        pending = self._pending.get((resource, namespace, name))
        if pending is not None:
            return pending[1]
        return self._cache.get(resource, namespace, name)

    def _submit(
        self,
        kind: EventType,
        resource: str,
        namespace: str,
        name: str,
        obj: Obj,
        prev: Obj | None,
    ) -> asyncio.Future[Obj]:
        # Everything up to enqueueing runs without awaiting, so the check done by the caller and
        # the revision assigned here are atomic with respect to other writers on the loop.
        if not self._open or self._writer is None:
            raise Unavailable("store is not open")
        revision = self._next_revision + 1
        text, stored = _stamp(obj, revision, deep=kind != "DELETED")
        if kind != "DELETED" and len(text) > MAX_OBJECT_BYTES // 4:
            size = len(text.encode("utf-8", "surrogatepass"))
            if size > MAX_OBJECT_BYTES:
                # etcd's request limit, which Kubernetes objects live under: counted on the
                # encoded object, so 150,000 empty keys are as large as their text.
                raise TooLarge(resource, namespace, name, size, MAX_OBJECT_BYTES)
        self._next_revision = revision
        durable = resource not in self._volatile
        row = (
            LogRow(
                revision=revision,
                resource=resource,
                namespace=namespace,
                name=name,
                created=kind == "ADDED",
                deleted=kind == "DELETED",
                prev_revision=0 if prev is None else _revision_of(prev),
                value=text,
            )
            if durable
            else None
        )
        event = Event(kind, resource, namespace, name, revision, stored, prev)
        future: asyncio.Future[Obj] = asyncio.get_running_loop().create_future()
        self._writer.submit(PendingWrite(event, row, future))
        self._pending[(resource, namespace, name)] = (
            revision, None if kind == "DELETED" else stored
        )
        return future

    def _publish(self, batch: Sequence[PendingWrite]) -> None:
        """Apply a committed batch to the cache and the watch hub, in revision order."""
        assert self._hub is not None
        for w in batch:
            e = w.event
            key = (e.resource, e.namespace, e.name)
            if e.type == "DELETED":
                self._cache.remove(e.resource, e.namespace, e.name)
            else:
                self._cache.put(e.resource, e.namespace, e.name, e.object)
            pending = self._pending.get(key)
            if pending is not None and pending[0] == e.revision:
                del self._pending[key]  # no later write to this key is queued
            if w.row is not None:
                self._rows_since_compact += 1
            self._revision = e.revision
            self._hub.publish(e)

    # ---- encryption at rest -----------------------------------------------------------------

    @property
    def transformer(self) -> Transformer | None:
        return self._transformer

    def use_transformer(self, transformer: Transformer) -> None:
        """Set how encrypted resources are stored; before `start` (later: `reencrypt`)."""
        if self._open:
            raise RuntimeError("the store is open: use reencrypt()")
        self._transformer = transformer
        self._db = Database(self._db.path, transformer)

    async def reencrypt(self, transformer: Transformer) -> ReencryptResult:
        """Seal every stored row of the encrypted resources with `transformer`'s write key from
        now on, rewriting the rows already stored (the revisions and the cache do not change:
        it is the same data, only its form on disk differs)."""
        if not self._open:
            raise Unavailable("store is not open")
        result = await self._db.reencrypt(transformer)
        self._transformer = transformer
        return result

    async def key_usage(self) -> dict[str, int]:
        """Stored rows of the encrypted resources per key name ("identity": plaintext)."""
        if not self._open:
            raise Unavailable("store is not open")
        return await self._db.key_usage()

    # ---- maintenance ------------------------------------------------------------------------

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self._compact_interval)
            try:
                await self.compact()
            except Exception:
                logger.exception("store compaction failed")

    async def compact(self) -> None:
        """Drop log rows superseded at or below (revision - history), then checkpoint the WAL.

        Does nothing when no rows were written since the last run, so an idle store stays idle.
        """
        async with self._compact_lock:
            if not self._open or self._writer is None or self._hub is None:
                return
            if self._rows_since_compact <= 0:
                return
            written = self._rows_since_compact
            self._rows_since_compact = 0
            revision = self._revision
            target = max(self._compact_revision, revision - self._history)
            try:
                if target > self._compact_revision:
                    result = await self._db.compact(target, revision)
                    self._compact_revision = target
                    self._writer.note_durable(revision)
                    self._hub.compact(target)
                    self._compactions += 1
                    self._compacted_rows += result.deleted_rows
                    logger.info(
                        "compacted to revision %d: %d rows deleted, %d remain, %d bytes on disk",
                        target, result.deleted_rows, result.remaining_rows,
                        self._db.size_on_disk(),
                    )
                else:
                    # Nothing old enough to drop yet, but the WAL can still be folded back.
                    await self._db.checkpoint()
            except BaseException:
                self._rows_since_compact += written  # retry on the next run
                raise
