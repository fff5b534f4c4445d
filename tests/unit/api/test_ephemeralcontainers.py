"""pods/ephemeralcontainers through the resource service (over a temporary SQLite store): writes
there change spec.ephemeralContainers only, for PUT and every patch type; existing ones cannot
change; the pod's own update path cannot touch them."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minik.api import status as st
from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService, WriteOptions
from minik.apis.registry import Registry, ResourceType
from minik.apis.schema import Schemas
from minik.store.store import Store

Obj = dict[str, Any]
NS = "dbg"
SUB = WriteOptions(field_manager="kubectl", subresource="ephemeralcontainers")
SMP = "application/strategic-merge-patch+json"


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[tuple[ResourceService, ResourceType]]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    ns_rt, pod_rt = registry.by_kind("", "Namespace"), registry.by_kind("", "Pod")
    assert ns_rt is not None and pod_rt is not None
    await service.create(ns_rt, "", {"metadata": {"name": NS}})
    await service.create(pod_rt, NS, {"metadata": {"name": "web", "labels": {"app": "web"}},
                                      "spec": {"automountServiceAccountToken": False,
                                               "containers": [{"name": "web", "image": "busybox"}]}})
    try:
        yield service, pod_rt
    finally:
        await store.close()


def dbg(name: str = "dbg", **extra: Any) -> Obj:
    return {"name": name, "image": "busybox", "targetContainerName": "web", **extra}


async def invalid(coro: Any) -> list[tuple[str, str]]:
    with pytest.raises(st.StatusError) as err:
        await coro
    assert err.value.code == 422, err.value
    return [(c["field"], c["message"]) for c in (err.value.details or {}).get("causes", [])]


async def test_strategic_patch_adds_one_and_ignores_everything_else(svc: tuple[ResourceService, ResourceType]) -> None:
    service, rt = svc
    body = {"metadata": {"labels": {"app": "changed"}},
            "spec": {"ephemeralContainers": [dbg()], "activeDeadlineSeconds": 5},
            "status": {"phase": "Failed"}}
    res = await service.patch(rt, NS, "web", SMP, body, SUB)
    pod = res.object
    (e,) = pod["spec"]["ephemeralContainers"]
    assert (e["name"], e["targetContainerName"], e["imagePullPolicy"], e["terminationMessagePolicy"]) == (
        "dbg", "web", "Always", "File")
    assert pod["metadata"]["labels"] == {"app": "web"}
    assert "activeDeadlineSeconds" not in pod["spec"]
    assert pod["status"]["phase"] == "Pending"
    assert any(m.get("subresource") == "ephemeralcontainers" for m in pod["metadata"]["managedFields"])
    # A second one merges by name with the first (strategic merge key "name").
    res = await service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [dbg("two")]}}, SUB)
    assert [x["name"] for x in res.object["spec"]["ephemeralContainers"]] == ["dbg", "two"]


async def test_changing_or_removing_an_existing_one_is_invalid(svc: tuple[ResourceService, ResourceType]) -> None:
    service, rt = svc
    await service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [dbg()]}}, SUB)
    changed = await invalid(service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [
        dbg(image="busybox:1.36")]}}, SUB))
    assert changed == [("spec.ephemeralContainers", 'Forbidden: existing ephemeral containers "dbg" may not be changed\n')]
    removed = await invalid(service.patch(rt, NS, "web", "application/merge-patch+json",
                                          {"spec": {"ephemeralContainers": None}}, SUB))
    assert removed == [("spec.ephemeralContainers", 'Forbidden: existing ephemeral containers "dbg" may not be removed\n')]
    json_patch = [{"op": "replace", "path": "/spec/ephemeralContainers/0/image", "value": "alpine"}]
    assert await invalid(service.patch(rt, NS, "web", "application/json-patch+json", json_patch, SUB))


async def test_put_takes_only_ephemeral_containers(svc: tuple[ResourceService, ResourceType]) -> None:
    service, rt = svc
    pod = copy.deepcopy(service.get(rt, NS, "web"))
    pod["spec"]["ephemeralContainers"] = [dbg()]
    pod["spec"]["containers"][0]["image"] = "alpine"
    res = await service.update(rt, NS, "web", pod, SUB)
    assert res.object["spec"]["containers"][0]["image"] == "busybox"
    assert [x["name"] for x in res.object["spec"]["ephemeralContainers"]] == ["dbg"]


async def test_forbidden_fields_and_bad_target(svc: tuple[ResourceService, ResourceType]) -> None:
    service, rt = svc
    got = await invalid(service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [
        dbg(targetContainerName="nope", ports=[{"containerPort": 80}])]}}, SUB))
    assert ("spec.ephemeralContainers[0].targetContainerName", 'Not found: "nope"') in got
    assert ("spec.ephemeralContainers[0].ports", "Forbidden: cannot be set for an Ephemeral Container") in got
    assert await invalid(service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [dbg("web")]}}, SUB))


async def test_the_pod_itself_cannot_change_them(svc: tuple[ResourceService, ResourceType]) -> None:
    service, rt = svc
    got = await invalid(service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [dbg()]}}))
    assert got and got[0][0] == "spec" and got[0][1].startswith("Forbidden: pod updates may not change fields")
    await service.patch(rt, NS, "web", SMP, {"spec": {"ephemeralContainers": [dbg()]}}, SUB)
    # Plain updates that leave them alone still work (image is one of the mutable fields).
    res = await service.patch(rt, NS, "web", SMP, {"spec": {"containers": [{"name": "web", "image": "alpine"}]}})
    assert res.object["spec"]["containers"][0]["image"] == "alpine"
    assert await invalid(service.patch(rt, NS, "web", "application/merge-patch+json",
                                       {"spec": {"ephemeralContainers": None}}))
