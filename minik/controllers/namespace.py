"""Namespace lifecycle: a default ServiceAccount and the cluster CA ConfigMap in every namespace, and
Terminating namespaces emptied and then removed (Kubernetes's namespace, serviceaccount and
root-ca-cert-publisher controllers, in small).

One sync per namespace name on a `machinery.Controller`, woken by the shared informers on
namespaces and serviceaccounts and a ConfigMap informer filtered to `kube-root-ca.crt` (`kubectl
delete cm --all` takes it away: it comes back, as on Kubernetes). A Terminating namespace is
emptied through `Client`: every namespaced resource type from discovery is listed and its objects
deleted (a NotFound counts as done: another deleter won the race); while objects remain the key
is looked at again after `RETRY` seconds; once empty, the `kubernetes` finalizer is removed
through the `finalize` subresource, which lets the API server remove the namespace. An object
that cannot be deleted (a malformed stored object) is logged and keeps only its own namespace
waiting, never the controller.
Neighbours: `minik.client.Client` (discovery, list, delete, finalize), `minik.machinery`
(informers, controller loop); `minik.daemon` runs `run()` under the supervisor.
"""

from __future__ import annotations

import copy
import logging

from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.namespace")

COMPONENT = "namespace-controller"
RETRY = 1.0
ROOT_CA = "kube-root-ca.crt"
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints "
                       "such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across "
                       "distributions of Kubernetes clusters.")


class NamespaceController:
    def __init__(self, client: Client, ca_pem: str = "", workers: int = 2,
                 informers: InformerFactory | None = None) -> None:
        self.client, self.ca_pem = client, ca_pem
        factory = informers or InformerFactory(client)
        self.namespaces = factory.informer("namespaces")
        self.serviceaccounts = factory.informer("serviceaccounts", field_selector="metadata.name=default")
        self.root_ca = factory.informer("configmaps", field_selector=f"metadata.name={ROOT_CA}")
        self.queue = WorkQueue(base_delay=0.05)
        self.namespaces.add_handler(self._on_namespace)
        self.serviceaccounts.add_handler(self._on_published)
        self.root_ca.add_handler(self._on_published)
        self.controller = Controller(COMPONENT, self.queue, self.sync,
                                     [self.namespaces, self.serviceaccounts, self.root_ca], workers,
                                     run_informers=informers is None)

    async def run(self) -> None:
        await self.controller.run()

    def _on_namespace(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        self.queue.add(str(((obj or {}).get("metadata") or {}).get("name", "")))

    def _on_published(self, old: Obj | None, new: Obj | None) -> None:
        if new is None and old is not None:
            self.queue.add(str((old.get("metadata") or {}).get("namespace", "")))

    async def sync(self, name: str) -> float | None:
        ns = self.namespaces.get("", name)
        if ns is None:
            return None
        if not ns["metadata"].get("deletionTimestamp"):
            await self._publish(name)
            return None
        if await self._empty(name):
            return RETRY
        await self._finalize(ns)
        return None

    async def _publish(self, ns: str) -> None:
        if self.serviceaccounts.get(ns, "default") is None:
            await self._ensure("serviceaccounts", ns, {"metadata": {"name": "default"}}, "serviceaccount-controller")
        if self.ca_pem and self.root_ca.get(ns, ROOT_CA) is None:
            # Every namespace carries the cluster CA, as kube-controller-manager's root-ca-cert-publisher does.
            await self._ensure("configmaps", ns, {"metadata": {"name": ROOT_CA,
                                                               "annotations": {"kubernetes.io/description": ROOT_CA_DESCRIPTION}},
                                                  "data": {"ca.crt": self.ca_pem}}, "root-ca-cert-publisher")

    async def _ensure(self, resource: str, ns: str, obj: Obj, manager: str) -> None:
        try:
            await self.client.create(resource, ns, obj, field_manager=manager)
        except ClientError as e:
            if e.code not in (409, 403, 404):   # exists, namespace terminating, namespace gone
                raise

    async def _empty(self, ns: str) -> int:
        """Delete everything in namespace `ns`; return how many objects were still there."""
        remaining = 0
        for info in await self.client.resources():
            if not info.namespaced or not info.deletable:
                continue
            try:
                items, _ = await self.client.list(info.resource, ns)
            except ClientError as e:
                log.warning("namespace %s: listing %s: %s", ns, info.resource, e.message)
                remaining += 1
                continue
            for obj in items:
                remaining += 1
                m = obj.get("metadata") or {}
                if m.get("deletionTimestamp"):
                    continue
                try:
                    await self.client.delete(info.resource, ns, str(m.get("name", "")))
                except ClientError as e:
                    log.warning("namespace %s: deleting %s %s: %s", ns, info.resource, m.get("name"), e.message)
                except Exception:   # a malformed stored object: keep waiting on it, keep the rest going
                    log.exception("namespace %s: deleting %s %s failed", ns, info.resource, m.get("name"))
        return remaining

    async def _finalize(self, ns: Obj) -> None:
        name = ns["metadata"]["name"]
        upd = copy.deepcopy(ns)
        spec = upd.setdefault("spec", {})
        spec["finalizers"] = [f for f in spec.get("finalizers") or [] if f != "kubernetes"]
        try:
            await self.client.update("namespaces", "", name, upd, subresource="finalize", field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise
            return
        log.info("namespace %s finalized", name)
