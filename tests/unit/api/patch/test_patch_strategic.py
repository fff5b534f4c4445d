"""Strategic merge patch against the v1.32 schemas: merge keys, directives, ordering."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from patch_builders import DEPLOYMENT, POD, make_container, make_deployment, make_pod, pod_spec

from minik.api.patch import strategic_merge_patch
from minik.apis import errors
from minik.apis.schema import Schemas


def test_kubectl_second_apply_body(schemas: Schemas) -> None:
    """The exact PATCH kubectl 1.32 sends on the second client-side apply (protocol doc §4)."""
    live = make_deployment(make_container("nginx", "nginx:1.25", imagePullPolicy="IfNotPresent",
                                          ports=[{"containerPort": 80, "protocol": "TCP"}]),
                           make_container("sidecar", "busybox"))
    live["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{old}"}
    body = {"metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}},
            "spec": {"minReadySeconds": 1, "template": {"spec": {
                "$setElementOrder/containers": [{"name": "nginx"}],
                "containers": [{"image": "nginx:1.27", "name": "nginx"}]}}}}
    before = copy.deepcopy((live, body))
    out = strategic_merge_patch(live, body, schemas, DEPLOYMENT)
    assert (live, body) == before
    assert out["metadata"]["annotations"] == {"kubectl.kubernetes.io/last-applied-configuration": "{new}"}
    assert out["spec"]["minReadySeconds"] == 1
    assert pod_spec(out)["containers"] == [
        {"name": "nginx", "image": "nginx:1.27", "imagePullPolicy": "IfNotPresent",
         "ports": [{"containerPort": 80, "protocol": "TCP"}]},
        {"name": "sidecar", "image": "busybox"},
    ]
    assert "$setElementOrder/containers" not in pod_spec(out)


def _containers_patch(**container: Any) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": "nginx", **container}]}}}}


CONTAINER_CASES: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any]]] = [
    ("env merges by name",
     make_container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
     _containers_patch(env=[{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]),
     make_container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "3"}, {"name": "C", "value": "4"}])),
    ("env item $patch delete",
     make_container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
     _containers_patch(env=[{"name": "A", "$patch": "delete"}]),
     make_container(env=[{"name": "B", "value": "2"}])),
    ("env list $patch replace",
     make_container(env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
     _containers_patch(env=[{"$patch": "replace"}, {"name": "Z", "value": "9"}]),
     make_container(env=[{"name": "Z", "value": "9"}])),
    ("null inside a merged item deletes",
     make_container(env=[{"name": "A", "value": "1"}], workingDir="/x"),
     _containers_patch(workingDir=None),
     make_container(env=[{"name": "A", "value": "1"}])),
    ("ports merge by containerPort",
     make_container(ports=[{"containerPort": 80, "protocol": "TCP"}]),
     _containers_patch(ports=[{"containerPort": 80, "name": "http"}, {"containerPort": 443}]),
     make_container(ports=[{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 443}])),
    ("volumeMounts merge by mountPath",
     make_container(volumeMounts=[{"name": "a", "mountPath": "/a"}]),
     _containers_patch(volumeMounts=[{"name": "b", "mountPath": "/a", "readOnly": True}]),
     make_container(volumeMounts=[{"name": "b", "mountPath": "/a", "readOnly": True}])),
    ("args have no merge strategy: replaced",
     make_container(args=["a", "b"]),
     _containers_patch(args=["c"]),
     make_container(args=["c"])),
    ("new list drops directive elements",
     make_container(),
     _containers_patch(env=[{"name": "A", "value": "1"}, {"name": "B", "$patch": "delete"}]),
     make_container(env=[{"name": "A", "value": "1"}])),
]


@pytest.mark.parametrize(("live", "patch", "expected"), [c[1:] for c in CONTAINER_CASES], ids=[c[0] for c in CONTAINER_CASES])
def test_container_lists(schemas: Schemas, live: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]) -> None:
    out = strategic_merge_patch(make_deployment(live), patch, schemas, DEPLOYMENT)
    assert pod_spec(out)["containers"] == [expected]


DEPLOYMENT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], Any]] = [
    ("container $patch delete",
     {}, _containers_patch(**{"$patch": "delete"}),
     lambda o: [c["name"] for c in pod_spec(o)["containers"]] == ["sidecar"]),
    ("null deletes a key",
     {}, {"metadata": {"labels": {"app": None, "tier": "fe"}}},
     lambda o: o["metadata"]["labels"] == {"tier": "fe"}),
    ("map $patch replace",
     {}, {"spec": {"template": {"metadata": {"$patch": "replace", "labels": {"x": "y"}}}}},
     lambda o: o["spec"]["template"]["metadata"] == {"labels": {"x": "y"}}),
    ("map $patch delete empties it",
     {"strategy": {"type": "Recreate"}}, {"spec": {"strategy": {"$patch": "delete"}}},
     lambda o: o["spec"]["strategy"] == {}),
    ("retainKeys clears the other union member",
     {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}},
     {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}},
     lambda o: o["spec"]["strategy"] == {"type": "Recreate"}),
    ("retainKeys on a volume (merge,retainKeys)",
     {}, {"spec": {"template": {"spec": {"volumes": [
         {"name": "v", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/x"}}]}}}},
     lambda o: pod_spec(o)["volumes"] == [{"name": "v", "hostPath": {"path": "/x"}}]),
    ("setElementOrder alone reorders",
     {}, {"spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}]}}}},
     lambda o: [c["name"] for c in pod_spec(o)["containers"]] == ["sidecar", "nginx"]),
    ("setElementOrder with a new element",
     {}, {"spec": {"template": {"spec": {
         "$setElementOrder/containers": [{"name": "nginx"}, {"name": "extra"}, {"name": "sidecar"}],
         "containers": [{"name": "extra", "image": "e"}]}}}},
     lambda o: [c["name"] for c in pod_spec(o)["containers"]] == ["nginx", "extra", "sidecar"]),
    ("rollout restart annotation",
     {}, {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}},
     lambda o: o["spec"]["template"]["metadata"] == {
         "labels": {"app": "web"}, "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}),
    ("scalar replaces",
     {}, {"spec": {"replicas": 4}},
     lambda o: o["spec"]["replicas"] == 4),
]


@pytest.mark.parametrize(("spec_extra", "patch", "check"), [c[1:] for c in DEPLOYMENT_CASES], ids=[c[0] for c in DEPLOYMENT_CASES])
def test_deployment_patches(schemas: Schemas, spec_extra: dict[str, Any], patch: dict[str, Any], check: Any) -> None:
    live = make_deployment(make_container("nginx"), make_container("sidecar", "busybox"), **spec_extra)
    live["spec"]["template"]["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    out = strategic_merge_patch(live, patch, schemas, DEPLOYMENT)
    assert check(out), out


FINALIZER_CASES: list[tuple[str, list[str], dict[str, Any], list[str] | None]] = [
    ("merge as a set", ["a", "b"], {"finalizers": ["b", "c"]}, ["a", "b", "c"]),
    ("duplicates collapse", ["a"], {"finalizers": ["a", "a"]}, ["a"]),
    ("deleteFromPrimitiveList", ["a", "b", "c"], {"$deleteFromPrimitiveList/finalizers": ["b"]}, ["a", "c"]),
    ("delete and add together", ["a", "b"],
     {"$deleteFromPrimitiveList/finalizers": ["a"], "finalizers": ["c"]}, ["b", "c"]),
    ("setElementOrder on primitives", ["a", "b"],
     {"$setElementOrder/finalizers": ["b", "a"]}, ["b", "a"]),
    ("null removes the list", ["a"], {"finalizers": None}, None),
]


@pytest.mark.parametrize(("live", "meta_patch", "expected"), [c[1:] for c in FINALIZER_CASES], ids=[c[0] for c in FINALIZER_CASES])
def test_finalizers(schemas: Schemas, live: list[str], meta_patch: dict[str, Any], expected: list[str] | None) -> None:
    pod = make_pod()
    pod["metadata"]["finalizers"] = live
    out = strategic_merge_patch(pod, {"metadata": meta_patch}, schemas, POD)
    assert out["metadata"].get("finalizers") == expected


def test_atomic_list_without_merge_key_replaced(schemas: Schemas) -> None:
    pod = make_pod(tolerations=[{"key": "a", "operator": "Exists"}])
    out = strategic_merge_patch(pod, {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}, schemas, POD)
    assert out["spec"]["tolerations"] == [{"key": "b", "operator": "Exists"}]


def test_cordon(schemas: Schemas) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}, "spec": {"podCIDR": "10.0.0.0/24"}}
    out = strategic_merge_patch(node, {"spec": {"unschedulable": True}}, schemas, "io.k8s.api.core.v1.Node")
    assert out["spec"] == {"podCIDR": "10.0.0.0/24", "unschedulable": True}


@pytest.mark.parametrize("patch", [
    {"spec": {"$patch": "frobnicate"}},
    _containers_patch(env=[{"value": "no-name"}]),
    _containers_patch(env=[{"$patch": "delete"}]),
    {"spec": {"strategy": {"$retainKeys": "type"}}},
    ["not", "a", "map"],
])
def test_bad_patches(schemas: Schemas, patch: Any) -> None:
    with pytest.raises(errors.BadRequest):
        strategic_merge_patch(make_deployment(), patch, schemas, DEPLOYMENT)
