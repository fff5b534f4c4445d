"""Group commit: every write queued while a commit is in flight goes into the next transaction.

Role: `minik.store.store` validates a write and assigns its revision synchronously, then hands a
`PendingWrite` to `GroupCommitWriter.submit`. The writer loop takes everything queued (up to
`batch_cap`), appends the durable rows in ONE transaction through `minik.store.db.Database`
(one fsync for the whole batch), then calls `publish` with the batch in revision order and
resolves the callers' futures. If the commit fails, the batch and everything queued behind it
(which was validated against the failed batch's effects) fail with `Unavailable`, and
`on_failure` lets the store drop its pending overlay; nothing is published.

Volatile writes (no row) ride in the same queue so events stay in revision order; a batch with
no rows to write does not touch SQL at all, except to persist a revision floor (once per
`VOLATILE_RESERVE` volatile revisions) so the counter never goes backwards after a crash.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minik.store.db import Database, LogRow
from minik.store.errors import Unavailable
from minik.store.types import Event, Obj

logger = logging.getLogger("minik.store")

# How far ahead of a volatile revision the persisted floor is pushed: one tiny meta write per
# this many revisions of memory-only changes (e.g. lease renewals) instead of one per change.
VOLATILE_RESERVE = 100_000


@dataclass(frozen=True, slots=True)
class PendingWrite:
    event: Event                # what is published once committed
    row: LogRow | None          # None: volatile, kept in memory only
    future: asyncio.Future[Obj]


@dataclass(slots=True)
class WriterStats:
    batches: int = 0   # writer loop rounds that acknowledged at least one write
    commits: int = 0   # SQL transactions committed
    rows: int = 0      # log rows written
    writes: int = 0    # writes acknowledged (durable + volatile)
    failures: int = 0  # batches that failed to commit


class GroupCommitWriter:
    def __init__(
        self,
        db: Database,
        *,
        durable_revision: int,
        publish: Callable[[Sequence[PendingWrite]], None],
        on_failure: Callable[[], None],
        batch_cap: int = 256,
    ) -> None:
        self._db = db
        # Highest revision the database would restore the counter to (newest row or floor).
        self._durable_revision = durable_revision
        self._publish = publish
        self._on_failure = on_failure
        self._batch_cap = batch_cap
        self._queue: deque[PendingWrite] = deque()
        self._wake = asyncio.Event()
        self._closing = False
        self.stats = WriterStats()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, write: PendingWrite) -> None:
        if self._closing:
            raise Unavailable("store is closing")
        self._queue.append(write)
        self._wake.set()

    def note_durable(self, revision: int) -> None:
        """Compaction persisted a floor at `revision`."""
        self._durable_revision = max(self._durable_revision, revision)

    async def close(self) -> None:
        """Stop accepting writes; `run` returns once the queue is drained."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            n = min(len(self._queue), self._batch_cap)
            batch = [self._queue.popleft() for _ in range(n)]
            await self._commit(batch)

    async def _commit(self, batch: list[PendingWrite]) -> None:
        rows = [w.row for w in batch if w.row is not None]
        floor = self._floor_for(batch)
        try:
            if rows or floor is not None:
                await self._db.append(rows, floor)
        except BaseException as exc:
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise  # cancellation: callers were failed above, let the task end
            return
        if rows or floor is not None:
            self.stats.commits += 1
            self.stats.rows += len(rows)
        if rows:
            self._durable_revision = max(self._durable_revision, rows[-1].revision)
        if floor is not None:
            self._durable_revision = max(self._durable_revision, floor)
        self.stats.batches += 1
        self.stats.writes += len(batch)
        try:
            self._publish(batch)
        except Exception:
            # A bug, not a storage failure: the writes are durable, so still acknowledge them
            # rather than leave callers waiting forever.
            logger.exception("publishing %d committed writes failed", len(batch))
        for w in batch:
            if not w.future.done():  # the caller may have been cancelled; the write still stands
                w.future.set_result(w.event.object)

    def _floor_for(self, batch: list[PendingWrite]) -> int | None:
        volatile_max = max((w.event.revision for w in batch if w.row is None), default=0)
        if volatile_max <= self._durable_revision:
            return None
        durable_max = max((w.event.revision for w in batch if w.row is not None), default=0)
        if volatile_max <= durable_max:
            return None  # the rows themselves carry a higher revision
        return volatile_max + VOLATILE_RESERVE

    def _fail(self, batch: list[PendingWrite], exc: BaseException) -> None:
        # Everything still queued was checked against the overlay that included this batch, so
        # it cannot be committed on its own either.
        failed = batch + list(self._queue)
        self._queue.clear()
        self.stats.failures += 1
        logger.error(
            "commit of %d writes failed, %d writes failed with it: %r",
            len(batch), len(failed) - len(batch), exc,
        )
        self._on_failure()
        for w in failed:
            if not w.future.done():
                error = Unavailable(f"commit failed: {exc!r}")
                error.__cause__ = exc
                w.future.set_exception(error)
