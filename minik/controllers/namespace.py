"""Namespace lifecycle: a default ServiceAccount in every namespace, and Terminating namespaces
emptied and then removed (Kubernetes's namespace and serviceaccount controllers, in small).

Neighbours: reads and writes through `minik.api.service.ResourceService` (the in-process client);
woken by store watch events on namespaces; `minik.daemon` runs `run()` under the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from minik.api import status as st
from minik.api.service import DeleteOptions, ResourceService, WriteOptions
from minik.apis.registry import Registry, ResourceType

log = logging.getLogger("minik.controllers.namespace")

RETRY = 1.0


class NamespaceController:
    def __init__(self, service: ResourceService, registry: Registry, ca_pem: str = "") -> None:
        self.service, self.registry, self.ca_pem = service, registry, ca_pem
        self.ns_rt = self._rt("", "namespaces")
        self.sa_rt = self._rt("", "serviceaccounts")
        self.cm_rt = self._rt("", "configmaps")

    def _rt(self, group: str, plural: str) -> ResourceType:
        for t in self.registry.types:
            if t.group == group and t.plural == plural:
                return t
        raise LookupError(plural)

    async def run(self) -> None:
        wake = asyncio.Event()
        # Namespace changes, and the deletion of what this controller publishes in each namespace
        # (`kubectl delete cm --all` takes kube-root-ca.crt with it: it comes back, as on Kubernetes).
        watched = {"namespaces": None, "serviceaccounts": "default", "configmaps": "kube-root-ca.crt"}
        pumps = [asyncio.create_task(self._pump(res, name, wake), name=f"namespace-controller-watch-{res}")
                 for res, name in watched.items()]
        try:
            await self.sync_all()
            while True:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(wake.wait(), RETRY if self._terminating() else None)
                wake.clear()
                for p in pumps:
                    if p.done():
                        p.result()   # a failed watch fails the controller (the supervisor restarts it)
                await self.sync_all()
        finally:
            for p in pumps:
                p.cancel()

    async def _pump(self, resource: str, name: str | None, wake: asyncio.Event) -> None:
        store = self.service.store
        watch = store.watch(resource, None, store.revision)
        try:
            async for ev in watch:
                if name is None or (ev.type == "DELETED" and ev.name == name):
                    wake.set()
        finally:
            watch.close()

    def _terminating(self) -> bool:
        return any(ns["metadata"].get("deletionTimestamp") for ns in self.service.store.list("namespaces").items)

    async def sync_all(self) -> None:
        for ns in self.service.store.list("namespaces").items:
            try:
                await self.sync(ns["metadata"]["name"])
            except st.StatusError as e:
                log.debug("namespace %s: %s", ns["metadata"]["name"], e.message)

    async def sync(self, name: str) -> None:
        ns = self.service.store.get("namespaces", "", name)
        if ns is None:
            return
        if not ns["metadata"].get("deletionTimestamp"):
            await self._ensure(self.sa_rt, name, {"metadata": {"name": "default"}}, "serviceaccount-controller")
            if self.ca_pem:
                # Every namespace carries the cluster CA, as kube-controller-manager's root-ca-cert-publisher does.
                await self._ensure(self.cm_rt, name, {"metadata": {"name": "kube-root-ca.crt",
                                                                   "annotations": {"kubernetes.io/description": "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters."}},
                                                      "data": {"ca.crt": self.ca_pem}}, "root-ca-cert-publisher")
            return
        remaining = await self._empty(name)
        if remaining:
            return
        fin = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != "kubernetes"]
        spec = dict(ns.get("spec") or {})
        spec["finalizers"] = fin
        upd = dict(ns)
        upd["spec"] = spec
        if not fin and not ns["metadata"].get("finalizers"):
            await self.service.store.delete("namespaces", "", name)
            log.info("namespace %s deleted", name)
        else:
            await self.service.store.update("namespaces", upd)

    async def _ensure(self, rt: ResourceType, ns: str, obj: dict[str, object], manager: str) -> None:
        name = str(obj["metadata"]["name"])  # type: ignore[index]
        if self.service.store.get(rt.store_key, ns, name) is not None:
            return
        try:
            await self.service.create(rt, ns, obj, WriteOptions(manager, "Ignore"))
        except st.StatusError as e:
            if e.code not in (409, 403, 404):
                raise

    async def _empty(self, ns: str) -> int:
        """Delete everything in namespace `ns`; return how many objects are still there."""
        remaining = 0
        seen: set[str] = set()
        for rt in list(self.registry.types):
            if not rt.namespaced or rt.store_key in seen:
                continue
            seen.add(rt.store_key)
            for obj in self.service.store.list(rt.store_key, ns).items:
                remaining += 1
                if obj["metadata"].get("deletionTimestamp"):
                    continue
                try:
                    await self.service.delete(rt, ns, obj["metadata"]["name"], DeleteOptions("Background"))
                except st.StatusError as e:
                    if e.code != 404:
                        log.warning("namespace %s: deleting %s %s: %s", ns, rt.plural, obj["metadata"]["name"], e.message)
        return remaining
