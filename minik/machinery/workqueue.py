"""The controllers' work queue: deduplicated keys, one worker per key, rate-limited requeue.

Semantics follow client-go's rate-limited work queue:
- `add(key)` is a no-op while the key is already waiting (dirty), so a burst of events for one
  object becomes one sync;
- a key handed out by `get()` is "processing" until `done(key)`; adding it meanwhile marks it
  dirty and it is queued again only after `done`, so two workers never sync the same key at once
  (kopf's one-worker-per-object ordering) while different keys run in parallel;
- `add_rate_limited(key)` requeues after a per-key exponential back-off (base·2^failures, capped);
  `forget(key)` resets it after a successful sync;
- `add_after(key, delay)` for syncs that must look again later (minReadySeconds, deadlines).
Neighbours: filled by informer event handlers, drained by `minik.machinery.controller.Controller`.
"""

from __future__ import annotations

import asyncio
from collections import deque


class ShutDown(Exception):
    """Raised by `get()` once the queue is shut down."""


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 60.0) -> None:
        self.base_delay, self.max_delay = base_delay, max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._wakeup = asyncio.Event()
        self._shutting_down = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # re-queued by done(), keeping one worker per key
        self._queue.append(key)
        self._notify()

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` after `delay` seconds; an earlier pending timer for the key wins."""
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        old = self._timers.get(key)
        if old is not None:
            if old.when() <= when:
                return
            old.cancel()
        self._timers[key] = loop.call_at(when, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def backoff(self, key: str) -> float:
        """The delay the next `add_rate_limited(key)` will use."""
        n = self._failures.get(key, 0)
        return float(min(self.base_delay * (2 ** min(n, 40)), self.max_delay))

    def add_rate_limited(self, key: str) -> None:
        delay = self.backoff(key)
        self._failures[key] = self._failures.get(key, 0) + 1
        self.add_after(key, delay)

    def failures(self, key: str) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    async def get(self) -> str:
        while not self._queue:
            if self._shutting_down:
                raise ShutDown()
            self._wakeup.clear()
            await self._wakeup.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        self._shutting_down = True
        for t in self._timers.values():
            t.cancel()
        self._timers.clear()
        self._notify()

    def _notify(self) -> None:
        # Wakes every idle worker; those finding the queue empty again go back to waiting.
        self._wakeup.set()
