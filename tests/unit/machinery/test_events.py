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
