"""HorizontalPodAutoscaler through autoscaling/v1 and v2 (resource service over a temporary store):
`kubectl autoscale` posts v1 with targetCPUUtilizationPercentage; v2 readers see that target as
the cpu Utilization metric (not the 80 % default), v1 readers see v2 status and extra metrics in
v1's words, and writes through either version keep the other's view."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from minik.api.kinds import KindHooksImpl
from minik.api.service import ResourceService, WriteOptions
from minik.apis.conversion import hpa_v1_to_v2, hpa_v2_to_v1
from minik.apis.registry import Registry, ResourceType
from minik.apis.schema import Schemas
from minik.store.store import Store

Obj = dict[str, Any]
NS = "hpa"


@pytest.fixture
async def svc(tmp_path: Path) -> AsyncIterator[tuple[ResourceService, ResourceType, ResourceType]]:
    store = Store(str(tmp_path / "state.db"))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    ns_rt = registry.by_kind("", "Namespace")
    v1 = registry.lookup("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = registry.lookup("autoscaling", "v2", "horizontalpodautoscalers")
    assert ns_rt is not None and v1 is not None and v2 is not None
    await service.create(ns_rt, "", {"metadata": {"name": NS}})
    try:
        yield service, v1, v2
    finally:
        await store.close()


def v1_hpa(**spec: Any) -> Obj:
    return {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "php-apache"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "php-apache"},
                     "minReplicas": 1, "maxReplicas": 10, **spec}}


CPU50 = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}


async def test_kubectl_autoscale_target_reaches_v2(svc: tuple[ResourceService, ResourceType, ResourceType]) -> None:
    service, v1, v2 = svc
    created = (await service.create(v1, NS, v1_hpa(targetCPUUtilizationPercentage=50))).object
    assert created["apiVersion"] == "autoscaling/v1"
    assert created["spec"]["targetCPUUtilizationPercentage"] == 50 and "metrics" not in created["spec"]
    got = service.get(v2, NS, "php-apache")
    assert got["apiVersion"] == "autoscaling/v2"
    assert got["spec"]["metrics"] == [CPU50] and "targetCPUUtilizationPercentage" not in got["spec"]
    # The controller writes status through v2; the target stays 50 % and v1 shows the utilization.
    status = {"currentReplicas": 1, "desiredReplicas": 1, "currentMetrics": [
        {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 7, "averageValue": "14m"}}}],
        "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale", "message": "m",
                        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    await service.update(v2, NS, "php-apache", {**got, "status": status},
                         WriteOptions(field_manager="horizontal-pod-autoscaler", subresource="status"))
    assert service.get(v2, NS, "php-apache")["spec"]["metrics"] == [CPU50]
    old = service.get(v1, NS, "php-apache")
    assert old["spec"]["targetCPUUtilizationPercentage"] == 50 and "metrics" not in old["spec"]
    assert old["status"]["currentCPUUtilizationPercentage"] == 7 and "currentMetrics" not in old["status"]
    assert '"reason":"ReadyForNewScale"' in old["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/conditions"]
    # A v1 edit of the target lands in the v2 metric; the conditions annotation is not stored.
    old["spec"]["targetCPUUtilizationPercentage"] = 70
    await service.update(v1, NS, "php-apache", old, WriteOptions(field_manager="kubectl-edit"))
    now = service.get(v2, NS, "php-apache")
    assert now["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
    assert len(now["spec"]["metrics"]) == 1
    assert "autoscaling.alpha.kubernetes.io/conditions" not in (now["metadata"].get("annotations") or {})
    assert now["status"]["conditions"][0]["reason"] == "ReadyForNewScale"


async def test_v1_merge_patch(svc: tuple[ResourceService, ResourceType, ResourceType]) -> None:
    service, v1, v2 = svc
    await service.create(v1, NS, v1_hpa(targetCPUUtilizationPercentage=50))
    await service.patch(v1, NS, "php-apache", "application/merge-patch+json",
                        {"spec": {"targetCPUUtilizationPercentage": 60, "maxReplicas": 4}}, WriteOptions(field_manager="k"))
    got = service.get(v2, NS, "php-apache")
    assert got["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60 and got["spec"]["maxReplicas"] == 4


def test_other_metrics_travel_in_the_alpha_annotation() -> None:
    v2: Obj = {"metadata": {"name": "x"}, "spec": {"maxReplicas": 3, "metrics": [
        CPU50,
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
        {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1k"}}}],
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}},
        "status": {"currentMetrics": [
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}}]}}
    v1 = hpa_v2_to_v1(v2)
    ann = v1["metadata"]["annotations"]
    assert v1["spec"] == {"maxReplicas": 3, "targetCPUUtilizationPercentage": 50}
    assert ann["autoscaling.alpha.kubernetes.io/metrics"] == (
        '[{"type":"Resource","resource":{"name":"memory","targetAverageValue":"100Mi"}},'
        '{"type":"Pods","pods":{"metricName":"qps","targetAverageValue":"1k"}}]')
    assert ann["autoscaling.alpha.kubernetes.io/current-metrics"] == (
        '[{"type":"Resource","resource":{"name":"memory","currentAverageValue":"50Mi"}}]')
    assert "autoscaling.alpha.kubernetes.io/behavior" in ann
    assert hpa_v1_to_v2(v1) == v2
