"""The `metrics.k8s.io/v1beta1` API (PodMetrics, NodeMetrics), as metrics-server serves it.

minik serves the resource metrics API itself instead of through an aggregated metrics-server:
usage comes from the nodes' in-memory samples (`minik.client.metrics.ResourceMetrics`), objects
carry the labels of their pod/node so `kubectl top pods -l app=x` filters as on Kubernetes, and
quantities are formatted as metrics-server does (CPU in nanocores `n`, memory in `Ki`). Only
get and list; nothing is stored or watched.
Neighbours: called by `minik.api.handlers` for the registry's `computed` types; the data comes from
`minik.agent.stats` through the daemon.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from minik.api import status as st
from minik.api.meta import Obj, rfc3339, utcnow
from minik.api.service import ResourceService
from minik.apis.registry import Registry, ResourceType
from minik.apis.selectors import LabelSelector
from minik.client.metrics import NoMetrics, NodeUsage, PodUsage, ResourceMetrics

GROUP_VERSION = "metrics.k8s.io/v1beta1"


def cpu_quantity(nanocores: int) -> str:
    return f"{nanocores}n"


def memory_quantity(num_bytes: int) -> str:
    return f"{num_bytes // 1024}Ki"


def _window(seconds: float) -> str:
    return f"{max(1, round(seconds))}s"


def _ts(unix: float) -> str:
    return rfc3339(dt.datetime.fromtimestamp(unix, dt.timezone.utc))


def pod_metrics(u: PodUsage, labels: dict[str, str], now: dt.datetime) -> Obj:
    return {
        "kind": "PodMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": u.name, "namespace": u.namespace, "creationTimestamp": rfc3339(now), "labels": labels},
        "timestamp": _ts(u.timestamp), "window": _window(u.window),
        "containers": [{"name": c.name, "usage": {"cpu": cpu_quantity(c.cpu_nanocores), "memory": memory_quantity(c.memory_bytes)}}
                       for c in u.containers],
    }


def node_metrics(u: NodeUsage, labels: dict[str, str], now: dt.datetime) -> Obj:
    return {
        "kind": "NodeMetrics", "apiVersion": GROUP_VERSION,
        "metadata": {"name": u.name, "creationTimestamp": rfc3339(now), "labels": labels},
        "timestamp": _ts(u.timestamp), "window": _window(u.window),
        "usage": {"cpu": cpu_quantity(u.cpu_nanocores), "memory": memory_quantity(u.memory_bytes)},
    }


class MetricsApi:
    def __init__(self, service: ResourceService, registry: Registry, source: ResourceMetrics | None = None) -> None:
        self.service = service
        self.source: ResourceMetrics = source or NoMetrics()
        pods, nodes = registry.lookup("", "v1", "pods"), registry.lookup("", "v1", "nodes")
        assert pods is not None and nodes is not None
        self._pods_rt, self._nodes_rt = pods, nodes

    def _labels(self, rt: ResourceType, namespace: str, name: str) -> dict[str, str] | None:
        obj = self.service.store.get(rt.store_key, namespace, name)
        if obj is None:
            return None
        labels = (obj.get("metadata") or {}).get("labels")
        return dict(labels) if isinstance(labels, dict) else {}

    def items(self, rt: ResourceType, namespace: str | None, selector: LabelSelector | None) -> list[Obj]:
        now = utcnow()
        out: list[Obj] = []
        if rt.kind == "PodMetrics":
            for u in self.source.pods():
                if namespace and u.namespace != namespace:
                    continue
                labels = self._labels(self._pods_rt, u.namespace, u.name)
                if labels is None or (selector is not None and not selector.matches(labels)):
                    continue
                out.append(pod_metrics(u, labels, now))
        else:
            for n in self.source.nodes():
                labels = self._labels(self._nodes_rt, "", n.name)
                if labels is None or (selector is not None and not selector.matches(labels)):
                    continue
                out.append(node_metrics(n, labels, now))
        return out

    def get(self, rt: ResourceType, namespace: str, name: str) -> Obj:
        for o in self.items(rt, namespace or None, None):
            if o["metadata"]["name"] == name:
                return o
        raise st.not_found(rt, name)

    def list(self, rt: ResourceType, namespace: str | None, selector: LabelSelector | None) -> dict[str, Any]:
        return {"kind": rt.list_kind, "apiVersion": GROUP_VERSION, "metadata": {}, "items": self.items(rt, namespace, selector)}
