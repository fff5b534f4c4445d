"""EventRecorder: Event shape and aggregation of repeats."""

from __future__ import annotations

import datetime as dt
from typing import Any

from minik.client import ClientError, Obj
from minik.machinery.events import EventRecorder

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


class FakeClient:
    def __init__(self) -> None:
        self.events: dict[str, Obj] = {}
        self.patches: list[Any] = []

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj:
        assert resource == "events"
        self.events[obj["metadata"]["name"]] = obj
        return obj

    async def patch(self, resource: str, namespace: str, name: str, body: Any, patch_type: str = "",
                    subresource: str = "", field_manager: str = "") -> Obj:
        if name not in self.events:
            raise ClientError(404, "NotFound", "gone")
        self.patches.append(body)
        self.events[name].update(body)
        return self.events[name]


DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "ns", "uid": "u1"}}


async def test_event_shape() -> None:
    c = FakeClient()
    await EventRecorder(c, "deployment-controller", clock=lambda: T0).event(  # type: ignore[arg-type]
        DEPLOY, "Normal", "ScalingReplicaSet", "Scaled up replica set web-abc from 0 to 3")
    (ev,) = c.events.values()
    assert ev["metadata"]["name"].startswith("web.")
    assert ev["involvedObject"] == {"kind": "Deployment", "namespace": "ns", "name": "web", "uid": "u1",
                                    "apiVersion": "apps/v1", "resourceVersion": ""}
    assert (ev["reason"], ev["type"], ev["count"]) == ("ScalingReplicaSet", "Normal", 1)
    assert ev["source"] == {"component": "deployment-controller"}
    assert ev["firstTimestamp"] == ev["lastTimestamp"] == "2025-01-01T00:00:00Z"


async def test_repeats_are_aggregated_and_recreated_when_gone() -> None:
    c = FakeClient()
    now = [T0]
    r = EventRecorder(c, "x", clock=lambda: now[0])  # type: ignore[arg-type]
    await r.event(DEPLOY, "Warning", "FailedCreate", "quota")
    now[0] = T0 + dt.timedelta(seconds=5)
    await r.event(DEPLOY, "Warning", "FailedCreate", "quota")
    (ev,) = c.events.values()
    assert ev["count"] == 2 and ev["lastTimestamp"] == "2025-01-01T00:00:05Z"
    await r.event(DEPLOY, "Warning", "FailedCreate", "other")
    assert len(c.events) == 2
    c.events.clear()
    now[0] = T0 + dt.timedelta(seconds=9)
    await r.event(DEPLOY, "Warning", "FailedCreate", "quota")
    (ev,) = c.events.values()
    assert ev["count"] == 1


async def test_queued_records_aggregate_per_source_and_field_path() -> None:
    from minik.agent.events import EventRecorder as AgentRecorder, pod_ref
    c = FakeClient()
    clock = [1_735_689_600.0]
    r = AgentRecorder(c, "node1", now=lambda: clock[0], aggregate_window=600.0)  # type: ignore[arg-type]
    pod = {"metadata": {"name": "web-1", "namespace": "ns", "uid": "p1"}}
    r.warning(pod_ref(pod, "app"), "BackOff", "Back-off restarting failed container")
    r.warning(pod_ref(pod, "app"), "BackOff", "Back-off restarting failed container")
    r.warning(pod_ref(pod, "sidecar"), "BackOff", "Back-off restarting failed container")
    await r.flush()
    assert len(c.events) == 2
    app = next(e for e in c.events.values() if e["involvedObject"].get("fieldPath") == "spec.containers{app}")
    assert app["count"] == 2 and app["source"] == {"component": "kubelet", "host": "node1"}
    assert app["reportingInstance"] == "node1"
    # Past the aggregation window a repeat starts a new Event.
    clock[0] += 601
    r.warning(pod_ref(pod, "app"), "BackOff", "Back-off restarting failed container")
    await r.flush()
    assert len(c.events) == 3


async def test_memory_is_bounded() -> None:
    c = FakeClient()
    r = EventRecorder(c, "x", clock=lambda: T0, cache_size=10)  # type: ignore[arg-type]
    for i in range(50):
        await r.event(DEPLOY, "Normal", "R", f"m{i}")
    assert len(r) == 10 and len(c.events) == 50
