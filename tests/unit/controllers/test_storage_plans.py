"""Pure planners of the storage controllers: matching (machinery.storage), the PV binder's claim
and volume plans, the local-path provisioner's plans, pvc-protection's in-use rule."""

from __future__ import annotations

from typing import Any

import pytest

from minik.controllers import localpath, pvbinder, pvprotection
from minik.machinery import storage as sto

Obj = dict[str, Any]


def pvc(name: str = "c", size: str = "1Gi", cls: str | None = "manual", modes: tuple[str, ...] = ("ReadWriteOnce",),
        uid: str = "u1", **extra: Any) -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    spec.update(extra.pop("spec", {}))
    return {"metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "5", **extra}, "spec": spec}


def pv(name: str, size: str = "1Gi", cls: str = "manual", modes: tuple[str, ...] = ("ReadWriteOnce",),
       claim: Obj | None = None, phase: str = "Available", node: str = "", labels: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                 "hostPath": {"path": f"/srv/{name}"}, "persistentVolumeReclaimPolicy": "Retain"}
    if claim is not None:
        spec["claimRef"] = claim
    if node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    return {"metadata": {"name": name, "resourceVersion": "7", "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


WFFC = {"metadata": {"name": "local-path"}, "provisioner": sto.PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer",
        "reclaimPolicy": "Delete"}
IMMEDIATE = {"metadata": {"name": "fast"}, "provisioner": sto.PROVISIONER, "volumeBindingMode": "Immediate", "reclaimPolicy": "Retain"}


# ---- matching -------------------------------------------------------------------------------------

@pytest.mark.parametrize("volume,fits", [
    (pv("a"), True),
    (pv("a", size="500Mi"), False),                               # too small
    (pv("a", cls="other"), False),                                # another class
    (pv("a", modes=("ReadOnlyMany",)), False),                    # missing access mode
    (pv("a", modes=("ReadWriteOnce", "ReadWriteMany")), True),    # superset is fine
    (pv("a", claim={"name": "x", "namespace": "ns", "uid": "u9"}), False),   # someone else's
    (pv("a", claim={"name": "c", "namespace": "ns"}), True),      # pre-bound to us by name
    (pv("a", phase="Released"), False),
])
def test_volume_matches(volume: Obj, fits: bool) -> None:
    assert sto.volume_matches(volume, pvc()) is fits


def test_best_volume_is_smallest_then_prebound_first() -> None:
    vols = [pv("big", "10Gi"), pv("small", "2Gi"), pv("mid", "5Gi")]
    assert sto.best_volume(vols, pvc())["metadata"]["name"] == "small"  # type: ignore[index]
    vols.append(pv("mine", "10Gi", claim={"name": "c", "namespace": "ns", "uid": "u1"}))
    assert sto.best_volume(vols, pvc())["metadata"]["name"] == "mine"  # type: ignore[index]


def test_selector_and_selected_node_narrow_the_choice() -> None:
    claim = pvc(spec={"selector": {"matchLabels": {"tier": "gold"}}})
    assert sto.best_volume([pv("plain")], claim) is None
    assert sto.best_volume([pv("gold", labels={"tier": "gold"})], claim) is not None
    pinned = [pv("on-a", node="a"), pv("on-b", "2Gi", node="b")]
    assert sto.best_volume(pinned, pvc(), node("b"))["metadata"]["name"] == "on-b"  # type: ignore[index]


def test_default_class_newest_wins_and_beta_annotation() -> None:
    old = {"metadata": {"name": "old", "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": {sto.IS_DEFAULT_CLASS: "true"}}}
    new = {"metadata": {"name": "new", "creationTimestamp": "2026-02-01T00:00:00Z", "annotations": {sto.IS_DEFAULT_CLASS_BETA: "true"}}}
    plain = {"metadata": {"name": "plain"}}
    assert sto.default_class([old, new, plain])["metadata"]["name"] == "new"  # type: ignore[index]
    assert sto.default_class([plain]) is None


def test_pod_claim_names_include_ephemeral_volumes() -> None:
    pod = {"metadata": {"name": "p"}, "spec": {"volumes": [
        {"name": "a", "persistentVolumeClaim": {"claimName": "data"}}, {"name": "s", "emptyDir": {}},
        {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {}}}]}}
    assert sto.pod_claim_names(pod) == ["data", "p-scratch"]


# ---- binder ---------------------------------------------------------------------------------------

def _kinds(plan: pvbinder.Plan) -> list[tuple[str, str, str]]:
    return [(p.resource, p.name, p.subresource) for p in plan.patches]


def test_bind_patches_volume_first_with_precondition_then_claim() -> None:
    plan = pvbinder.plan_claim(pvc(), [pv("v1")], None, None)
    assert _kinds(plan) == [("persistentvolumes", "v1", ""), ("persistentvolumes", "v1", "status"),
                            ("persistentvolumeclaims", "c", ""), ("persistentvolumeclaims", "c", "status")]
    vol, _, claim, claim_status = plan.patches
    assert vol.rv == "7" and vol.body["spec"]["claimRef"]["uid"] == "u1"
    assert vol.body["metadata"]["annotations"] == {sto.ANN_BOUND_BY_CONTROLLER: "yes"}
    assert claim.rv == "5" and claim.body["spec"]["volumeName"] == "v1"
    assert claim.body["metadata"]["annotations"] == {sto.ANN_BIND_COMPLETED: "yes", sto.ANN_BOUND_BY_CONTROLLER: "yes"}
    assert claim_status.body["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}


def test_bound_pair_plans_nothing() -> None:
    claim = pvc(spec={"volumeName": "v1"}, annotations={sto.ANN_BIND_COMPLETED: "yes"})
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    vol = pv("v1", claim={"name": "c", "namespace": "ns", "uid": "u1"}, phase="Bound")
    assert pvbinder.plan_claim(claim, [vol], None, None) == pvbinder.Plan()
    assert pvbinder.plan_volume(vol, claim) == pvbinder.Plan()


def test_unbound_claim_outcomes() -> None:
    reasons = lambda plan: [(e.reason, e.message) for e in plan.events]  # noqa: E731
    assert reasons(pvbinder.plan_claim(pvc(cls=""), [], None, None)) == [
        ("FailedBinding", "no persistent volumes available for this claim and no storage class is set")]
    assert reasons(pvbinder.plan_claim(pvc(cls="gone"), [], None, None)) == [
        ("ProvisioningFailed", 'storageclass.storage.k8s.io "gone" not found')]
    assert reasons(pvbinder.plan_claim(pvc(cls="local-path"), [], WFFC, None)) == [
        ("WaitForFirstConsumer", "waiting for first consumer to be created before binding")]
    plan = pvbinder.plan_claim(pvc(cls="local-path"), [], WFFC, node("n1"))
    assert plan.events[0].reason == "ExternalProvisioning"
    ann = next(p for p in plan.patches if p.resource == "persistentvolumeclaims" and not p.subresource).body["metadata"]["annotations"]
    assert ann == {sto.ANN_STORAGE_PROVISIONER: sto.PROVISIONER, sto.ANN_STORAGE_PROVISIONER_BETA: sto.PROVISIONER}


def test_bound_claim_loses_its_volume() -> None:
    claim = pvc(spec={"volumeName": "v1"})
    claim["status"] = {"phase": "Bound"}
    plan = pvbinder.plan_claim(claim, [], None, None)
    assert plan.patches[0].body == {"status": {"phase": "Lost"}} and plan.events[0].reason == "ClaimLost"


@pytest.mark.parametrize("volume,claim,phase", [
    (pv("v", phase=""), None, "Available"),
    (pv("v", claim={"name": "c", "namespace": "ns", "uid": "u1"}, phase="Bound"), None, "Released"),
    (pv("v", claim={"name": "c", "namespace": "ns", "uid": "old"}, phase="Bound"), pvc(), "Released"),   # claim replaced
    (pv("v", claim={"name": "c", "namespace": "ns"}, phase=""), None, "Available"),                     # pre-bound, waiting
    (dict(pv("v", claim={"name": "c", "namespace": "ns", "uid": "u1"}, phase="Bound"),
          metadata={"name": "v", "deletionTimestamp": "2026-01-01T00:00:00Z"}), None, "Released"),   # being deleted too
])
def test_volume_phases(volume: Obj, claim: Obj | None, phase: str) -> None:
    plan = pvbinder.plan_volume(volume, claim)
    assert plan.patches[0].body == {"status": {"phase": phase}}


# ---- local-path provisioner -----------------------------------------------------------------------

def _marked(claim: Obj, node_name: str = "") -> Obj:
    anns = {sto.ANN_STORAGE_PROVISIONER: sto.PROVISIONER}
    if node_name:
        anns[sto.ANN_SELECTED_NODE] = node_name
    claim["metadata"]["annotations"] = anns
    return claim


def test_provision_waits_for_marking_and_selected_node() -> None:
    assert localpath.plan_claim(pvc(cls="local-path"), WFFC, None, "/st", "me") is None             # not marked
    assert localpath.plan_claim(_marked(pvc(cls="local-path")), WFFC, None, "/st", "me") is None    # no node yet
    prov = localpath.plan_claim(_marked(pvc(cls="local-path", size="2Gi"), "n2"), WFFC, None, "/st", "me")
    assert prov is not None and prov.node == "n2" and prov.path == "/st/pvc-u1_ns_c"
    spec = prov.volume["spec"]
    assert prov.volume["metadata"]["name"] == "pvc-u1"
    assert spec["capacity"] == {"storage": "2Gi"} and spec["persistentVolumeReclaimPolicy"] == "Delete"
    assert spec["hostPath"] == {"path": "/st/pvc-u1_ns_c", "type": "DirectoryOrCreate"}
    assert spec["claimRef"]["uid"] == "u1" and spec["storageClassName"] == "local-path"
    assert sto.volume_node_names(prov.volume) == ["n2"]
    # Immediate: this server's node; an existing volume: nothing more.
    imm = localpath.plan_claim(_marked(pvc(cls="fast")), IMMEDIATE, None, "/st", "me")
    assert imm is not None and imm.node == "me" and imm.volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert localpath.plan_claim(_marked(pvc(cls="fast")), IMMEDIATE, {"metadata": {}}, "/st", "me") is None
    other = dict(IMMEDIATE, provisioner="example.com/nfs")
    assert localpath.plan_claim(_marked(pvc(cls="fast")), other, None, "/st", "me") is None


def test_reclaim_only_released_delete_volumes_we_made() -> None:
    prov = localpath.plan_claim(_marked(pvc(cls="local-path"), "n1"), WFFC, None, "/st", "me")
    assert prov is not None
    vol = prov.volume
    assert localpath.plan_volume(vol) is None                     # not released yet
    vol["status"] = {"phase": "Released"}
    assert localpath.plan_volume(vol) == localpath.Reclaim("pvc-u1", "n1", "/st/pvc-u1_ns_c")
    vol["spec"]["persistentVolumeReclaimPolicy"] = "Retain"
    assert localpath.plan_volume(vol) is None
    static = pv("s", phase="Released")
    static["spec"]["persistentVolumeReclaimPolicy"] = "Delete"
    assert localpath.plan_volume(static) is None


def test_remove_dir_refuses_paths_outside_the_storage_dir(tmp_path: Any) -> None:
    inside = tmp_path / "st" / "pvc-1"
    inside.mkdir(parents=True)
    localpath._remove_dir(str(inside), str(tmp_path / "st"))
    assert not inside.exists()
    with pytest.raises(ValueError):
        localpath._remove_dir(str(tmp_path), str(tmp_path / "st"))


# ---- protection -----------------------------------------------------------------------------------

def test_claim_in_use_by_unfinished_pods_only() -> None:
    def pod(phase: str, claim: str = "c") -> Obj:
        return {"spec": {"volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim}}]}, "status": {"phase": phase}}
    claim = pvc()
    assert pvprotection.claim_in_use(claim, [pod("Running")])
    assert pvprotection.claim_in_use(claim, [pod("Pending")])
    assert not pvprotection.claim_in_use(claim, [pod("Succeeded"), pod("Failed"), pod("Running", "other")])
    claim["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    claim["metadata"]["finalizers"] = [sto.PVC_PROTECTION]
    assert pvprotection.finalizer_to_remove(claim, sto.PVC_PROTECTION, in_use=False)
    assert not pvprotection.finalizer_to_remove(claim, sto.PVC_PROTECTION, in_use=True)


def test_local_path_refuses_what_a_directory_cannot_be() -> None:
    assert localpath.unsupported(pvc()) == ""
    assert "ReadWriteMany" in localpath.unsupported(pvc(modes=("ReadWriteMany",)))
    assert localpath.unsupported(pvc(spec={"selector": {"matchLabels": {"a": "b"}}})) == "claim.Spec.Selector is not supported"
    assert "Block" in localpath.unsupported(pvc(spec={"volumeMode": "Block"}))


def test_claim_naming_a_volume_that_does_not_fit() -> None:
    claim = pvc(size="5Gi", spec={"volumeName": "v1"})
    plan = pvbinder.plan_claim(claim, [pv("v1", size="1Gi")], None, None)
    assert [(e.reason, e.message) for e in plan.events] == [("VolumeMismatch", 'Cannot bind to requested volume "v1": requested PV is too small')]
    assert all(p.resource == "persistentvolumeclaims" for p in plan.patches)
    fits = pvbinder.plan_claim(pvc(spec={"volumeName": "v1"}), [pv("v1")], None, None)
    assert fits.patches[0].resource == "persistentvolumes" and fits.patches[0].body["spec"]["claimRef"]["name"] == "c"
