"""EventRecorder: core/v1 Events written by controllers, aggregated like client-go's recorder.

A repeat of the same (object, type, reason, message) bumps `count` and `lastTimestamp` on the
Event already written instead of creating another one; the recorder remembers the Events it wrote
(bounded LRU). Failures are logged, never raised: an Event is best effort and must not fail a sync.
Event names follow Kubernetes: `<object name>.<hex timestamp>`.
Neighbours: used by the controllers in this package; writes through `minik.client.Client`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from minik.client import Client, ClientError, Obj

log = logging.getLogger("minik.events")

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def timestamp(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class _Written:
    namespace: str
    name: str
    count: int
    first: str


class EventRecorder:
    def __init__(self, client: Client, component: str, clock: Clock = utcnow, cache_size: int = 4096) -> None:
        self.client, self.component, self.clock = client, component, clock
        self.cache_size = cache_size
        self._seen: OrderedDict[tuple[str, str, str, str], _Written] = OrderedDict()

    async def event(self, obj: Obj, etype: str, reason: str, message: str) -> None:
        m = obj.get("metadata") or {}
        ns = m.get("namespace") or "default"
        now_dt = self.clock()
        now = timestamp(now_dt)
        key = (m.get("uid", "") or f"{ns}/{m.get('name')}", etype, reason, message)
        prev = self._seen.get(key)
        if prev is not None:
            try:
                await self.client.patch("events", prev.namespace, prev.name,
                                        {"count": prev.count + 1, "lastTimestamp": now}, field_manager=self.component)
                self._remember(key, _Written(prev.namespace, prev.name, prev.count + 1, prev.first))
                return
            except ClientError as e:
                if not e.not_found:
                    log.debug("event %s for %s: %s", reason, m.get("name"), e.message)
                    return
                # The Event expired or was deleted: write a fresh one.
        name = f"{m.get('name', 'unknown')}.{int(now_dt.timestamp() * 1e9):x}"
        ev: Obj = {"apiVersion": "v1", "kind": "Event",
                   "metadata": {"name": name, "namespace": ns},
                   "involvedObject": {"kind": obj.get("kind", ""), "namespace": ns, "name": m.get("name", ""),
                                      "uid": m.get("uid", ""), "apiVersion": obj.get("apiVersion", ""),
                                      "resourceVersion": m.get("resourceVersion", "")},
                   "reason": reason, "message": message, "type": etype, "count": 1,
                   "firstTimestamp": now, "lastTimestamp": now,
                   "source": {"component": self.component},
                   "reportingComponent": self.component, "reportingInstance": self.component}
        try:
            await self.client.create("events", ns, ev, field_manager=self.component)
        except ClientError as e:
            log.debug("event %s for %s: %s", reason, m.get("name"), e.message)
            return
        self._remember(key, _Written(ns, name, 1, now))

    def _remember(self, key: tuple[str, str, str, str], w: _Written) -> None:
        self._seen[key] = w
        self._seen.move_to_end(key)
        while len(self._seen) > self.cache_size:
            self._seen.popitem(last=False)
