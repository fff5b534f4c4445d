"""The scheduler loop on its informers: binds pending pods to the least loaded fitting node,
counts bound pods through the node index, assumes its bindings, and backs off a pod that fails
while the others are bound."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from minik.client import Obj, WatchEvent
from minik.scheduler.scheduler import Scheduler, priority
from tests.support.builders import make_node, make_pod


class FakeClient:
    def __init__(self, pods: list[Obj], nodes: list[Obj]) -> None:
        self.objs = {"pods": pods, "nodes": nodes}
        self.bindings: list[tuple[str, str]] = []
        self.events: list[Obj] = []
        self.list_calls = 0

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        self.list_calls += 1
        return list(self.objs.get(resource, [])), "1"

    async def watch(self, resource: str, *a: Any, **k: Any) -> AsyncIterator[WatchEvent]:
        await asyncio.Event().wait()
        yield WatchEvent("ADDED", {})  # pragma: no cover

    async def patch(self, resource: str, namespace: str, name: str, body: Any, patch_type: str = "",
                    subresource: str = "", field_manager: str = "") -> Obj:
        if subresource == "binding":
            self.bindings.append((name, body["target"]["name"]))
        return {}

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj:
        self.events.append(obj)
        return obj


async def test_binds_around_a_failing_pod_and_reads_the_cache_only() -> None:
    bound = [make_pod(f"b{i}", node="n1", uid=f"b{i}") for i in range(3)]
    bad = make_pod("bad", uid="bad")
    bad["spec"]["containers"] = 1          # a malformed stored pod: the filters cannot read it
    pending = [make_pod(f"p{i}", uid=f"p{i}") for i in range(2)]
    pending[1]["spec"]["priority"] = "s"   # once crash-looped the sort
    client = FakeClient(bound + [bad] + pending, [make_node("n1"), make_node("n2")])
    s = Scheduler(client)  # type: ignore[arg-type]
    task = asyncio.create_task(s.run())
    for _ in range(200):
        if len(client.bindings) == 2 and client.events:
            break
        await asyncio.sleep(0.01)
    lists = client.list_calls
    await s.schedule_pending()          # assumed pods are not bound again; nothing is re-listed
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # n2 is emptier than n1 (3 pods bound there, seen through the node index); the first binding
    # is assumed on n2, so the second pod goes to n2 as well only if it is still the least loaded.
    assert sorted(client.bindings) == [("p0", "n2"), ("p1", "n2")]
    assert client.list_calls == lists
    warn = [e for e in client.events if e["type"] == "Warning"]
    assert warn and warn[0]["involvedObject"]["name"] == "bad" and warn[0]["reason"] == "FailedScheduling"
    assert "bad" in s._backoff


def test_priority_is_lenient() -> None:
    assert priority({"spec": {"priority": "s"}}) == 0
    assert priority({"spec": {"priority": 7}}) == 7
    assert priority({"spec": {}}) == 0
