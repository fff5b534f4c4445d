"""kubectl auth can-i / whoami, ServiceAccount tokens (kubectl create token) authenticate and expire with their SA."""

from __future__ import annotations

from tests.e2e.minikd import Minik


def test_auth_reviews(minik: Minik) -> None:
    assert minik.kubectl("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    assert "system:admin" in minik.kubectl("auth", "whoami").stdout
    assert "*.*" in minik.kubectl("auth", "can-i", "--list").stdout


def test_service_account_token(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "tok-t")
    minik.kubectl("create", "serviceaccount", "robot", "-n", "tok-t")
    token = minik.kubectl("create", "token", "robot", "-n", "tok-t").stdout.strip()
    assert token.count(".") == 2
    anon = ["--kubeconfig=/dev/null", f"--server={minik.url}", "--insecure-skip-tls-verify"]
    who = minik.kubectl(*anon, f"--token={token}", "auth", "whoami").stdout
    assert "system:serviceaccount:tok-t:robot" in who
    bad = minik.kubectl(*anon, f"--token={token[:-2]}xx", "get", "ns", check=False)
    assert bad.returncode == 1 and "You must be logged in" in bad.stderr
    r = minik.kubectl("create", "token", "robot", "-n", "tok-t", "--duration=1m", check=False)
    assert r.returncode == 1 and "expirationSeconds" in r.stderr
    # A token dies with its ServiceAccount.
    minik.kubectl("delete", "serviceaccount", "robot", "-n", "tok-t")
    gone = minik.kubectl(*anon, f"--token={token}", "get", "ns", check=False)
    assert gone.returncode == 1


def test_rbac_for_service_accounts(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "rbac-t")
    minik.kubectl("create", "serviceaccount", "reader", "-n", "rbac-t")
    token = minik.kubectl("create", "token", "reader", "-n", "rbac-t").stdout.strip()
    as_reader = ["--kubeconfig=/dev/null", f"--server={minik.url}", "--insecure-skip-tls-verify", f"--token={token}"]
    r = minik.kubectl(*as_reader, "get", "pods", "-n", "rbac-t", check=False)
    assert r.returncode == 1
    assert 'pods is forbidden: User "system:serviceaccount:rbac-t:reader" cannot list resource "pods" in API group "" in the namespace "rbac-t"' in r.stderr
    assert minik.kubectl(*as_reader, "auth", "can-i", "list", "pods", "-n", "rbac-t", check=False).stdout.strip() == "no"
    minik.kubectl("create", "rolebinding", "reader-view", "--clusterrole=view", "--serviceaccount=rbac-t:reader", "-n", "rbac-t")
    assert minik.kubectl(*as_reader, "get", "pods", "-n", "rbac-t").returncode == 0
    assert minik.kubectl(*as_reader, "auth", "can-i", "list", "pods", "-n", "rbac-t", check=False).stdout.strip() == "yes"
    w = minik.kubectl(*as_reader, "create", "configmap", "x", "-n", "rbac-t", check=False)
    assert w.returncode == 1 and "forbidden" in w.stderr
    other = minik.kubectl(*as_reader, "get", "pods", "-n", "default", check=False)
    assert other.returncode == 1 and "forbidden" in other.stderr
    assert "cluster-admin" in minik.kubectl("get", "clusterroles").stdout
