"""Admission on create, in kube-apiserver's order: mutating plugins, then validating ones.

1. LimitRanger (mutating half): container defaults from the namespace's LimitRanges.
2. DefaultStorageClass: a claim without `storageClassName` gets the default class.
3. StorageObjectInUseProtection: new claims and volumes get their protection finalizer.
4. LimitRanger (validating half): min / max / maxLimitRequestRatio for containers, pods, claims.
5. ResourceQuota: a create over a quota of its namespace → 403 "exceeded quota: …".
On update (claims only): PersistentVolumeClaimResize (a bound claim grows only when its class has
`allowVolumeExpansion`), then ResourceQuota on the growth.
Everything reads the store's in-memory cache (no SQL on the request path).
Neighbours: called by `minik.api.kinds.KindHooksImpl` (`before_create` for the mutating half,
`validate_admission` — which `minik.api.service` calls right after object validation — for the
validating half, `after_write` to end quota reservations); the plugins are
`minik.api.limitranger`, `minik.api.quota_admission`; class and finalizer names come from
`minik.machinery.storage`, which the PV controllers share.
"""

from __future__ import annotations

from minik.api import status as st
from minik.api.limitranger import LimitRanger
from minik.api.meta import Obj
from minik.api.quota_admission import QuotaAdmission
from minik.apis.registry import ResourceType
from minik.machinery import storage as sto
from minik.store.store import Store


class Admission:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.limits = LimitRanger(store)
        self.quota = QuotaAdmission(store)

    async def admit_create(self, rt: ResourceType, obj: Obj) -> None:
        """Mutating admission of a create (before object validation)."""
        core = rt.group == ""
        if core and rt.kind == "Pod":
            self.limits.default_pod(obj)
        elif core and rt.kind == "PersistentVolumeClaim":
            self._default_class(obj)
            _add_finalizer(obj, sto.PVC_PROTECTION)
            obj["status"] = {"phase": "Pending"}     # the registry's PrepareForCreate, as kube
        elif core and rt.kind == "PersistentVolume":
            _add_finalizer(obj, sto.PV_PROTECTION)
            obj["status"] = {"phase": "Pending"}

    async def validate(self, rt: ResourceType, obj: Obj, old: Obj | None) -> None:
        """Validating admission, after object validation (an invalid object is a 422, never a
        403 from a limit or a quota, and holds no quota reservation)."""
        if old is not None:
            await self._validate_update(rt, obj, old)
            return
        if rt.group == "" and rt.kind in ("Pod", "PersistentVolumeClaim"):
            self.limits.validate(rt, obj)
        if rt.namespaced:
            self.quota.admit(rt, obj)

    def created(self, obj: Obj) -> None:
        """A create is stored: the store's cache counts it from now on."""
        self.quota.release(obj)

    async def _validate_update(self, rt: ResourceType, obj: Obj, old: Obj) -> None:
        """PersistentVolumeClaimResize, then ResourceQuota on what an update adds: a claim that
        grows, a Service that becomes a NodePort or LoadBalancer (other updates add nothing a
        quota counts: pod resources are immutable)."""
        if rt.group == "" and rt.kind == "Service":
            self.quota.admit(rt, obj, old)
            return
        if rt.group != "" or rt.kind != "PersistentVolumeClaim":
            return
        new_q, old_q = sto.claim_request(obj), sto.claim_request(old)
        if new_q is None or old_q is None or not old_q < new_q:
            return
        if not (old.get("spec") or {}).get("volumeName"):
            return   # an unbound claim's size is not editable: validation answers 422
        cls = sto.claim_class(obj)
        sc = self.store.get("storage.k8s.io/storageclasses", "", cls) if cls else None
        if sc is None or sc.get("allowVolumeExpansion") is not True:
            name = str(obj["metadata"].get("name", ""))
            raise st.forbidden(f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc can be resized '
                               "and the storageclass that provisions the pvc must support resize", rt, name)
        self.quota.admit(rt, obj, old)

    def _default_class(self, pvc: Obj) -> None:
        """DefaultStorageClass: only a claim with no class at all (nil, not "") gets the default."""
        spec = pvc.setdefault("spec", {})
        if not isinstance(spec, dict) or spec.get("storageClassName") is not None:
            return
        if sto.ANN_BETA_CLASS in sto.annotations_of(pvc):
            return
        default = sto.default_class(self.store.list("storage.k8s.io/storageclasses", None).items)
        if default is not None:
            spec["storageClassName"] = default["metadata"]["name"]


def _add_finalizer(obj: Obj, name: str) -> None:
    m = obj.setdefault("metadata", {})
    fins = m.get("finalizers")
    if not isinstance(fins, list):
        fins = []
    if name not in fins:
        m["finalizers"] = [*fins, name]
