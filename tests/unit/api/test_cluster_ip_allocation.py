"""ClusterIP allocation through the API: random start, .0/.1/.10/broadcast never handed out, no
two Services get one address even while their creates are in flight together, and a full range
is a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client import ClientError
from minik.client.local import LocalClient
from minik.store.store import Store


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[LocalClient]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    c = LocalClient(ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.99.0.0/27")))
    await c.create("namespaces", "", {"metadata": {"name": "default"}})
    try:
        yield c
    finally:
        await store.close()


def _svc(name: str, ip: str = "") -> dict[str, object]:
    spec: dict[str, object] = {"ports": [{"port": 80}]}
    if ip:
        spec["clusterIP"] = ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def test_concurrent_creates_fill_the_range_without_sharing_an_address(client: LocalClient) -> None:
    # A /27: 32 addresses, minus .0, .1, .10 and the broadcast .31 = 28 to hand out.
    made = await asyncio.gather(*(client.create("services", "default", _svc(f"s{i}")) for i in range(28)))
    ips = [m["spec"]["clusterIP"] for m in made]
    assert len(set(ips)) == 28
    assert not {"10.99.0.0", "10.99.0.1", "10.99.0.10", "10.99.0.31"} & set(ips)
    with pytest.raises(ClientError) as e:
        await client.create("services", "default", _svc("one-too-many"))
    assert "range is full" in str(e.value)
    # Deleting one frees its address for the next Service.
    await client.delete("services", "default", "s3")
    again = await client.create("services", "default", _svc("again"))
    assert again["spec"]["clusterIP"] == ips[3]


async def test_requested_addresses_are_honoured_and_a_taken_one_is_refused(client: LocalClient) -> None:
    dns = await client.create("services", "default", _svc("dns", "10.99.0.10"))
    assert dns["spec"]["clusterIP"] == "10.99.0.10"
    with pytest.raises(ClientError) as e:
        await client.create("services", "default", _svc("dup", "10.99.0.10"))
    assert e.value.code == 422 and "already allocated" in str(e.value)
