"""core/v1 Events from the node agent: the shared recorder (`minik.machinery.events`) as kubelet.

Role: keeps the agent's call sites (`EventRecorder(client, node_name, now=…)`, `record`/`normal`/
`warning`, `run`, `flush`) while the aggregation and writing live in one place. Source is
`kubelet` on this node; repeats within `aggregate_window` (10 minutes) bump `count`.
Neighbours: the pod workers and node registration record; `minik.machinery.events` writes.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from minik.client import Client
from minik.machinery import events as machinery_events

__all__ = ["EventRecorder", "pod_ref"]

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


class EventRecorder(machinery_events.EventRecorder):
    def __init__(self, client: Client, node_name: str, *, now: Callable[[], float] = time.time,
                 aggregate_window: float = 600.0, queue_size: int = 1000) -> None:
        super().__init__(client, "kubelet", host=node_name,
                         clock=lambda: dt.datetime.fromtimestamp(now(), dt.timezone.utc),
                         cache_size=_CACHE_SIZE, queue_size=queue_size, aggregate_window=aggregate_window)
        self.node_name = node_name
