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


# ---- RBAC as Kubernetes ships it: ServiceAccount tokens through the real kubectl ------------------

def _sa_kubectl(minik: Minik, ns: str, sa: str) -> list[str]:
    """kubectl flags that act as ServiceAccount ns/sa with a token from `kubectl create token`."""
    minik.kubectl("create", "serviceaccount", sa, "-n", ns)
    token = minik.kubectl("create", "token", sa, "-n", ns).stdout.strip()
    return ["--kubeconfig=/dev/null", f"--server={minik.url}", "--insecure-skip-tls-verify", f"--token={token}", "-n", ns]


def test_view_cannot_read_secrets_or_proxy(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "view-t")
    minik.kubectl("create", "secret", "generic", "s1", "--from-literal=k=v", "-n", "view-t")
    minik.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--serviceaccount=view-t:viewer", "-n", "view-t")
    as_viewer = _sa_kubectl(minik, "view-t", "viewer")
    assert minik.kubectl(*as_viewer, "get", "configmaps").returncode == 0
    r = minik.kubectl(*as_viewer, "get", "secret", "s1", check=False)
    assert r.returncode == 1
    assert ('secrets "s1" is forbidden: User "system:serviceaccount:view-t:viewer" cannot get resource "secrets" '
            'in API group "" in the namespace "view-t"') in r.stderr
    assert minik.kubectl(*as_viewer, "get", "secrets", check=False).returncode == 1
    for what in ("pods/proxy", "services/proxy"):
        res, sub = what.split("/")
        assert minik.kubectl(*as_viewer, "auth", "can-i", "get", res, "--subresource", sub, check=False).stdout.strip() == "no"
    p = minik.kubectl(*as_viewer, "get", "--raw", "/api/v1/namespaces/view-t/pods/x/proxy/", check=False)
    assert p.returncode == 1 and "Forbidden" in p.stderr
    # edit reads and writes Secrets; view reads pod logs.
    assert minik.kubectl(*as_viewer, "auth", "can-i", "get", "pods", "--subresource=log", check=False).stdout.strip() == "yes"
    minik.kubectl("create", "rolebinding", "e", "--clusterrole=edit", "--serviceaccount=view-t:editor", "-n", "view-t")
    as_editor = _sa_kubectl(minik, "view-t", "editor")
    assert "s1" in minik.kubectl(*as_editor, "get", "secrets").stdout
    assert minik.kubectl(*as_editor, "auth", "can-i", "create", "rolebindings", check=False).stdout.strip() == "no"


def test_admin_cannot_escalate(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "adm-t")
    minik.kubectl("create", "rolebinding", "a", "--clusterrole=admin", "--serviceaccount=adm-t:boss", "-n", "adm-t")
    as_admin = _sa_kubectl(minik, "adm-t", "boss")
    groups = '(groups=["system:serviceaccounts" "system:serviceaccounts:adm-t" "system:authenticated"])'
    r = minik.kubectl(*as_admin, "create", "rolebinding", "root", "--clusterrole=cluster-admin",
                      "--serviceaccount=adm-t:boss", check=False)
    assert r.returncode == 1
    assert ('rolebindings.rbac.authorization.k8s.io "root" is forbidden: user "system:serviceaccount:adm-t:boss" '
            f'{groups} is attempting to grant RBAC permissions not currently held:') in r.stderr
    assert '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}' in r.stderr
    w = minik.kubectl(*as_admin, "create", "role", "wild", "--verb=*", "--resource=*.*", check=False)
    assert w.returncode == 1
    assert 'roles.rbac.authorization.k8s.io "wild" is forbidden' in w.stderr and "not currently held" in w.stderr
    # What the admin holds may be granted: a Role for pods and a binding to edit or view.
    minik.kubectl(*as_admin, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods")
    minik.kubectl(*as_admin, "create", "rolebinding", "readers", "--role=pod-reader", "--serviceaccount=adm-t:boss")
    minik.kubectl(*as_admin, "create", "rolebinding", "viewers", "--clusterrole=view", "--serviceaccount=adm-t:boss")
    # Updates are checked on the resulting object: a patch cannot widen a Role either.
    p = minik.kubectl(*as_admin, "patch", "role", "pod-reader", "--type=json",
                      "-p", '[{"op":"add","path":"/rules/0/verbs/-","value":"escalate"}]', check=False)
    assert p.returncode == 1 and '{APIGroups:[""], Resources:["pods"], Verbs:["escalate"]}' in p.stderr
    minik.kubectl(*as_admin, "label", "role", "pod-reader", "team=a")
    # Not even a single verb beyond the admin's: nodes are cluster-scoped, admin has none of them.
    n = minik.kubectl(*as_admin, "create", "role", "nodes", "--verb=get", "--resource=nodes", check=False)
    assert n.returncode == 1 and '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in n.stderr
    assert minik.kubectl(*as_admin, "get", "roles,rolebindings", "-o", "name").stdout.count("\n") == 4
    # The `bind` verb on cluster-admin (by name) lifts the check; cluster admin (system:masters) always may.
    minik.kubectl("create", "clusterrole", "bind-ca", "--verb=bind", "--resource=clusterroles", "--resource-name=cluster-admin")
    minik.kubectl("create", "rolebinding", "may-bind", "--clusterrole=bind-ca", "--serviceaccount=adm-t:boss", "-n", "adm-t")
    minik.kubectl(*as_admin, "create", "rolebinding", "root", "--clusterrole=cluster-admin", "--serviceaccount=adm-t:boss")
    minik.kubectl("create", "role", "wild", "--verb=*", "--resource=*.*", "-n", "adm-t")


def test_impersonation_needs_the_impersonate_verb(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "imp-t")
    minik.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--serviceaccount=imp-t:target", "-n", "imp-t")
    minik.kubectl("create", "serviceaccount", "target", "-n", "imp-t")
    as_user = _sa_kubectl(minik, "imp-t", "caller")
    sa = "system:serviceaccount:imp-t:target"
    r = minik.kubectl(*as_user, f"--as={sa}", "get", "pods", check=False)
    assert r.returncode == 1
    assert (f'serviceaccounts "target" is forbidden: User "system:serviceaccount:imp-t:caller" cannot impersonate '
            f'resource "serviceaccounts" in API group "" in the namespace "imp-t"') in r.stderr
    u = minik.kubectl(*as_user, "--as=jane", "get", "pods", check=False)
    assert u.returncode == 1 and 'users "jane" is forbidden' in u.stderr
    # Granted impersonation of that ServiceAccount: the request runs as it (view: pods yes, secrets no).
    minik.kubectl("create", "role", "imp", "--verb=impersonate", "--resource=serviceaccounts", "--resource-name=target", "-n", "imp-t")
    minik.kubectl("create", "rolebinding", "imp", "--role=imp", "--serviceaccount=imp-t:caller", "-n", "imp-t")
    assert minik.kubectl(*as_user, f"--as={sa}", "get", "pods").returncode == 0
    who = minik.kubectl(*as_user, f"--as={sa}", "auth", "whoami", "-o", "json").stdout
    assert sa in who and "system:serviceaccounts:imp-t" in who and "system:authenticated" in who
    s = minik.kubectl(*as_user, f"--as={sa}", "get", "secrets", check=False)
    assert s.returncode == 1 and f'User "{sa}" cannot list resource "secrets"' in s.stderr
    assert minik.kubectl(*as_user, "--as=system:serviceaccount:imp-t:other", "get", "pods", check=False).returncode == 1
    # Groups need their own grant: --as-group is refused without impersonate on groups.
    g = minik.kubectl(*as_user, f"--as={sa}", "--as-group=system:masters", "get", "pods", check=False)
    assert g.returncode == 1 and 'groups "system:masters" is forbidden' in g.stderr
    # The admin (system:masters) impersonates anyone; can-i --as answers for the impersonated user.
    assert minik.kubectl("auth", "can-i", "list", "pods", "-n", "imp-t", f"--as={sa}", check=False).stdout.strip() == "yes"
    assert minik.kubectl("auth", "can-i", "list", "secrets", "-n", "imp-t", f"--as={sa}", check=False).stdout.strip() == "no"
    assert minik.kubectl("auth", "can-i", "list", "pods", "-n", "imp-t", "--as=jane", check=False).stdout.strip() == "no"


def test_can_i_list_and_as(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "list-t")
    minik.kubectl("create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "--resource-name=app-config", "-n", "list-t")
    minik.kubectl("create", "rolebinding", "r", "--role=cm-reader", "--serviceaccount=list-t:reader", "-n", "list-t")
    as_reader = _sa_kubectl(minik, "list-t", "reader")
    out = minik.kubectl(*as_reader, "auth", "can-i", "--list").stdout
    lines = [ln.split() for ln in out.splitlines()]
    assert ["configmaps", "[]", "[app-config]", "[get", "list]"] in lines
    assert ["selfsubjectreviews.authentication.k8s.io", "[]", "[]", "[create]"] in lines
    assert ["[/api/*]", "[]", "[get]"] in lines
    assert not any(ln and ln[0] in ("pods", "secrets", "*.*") for ln in lines)
    assert minik.kubectl(*as_reader, "auth", "can-i", "get", "configmaps/app-config", check=False).stdout.strip() == "yes"
    assert minik.kubectl(*as_reader, "auth", "can-i", "get", "configmaps/other", check=False).stdout.strip() == "no"
    assert minik.kubectl(*as_reader, "auth", "can-i", "get", "/api", check=False).stdout.strip() == "yes"
    assert minik.kubectl(*as_reader, "auth", "can-i", "get", "/metrics", check=False).stdout.strip() == "no"
    # An admin ServiceAccount, asked about by the cluster admin with --as.
    minik.kubectl("create", "rolebinding", "a", "--clusterrole=admin", "--serviceaccount=list-t:boss", "-n", "list-t")
    minik.kubectl("create", "serviceaccount", "boss", "-n", "list-t")
    boss = "system:serviceaccount:list-t:boss"
    for verb, res, want in (("create", "pods", "yes"), ("delete", "secrets", "yes"), ("create", "rolebindings", "yes"),
                            ("create", "nodes", "no"), ("create", "namespaces", "no")):
        got = minik.kubectl("auth", "can-i", verb, res, "-n", "list-t", f"--as={boss}", check=False).stdout.strip()
        assert got == want, (verb, res, got)
    assert minik.kubectl("auth", "can-i", "create", "pods", "-n", "default", f"--as={boss}", check=False).stdout.strip() == "no"
    listed = minik.kubectl("auth", "can-i", "--list", "-n", "list-t", f"--as={boss}").stdout
    assert "rolebindings.rbac.authorization.k8s.io" in listed and "secrets" in listed and "*.*" not in listed


def _rules(minik: Minik, role: str) -> list[dict[str, object]]:
    import json
    rules = json.loads(minik.kubectl("get", "clusterrole", role, "-o", "json").stdout).get("rules") or []
    return list(rules)


def test_clusterrole_aggregation(minik: Minik) -> None:
    import time
    want = {"apiGroups": ["example.com"], "resources": ["widgets"], "verbs": ["get", "list", "watch"]}
    assert want not in _rules(minik, "view")
    # A CRD's chart ships such a role (kubectl cannot name an unserved resource on the command line).
    minik.kubectl("apply", "-f", "-", input="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: widget-viewer
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules:
- {apiGroups: [example.com], resources: [widgets], verbs: [get, list, watch]}
""")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(want in _rules(minik, r) for r in ("view", "edit", "admin")):
        time.sleep(0.2)
    assert all(want in _rules(minik, r) for r in ("view", "edit", "admin"))
    # A role of the user's own that aggregates from a label of theirs.
    minik.kubectl("create", "clusterrole", "mine", "--aggregation-rule=team=blue")
    minik.kubectl("create", "clusterrole", "blue-pods", "--verb=get", "--resource=pods")
    minik.kubectl("label", "clusterrole", "blue-pods", "team=blue")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not _rules(minik, "mine"):
        time.sleep(0.2)
    assert _rules(minik, "mine") == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    # Deleting the labelled role takes its rules away again (view keeps its defaults).
    minik.kubectl("delete", "clusterrole", "widget-viewer")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and want in _rules(minik, "admin"):
        time.sleep(0.2)
    assert all(want not in _rules(minik, r) for r in ("view", "edit", "admin"))
    assert {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]} in _rules(minik, "view")
    # Only a cluster admin may create an aggregated role: an aggregationRule gathers anything.
    minik.kubectl("create", "namespace", "agg-t")
    minik.kubectl("create", "clusterrolebinding", "agg-t-rbac", "--clusterrole=rbac-writer", "--serviceaccount=agg-t:writer")
    minik.kubectl("create", "clusterrole", "rbac-writer", "--verb=create,get,list", "--resource=clusterroles.rbac.authorization.k8s.io")
    as_writer = _sa_kubectl(minik, "agg-t", "writer")
    r = minik.kubectl(*as_writer, "create", "clusterrole", "sneaky", "--aggregation-rule=team=blue", check=False)
    assert r.returncode == 1 and "must have cluster-admin privileges to use the aggregationRule" in r.stderr


def test_subject_access_review(minik: Minik) -> None:
    import json
    minik.kubectl("create", "namespace", "sar-t")
    minik.kubectl("create", "rolebinding", "v", "--clusterrole=view", "--serviceaccount=sar-t:bot", "-n", "sar-t")

    def review(spec: str, kind: str = "SubjectAccessReview", ns: str = "") -> dict[str, object]:
        meta = f"metadata: {{namespace: {ns}}}\n" if ns else ""
        doc = f"apiVersion: authorization.k8s.io/v1\nkind: {kind}\n{meta}spec:\n{spec}"
        out = minik.kubectl("create", "-f", "-", "-o", "json", input=doc).stdout
        return dict(json.loads(out)["status"])

    bot = "  user: system:serviceaccount:sar-t:bot\n  groups: [system:serviceaccounts, system:authenticated]\n"
    st = review(bot + "  resourceAttributes: {verb: list, resource: pods, namespace: sar-t}\n")
    assert st == {"allowed": True,
                  "reason": 'RBAC: allowed by RoleBinding "v/sar-t" of ClusterRole "view" to ServiceAccount "bot/sar-t"'}
    assert review(bot + "  resourceAttributes: {verb: get, resource: secrets, namespace: sar-t}\n") == {"allowed": False}
    assert review(bot + "  resourceAttributes: {verb: get, resource: pods, subresource: log, namespace: sar-t}\n")["allowed"] is True
    assert review(bot + "  resourceAttributes: {verb: get, resource: pods, subresource: proxy, namespace: sar-t}\n") == {"allowed": False}
    assert review(bot + "  resourceAttributes: {verb: list, resource: pods, namespace: default}\n") == {"allowed": False}
    st = review(bot + "  nonResourceAttributes: {verb: get, path: /apis/apps}\n")
    assert st["allowed"] is True and 'ClusterRoleBinding "system:discovery"' in str(st["reason"])
    assert review(bot + "  nonResourceAttributes: {verb: get, path: /metrics}\n") == {"allowed": False}
    assert review("  user: x\n  groups: [system:masters]\n  nonResourceAttributes: {verb: get, path: /metrics}\n")["allowed"] is True
    local = review(bot + "  resourceAttributes: {verb: watch, group: apps, resource: deployments}\n",
                   kind="LocalSubjectAccessReview", ns="sar-t")
    assert local["allowed"] is True


def test_defaults_reconciled_at_start(fresh_minik: Minik) -> None:
    import json
    import time
    m = fresh_minik

    def versions() -> dict[str, str]:
        items = json.loads(m.kubectl("get", "clusterroles,clusterrolebindings", "-o", "json").stdout)["items"]
        return {f'{o["kind"]}/{o["metadata"]["name"]}': o["metadata"]["resourceVersion"] for o in items}

    # Damage two defaults; freeze a third with autoupdate "false".
    m.kubectl("patch", "clusterrole", "system:aggregate-to-view", "--type=json", "-p", '[{"op":"remove","path":"/rules/0"}]')
    m.kubectl("patch", "clusterrolebinding", "system:discovery", "--type=json", "-p", '[{"op":"remove","path":"/subjects"}]')
    m.kubectl("annotate", "--overwrite", "clusterrole", "system:auth-delegator", "rbac.authorization.kubernetes.io/autoupdate=false")
    m.kubectl("patch", "clusterrole", "system:auth-delegator", "--type=json", "-p", '[{"op":"remove","path":"/rules/1"}]')
    m.kubectl("delete", "clusterrole", "system:basic-user")
    assert "configmaps" not in json.dumps(_rules(m, "system:aggregate-to-view"))
    before = versions()
    m.stop()
    m.start()
    assert "configmaps" in json.dumps(_rules(m, "system:aggregate-to-view"))
    deadline = time.monotonic() + 20
    def aggregated() -> list[str]:   # view = aggregate-to-view + the metrics reader (kubectl top)
        return sorted(json.dumps(r, sort_keys=True) for name in ("system:aggregate-to-view", "system:aggregated-metrics-reader")
                      for r in _rules(m, name))

    while time.monotonic() < deadline and sorted(json.dumps(r, sort_keys=True) for r in _rules(m, "view")) != aggregated():
        time.sleep(0.2)
    assert sorted(json.dumps(r, sort_keys=True) for r in _rules(m, "view")) == aggregated()
    after = versions()
    assert "system:authenticated" in m.kubectl("get", "clusterrolebinding", "system:discovery", "-o", "json").stdout
    assert len(_rules(m, "system:auth-delegator")) == 1
    assert "ClusterRole/system:basic-user" in after
    changed = {k for k in before if before[k] != after.get(k)}
    # view's rules follow system:aggregate-to-view through the aggregation controller.
    assert changed <= {"ClusterRole/system:aggregate-to-view", "ClusterRoleBinding/system:discovery",
                       "ClusterRole/view", "ClusterRole/edit", "ClusterRole/admin"}
    assert {"ClusterRole/system:aggregate-to-view", "ClusterRoleBinding/system:discovery"} <= changed
    # A second restart with nothing damaged writes nothing.
    m.stop()
    m.start()
    assert versions() == after
