"""kubectl 1.32 against a real `minik server`: the commands a user types, with their exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import time

import yaml

from tests.e2e.minikd import KUBECTL, Minik


def deployment(name: str, image: str = "busybox", replicas: int = 1, **spec_extra: object) -> dict:
    labels = {"app": name}
    spec: dict = {"replicas": replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "main", "image": image}]}}}
    spec.update(spec_extra)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def manifest(*objs: dict) -> str:
    return yaml.safe_dump_all(objs)


def test_version_reports_1_32(minik: Minik) -> None:
    r = minik.kubectl("version", "-o", "json")
    info = json.loads(r.stdout)
    assert info["serverVersion"]["major"] == "1"
    assert info["serverVersion"]["minor"] == "32"


def test_api_resources_and_get_all(minik: Minik) -> None:
    out = minik.kubectl("api-resources").stdout
    for needle in ("deployments", "deploy", "apps/v1", "customresourcedefinitions", "leases", "cronjobs",
                   "ingresses", "horizontalpodautoscalers", "poddisruptionbudgets", "endpointslices"):
        assert needle in out
    out = minik.kubectl("get", "all", "-A").stdout
    assert "service/kubernetes" in out
    assert "default" in out
    ns = minik.kubectl("get", "ns").stdout
    for n in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert n in ns


def test_create_generators(minik: Minik) -> None:
    assert "namespace/gen-x created" in minik.kubectl("create", "namespace", "gen-x").stdout
    assert "configmap/c created" in minik.kubectl("create", "configmap", "c", "--from-literal=a=b", "-n", "gen-x").stdout
    assert "secret/s created" in minik.kubectl("create", "secret", "generic", "s", "--from-literal=p=q", "-n", "gen-x").stdout
    assert "deployment.apps/web created" in minik.kubectl("create", "deployment", "web", "--image=busybox", "-n", "gen-x").stdout
    assert "serviceaccount/robot created" in minik.kubectl("create", "serviceaccount", "robot", "-n", "gen-x").stdout
    cm = json.loads(minik.kubectl("get", "cm", "c", "-n", "gen-x", "-o", "json").stdout)
    assert cm["data"] == {"a": "b"}
    sec = json.loads(minik.kubectl("get", "secret", "s", "-n", "gen-x", "-o", "json").stdout)
    assert sec["data"] == {"p": "cQ=="} and sec["type"] == "Opaque"
    dep = json.loads(minik.kubectl("get", "deploy", "web", "-n", "gen-x", "-o", "json").stdout)
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    assert dep["spec"]["strategy"]["type"] == "RollingUpdate"          # defaulted
    assert dep["spec"]["revisionHistoryLimit"] == 10
    assert dep["metadata"]["generation"] == 1
    again = minik.kubectl("create", "namespace", "gen-x", check=False)
    assert again.returncode == 1
    assert 'namespaces "gen-x" already exists' in again.stderr
    # The default ServiceAccount appears in every new namespace.
    deadline = time.time() + 10
    while "default" not in minik.kubectl("get", "sa", "-n", "gen-x").stdout:
        assert time.time() < deadline
        time.sleep(0.2)


def test_apply_client_side_then_server_side(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "apply-t")
    d = deployment("web", "nginx:1.25", 2)
    assert "deployment.apps/web created" in minik.kubectl("apply", "-n", "apply-t", "-f", "-", input=manifest(d)).stdout
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.27"
    d["spec"]["minReadySeconds"] = 1
    assert "deployment.apps/web configured" in minik.kubectl("apply", "-n", "apply-t", "-f", "-", input=manifest(d)).stdout
    got = json.loads(minik.kubectl("get", "deploy", "web", "-n", "apply-t", "-o", "json").stdout)
    assert got["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert got["spec"]["minReadySeconds"] == 1
    assert got["metadata"]["generation"] == 2
    assert "kubectl.kubernetes.io/last-applied-configuration" in got["metadata"]["annotations"]
    # Unchanged apply writes nothing.
    assert "unchanged" in minik.kubectl("apply", "-n", "apply-t", "-f", "-", input=manifest(d)).stdout
    d["spec"]["replicas"] = 4
    out = minik.kubectl("apply", "--server-side", "--force-conflicts", "-n", "apply-t", "-f", "-", input=manifest(d)).stdout
    assert "serverside-applied" in out
    got = json.loads(minik.kubectl("get", "deploy", "web", "-n", "apply-t", "-o", "json", "--show-managed-fields").stdout)
    assert got["spec"]["replicas"] == 4
    assert any(m["manager"] == "kubectl" and m["operation"] == "Apply" for m in got["metadata"]["managedFields"])
    # A fresh object created by server-side apply.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "v"}}
    assert "serverside-applied" in minik.kubectl("apply", "--server-side", "-n", "apply-t", "-f", "-", input=manifest(cm)).stdout
    # Another manager changing the same field conflicts without --force-conflicts.
    cm2 = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"k": "other"}}
    r = minik.kubectl("apply", "--server-side", "--field-manager=someone-else", "-n", "apply-t", "-f", "-", input=manifest(cm2), check=False)
    assert r.returncode != 0 and "conflict" in r.stderr.lower()


def test_output_formats(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "out-t")
    minik.kubectl("create", "deployment", "web", "--image=busybox", "-n", "out-t")
    wide = minik.kubectl("get", "deploy", "-n", "out-t", "-o", "wide").stdout
    header = wide.splitlines()[0]
    for col in ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "CONTAINERS", "IMAGES", "SELECTOR"):
        assert col in header
    assert "app=web" in wide
    y = yaml.safe_load(minik.kubectl("get", "deploy", "web", "-n", "out-t", "-o", "yaml").stdout)
    assert y["kind"] == "Deployment" and y["apiVersion"] == "apps/v1"
    jp = minik.kubectl("get", "deploy", "web", "-n", "out-t", "-o", "jsonpath={.spec.template.spec.containers[0].image}").stdout
    assert jp == "busybox"
    all_ns = minik.kubectl("get", "deploy", "-A").stdout
    assert any(line.split()[:2] == ["out-t", "web"] for line in all_ns.splitlines()[1:]), all_ns
    labels = minik.kubectl("get", "deploy", "-n", "out-t", "--show-labels").stdout
    assert "app=web" in labels
    svc = minik.kubectl("get", "svc", "kubernetes", "-n", "default").stdout
    assert "ClusterIP" in svc and "443/TCP" in svc


def test_label_annotate_patch_scale(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "mut-t")
    minik.kubectl("create", "deployment", "web", "--image=busybox", "-n", "mut-t")
    assert "labeled" in minik.kubectl("label", "deploy", "web", "tier=front", "-n", "mut-t").stdout
    assert "annotated" in minik.kubectl("annotate", "deploy", "web", "note=hi", "-n", "mut-t").stdout
    minik.kubectl("patch", "deploy", "web", "-n", "mut-t", "--type=merge", "-p", '{"spec":{"minReadySeconds":5}}')
    minik.kubectl("patch", "deploy", "web", "-n", "mut-t", "--type=json", "-p",
                  '[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"busybox:1.36"}]')
    minik.kubectl("patch", "deploy", "web", "-n", "mut-t", "--type=strategic", "-p",
                  '{"spec":{"template":{"spec":{"containers":[{"name":"busybox","env":[{"name":"A","value":"1"}]}]}}}}')
    assert "scaled" in minik.kubectl("scale", "deploy/web", "--replicas=3", "-n", "mut-t").stdout
    d = json.loads(minik.kubectl("get", "deploy", "web", "-n", "mut-t", "-o", "json").stdout)
    assert d["metadata"]["labels"]["tier"] == "front"
    assert d["metadata"]["annotations"]["note"] == "hi"
    assert d["spec"]["minReadySeconds"] == 5
    c = d["spec"]["template"]["spec"]["containers"]
    assert len(c) == 1 and c[0]["image"] == "busybox:1.36" and c[0]["env"] == [{"name": "A", "value": "1"}]
    assert d["spec"]["replicas"] == 3
    # --current-replicas uses GET + PUT on the scale subresource.
    minik.kubectl("scale", "deploy/web", "--current-replicas=3", "--replicas=2", "-n", "mut-t")
    assert minik.kubectl("get", "deploy", "web", "-n", "mut-t", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    r = minik.kubectl("scale", "deploy/web", "--current-replicas=7", "--replicas=1", "-n", "mut-t", check=False)
    assert r.returncode != 0
    assert minik.kubectl("label", "deploy", "web", "tier-", "-n", "mut-t").returncode == 0
    assert "tier" not in minik.kubectl("get", "deploy", "web", "-n", "mut-t", "-o", "jsonpath={.metadata.labels}").stdout


def test_edit_and_replace(minik: Minik, tmp_path: "os.PathLike[str]") -> None:
    minik.kubectl("create", "namespace", "edit-t")
    minik.kubectl("create", "configmap", "c", "--from-literal=a=b", "-n", "edit-t")
    editor = os.path.join(str(tmp_path), "editor.sh")
    with open(editor, "w") as f:
        f.write("#!/bin/sh\nsed -i 's/^  a: b$/  a: edited/' \"$1\"\n")
    os.chmod(editor, 0o755)
    r = minik.kubectl("edit", "cm", "c", "-n", "edit-t", env={"EDITOR": editor, "KUBE_EDITOR": editor})
    assert "edited" in r.stdout
    assert minik.kubectl("get", "cm", "c", "-n", "edit-t", "-o", "jsonpath={.data.a}").stdout == "edited"
    cur = json.loads(minik.kubectl("get", "cm", "c", "-n", "edit-t", "-o", "json").stdout)
    cur["data"] = {"a": "replaced"}
    assert "replaced" in minik.kubectl("replace", "-f", "-", input=json.dumps(cur)).stdout
    # A replace with the now-stale resourceVersion conflicts.
    cur["data"] = {"a": "stale"}
    r = minik.kubectl("replace", "-f", "-", input=json.dumps(cur), check=False)
    assert r.returncode == 1 and "Conflict" in r.stderr and "the object has been modified" in r.stderr
    assert minik.kubectl("get", "cm", "c", "-n", "edit-t", "-o", "jsonpath={.data.a}").stdout == "replaced"


def test_get_watch_sees_changes(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "watch-t")
    env = dict(os.environ, KUBECONFIG=minik.kubeconfig)
    p = subprocess.Popen([KUBECTL, f"--cache-dir={minik.cache_dir or '/tmp/kc-watch'}", "get", "cm", "-n", "watch-t", "-w"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(1.5)
        minik.kubectl("create", "configmap", "w1", "--from-literal=a=b", "-n", "watch-t")
        minik.kubectl("label", "cm", "w1", "x=y", "-n", "watch-t")
        time.sleep(1.5)
    finally:
        p.terminate()
        out, err = p.communicate(timeout=10)
    lines = [l for l in out.splitlines() if l.startswith("w1")]
    assert len(lines) >= 2, (out, err)


def test_delete_waits_and_honours_finalizers(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "del-t")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}, "data": {"a": "b"}}
    minik.kubectl("apply", "-n", "del-t", "-f", "-", input=manifest(cm))
    r = minik.kubectl("delete", "cm", "held", "-n", "del-t", "--wait=false")
    assert "deleted" in r.stdout
    got = json.loads(minik.kubectl("get", "cm", "held", "-n", "del-t", "-o", "json").stdout)
    assert got["metadata"]["deletionTimestamp"]
    # kubectl delete (waiting) returns once the finalizer is removed.
    env = dict(os.environ, KUBECONFIG=minik.kubeconfig)
    waiter = subprocess.Popen([KUBECTL, f"--cache-dir={minik.cache_dir}", "delete", "cm", "held", "-n", "del-t", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.5)
    assert waiter.poll() is None
    minik.kubectl("patch", "cm", "held", "-n", "del-t", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    assert waiter.wait(timeout=20) == 0
    r = minik.kubectl("get", "cm", "held", "-n", "del-t", check=False)
    assert r.returncode == 1 and "NotFound" in r.stderr
    minik.kubectl("create", "configmap", "plain", "--from-literal=a=b", "-n", "del-t")
    assert 'configmap "plain" deleted' in minik.kubectl("delete", "cm", "plain", "-n", "del-t").stdout
    # Deleting a namespace removes what is inside, then the namespace.
    minik.kubectl("create", "configmap", "inner", "--from-literal=a=b", "-n", "del-t")
    minik.kubectl("delete", "namespace", "del-t", "--timeout=60s")
    assert minik.kubectl("get", "ns", "del-t", check=False).returncode == 1


def test_describe_lists_events(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "desc-t")
    minik.kubectl("create", "deployment", "web", "--image=busybox", "-n", "desc-t")
    dep = json.loads(minik.kubectl("get", "deploy", "web", "-n", "desc-t", "-o", "json").stdout)
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "web.1", "namespace": "desc-t"},
          "involvedObject": {"kind": "Deployment", "namespace": "desc-t", "name": "web", "uid": dep["metadata"]["uid"], "apiVersion": "apps/v1"},
          "reason": "ScalingReplicaSet", "message": "Scaled up replica set web-abc to 1", "type": "Normal", "count": 1,
          "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z", "source": {"component": "deployment-controller"}}
    minik.kubectl("create", "-f", "-", input=json.dumps(ev))
    out = minik.kubectl("describe", "deployment", "web", "-n", "desc-t").stdout
    assert "ScalingReplicaSet" in out and "Scaled up replica set web-abc to 1" in out
    assert "RollingUpdate" in out


def test_explain(minik: Minik) -> None:
    out = minik.kubectl("explain", "deployment.spec.strategy").stdout
    assert "rollingUpdate" in out and "DeploymentStrategy" in out
    assert "containers" in minik.kubectl("explain", "pods.spec").stdout


def test_wait_for_jsonpath(minik: Minik) -> None:
    minik.kubectl("create", "namespace", "wait-t")
    minik.kubectl("create", "configmap", "c", "--from-literal=phase=one", "-n", "wait-t")
    env = dict(os.environ, KUBECONFIG=minik.kubeconfig)
    waiter = subprocess.Popen([KUBECTL, f"--cache-dir={minik.cache_dir}", "wait", "cm/c", "-n", "wait-t",
                               "--for=jsonpath={.data.phase}=two", "--timeout=30s"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    time.sleep(1.5)
    minik.kubectl("patch", "cm", "c", "-n", "wait-t", "--type=merge", "-p", '{"data":{"phase":"two"}}')
    assert waiter.wait(timeout=20) == 0, waiter.communicate()
