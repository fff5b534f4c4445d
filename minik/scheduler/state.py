"""What filters may look at besides the pod and the node: the pods already bound per node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

Obj = dict[str, Any]


class VolumeLister(Protocol):
    """Claims, volumes and classes from the shared caches (the volume binding filter's view)."""

    def claim(self, namespace: str, name: str) -> Obj | None: ...
    def volume(self, name: str) -> Obj | None: ...
    def storage_class(self, name: str) -> Obj | None: ...
    def volumes(self) -> list[Obj]: ...


@dataclass
class ClusterState:
    pods_by_node: dict[str, list[Obj]] = field(default_factory=dict)
    volumes: VolumeLister | None = None


FilterFn = Callable[[Obj, Obj, ClusterState], "str | None"]
