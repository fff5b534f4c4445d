"""Pure planners of the disruption, cordon-taint and quota controllers, and the quota / limit
arithmetic admission shares with them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.api import limitranger
from minik.api.eviction import can_ignore_budget, matching_budgets
from minik.api.quota_admission import exceeded
from minik.apis import resourcequota as rq
from minik.apis.quantity import Quantity
from minik.controllers import disruption, nodeunschedulable, resourcequota

Obj = dict[str, Any]
NOW = dt.datetime(2026, 12, 5, 8, 0, tzinfo=dt.timezone.utc)


def pod(name: str, ready: bool = True, labels: Obj | None = None, owner: str = "rs", deleting: bool = False, **spec: Any) -> Obj:
    m: Obj = {"name": name, "namespace": "ns", "labels": labels if labels is not None else {"app": "web"}}
    if owner:
        m["ownerReferences"] = [{"kind": "ReplicaSet", "name": owner, "uid": owner, "controller": True}]
    if deleting:
        m["deletionTimestamp"] = "2026-12-05T07:59:00Z"
    return {"metadata": m, "spec": spec or {"containers": [{"name": "c"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def pdb(**spec: Any) -> Obj:
    return {"metadata": {"name": "b", "namespace": "ns", "generation": 2},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, **spec}, "status": spec.pop("status", {})}


def scale(n: int) -> Any:
    return lambda p: (p["metadata"]["ownerReferences"][0]["uid"], n) if p["metadata"].get("ownerReferences") else None


# ---- disruption -----------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,pods,replicas,want", [
    ({"minAvailable": 2}, [pod("a"), pod("b")], 2, (2, 2, 2, 0)),
    ({"minAvailable": 1}, [pod("a"), pod("b")], 2, (2, 1, 2, 1)),
    ({"minAvailable": 1}, [pod("a"), pod("b", ready=False)], 2, (2, 1, 1, 0)),
    ({"minAvailable": 1}, [pod("a"), pod("b", deleting=True)], 2, (2, 1, 1, 0)),
    ({"maxUnavailable": 1}, [pod("a"), pod("b")], 3, (3, 2, 2, 0)),      # expected from the controller's replicas
    ({"maxUnavailable": "34%"}, [pod("a"), pod("b"), pod("c")], 3, (3, 1, 3, 2)),
    ({"minAvailable": "50%"}, [pod("a"), pod("b"), pod("c")], 3, (3, 2, 3, 1)),
    ({"minAvailable": 1}, [pod("x", labels={"app": "other"})], 1, (0, 1, 0, 0)),
])
def test_pdb_status(spec: Obj, pods: list[Obj], replicas: int, want: tuple[int, int, int, int]) -> None:
    st = disruption.plan(pdb(**spec), pods, scale(replicas), NOW).status
    assert (st["expectedPods"], st["desiredHealthy"], st["currentHealthy"], st["disruptionsAllowed"]) == want
    cond = st["conditions"][0]
    assert cond["type"] == "DisruptionAllowed" and cond["status"] == ("True" if want[3] else "False")
    assert cond["reason"] == ("SufficientPods" if want[3] else "InsufficientPods")
    assert st["observedGeneration"] == 2


def test_pdb_fails_safe_without_controller_and_counts_recent_evictions() -> None:
    st = disruption.plan(pdb(maxUnavailable=1), [pod("a", owner="")], scale(1), NOW).status
    assert st["disruptionsAllowed"] == 0 and st["conditions"][0]["reason"] == "SyncFailed"
    b = pdb(minAvailable=1)
    b["status"] = {"disruptedPods": {"a": "2026-12-05T07:59:30Z", "gone": "2026-12-05T07:59:30Z", "old": "2026-12-05T07:50:00Z"}}
    p = disruption.plan(b, [pod("a"), pod("b"), pod("old")], scale(3), NOW)
    assert p.status["disruptedPods"] == {"a": "2026-12-05T07:59:30Z"}      # still there, recent
    assert p.status["currentHealthy"] == 2 and p.status["disruptionsAllowed"] == 1
    assert p.recheck_after == pytest.approx(90.0)


def test_status_unchanged_keeps_transition_time() -> None:
    first = disruption.plan(pdb(minAvailable=1), [pod("a"), pod("b")], scale(2), NOW).status
    b = pdb(minAvailable=1)
    b["status"] = first
    later = disruption.plan(b, [pod("a"), pod("b")], scale(2), NOW + dt.timedelta(minutes=5)).status
    assert later == first and not disruption.status_differs(first, later)


# ---- eviction helpers -----------------------------------------------------------------------------

def test_eviction_ignores_budgets_for_pending_finished_or_terminating_pods() -> None:
    assert not can_ignore_budget(pod("a"))
    p = pod("a")
    p["status"]["phase"] = "Pending"
    assert can_ignore_budget(p) and can_ignore_budget(pod("a", deleting=True))
    budgets = [pdb(), {"metadata": {"name": "all"}, "spec": {"selector": {}}}, {"metadata": {"name": "none"}, "spec": {}}]
    assert [b["metadata"]["name"] for b in matching_budgets(pod("a"), budgets)] == ["b", "all"]


# ---- cordon taint ---------------------------------------------------------------------------------

def test_unschedulable_taint_follows_spec() -> None:
    other = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    node: Obj = {"metadata": {"name": "n"}, "spec": {"unschedulable": True, "taints": [other]}}
    taints = nodeunschedulable.plan_taints(node, "T")
    assert taints == [other, {"key": nodeunschedulable.TAINT_KEY, "effect": "NoSchedule", "timeAdded": "T"}]
    node["spec"]["taints"] = taints
    assert nodeunschedulable.plan_taints(node, "T") is None
    node["spec"]["unschedulable"] = False
    assert nodeunschedulable.plan_taints(node, "T") == [other]
    assert nodeunschedulable.plan_taints({"metadata": {"name": "n"}, "spec": {}}, "T") is None


# ---- quota arithmetic -----------------------------------------------------------------------------

def test_pod_usage_takes_the_larger_of_containers_and_init() -> None:
    p = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
                                 {"name": "b", "resources": {"requests": {"cpu": "200m"}}}],
                  "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "500m", "memory": "32Mi"}}}]}}
    u = rq.usage("pods", p, ["pods", "count/pods", "requests.cpu", "cpu", "requests.memory", "limits.cpu", "limits.memory"])
    assert {k: str(v) for k, v in u.items()} == {"pods": "1", "count/pods": "1", "requests.cpu": "500m", "cpu": "500m",
                                                 "requests.memory": "64Mi", "limits.cpu": "1"}
    done = dict(p, status={"phase": "Succeeded"})
    assert rq.usage("pods", done, ["pods"]) == {}


def test_usage_of_services_claims_and_counts() -> None:
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}
    assert {k: str(v) for k, v in rq.usage("services", svc, ["services", "services.nodeports", "services.loadbalancers"]).items()} == \
        {"services": "1", "services.nodeports": "2"}
    claim = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "5Gi"}}}}
    names = ["persistentvolumeclaims", "requests.storage", "fast.storageclass.storage.k8s.io/requests.storage"]
    assert {k: str(v) for k, v in rq.usage("persistentvolumeclaims", claim, names).items()} == \
        {"persistentvolumeclaims": "1", "requests.storage": "5Gi", "fast.storageclass.storage.k8s.io/requests.storage": "5Gi"}
    assert rq.usage("apps/deployments", {}, ["count/deployments.apps"]) == {"count/deployments.apps": Quantity.parse(1)}
    assert rq.store_key_of("count/deployments.apps") == "apps/deployments" and rq.store_key_of("requests.cpu") == "pods"


def test_exceeded_and_missing_compute() -> None:
    def q(v: str) -> int:
        return rq.nanos(Quantity.parse(v))
    assert exceeded({"pods": q("2")}, {"pods": q("2")}, {"pods": q("1")}) == ["pods"]
    assert exceeded({"pods": q("3")}, {"pods": q("2")}, {"pods": q("1")}) == []
    assert exceeded({"requests.cpu": q("1")}, {"requests.cpu": q("600m")}, {"requests.cpu": q("400m")}) == []
    assert exceeded({"requests.cpu": q("1")}, {"requests.cpu": q("600m")}, {"requests.cpu": q("401m")}) == ["requests.cpu"]
    p = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "1"}}}, {"name": "b"}]}}
    assert rq.missing_compute(p, ["requests.cpu", "limits.memory", "pods"]) == ["limits.memory for: a,b", "requests.cpu for: b"]


def test_quota_used_counts_with_scopes() -> None:
    quota = {"spec": {"hard": {"pods": "5", "requests.cpu": "2"}, "scopes": ["NotBestEffort"]}}
    pods = [{"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m"}}}]}},
            {"spec": {"containers": [{"name": "be"}]}}]
    assert resourcequota.compute_used(quota, lambda key: pods if key == "pods" else []) == {"pods": "1", "requests.cpu": "250m"}


# ---- limit ranges ---------------------------------------------------------------------------------

LR = {"spec": {"limits": [{"type": "Container", "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"},
                           "min": {"cpu": "50m"}, "max": {"cpu": "1"}, "maxLimitRequestRatio": {"cpu": "4"}},
                          {"type": "Pod", "max": {"cpu": "1500m"}},
                          {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}}


def test_limitrange_defaults_only_missing_values() -> None:
    p = {"spec": {"containers": [{"name": "a"}, {"name": "b", "resources": {"limits": {"cpu": "800m"}, "requests": {"cpu": "400m"}}}]}}
    notes = limitranger.default_containers(p, [LR])
    assert p["spec"]["containers"][0]["resources"] == {"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}}
    assert p["spec"]["containers"][1]["resources"] == {"limits": {"cpu": "800m"}, "requests": {"cpu": "400m"}}
    assert notes == ["cpu request for container a", "cpu limit for container a"]


def test_limitrange_violations() -> None:
    def c(req: str, lim: str) -> Obj:
        return {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": req}, "limits": {"cpu": lim}}}]}}
    assert limitranger.violations("Pod", c("100m", "400m"), [LR]) == []
    assert limitranger.violations("Pod", c("10m", "20m"), [LR]) == [
        "minimum cpu usage per Container is 50m, but request is 10m", "minimum cpu usage per Container is 50m, but limit is 20m"]
    assert limitranger.violations("Pod", c("100m", "2"), [LR]) == [
        "maximum cpu usage per Container is 1, but limit is 2",
        "cpu max limit to request ratio per Container is 4, but provided ratio is 20.000000",
        "maximum cpu usage per Pod is 1500m, but limit is 2"]
    big = {"spec": {"containers": [{"name": n, "resources": {"requests": {"cpu": "400m"}, "limits": {"cpu": "800m"}}}
                                   for n in ("a", "b")]}}
    assert limitranger.violations("Pod", big, [LR]) == ["maximum cpu usage per Pod is 1500m, but limit is 1600m"]
    nolimit = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]}}
    assert "maximum cpu usage per Container is 1.  No limit is specified" in limitranger.violations("Pod", nolimit, [LR])
    claim = {"spec": {"resources": {"requests": {"storage": "20Gi"}}}}
    assert limitranger.violations("PersistentVolumeClaim", claim, [LR]) == [
        "maximum storage usage per PersistentVolumeClaim is 10Gi, but request is 20Gi"]


def test_quota_scope_selector_priority_class() -> None:
    quota = {"spec": {"hard": {"pods": "2"}, "scopeSelector": {"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}}
    scopes = rq.quota_scopes(quota)
    high = {"spec": {"priorityClassName": "high", "containers": [{"name": "a"}]}}
    low = {"spec": {"priorityClassName": "low", "containers": [{"name": "a"}]}}
    assert rq.pod_matches_scopes(high, scopes) and not rq.pod_matches_scopes(low, scopes)
    assert resourcequota.compute_used(quota, lambda key: [high, low, high]) == {"pods": "2"}
    not_be = rq.quota_scopes({"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "BestEffort", "operator": "DoesNotExist"}]}}})
    assert not rq.pod_matches_scopes({"spec": {"containers": [{"name": "a"}]}}, not_be)
    term = rq.quota_scopes({"spec": {"scopes": ["Terminating"]}})
    assert rq.pod_matches_scopes({"spec": {"activeDeadlineSeconds": 5}}, term) and not rq.pod_matches_scopes({"spec": {}}, term)
