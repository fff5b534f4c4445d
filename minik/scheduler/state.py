"""What filters may look at besides the pod and the node: the pods already bound per node."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Obj = dict[str, Any]


@dataclass
class ClusterState:
    pods_by_node: dict[str, list[Obj]] = field(default_factory=dict)


FilterFn = Callable[[Obj, Obj, ClusterState], "str | None"]
