"""HorizontalPodAutoscaler (autoscaling/v2, v1 objects too): scale a Deployment, ReplicaSet,
StatefulSet or ReplicationController on the CPU and memory its pods use.

Role: kube-controller-manager's HPA controller for Resource metrics. Every sync period (15 s by
default) each HPA is recomputed from the shared pod cache and the nodes' in-memory usage
(`minik.client.metrics.ResourceMetrics`):
1. `recommend` — the replica calculator: usage over requests (Utilization) or per pod
   (AverageValue); a ratio within the 10 % tolerance keeps the count; pods without metrics count
   as 100 % of their request when scaling down and 0 % when scaling up, not-Ready pods as 0 % when
   scaling up (so a starting pod cannot cause a second scale-up); the largest proposal of all
   metrics wins.
2. `stabilize` — `behavior`: the highest recommendation of the scale-down window (300 s default)
   and the lowest of the scale-up window (0 s), then the rate policies (default up: max of +100 %
   and +4 pods per 15 s; down: −100 % per 15 s) counted from the scale events of each period,
   then min/max replicas.
Conditions AbleToScale, ScalingActive and ScalingLimited and `status.currentMetrics` are written
as Kubernetes words them. Recommendations and scale events live in memory (lost on restart, as in
kube-controller-manager). Everything up to the writes is pure and unit-tested.
Neighbours: `minik.daemon` builds it with the shared informers and the metrics source.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from minik.apis.quantity import Quantity
from minik.apis.selectors import LabelSelector
from minik.client import Client, ClientError, Obj
from minik.client.metrics import PodUsage, ResourceMetrics
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.pods import is_active, pod_ready
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.hpa")

COMPONENT = "horizontal-pod-autoscaler"
RESOURCE = "autoscaling/horizontalpodautoscalers"
TOLERANCE = 0.1
SCALE_TARGETS: Mapping[str, str] = {
    "Deployment": "apps/deployments", "ReplicaSet": "apps/replicasets", "StatefulSet": "apps/statefulsets",
    "ReplicationController": "replicationcontrollers",
}


# ---- the replica calculator ---------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PodSample:
    name: str
    ready: bool
    requests: Mapping[str, int]            # resource → milli-units summed over containers (absent: no request)
    usage: Mapping[str, int] | None        # resource → milli-units, None: no metrics for this pod


@dataclass(frozen=True, slots=True)
class MetricSpec:
    resource: str                          # "cpu" | "memory"
    target_type: str                       # "Utilization" | "AverageValue"
    utilization: int = 0                   # percent
    average_milli: int = 0                 # milli-units per pod


@dataclass(frozen=True, slots=True)
class MetricResult:
    spec: MetricSpec
    replicas: int
    utilization: int | None                # percent, for Utilization targets
    average_milli: int                     # observed milli-units per pod


class MetricError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _ratio(spec: MetricSpec, usage: int, requests: int, count: int) -> float:
    if spec.target_type == "Utilization":
        return (usage * 100 / requests) / spec.utilization
    return (usage / count) / spec.average_milli


def calculate(spec: MetricSpec, current: int, pods: Sequence[PodSample]) -> MetricResult:
    """Replicas one Resource metric asks for (Kubernetes's replica calculator)."""
    if not pods:
        raise MetricError("FailedGetResourceMetric", f"unable to get metrics for resource {spec.resource}: no pods match the selector")
    res = spec.resource
    with_metrics = [p for p in pods if p.usage is not None and res in p.usage]
    missing = [p for p in pods if p.usage is None or res not in p.usage]
    if not with_metrics:
        raise MetricError("FailedGetResourceMetric",
                          f"unable to get metrics for resource {res}: no metrics returned from resource metrics API")
    if spec.target_type == "Utilization":
        lacking = [p.name for p in pods if res not in p.requests or p.requests[res] <= 0]
        if lacking:
            raise MetricError("FailedGetResourceMetric", f"failed to get {res} utilization: missing request for {res} in pod {lacking[0]}")
    # CPU of a pod that is not Ready yet says nothing about load: set aside like missing metrics.
    unready = [p for p in with_metrics if res == "cpu" and not p.ready]
    counted = [p for p in with_metrics if not (res == "cpu" and not p.ready)]
    usage = sum((p.usage or {})[res] for p in counted)
    requests = sum(p.requests.get(res, 0) for p in counted)
    observed_util = round(usage * 100 / requests) if requests and spec.target_type == "Utilization" else None
    average = usage // len(counted) if counted else 0
    if not counted:
        return MetricResult(spec, current, observed_util, average)
    ratio = _ratio(spec, usage, requests, len(counted))
    if not missing and not unready:
        if abs(1.0 - ratio) <= TOLERANCE:
            return MetricResult(spec, current, observed_util, average)
        return MetricResult(spec, math.ceil(ratio * len(counted)), observed_util, average)
    # Fill the gaps in the direction that makes the change smallest, then decide again.
    scale_up = ratio > 1.0
    for p in missing:
        fill = 0 if scale_up else (p.requests.get(res, 0) if spec.target_type == "Utilization" else spec.average_milli)
        usage += fill
        requests += p.requests.get(res, 0)
    if scale_up:
        for p in unready:
            requests += p.requests.get(res, 0)
    n = len(counted) + len(missing) + (len(unready) if scale_up else 0)
    new_ratio = _ratio(spec, usage, requests, n)
    if abs(1.0 - new_ratio) <= TOLERANCE or (ratio > 1.0) != (new_ratio > 1.0):
        return MetricResult(spec, current, observed_util, average)
    desired = math.ceil(new_ratio * n)
    if (new_ratio > 1.0 and desired < current) or (new_ratio < 1.0 and desired > current):
        desired = current
    return MetricResult(spec, desired, observed_util, average)


# ---- behavior: stabilization windows and rate policies ------------------------------------

@dataclass(frozen=True, slots=True)
class Policy:
    kind: str           # "Pods" | "Percent"
    value: int
    period: int         # seconds


@dataclass(frozen=True, slots=True)
class Rules:
    window: int
    select: str         # "Max" | "Min" | "Disabled"
    policies: tuple[Policy, ...]


DEFAULT_UP = Rules(0, "Max", (Policy("Percent", 100, 15), Policy("Pods", 4, 15)))
DEFAULT_DOWN = Rules(300, "Max", (Policy("Percent", 100, 15),))


def rules(behavior: Obj | None, up: bool) -> Rules:
    base = DEFAULT_UP if up else DEFAULT_DOWN
    r = (behavior or {}).get("scaleUp" if up else "scaleDown")
    if not isinstance(r, dict):
        return base
    window = r.get("stabilizationWindowSeconds")
    pols = tuple(Policy(str(p.get("type")), int(p.get("value", 0)), int(p.get("periodSeconds", 15)))
                 for p in r.get("policies") or [] if isinstance(p, dict))
    return Rules(int(window) if isinstance(window, int) else base.window,
                 str(r.get("selectPolicy") or "Max"), pols or base.policies)


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    at: float
    change: int         # replicas added (negative: removed)


def _period_start(current: int, events: Sequence[ScaleEvent], now: float, period: int, up: bool) -> int:
    changed = sum(e.change for e in events if e.at > now - period and (e.change > 0) == up)
    return current - changed


def rate_limit(current: int, desired: int, r: Rules, events: Sequence[ScaleEvent], now: float) -> int:
    up = desired > current
    if r.select == "Disabled":
        return current
    limits: list[int] = []
    for p in r.policies:
        start = _period_start(current, events, now, p.period, up)
        if up:
            limits.append(start + p.value if p.kind == "Pods" else math.ceil(start * (1 + p.value / 100)))
        else:
            limits.append(start - p.value if p.kind == "Pods" else math.ceil(start * (1 - p.value / 100)))
    if not limits:
        return desired
    if up:
        limit = max(limits) if r.select == "Max" else min(limits)
        return min(desired, max(limit, current))
    limit = min(limits) if r.select == "Max" else max(limits)
    return max(desired, min(limit, current))


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    limited_reason: str          # "" | TooFewReplicas | TooManyReplicas | ScaleUpLimit | ScaleDownLimit
    limited_message: str


def stabilize(current: int, recommended: int, history: Sequence[tuple[float, int]], events: Sequence[ScaleEvent],
              behavior: Obj | None, min_replicas: int, max_replicas: int, now: float) -> Decision:
    """`history`: earlier (time, recommendation) pairs, this one not included."""
    up_r, down_r = rules(behavior, True), rules(behavior, False)
    up_window = [r for t, r in history if t > now - up_r.window] + [recommended]
    down_window = [r for t, r in history if t > now - down_r.window] + [recommended]
    stable = current
    up_floor, down_ceiling = min(up_window), max(down_window)
    if up_floor > current:
        stable = up_floor
    elif down_ceiling < current:
        stable = down_ceiling
    if stable > current:
        bound = rate_limit(current, stable, up_r, events, now)     # the most the rate allows
        if stable > min(bound, max_replicas):
            if bound < max_replicas:
                return Decision(bound, "ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
            return Decision(max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    elif stable < current:
        bound = rate_limit(current, stable, down_r, events, now)
        if stable < max(bound, min_replicas):
            if bound > min_replicas:
                return Decision(bound, "ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
            return Decision(min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    if stable > max_replicas:
        return Decision(max_replicas, "TooManyReplicas", "the desired replica count is more than the maximum replica count")
    if stable < min_replicas:
        return Decision(min_replicas, "TooFewReplicas", "the desired replica count is less than the minimum replica count")
    reason, message = "", ""
    limited = stable
    return Decision(limited, reason, message)


# ---- reading an HPA ---------------------------------------------------------------------------

def metric_specs(hpa: Obj) -> list[MetricSpec]:
    """Resource metrics of a v2 HPA, or the CPU target of a v1 one (default 80 %)."""
    spec = hpa.get("spec") or {}
    if str(hpa.get("apiVersion", "")).endswith("/v1"):
        return [MetricSpec("cpu", "Utilization", int(spec.get("targetCPUUtilizationPercentage") or 80))]
    out: list[MetricSpec] = []
    for m in spec.get("metrics") or []:
        if not isinstance(m, dict):
            continue
        src = m.get("resource") if m.get("type") == "Resource" else m.get("containerResource") if m.get("type") == "ContainerResource" else None
        if not isinstance(src, dict):
            continue
        target = src.get("target") or {}
        ttype = str(target.get("type", ""))
        if ttype == "Utilization":
            out.append(MetricSpec(str(src.get("name")), "Utilization", int(target.get("averageUtilization") or 0)))
        elif ttype == "AverageValue":
            q = Quantity.of(target.get("averageValue"))
            out.append(MetricSpec(str(src.get("name")), "AverageValue", average_milli=q.milli_value() if q else 0))
    return out


def pod_requests(pod: Obj) -> dict[str, int]:
    out: dict[str, int] = {}
    complete = {"cpu": True, "memory": True}
    for c in (pod.get("spec") or {}).get("containers") or []:
        req = ((c.get("resources") or {}).get("requests") or {}) if isinstance(c, dict) else {}
        for res in ("cpu", "memory"):
            q = Quantity.of(req.get(res))
            if q is None:
                complete[res] = False
            else:
                out[res] = out.get(res, 0) + q.milli_value()
    return {k: v for k, v in out.items() if complete[k]}


def pod_samples(pods: Sequence[Obj], usage: Mapping[tuple[str, str], PodUsage]) -> list[PodSample]:
    out = []
    for p in pods:
        if not is_active(p):
            continue
        m = p["metadata"]
        u = usage.get((str(m.get("namespace", "")), str(m.get("name", ""))))
        used = None if u is None else {"cpu": u.cpu_nanocores // 1_000_000, "memory": u.memory_bytes * 1000}
        out.append(PodSample(str(m.get("name", "")), pod_ready(p), pod_requests(p), used))
    return out


def _current_metric(r: MetricResult) -> Obj:
    current: Obj = {"averageValue": _milli_quantity(r.average_milli, r.spec.resource)}
    if r.utilization is not None:
        current["averageUtilization"] = r.utilization
    return {"type": "Resource", "resource": {"name": r.spec.resource, "current": current}}


def _milli_quantity(milli: int, resource: str) -> str:
    if resource == "cpu":
        return f"{milli}m"
    return str(milli // 1000)


# ---- the controller -------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Memory:
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    events: list[ScaleEvent] = field(default_factory=list)


class HorizontalPodAutoscaler:
    def __init__(self, client: Client, hpas: Informer, pods: Informer, metrics: ResourceMetrics,
                 sync_period: float = 15.0, run_informers: bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.hpas, self.pods, self.metrics = client, hpas, pods, metrics
        self.sync_period, self.clock = sync_period, clock
        self.queue = WorkQueue()
        self.events = EventRecorder(client, COMPONENT)
        self._memory: dict[str, _Memory] = {}
        hpas.add_handler(self._on_hpa)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [hpas, pods], workers=1, run_informers=run_informers)

    def _on_hpa(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old
        if obj is not None:
            self.queue.add(object_key(obj))

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        hpa = self.hpas.get(ns, name)
        if hpa is None:
            self._memory.pop(key, None)
            return None
        await self._reconcile(key, hpa)
        return self.sync_period

    async def _reconcile(self, key: str, hpa: Obj) -> None:
        ns = str(hpa["metadata"].get("namespace", ""))
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        resource = SCALE_TARGETS.get(str(ref.get("kind", "")))
        conditions: dict[str, tuple[str, str, str]] = {}
        status: Obj = {"observedGeneration": hpa["metadata"].get("generation"),
                       "currentReplicas": 0, "desiredReplicas": 0}
        old_status = hpa.get("status") or {}
        if old_status.get("lastScaleTime"):
            status["lastScaleTime"] = old_status["lastScaleTime"]
        target = await self.client.get(resource, ns, str(ref.get("name", ""))) if resource else None
        if target is None:
            conditions["AbleToScale"] = ("False", "FailedGetScale",
                                         f'the HPA controller was unable to get the target\'s current scale: '
                                         f'{str(ref.get("kind", "")).lower()}s "{ref.get("name", "")}" not found')
            await self._write_status(hpa, status, conditions, [])
            return
        want = (target.get("spec") or {}).get("replicas")
        current = want if isinstance(want, int) else 1
        status["currentReplicas"] = int((target.get("status") or {}).get("replicas") or current)
        min_r, max_r = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        if current == 0 and min_r != 0:
            conditions["AbleToScale"] = ("True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")
            conditions["ScalingActive"] = ("False", "ScalingDisabled", "scaling is disabled since the replica count of the target is zero")
            await self._write_status(hpa, status, conditions, [])
            return
        selector = LabelSelector.from_api((target.get("spec") or {}).get("selector"))
        pods = [p for p in self.pods.list(ns) if selector.matches((p["metadata"].get("labels") or {}))
                and not p["metadata"].get("deletionTimestamp")]
        usage = {(u.namespace, u.name): u for u in self.metrics.pods()}
        samples = pod_samples(pods, usage)
        results: list[MetricResult] = []
        error: MetricError | None = None
        for m in metric_specs(hpa):
            try:
                results.append(calculate(m, current, samples))
            except MetricError as e:
                error = error or e
        mem = self._memory.setdefault(key, _Memory())
        now = self.clock()
        if not results:
            err = error or MetricError("FailedGetResourceMetric", "no metrics to scale on")
            conditions["AbleToScale"] = ("True", "SucceededGetScale", "the HPA controller was able to get the target's current scale")
            conditions["ScalingActive"] = ("False", err.reason, f"the HPA was unable to compute the replica count: {err.message}")
            if _condition_of(hpa, "ScalingActive") != ("False", err.reason):
                await self.events.event(hpa, "Warning", err.reason, err.message)   # once per change, not every sync
            status["desiredReplicas"] = current
            await self._write_status(hpa, status, conditions, [])
            return
        recommended = max(r.replicas for r in results)
        mem.recommendations = [(t, r) for t, r in mem.recommendations if t > now - 3600]
        mem.events = [e for e in mem.events if e.at > now - 3600]
        decision = stabilize(current, recommended, mem.recommendations, mem.events, spec.get("behavior"), min_r, max_r, now)
        mem.recommendations.append((now, recommended))
        conditions["ScalingActive"] = ("True", "ValidMetricFound",
                                       f"the HPA was able to successfully calculate a replica count from {results[0].spec.resource} resource"
                                       + (" utilization (percentage of request)" if results[0].spec.target_type == "Utilization" else ""))
        conditions["ScalingLimited"] = (("True", decision.limited_reason, decision.limited_message) if decision.limited_reason
                                        else ("False", "DesiredWithinRange", "the desired count is within the acceptable range"))
        if decision.replicas != current:
            try:
                await self.client.patch(resource or "", ns, str(ref.get("name", "")), {"spec": {"replicas": decision.replicas}},
                                        field_manager=COMPONENT)
            except ClientError as e:
                conditions["AbleToScale"] = ("False", "FailedUpdateScale", f"the HPA controller was unable to update the target scale: {e.message}")
                await self.events.event(hpa, "Warning", "FailedRescale", f"New size: {decision.replicas}; error: {e.message}")
                await self._write_status(hpa, status, conditions, results)
                return
            mem.events.append(ScaleEvent(now, decision.replicas - current))
            above = "above" if decision.replicas > current else "below"
            what = results[0].spec.resource
            await self.events.event(hpa, "Normal", "SuccessfulRescale", f"New size: {decision.replicas}; reason: {what} resource utilization "
                               f"(percentage of request) {above} target" if results[0].spec.target_type == "Utilization"
                               else f"New size: {decision.replicas}; reason: {what} resource {above} target")
            status["lastScaleTime"] = _now()
            conditions["AbleToScale"] = ("True", "SucceededRescale", f"the HPA controller was able to update the target scale to {decision.replicas}")
        else:
            conditions["AbleToScale"] = ("True", "ReadyForNewScale", "recommended size matches current size")
        status["desiredReplicas"] = decision.replicas
        await self._write_status(hpa, status, conditions, results)

    async def _write_status(self, hpa: Obj, status: Obj, conditions: Mapping[str, tuple[str, str, str]],
                            results: Sequence[MetricResult]) -> None:
        old = hpa.get("status") or {}
        if str(hpa.get("apiVersion", "")).endswith("/v1"):
            new: Obj = {k: v for k, v in status.items() if k != "observedGeneration" or v is not None}
            cpu = next((r.utilization for r in results if r.spec.resource == "cpu"), None)
            if cpu is not None:
                new["currentCPUUtilizationPercentage"] = cpu
        else:
            new = dict(status)
            new["currentMetrics"] = [_current_metric(r) for r in results] or None
            old_conds = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, dict)}
            conds = []
            for ctype in ("AbleToScale", "ScalingActive", "ScalingLimited"):
                if ctype not in conditions:
                    continue
                s, reason, message = conditions[ctype]
                prev = old_conds.get(ctype) or {}
                since = prev.get("lastTransitionTime") if prev.get("status") == s else None
                conds.append({"type": ctype, "status": s, "reason": reason, "message": message,
                              "lastTransitionTime": since or _now()})
            new["conditions"] = conds
        new = {k: v for k, v in new.items() if v is not None}
        if _same_status(old, new):
            return
        m = hpa["metadata"]
        try:
            await self.client.update(RESOURCE, str(m.get("namespace", "")), str(m.get("name", "")),
                                     {**hpa, "status": new}, subresource="status", field_manager=COMPONENT)
        except ClientError as e:
            if not (e.not_found or e.conflict):
                raise


def _condition_of(hpa: Obj, ctype: str) -> tuple[str, str] | None:
    for c in (hpa.get("status") or {}).get("conditions") or []:
        if isinstance(c, dict) and c.get("type") == ctype:
            return (str(c.get("status", "")), str(c.get("reason", "")))
    return None


def _same_status(old: Obj, new: Obj) -> bool:
    """Equal but for condition transition times (so an idle HPA writes nothing)."""
    def strip(s: Obj) -> Obj:
        out = dict(s)
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"} for c in s.get("conditions") or []]
        return out
    return strip(old) == strip(new)
