"""Behaviours the Python `kubernetes` client's own end-to-end suite relies on, against a real server.

Each test here stands for a gap found by running that suite against minik: the client's helpers
and generated models read response bodies literally, so the exact text and type of a response
matter, not only its status code.
"""

from __future__ import annotations

import json
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


def test_delete_answers_with_the_object_where_the_client_expects_one(minik: Minik) -> None:
    """delete_namespaced_service() decodes a V1Service; a Success Status made its model fail."""
    api = minik.client()
    core = client.CoreV1Api(api)
    ns = "pyd-" + uuid.uuid4().hex[:8]
    core.create_namespace({"metadata": {"name": ns}})
    core.create_namespaced_service(ns, {"metadata": {"name": "front"},
                                        "spec": {"selector": {"app": "front"}, "ports": [{"port": 80}]}})
    gone = core.delete_namespaced_service("front", ns, body={})
    assert isinstance(gone, client.V1Service) and gone.metadata.name == "front"
    core.create_namespaced_service_account(ns, {"metadata": {"name": "robot"}})
    sa = core.delete_namespaced_service_account("robot", ns)
    assert isinstance(sa, client.V1ServiceAccount) and sa.metadata.name == "robot"
    # Kinds without ReturnDeletedObject keep answering with a Success Status.
    core.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})
    raw = core.delete_namespaced_config_map("cm", ns, _preload_content=False)
    body = json.loads(raw.data)
    assert body["kind"] == "Status" and body["status"] == "Success"
