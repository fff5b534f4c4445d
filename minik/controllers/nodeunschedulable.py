"""The `node.kubernetes.io/unschedulable:NoSchedule` taint follows `spec.unschedulable`.

`kubectl cordon` sets `spec.unschedulable: true`; Kubernetes's node lifecycle controller
(TaintNodesByCondition) then adds the `node.kubernetes.io/unschedulable` NoSchedule taint, and
`kubectl uncordon` makes it remove it again. DaemonSet pods tolerate it; everything else is kept
off the node by the scheduler's taint filter.
`plan_taints` is pure (the node's taints as they should be, or None when they already are); the
controller patches the Node with its resourceVersion, so a concurrent edit of the taints makes
the write fail and the key is retried on the fresher node.
Neighbours: shared nodes informer from `minik.daemon`; the scheduler's
`minik.scheduler.plugins.taints` / `unschedulable` filters.
"""

from __future__ import annotations

import logging
from typing import Any

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.nodeunschedulable")

COMPONENT = "node-lifecycle-controller"
TAINT_KEY = "node.kubernetes.io/unschedulable"


def _taints(node: Obj) -> list[dict[str, Any]]:
    spec = node.get("spec")
    taints = spec.get("taints") if isinstance(spec, dict) else None
    return [t for t in taints if isinstance(t, dict)] if isinstance(taints, list) else []


def plan_taints(node: Obj, now: str) -> list[dict[str, Any]] | None:
    spec = node.get("spec") if isinstance(node.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    want = bool(spec.get("unschedulable"))
    taints = _taints(node)
    has = any(t.get("key") == TAINT_KEY and t.get("effect") == "NoSchedule" for t in taints)
    if want == has:
        return None
    if want:
        return [*taints, {"key": TAINT_KEY, "effect": "NoSchedule", "timeAdded": now}]
    return [t for t in taints if not (t.get("key") == TAINT_KEY and t.get("effect") == "NoSchedule")]


class UnschedulableTaintController:
    def __init__(self, client: Client, nodes: Informer, run_informers: bool = False) -> None:
        self.client, self.nodes = client, nodes
        self.queue = WorkQueue()
        nodes.add_handler(self._on_node)
        self.controller = Controller("node-unschedulable-taint", self.queue, self.sync, [nodes], workers=1,
                                     run_informers=run_informers)

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None and plan_taints(new, "") is not None:
            self.queue.add(str((new.get("metadata") or {}).get("name", "")))

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        import datetime as dt
        node = self.nodes.get("", key)
        if node is None:
            return None
        taints = plan_taints(node, dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if taints is None:
            return None
        try:
            await self.client.patch("nodes", "", key, {"metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
                                                       "spec": {"taints": taints or None}}, field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise
        log.info("node %s: %s taint %s", key, TAINT_KEY, "added" if any(t.get("key") == TAINT_KEY for t in taints) else "removed")
        return None
