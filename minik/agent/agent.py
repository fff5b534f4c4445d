"""The node agent: routes pod, ConfigMap/Secret and runtime changes to one worker per pod UID.

Role: kubelet's syncLoop. At start it registers the Node, lists the pods bound to it and the
runtime's sandboxes/containers: pods in the API get workers that adopt what is already running
(nothing is restarted: a worker's plan finds running containers with the right spec hash), and
runtime objects of pods the API no longer has get a worker that only cleans up. Afterwards:
a pod watch (field selector spec.nodeName), a ConfigMap and a Secret watch (to refresh
volumes), a relist of the runtime every second (kubelet's PLEG: one ListPodSandbox and one
ListContainers; workers whose pod changed state are woken), the node heartbeat and the event
writer. Event handlers only find the worker and wake it.
Neighbours: built by `minik.agent.runtime.NodeRuntime`; `minik.agent.worker.PodWorker` does the
work; `minik.agent.node.NodeReporter` the Node and Lease.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from minik.agent.cri import CriError
from minik.agent.node import NodeReporter
from minik.agent.sandbox import LABEL_POD_UID
from minik.agent.volumes import referenced_objects
from minik.agent.worker import PodWorker, WorkerContext
from minik.client import ClientError
from minik.machinery.tasks import Supervisor

__all__ = ["NodeAgent"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class NodeAgent:
    def __init__(self, ctx: WorkerContext, reporter: NodeReporter, *, relist_period: float = 1.0) -> None:
        self.ctx = ctx
        self.reporter = reporter
        self.relist_period = relist_period
        self.workers: dict[str, PodWorker] = {}
        self._pods: dict[str, Obj] = {}
        self._runtime_sig: dict[str, frozenset[tuple[str, int]]] = {}
        self._resource_version = ""
        self._tasks = Supervisor(max_backoff=10.0)

    @property
    def node_name(self) -> str:
        return self.ctx.node_name

    @property
    def _selector(self) -> str:
        return f"spec.nodeName={self.node_name}"

    async def start(self) -> None:
        """Register the node, list pods and adopt/clean up what the runtime holds."""
        await self.reporter.register()
        pods, rv = await self.ctx.client.list("pods", None, field_selector=self._selector)
        self._resource_version = rv
        for pod in pods:
            self._dispatch(pod["metadata"]["uid"], pod)
        try:
            await self._relist()
        except CriError as e:
            log.warning("initial runtime relist failed: %s", e)
        log.info("node agent for %s started: %d pods bound, %d in the runtime", self.node_name,
                 len(pods), len(self._runtime_sig))

    async def run(self) -> None:
        loops = {
            "agent-pods": self._watch_pods,
            "agent-configmaps": lambda: self._watch_refs("configmaps"),
            "agent-secrets": lambda: self._watch_refs("secrets"),
            "agent-relist": self._relist_loop,
            "agent-heartbeat": self.reporter.run,
            "agent-events": self.ctx.events.run,
        }
        # The shared task guard: each loop named, its failure logged and restarted with back-off.
        for name, fn in loops.items():
            self._tasks.spawn(name, fn, quiet_return=True)
        try:
            await self._tasks.join()
        finally:
            await self._tasks.stop()

    async def stop(self) -> None:
        """Stop watching and working; containers keep running (a restart adopts them)."""
        await self._tasks.stop()
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
        self.workers.clear()

    # ---- routing -------------------------------------------------------------------------------

    def _dispatch(self, uid: str, pod: Obj | None) -> None:
        if pod is None:
            self._pods.pop(uid, None)
        else:
            self._pods[uid] = pod
        w = self.workers.get(uid)
        if w is not None and w.done:
            del self.workers[uid]
            w = None
            if pod is None or not (pod.get("metadata") or {}).get("deletionTimestamp"):
                return
        if w is None:
            if pod is None and uid not in self._runtime_sig:
                return
            w = PodWorker(self.ctx, uid, pod)
            self.workers[uid] = w
            w.start()
        else:
            w.update(pod)

    async def _watch_pods(self) -> None:
        try:
            async for ev in self.ctx.client.watch("pods", None, resource_version=self._resource_version,
                                                  field_selector=self._selector):
                obj = ev.object
                uid = str((obj.get("metadata") or {}).get("uid", ""))
                self._resource_version = str(obj["metadata"].get("resourceVersion") or self._resource_version)
                self._dispatch(uid, None if ev.type == "DELETED" else obj)
        except ClientError as e:
            if e.code != 410:
                raise
        # Expired or ended: list again; pods that vanished meanwhile are cleaned by the relist.
        pods, rv = await self.ctx.client.list("pods", None, field_selector=self._selector)
        seen = {p["metadata"]["uid"] for p in pods}
        for uid in [u for u in self._pods if u not in seen]:
            self._dispatch(uid, None)
        for pod in pods:
            self._dispatch(pod["metadata"]["uid"], pod)
        self._resource_version = rv

    async def _watch_refs(self, resource: str) -> None:
        async for ev in self.ctx.client.watch(resource, None):
            m = ev.object.get("metadata") or {}
            ns, name = m.get("namespace", ""), m.get("name", "")
            for uid, pod in list(self._pods.items()):
                if (pod.get("metadata") or {}).get("namespace") != ns:
                    continue
                try:
                    cms, secrets = referenced_objects(pod)
                except (AttributeError, TypeError, ValueError):
                    # A malformed stored pod (e.g. `volumes: 1`) must not stop the wakes of the
                    # others; its own worker reports it.
                    continue
                if name in (cms if resource == "configmaps" else secrets):
                    w = self.workers.get(uid)
                    if w is not None:
                        w.wake()

    async def _relist_loop(self) -> None:
        while True:
            await asyncio.sleep(self.relist_period)
            try:
                await self._relist()
            except CriError as e:
                log.debug("relist: %s", e)
            for uid in [u for u, w in self.workers.items() if w.done and u not in self._pods]:
                del self.workers[uid]

    async def _relist(self) -> None:
        sandboxes = await self.ctx.cri.list_pod_sandbox()
        containers = await self.ctx.cri.list_containers()
        sig: dict[str, set[tuple[str, int]]] = {}
        for s in sandboxes:
            uid = s.labels.get(LABEL_POD_UID)
            if uid:
                sig.setdefault(uid, set()).add((s.id, int(s.state) + 100))
        for c in containers:
            uid = c.labels.get(LABEL_POD_UID)
            if uid:
                sig.setdefault(uid, set()).add((c.id, int(c.state)))
        new = {uid: frozenset(v) for uid, v in sig.items()}
        old = self._runtime_sig
        self._runtime_sig = new
        for uid in set(new) | set(old):
            if new.get(uid) == old.get(uid):
                continue
            w = self.workers.get(uid)
            if w is not None and not w.done:
                w.wake()
            elif uid in new and uid not in self._pods:
                # Runtime objects of a pod the API does not have (deleted while we were down,
                # or never ours): a worker without a pod only cleans up.
                log.info("cleaning up runtime objects of unknown pod uid %s", uid)
                w = PodWorker(self.ctx, uid, None)
                self.workers[uid] = w
                w.start()

    # ---- introspection (tests, metrics) --------------------------------------------------------

    def pod_uids(self) -> list[str]:
        return list(self._pods)

