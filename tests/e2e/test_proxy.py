"""pods/proxy and services/proxy through the API server, as `kubectl get --raw` and
`kubectl proxy` users reach workloads: by port number, by port name, with a path and a query,
and a clear 503 when a service has no ready endpoint."""

from __future__ import annotations

import subprocess
import pytest

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import KUBECTL, Minik, free_port
from tests.support.polling import eventually, http_get

pytestmark = pytest.mark.e2e

SERVE = "mkdir -p /www/sub && echo root > /www/index.html && echo deep > /www/sub/x.txt && exec httpd -f -p 8080 -h /www"


def test_pod_and_service_proxy(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "proxy")
    web = pod("web", [bb("web", SERVE, ports=[{"name": "http", "containerPort": 8080}],
                         readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})])
    web["metadata"]["labels"] = {"app": "web"}
    ns.create(web)
    ns.kubectl("create", "service", "clusterip", "web", "--tcp=80:8080")
    ns.kubectl("create", "service", "clusterip", "nobody", "--tcp=80:8080")
    ns.wait("web", lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                 for c in p["status"].get("conditions", [])))
    base = f"/api/v1/namespaces/{ns.name}"
    assert ns.kubectl("get", "--raw", f"{base}/pods/web:8080/proxy/").stdout == "root\n"
    assert ns.kubectl("get", "--raw", f"{base}/pods/web:http/proxy/sub/x.txt?a=b").stdout == "deep\n"
    assert eventually(lambda: ns.kubectl("get", "--raw", f"{base}/services/web:80/proxy/sub/x.txt",
                                         check=False).stdout == "deep\n")
    gone = ns.kubectl("get", "--raw", f"{base}/services/nobody:80/proxy/", check=False)
    assert gone.returncode != 0 and "no endpoints available" in gone.stderr
    missing = ns.kubectl("get", "--raw", f"{base}/pods/absent:80/proxy/", check=False)
    assert missing.returncode != 0 and "NotFound" in missing.stderr

    # kubectl proxy: plain HTTP on loopback, the API server proxies on.
    port = free_port()
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", node_minik.kubeconfig, "proxy", f"--port={port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}{base}/services/web:80/proxy/"
        assert eventually(lambda: http_get(url) == "root\n", timeout=20)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
