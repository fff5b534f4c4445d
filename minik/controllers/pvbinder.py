"""The PersistentVolume binder: claims meet volumes (kube-controller-manager's PV controller).

Claims (key `claim:<ns>/<name>`):
- a claim that names a volume (`spec.volumeName`) is finished: the volume's `claimRef` points at
  it, both are `Bound`, the claim carries `pv.kubernetes.io/bind-completed` and the volume's
  capacity and access modes in its status; a bound claim whose volume is gone is `Lost`;
- an unbound claim takes the smallest Available volume of its class with enough capacity, the
  access modes and volume mode it wants, matching its selector (and, once the scheduler picked a
  node for a `WaitForFirstConsumer` claim, whose node affinity admits that node);
- none fits: a claim without a class stays Pending (FailedBinding); a class that does not exist
  stays Pending with a `ProvisioningFailed` event that says so; a `WaitForFirstConsumer` class
  waits for the scheduler's `volume.kubernetes.io/selected-node`; otherwise the claim is
  annotated `volume.kubernetes.io/storage-provisioner` for the class's provisioner
  (`minik.controllers.localpath`), which creates a volume pre-bound to it.
A `WaitForFirstConsumer` claim used by a pod its author placed on a node (`spec.nodeName`, no
scheduler) gets that node as its selected node. A bound local-path claim grown by its user (the
class allows expansion; admission checked it) has its volume's capacity and its status follow.
A claim with no class at all gets the default class once one exists (retroactive default).
Events are said once per claim (a resync repeating the same reason writes nothing).
Volumes (key `volume:<name>`): no claimRef → Available; the claim of the claimRef is gone (or
replaced: another uid) → Released, and the reclaim policy applies (Retain keeps it; Delete of a
provisioned volume is the provisioner's job); otherwise Bound.
`plan_claim` / `plan_volume` are pure; the controller patches with resourceVersion preconditions,
so two claims can never take the same volume from a stale cache (the loser gets 409 and retries).
Neighbours: `minik.machinery.storage` (matching), shared informers from `minik.daemon`; the
scheduler (`minik.scheduler.plugins.volumebinding`) sets the selected node.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Sequence

from minik.client import Client, ClientError, Obj
from minik.machinery import storage as sto
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.pvbinder")

COMPONENT = "persistentvolume-controller"
PVCS, PVS, CLASSES, NODES = "persistentvolumeclaims", "persistentvolumes", "storage.k8s.io/storageclasses", "nodes"


@dataclass(frozen=True, slots=True)
class Patch:
    """A merge patch of a volume or claim; `rv` is the resourceVersion precondition ("" none)."""
    resource: str
    namespace: str
    name: str
    body: dict[str, Any]
    subresource: str = ""
    rv: str = ""


@dataclass(frozen=True, slots=True)
class Event:
    obj: Obj
    type: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    patches: tuple[Patch, ...] = ()
    events: tuple[Event, ...] = ()
    requeue: tuple[str, ...] = field(default=())    # other keys to look at afterwards


def _rv(obj: Obj) -> str:
    return str(sto.meta(obj).get("resourceVersion") or "")


def claim_ref_to(pvc: Obj) -> dict[str, Any]:
    m = sto.meta(pvc)
    return {"kind": "PersistentVolumeClaim", "namespace": m.get("namespace", ""), "name": m.get("name", ""),
            "uid": m.get("uid", ""), "apiVersion": "v1", "resourceVersion": m.get("resourceVersion", "")}


def _status_patch(obj: Obj, resource: str, want: dict[str, Any]) -> Patch | None:
    """A status patch setting the `want` fields, or None when they already hold."""
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    assert isinstance(status, dict)
    if all(status.get(k) == v for k, v in want.items()):
        return None
    m = sto.meta(obj)
    return Patch(resource, str(m.get("namespace") or ""), str(m.get("name", "")), {"status": want}, "status")


def _bound_claim_status(pvc: Obj, pv: Obj) -> Patch | None:
    spec = pv.get("spec") if isinstance(pv.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    return _status_patch(pvc, PVCS, {"phase": "Bound", "accessModes": list(spec.get("accessModes") or []),
                                     "capacity": dict(spec.get("capacity") or {})})


def plan_claim(pvc: Obj, pvs: Sequence[Obj], storage_class: Obj | None, selected_node: Obj | None) -> Plan:
    m = sto.meta(pvc)
    if m.get("deletionTimestamp"):
        return Plan()
    ns, name = str(m.get("namespace", "")), str(m.get("name", ""))
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    vol_name = spec.get("volumeName")
    by_name = {str(sto.meta(v).get("name", "")): v for v in pvs}
    if vol_name:
        pv = by_name.get(str(vol_name))
        if pv is None:
            if sto.phase(pvc) == "Bound":
                p = _status_patch(pvc, PVCS, {"phase": "Lost"})
                return Plan(tuple(x for x in (p,) if x), (Event(pvc, "Warning", "ClaimLost",
                                                                 "Bound claim has lost its PersistentVolume. Data on the volume is lost!"),))
            p = _status_patch(pvc, PVCS, {"phase": "Pending"})
            return Plan(tuple(x for x in (p,) if x))
        ref = sto.claim_ref(pv)
        if ref and (ref.get("name") != name or ref.get("namespace") != ns or (ref.get("uid") and ref.get("uid") != m.get("uid"))):
            p = _status_patch(pvc, PVCS, {"phase": "Pending"})
            return Plan(tuple(x for x in (p,) if x), (Event(pvc, "Warning", "FailedBinding",
                                                             "volume \"%s\" already bound to a different claim." % vol_name),))
        grow = _expansion(pvc, pv, storage_class)
        if grow is not None:
            return Plan((grow,), (Event(pvc, "Normal", "FileSystemResizeSuccessful",
                                        f"MountVolume.NodeExpandVolume succeeded for volume \"{vol_name}\""),))
        why = sto.mismatch(pv, pvc) if not ref else ""
        if why:
            p = _status_patch(pvc, PVCS, {"phase": "Pending"})
            return Plan(tuple(x for x in (p,) if x), (Event(pvc, "Warning", "VolumeMismatch",
                                                             f'Cannot bind to requested volume "{vol_name}": {why}'),))
        return _finish_binding(pvc, pv, bind_volume=not ref or not ref.get("uid"))
    cls = sto.claim_class(pvc)
    wait = storage_class is not None and storage_class.get("volumeBindingMode") == sto.WAIT_FOR_FIRST_CONSUMER
    pending = _status_patch(pvc, PVCS, {"phase": "Pending"})
    base = tuple(x for x in (pending,) if x)
    if wait and selected_node is None:
        return Plan(base, (Event(pvc, "Normal", "WaitForFirstConsumer",
                                 "waiting for first consumer to be created before binding"),))
    pv = sto.best_volume(pvs, pvc, selected_node)
    if pv is not None:
        return _finish_binding(pvc, pv, bind_volume=True)
    if not cls:
        return Plan(base, (Event(pvc, "Normal", "FailedBinding",
                                 "no persistent volumes available for this claim and no storage class is set"),))
    if storage_class is None:
        return Plan(base, (Event(pvc, "Warning", "ProvisioningFailed", f'storageclass.storage.k8s.io "{cls}" not found'),))
    provisioner = str(storage_class.get("provisioner") or "")
    if provisioner == "kubernetes.io/no-provisioner":
        return Plan(base, (Event(pvc, "Normal", "FailedBinding", "no persistent volumes available for this claim"),))
    ann = sto.annotations_of(pvc)
    patches = list(base)
    if ann.get(sto.ANN_STORAGE_PROVISIONER) != provisioner or ann.get(sto.ANN_STORAGE_PROVISIONER_BETA) != provisioner:
        patches.append(Patch(PVCS, ns, name, {"metadata": {"annotations": {
            sto.ANN_STORAGE_PROVISIONER: provisioner, sto.ANN_STORAGE_PROVISIONER_BETA: provisioner}}}))
    return Plan(tuple(patches), (Event(pvc, "Normal", "ExternalProvisioning",
                                       f"Waiting for a volume to be created either by the external provisioner '{provisioner}' "
                                       "or manually by the system administrator. If volume creation is delayed, please verify "
                                       "that the provisioner is running and correctly registered."),))


def _expansion(pvc: Obj, pv: Obj, storage_class: Obj | None) -> Patch | None:
    """A bound local-path claim grown by its user (admission let it through: the class allows
    expansion): the volume's capacity follows, then the claim's status (a directory has no size to
    change, so the expansion is complete at once)."""
    if storage_class is None or storage_class.get("allowVolumeExpansion") is not True:
        return None
    if sto.annotations_of(pv).get(sto.ANN_PROVISIONED_BY) != sto.PROVISIONER:
        return None
    want, have = sto.claim_request(pvc), sto.volume_capacity(pv)
    if want is None or have is None or not have < want:
        return None
    return Patch(PVS, "", str(sto.meta(pv).get("name", "")), {"spec": {"capacity": {"storage": str(want)}}}, rv=_rv(pv))


def _finish_binding(pvc: Obj, pv: Obj, bind_volume: bool) -> Plan:
    """Volume first (claimRef with its resourceVersion as precondition, then Bound), then the
    claim (volumeName and bind-completed, then Bound with the volume's capacity)."""
    m = sto.meta(pvc)
    ns, name = str(m.get("namespace", "")), str(m.get("name", ""))
    pv_name = str(sto.meta(pv).get("name", ""))
    patches: list[Patch] = []
    ref = sto.claim_ref(pv)
    if bind_volume or not ref.get("uid"):
        body: dict[str, Any] = {"spec": {"claimRef": claim_ref_to(pvc)}}
        if not ref:
            body["metadata"] = {"annotations": {sto.ANN_BOUND_BY_CONTROLLER: "yes"}}
        patches.append(Patch(PVS, "", pv_name, body, rv=_rv(pv)))
    vs = _status_patch(pv, PVS, {"phase": "Bound"})
    if vs is not None or patches:
        patches.append(Patch(PVS, "", pv_name, {"status": {"phase": "Bound"}}, "status"))
    ann = sto.annotations_of(pvc)
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if spec.get("volumeName") != pv_name or ann.get(sto.ANN_BIND_COMPLETED) != "yes":
        anns = {sto.ANN_BIND_COMPLETED: "yes"}
        if spec.get("volumeName") != pv_name:
            anns[sto.ANN_BOUND_BY_CONTROLLER] = "yes"
        patches.append(Patch(PVCS, ns, name, {"metadata": {"annotations": anns}, "spec": {"volumeName": pv_name}}, rv=_rv(pvc)))
    cs = _bound_claim_status(pvc, pv)
    if cs is not None or any(p.resource == PVCS and not p.subresource for p in patches):
        pspec = pv.get("spec") if isinstance(pv.get("spec"), dict) else {}
        assert isinstance(pspec, dict)
        patches.append(Patch(PVCS, ns, name, {"status": {"phase": "Bound", "accessModes": list(pspec.get("accessModes") or []),
                                                         "capacity": dict(pspec.get("capacity") or {})}}, "status"))
    return Plan(tuple(patches))


def plan_volume(pv: Obj, claim: Obj | None) -> Plan:
    # A volume being deleted still moves Bound → Released when its claim goes: pv-protection
    # waits for exactly that before it lets the deletion finish.
    m = sto.meta(pv)
    ref = sto.claim_ref(pv)
    if not ref:
        p = _status_patch(pv, PVS, {"phase": "Available"})
        return Plan(tuple(x for x in (p,) if x))
    ns, name = str(ref.get("namespace", "")), str(ref.get("name", ""))
    claim_key = f"claim:{ns}/{name}"
    if claim is None or (ref.get("uid") and sto.meta(claim).get("uid") != ref.get("uid")):
        if not ref.get("uid"):
            # Pre-bound by the user to a claim that does not exist yet: still Available to it.
            p = _status_patch(pv, PVS, {"phase": "Available"})
            return Plan(tuple(x for x in (p,) if x))
        if sto.phase(pv) == "Released":
            return Plan()
        p = _status_patch(pv, PVS, {"phase": "Released"})
        events: tuple[Event, ...] = ()
        policy = str((pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain")
        if policy == "Delete" and sto.annotations_of(pv).get(sto.ANN_PROVISIONED_BY) != sto.PROVISIONER:
            events = (Event(pv, "Warning", "VolumeFailedDelete", "error getting deleter volume plugin for volume "
                            f'"{m.get("name", "")}": no deletable volume plugin matched'),)
        return Plan(tuple(x for x in (p,) if x), events)
    spec = claim.get("spec") if isinstance(claim.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if spec.get("volumeName") == m.get("name"):
        p = _status_patch(pv, PVS, {"phase": "Bound"})
        return Plan(tuple(x for x in (p,) if x), requeue=(claim_key,) if sto.phase(claim) != "Bound" else ())
    # The claim has not taken this volume yet: the claim's sync finishes the binding.
    return Plan(requeue=(claim_key,))


class PVBinder:
    def __init__(self, client: Client, informers: InformerFactory, recorder: EventRecorder | None = None,
                 run_informers: bool = False) -> None:
        self.client = client
        self.pvcs: Informer = informers.informer(PVCS)
        self.pvs: Informer = informers.informer(PVS)
        self.classes: Informer = informers.informer(CLASSES)
        self.nodes: Informer = informers.informer(NODES)
        self.pods: Informer = informers.informer("pods")
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self.queue = WorkQueue()
        # The last event told about each object (uid): a sync that would say the same again
        # stays silent, so resyncs (a volume appearing, a restart) write no repeats.
        self._told: dict[str, tuple[str, str]] = {}
        self.pvcs.add_handler(self._on_claim)
        self.pvs.add_handler(self._on_volume)
        self.classes.add_handler(self._on_class)
        self.pods.add_handler(self._on_pod)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.pvcs, self.pvs, self.classes, self.nodes, self.pods],
                                     workers=1, run_informers=run_informers)

    def _on_claim(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        self.queue.add("claim:" + object_key(obj))
        vol = ((obj.get("spec") or {}).get("volumeName")) if isinstance(obj.get("spec"), dict) else None
        if vol:
            self.queue.add(f"volume:{vol}")
        if new is None:
            self._told.pop(str(sto.meta(obj).get("uid", "")), None)
            # A deleted claim releases the volumes that point at it.
            for pv in self.pvs.list():
                ref = sto.claim_ref(pv)
                if ref.get("name") == sto.meta(obj).get("name") and ref.get("namespace") == sto.meta(obj).get("namespace"):
                    self.queue.add("volume:" + str(sto.meta(pv).get("name", "")))

    def _on_volume(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        assert obj is not None
        self.queue.add("volume:" + str(sto.meta(obj).get("name", "")))
        if new is not None and sto.phase(new) in ("", "Available", "Pending"):
            # A volume became available: unbound claims may now fit.
            for pvc in self.pvcs.list():
                if not (pvc.get("spec") or {}).get("volumeName"):
                    self.queue.add("claim:" + object_key(pvc))
        ref = sto.claim_ref(obj)
        if ref.get("name"):
            self.queue.add(f"claim:{ref.get('namespace', '')}/{ref.get('name')}")

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        # A pod placed on a node without the scheduler (spec.nodeName set by its author) is the
        # first consumer of its WaitForFirstConsumer claims.
        if new is None or not (new.get("spec") or {}).get("nodeName") or (old is not None and (old.get("spec") or {}).get("nodeName")):
            return
        ns = str(sto.meta(new).get("namespace", ""))
        for claim in sto.pod_claim_names(new):
            self.queue.add(f"claim:{ns}/{claim}")

    def _scheduled_consumer(self, pvc: Obj) -> str:
        """The node of a pod that uses the claim and is already on a node ("" when none)."""
        m = sto.meta(pvc)
        for pod in self.pods.list(str(m.get("namespace", ""))):
            node = (pod.get("spec") or {}).get("nodeName")
            if node and m.get("name") in sto.pod_claim_names(pod) and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                return str(node)
        return ""

    def _on_class(self, old: Obj | None, new: Obj | None) -> None:
        for pvc in self.pvcs.list():
            if sto.phase(pvc) != "Bound":
                self.queue.add("claim:" + object_key(pvc))

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            ns, name = split_key(rest)
            pvc = self.pvcs.get(ns, name)
            if pvc is None:
                return None
            spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
            assert isinstance(spec, dict)
            if spec.get("storageClassName") is None and not spec.get("volumeName") and sto.ANN_BETA_CLASS not in sto.annotations_of(pvc):
                # Retroactive default class (Kubernetes 1.28+): a claim created while there was no
                # default class gets the one that appeared since.
                default = sto.default_class(self.classes.list())
                if default is not None:
                    await self.client.patch(PVCS, ns, name, {"metadata": {"resourceVersion": sto.meta(pvc).get("resourceVersion")},
                                                             "spec": {"storageClassName": sto.meta(default).get("name")}},
                                            field_manager=COMPONENT)
                    return None
            cls_name = sto.claim_class(pvc)
            sc = self.classes.get("", cls_name) if cls_name else None
            node_name = sto.annotations_of(pvc).get(sto.ANN_SELECTED_NODE)
            if (not node_name and not (pvc.get("spec") or {}).get("volumeName") and sc is not None
                    and sc.get("volumeBindingMode") == sto.WAIT_FOR_FIRST_CONSUMER):
                node_name = self._scheduled_consumer(pvc)
                if node_name:
                    await self.client.patch(PVCS, ns, name, {"metadata": {"annotations": {sto.ANN_SELECTED_NODE: node_name}}},
                                            field_manager=COMPONENT)
                    return None    # the claim's change brings it back with the node recorded
            node = self.nodes.get("", node_name) if node_name else None
            if node_name and node is None:
                node = {"metadata": {"name": node_name, "labels": {"kubernetes.io/hostname": node_name}}}
            plan = plan_claim(pvc, self.pvs.list(), sc, node)
        else:
            pv = self.pvs.get("", rest)
            if pv is None:
                return None
            ref = sto.claim_ref(pv)
            claim = self.pvcs.get(str(ref.get("namespace", "")), str(ref.get("name", ""))) if ref else None
            plan = plan_volume(pv, claim)
        await self._apply(plan)
        return None

    async def _apply(self, plan: Plan) -> None:
        for p in plan.patches:
            body = dict(p.body)
            if p.rv:
                body["metadata"] = dict(body.get("metadata") or {})
                body["metadata"]["resourceVersion"] = p.rv
            try:
                await self.client.patch(p.resource, p.namespace, p.name, body, subresource=p.subresource,
                                        field_manager=COMPONENT)
            except ClientError as e:
                if e.not_found:
                    return
                raise
        for ev in plan.events:
            uid = str(sto.meta(ev.obj).get("uid", ""))
            if self._told.get(uid) == (ev.reason, ev.message):
                continue
            self._told[uid] = (ev.reason, ev.message)
            await self.recorder.event(ev.obj, ev.type, ev.reason, ev.message)
        for k in plan.requeue:
            self.queue.add(k)
