"""Eviction, PodDisruptionBudgets, cordon and drain on a real node through kubectl.

- `kubectl cordon` adds the `node.kubernetes.io/unschedulable:NoSchedule` taint and
  `uncordon` removes it;
- a PDB's status follows its pods (currentHealthy, desiredHealthy, disruptionsAllowed,
  expectedPods, DisruptionAllowed condition);
- the eviction subresource answers 429 with kube's message when a budget would be violated;
- `kubectl drain --ignore-daemonsets` is blocked by `minAvailable: 2` on a 2-replica Deployment
  with a clear message, and once the budget allows it evicts the Deployment's pods and leaves the
  DaemonSet's pod alone.
The module's server is its own: drain evicts every pod of the node.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, node_server
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e

PDB_MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."


@pytest.fixture(scope="module")
def drain_minik(local_registry: str) -> Iterator[Minik]:
    with node_server(local_registry) as (m, _net):
        yield m


def _node(m: Minik) -> str:
    return str(m.kubectl("get", "nodes", "-o", "jsonpath={.items[0].metadata.name}").stdout)


def _json(ns: Ns, *args: str) -> Any:
    return json.loads(ns.kubectl("get", *args, "-o", "json").stdout)


def _deployment(name: str, replicas: int) -> Obj:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"terminationGracePeriodSeconds": 1, "containers": [bb("main", "exec sleep 3600")]}}}}


def _pdb(name: str, app: str, **spec: Any) -> Obj:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": {"app": app}}, **spec}}


def _ready_pods(ns: Ns, app: str) -> list[Obj]:
    items = _json(ns, "pods", "-l", f"app={app}")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions") or [])]


def _daemon_pod(ns: Ns, node: str) -> str:
    """A DaemonSet and its pod on the node: the DaemonSet controller's if there is one, otherwise
    a pod made here exactly as it would make it (controller reference to the DaemonSet)."""
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"terminationGracePeriodSeconds": 1, "containers": [bb("main", "exec sleep 3600")]}}}}
    ns.create(ds)
    uid = _json(ns, "daemonset", "agent")["metadata"]["uid"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        items = _json(ns, "pods", "-l", "app=agent")["items"]
        if items:
            return str(items[0]["metadata"]["name"])
        time.sleep(0.5)
    p = {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "agent-x", "labels": {"app": "agent"},
                      "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": uid,
                                           "controller": True, "blockOwnerDeletion": True}]},
         "spec": {"nodeName": node, "terminationGracePeriodSeconds": 1, "containers": [bb("main", "exec sleep 3600")],
                  "tolerations": [{"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}}
    ns.create(p)
    return "agent-x"


def _taints(m: Minik, node: str) -> list[Obj]:
    out = m.kubectl("get", "node", node, "-o", "jsonpath={.spec.taints}").stdout
    return list(json.loads(out)) if out else []


def test_cordon_taints_and_uncordon_untaints(drain_minik: Minik) -> None:
    m = drain_minik
    node = _node(m)
    m.kubectl("cordon", node)
    assert eventually(lambda: any(t["key"] == "node.kubernetes.io/unschedulable" and t["effect"] == "NoSchedule"
                                  for t in _taints(m, node)), timeout=20)
    assert "SchedulingDisabled" in m.kubectl("get", "node", node).stdout
    m.kubectl("uncordon", node)
    assert eventually(lambda: not any(t["key"] == "node.kubernetes.io/unschedulable" for t in _taints(m, node)), timeout=20)
    assert "SchedulingDisabled" not in m.kubectl("get", "node", node).stdout


def test_drain_blocked_by_budget_then_evicts_all_but_daemonset_pods(drain_minik: Minik) -> None:
    m = drain_minik
    node = _node(m)
    ns = Ns.make(m, "drain")
    ns.create(_deployment("web", 2), _pdb("web-pdb", "web", minAvailable=2))
    daemon = _daemon_pod(ns, node)
    assert eventually(lambda: len(_ready_pods(ns, "web")) == 2, timeout=90)
    ns.wait(daemon, timeout=60)

    def pdb_status() -> Obj:
        return dict(_json(ns, "pdb", "web-pdb").get("status") or {})
    assert eventually(lambda: pdb_status().get("currentHealthy") == 2, timeout=30)
    st = pdb_status()
    assert (st["desiredHealthy"], st["disruptionsAllowed"], st["expectedPods"]) == (2, 0, 2)
    cond = next(c for c in st["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("False", "InsufficientPods")
    line = next(ln for ln in ns.kubectl("get", "pdb").stdout.splitlines() if ln.startswith("web-pdb"))
    assert line.split()[1:4] == ["2", "N/A", "0"]

    # The eviction subresource itself: 429 with kube's message and the budget's reason.
    victim = _ready_pods(ns, "web")[0]["metadata"]["name"]
    code, status = m.raw_json("POST", f"/api/v1/namespaces/{ns.name}/pods/{victim}/eviction",
                              {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim, "namespace": ns.name}})
    assert code == 429, status
    assert status["reason"] == "TooManyRequests" and status["message"] == PDB_MESSAGE
    assert status["details"]["causes"] == [{"reason": "DisruptionBudget",
                                            "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"}]

    r = m.kubectl("drain", node, "--ignore-daemonsets", "--timeout=12s", check=False, timeout=90)
    assert r.returncode != 0
    assert PDB_MESSAGE in r.stderr, r.stderr
    assert f"node/{node} cordoned" in r.stdout + r.stderr
    assert len(_ready_pods(ns, "web")) == 2              # nothing went through the budget
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in _taints(m, node))

    # A budget that allows one disruption at a time: drain goes through, pod by pod.
    ns.kubectl("patch", "pdb", "web-pdb", "--type=merge", "-p", '{"spec":{"minAvailable":1}}')
    assert eventually(lambda: pdb_status().get("disruptionsAllowed") == 1, timeout=30)
    ns.kubectl("delete", "pdb", "web-pdb")      # the replacements cannot start on a cordoned node
    r = m.kubectl("drain", node, "--ignore-daemonsets", "--timeout=60s", check=False, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"Warning: ignoring DaemonSet-managed Pods: {ns.name}/{daemon}" in r.stderr, r.stderr
    assert f"node/{node} drained" in r.stdout
    assert "evicting pod " + f"{ns.name}/web-" in r.stderr + r.stdout
    names = {p["metadata"]["name"]: p for p in _json(ns, "pods")["items"]}
    assert daemon in names and not names[daemon]["metadata"].get("deletionTimestamp")
    web = [p for n, p in names.items() if n.startswith("web-")]
    assert len(web) == 2 and all(not p["spec"].get("nodeName") for p in web)   # replacements wait: node cordoned
    m.kubectl("uncordon", node)
    assert eventually(lambda: len(_ready_pods(ns, "web")) == 2, timeout=90)


def test_budget_with_max_unavailable_counts_the_deployments_replicas(drain_minik: Minik) -> None:
    ns = Ns.make(drain_minik, "budget")
    ns.create(_deployment("api", 3), _pdb("api-pdb", "api", maxUnavailable="34%"))
    assert eventually(lambda: len(_ready_pods(ns, "api")) == 3, timeout=90)

    def st() -> Obj:
        return dict(_json(ns, "pdb", "api-pdb").get("status") or {})
    # 34% of 3 rounds up to 2 unavailable → 1 desired healthy, 2 disruptions allowed.
    assert eventually(lambda: (st().get("expectedPods"), st().get("desiredHealthy"), st().get("disruptionsAllowed")) == (3, 1, 2),
                      timeout=30)
    victim = _ready_pods(ns, "api")[0]["metadata"]["name"]
    code, status = drain_minik.raw_json("POST", f"/api/v1/namespaces/{ns.name}/pods/{victim}/eviction",
                                        {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": victim},
                                         "deleteOptions": {"gracePeriodSeconds": 0}})
    assert code == 201 and status["status"] == "Success", status
    # The eviction was spent from the budget before the controller saw the pod go.
    assert eventually(lambda: victim not in {p["metadata"]["name"] for p in _json(ns, "pods")["items"]}, timeout=60)
    assert eventually(lambda: st().get("disruptionsAllowed") == 2 and not st().get("disruptedPods"), timeout=90)


def test_eviction_through_the_python_client(minik: Minik) -> None:
    """Control plane only: a Pending pod is evicted whatever its budget says (kube's
    canIgnorePDB); the Eviction must name the pod; a missing pod is 404."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    api = client.CoreV1Api(minik.client())
    ns = "evict-" + time.strftime("%H%M%S")
    api.create_namespace({"metadata": {"name": ns}})
    api.create_namespaced_pod(ns, {"metadata": {"name": "waiting", "labels": {"app": "w"}},
                                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    client.PolicyV1Api(minik.client()).create_namespaced_pod_disruption_budget(
        ns, {"metadata": {"name": "strict"}, "spec": {"minAvailable": 5, "selector": {"matchLabels": {"app": "w"}}}})
    with pytest.raises(ApiException) as e:
        api.create_namespaced_pod_eviction("waiting", ns, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "other"}})
    assert e.value.status == 400 and "name in URL does not match name in Eviction object" in str(e.value.body)
    with pytest.raises(ApiException) as e:
        api.create_namespaced_pod_eviction("nobody", ns, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "nobody"}})
    assert e.value.status == 404
    api.create_namespaced_pod_eviction("waiting", ns, {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "waiting"}})
    assert eventually(lambda: not api.list_namespaced_pod(ns).items, timeout=20)
