"""Values the store hands out: events and list snapshots.

Objects are plain JSON dicts (the codec boundary): the store sets `metadata.resourceVersion`
(a decimal string of the global revision) and nothing else. Dicts handed out by the store are
shared with its cache: callers must treat them as read-only (copy.deepcopy before mutating).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    resource: str        # store key of the resource type, e.g. "pods", "apps/deployments"
    namespace: str       # "" for cluster-scoped
    name: str
    revision: int        # the revision of this change
    object: Obj          # for DELETED: the last state, with resourceVersion = revision of the delete
    prev_object: Obj | None = None  # state before (MODIFIED/DELETED); lets selector watches emit DELETED when an object stops matching


@dataclass(frozen=True, slots=True)
class ListResult:
    items: list[Obj]     # sorted by (namespace, name)
    revision: int        # the store revision this snapshot is consistent at
