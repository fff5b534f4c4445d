"""The HPA's replica calculator and behaviour (stabilization windows, rate policies) as tables."""

from __future__ import annotations

import pytest

from minik.controllers.hpa import (DEFAULT_DOWN, DEFAULT_UP, MetricError, MetricSpec, PodSample, ScaleEvent, calculate,
                                   metric_specs, pod_requests, rate_limit, rules, stabilize)

CPU50 = MetricSpec("cpu", "Utilization", utilization=50)


def pods(*usages: int | None, request: int = 100, ready: bool = True) -> list[PodSample]:
    return [PodSample(f"p{i}", ready, {"cpu": request}, None if u is None else {"cpu": u}) for i, u in enumerate(usages)]


@pytest.mark.parametrize("usages,current,want", [
    ((100,), 1, 2),                  # 100 % of request against 50 % → double
    ((50, 50), 2, 2),                # on target
    ((54, 54), 2, 2),                # within the 10 % tolerance
    ((60, 60), 2, 3),                # 120 % of target → ceil(2.4)
    ((10, 10, 10, 10), 4, 1),        # 20 % → ceil(0.8)
    ((100, 100, 100), 3, 6),
])
def test_utilization(usages: tuple[int, ...], current: int, want: int) -> None:
    assert calculate(CPU50, current, pods(*usages)).replicas == want


def test_missing_metrics_damp_scale_up_and_down() -> None:
    # Scale up: the pod without metrics counts as 0 % → (100+0)/200 = 50 % of request = on target → keep.
    assert calculate(CPU50, 2, pods(100, None)).replicas == 2
    # Scale down: it counts as 100 % of its request → (0+100)/200 = 50 % → keep.
    assert calculate(CPU50, 2, pods(0, None)).replicas == 2
    # Strong load still scales up: (200+0)/200 = 100 % → 4 replicas.
    assert calculate(CPU50, 2, pods(200, None)).replicas == 4


def test_unready_pods_count_as_zero_when_scaling_up() -> None:
    samples = pods(100) + [PodSample("starting", False, {"cpu": 100}, {"cpu": 300})]
    # Ready pod: 200 % of target → would be 2; the starting pod counts 0 → (100+0)/200 = 100 % of target … 2 pods.
    assert calculate(CPU50, 2, samples).replicas == 2


def test_average_value_and_memory() -> None:
    spec = MetricSpec("memory", "AverageValue", average_milli=100 * 1024 * 1024 * 1000)
    samples = [PodSample("a", True, {}, {"memory": 300 * 1024 * 1024 * 1000})]
    assert calculate(spec, 1, samples).replicas == 3


def test_errors_name_the_problem() -> None:
    with pytest.raises(MetricError, match="missing request for cpu in pod a"):
        calculate(CPU50, 1, [PodSample("a", True, {}, {"cpu": 10})])
    with pytest.raises(MetricError, match="no metrics returned"):
        calculate(CPU50, 1, pods(None))
    with pytest.raises(MetricError, match="no pods match"):
        calculate(CPU50, 1, [])


def test_default_rate_limits() -> None:
    # Up: max(+100 %, +4 pods) per 15 s.
    assert rate_limit(1, 10, DEFAULT_UP, [], 100.0) == 5
    assert rate_limit(10, 50, DEFAULT_UP, [], 100.0) == 20
    # Already +4 within the period from 1: the period started at 1 → limit max(2, 5) = 5.
    assert rate_limit(5, 10, DEFAULT_UP, [ScaleEvent(95.0, 4)], 100.0) == 5
    # Down: −100 % per 15 s → anything down to zero is allowed.
    assert rate_limit(10, 1, DEFAULT_DOWN, [], 100.0) == 1


def test_stabilization_windows() -> None:
    # Scale down waits for the highest recommendation of the last 300 s.
    d = stabilize(4, 1, [(10.0, 4), (200.0, 3)], [], None, 1, 10, 250.0)
    assert d.replicas == 4
    d = stabilize(4, 1, [(10.0, 4), (200.0, 3)], [], {"scaleDown": {"stabilizationWindowSeconds": 5}}, 1, 10, 250.0)
    assert d.replicas == 1
    d = stabilize(2, 20, [], [], None, 1, 6, 0.0)
    assert (d.replicas, d.limited_reason) == (6, "TooManyReplicas")
    d = stabilize(2, 20, [], [], None, 1, 100, 0.0)
    assert (d.replicas, d.limited_reason) == (6, "ScaleUpLimit")


def test_behavior_rules_parse() -> None:
    r = rules({"scaleUp": {"selectPolicy": "Disabled"}}, True)
    assert r.select == "Disabled" and rate_limit(2, 8, r, [], 0.0) == 2
    r = rules({"scaleDown": {"policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}, False)
    assert rate_limit(5, 1, r, [], 0.0) == 4
    assert rate_limit(4, 1, r, [ScaleEvent(-30.0, -1)], 0.0) == 4   # one pod per minute already used


def test_metric_specs_of_v1_and_v2() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "spec": {"targetCPUUtilizationPercentage": 70}}
    assert metric_specs(v1) == [MetricSpec("cpu", "Utilization", 70)]
    v2 = {"apiVersion": "autoscaling/v2", "spec": {"metrics": [
        {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "64Mi"}}}]}}
    assert metric_specs(v2) == [MetricSpec("memory", "AverageValue", average_milli=64 * 1024 * 1024 * 1000)]


def test_pod_requests_need_every_container() -> None:
    pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "100m"}}}, {"resources": {}}]}}
    assert pod_requests(pod) == {}
    pod = {"spec": {"containers": [{"resources": {"requests": {"cpu": "100m", "memory": "1Ki"}}},
                                   {"resources": {"requests": {"cpu": "0.2"}}}]}}
    assert pod_requests(pod) == {"cpu": 300}
