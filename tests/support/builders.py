"""Object builders shared by the tests: small functions with keyword overrides instead of fixtures
full of literals (STYLE: builders over fixtures). Every builder returns a fresh dict."""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]


def meta(name: str, namespace: str = "default", *, uid: str = "", labels: dict[str, str] | None = None,
         owners: list[Obj] | None = None, **extra: Any) -> Obj:
    m: Obj = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if uid:
        m["uid"] = uid
    if labels:
        m["labels"] = dict(labels)
    if owners:
        m["ownerReferences"] = copy.deepcopy(owners)
    m.update(extra)
    return m


def owner_ref(owner: Obj, controller: bool = True) -> Obj:
    """An ownerReference to `owner` (which must carry apiVersion, kind, metadata.name/uid)."""
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": controller, "blockOwnerDeletion": True}


def container(name: str = "c", image: str = "busybox", **extra: Any) -> Obj:
    return {"name": name, "image": image, **extra}


def make_pod(name: str = "p", namespace: str = "default", *, node: str = "", labels: dict[str, str] | None = None,
             uid: str = "", owners: list[Obj] | None = None, phase: str = "", ready: bool | None = None,
             ip: str = "", containers: list[Obj] | None = None, **spec: Any) -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod",
                "metadata": meta(name, namespace, uid=uid, labels=labels, owners=owners),
                "spec": {"containers": containers if containers is not None else [container()], **spec}}
    if node:
        pod["spec"]["nodeName"] = node
    status: Obj = {}
    if phase:
        status["phase"] = phase
    if ip:
        status["podIP"] = ip
        status["podIPs"] = [{"ip": ip}]
    if ready is not None:
        status["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if status:
        pod["status"] = status
    return pod


def make_node(name: str = "n1", *, ready: bool = True, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
              labels: dict[str, str] | None = None) -> Obj:
    return {"apiVersion": "v1", "kind": "Node", "metadata": meta(name, "", labels=labels),
            "status": {"allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
                       "capacity": {"cpu": cpu, "memory": memory, "pods": pods},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def make_replicaset(name: str = "web", namespace: str = "default", *, replicas: int = 1, uid: str = "",
                    labels: dict[str, str] | None = None, owners: list[Obj] | None = None) -> Obj:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": meta(name, namespace, uid=uid, labels=labels, owners=owners),
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container()]}}}}


def make_deployment(name: str = "web", namespace: str = "default", *, replicas: int = 1, uid: str = "",
                    labels: dict[str, str] | None = None) -> Obj:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(name, namespace, uid=uid),
            "spec": {"replicas": replicas, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}, "spec": {"containers": [container()]}}}}


def make_configmap(name: str = "cm", namespace: str = "default", *, data: dict[str, str] | None = None,
                   owners: list[Obj] | None = None, uid: str = "") -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta(name, namespace, uid=uid, owners=owners),
            "data": dict(data or {})}
