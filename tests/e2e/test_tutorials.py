"""Regressions found by following the kubernetes.io tutorials and task pages with kubectl
(docs/tutorial-check.md): one agent-enabled server, each test in a namespace of its own, the
manifests as the pages write them with busybox in place of other images.
Neighbours: tests/e2e/agent_fixtures.py (server, pods), tests/e2e/qa_server.py (the same server
kept running for checking by hand).
"""

from __future__ import annotations

import pytest

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik

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
