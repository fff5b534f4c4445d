"""Namespace controller syncs: publish the default ServiceAccount and CA, empty a Terminating
namespace through discovery (NotFound counts as done; a failing object keeps only its namespace
waiting), then finalize."""

from __future__ import annotations

import asyncio
from typing import Any

from minik.client import ClientError, Obj
from minik.controllers.namespace import RETRY, NamespaceController
from minik.machinery.informer import Informer
from tests.support.builders import make_configmap, make_pod
from tests.unit.controllers.fakeapi import FakeApi


def namespace(name: str, terminating: bool = False) -> Obj:
    m: dict[str, Any] = {"name": name}
    if terminating:
        m["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": m, "spec": {"finalizers": ["kubernetes"]}}


def seed(inf: Informer, objs: list[Obj]) -> None:
    for o in objs:
        m = o["metadata"]
        inf._items.setdefault(m.get("namespace", ""), {})[m["name"]] = o


def controller(api: FakeApi, namespaces: list[Obj]) -> NamespaceController:
    c = NamespaceController(api, ca_pem="PEM")  # type: ignore[arg-type]
    seed(c.namespaces, namespaces)
    for ns in namespaces:
        api.put("namespaces", ns)
    return c


async def test_live_namespace_gets_service_account_and_ca() -> None:
    api = FakeApi()
    c = controller(api, [namespace("a")])
    assert await c.sync("a") is None
    assert ("create", "serviceaccounts", "a", "default") in api.writes
    assert ("create", "configmaps", "a", "kube-root-ca.crt") in api.writes
    assert api.objects[("configmaps", "a", "kube-root-ca.crt")]["data"] == {"ca.crt": "PEM"}
    # Cached as present: nothing written again.
    seed(c.serviceaccounts, [api.objects[("serviceaccounts", "a", "default")]])
    seed(c.root_ca, [api.objects[("configmaps", "a", "kube-root-ca.crt")]])
    api.writes.clear()
    await c.sync("a")
    assert api.writes == []


async def test_terminating_namespace_is_emptied_then_finalized() -> None:
    api = FakeApi()
    c = controller(api, [namespace("t", terminating=True)])
    api.put("configmaps", make_configmap("cm", namespace="t"))
    api.put("pods", make_pod("p", namespace="t"))
    api.put("configmaps", make_configmap("elsewhere", namespace="other"))
    assert await c.sync("t") == RETRY
    assert {("configmaps", "t", "cm"), ("pods", "t", "p")}.isdisjoint(api.objects)
    assert ("configmaps", "other", "elsewhere") in api.objects
    assert await c.sync("t") is None
    assert ("update/finalize", "namespaces", "", "t") in api.writes
    assert api.objects[("namespaces", "", "t")]["spec"]["finalizers"] == []


async def test_a_failing_object_keeps_its_namespace_waiting_without_raising() -> None:
    api = FakeApi()
    c = controller(api, [namespace("t", terminating=True)])
    api.put("configmaps", {"metadata": {"name": "bad", "namespace": "t", "finalizers": 1}})
    api.fail_delete["bad"] = TypeError("'int' object is not iterable")
    api.put("configmaps", make_configmap("ok", namespace="t"))
    for _ in range(3):
        assert await c.sync("t") == RETRY
    assert ("configmaps", "t", "ok") not in api.objects
    assert ("update/finalize", "namespaces", "", "t") not in api.writes


async def test_not_found_while_deleting_counts_as_done() -> None:
    api = FakeApi()
    c = controller(api, [namespace("t", terminating=True)])
    api.put("apps/replicasets", {"metadata": {"name": "rs", "namespace": "t"}})
    api.fail_delete["rs"] = ClientError(404, "NotFound", 'replicasets.apps "rs" not found')
    assert await c.sync("t") == RETRY           # listed this round
    del api.objects[("apps/replicasets", "t", "rs")]
    assert await c.sync("t") is None            # gone: finalized, no crash


async def test_deleted_default_service_account_requeues_its_namespace() -> None:
    api = FakeApi()
    c = controller(api, [namespace("a")])
    c._on_published({"metadata": {"name": "default", "namespace": "a"}}, None)
    assert await asyncio.wait_for(c.queue.get(), 1) == "a"
