"""StatefulSet planning tables: ordering, scale-down, partitioned rolling updates, claims."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from minik.controllers.statefulset import compute_status, identity_pod, new_claim, plan

Obj = dict[str, Any]
NOW = dt.datetime(2026, 3, 1, 10, 0, tzinfo=dt.timezone.utc)


def sts(replicas: int = 3, **spec: Any) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": "u1", "generation": 2},
            "spec": {"replicas": replicas, "serviceName": "svc", "podManagementPolicy": "OrderedReady",
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"]}}],
                     **spec}}


def pod(i: int, rev: str = "r1", state: str = "ready", deleting: bool = False) -> Obj:
    st: Obj = {"phase": {"ready": "Running", "running": "Running", "pending": "Pending", "failed": "Failed"}[state]}
    st["conditions"] = [{"type": "Ready", "status": "True" if state == "ready" else "False"}]
    m: Obj = {"name": f"web-{i}", "namespace": "default", "uid": f"p{i}",
              "labels": {"app": "web", "controller-revision-hash": rev}}
    if deleting:
        m["deletionTimestamp"] = "2026-03-01T09:59:00Z"
    return {"metadata": m, "status": st}


CLAIMS = {"www-web-0", "www-web-1", "www-web-2", "www-web-3"}


def names(pods: tuple[Obj, ...]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


@pytest.mark.parametrize("pods,policy,creates,deletes", [
    ([], "OrderedReady", [0], []),
    ([pod(0)], "OrderedReady", [1], []),
    ([pod(0, state="pending")], "OrderedReady", [], []),            # wait for web-0 to be Ready
    ([pod(0), pod(1, state="running")], "OrderedReady", [], []),     # running but not Ready
    ([], "Parallel", [0, 1, 2], []),
    ([pod(0, state="pending")], "Parallel", [1, 2], []),
    ([pod(0), pod(1, state="failed"), pod(2)], "OrderedReady", [], ["web-1"]),   # failed pods are replaced
    ([pod(0), pod(1), pod(2), pod(3), pod(4)], "OrderedReady", [], ["web-4"]),    # one at a time, highest first
    ([pod(0), pod(1), pod(2), pod(3), pod(4)], "Parallel", [], ["web-4", "web-3"]),
    ([pod(0), pod(1), pod(2), pod(3), pod(4, deleting=True)], "OrderedReady", [], []),   # wait for web-4 to go
    ([pod(0), pod(1, state="pending"), pod(2), pod(3)], "OrderedReady", [], []),   # no scale-down while unhealthy
])
def test_ordering(pods: list[Obj], policy: str, creates: list[int], deletes: list[str]) -> None:
    p = plan(sts(podManagementPolicy=policy), pods, CLAIMS, "r1", "r1", NOW)
    assert [c.ordinal for c in p.create] == creates
    assert names(p.delete) == deletes


@pytest.mark.parametrize("partition,pods,deletes", [
    (0, [pod(0), pod(1), pod(2)], ["web-2"]),                           # highest first, one at a time
    (0, [pod(0), pod(1), pod(2, rev="r2")], ["web-1"]),
    (0, [pod(0), pod(1), pod(2, rev="r2", state="running")], []),       # wait for the updated pod
    (2, [pod(0), pod(1), pod(2, rev="r2")], []),                        # partition: web-0 and web-1 stay
    (2, [pod(0), pod(1), pod(2)], ["web-2"]),
    (5, [pod(0), pod(1), pod(2)], []),
])
def test_rolling_update(partition: int, pods: list[Obj], deletes: list[str]) -> None:
    s = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": partition}})
    assert names(plan(s, pods, CLAIMS, "r1", "r2", NOW).delete) == deletes


def test_max_unavailable_and_on_delete() -> None:
    s = sts(podManagementPolicy="Parallel", updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": 2}})
    assert names(plan(s, [pod(0), pod(1), pod(2)], CLAIMS, "r1", "r2", NOW).delete) == ["web-2", "web-1"]
    s = sts(updateStrategy={"type": "OnDelete"})
    assert plan(s, [pod(0), pod(1), pod(2)], CLAIMS, "r1", "r2", NOW).delete == ()
    # OnDelete: a pod the user deleted comes back at the update revision.
    p = plan(s, [pod(0), pod(2)], CLAIMS, "r1", "r2", NOW)
    assert [(c.ordinal, c.revision) for c in p.create] == [(1, "r2")]


def test_partition_recreates_low_ordinals_at_the_current_revision() -> None:
    s = sts(updateStrategy={"type": "RollingUpdate", "rollingUpdate": {"partition": 2}})
    p = plan(s, [pod(1), pod(2)], CLAIMS, "r1", "r2", NOW)
    assert [(c.ordinal, c.revision) for c in p.create] == [(0, "r1")]


def test_claims_created_with_the_pod_and_retention_on_scale_down() -> None:
    p = plan(sts(), [], set(), "r1", "r1", NOW)
    assert [c["metadata"]["name"] for c in p.create[0].claims] == ["www-web-0"]
    s = sts(replicas=1, podManagementPolicy="Parallel",
            persistentVolumeClaimRetentionPolicy={"whenDeleted": "Retain", "whenScaled": "Delete"})
    p = plan(s, [pod(0), pod(1)], CLAIMS, "r1", "r1", NOW)
    assert names(p.delete) == ["web-1"] and [(n, o["metadata"]["name"]) for n, o in p.claim_owners] == [("www-web-1", "web-1")]
    claim = new_claim(sts(persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete"}),
                      sts()["spec"]["volumeClaimTemplates"][0], 0, "web-0")
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    assert "ownerReferences" not in new_claim(sts(), sts()["spec"]["volumeClaimTemplates"][0], 0, "web-0")["metadata"]


def test_identity_pod() -> None:
    p = identity_pod(sts(), sts()["spec"]["template"], 2, "web-abc")
    assert p["metadata"]["name"] == "web-2" and "generateName" not in p["metadata"]
    assert p["spec"]["hostname"] == "web-2" and p["spec"]["subdomain"] == "svc"
    assert p["metadata"]["labels"] == {"app": "web", "statefulset.kubernetes.io/pod-name": "web-2",
                                       "apps.kubernetes.io/pod-index": "2", "controller-revision-hash": "web-abc"}
    assert p["spec"]["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-2"}}]
    assert p["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"


def test_status_completes_rollout_only_when_all_updated_and_ready() -> None:
    st = compute_status(sts(), [pod(0, rev="r2"), pod(1, rev="r2"), pod(2, rev="r2")], "r1", "r2", 0, NOW)
    assert st["currentRevision"] == st["updateRevision"] == "r2" and st["currentReplicas"] == 3
    st = compute_status(sts(), [pod(0), pod(1), pod(2, rev="r2")], "r1", "r2", 0, NOW)
    assert st["currentRevision"] == "r1" and st["updatedReplicas"] == 1 and st["currentReplicas"] == 2
    assert st["readyReplicas"] == 3 and st["observedGeneration"] == 2
