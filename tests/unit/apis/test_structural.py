"""Structural validation compiled from the v1.32 definitions: table of values and the causes."""

from __future__ import annotations

import math
from typing import Any

import pytest

from minik.apis.schema import Schemas
from minik.apis.structural import MAX_CAUSES, StructuralValidator

SCHEMAS = Schemas()
POD = "io.k8s.api.core.v1.Pod"
DEPLOYMENT = "io.k8s.api.apps.v1.Deployment"
CM = "io.k8s.api.core.v1.ConfigMap"


def causes(name: str, obj: Any) -> list[tuple[str, str, str]]:
    return [(c.reason, c.field, c.message) for c in StructuralValidator(SCHEMAS).validate(name, obj)]


def fields(name: str, obj: Any) -> list[str]:
    return [f for _, f, _ in causes(name, obj)]


def pod(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}], **spec}}


def test_a_valid_deployment_has_no_causes() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"a": "b"}, "creationTimestamp": None},
           "spec": {"replicas": 3, "selector": {"matchLabels": {"a": "b"}}, "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{
                        "name": "c", "image": "busybox", "ports": [{"containerPort": 80}],
                        "resources": {"requests": {"cpu": "100m", "memory": 64 * 1024 * 1024}, "limits": {"cpu": 0.5}},
                        "livenessProbe": {"httpGet": {"port": "http", "path": "/"}}}]}}},
           "status": {"replicas": 0}}
    assert causes(DEPLOYMENT, dep) == []


def test_kube_wording_for_a_wrong_type() -> None:
    assert causes(POD, pod(priority="s")) == [(
        "FieldValueTypeInvalid", "spec.priority",
        'Invalid value: "string": spec.priority in body must be of type integer: "string"')]


@pytest.mark.parametrize(("obj", "field"), [
    (pod(containers=1), "spec.containers"),
    (pod(containers=[{"name": "c", "image": "i", "ports": [{"containerPort": "80"}]}]), "spec.containers[0].ports[0].containerPort"),
    (pod(containers=[{"name": "c", "image": "i"}, None]), "spec.containers[1]"),
    (pod(hostNetwork="yes"), "spec.hostNetwork"),
    (pod(nodeSelector={"a": 1}), "spec.nodeSelector.a"),
    (pod(tolerations={"key": "a"}), "spec.tolerations"),
    (pod(priority=2**31), "spec.priority"),
    (pod(activeDeadlineSeconds=1.5), "spec.activeDeadlineSeconds"),
    (pod(overhead={"cpu": "1x"}), "spec.overhead.cpu"),
    (pod(overhead={"cpu": []}), "spec.overhead.cpu"),
    (pod(overhead={"cpu": math.inf}), "spec.overhead.cpu"),
    (pod(containers=[{"name": "c", "image": "i", "livenessProbe": {"httpGet": {"port": True}}}]), "spec.containers[0].livenessProbe.httpGet.port"),
    (dict(pod(), metadata={"name": "p", "ownerReferences": 1}), "metadata.ownerReferences"),
    (dict(pod(), metadata={"name": "p", "finalizers": 1}), "metadata.finalizers"),
    (dict(pod(), metadata={"name": "p", "finalizers": [1]}), "metadata.finalizers[0]"),
    (dict(pod(), metadata={"name": "p", "creationTimestamp": "yesterday"}), "metadata.creationTimestamp"),
    (dict(pod(), metadata={"name": "p", "labels": []}), "metadata.labels"),
    (dict(pod(), status={"phase": 1}), "status.phase"),
])
def test_wrong_types_name_their_field(obj: dict[str, Any], field: str) -> None:
    assert fields(POD, obj) == [field]


def test_required_is_left_to_validation_after_defaulting() -> None:
    # Kubernetes does not enforce `required` when decoding: a Job's onPodConditions[].status is
    # marked required and defaulted to "True"; a NetworkPolicy without podSelector is valid.
    job = {"metadata": {"name": "j"}, "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
                                              "podFailurePolicy": {"rules": [{"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}}}
    assert fields("io.k8s.api.batch.v1.Job", job) == []
    assert fields(POD, {"spec": {}}) == []
    assert fields("io.k8s.api.networking.v1.NetworkPolicy", {"metadata": {"name": "n"}, "spec": {}}) == []


def test_required_on_list_elements_when_asked() -> None:
    strict = StructuralValidator(SCHEMAS, required=True)
    assert [c.field for c in strict.validate(POD, {"spec": {"containers": [{"image": "i"}]}})] == ["spec.containers[0].name"]
    assert [c.field for c in strict.validate(POD, {"spec": {}})] == []
    # ContainerStatus requires name/image/imageID/ready/restartCount; writers omit zero values.
    assert [c.field for c in strict.validate(POD, pod() | {"status": {"containerStatuses": [{"name": "c"}]}})] == []


def test_configmap_data_numbers_and_non_finite() -> None:
    assert fields(CM, {"metadata": {"name": "c"}, "data": {"n": 1, "f": 1.5, "s": "ok"}}) == ["data.n", "data.f"]
    assert fields(CM, {"metadata": {"name": "c"}, "binaryData": {"b": "not base64!"}}) == ["binaryData.b"]
    assert fields(CM, {"metadata": {"name": "c"}, "binaryData": {"b": "aGVsbG8="}}) == []


def test_null_properties_are_absent_values() -> None:
    assert fields(POD, pod(priority=None, nodeSelector=None)) == []


def test_free_form_values_refuse_only_non_finite_numbers() -> None:
    v = StructuralValidator(SCHEMAS)
    crd_obj = {"apiVersion": "example.com/v1", "kind": "W", "metadata": {"name": "w", "finalizers": 1},
               "spec": {"deep": [{"x": math.nan}], "ok": 1.5}}
    assert [c.field for c in v.validate_metadata(crd_obj)] == ["metadata.finalizers", "spec.deep[0].x"]
    ext = {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "r"}, "revision": 1,
           "data": {"anything": [1, "two", {"three": None}]}}
    assert causes("io.k8s.api.apps.v1.ControllerRevision", ext) == []


def test_recursive_definitions_compile() -> None:
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "ws.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced", "names": {"plural": "ws", "kind": "W"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {"a": {"type": 1}}}}}}}]}}
    assert fields("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition", crd) == [
        "spec.versions[0].schema.openAPIV3Schema.properties.spec.properties.a.type"]


def test_causes_are_capped() -> None:
    obj = {"metadata": {"name": "c"}, "data": {f"k{i}": i for i in range(500)}}
    assert len(causes(CM, obj)) == MAX_CAUSES


def test_unknown_definition_checks_only_numbers() -> None:
    v = StructuralValidator(SCHEMAS)
    assert v.validate("no.such.Kind", {"a": "b"}) == []
    assert [c.field for c in v.validate("no.such.Kind", {"a": [math.inf]})] == ["a[0]"]


def test_byte_fields_accept_wrapped_base64_like_go() -> None:
    secret = "io.k8s.api.core.v1.Secret"
    assert fields(secret, {"metadata": {"name": "s"}, "data": {"a": "aGVs\nbG8=\n", "b": ""}}) == []
    assert fields(secret, {"metadata": {"name": "s"}, "data": {"a": "aGVsbG8", "b": "a===", "c": "ä"}}) == ["data.a", "data.b", "data.c"]
