"""ResourceQuota and LimitRange through kubectl against a real `minik server` (control plane only:
quota and limits are admission, the pods need no node).

- a quota of 2 pods rejects the third with 403 and Kubernetes's "exceeded quota" message, and
  `status.used` follows creates and deletes;
- compute quotas: a pod without the limited requests is refused ("must specify"), requests sum up;
- `count/<resource>` quotas (configmaps, deployments.apps);
- a LimitRange's default and defaultRequest appear in a new pod (with the limit-ranger
  annotation) and its min/max refuse pods outside them (403).
"""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


def _ns(m: Minik, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    m.kubectl("create", "namespace", name)
    return name


def _apply(m: Minik, ns: str, obj: dict[str, object], check: bool = True) -> object:
    return m.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(obj), check=check)


def _pod(name: str, **resources: object) -> dict[str, object]:
    c: dict[str, object] = {"name": "main", "image": "busybox", "command": ["sleep", "3600"]}
    if resources:
        c["resources"] = resources
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {"containers": [c]}}


def _used(m: Minik, ns: str, name: str) -> dict[str, str]:
    out = m.kubectl("-n", ns, "get", "resourcequota", name, "-o", "json").stdout
    return dict(json.loads(out).get("status", {}).get("used") or {})


def test_quota_of_two_pods_rejects_the_third(minik: Minik) -> None:
    ns = _ns(minik, "quota")
    minik.kubectl("-n", ns, "create", "quota", "pods-q", "--hard=pods=2")
    assert eventually(lambda: _used(minik, ns, "pods-q") == {"pods": "0"}, timeout=20)
    for name in ("a", "b"):
        _apply(minik, ns, _pod(name))
    r = minik.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(_pod("c")), check=False)
    assert r.returncode != 0
    assert ('pods "c" is forbidden: exceeded quota: pods-q, requested: pods=1, used: pods=2, limited: pods=2'
            in r.stderr), r.stderr
    code, status = minik.raw_json("POST", f"/api/v1/namespaces/{ns}/pods", _pod("d"))
    assert code == 403 and status["reason"] == "Forbidden"
    assert eventually(lambda: _used(minik, ns, "pods-q") == {"pods": "2"}, timeout=20)
    desc = minik.kubectl("-n", ns, "get", "quota", "pods-q").stdout
    assert "pods: 2/2" in desc
    minik.kubectl("-n", ns, "delete", "pod", "a", "--wait=false")
    assert eventually(lambda: _used(minik, ns, "pods-q") == {"pods": "1"}, timeout=20)
    _apply(minik, ns, _pod("c"))


def test_compute_quota_needs_requests_and_sums_them(minik: Minik) -> None:
    ns = _ns(minik, "cpu")
    minik.kubectl("-n", ns, "create", "quota", "compute", "--hard=requests.cpu=1,limits.memory=1Gi")
    r = _apply(minik, ns, _pod("bare"), check=False)
    assert r.returncode != 0 and "failed quota: compute: must specify limits.memory for: main; requests.cpu for: main" in r.stderr, r.stderr
    _apply(minik, ns, _pod("p1", requests={"cpu": "600m"}, limits={"memory": "512Mi"}))
    r = _apply(minik, ns, _pod("p2", requests={"cpu": "600m"}, limits={"memory": "256Mi"}), check=False)
    assert r.returncode != 0
    assert "exceeded quota: compute, requested: requests.cpu=600m, used: requests.cpu=600m, limited: requests.cpu=1" in r.stderr, r.stderr
    _apply(minik, ns, _pod("p3", requests={"cpu": "400m"}, limits={"memory": "512Mi"}))
    assert eventually(lambda: _used(minik, ns, "compute") == {"requests.cpu": "1", "limits.memory": "1Gi"}, timeout=20)


def test_count_quota_for_configmaps_and_deployments(minik: Minik) -> None:
    ns = _ns(minik, "count")
    minik.kubectl("-n", ns, "create", "quota", "objs", "--hard=count/configmaps=2,count/deployments.apps=1,secrets=1")
    # kube-root-ca.crt is created in every namespace by the namespace controller: it counts.
    assert eventually(lambda: _used(minik, ns, "objs").get("count/configmaps") == "1", timeout=20)
    minik.kubectl("-n", ns, "create", "configmap", "one", "--from-literal=a=b")
    r = minik.kubectl("-n", ns, "create", "configmap", "two", "--from-literal=a=b", check=False)
    assert r.returncode != 0 and "exceeded quota: objs" in r.stderr and "count/configmaps=1" in r.stderr, r.stderr
    minik.kubectl("-n", ns, "create", "deployment", "web", "--image=busybox")
    r = minik.kubectl("-n", ns, "create", "deployment", "web2", "--image=busybox", check=False)
    assert r.returncode != 0 and "requested: count/deployments.apps=1, used: count/deployments.apps=1, limited: count/deployments.apps=1" in r.stderr, r.stderr
    minik.kubectl("-n", ns, "create", "secret", "generic", "s1", "--from-literal=a=b")
    r = minik.kubectl("-n", ns, "create", "secret", "generic", "s2", "--from-literal=a=b", check=False)
    assert r.returncode != 0 and "limited: secrets=1" in r.stderr, r.stderr


def test_limitrange_defaults_and_bounds(minik: Minik) -> None:
    ns = _ns(minik, "limits")
    _apply(minik, ns, {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "lr"}, "spec": {"limits": [{
        "type": "Container", "default": {"cpu": "500m", "memory": "256Mi"}, "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
        "min": {"cpu": "50m"}, "max": {"cpu": "1", "memory": "1Gi"}, "maxLimitRequestRatio": {"cpu": "10"}}]}})
    _apply(minik, ns, _pod("dflt"))
    pod = json.loads(minik.kubectl("-n", ns, "get", "pod", "dflt", "-o", "json").stdout)
    res = pod["spec"]["containers"][0]["resources"]
    assert res == {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m", "memory": "128Mi"}}
    assert pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == \
        "LimitRanger plugin set: cpu, memory request for container main; cpu, memory limit for container main"
    assert pod["status"]["qosClass"] == "Burstable"
    r = _apply(minik, ns, _pod("big", limits={"cpu": "2"}), check=False)
    assert r.returncode != 0 and 'pods "big" is forbidden: maximum cpu usage per Container is 1, but limit is 2' in r.stderr, r.stderr
    r = _apply(minik, ns, _pod("tiny", requests={"cpu": "10m"}, limits={"cpu": "20m"}), check=False)
    assert r.returncode != 0 and "minimum cpu usage per Container is 50m, but request is 10m" in r.stderr, r.stderr
    r = _apply(minik, ns, _pod("skew", requests={"cpu": "60m"}, limits={"cpu": "1"}), check=False)
    assert r.returncode != 0 and "cpu max limit to request ratio per Container is 10, but provided ratio is 16.666667" in r.stderr, r.stderr


def test_invalid_object_is_422_not_a_quota_error(minik: Minik) -> None:
    ns = _ns(minik, "invalid")
    minik.kubectl("-n", ns, "create", "quota", "one", "--hard=pods=1")
    bad = _pod("bad")
    bad["spec"]["containers"][0]["name"] = "Not_Valid"      # type: ignore[index]
    code, status = minik.raw_json("POST", f"/api/v1/namespaces/{ns}/pods", bad)
    assert code == 422 and status["reason"] == "Invalid", status
    _apply(minik, ns, _pod("good"))      # the invalid create held no quota


def test_server_dry_run_then_create_under_a_full_quota(minik: Minik) -> None:
    ns = _ns(minik, "dry")
    minik.kubectl("-n", ns, "create", "quota", "one", "--hard=pods=1")
    minik.kubectl("-n", ns, "apply", "--dry-run=server", "-f", "-", input=json.dumps(_pod("p")))
    _apply(minik, ns, _pod("p"))
    r = _apply(minik, ns, _pod("q"), check=False)
    assert r.returncode != 0 and "exceeded quota: one" in r.stderr   # type: ignore[attr-defined]


def test_disable_local_storage_leaves_no_default_class(fresh_minik: Minik) -> None:
    """k3s's `--disable local-storage`: no `local-path` class; claims without a class stay classless."""
    fresh_minik.stop()
    fresh_minik.extra.extend(["--disable", "local-storage"])
    shutil.rmtree(fresh_minik.data_dir)
    fresh_minik.start()
    assert "local-path" not in fresh_minik.kubectl("get", "storageclass").stdout
    ns = _ns(fresh_minik, "nols")
    fresh_minik.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
    claim = json.loads(fresh_minik.kubectl("-n", ns, "get", "pvc", "c", "-o", "json").stdout)
    assert "storageClassName" not in claim["spec"]
