"""Pods get the ServiceAccount token volume (kube-api-access-*): a bound token that authenticates as
the pod's ServiceAccount (RBAC applies), the cluster CA and the namespace; the token dies with the pod."""

from __future__ import annotations

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def test_pod_gets_a_working_bound_token(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "satok")
    ns.kubectl("create", "serviceaccount", "robot")
    ns.create(pod("tok", [bb("main", "exec sleep 3600")], serviceAccountName="robot"),
              pod("optout", [bb("main", "exec sleep 3600")], automountServiceAccountToken=False))
    ns.wait("tok")
    ns.wait("optout")
    got = ns.get("tok")
    assert got is not None
    vols = [v for v in got["spec"]["volumes"] if v["name"].startswith("kube-api-access-")]
    assert len(vols) == 1
    mounts = got["spec"]["containers"][0]["volumeMounts"]
    assert any(m["mountPath"] == SA_DIR and m["readOnly"] for m in mounts)
    optout = ns.get("optout")
    assert optout is not None and not any(v["name"].startswith("kube-api-access-") for v in optout["spec"].get("volumes") or [])

    assert ns.exec("tok", "cat", f"{SA_DIR}/namespace").stdout == ns.name
    assert "BEGIN CERTIFICATE" in ns.exec("tok", "cat", f"{SA_DIR}/ca.crt").stdout
    token = ns.exec("tok", "cat", f"{SA_DIR}/token").stdout.strip()
    as_pod = ["--kubeconfig=/dev/null", f"--server={node_minik.url}", "--insecure-skip-tls-verify", f"--token={token}"]
    who = node_minik.kubectl(*as_pod, "auth", "whoami").stdout
    assert f"system:serviceaccount:{ns.name}:robot" in who and "tok" in who   # pod name in the extra claims
    denied = node_minik.kubectl(*as_pod, "get", "pods", "-n", ns.name, check=False)
    assert denied.returncode == 1 and "forbidden" in denied.stderr
    ns.kubectl("create", "rolebinding", "robot-view", "--clusterrole=view", "--serviceaccount", f"{ns.name}:robot")
    assert node_minik.kubectl(*as_pod, "get", "pods", "-n", ns.name).returncode == 0

    ns.kubectl("delete", "pod", "tok", "--grace-period=1")
    assert eventually(lambda: node_minik.kubectl(*as_pod, "get", "pods", "-n", ns.name, check=False).returncode == 1,
                      timeout=30)
