"""Object builders for the patch tests (kept apart so test tables stay short)."""

from __future__ import annotations

import copy
from typing import Any

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
POD = "io.k8s.api.core.v1.Pod"
CONFIGMAP = "io.k8s.api.core.v1.ConfigMap"


def make_container(name: str = "nginx", image: str = "nginx:1.25", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def make_deployment(*containers: dict[str, Any], replicas: int = 1, labels: dict[str, str] | None = None,
                    **spec_extra: Any) -> dict[str, Any]:
    labels = labels if labels is not None else {"app": "web"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [copy.deepcopy(c) for c in containers] or [make_container()]},
            },
            **spec_extra,
        },
    }


def make_pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [make_container()], **spec}}


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec
