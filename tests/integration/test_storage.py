"""Storage controllers in process: a real store + resource service behind `LocalClient`, the shared
informers, the PV binder, the local-path provisioner (directories under the test's tmp dir),
in-use protection and the scheduler, with a Ready Node and no node agent.

- static PVs bind to matching claims (class, size, access modes), the smallest first; a claim
  nothing fits stays Pending with FailedBinding; a claim of a missing class stays Pending with a
  ProvisioningFailed event naming the class;
- a claim without a class gets the default one; WaitForFirstConsumer waits for a pod, the
  scheduler records its node, the provisioner makes the directory and a PV pinned to the node,
  the binder binds both, and only then is the pod bound;
- pvc-protection keeps a claim in use until its pod is gone; reclaim Delete removes the PV and the
  directory, Retain keeps both (PV Released).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client import Obj
from minik.client.local import LocalClient
from minik.controllers.localpath import LocalPathProvisioner
from minik.controllers.pvbinder import PVBinder
from minik.controllers.pvprotection import PVProtection
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor
from minik.scheduler.scheduler import Scheduler
from minik.store.store import Store

NS = "default"
NODE = "n1"
PVCS, PVS = "persistentvolumeclaims", "persistentvolumes"


async def eventually(fn: Callable[[], Awaitable[object]], timeout: float = 15.0, what: str = "") -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        v = await fn()
        if v:
            return v
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Env:
    client: LocalClient
    storage: Path

    async def pvc(self, name: str) -> Obj:
        o = await self.client.get(PVCS, NS, name)
        assert o is not None
        return o

    async def phase(self, resource: str, name: str) -> str:
        o = await self.client.get(resource, NS if resource == PVCS else "", name)
        return str(((o or {}).get("status") or {}).get("phase", "")) if o else "<gone>"

    async def events(self, name: str) -> list[tuple[str, str]]:
        items, _ = await self.client.list("events", NS)
        return [(e["reason"], e["message"]) for e in items if e["involvedObject"]["name"] == name]

    async def claim(self, name: str, size: str = "1Gi", cls: str | None = None, modes: tuple[str, ...] = ("ReadWriteOnce",)) -> Obj:
        spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
        if cls is not None:
            spec["storageClassName"] = cls
        return await self.client.create(PVCS, NS, {"metadata": {"name": name}, "spec": spec})

    async def volume(self, name: str, size: str, cls: str, path: str = "/tmp/x") -> Obj:
        return await self.client.create(PVS, "", {"metadata": {"name": name}, "spec": {
            "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
            "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": path}}})

    async def storage_class(self, name: str, mode: str = "WaitForFirstConsumer", reclaim: str = "Delete", default: bool = False) -> None:
        meta: Obj = {"name": name}
        if default:
            meta["annotations"] = {"storageclass.kubernetes.io/is-default-class": "true"}
        await self.client.create("storage.k8s.io/storageclasses", "", {"metadata": meta, "provisioner": "minik.io/local-path",
                                                                       "reclaimPolicy": reclaim, "volumeBindingMode": mode})


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    client = LocalClient(ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16")))
    await client.create("namespaces", "", {"metadata": {"name": NS}})
    await client.create("nodes", "", {"metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                                      "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                 "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"}}})
    sup = Supervisor(max_backoff=1.0)
    informers = InformerFactory(client, sup)
    storage = tmp_path / "storage"
    for name, run in (("binder", PVBinder(client, informers).run),
                      ("provisioner", LocalPathProvisioner(client, informers, str(storage), NODE).run),
                      ("protection", PVProtection(client, informers).run),
                      ("scheduler", Scheduler(client, informers=informers).run)):
        sup.spawn(name, run)
    informers.start()
    try:
        yield Env(client, storage)
    finally:
        await sup.stop()
        await store.close()


async def test_static_volumes_bind_by_class_size_and_modes(env: Env) -> None:
    await env.volume("small", "1Gi", "manual")
    await env.volume("big", "5Gi", "manual")
    await env.volume("other-class", "1Gi", "fast")
    await env.claim("c1", "500Mi", "manual")
    await eventually(lambda: env.phase(PVCS, "c1"), what="c1 phase")
    await eventually(lambda: _eq(env.phase(PVCS, "c1"), "Bound"), what="c1 Bound")
    c1 = await env.pvc("c1")
    assert c1["spec"]["volumeName"] == "small"       # the smallest that fits
    assert c1["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert c1["status"]["capacity"] == {"storage": "1Gi"} and c1["status"]["accessModes"] == ["ReadWriteOnce"]
    assert "kubernetes.io/pvc-protection" in c1["metadata"]["finalizers"]
    pv = await env.client.get(PVS, "", "small")
    assert pv is not None and pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["name"] == "c1" and pv["spec"]["claimRef"]["uid"] == c1["metadata"]["uid"]
    assert "kubernetes.io/pv-protection" in pv["metadata"]["finalizers"]
    # Wrong access mode: nothing fits, the claim waits (its class has no StorageClass object to
    # provision from, which kube reports as ProvisioningFailed); a fitting volume added later is taken.
    await env.claim("rwx", "1Gi", "manual", ("ReadWriteMany",))
    await eventually(lambda: _has_event(env, "rwx", "ProvisioningFailed"), what="ProvisioningFailed")
    assert await env.phase(PVCS, "rwx") == "Pending"
    await env.client.create(PVS, "", {"metadata": {"name": "shared"}, "spec": {
        "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteMany", "ReadWriteOnce"], "storageClassName": "manual",
        "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/tmp/shared"}}})
    await eventually(lambda: _eq(env.phase(PVCS, "rwx"), "Bound"), what="rwx Bound")
    assert (await env.pvc("rwx"))["spec"]["volumeName"] == "shared"
    # pv-protection: a Bound volume being deleted stays (Terminating) until its claim lets go.
    await env.client.delete(PVS, "", "shared")
    await asyncio.sleep(0.3)
    shared = await env.client.get(PVS, "", "shared")
    assert shared is not None and shared["metadata"].get("deletionTimestamp")
    await env.client.delete(PVCS, NS, "rwx")
    await eventually(lambda: _eq(env.phase(PVS, "shared"), "<gone>"), what="shared volume gone once released")
    # Retain: deleting the claim leaves the volume Released.
    await env.client.delete(PVCS, NS, "c1")
    await eventually(lambda: _eq(env.phase(PVS, "small"), "Released"), what="small Released")
    assert await env.phase(PVCS, "c1") == "<gone>"


async def test_missing_class_stays_pending_with_event(env: Env) -> None:
    await env.claim("classless", "1Gi", "")
    await eventually(lambda: _has_event(env, "classless", "FailedBinding"), what="FailedBinding")
    assert ("FailedBinding", "no persistent volumes available for this claim and no storage class is set") in await env.events("classless")
    created = await env.claim("lost", "1Gi", "nope")
    assert created["status"] == {"phase": "Pending"}         # from the create on, as kube's registry
    await eventually(lambda: _has_event(env, "lost", "ProvisioningFailed"), what="ProvisioningFailed")
    assert ("ProvisioningFailed", 'storageclass.storage.k8s.io "nope" not found') in await env.events("lost")
    assert await env.phase(PVCS, "lost") == "Pending"


async def test_wait_for_first_consumer_provisions_on_the_pods_node(env: Env) -> None:
    await env.storage_class("local-path", default=True)
    await env.claim("data")
    pvc = await env.pvc("data")
    assert pvc["spec"]["storageClassName"] == "local-path"    # DefaultStorageClass admission
    await eventually(lambda: _has_event(env, "data", "WaitForFirstConsumer"), what="WaitForFirstConsumer")
    assert await env.phase(PVCS, "data") == "Pending"
    await env.client.create("pods", NS, {"metadata": {"name": "user"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}})
    await eventually(lambda: _eq(env.phase(PVCS, "data"), "Bound"), what="data Bound")
    pvc = await env.pvc("data")
    uid = pvc["metadata"]["uid"]
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE
    assert pvc["spec"]["volumeName"] == f"pvc-{uid}"
    pv = await env.client.get(PVS, "", f"pvc-{uid}")
    assert pv is not None
    path = str(env.storage / f"pvc-{uid}_{NS}_data")
    assert pv["spec"]["hostPath"]["path"] == path and os.path.isdir(path)
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [NODE]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == "minik.io/local-path"

    async def pod_node() -> str:
        p = await env.client.get("pods", NS, "user")
        return str(((p or {}).get("spec") or {}).get("nodeName") or "")
    assert await eventually(pod_node, what="pod bound") == NODE
    # In use: the claim stays (Terminating) until the pod is gone.
    await env.client.delete(PVCS, NS, "data")
    await asyncio.sleep(0.5)
    pvc = await env.pvc("data")
    assert pvc["metadata"].get("deletionTimestamp") and os.path.isdir(path)
    await env.client.delete("pods", NS, "user", grace_period_seconds=0)
    await eventually(lambda: _eq(env.phase(PVCS, "data"), "<gone>"), what="claim gone")
    await eventually(lambda: _eq(env.phase(PVS, f"pvc-{uid}"), "<gone>"), what="volume deleted")
    assert not os.path.exists(path)


async def test_retain_class_keeps_volume_and_directory(env: Env) -> None:
    await env.storage_class("keep", mode="Immediate", reclaim="Retain")
    await env.claim("kept", "100Mi", "keep")
    await eventually(lambda: _eq(env.phase(PVCS, "kept"), "Bound"), what="kept Bound")
    pvc = await env.pvc("kept")
    path = str(env.storage / f"pvc-{pvc['metadata']['uid']}_{NS}_kept")
    assert os.path.isdir(path)
    await env.client.delete(PVCS, NS, "kept")
    await eventually(lambda: _eq(env.phase(PVS, pvc["spec"]["volumeName"]), "Released"), what="Released")
    await asyncio.sleep(0.3)
    assert os.path.isdir(path) and await env.phase(PVS, pvc["spec"]["volumeName"]) == "Released"


async def _eq(v: Awaitable[str], want: str) -> bool:
    return await v == want


async def _has_event(env: Env, name: str, reason: str) -> bool:
    return any(r == reason for r, _ in await env.events(name))


async def test_pod_placed_by_its_author_is_the_first_consumer(env: Env) -> None:
    """spec.nodeName set without the scheduler: the binder records that node on the claim, as the
    PV controller does for already-scheduled consumers, and the volume is provisioned there."""
    await env.storage_class("local-path", default=True)
    await env.claim("pinned")
    await env.client.create("pods", NS, {"metadata": {"name": "placed"}, "spec": {
        "nodeName": NODE, "containers": [{"name": "c", "image": "busybox"}],
        "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "pinned"}}]}})
    await eventually(lambda: _eq(env.phase(PVCS, "pinned"), "Bound"), what="pinned Bound")
    pvc = await env.pvc("pinned")
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == NODE


async def test_resize_needs_an_expandable_class_and_quota_room(env: Env) -> None:
    from minik.client import ClientError
    await env.storage_class("fixed", mode="Immediate")
    await env.client.create("storage.k8s.io/storageclasses", "", {"metadata": {"name": "grow"}, "provisioner": "minik.io/local-path",
                                                                   "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
                                                                   "allowVolumeExpansion": True})
    await env.claim("small", "1Gi", "fixed")
    await env.claim("elastic", "1Gi", "grow")
    await eventually(lambda: _eq(env.phase(PVCS, "small"), "Bound"), what="small Bound")
    await eventually(lambda: _eq(env.phase(PVCS, "elastic"), "Bound"), what="elastic Bound")
    with pytest.raises(ClientError) as e:
        await env.client.patch(PVCS, NS, "small", {"spec": {"resources": {"requests": {"storage": "2Gi"}}}})
    assert e.value.code == 403 and e.value.message == ('persistentvolumeclaims "small" is forbidden: only dynamically provisioned pvc '
                                                       "can be resized and the storageclass that provisions the pvc must support resize")
    await env.client.patch(PVCS, NS, "elastic", {"spec": {"resources": {"requests": {"storage": "3Gi"}}}})

    async def capacity() -> str:
        return str(((await env.pvc("elastic")).get("status") or {}).get("capacity", {}).get("storage"))
    await eventually(lambda: _eq(capacity(), "3Gi"), what="capacity follows the request")
    pv = await env.client.get(PVS, "", (await env.pvc("elastic"))["spec"]["volumeName"])
    assert pv is not None and pv["spec"]["capacity"] == {"storage": "3Gi"}
    # Growth counts against a quota: 1Gi + 3Gi used, 5Gi hard → growing by 2Gi is refused.
    await env.client.create("resourcequotas", NS, {"metadata": {"name": "disk"}, "spec": {"hard": {"requests.storage": "5Gi"}}})
    with pytest.raises(ClientError) as e:
        await env.client.patch(PVCS, NS, "elastic", {"spec": {"resources": {"requests": {"storage": "5Gi"}}}})
    assert e.value.code == 403 and ("exceeded quota: disk, requested: requests.storage=2Gi, used: requests.storage=4Gi, "
                                    "limited: requests.storage=5Gi") in e.value.message


async def test_shared_access_is_refused_by_local_path(env: Env) -> None:
    await env.storage_class("now", mode="Immediate")
    await env.claim("shared", "1Gi", "now", ("ReadWriteMany",))
    await eventually(lambda: _has_event(env, "shared", "ProvisioningFailed"), what="ProvisioningFailed")
    assert ("ProvisioningFailed", 'failed to provision volume with StorageClass "now": NodePath only supports ReadWriteOnce '
            "and ReadWriteOncePod access modes, not ReadWriteMany") in await env.events("shared")
    assert await env.phase(PVCS, "shared") == "Pending"


async def test_default_class_is_given_retroactively(env: Env) -> None:
    await env.claim("early")                       # no default class yet: stays classless
    await eventually(lambda: _has_event(env, "early", "FailedBinding"), what="FailedBinding")
    assert "storageClassName" not in (await env.pvc("early"))["spec"]
    await env.claim("explicit-none", cls="")       # "" means no class, for good
    await env.storage_class("local-path", mode="Immediate", default=True)

    async def cls() -> str:
        return str((await env.pvc("early"))["spec"].get("storageClassName") or "")
    await eventually(lambda: _eq(cls(), "local-path"), what="default class given")
    await eventually(lambda: _eq(env.phase(PVCS, "early"), "Bound"), what="early Bound")
    assert (await env.pvc("explicit-none"))["spec"]["storageClassName"] == ""


async def test_user_deleted_local_volume_goes_with_its_directory_once_released(env: Env) -> None:
    await env.storage_class("now", mode="Immediate")
    await env.claim("doomed", "10Mi", "now")
    await eventually(lambda: _eq(env.phase(PVCS, "doomed"), "Bound"), what="doomed Bound")
    pvc = await env.pvc("doomed")
    vol, path = pvc["spec"]["volumeName"], str(env.storage / f"pvc-{pvc['metadata']['uid']}_{NS}_doomed")
    await env.client.delete(PVS, "", vol)
    await asyncio.sleep(0.3)
    assert await env.phase(PVS, vol) == "Bound" and os.path.isdir(path)     # pv-protection: still bound
    await env.client.delete(PVCS, NS, "doomed")
    await eventually(lambda: _eq(env.phase(PVS, vol), "<gone>"), what="volume gone")
    await eventually(lambda: _false(os.path.exists(path)), what="directory removed")


async def _false(v: bool) -> bool:
    return not v
