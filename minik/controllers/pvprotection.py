"""Storage object in-use protection: the `kubernetes.io/pvc-protection` and
`kubernetes.io/pv-protection` finalizers (kube-controller-manager's pvc-protection and
pv-protection controllers).

Admission (`minik.api.storage_admission`) puts the finalizers on every new claim and volume.
A claim being deleted keeps its finalizer while any pod of its namespace that has not finished
(phase neither Succeeded nor Failed — a terminating pod still counts) uses it; a volume being
deleted keeps its finalizer while it is Bound. Then the finalizer is removed and the API server
finishes the deletion.
`claim_in_use` and `plan` are pure; pods are looked up in the shared pod informer's namespace
bucket. Pod changes enqueue the terminating claims they name.
Neighbours: `minik.machinery.storage`; the PV binder releases the volume once the claim is gone.
"""

from __future__ import annotations

import logging
from typing import Sequence

from minik.client import Client, ClientError, Obj
from minik.machinery import storage as sto
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.pvprotection")

COMPONENT = "pvc-protection-controller"
PVCS, PVS = "persistentvolumeclaims", "persistentvolumes"


def claim_in_use(pvc: Obj, pods: Sequence[Obj]) -> bool:
    name = sto.meta(pvc).get("name")
    for pod in pods:
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        if name in sto.pod_claim_names(pod):
            return True
    return False


def finalizer_to_remove(obj: Obj, finalizer: str, in_use: bool) -> bool:
    m = sto.meta(obj)
    return bool(m.get("deletionTimestamp")) and finalizer in (m.get("finalizers") or []) and not in_use


class PVProtection:
    def __init__(self, client: Client, informers: InformerFactory, run_informers: bool = False) -> None:
        self.client = client
        self.pvcs: Informer = informers.informer(PVCS)
        self.pvs: Informer = informers.informer(PVS)
        self.pods: Informer = informers.informer("pods")
        self.queue = WorkQueue()
        self.pvcs.add_handler(self._on_claim)
        self.pvs.add_handler(self._on_volume)
        self.pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.pvcs, self.pvs, self.pods],
                                     workers=1, run_informers=run_informers)

    def _on_claim(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None and sto.meta(new).get("deletionTimestamp"):
            self.queue.add("claim:" + object_key(new))

    def _on_volume(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None and sto.meta(new).get("deletionTimestamp"):
            self.queue.add("volume:" + str(sto.meta(new).get("name", "")))

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        if obj is None:
            return
        ns = str(sto.meta(obj).get("namespace", ""))
        for claim in sto.pod_claim_names(obj):
            pvc = self.pvcs.get(ns, claim)
            if pvc is not None and sto.meta(pvc).get("deletionTimestamp"):
                self.queue.add(f"claim:{ns}/{claim}")

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            ns, name = split_key(rest)
            obj = self.pvcs.get(ns, name)
            if obj is None:
                return None
            fin, resource = sto.PVC_PROTECTION, PVCS
            in_use = claim_in_use(obj, self.pods.list(ns))
        else:
            obj = self.pvs.get("", rest)
            if obj is None:
                return None
            ns, fin, resource = "", sto.PV_PROTECTION, PVS
            in_use = sto.phase(obj) == "Bound"
        if not finalizer_to_remove(obj, fin, in_use):
            return None
        m = sto.meta(obj)
        rest_fins = [f for f in m.get("finalizers") or [] if f != fin]
        try:
            await self.client.patch(resource, ns, str(m.get("name", "")),
                                    {"metadata": {"finalizers": rest_fins or None, "resourceVersion": m.get("resourceVersion")}},
                                    field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise
        log.info("removed %s from %s %s", fin, resource, rest)
        return None
