"""The VolumeBinding filter: a pod follows its bound volumes' node affinity; WaitForFirstConsumer
claims go where a volume can be had; Immediate claims must be bound first."""

from __future__ import annotations

from typing import Any

from minik.machinery import storage as sto
from minik.scheduler.plugins import volumebinding as vb
from minik.scheduler.state import ClusterState

Obj = dict[str, Any]


class Vols:
    def __init__(self, claims: list[Obj], volumes: list[Obj], classes: list[Obj]) -> None:
        self._c = {c["metadata"]["name"]: c for c in claims}
        self._v = {v["metadata"]["name"]: v for v in volumes}
        self._s = {s["metadata"]["name"]: s for s in classes}

    def claim(self, namespace: str, name: str) -> Obj | None:
        return self._c.get(name)

    def volume(self, name: str) -> Obj | None:
        return self._v.get(name)

    def storage_class(self, name: str) -> Obj | None:
        return self._s.get(name)

    def volumes(self) -> list[Obj]:
        return list(self._v.values())


def node(name: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}


def claim(name: str, cls: str = "local-path", volume: str = "", selected: str = "", deleting: bool = False) -> Obj:
    m: Obj = {"name": name, "namespace": "ns", "annotations": {sto.ANN_SELECTED_NODE: selected} if selected else {}}
    if deleting:
        m["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    spec: Obj = {"storageClassName": cls, "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    if volume:
        spec["volumeName"] = volume
    return {"metadata": m, "spec": spec}


def volume(name: str, node_name: str, cls: str = "local-path") -> Obj:
    return {"metadata": {"name": name}, "status": {"phase": "Available"}, "spec": {
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
        "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}}}


WFFC = {"metadata": {"name": "local-path"}, "provisioner": sto.PROVISIONER, "volumeBindingMode": "WaitForFirstConsumer"}
STATIC = {"metadata": {"name": "local"}, "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "WaitForFirstConsumer"}
IMMEDIATE = {"metadata": {"name": "now"}, "provisioner": sto.PROVISIONER, "volumeBindingMode": "Immediate"}

POD = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}}


def run(claims: list[Obj], volumes: list[Obj], node_name: str) -> str | None:
    return vb.filter(POD, node(node_name), ClusterState(volumes=Vols(claims, volumes, [WFFC, STATIC, IMMEDIATE])))


def test_bound_claim_pins_the_pod_to_its_volume_node() -> None:
    claims, vols = [claim("data", volume="pv1")], [volume("pv1", "a")]
    assert run(claims, vols, "a") is None
    assert run(claims, vols, "b") == "node(s) had volume node affinity conflict"


def test_missing_deleting_and_immediate_unbound_claims() -> None:
    assert run([], [], "a") == 'persistentvolumeclaim "data" not found'
    assert run([claim("data", deleting=True)], [], "a") == 'persistentvolumeclaim "data" is being deleted'
    assert run([claim("data", cls="now")], [], "a") == "pod has unbound immediate PersistentVolumeClaims"


def test_wait_for_first_consumer() -> None:
    assert run([claim("data")], [], "a") is None                         # the provisioner will make one anywhere
    assert run([claim("data", selected="b")], [], "a") == "node(s) had volume node affinity conflict"
    # No provisioner: only nodes with a matching local volume.
    assert run([claim("data", cls="local")], [volume("v", "b", cls="local")], "b") is None
    assert run([claim("data", cls="local")], [volume("v", "b", cls="local")], "a") == vb.NO_VOLUME
    assert [c["metadata"]["name"] for c in vb.unbound_delayed_claims(POD, Vols([claim("data")], [], [WFFC]))] == ["data"]
    assert vb.unbound_delayed_claims(POD, Vols([claim("data", volume="v")], [], [WFFC])) == []


def test_read_write_once_pod_claim_is_one_pods_only() -> None:
    c = claim("data", volume="pv1")
    c["spec"]["accessModes"] = ["ReadWriteOncePod"]
    vols = Vols([c], [volume("pv1", "a")], [WFFC])
    holder = {"metadata": {"name": "h", "namespace": "ns", "uid": "h1"}, "spec": POD["spec"], "status": {"phase": "Running"}}
    busy = ClusterState(pods_by_node={"a": [holder]}, volumes=vols)
    assert vb.filter(POD, node("a"), busy) == vb.RWOP_CONFLICT
    done = dict(holder, status={"phase": "Succeeded"})
    assert vb.filter(POD, node("a"), ClusterState(pods_by_node={"a": [done]}, volumes=vols)) is None
