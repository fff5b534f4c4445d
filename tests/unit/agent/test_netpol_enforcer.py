"""The NetworkPolicy enforcer on shared informers: applies only after its caches are synced (first a
full resync), follows changes with small diffs, ignores pod status churn, and shares informers."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from minik.agent.netpol import NETWORKPOLICIES, NetpolEnforcer
from minik.client import Obj, WatchEvent
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor


class QueueClient:
    """`list` answers once `release` is set; `watch` plays events pushed with `push`."""

    def __init__(self, lists: dict[str, list[Obj]]) -> None:
        self.lists = lists
        self.release = asyncio.Event()
        self.queues: dict[str, asyncio.Queue[WatchEvent]] = {}

    def _q(self, resource: str) -> asyncio.Queue[WatchEvent]:
        return self.queues.setdefault(resource, asyncio.Queue())

    def push(self, resource: str, type_: str, obj: Obj) -> None:
        self._q(resource).put_nowait(WatchEvent(type_, copy.deepcopy(obj)))

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        await self.release.wait()
        return copy.deepcopy(self.lists.get(resource, [])), "1"

    async def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        q = self._q(resource)
        while True:
            yield await q.get()


class Runner:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    async def run_script(self, script: str) -> None:
        self.scripts.append(script)

    async def list_table(self, table: str) -> str:
        return "table ip mk {\n\tchain netpol-in-10-42-0-99 {\n\t}\n}\n"


def mkpod(name: str, ip: str, labels: dict[str, str], rv: int, ready: str = "True") -> Obj:
    return {"metadata": {"name": name, "namespace": "default", "labels": labels, "resourceVersion": str(rv)},
            "spec": {"nodeName": "n1", "containers": [{"name": "c"}]},
            "status": {"podIP": ip, "phase": "Running", "conditions": [{"type": "Ready", "status": ready}]}}


DENY = {"metadata": {"name": "deny", "namespace": "default", "resourceVersion": "1"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"]}}


async def wait_for(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met"
        await asyncio.sleep(0.01)


async def test_enforcer_lifecycle(tmp_path: Path) -> None:
    knob = tmp_path / "bridge-nf-call-iptables"
    knob.write_text("0\n")
    client = QueueClient({"pods": [mkpod("web", "10.42.0.5", {"app": "web"}, 2)],
                          "namespaces": [{"metadata": {"name": "default", "resourceVersion": "1"}}],
                          NETWORKPOLICIES: [DENY]})
    sup = Supervisor()
    factory = InformerFactory(client, sup)  # type: ignore[arg-type]
    runner = Runner()
    enf = NetpolEnforcer(factory, "n1", "mk", "br0", "10.43.0.10", runner=runner, bridge_nf=knob)
    # The enforcer uses the factory's informers, not private ones.
    assert factory.informer("pods") is factory.informer("pods") and factory.count("pods") == 1
    factory.start()
    sup.spawn("netpol", enf.run)
    await asyncio.sleep(0.05)
    assert runner.scripts == []            # caches not synced: nothing touches the kernel
    assert knob.read_text() == "1\n"       # br_netfilter knob turned on first
    client.release.set()
    await wait_for(lambda: len(runner.scripts) == 1)
    full = runner.scripts[0]
    assert "flush map ip mk netpol-ingress" in full
    assert "add element ip mk netpol-ingress { 10.42.0.5 : jump netpol-in-10-42-0-5 }" in full
    assert "delete chain ip mk netpol-in-10-42-0-99" in full     # left by an earlier run

    # Status churn (readiness flapping) neither plans nor applies.
    client.push("pods", "MODIFIED", mkpod("web", "10.42.0.5", {"app": "web"}, 3, ready="False"))
    await asyncio.sleep(0.1)
    assert len(runner.scripts) == 1 and not enf._dirty.is_set()

    # A new client pod selected by an allow rule: only web's chain is rewritten.
    client.push("pods", "ADDED", mkpod("client", "10.42.0.6", {"role": "client"}, 4))
    client.push(NETWORKPOLICIES, "ADDED", {
        "metadata": {"name": "allow", "namespace": "default", "resourceVersion": "5"},
        "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]}})
    await wait_for(lambda: any("10.42.0.6" in s for s in runner.scripts[1:]))
    diff = runner.scripts[-1]
    assert "add table" not in diff and "flush map" not in diff
    assert "add rule ip mk netpol-in-10-42-0-5 ip saddr 10.42.0.6/32 accept" in diff

    # The policy's pod loses its label: its chain and element go.
    client.push("pods", "MODIFIED", mkpod("web", "10.42.0.5", {"app": "old"}, 6))
    await wait_for(lambda: "delete chain ip mk netpol-in-10-42-0-5" in runner.scripts[-1])
    assert "delete element ip mk netpol-ingress { 10.42.0.5 }" in runner.scripts[-1]
    assert enf.isolated_pods == 0
    assert "minik_netpol_isolated_pods 0" in enf.metrics() and enf.syncs == len(runner.scripts)
    await sup.stop()


async def test_enforcer_started_after_the_shared_caches_synced(tmp_path: Path) -> None:
    """The daemon starts the enforcer after the informers: pods listed before its handler existed
    still count."""
    knob = tmp_path / "knob"
    knob.write_text("1\n")
    client = QueueClient({"pods": [mkpod("web", "10.42.0.5", {"app": "web"}, 2)],
                          "namespaces": [{"metadata": {"name": "default", "resourceVersion": "1"}}],
                          NETWORKPOLICIES: [DENY]})
    client.release.set()
    sup = Supervisor()
    factory = InformerFactory(client, sup)  # type: ignore[arg-type]
    for r in ("pods", "namespaces", NETWORKPOLICIES):
        factory.informer(r)
    factory.start()
    await factory.wait_synced()
    runner = Runner()
    enf = NetpolEnforcer(factory, "n1", "mk", "br0", None, runner=runner, bridge_nf=knob)
    sup.spawn("netpol", enf.run)
    await wait_for(lambda: len(runner.scripts) == 1)
    assert "10.42.0.5 : jump netpol-in-10-42-0-5" in runner.scripts[0]
    await sup.stop()


async def test_disabled_enforcement_removes_rules_left_by_an_earlier_run() -> None:
    from minik.agent.netpol import remove_rules
    runner = Runner()
    await remove_rules("mk", "br0", runner=runner)
    (script,) = runner.scripts
    assert "delete chain ip mk netpol-forward" in script and "delete map ip mk netpol-ingress" in script
    assert script.index("delete map ip mk netpol-ingress") < script.index("delete chain ip mk netpol-in-10-42-0-99")
