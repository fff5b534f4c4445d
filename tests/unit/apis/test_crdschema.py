"""Validation of custom objects against structural schemas, with Kubernetes' reasons and phrasing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minik.apis.crdschema import validate, validate_crd_schema
from minik.apis.errors import Cause

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["spec"],
    "properties": {
        "spec": {
            "type": "object",
            "required": ["cronSpec"],
            "properties": {
                "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                "image": {"type": "string", "minLength": 1, "maxLength": 5},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10},
                "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                          "exclusiveMaximum": True, "maximum": 1},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "enabled": {"type": "boolean"},
                "port": {"x-kubernetes-int-or-string": True},
                "tags": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "string"}},
                "ids": {"type": "array", "uniqueItems": True, "items": {"type": "integer", "format": "int32"}},
                "when": {"type": "string", "format": "date-time"},
                "note": {"type": "string", "nullable": True},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "ports": {"type": "array", "items": {"type": "object", "required": ["port"],
                                                     "properties": {"port": {"type": "integer"}}}},
            },
        },
    },
}


def make_crontab(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": "x"},
            "spec": {"cronSpec": "* * * * */5", **spec}}


def one(causes: list[Cause]) -> Cause:
    assert len(causes) == 1, causes
    return causes[0]


def test_valid_object_has_no_causes() -> None:
    obj = make_crontab(image="nginx", replicas=3, ratio=0.5, mode="a", enabled=True, port="http",
                       tags=["x"], ids=[1, 2], when="2024-01-02T03:04:05Z", note=None,
                       labels={"a": "b"}, ports=[{"port": 80}])
    assert validate(SCHEMA, obj) == []
    assert validate(SCHEMA, make_crontab(port=8080, when="2024-01-02T03:04:05.123+02:00")) == []


def test_type_error_names_the_field_like_kube() -> None:
    cause = one(validate(SCHEMA, make_crontab(replicas="string")))
    assert cause == Cause("FieldValueTypeInvalid",
                          'Invalid value: "string": spec.replicas in body must be of type integer: "string"',
                          "spec.replicas")
    cause = one(validate(SCHEMA, make_crontab(enabled="yes")))
    assert cause.field == "spec.enabled" and "must be of type boolean" in cause.message
    assert one(validate(SCHEMA, make_crontab(replicas=True))).reason == "FieldValueTypeInvalid"
    assert one(validate(SCHEMA, make_crontab(replicas=1.5))).message.endswith('must be of type integer: "number"')
    assert one(validate(SCHEMA, make_crontab(port=1.5))).field == "spec.port"
    assert one(validate(SCHEMA, make_crontab(labels={"a": 1}))).field == "spec.labels.a"


def test_required() -> None:
    obj = make_crontab()
    del obj["spec"]["cronSpec"]
    assert one(validate(SCHEMA, obj)) == Cause("FieldValueRequired", "Required value", "spec.cronSpec")
    assert one(validate(SCHEMA, {"apiVersion": "a/v1", "kind": "A", "metadata": {}})).field == "spec"
    cause = one(validate(SCHEMA, make_crontab(ports=[{"port": 1}, {}])))
    assert cause.field == "spec.ports[1].port" and cause.reason == "FieldValueRequired"


def test_enum() -> None:
    cause = one(validate(SCHEMA, make_crontab(mode="x")))
    assert cause == Cause("FieldValueNotSupported", 'Unsupported value: "x": supported values: "a", "b"', "spec.mode")


@pytest.mark.parametrize("spec,field,reason,fragment", [
    ({"replicas": 0}, "spec.replicas", "FieldValueInvalid", "spec.replicas in body should be greater than or equal to 1"),
    ({"replicas": 11}, "spec.replicas", "FieldValueInvalid", "should be less than or equal to 10"),
    ({"ratio": 0}, "spec.ratio", "FieldValueInvalid", "should be greater than 0"),
    ({"ratio": 1.0}, "spec.ratio", "FieldValueInvalid", "should be less than 1"),
    ({"image": ""}, "spec.image", "FieldValueInvalid", "should be at least 1 chars long"),
    ({"image": "toolong"}, "spec.image", "FieldValueTooLong", "Too long: may not be more than 5 bytes"),
    ({"cronSpec": "nope"}, "spec.cronSpec", "FieldValueInvalid", "spec.cronSpec in body should match '^"),
    ({"tags": []}, "spec.tags", "FieldValueInvalid", "should have at least 1 items"),
    ({"tags": ["a", "b", "c"]}, "spec.tags", "FieldValueTooMany", "Too many: 3: must have at most 2 items"),
    ({"ids": [1, 1]}, "spec.ids[1]", "FieldValueDuplicate", "Duplicate value: 1"),
    ({"ids": [2**40]}, "spec.ids[0]", "FieldValueTypeInvalid", "must be of type int32"),
    ({"when": "yesterday"}, "spec.when", "FieldValueTypeInvalid", "must be of type date-time"),
    ({"tags": [1]}, "spec.tags[0]", "FieldValueTypeInvalid", "spec.tags[0] in body must be of type string"),
    ({"mode": None}, "spec.mode", "FieldValueTypeInvalid", 'must be of type string: "null"'),
])
def test_value_constraints(spec: dict[str, Any], field: str, reason: str, fragment: str) -> None:
    cause = one(validate(SCHEMA, make_crontab(**spec)))
    assert (cause.field, cause.reason) == (field, reason)
    assert fragment in cause.message


def test_several_errors_are_all_reported() -> None:
    causes = validate(SCHEMA, make_crontab(replicas="x", mode="z", image="toolong"))
    assert {c.field for c in causes} == {"spec.replicas", "spec.mode", "spec.image"}


def test_metadata_and_type_meta_are_not_validated_by_the_schema() -> None:
    schema = {"type": "object", "properties": {"metadata": {"type": "object", "properties": {
        "name": {"type": "string", "maxLength": 1}}}}}
    assert validate(schema, {"apiVersion": "a/v1", "kind": "A", "metadata": {"name": "long-name"}}) == []


def test_validate_at_a_sub_path() -> None:
    cause = one(validate({"type": "integer"}, "x", "spec.replicas"))
    assert cause.field == "spec.replicas"


def test_any_of_int_or_string_as_controller_gen_writes_it() -> None:
    schema = {"type": "object", "properties": {"p": {
        "x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}}}
    assert validate(schema, {"p": 1}) == [] and validate(schema, {"p": "a"}) == []
    assert one(validate(schema, {"p": [1]})).field == "p"


def test_crd_schema_root_must_be_object() -> None:
    schema = copy.deepcopy(SCHEMA)
    del schema["properties"]["spec"]["properties"]["ids"]["uniqueItems"]  # CRDs forbid it
    assert validate_crd_schema({"openAPIV3Schema": schema}) == []
    cause = one(validate_crd_schema({"openAPIV3Schema": {"type": "string"}}))
    assert cause.field == "openAPIV3Schema.type" and "must be object at the root" in cause.message
    cause = one(validate_crd_schema({"openAPIV3Schema": {"properties": {}}}))
    assert cause.reason == "FieldValueRequired"


def test_crd_schema_structural_checks() -> None:
    schema = {"type": "object", "properties": {
        "spec": {"properties": {"a": {"type": "string"}}},
        "list": {"type": "array"},
        "uniq": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
        "bad": {"type": "string", "pattern": "("},
        "ok": {"x-kubernetes-preserve-unknown-fields": True},
    }}
    fields = {c.field for c in validate_crd_schema(schema, path="spec.versions[0].schema.openAPIV3Schema")}
    prefix = "spec.versions[0].schema.openAPIV3Schema.properties"
    assert fields == {f"{prefix}[spec].type", f"{prefix}[list].items", f"{prefix}[uniq].uniqueItems",
                      f"{prefix}[bad].pattern"}
