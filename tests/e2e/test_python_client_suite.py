"""Behaviours the Python `kubernetes` client's own end-to-end suite relies on, against a real server.

Each test here stands for a gap found by running that suite against minik: the client's helpers
and generated models read response bodies literally, so the exact text and type of a response
matter, not only its status code.
"""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client, utils

from tests.e2e.minikd import Minik


def _deployment(name: str) -> dict[str, object]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


def test_create_from_yaml_conflicts_carry_kube_status_text(minik: Minik) -> None:
    """utils.create_from_yaml gathers the raw 409 bodies; they read byte for byte as kube's."""
    api = minik.client()
    ns = "pys-" + uuid.uuid4().hex[:8]
    client.CoreV1Api(api).create_namespace({"metadata": {"name": ns}})
    name = "twice"
    with pytest.raises(utils.FailToCreateError) as e:
        utils.create_from_yaml(api, yaml_objects=[_deployment(name)] * 3, namespace=ns)
    one = ('Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
           '"status":"Failure","message":"deployments.apps \\"twice\\" already exists",'
           '"reason":"AlreadyExists","details":{"name":"twice","group":"apps","kind":"deployments"},'
           '"code":409}\n')
    assert str(e.value) == one * 2
    assert client.AppsV1Api(api).read_namespaced_deployment(name, ns).metadata.name == name
