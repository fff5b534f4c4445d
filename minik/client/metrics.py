"""Resource usage of pods and nodes: the seam between a node's stats collector and the readers
(the `metrics.k8s.io` API and the HorizontalPodAutoscaler controller).

Role: a node agent samples CPU and memory (CRI `ListContainerStats`, /proc for the node) and keeps
the latest rates in memory; whoever serves or reads metrics asks a `ResourceMetrics` for them.
Usage is what metrics-server reports: CPU as a rate in nanocores over the sample `window`, memory
as the working set in bytes. Nothing here is stored: metrics live only in memory, as in
Kubernetes, so an idle cluster writes nothing for them.
Neighbours: implemented by `minik.agent.stats`; read by `minik.api.metrics` and
`minik.controllers.hpa`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class ContainerUsage:
    name: str
    cpu_nanocores: int
    memory_bytes: int


@dataclass(frozen=True, slots=True)
class PodUsage:
    namespace: str
    name: str
    timestamp: float           # unix seconds of the later sample
    window: float              # seconds between the two samples the CPU rate comes from
    containers: tuple[ContainerUsage, ...]

    @property
    def cpu_nanocores(self) -> int:
        return sum(c.cpu_nanocores for c in self.containers)

    @property
    def memory_bytes(self) -> int:
        return sum(c.memory_bytes for c in self.containers)


@dataclass(frozen=True, slots=True)
class NodeUsage:
    name: str
    timestamp: float
    window: float
    cpu_nanocores: int
    memory_bytes: int


class ResourceMetrics(Protocol):
    """The latest usage samples; empty until two samples exist (a rate needs two)."""

    def pods(self) -> list[PodUsage]: ...

    def nodes(self) -> list[NodeUsage]: ...


class NoMetrics:
    """No node reports metrics (the agent is disabled)."""

    def pods(self) -> list[PodUsage]:
        return []

    def nodes(self) -> list[NodeUsage]:
        return []
