"""Resource metrics and the HorizontalPodAutoscaler on a real node, through kubectl.

One agent-enabled server with a short metric resolution and HPA sync period (3 s, the defaults
are 15 s), so a CPU-burning Deployment scales up within a minute and back down once the load
stops (the scale-down stabilization window is shortened through the HPA's own `behavior`, as the
issue asks). Also: `kubectl top pods|nodes` print figures, the metrics API filters by label,
APIServices list the locally served group-versions and a user's aggregated APIService is kept and
shown unavailable with the reason.
Neighbours: tests/e2e/agent_fixtures.py (node server pieces), tests/unit/controllers/test_hpa.py
(the replica calculator and behaviour tables).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.agent_fixtures import Ns, claim_node_net, node_minik_for, reap_node, release_node_net, wait_node_ready
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

FAST = ["--metric-resolution", "3", "--horizontal-pod-autoscaler-sync-period", "3"]


@pytest.fixture(scope="module")
def fast_node(local_registry: str) -> Iterator[Minik]:
    net = claim_node_net()
    m = node_minik_for(net, local_registry)
    m.extra += FAST
    try:
        m.start(timeout=90)
        wait_node_ready(m, net.node_name)
        yield m
    finally:
        reap_node(m, net, keep_dir=os.environ.get("MINIK_KEEP_TEST_DIRS") == "1")
        release_node_net(net)


def _deployment(name: str, script: str, replicas: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"terminationGracePeriodSeconds": 1,
                                       "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", script],
                                                       "resources": {"requests": {"cpu": "100m", "memory": "16Mi"}}}]}}},
    }


def _ready_replicas(ns: Ns, name: str) -> int:
    d = json.loads(ns.kubectl("get", "deploy", name, "-o", "json").stdout)
    return int((d.get("status") or {}).get("readyReplicas") or 0)


def test_kubectl_top_and_metrics_api(fast_node: Minik) -> None:
    ns = Ns.make(fast_node, "top")
    ns.create(_deployment("idle", "exec sleep 3600"), _deployment("busy", "while :; do :; done"))
    eventually(lambda: _ready_replicas(ns, "idle") == 1 and _ready_replicas(ns, "busy") == 1, timeout=60)

    def top_pods() -> str:
        r = ns.kubectl("top", "pods", "--no-headers", check=False)
        return r.stdout if r.returncode == 0 and "busy" in r.stdout and "idle" in r.stdout else ""

    out = eventually(top_pods, timeout=60)
    cpu = {line.split()[0].split("-")[0]: line.split()[1] for line in out.splitlines()}
    # A spinning shell takes what the (shared, loaded) machine gives it; an idle one next to nothing.
    assert cpu["busy"].endswith("m") and int(cpu["busy"][:-1]) > 50, out
    assert int(cpu["idle"].rstrip("m")) < 20, out
    nodes = fast_node.kubectl("top", "nodes", "--no-headers").stdout
    assert len(nodes.split()) >= 5 and nodes.split()[1].endswith("m"), nodes
    # The metrics API itself: PodMetrics carry their pod's labels, so selectors work.
    code, body = fast_node.raw_json("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns.name}/pods?labelSelector=app%3Dbusy")
    assert code == 200 and [i["metadata"]["labels"]["app"] for i in body["items"]] == ["busy"], body
    item = body["items"][0]
    assert item["containers"][0]["name"] == "c" and item["containers"][0]["usage"]["memory"].endswith("Ki")
    code, one = fast_node.raw_json("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns.name}/pods/{item['metadata']['name']}")
    assert code == 200 and one["kind"] == "PodMetrics"
    code, err = fast_node.raw_json("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns.name}/pods/nope")
    assert code == 404 and err["reason"] == "NotFound"
    code, err = fast_node.raw_json("DELETE", f"/apis/metrics.k8s.io/v1beta1/nodes/{nodes.split()[0]}")
    assert code == 405


def test_hpa_scales_up_under_load_and_down_after(fast_node: Minik) -> None:
    ns = Ns.make(fast_node, "hpa")
    # The load runs while /tmp/stop is absent; `kubectl exec … touch` on every pod ends it.
    ns.create(_deployment("burn", "while [ ! -e /tmp/stop ]; do :; done; exec sleep 3600"))
    eventually(lambda: _ready_replicas(ns, "burn") == 1, timeout=60)
    hpa = {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "burn"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
                 "minReplicas": 1, "maxReplicas": 3,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}],
                 "behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}},
    }
    ns.create(hpa)

    def scaled_up() -> bool:
        d = json.loads(ns.kubectl("get", "deploy", "burn", "-o", "json").stdout)
        return int(d["spec"]["replicas"]) == 3

    eventually(scaled_up, timeout=60)
    got = json.loads(ns.kubectl("get", "hpa", "burn", "-o", "json").stdout)
    conds = {c["type"]: c for c in got["status"]["conditions"]}
    assert conds["ScalingActive"]["status"] == "True" and conds["ScalingActive"]["reason"] == "ValidMetricFound", conds
    assert got["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"] > 50
    table = ns.kubectl("get", "hpa", "burn").stdout
    assert "Deployment/burn" in table and "/50%" in table, table
    events = ns.kubectl("get", "events", "--field-selector", "reason=SuccessfulRescale", "-o", "json").stdout
    assert "New size: " in events

    eventually(lambda: _ready_replicas(ns, "burn") == 3, timeout=60)
    pods = ns.kubectl("get", "pods", "-l", "app=burn", "-o", "name").stdout.split()
    for p in pods:
        ns.kubectl("exec", p, "--", "touch", "/tmp/stop", check=False)

    def scaled_down() -> bool:
        d = json.loads(ns.kubectl("get", "deploy", "burn", "-o", "json").stdout)
        return int(d["spec"]["replicas"]) == 1

    eventually(scaled_down, timeout=90)


def test_hpa_without_requests_reports_why(fast_node: Minik) -> None:
    ns = Ns.make(fast_node, "hpa-noreq")
    d = _deployment("noreq", "exec sleep 3600")
    del d["spec"]["template"]["spec"]["containers"][0]["resources"]
    ns.create(d)
    ns.kubectl("autoscale", "deployment", "noreq", "--cpu-percent=50", "--min=1", "--max=2")

    def inactive() -> dict[str, Any] | None:
        h = json.loads(ns.kubectl("get", "hpa", "noreq", "-o", "json").stdout)
        for c in (h.get("status") or {}).get("conditions") or []:
            # (until the first samples arrive the reason names the missing metrics instead)
            if c["type"] == "ScalingActive" and c["status"] == "False" and "missing request" in c["message"]:
                return c
        return None

    cond = eventually(inactive, timeout=60)
    assert cond["reason"] == "FailedGetResourceMetric" and "missing request for cpu" in cond["message"], cond


def test_apiservices(fast_node: Minik) -> None:
    def listed() -> str:
        out = fast_node.kubectl("get", "apiservices").stdout
        return out if "v1beta1.metrics.k8s.io" in out and "v1.apps" in out else ""

    out = eventually(listed, timeout=30)
    row = next(line.split() for line in out.splitlines() if line.startswith("v1.apps "))
    assert row[1:3] == ["Local", "True"], out
    user = {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": "v1alpha1.example.test"},
            "spec": {"group": "example.test", "version": "v1alpha1", "groupPriorityMinimum": 1000, "versionPriority": 15,
                     "service": {"namespace": "default", "name": "nothing-here"}, "insecureSkipTLSVerify": True}}
    code, body = fast_node.raw_json("POST", "/apis/apiregistration.k8s.io/v1/apiservices", user)
    assert code == 201, body

    def unavailable() -> str:
        line = next((line for line in fast_node.kubectl("get", "apiservices").stdout.splitlines()
                     if line.startswith("v1alpha1.example.test ")), "")
        return line if "False" in line else ""

    line = eventually(unavailable, timeout=30)
    assert "default/nothing-here" in line and "False (ServiceNotFound)" in line, line
    # A deleted Local APIService comes back, as kube-apiserver's autoregistration does.
    fast_node.kubectl("delete", "apiservice", "v1.batch")
    eventually(lambda: fast_node.raw_json("GET", "/apis/apiregistration.k8s.io/v1/apiservices/v1.batch")[0] == 200, timeout=90)
