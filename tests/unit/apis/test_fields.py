"""Unknown-field detection (fieldValidation Strict/Warn) and CRD pruning."""

from __future__ import annotations

import copy
import time
from typing import Any

import pytest

from minik.apis.fields import prune, unknown_fields, unknown_fields_in_schema
from minik.apis.schema import Schemas

DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas()


def make_deployment(**spec_extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}, "annotations": {"a/b": "c"},
                     "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                                        "fieldsV1": {"f:spec": {"f:replicas": {}}}}]},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                                         "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                                         "ports": [{"containerPort": 80}]}]},
            },
            **spec_extra,
        },
    }


def test_valid_deployment_has_no_unknown_fields(schemas: Schemas) -> None:
    assert unknown_fields(schemas, DEPLOYMENT, make_deployment()) == []


def test_unknown_fields_are_reported_with_kube_paths(schemas: Schemas) -> None:
    obj = make_deployment(foo=1)
    obj["spec"]["template"]["spec"]["containers"].append({"name": "d", "imagee": "x"})
    obj["spec"]["template"]["spec"]["containers"][0]["ports"][0]["bogus"] = True
    obj["metadata"]["nope"] = "x"
    assert unknown_fields(schemas, DEPLOYMENT, obj) == [
        "metadata.nope",
        "spec.template.spec.containers[0].ports[0].bogus",
        "spec.template.spec.containers[1].imagee",
        "spec.foo",
    ]


def test_maps_free_form_and_nulls_are_not_unknown(schemas: Schemas) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "annotations": None},
          "data": {"any.key": "v", "other": "w"}, "binaryData": {"b": "AA=="}}
    assert unknown_fields(schemas, "io.k8s.api.core.v1.ConfigMap", cm) == []
    crd_obj: dict[str, Any] = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": "a.b"},
               "spec": {"group": "b", "names": {"kind": "A", "plural": "as"}, "scope": "Namespaced",
                        "versions": [{"name": "v1", "served": True, "storage": True,
                                      "schema": {"openAPIV3Schema": {
                                          "type": "object", "default": {"free": {"form": 1}},
                                          "properties": {"x": {"type": "string", "example": {"q": [1]}}}}}}]}}
    crd = "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"
    assert unknown_fields(schemas, crd, crd_obj) == []
    # JSONSchemaProps itself is a struct: a typo in a CRD's schema is an unknown field, as in kube.
    crd_obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["typo"] = 1
    assert unknown_fields(schemas, crd, crd_obj) == ["spec.versions[0].schema.openAPIV3Schema.typo"]


def test_no_duplicates_and_wrong_shapes_are_ignored(schemas: Schemas) -> None:
    obj = make_deployment()
    obj["spec"]["template"]["spec"]["containers"] = "not a list"
    obj["spec"]["selector"] = ["not", "a", "map"]
    assert unknown_fields(schemas, DEPLOYMENT, obj) == []
    assert unknown_fields(schemas, DEPLOYMENT, "not an object") == []
    assert unknown_fields(schemas, "no.such.Definition", {"a": 1}) == []


def test_root_type_meta_is_always_known(schemas: Schemas) -> None:
    assert unknown_fields(schemas, "io.k8s.api.core.v1.PodSpec", {"apiVersion": "v1", "kind": "X", "x": 1}) == ["x"]


def test_fast_enough_for_every_request(schemas: Schemas) -> None:
    obj = make_deployment()
    unknown_fields(schemas, DEPLOYMENT, obj)
    start = time.perf_counter()
    for _ in range(200):
        unknown_fields(schemas, DEPLOYMENT, obj)
    assert (time.perf_counter() - start) / 200 < 0.002


CRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "cronSpec": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "object",
                                                                      "properties": {"v": {"type": "string"}}}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                         "properties": {"known": {"type": "object", "properties": {"k": {"type": "string"}}}}},
                "empty": {"type": "object"},
                "port": {"x-kubernetes-int-or-string": True},
                "embedded": {"type": "object", "x-kubernetes-embedded-resource": True,
                             "properties": {"spec": {"type": "object", "properties": {}}}},
            },
        },
        "status": {"type": "object", "properties": {"ok": {"type": "boolean"}}},
    },
}


def make_crontab() -> dict[str, Any]:
    return {
        "apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
        "spec": {
            "cronSpec": "* * * * *", "extra": 1,
            "items": [{"a": "x", "b": "y"}],
            "labels": {"k1": {"v": "1", "w": 2}},
            "free": {"whatever": {"deep": 1}, "known": {"k": "v", "z": 1}},
            "empty": {"gone": True},
            "port": 80,
            "embedded": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"x": 1}, "other": 2},
        },
        "status": {"ok": True},
        "top": "level",
    }


def test_crd_unknown_fields() -> None:
    obj = make_crontab()
    before = copy.deepcopy(obj)
    found = unknown_fields_in_schema(CRD_SCHEMA, obj)
    assert obj == before
    assert sorted(found) == sorted([
        "spec.extra", "spec.items[0].b", "spec.labels.k1.w", "spec.free.known.z", "spec.empty.gone",
        "spec.embedded.spec.x", "spec.embedded.other", "top",
    ])


def test_prune_removes_in_place() -> None:
    obj = make_crontab()
    pruned = prune(CRD_SCHEMA, obj)
    assert "spec.extra" in pruned and "top" in pruned
    assert unknown_fields_in_schema(CRD_SCHEMA, obj) == []
    assert obj["spec"]["free"]["whatever"] == {"deep": 1}
    assert obj["spec"]["empty"] == {}
    assert obj["spec"]["embedded"] == {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {}}
    assert obj["metadata"] == {"name": "x"}


def test_preserve_unknown_fields_at_root_keeps_everything() -> None:
    schema = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    obj = {"apiVersion": "a/v1", "kind": "A", "spec": {"x": {"y": 1}}}
    assert prune(schema, obj) == []
    assert obj["spec"] == {"x": {"y": 1}}


def test_type_mismatch_is_left_for_validation() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "string"}}}
    obj = {"spec": {"a": 1}}
    assert prune(schema, obj) == []
    assert obj == {"spec": {"a": 1}}
