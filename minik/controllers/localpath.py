"""The local-path provisioner (`minik.io/local-path`, k3s's default StorageClass `local-path`).

For a claim of a class with this provisioner, once the PV binder has marked it for provisioning
(`volume.kubernetes.io/storage-provisioner`) and — for `WaitForFirstConsumer` — the scheduler
has chosen its node (`volume.kubernetes.io/selected-node`), it creates a directory
`<storage-dir>/pvc-<uid>_<namespace>_<name>` (mode 0777, as k3s's, so non-root containers can
write) and a PersistentVolume `pvc-<uid>`: hostPath (DirectoryOrCreate) on that directory,
required node affinity `kubernetes.io/hostname In [<node>]`, the claim's size and access modes,
the class's reclaim policy, pre-bound to the claim (`claimRef` with its uid); the binder then
binds both. When such a volume is Released (its claim is gone) and its reclaim policy is Delete,
the directory is removed and the PV deleted; Retain keeps both. A claim a directory cannot serve
(ReadWriteMany/ReadOnlyMany, a selector, volumeMode Block) gets a ProvisioningFailed event.
Directories are made and removed here for volumes on this server's node (`node_name`); for another
node the agent creates the directory on first mount (DirectoryOrCreate).
`plan_claim`/`plan_volume` are pure; file work goes through `asyncio.to_thread`.
Neighbours: `minik.controllers.pvbinder`, `minik.machinery.storage`; built by `minik.daemon`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any

from minik.client import Client, ClientError, Obj
from minik.machinery import storage as sto
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.localpath")

COMPONENT = "minik.io/local-path"
PVCS, PVS, CLASSES = "persistentvolumeclaims", "persistentvolumes", "storage.k8s.io/storageclasses"


@dataclass(frozen=True, slots=True)
class Provision:
    node: str
    path: str
    volume: Obj


@dataclass(frozen=True, slots=True)
class Reclaim:
    name: str
    node: str
    path: str


def volume_name(pvc: Obj) -> str:
    return f"pvc-{sto.meta(pvc).get('uid', '')}"


def volume_dir(storage_dir: str, pvc: Obj) -> str:
    m = sto.meta(pvc)
    return os.path.join(storage_dir, f"pvc-{m.get('uid', '')}_{m.get('namespace', '')}_{m.get('name', '')}")


def plan_claim(pvc: Obj, storage_class: Obj | None, existing: Obj | None, storage_dir: str, default_node: str) -> Provision | None:
    """The volume to provision for `pvc`, or None (not ours, not ready, or already done)."""
    m = sto.meta(pvc)
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    if m.get("deletionTimestamp") or spec.get("volumeName") or existing is not None:
        return None
    if storage_class is None or storage_class.get("provisioner") != sto.PROVISIONER:
        return None
    ann = sto.annotations_of(pvc)
    if ann.get(sto.ANN_STORAGE_PROVISIONER) != sto.PROVISIONER and ann.get(sto.ANN_STORAGE_PROVISIONER_BETA) != sto.PROVISIONER:
        return None
    node = ann.get(sto.ANN_SELECTED_NODE) or ""
    if not node:
        if storage_class.get("volumeBindingMode") == sto.WAIT_FOR_FIRST_CONSUMER:
            return None
        node = default_node
    size = sto.claim_request(pvc)
    if size is None:
        return None
    path = volume_dir(storage_dir, pvc)
    pv: Obj = {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(pvc), "annotations": {sto.ANN_PROVISIONED_BY: sto.PROVISIONER,
                                                               "local.path.provisioner/selected-node": node}},
        "spec": {
            "capacity": {"storage": str(size)},
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": str(storage_class.get("reclaimPolicy") or "Delete"),
            "storageClassName": str(sto.meta(storage_class).get("name", "")),
            "volumeMode": sto.volume_mode(pvc),
            "hostPath": {"path": path, "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": m.get("namespace", ""),
                         "name": m.get("name", ""), "uid": m.get("uid", ""),
                         "resourceVersion": m.get("resourceVersion", "")},
        },
    }
    return Provision(node, path, pv)


def unsupported(pvc: Obj) -> str:
    """Why a directory cannot serve this claim ("" when it can), as local-path-provisioner says."""
    spec = pvc.get("spec") if isinstance(pvc.get("spec"), dict) else {}
    assert isinstance(spec, dict)
    for mode in spec.get("accessModes") or []:
        if mode not in ("ReadWriteOnce", "ReadWriteOncePod"):
            return f"NodePath only supports ReadWriteOnce and ReadWriteOncePod access modes, not {mode}"
    if spec.get("selector"):
        return "claim.Spec.Selector is not supported"
    if sto.volume_mode(pvc) == "Block":
        return "volumeMode Block is not supported: local-path volumes are directories"
    return ""


def plan_volume(pv: Obj, deleting_ok: bool = False) -> Reclaim | None:
    """A Released volume we provisioned whose policy is Delete: remove its directory and the PV
    (a volume its user is deleting already goes: only its directory is left to remove)."""
    if sto.annotations_of(pv).get(sto.ANN_PROVISIONED_BY) != sto.PROVISIONER:
        return None
    spec: Any = pv.get("spec") if isinstance(pv.get("spec"), dict) else {}
    if sto.phase(pv) != "Released" or spec.get("persistentVolumeReclaimPolicy") != "Delete":
        return None
    if sto.meta(pv).get("deletionTimestamp") and not deleting_ok:
        return None
    path = str((spec.get("hostPath") or {}).get("path") or (spec.get("local") or {}).get("path") or "")
    nodes = sto.volume_node_names(pv)
    return Reclaim(str(sto.meta(pv).get("name", "")), nodes[0] if nodes else "", path)


def _make_dir(path: str) -> None:
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o777)


def _remove_dir(path: str, root: str) -> None:
    # Only ever inside our storage directory: a PV edited to point elsewhere is not followed.
    real, base = os.path.realpath(path), os.path.realpath(root)
    if not real.startswith(base + os.sep):
        raise ValueError(f"{path} is outside the local-path storage directory {root}")
    if os.path.isdir(real):
        shutil.rmtree(real)


class LocalPathProvisioner:
    def __init__(self, client: Client, informers: InformerFactory, storage_dir: str, node_name: str,
                 recorder: EventRecorder | None = None, run_informers: bool = False) -> None:
        self.client, self.storage_dir, self.node_name = client, storage_dir, node_name
        self.pvcs: Informer = informers.informer(PVCS)
        self.pvs: Informer = informers.informer(PVS)
        self.classes: Informer = informers.informer(CLASSES)
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self.queue = WorkQueue()
        self._refused: dict[str, str] = {}     # claim uid → why it cannot be provisioned (said once)
        self._gone: dict[str, Reclaim] = {}     # deleted volumes whose directory is still to remove
        self.pvcs.add_handler(self._on_claim)
        self.pvs.add_handler(self._on_volume)
        self.controller = Controller("local-path-provisioner", self.queue, self.sync, [self.pvcs, self.pvs, self.classes],
                                     workers=1, run_informers=run_informers)

    def _on_claim(self, old: Obj | None, new: Obj | None) -> None:
        if new is None:
            if old is not None:
                self._refused.pop(str(sto.meta(old).get("uid", "")), None)
            return
        self.queue.add("claim:" + object_key(new))

    def _on_volume(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None:
            self.queue.add("volume:" + str(sto.meta(new).get("name", "")))
        elif old is not None:
            # Deleted by its user (and released, or pv-protection would still hold it): a
            # Delete-policy volume of ours takes its directory with it.
            rec = plan_volume(dict(old, status={"phase": "Released"}), deleting_ok=True)
            if rec is not None:
                self._gone[rec.name] = rec
                self.queue.add("gone:" + rec.name)

    async def run(self) -> None:
        await asyncio.to_thread(os.makedirs, self.storage_dir, 0o755, True)
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        kind, _, rest = key.partition(":")
        if kind == "claim":
            ns, name = split_key(rest)
            pvc = self.pvcs.get(ns, name)
            if pvc is None:
                return None
            cls_name = sto.claim_class(pvc)
            sc = self.classes.get("", cls_name) if cls_name else None
            prov = plan_claim(pvc, sc, self.pvs.get("", volume_name(pvc)), self.storage_dir, self.node_name)
            if prov is not None:
                why = unsupported(pvc)
                if why:
                    uid = str(sto.meta(pvc).get("uid", ""))
                    if self._refused.get(uid) != why:
                        self._refused[uid] = why
                        await self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                                  f'failed to provision volume with StorageClass "{sto.claim_class(pvc)}": {why}')
                    return None
                await self._provision(pvc, prov)
            return None
        if kind == "gone":
            gone = self._gone.pop(rest, None)
            if gone is not None and gone.path and (gone.node == self.node_name or not gone.node):
                await asyncio.to_thread(_remove_dir, gone.path, self.storage_dir)
                log.info("volume %s deleted: directory %s removed", gone.name, gone.path)
            return None
        pv = self.pvs.get("", rest)
        if pv is None:
            return None
        rec = plan_volume(pv)
        if rec is not None:
            await self._reclaim(pv, rec)
        return None

    async def _provision(self, pvc: Obj, prov: Provision) -> None:
        if prov.node == self.node_name:
            await asyncio.to_thread(_make_dir, prov.path)
        try:
            # The PV first: the binder starts on it while the events below are written (the
            # store commits concurrent writes together), which keeps them off the pod's path.
            await self.client.create(PVS, "", prov.volume, field_manager=COMPONENT)
        except ClientError as e:
            if e.code == 409:
                return  # created by an earlier sync the cache had not shown yet
            await self.recorder.event(pvc, "Warning", "ProvisioningFailed", f"failed to provision volume with StorageClass "
                                      f'"{sto.claim_class(pvc)}": {e.message}')
            raise
        log.info("provisioned %s for claim %s at %s on node %s", prov.volume["metadata"]["name"], object_key(pvc), prov.path, prov.node)
        await self.recorder.event(pvc, "Normal", "Provisioning",
                                  f'External provisioner is provisioning volume for claim "{object_key(pvc)}"')
        await self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                                  f'Successfully provisioned volume {prov.volume["metadata"]["name"]}')

    async def _reclaim(self, pv: Obj, rec: Reclaim) -> None:
        if rec.path and (rec.node == self.node_name or not rec.node):
            try:
                await asyncio.to_thread(_remove_dir, rec.path, self.storage_dir)
            except (OSError, ValueError) as e:
                await self.recorder.event(pv, "Warning", "VolumeFailedDelete", str(e))
                raise
        await self.client.delete(PVS, "", rec.name)
        log.info("deleted volume %s (reclaim policy Delete, directory %s removed)", rec.name, rec.path)
