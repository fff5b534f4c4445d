"""Node IPAM in process: a real store + resource service behind `LocalClient` and the node IPAM
controller. Blocks land on the Node objects, survive a controller restart (re-derived from the
Nodes), and come free when a Node is deleted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client.local import LocalClient
from minik.controllers.nodeipam import NodeIpamController
from minik.machinery.informer import Informer
from minik.store.store import Store

CLUSTER_CIDR = "10.42.0.0/16"


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 10.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await fn():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


class Ipam:
    def __init__(self, client: LocalClient) -> None:
        self.client = client
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        ctl = NodeIpamController(self.client, Informer(self.client, "nodes"), CLUSTER_CIDR)
        self.task = asyncio.create_task(ctl.run(), name="node-ipam-controller")

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def cidrs(self) -> dict[str, Any]:
        items, _ = await self.client.list("nodes")
        return {n["metadata"]["name"]: ((n.get("spec") or {}).get("podCIDR"), (n.get("spec") or {}).get("podCIDRs"))
                for n in items}

    async def add(self, name: str) -> None:
        await self.client.create("nodes", "", {"metadata": {"name": name}})

    async def wait_all(self, n: int) -> dict[str, Any]:
        async def done() -> bool:
            got = await self.cidrs()
            return len(got) == n and all(c for c, _ in got.values())
        await eventually(done, what=f"{n} nodes with a pod CIDR")
        return await self.cidrs()


@pytest.fixture
async def ipam(tmp_path: Path) -> AsyncIterator[Ipam]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    client = LocalClient(ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16")))
    ip = Ipam(client)
    try:
        yield ip
    finally:
        if ip.task is not None:
            await ip.stop()
        await store.close()


async def test_blocks_are_given_kept_across_restart_and_freed(ipam: Ipam) -> None:
    await ipam.add("first")           # registered before the controller runs (server start-up order)
    ipam.start()
    assert (await ipam.wait_all(1))["first"] == ("10.42.0.0/24", ["10.42.0.0/24"])
    for name in ("second", "third"):
        await ipam.add(name)
    got = await ipam.wait_all(3)
    assert {c for c, _ in got.values()} == {"10.42.0.0/24", "10.42.1.0/24", "10.42.2.0/24"}
    assert len({c for c, _ in got.values()}) == 3

    # A restarted controller re-derives the used blocks from the Nodes: nothing moves.
    await ipam.stop()
    ipam.start()
    await ipam.add("fourth")
    after = await ipam.wait_all(4)
    assert {k: v for k, v in after.items() if k != "fourth"} == got
    assert after["fourth"][0] == "10.42.3.0/24"

    # Deleting a Node frees its block for the next Node.
    freed = got["second"][0]
    await ipam.client.delete("nodes", "", "second")
    await ipam.add("fifth")
    final = await ipam.wait_all(4)
    assert final["fifth"][0] == freed
    assert len({c for c, _ in final.values()}) == 4


async def test_agent_registers_and_takes_its_subnet_from_the_node(ipam: Ipam) -> None:
    from minik.agent.node import NodeReporter, gather_facts

    async def ready() -> tuple[bool, str]:
        return True, ""

    facts = gather_facts("agent-node", "127.0.0.1", "/tmp", "containerd://test")
    reporter = NodeReporter(ipam.client, facts, server=False, data_dir="/tmp", ready=ready)
    await ipam.client.create("namespaces", "", {"metadata": {"name": "kube-node-lease"}})
    node = await reporter.ensure_node()
    # Created without status (not Ready, so nothing is scheduled before the pod network is up)
    # and without a podCIDR (that is the server's to give).
    assert not node.get("status", {}).get("conditions") and not (node.get("spec") or {}).get("podCIDR")
    waiter = asyncio.create_task(reporter.wait_pod_cidr(poll=0.05))
    await asyncio.sleep(0.3)
    assert not waiter.done()  # no IPAM yet: the agent waits
    ipam.start()
    assert await asyncio.wait_for(waiter, 10) == "10.42.0.0/24"
    await reporter.register()
    n = await ipam.client.get("nodes", "", "agent-node")
    assert n is not None and n["spec"]["podCIDR"] == "10.42.0.0/24"
    assert {c["type"]: c["status"] for c in n["status"]["conditions"]}["Ready"] == "True"
