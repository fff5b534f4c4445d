"""The one event recorder: core/v1 Events from controllers, the scheduler and the node agent.

Repeats are aggregated as Kubernetes's EventCorrelator does: an Event with the same source
(component, host), involvedObject (kind, namespace, name, uid, apiVersion, fieldPath), type,
reason and message as one already written bumps that Event's `count` and `lastTimestamp` instead
of creating another, so a crash loop or an unschedulable pod makes one Event with a growing count.
The recorder remembers the Events it wrote in a bounded LRU (`cache_size`); `aggregate_window`
(seconds, optional) starts a fresh Event when the last repeat is older than that.
Two ways to record, one path to write:
- `await event(obj, type, reason, message)`: controllers and the scheduler, inside a sync;
- `record(ref, …)` / `normal` / `warning`: never blocks (the node agent's pod workers); a named,
  supervised `run()` task writes the queue, `flush()` drains it (tests, shutdown).
Writing is best effort: failures are logged, never raised into a sync.
Event names follow Kubernetes: `<object name>.<hex nanoseconds>`.
Neighbours: writes through `minik.client.Client`; used by `minik.controllers`, `minik.scheduler`
and `minik.agent` (via `minik.agent.events`, which keeps the agent's call sites).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from minik.client import Client, ClientError, Obj

log = logging.getLogger("minik.events")

Clock = Callable[[], dt.datetime]

__all__ = ["Clock", "EventRecorder", "object_ref", "timestamp", "utcnow"]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def timestamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_ref(obj: Obj) -> Obj:
    """The involvedObject of an Event about `obj` (an ObjectReference)."""
    m = obj.get("metadata") or {}
    return {"kind": obj.get("kind", ""), "namespace": m.get("namespace") or "default", "name": m.get("name", ""),
            "uid": m.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": m.get("resourceVersion", "")}


@dataclass(frozen=True, slots=True)
class _Written:
    namespace: str
    name: str
    count: int
    at: float            # seconds since the epoch of the last write


@dataclass(frozen=True, slots=True)
class _Pending:
    ref: Obj
    type: str
    reason: str
    message: str
    at: dt.datetime


Key = tuple[str, ...]


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "", clock: Clock = utcnow,
                 cache_size: int = 4096, queue_size: int = 1000, aggregate_window: float | None = None) -> None:
        self.client, self.component, self.host, self.clock = client, component, host, clock
        self.cache_size, self.aggregate_window = cache_size, aggregate_window
        self._seen: OrderedDict[Key, _Written] = OrderedDict()
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(queue_size)

    # ---- recording ----------------------------------------------------------------------------
    async def event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        """Write (or aggregate) an Event about `obj` now."""
        await self.write(object_ref(obj), etype, reason, message)

    def record(self, ref: Obj, etype: str, reason: str, message: str) -> None:
        """Queue an Event about the object `ref` refers to; `run()` writes it."""
        try:
            self._queue.put_nowait(_Pending(ref, etype, reason, message, self.clock()))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s", reason, message)

    def normal(self, ref: Obj, reason: str, message: str) -> None:
        self.record(ref, "Normal", reason, message)

    def warning(self, ref: Obj, reason: str, message: str) -> None:
        self.record(ref, "Warning", reason, message)

    async def run(self) -> None:
        while True:
            ev = await self._queue.get()
            await self.write(ev.ref, ev.type, ev.reason, ev.message, ev.at)

    async def flush(self) -> None:
        """Write everything queued."""
        while not self._queue.empty():
            ev = self._queue.get_nowait()
            await self.write(ev.ref, ev.type, ev.reason, ev.message, ev.at)

    # ---- writing ------------------------------------------------------------------------------
    def key(self, ref: Obj, etype: str, reason: str, message: str) -> Key:
        """EventCorrelator's aggregation key (source, involvedObject, type, reason, message)."""
        return (self.component, self.host, str(ref.get("kind", "")), str(ref.get("namespace", "")),
                str(ref.get("name", "")), str(ref.get("uid", "")), str(ref.get("apiVersion", "")),
                str(ref.get("fieldPath", "")), etype, reason, message)

    async def write(self, ref: Obj, etype: str, reason: str, message: str, at: dt.datetime | None = None) -> None:
        now_dt = at if at is not None else self.clock()
        now, now_s = timestamp(now_dt), now_dt.timestamp()
        key = self.key(ref, etype, reason, message)
        prev = self._seen.get(key)
        if prev is not None and (self.aggregate_window is None or now_s - prev.at < self.aggregate_window):
            try:
                await self.client.patch("events", prev.namespace, prev.name,
                                        {"count": prev.count + 1, "lastTimestamp": now}, field_manager=self.component)
                self._remember(key, _Written(prev.namespace, prev.name, prev.count + 1, now_s))
                return
            except ClientError as e:
                if not e.not_found:
                    log.log(_level(e), "event %s for %s/%s: %s", reason, ref.get("namespace"), ref.get("name"), e.message)
                    return
                # The Event expired or was deleted: write a fresh one.
        ns = str(ref.get("namespace") or "default")
        name = f"{ref.get('name') or 'unknown'}.{time.time_ns():x}"
        source: Obj = {"component": self.component}
        if self.host:
            source["host"] = self.host
        body: Obj = {"apiVersion": "v1", "kind": "Event",
                     "metadata": {"name": name, "namespace": ns},
                     "involvedObject": dict(ref),
                     "reason": reason, "message": message, "type": etype, "count": 1,
                     "firstTimestamp": now, "lastTimestamp": now, "source": source,
                     "reportingComponent": self.component, "reportingInstance": self.host or self.component}
        try:
            await self.client.create("events", ns, body, field_manager=self.component)
        except ClientError as e:
            log.log(_level(e), "event %s for %s/%s: %s", reason, ns, ref.get("name"), e.message)
            return
        self._remember(key, _Written(ns, name, 1, now_s))

    def _remember(self, key: Key, w: _Written) -> None:
        self._seen[key] = w
        self._seen.move_to_end(key)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)

    def __len__(self) -> int:
        return len(self._seen)


def _level(e: ClientError) -> int:
    # A namespace being deleted refuses new Events (403), a racing writer conflicts: both expected.
    return logging.DEBUG if e.code in (403, 404, 409) else logging.WARNING
