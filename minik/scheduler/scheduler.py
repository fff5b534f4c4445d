"""The scheduler loop: pending pods (no spec.nodeName, our schedulerName) → filter nodes → bind.

Planning is pure (`choose_node`); the loop only watches, binds and records events/conditions.
Unschedulable pods get PodScheduled=False with kube-scheduler's summary message
("0/1 nodes are available: 1 Insufficient cpu.") and a FailedScheduling event; they are retried
whenever pods or nodes change, and every few seconds.
Neighbours: talks to the API through `minik.client.Client`; plugins in `minik.scheduler.plugins`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections import Counter
from dataclasses import dataclass

from minik.client import Client, ClientError, Obj
from minik.scheduler.plugins import FILTERS
from minik.scheduler.state import ClusterState

log = logging.getLogger("minik.scheduler")

SCHEDULER_NAME = "default-scheduler"
RETRY_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Decision:
    node: str                 # "" when no node fits
    message: str = ""


def node_ready(node: Obj) -> bool:
    for c in (node.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return bool(c.get("status") == "True")
    return False


def choose_node(pod: Obj, nodes: list[Obj], state: ClusterState) -> Decision:
    """Filter every node; among the fitting ones prefer the least loaded (then by name)."""
    reasons: Counter[str] = Counter()
    fits: list[Obj] = []
    for node in nodes:
        if not node_ready(node):
            reasons["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"] += 1
            continue
        for _, f in FILTERS:
            why = f(pod, node, state)
            if why:
                reasons[why] += 1
                break
        else:
            fits.append(node)
    if fits:
        best = min(fits, key=lambda n: (len(state.pods_by_node.get(n["metadata"]["name"], [])), n["metadata"]["name"]))
        return Decision(best["metadata"]["name"])
    detail = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items(), key=lambda kv: kv[0]))
    msg = f"0/{len(nodes)} nodes are available" + (f": {detail}." if detail else ".")
    return Decision("", msg)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    def __init__(self, client: Client) -> None:
        self.client = client
        self._wake = asyncio.Event()

    async def run(self) -> None:
        watchers = [asyncio.create_task(self._watch("pods"), name="scheduler-watch-pods"),
                    asyncio.create_task(self._watch("nodes"), name="scheduler-watch-nodes")]
        try:
            while True:
                await self.schedule_pending()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), RETRY_SECONDS)
                self._wake.clear()
                for w in watchers:
                    if w.done() and w.exception():
                        raise w.exception()  # type: ignore[misc]
        finally:
            for w in watchers:
                w.cancel()

    async def _watch(self, resource: str) -> None:
        async for _ in self.client.watch(resource):
            self._wake.set()

    async def schedule_pending(self) -> None:
        pods, _ = await self.client.list("pods")
        pending = [p for p in pods if not (p.get("spec") or {}).get("nodeName")
                   and (p.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
                   and not p["metadata"].get("deletionTimestamp")
                   and (p.get("status") or {}).get("phase") in (None, "Pending")]
        if not pending:
            return
        nodes, _ = await self.client.list("nodes")
        state = ClusterState()
        for p in pods:
            n = (p.get("spec") or {}).get("nodeName")
            if n:
                state.pods_by_node.setdefault(n, []).append(p)
        for pod in sorted(pending, key=lambda p: (-int((p.get("spec") or {}).get("priority") or 0), p["metadata"].get("creationTimestamp", ""))):
            d = choose_node(pod, nodes, state)
            m = pod["metadata"]
            if d.node:
                try:
                    await self.client.patch("pods", m["namespace"], m["name"], {"target": {"name": d.node}}, subresource="binding",
                                            field_manager="default-scheduler")
                except ClientError as e:
                    log.debug("binding %s/%s: %s", m["namespace"], m["name"], e.message)
                    continue
                state.pods_by_node.setdefault(d.node, []).append(pod)
                await self._event(pod, "Normal", "Scheduled", f"Successfully assigned {m['namespace']}/{m['name']} to {d.node}")
            else:
                await self._unschedulable(pod, d.message)

    async def _unschedulable(self, pod: Obj, message: str) -> None:
        m = pod["metadata"]
        conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") != "PodScheduled"]
        old = next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == "PodScheduled"), None)
        if old and old.get("message") == message and old.get("status") == "False":
            return
        conds.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message,
                      "lastProbeTime": None, "lastTransitionTime": _now()})
        try:
            await self.client.patch("pods", m["namespace"], m["name"], {"status": {"conditions": conds}}, subresource="status",
                                    field_manager="default-scheduler")
        except ClientError as e:
            log.debug("status of %s/%s: %s", m["namespace"], m["name"], e.message)
        await self._event(pod, "Warning", "FailedScheduling", message)

    async def _event(self, pod: Obj, etype: str, reason: str, message: str) -> None:
        m = pod["metadata"]
        now = _now()
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"generateName": f"{m['name']}.", "namespace": m["namespace"]},
              "involvedObject": {"kind": "Pod", "namespace": m["namespace"], "name": m["name"], "uid": m.get("uid", ""),
                                 "apiVersion": "v1", "resourceVersion": m.get("resourceVersion", "")},
              "reason": reason, "message": message, "type": etype, "count": 1,
              "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "default-scheduler"},
              "reportingComponent": "default-scheduler", "reportingInstance": "default-scheduler"}
        try:
            await self.client.create("events", m["namespace"], ev, field_manager="default-scheduler")
        except ClientError as e:
            log.debug("event for %s/%s: %s", m["namespace"], m["name"], e.message)
