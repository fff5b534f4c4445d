"""Informer against a scripted fake client: cache, handlers, resume, relist on 410."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from minik.client import ClientError, Obj, WatchEvent
from minik.machinery.controller import Expectations
from minik.machinery.informer import Informer, object_key, split_key


def obj(name: str, rv: int, ns: str = "default") -> Obj:
    return {"metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)}}


def field(o: Obj | None, name: str) -> str | None:
    return None if o is None else str(o["metadata"][name])


class FakeClient:
    """`list` answers from `lists`; each `watch` call plays the next script (events, then an error or end)."""

    def __init__(self, lists: list[tuple[list[Obj], str]], watches: list[list[Any]]) -> None:
        self.lists, self.watches = lists, watches
        self.watch_rvs: list[str] = []
        self.idle = asyncio.Event()

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        return self.lists.pop(0)

    async def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        self.watch_rvs.append(resource_version)
        if not self.watches:
            self.idle.set()
            await asyncio.Event().wait()
        for step in self.watches.pop(0):
            if isinstance(step, Exception):
                raise step
            yield step


async def run_until_idle(inf: Informer, client: FakeClient) -> None:
    task = asyncio.create_task(inf.run())
    await asyncio.wait_for(client.idle.wait(), 2)
    task.cancel()


async def test_list_then_watch_updates_cache_and_calls_handlers() -> None:
    client = FakeClient([([obj("a", 1)], "5")],
                        [[WatchEvent("ADDED", obj("b", 6)), WatchEvent("MODIFIED", obj("a", 7)),
                          WatchEvent("DELETED", obj("b", 8))]])
    inf = Informer(client, "pods")  # type: ignore[arg-type]
    seen: list[tuple[str | None, str | None]] = []
    inf.add_handler(lambda old, new: seen.append((field(old, "resourceVersion"), field(new, "resourceVersion"))))
    await run_until_idle(inf, client)
    assert seen == [(None, "1"), (None, "6"), ("1", "7"), ("6", None)]
    assert [o["metadata"]["name"] for o in inf.list()] == ["a"]
    assert inf.get("default", "a") == obj("a", 7)
    assert client.watch_rvs == ["5", "8"]  # resumed from the last event after the stream ended
    assert inf.synced


async def test_expired_watch_relists_and_reports_differences() -> None:
    client = FakeClient([([obj("a", 1), obj("b", 2)], "2"), ([obj("a", 1), obj("c", 9)], "9")],
                        [[ClientError(410, "Expired", "too old")]])
    inf = Informer(client, "pods")  # type: ignore[arg-type]
    seen: list[tuple[str | None, str | None]] = []
    inf.add_handler(lambda old, new: seen.append((field(old, "name"), field(new, "name"))))
    await run_until_idle(inf, client)
    # The relist adds c and deletes b; a did not change and is not reported again.
    assert seen[2:] == [(None, "c"), ("b", None)]
    assert sorted(o["metadata"]["name"] for o in inf.list("default")) == ["a", "c"]
    assert client.watch_rvs == ["2", "9"]


def test_keys() -> None:
    assert object_key(obj("a", 1, "ns")) == "ns/a"
    assert object_key({"metadata": {"name": "node1"}}) == "node1"
    assert split_key("ns/a") == ("ns", "a") and split_key("node1") == ("", "node1")


def test_expectations() -> None:
    now = [0.0]
    e = Expectations(ttl=10, clock=lambda: now[0])
    assert e.satisfied("k")
    e.expect("k", adds=2)
    e.creation_observed("k")
    assert not e.satisfied("k")
    e.creation_observed("k")
    assert e.satisfied("k")
    e.expect("k", deletes=["p1", "p2"])
    e.deletion_observed("k", "p1")
    e.lower("k", deletes=["p2"])
    assert e.satisfied("k")
    e.expect("k", adds=1)
    now[0] = 11.0
    assert e.satisfied("k")  # expired: a lost event must not wedge the controller
