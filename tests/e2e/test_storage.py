"""Persistent storage on a real node through kubectl: the default `local-path` class, a claim
bound on first use, data that outlives its pod, reclaim Delete, and bad input.

One agent-enabled `minik server` per module (real containerd, busybox from the local registry
mirror); the provisioner's directories live under the server's own data dir
(`<data-dir>/storage/`).
"""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.agent_fixtures import Ns, Obj, bb, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

pytestmark = pytest.mark.e2e


def _claim(name: str, size: str = "64Mi", cls: str | None = None) -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def _with_claim(name: str, script: str, claim: str) -> Obj:
    return pod(name, [bb("main", script, volumeMounts=[{"name": "data", "mountPath": "/data"}])],
               volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}])


def _get(ns: Ns, kind: str, name: str) -> Obj | None:
    r = ns.kubectl("get", kind, name, "-o", "json", check=False)
    return json.loads(r.stdout) if r.returncode == 0 else None


def test_default_class_is_local_path(node_minik: Minik) -> None:
    out = node_minik.kubectl("get", "storageclass").stdout
    line = next(ln for ln in out.splitlines() if ln.startswith("local-path"))
    assert "(default)" in line and "minik.io/local-path" in line and "Delete" in line and "WaitForFirstConsumer" in line


def test_claim_binds_on_first_use_and_data_outlives_the_pod(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "pvc")
    ns.create(_claim("data"))
    # WaitForFirstConsumer: nothing happens until a pod uses the claim.
    assert eventually(lambda: any(e["reason"] == "WaitForFirstConsumer" for e in ns.events("data")), timeout=30)
    claim = _get(ns, "pvc", "data")
    assert claim is not None and claim["status"]["phase"] == "Pending" and claim["spec"]["storageClassName"] == "local-path"

    ns.create(_with_claim("writer", "echo kept-across-pods > /data/f && exec sleep 3600", "data"))
    ns.wait("writer", timeout=60)
    claim = _get(ns, "pvc", "data")
    assert claim is not None and claim["status"]["phase"] == "Bound"
    uid, vol = claim["metadata"]["uid"], claim["spec"]["volumeName"]
    assert vol == f"pvc-{uid}"
    path = os.path.join(node_minik.data_dir, "storage", f"pvc-{uid}_{ns.name}_data")
    assert eventually(lambda: open(os.path.join(path, "f")).read() == "kept-across-pods\n", timeout=30)

    # kubectl get pv,pvc: kube's columns, bound to each other.
    out = ns.kubectl("get", "pv,pvc").stdout.splitlines()
    assert out[0].split() == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM",
                              "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "REASON", "AGE"]
    pv_line = next(ln for ln in out if ln.startswith(f"persistentvolume/{vol}"))
    assert pv_line.split()[1:7] == ["64Mi", "RWO", "Delete", "Bound", f"{ns.name}/data", "local-path"]
    pvc_header = next(ln for ln in out if ln.startswith("NAME") and "VOLUME " in ln)
    assert pvc_header.split()[:6] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES"]
    pvc_line = next(ln for ln in out if ln.startswith("persistentvolumeclaim/data"))
    assert pvc_line.split()[1:6] == ["Bound", vol, "64Mi", "RWO", "local-path"]

    # The pod goes; the data stays for the next pod of the claim.
    ns.kubectl("delete", "pod", "writer", "--wait=true", timeout=90)
    assert os.path.isfile(os.path.join(path, "f"))
    ns.create(_with_claim("reader", "cat /data/f; exec sleep 3600", "data"))
    ns.wait("reader", timeout=60)
    assert eventually(lambda: ns.kubectl("logs", "reader").stdout == "kept-across-pods\n", timeout=30)

    # In use: deleting the claim waits for the pod (pvc-protection); then reclaim Delete removes
    # the volume and its directory.
    ns.kubectl("delete", "pvc", "data", "--wait=false")
    claim = _get(ns, "pvc", "data")
    assert claim is not None and claim["metadata"].get("deletionTimestamp")
    assert "Terminating" in ns.kubectl("get", "pvc", "data").stdout
    ns.kubectl("delete", "pod", "reader", "--wait=true", timeout=90)
    assert eventually(lambda: _get(ns, "pvc", "data") is None, timeout=30)
    assert eventually(lambda: _get(ns, "pv", vol) is None, timeout=30)
    assert eventually(lambda: not os.path.exists(path), timeout=30)


def test_claim_of_missing_class_and_shrink(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "badpvc")
    ns.create(_claim("nowhere", cls="does-not-exist"))
    assert eventually(lambda: any(e["reason"] == "ProvisioningFailed"
                                  and e["message"] == 'storageclass.storage.k8s.io "does-not-exist" not found'
                                  for e in ns.events("nowhere")), timeout=30)
    claim = _get(ns, "pvc", "nowhere")
    assert claim is not None and claim["status"]["phase"] == "Pending"
    r = ns.kubectl("patch", "pvc", "nowhere", "-p", '{"spec":{"resources":{"requests":{"storage":"1Mi"}}}}', check=False)
    assert r.returncode != 0
    assert "spec.resources.requests.storage: Forbidden: field can not be less than previous value" in r.stderr, r.stderr
    code, status = node_minik.raw_json("PATCH", f"/api/v1/namespaces/{ns.name}/persistentvolumeclaims/nowhere",
                                       {"spec": {"resources": {"requests": {"storage": "1Mi"}}}},
                                       content_type="application/merge-patch+json")
    assert code == 422 and status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "spec.resources.requests.storage"


def test_idle_volume_budget_and_quota_write_nothing(node_minik: Minik) -> None:
    """A bound claim in use, a budget over its pod and a quota counting both: once settled, the
    binder, provisioner, protection, disruption and quota controllers write nothing."""
    import time

    from tests.e2e.test_idle import db_files, settled
    ns = Ns.make(node_minik, "idlevol")
    ns.kubectl("create", "quota", "q", "--hard=pods=5,persistentvolumeclaims=2,requests.storage=1Gi")
    ns.create(_claim("keep"))
    p = _with_claim("holder", "exec sleep 3600", "keep")
    p["metadata"]["labels"] = {"app": "holder"}
    ns.create(p, {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "hold"},
                  "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "holder"}}}})
    ns.wait("holder", timeout=60)
    assert eventually(lambda: (_get(ns, "pdb", "hold") or {}).get("status", {}).get("currentHealthy") == 1, timeout=30)
    before_rev = settled(node_minik)
    before_files = db_files(node_minik)
    time.sleep(8)
    kinds = ["pods", "persistentvolumeclaims", "persistentvolumes", "poddisruptionbudgets", "resourcequotas", "events",
             "storageclasses", "nodes"]
    items = json.loads(node_minik.kubectl("get", ",".join(kinds), "-A", "-o", "json").stdout)["items"]
    written = [f"{i['kind']}/{i['metadata'].get('namespace', '')}/{i['metadata']['name']}" for i in items
               if int(i["metadata"]["resourceVersion"]) > before_rev]
    assert written == [], "idle storage/policy controllers wrote to the store"
    assert db_files(node_minik) == before_files
