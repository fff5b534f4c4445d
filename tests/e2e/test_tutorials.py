"""Regressions found by following the kubernetes.io tutorials and task pages with kubectl
(docs/tutorial-check.md): one agent-enabled server, each test in a namespace of its own, the
manifests as the pages write them with busybox in place of other images.
Neighbours: tests/e2e/agent_fixtures.py (server, pods), tests/e2e/qa_server.py (the same server
kept running for checking by hand).
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


def test_etc_hosts_is_kubernetes_managed(node_minik: Minik) -> None:
    """"DNS for Services and Pods" / "Adding entries to Pod /etc/hosts with HostAliases": the pod's
    /etc/hosts names its own IP under hostname.subdomain, lists hostAliases, and `hostname -f`
    resolves; not a copy of the node's file."""
    ns = Ns.make(node_minik, "hosts")
    ns.create(pod("busybox1", [bb("busybox", "sleep 3600")], hostname="busybox-1",
                  subdomain="busybox-subdomain",
                  hostAliases=[{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}]))
    p = ns.wait("busybox1", timeout=60)
    ip = p["status"]["podIP"]
    hosts = ns.exec("busybox1", "cat", "/etc/hosts").stdout
    assert hosts.startswith("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"), hosts
    assert f"{ip}\tbusybox-1.busybox-subdomain.{ns.name}.svc.cluster.local\tbusybox-1\n" in hosts
    assert hosts.endswith("# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n"), hosts
    fqdn = ns.exec("busybox1", "hostname", "-f").stdout.strip()
    assert fqdn == f"busybox-1.busybox-subdomain.{ns.name}.svc.cluster.local"
    # A container that mounts its own /etc/hosts keeps it.
    ns.create(pod("own", [bb("c", "sleep 3600", volumeMounts=[{"name": "h", "mountPath": "/etc/hosts",
                                                                 "subPath": "hosts"}])],
                  volumes=[{"name": "h", "configMap": {"name": "myhosts"}}]))
    ns.kubectl("create", "configmap", "myhosts", "--from-literal=hosts=10.9.9.9 mine\n")
    ns.wait("own", timeout=60)
    assert ns.exec("own", "cat", "/etc/hosts").stdout == "10.9.9.9 mine\n"


def test_kubectl_autoscale_cpu_percent_is_the_target(node_minik: Minik) -> None:
    """"HorizontalPodAutoscaler Walkthrough": `kubectl autoscale --cpu-percent=50` (an autoscaling/v1
    object) is a 50 % cpu target for the controller and for `kubectl get hpa`, not the v2 default 80 %."""
    ns = Ns.make(node_minik, "hpa")
    ns.kubectl("create", "deployment", "php-apache", "--image=busybox", "--", "sleep", "3600")
    ns.kubectl("set", "resources", "deployment", "php-apache", "--requests=cpu=200m", "--limits=cpu=500m")
    ns.kubectl("autoscale", "deployment", "php-apache", "--cpu-percent=50", "--min=1", "--max=10")
    metrics = json.loads(ns.kubectl("get", "hpa", "php-apache", "-o", "jsonpath={.spec.metrics}").stdout)
    assert metrics == [{"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": 50}}}]
    # Once the controller has written status (through v2), the target is still 50 % everywhere.
    eventually(lambda: "%/50%" in ns.kubectl("get", "hpa", "php-apache", "--no-headers").stdout, timeout=90)
    v1 = json.loads(ns.kubectl("get", "--raw", f"/apis/autoscaling/v1/namespaces/{ns.name}/horizontalpodautoscalers/php-apache").stdout)
    assert v1["apiVersion"] == "autoscaling/v1" and v1["spec"]["targetCPUUtilizationPercentage"] == 50
    assert "metrics" not in v1["spec"] and "currentCPUUtilizationPercentage" in v1["status"]
    v2 = json.loads(ns.kubectl("get", "hpa", "php-apache", "-o", "json").stdout)
    assert [m["resource"]["target"]["averageUtilization"] for m in v2["spec"]["metrics"]] == [50]
    assert "Deployment pods:" in ns.kubectl("describe", "hpa", "php-apache").stdout


def test_node_version_matches_the_server(node_minik: Minik) -> None:
    """`kubectl get nodes` VERSION is the server's gitVersion (k3s: v1.32.x+k3s1 for both)."""
    server = json.loads(node_minik.kubectl("version", "-o", "json").stdout)["serverVersion"]["gitVersion"]
    node = json.loads(node_minik.kubectl("get", "nodes", "-o", "json").stdout)["items"][0]
    assert node["status"]["nodeInfo"]["kubeletVersion"] == server
