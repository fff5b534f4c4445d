"""The watch hub: recent events in a ring buffer and the watchers they are fanned out to.

Role: `minik.store.store` publishes every committed change here, in revision order; `Store.watch`
opens a `Watch` (an async iterator of `Event`) that first replays retained events newer than the
requested revision, then follows live ones. Everything is in memory; nothing here touches SQL.

Resuming from a revision older than what the ring still holds raises `Expired` (HTTP 410, the
client relists). A watcher whose bounded queue fills up (it reads slower than changes arrive) is
closed: its next `__anext__` raises `WatchOverflow`, a subclass of `Expired`, so API code that
maps `Expired` to 410 makes the client relist and re-watch, as with a compacted revision.
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from minik.store.errors import Expired
from minik.store.types import Event


WAKE_SLICE = 8


class WatchOverflow(Expired):
    """The watcher fell more than its queue size behind; it was closed and must relist."""


class Watch:
    """Async iterator of events for one resource (or all) and optionally one namespace.

    Iteration ends (StopAsyncIteration) after `close()` or when the store closes; it raises
    `WatchOverflow` if the watcher fell too far behind. `close()` is idempotent and releases
    everything the watch holds; `async with store.watch(...) as w:` closes on exit.
    """

    def __init__(
        self,
        hub: WatchHub,
        resource: str | None,
        namespace: str | None,
        since: int,
        backlog: list[Event],
        queue_size: int,
    ) -> None:
        self._hub = hub
        self.resource = resource
        self.namespace = namespace
        self._buf: deque[Event] = deque(backlog)
        # The replayed backlog is already in memory (shared with the ring), so it does not count
        # against the live allowance.
        self._limit = queue_size + len(backlog)
        self._last = since
        self._waiter: asyncio.Future[None] | None = None
        self._error: Expired | None = None
        self._closed = False
        self._wake_queued = False   # in the hub's wake queue already

    @property
    def revision(self) -> int:
        """Revision of the last event handed out (or the starting revision): where to resume."""
        return self._last

    @property
    def closed(self) -> bool:
        return self._closed

    def matches(self, event: Event) -> bool:
        return (self.resource is None or self.resource == event.resource) and (
            self.namespace is None or self.namespace == event.namespace
        )

    def __aiter__(self) -> Watch:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._buf:
                event = self._buf.popleft()
                self._last = event.revision
                return event
            if self._error is not None:
                raise self._error
            if self._closed:
                raise StopAsyncIteration
            waiter = asyncio.get_running_loop().create_future()
            self._waiter = waiter
            try:
                await waiter
            finally:
                self._waiter = None

    def next_nowait(self) -> Event | None:
        """An event already buffered, or None (never waits; raises like `__anext__` once the
        buffer is empty and the watch is closed or failed)."""
        if self._buf:
            event = self._buf.popleft()
            self._last = event.revision
            return event
        if self._error is not None:
            raise self._error
        if self._closed:
            raise StopAsyncIteration
        return None

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None when `timeout` seconds pass first. One timer, no task: a
        server with hundreds of idle watches wakes each of them cheaply."""
        event = self.next_nowait()
        if event is not None:
            return event
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiter = waiter
        timer = loop.call_later(timeout, _wake_future, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None
        return self.next_nowait()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._buf.clear()
        self._hub._remove(self)
        self._wake()

    async def __aenter__(self) -> Watch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # ---- hub side ---------------------------------------------------------------------------

    def _push(self, event: Event) -> None:
        if self._closed:
            return
        if len(self._buf) >= self._limit:
            # Dropping the buffer: the client relists anyway, and keeping it would hold memory
            # for a reader that is not keeping up.
            self._error = WatchOverflow(self._last, event.revision)
            self.close()
            return
        self._buf.append(event)
        if self._waiter is not None and not self._waiter.done() and not self._wake_queued:
            self._wake_queued = True
            self._hub._schedule_wake(self)

    def _wake(self) -> None:
        self._wake_queued = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def _wake_future(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class WatchHub:
    """Ring buffer of the last `history` events and the set of open watches."""

    def __init__(self, *, history: int, queue_size: int, start_revision: int) -> None:
        self._history = history
        self._queue_size = queue_size
        self._ring: deque[Event] = deque()
        # Events at or below this revision may be missing from the ring (evicted, compacted,
        # or from before this process started): resuming below it is Expired.
        self._floor = start_revision
        self._watches: dict[str | None, set[Watch]] = {}
        self._count = 0
        # Fair fan-out: waiting watchers are woken at most WAKE_SLICE per event-loop iteration,
        # so one change fanned out to hundreds of watches does not hold the loop for the whole
        # fan-out; requests arriving meanwhile are served between slices.
        self._to_wake: deque[Watch] = deque()
        self._waking = False

    @property
    def watchers(self) -> int:
        return self._count

    @property
    def oldest(self) -> int:
        """The oldest revision a watch can resume from."""
        return self._floor

    def watch(
        self, resource: str | None, namespace: str | None, since: int
    ) -> Watch:
        if since < self._floor:
            raise Expired(since, self._floor)
        backlog: list[Event] = []
        for event in reversed(self._ring):
            if event.revision <= since:
                break
            if (resource is None or event.resource == resource) and (
                namespace is None or event.namespace == namespace
            ):
                backlog.append(event)
        backlog.reverse()
        w = Watch(self, resource, namespace, since, backlog, self._queue_size)
        self._watches.setdefault(resource, set()).add(w)
        self._count += 1
        return w

    def publish(self, event: Event) -> None:
        """Record a committed event and fan it out; callers publish in revision order."""
        self._ring.append(event)
        while len(self._ring) > self._history:
            self._floor = max(self._floor, self._ring.popleft().revision)
        if not self._count:
            return
        for key in (event.resource, None):
            watches = self._watches.get(key)
            if not watches:
                continue
            # tuple(): a watch that overflows removes itself from the set during the loop.
            for w in tuple(watches):
                if w.namespace is None or w.namespace == event.namespace:
                    w._push(event)

    def _schedule_wake(self, w: Watch) -> None:
        self._to_wake.append(w)
        if not self._waking:
            self._waking = True
            asyncio.get_running_loop().call_soon(self._wake_slice)

    def _wake_slice(self) -> None:
        for _ in range(min(WAKE_SLICE, len(self._to_wake))):
            self._to_wake.popleft()._wake()
        if self._to_wake:
            asyncio.get_running_loop().call_soon(self._wake_slice)
        else:
            self._waking = False

    def compact(self, revision: int) -> None:
        """Forget events at or below `revision` (the store's compact revision)."""
        while self._ring and self._ring[0].revision <= revision:
            self._ring.popleft()
        self._floor = max(self._floor, revision)

    def close_all(self) -> None:
        for watches in list(self._watches.values()):
            for w in tuple(watches):
                w.close()

    def _remove(self, w: Watch) -> None:
        watches = self._watches.get(w.resource)
        if watches is not None and w in watches:
            watches.discard(w)
            self._count -= 1
            if not watches:
                del self._watches[w.resource]
