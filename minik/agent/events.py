"""core/v1 Events from the node agent, aggregated like kubelet's recorder.

Role: `record()` never blocks or fails the caller: it queues; `run()` writes. A repeat of the
same (object, type, reason, message) within `aggregate_window` bumps `count` and `lastTimestamp`
of the existing Event instead of creating a new one (kube's event correlator does the same), so a
crash loop makes one Event with a growing count, not hundreds of rows.
Neighbours: the pod workers and node registration record; `minik.client.Client` writes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from minik.agent.status import rfc3339
from minik.client import Client, ClientError

__all__ = ["EventRecorder", "pod_ref"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

_CACHE_SIZE = 1024


def pod_ref(pod: Obj, container: str = "", init: bool = False) -> Obj:
    m = pod.get("metadata") or {}
    ref: Obj = {"kind": "Pod", "apiVersion": "v1", "namespace": m.get("namespace", ""),
                "name": m.get("name", ""), "uid": m.get("uid", "")}
    if m.get("resourceVersion"):
        ref["resourceVersion"] = m["resourceVersion"]
    if container:
        ref["fieldPath"] = f"spec.{'initContainers' if init else 'containers'}{{{container}}}"
    return ref


@dataclass(frozen=True, slots=True)
class _Pending:
    ref: Obj
    type: str
    reason: str
    message: str
    at: float


class EventRecorder:
    def __init__(self, client: Client, node_name: str, *, now: Callable[[], float] = time.time,
                 aggregate_window: float = 600.0, queue_size: int = 1000) -> None:
        self.client = client
        self.node_name = node_name
        self.now = now
        self.aggregate_window = aggregate_window
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue(queue_size)
        # key → (namespace, event name, count, last time)
        self._seen: OrderedDict[tuple[str, ...], tuple[str, str, int, float]] = OrderedDict()

    def record(self, ref: Obj, type_: str, reason: str, message: str) -> None:
        try:
            self._queue.put_nowait(_Pending(ref, type_, reason, message, self.now()))
        except asyncio.QueueFull:
            log.warning("event queue full; dropping %s %s", reason, message)

    def normal(self, ref: Obj, reason: str, message: str) -> None:
        self.record(ref, "Normal", reason, message)

    def warning(self, ref: Obj, reason: str, message: str) -> None:
        self.record(ref, "Warning", reason, message)

    async def run(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                await self._write(ev)
            except ClientError as e:
                log.warning("writing event %s for %s/%s failed: %s", ev.reason,
                            ev.ref.get("namespace"), ev.ref.get("name"), e.message)

    async def flush(self) -> None:
        """Write everything queued (tests, shutdown)."""
        while not self._queue.empty():
            await self._write(self._queue.get_nowait())

    async def _write(self, ev: _Pending) -> None:
        ns = str(ev.ref.get("namespace") or "default")
        key = (str(ev.ref.get("uid", "")), str(ev.ref.get("fieldPath", "")), ev.type, ev.reason, ev.message)
        ts = rfc3339(ev.at)
        seen = self._seen.get(key)
        if seen is not None and ev.at - seen[3] < self.aggregate_window:
            ns_, name, count, _ = seen
            try:
                await self.client.patch("events", ns_, name, {"count": count + 1, "lastTimestamp": ts})
                self._remember(key, (ns_, name, count + 1, ev.at))
                return
            except ClientError as e:
                if not e.not_found:
                    raise
        name = f"{ev.ref.get('name', 'unknown')}.{time.time_ns():x}"
        body: Obj = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": ev.ref,
            "reason": ev.reason, "message": ev.message, "type": ev.type,
            "count": 1, "firstTimestamp": ts, "lastTimestamp": ts,
            "source": {"component": "kubelet", "host": self.node_name},
            "reportingComponent": "kubelet", "reportingInstance": self.node_name,
        }
        await self.client.create("events", ns, body)
        self._remember(key, (ns, name, 1, ev.at))

    def _remember(self, key: tuple[str, ...], value: tuple[str, str, int, float]) -> None:
        self._seen[key] = value
        self._seen.move_to_end(key)
        while len(self._seen) > _CACHE_SIZE:
            self._seen.popitem(last=False)
