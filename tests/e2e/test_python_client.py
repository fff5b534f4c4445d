"""The Python `kubernetes` client (typed API, watch, conflicts) against a real server."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from tests.e2e.minikd import Minik


def test_typed_client_crud_and_conflict(minik: Minik) -> None:
    api = minik.client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-t")))
    with pytest.raises(ApiException) as e:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="py-t")))
    assert e.value.status == 409
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1, selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels={"app": "web"}),
                                              spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))))
    created = apps.create_namespaced_deployment("py-t", dep)
    assert created.metadata.uid and created.spec.strategy.type == "RollingUpdate"
    apps.patch_namespaced_deployment_scale("web", "py-t", {"spec": {"replicas": 3}})
    assert apps.read_namespaced_deployment_scale("web", "py-t").spec.replicas == 3
    stale = apps.read_namespaced_deployment("web", "py-t")
    apps.patch_namespaced_deployment("web", "py-t", {"metadata": {"labels": {"x": "y"}}})
    stale.spec.replicas = 5
    with pytest.raises(ApiException) as e:
        apps.replace_namespaced_deployment("web", "py-t", stale)
    assert e.value.status == 409
    # The Deployment's ReplicaSet creates its pods (Pending: this server runs no node agent).
    deadline = time.time() + 20
    while len(core.list_namespaced_pod("py-t", label_selector="app=web").items) != 3:
        assert time.time() < deadline, "the deployment controller did not create 3 pods"
        time.sleep(0.2)
    lst = core.list_namespaced_config_map("py-t", label_selector="nothing=here")
    assert lst.items == []


def test_watch_stream(minik: Minik) -> None:
    api = minik.client()
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="pyw-t")))
    seen: list[tuple[str, str]] = []

    def run() -> None:
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "pyw-t", timeout_seconds=5):
            seen.append((ev["type"], ev["object"].metadata.name))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    time.sleep(1)
    core.create_namespaced_config_map("pyw-t", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="a"), data={"k": "v"}))
    core.patch_namespaced_config_map("a", "pyw-t", {"data": {"k": "w"}})
    core.delete_namespaced_config_map("a", "pyw-t")
    t.join(15)
    assert ("ADDED", "a") in seen and ("MODIFIED", "a") in seen and ("DELETED", "a") in seen


def test_watch_expired_is_410(fresh_minik: Minik) -> None:
    # After a restart the watch history starts at the current revision: older ones are gone (410).
    fresh_minik.kubectl("create", "configmap", "before-restart", "--from-literal=a=b")
    fresh_minik.stop()
    fresh_minik.start()
    api = fresh_minik.client()
    core = client.CoreV1Api(api)
    w = watch.Watch()
    with pytest.raises(ApiException) as e:
        for _ in w.stream(core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=3):
            pass
    assert e.value.status == 410
