"""Node lifecycle: nodes that stop heart-beating go Unknown and get tainted; pods leave tainted nodes.

Role: kube-controller-manager's node lifecycle controller and its taint-based eviction.
- A node whose Lease (kube-node-lease) renewal and Ready heartbeat have not changed for the grace
  period (`--node-monitor-grace-period`, 40 s, timed on the server's clock from when the change
  was seen) gets every condition set to `Unknown`
  (`NodeStatusUnknown`, "Kubelet stopped posting node status.") and its pods marked not Ready, so
  Services stop sending them traffic.
- Taints follow the Ready condition: `node.kubernetes.io/unreachable` (Unknown) or
  `node.kubernetes.io/not-ready` (False), each as NoSchedule and NoExecute; they go when the
  node is Ready again. Other taints are left as they are.
- NoExecute taints evict: a pod that does not tolerate one is deleted at once; a pod that
  tolerates it for `tolerationSeconds` is deleted that long after the taint was added (pods get
  300 s by default through DefaultTolerationSeconds admission); a pod that tolerates it without
  a limit stays. Deleting is graceful, so a pod on an unreachable node stays Terminating until its
  node returns or is deleted: a StatefulSet never gets two pods of one ordinal.
- Pods bound to a Node that no longer exists are force-deleted (the pod garbage collector's
  orphan rule), which is what lets `kubectl delete node` end such a wait.
Heartbeats stay in memory (Leases are volatile in the store), so watching them writes nothing.
`plan_node` and `evictions` are pure; the controller patches what they return.
Neighbours: `minik.daemon` builds it on the shared nodes/leases/pods informers; the agent's
`NodeReporter` (minik.agent.node) heart-beats and rewrites Ready when it is back.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.informer import Informer
from minik.machinery.informers import NODE_INDEX
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.nodelifecycle")

COMPONENT = "node-lifecycle-controller"
LEASES = "coordination.k8s.io/leases"
LEASE_NAMESPACE = "kube-node-lease"
UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
_OURS = (UNREACHABLE, NOT_READY)
_ORPHANS = "\x00orphans"


def parse_time(s: object) -> float | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def rfc3339(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _conditions(node: Obj) -> list[Obj]:
    return [c for c in (node.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]


def ready_status(node: Obj) -> str:
    for c in _conditions(node):
        if c.get("type") == "Ready":
            return str(c.get("status") or "Unknown")
    return "Unknown"


@dataclass(frozen=True, slots=True)
class NodePlan:
    conditions: tuple[Obj, ...] | None     # new status.conditions (all Unknown), or None to leave them
    taints: tuple[Obj, ...] | None         # new spec.taints, or None when unchanged
    mark_pods_not_ready: bool


def heartbeat_mark(node: Obj, lease: Obj | None) -> tuple[str, str]:
    """What changes when a node heart-beats: its Lease's renewTime and its Ready heartbeat."""
    ready = next((c for c in _conditions(node) if c.get("type") == "Ready"), {})
    return (str(((lease or {}).get("spec") or {}).get("renewTime") or ""), str(ready.get("lastHeartbeatTime") or ""))


def plan_node(node: Obj, silent: bool, now: float) -> NodePlan:
    """`silent`: no heartbeat seen for the grace period (timed on this controller's own clock,
    from when it last saw the heartbeat change, as Kubernetes does, so clock skew between
    machines and a server restart cannot make a live node look dead)."""
    ready = ready_status(node)
    conditions: tuple[Obj, ...] | None = None
    if silent and ready != "Unknown":
        stamp = rfc3339(now)
        conds = []
        for c in _conditions(node) or [{"type": "Ready"}]:
            conds.append({**c, "status": "Unknown", "reason": "NodeStatusUnknown", "message": "Kubelet stopped posting node status.",
                          "lastTransitionTime": stamp, "lastHeartbeatTime": c.get("lastHeartbeatTime") or stamp})
        conditions = tuple(conds)
        ready = "Unknown"
    want_key = UNREACHABLE if ready == "Unknown" else NOT_READY if ready == "False" else ""
    current = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict)]
    kept = [t for t in current if t.get("key") not in _OURS or t.get("key") == want_key]
    for effect in ("NoSchedule", "NoExecute"):
        if want_key and not any(t.get("key") == want_key and t.get("effect") == effect for t in kept):
            taint: Obj = {"key": want_key, "effect": effect}
            if effect == "NoExecute":
                taint["timeAdded"] = rfc3339(now)
            kept.append(taint)
    taints = tuple(kept) if kept != current else None
    return NodePlan(conditions, taints, ready != "True")


def _tolerates(tol: Obj, taint: Obj) -> bool:
    if tol.get("effect") and tol.get("effect") != taint.get("effect"):
        return False
    op = tol.get("operator") or "Equal"
    if not tol.get("key"):
        return op == "Exists"
    if tol.get("key") != taint.get("key"):
        return False
    return op == "Exists" or (tol.get("value") or "") == (taint.get("value") or "")


def evictions(node: Obj, pods: Sequence[Obj], now: float) -> tuple[list[str], float | None]:
    """Names of pods to delete now, and the seconds until the next pod's toleration runs out."""
    taints = [t for t in (node.get("spec") or {}).get("taints") or [] if isinstance(t, dict) and t.get("effect") == "NoExecute"]
    if not taints:
        return [], None
    due: list[str] = []
    soonest: float | None = None
    for pod in pods:
        if pod["metadata"].get("deletionTimestamp"):
            continue
        tols = [t for t in (pod.get("spec") or {}).get("tolerations") or [] if isinstance(t, dict)]
        deadline: float | None = None
        evict_now = False
        for taint in taints:
            matching = [t for t in tols if _tolerates(t, taint)]
            if not matching:
                evict_now = True
                break
            limits = [t.get("tolerationSeconds") for t in matching]
            if any(not isinstance(s, int) for s in limits):
                continue                                   # tolerated forever by one of them
            added = parse_time(taint.get("timeAdded")) or now
            until = added + max(0, min(int(s) for s in limits if isinstance(s, int)))
            deadline = until if deadline is None else min(deadline, until)
        if evict_now or (deadline is not None and deadline <= now):
            due.append(str(pod["metadata"].get("name", "")))
        elif deadline is not None:
            soonest = deadline - now if soonest is None else min(soonest, deadline - now)
    return due, soonest


class NodeLifecycleController:
    def __init__(self, client: Client, nodes: Informer, leases: Informer, pods: Informer, grace: float = 40.0,
                 run_informers: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.client, self.nodes, self.leases, self.pods = client, nodes, leases, pods
        self.grace, self.clock = grace, clock
        self.queue = WorkQueue()
        self.events = EventRecorder(client, COMPONENT)
        self._probes: dict[str, tuple[tuple[str, str], float]] = {}   # node → (heartbeat mark, when it last changed)
        nodes.add_handler(lambda old, new: self._enqueue_node(new or old))
        leases.add_handler(lambda old, new: self._enqueue_lease(new or old))
        pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [nodes, leases, pods], workers=1,
                                     run_informers=run_informers)

    def _enqueue_node(self, node: Obj | None) -> None:
        if node is not None:
            self.queue.add(str(node["metadata"].get("name", "")))

    def _enqueue_lease(self, lease: Obj | None) -> None:
        if lease is not None and lease["metadata"].get("namespace") == LEASE_NAMESPACE:
            self.queue.add(str(lease["metadata"].get("name", "")))

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        pod = new or old
        node = ((pod or {}).get("spec") or {}).get("nodeName")
        if isinstance(node, str) and node:
            if self.nodes.get("", node) is None:
                self.queue.add_after(_ORPHANS, 1.0)
            elif new is not None and old is None:
                self.queue.add(node)   # a pod bound to an already tainted node

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        if key == _ORPHANS:
            await self._delete_orphans()
            return None
        node = self.nodes.get("", key)
        if node is None:
            self._probes.pop(key, None)
            self.queue.add_after(_ORPHANS, 1.0)
            return None
        now = self.clock()
        mark = heartbeat_mark(node, self.leases.get(LEASE_NAMESPACE, key))
        seen = self._probes.get(key)
        if seen is None or seen[0] != mark:
            seen = self._probes[key] = (mark, now)
        p = plan_node(node, now - seen[1] > self.grace, now)
        if p.conditions is not None:
            log.warning("node %s: no heartbeat for %.0fs; marking it Unknown", key, self.grace)
            await self.events.event(node, "Normal", "NodeNotReady", f"Node {key} status is now: NodeNotReady")
            await self._patch(key, {"status": {"conditions": list(p.conditions)}}, "status")
        if p.taints is not None:
            # With the resourceVersion: the cordon taint controller writes spec.taints too (409 → retry).
            node = await self._patch(key, {"metadata": {"resourceVersion": node["metadata"].get("resourceVersion")},
                                           "spec": {"taints": list(p.taints) or None}}) or node
        pods = self.pods.by_index(NODE_INDEX, key)
        if p.mark_pods_not_ready:
            await self._mark_not_ready(pods)
        due, soonest = evictions(node, pods, now)
        for name in due:
            pod = next(x for x in pods if x["metadata"].get("name") == name)
            ns = str(pod["metadata"].get("namespace", ""))
            log.info("node %s: evicting pod %s/%s (NoExecute taint)", key, ns, name)
            await self.events.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
            try:
                await self.client.delete("pods", ns, name)
            except ClientError as e:
                if not (e.not_found or e.conflict):
                    raise
        # Look again when the heartbeat would expire, or when a toleration runs out.
        expiry = seen[1] + self.grace - now + 0.5 if ready_status(node) != "Unknown" else None
        waits = [w for w in (soonest, expiry) if w is not None and w > 0]
        return min(waits) if waits else None

    async def _patch(self, name: str, body: Obj, subresource: str = "") -> Obj | None:
        try:
            return await self.client.patch("nodes", "", name, body, subresource=subresource, field_manager=COMPONENT)
        except ClientError as e:
            if e.not_found:
                return None
            raise

    async def _mark_not_ready(self, pods: Sequence[Obj]) -> None:
        stamp = rfc3339(self.clock())
        for pod in pods:
            conds = [c for c in (pod.get("status") or {}).get("conditions") or [] if isinstance(c, dict)]
            ready = next((c for c in conds if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False" or pod["metadata"].get("deletionTimestamp"):
                continue
            new = [c if c.get("type") != "Ready" else {**c, "status": "False", "reason": "NodeNotReady", "lastTransitionTime": stamp}
                   for c in conds]
            m = pod["metadata"]
            try:
                await self.client.patch("pods", str(m.get("namespace", "")), str(m.get("name", "")),
                                        {"status": {"conditions": new}}, subresource="status", field_manager=COMPONENT)
            except ClientError as e:
                if not (e.not_found or e.conflict):
                    raise

    async def _delete_orphans(self) -> None:
        for pod in self.pods.list():
            node = (pod.get("spec") or {}).get("nodeName")
            if not node or self.nodes.get("", str(node)) is not None:
                continue
            m = pod["metadata"]
            log.info("pod %s/%s: its node %s is gone; deleting it", m.get("namespace"), m.get("name"), node)
            try:
                await self.client.delete("pods", str(m.get("namespace", "")), str(m.get("name", "")), grace_period_seconds=0)
            except ClientError as e:
                if not (e.not_found or e.conflict):
                    raise

