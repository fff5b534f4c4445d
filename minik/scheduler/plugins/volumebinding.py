"""VolumeBinding / VolumeRestrictions: a pod's PersistentVolumeClaims decide where it can run.

For each claim the pod names (kube-scheduler's VolumeBinding filter):
- missing → `persistentvolumeclaim "x" not found`; being deleted → `persistentvolumeclaim "x"
  is being deleted`; a ReadWriteOncePod claim another pod already uses → VolumeRestrictions'
  conflict;
- bound → its volume's required node affinity must admit the node ("node(s) had volume node
  affinity conflict"), so a pod follows its local-path data to the node that holds it;
- unbound with a `WaitForFirstConsumer` class → the node is fine when a matching Available
  volume admits it or the class has a provisioner (the scheduler then records the node on the
  claim, `volume.kubernetes.io/selected-node`, and binds the pod once the claim is bound);
- unbound otherwise (Immediate binding) → "pod has unbound immediate PersistentVolumeClaims".
`unbound_delayed_claims` lists the claims the scheduler must annotate before binding.
Neighbours: `minik.machinery.storage` (matching), `minik.scheduler.scheduler` (annotation and
wait), `minik.controllers.pvbinder` / `localpath` (binding and provisioning).
"""

from __future__ import annotations

from minik.machinery import storage as sto
from minik.scheduler.state import ClusterState, Obj, VolumeLister

NOT_FOUND = 'persistentvolumeclaim "{}" not found'
AFFINITY_CONFLICT = "node(s) had volume node affinity conflict"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
NO_VOLUME = "node(s) didn't find available persistent volumes to bind"
RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"


def _delayed(pvc: Obj, vols: VolumeLister) -> bool:
    cls = sto.claim_class(pvc)
    sc = vols.storage_class(cls) if cls else None
    return sc is not None and sc.get("volumeBindingMode") == sto.WAIT_FOR_FIRST_CONSUMER


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    vols = state.volumes
    names = sto.pod_claim_names(pod)
    if vols is None or not names:
        return None
    ns = str(sto.meta(pod).get("namespace", ""))
    for name in names:
        pvc = vols.claim(ns, name)
        if pvc is None:
            return NOT_FOUND.format(name)
        if sto.meta(pvc).get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if "ReadWriteOncePod" in sto.access_modes(pvc) and _claim_taken(pod, ns, name, state):
            return RWOP_CONFLICT
        vol_name = (pvc.get("spec") or {}).get("volumeName") if isinstance(pvc.get("spec"), dict) else None
        if vol_name:
            pv = vols.volume(str(vol_name))
            if pv is None:
                return f'pvc {name}: volume "{vol_name}" not found'
            if not sto.volume_admits_node(pv, node):
                return AFFINITY_CONFLICT
            continue
        if not _delayed(pvc, vols):
            return UNBOUND_IMMEDIATE
        selected = sto.annotations_of(pvc).get(sto.ANN_SELECTED_NODE)
        if selected and selected != sto.meta(node).get("name"):
            # Already chosen for another node (provisioning may be under way there).
            return AFFINITY_CONFLICT
        if sto.best_volume(vols.volumes(), pvc, node) is not None:
            continue
        sc = vols.storage_class(sto.claim_class(pvc))
        if sc is None or not sc.get("provisioner") or sc.get("provisioner") == "kubernetes.io/no-provisioner":
            return NO_VOLUME
    return None


def _claim_taken(pod: Obj, ns: str, claim: str, state: ClusterState) -> bool:
    """Another unfinished pod on any node already uses this ReadWriteOncePod claim."""
    uid = sto.meta(pod).get("uid")
    for pods in state.pods_by_node.values():
        for other in pods:
            om = sto.meta(other)
            if om.get("uid") == uid or om.get("namespace") != ns:
                continue
            if (other.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            if claim in sto.pod_claim_names(other):
                return True
    return False


def unbound_delayed_claims(pod: Obj, vols: VolumeLister) -> list[Obj]:
    """The pod's WaitForFirstConsumer claims that are not bound yet."""
    ns = str(sto.meta(pod).get("namespace", ""))
    out = []
    for name in sto.pod_claim_names(pod):
        pvc = vols.claim(ns, name)
        if pvc is not None and not (pvc.get("spec") or {}).get("volumeName") and _delayed(pvc, vols):
            out.append(pvc)
    return out
