"""LocalClient against a real store and resource service: deep copies out, Status errors as
ClientError, NotFound on delete as done, propagation policies, discovery and watch_all."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client import ClientError, ResourceEvent
from minik.client.local import LocalClient
from minik.store.store import Store
from tests.support.builders import make_configmap, owner_ref

NS = "default"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[LocalClient]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    c = LocalClient(service)
    await c.create("namespaces", "", {"metadata": {"name": NS}})
    try:
        yield c
    finally:
        await store.close()


async def test_reads_are_copies_and_errors_are_client_errors(client: LocalClient) -> None:
    await client.create("configmaps", NS, make_configmap("a", data={"k": "v"}))
    got = await client.get("configmaps", NS, "a")
    assert got is not None
    got["data"]["k"] = "changed"
    again = await client.get("configmaps", NS, "a")
    assert again is not None and again["data"]["k"] == "v"
    assert await client.get("configmaps", NS, "missing") is None
    with pytest.raises(ClientError) as e:
        await client.create("configmaps", NS, make_configmap("a"))
    assert e.value.conflict
    with pytest.raises(ClientError) as e:
        await client.list("nosuchthings")
    assert e.value.not_found


async def test_delete_not_found_is_done_and_policies_apply(client: LocalClient) -> None:
    assert await client.delete("configmaps", NS, "never-there") is None
    await client.create("configmaps", NS, make_configmap("fg"))
    res = await client.delete("configmaps", NS, "fg", propagation_policy="Foreground")
    assert res is not None and "foregroundDeletion" in res["metadata"]["finalizers"]
    await client.create("configmaps", NS, make_configmap("orph"))
    res = await client.delete("configmaps", NS, "orph", propagation_policy="Orphan")
    assert res is not None and "orphan" in res["metadata"]["finalizers"]
    await client.create("configmaps", NS, make_configmap("uid"))
    with pytest.raises(ClientError) as e:
        await client.delete("configmaps", NS, "uid", precondition_uid="not-the-uid")
    assert e.value.conflict


async def test_discovery_lists_each_resource_once(client: LocalClient) -> None:
    infos = await client.resources()
    keys = [i.resource for i in infos]
    assert len(keys) == len(set(keys))
    by = {i.resource: i for i in infos}
    assert by["pods"].namespaced and by["pods"].deletable and by["pods"].api_version == "v1"
    assert not by["namespaces"].namespaced
    assert by["apps/deployments"].api_version == "apps/v1" and by["apps/deployments"].kind == "Deployment"


async def test_watch_all_yields_metadata_of_every_kind(client: LocalClient) -> None:
    _, rv = await client.list("configmaps")
    seen: list[ResourceEvent] = []

    async def collect() -> None:
        async for ev in client.watch_all(rv):
            seen.append(ev)

    task = asyncio.create_task(collect())
    owner = await client.create("configmaps", NS, make_configmap("owner"))
    await client.create("secrets", NS, {"metadata": {"name": "s", "ownerReferences": [owner_ref(owner)]}})
    await client.delete("configmaps", NS, "owner")
    for _ in range(100):
        if len(seen) >= 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert [(e.resource, e.type) for e in seen[:3]] == [("configmaps", "ADDED"), ("secrets", "ADDED"), ("configmaps", "DELETED")]
    sec = seen[1].object
    assert sec["kind"] == "Secret" and sec["apiVersion"] == "v1" and set(sec) == {"apiVersion", "kind", "metadata"}
    assert sec["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
