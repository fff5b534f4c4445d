"""`/openapi/v2`: the Swagger 2.0 document and its gnostic `openapi_v2.Document` protobuf encoding.

The encoding is checked with an independent decoder: google.protobuf messages built at run time
from a descriptor of the gnostic subset (published field numbers), and with the rules kubectl's
v2 reader (kube-openapi `util/proto`) enforces on what it parses.
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import make_mocked_request
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from minik.api.openapi import OpenAPI
from minik.api.openapiv2 import (PROTOBUF_TYPE, OpenAPIV2, convert_schema, encode_document, encode_schema,
                                 wants_protobuf)
from minik.apis.protobuf import iter_fields
from minik.apis.registry import Registry, ResourceType
from minik.apis.schema import Schemas

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        }},
    },
}


def make_crontab() -> ResourceType:
    return ResourceType("stable.example.com", "v1", "CronTab", "crontabs", True, ("ct",), custom=True)

# (field, number, type, repeated); a type that is not a scalar names a message of this table.
_GNOSTIC: dict[str, list[tuple[str, int, str, bool]]] = {
    "Document": [("swagger", 1, "string", False), ("info", 2, "Info", False), ("host", 3, "string", False),
                 ("base_path", 4, "string", False), ("schemes", 5, "string", True),
                 ("paths", 8, "Paths", False), ("definitions", 9, "Definitions", False)],
    "Info": [("title", 1, "string", False), ("version", 2, "string", False)],
    "Paths": [("vendor_extension", 1, "NamedAny", True), ("path", 2, "NamedPathItem", True)],
    "NamedPathItem": [("name", 1, "string", False), ("value", 2, "PathItem", False)],
    "PathItem": [("_ref", 1, "string", False), ("get", 2, "Operation", False), ("put", 3, "Operation", False),
                 ("post", 4, "Operation", False), ("delete", 5, "Operation", False),
                 ("patch", 8, "Operation", False), ("parameters", 9, "ParametersItem", True)],
    "Operation": [("tags", 1, "string", True), ("summary", 2, "string", False), ("description", 3, "string", False),
                  ("operation_id", 5, "string", False), ("produces", 6, "string", True),
                  ("consumes", 7, "string", True), ("parameters", 8, "ParametersItem", True),
                  ("responses", 9, "Responses", False), ("schemes", 10, "string", True),
                  ("deprecated", 11, "bool", False), ("vendor_extension", 13, "NamedAny", True)],
    "ParametersItem": [("parameter", 1, "Parameter", False), ("json_reference", 2, "JsonReference", False)],
    "JsonReference": [("_ref", 1, "string", False), ("description", 2, "string", False)],
    "Parameter": [("body_parameter", 1, "BodyParameter", False), ("non_body_parameter", 2, "NonBodyParameter", False)],
    "BodyParameter": [("description", 1, "string", False), ("name", 2, "string", False), ("in", 3, "string", False),
                      ("required", 4, "bool", False), ("schema", 5, "Schema", False)],
    "NonBodyParameter": [("query_parameter_sub_schema", 3, "QueryParameterSubSchema", False),
                         ("path_parameter_sub_schema", 4, "PathParameterSubSchema", False)],
    "QueryParameterSubSchema": [("required", 1, "bool", False), ("in", 2, "string", False),
                                ("description", 3, "string", False), ("name", 4, "string", False),
                                ("type", 6, "string", False), ("unique_items", 20, "bool", False)],
    "PathParameterSubSchema": [("required", 1, "bool", False), ("in", 2, "string", False),
                               ("description", 3, "string", False), ("name", 4, "string", False),
                               ("type", 5, "string", False), ("unique_items", 19, "bool", False)],
    "Responses": [("response_code", 1, "NamedResponseValue", True)],
    "NamedResponseValue": [("name", 1, "string", False), ("value", 2, "ResponseValue", False)],
    "ResponseValue": [("response", 1, "Response", False)],
    "Response": [("description", 1, "string", False), ("schema", 2, "SchemaItem", False)],
    "SchemaItem": [("schema", 1, "Schema", False)],
    "Definitions": [("additional_properties", 1, "NamedSchema", True)],
    "Properties": [("additional_properties", 1, "NamedSchema", True)],
    "NamedSchema": [("name", 1, "string", False), ("value", 2, "Schema", False)],
    "NamedAny": [("name", 1, "string", False), ("value", 2, "Any", False)],
    "Any": [("yaml", 2, "string", False)],
    "TypeItem": [("value", 1, "string", True)],
    "ItemsItem": [("schema", 1, "Schema", True)],
    "AdditionalPropertiesItem": [("schema", 1, "Schema", False), ("boolean", 2, "bool", False)],
    "Schema": [("_ref", 1, "string", False), ("format", 2, "string", False), ("title", 3, "string", False),
               ("description", 4, "string", False), ("default", 5, "Any", False), ("maximum", 7, "double", False),
               ("minimum", 9, "double", False), ("max_length", 11, "int64", False), ("min_length", 12, "int64", False),
               ("pattern", 13, "string", False), ("unique_items", 16, "bool", False),
               ("required", 19, "string", True), ("enum", 20, "Any", True),
               ("additional_properties", 21, "AdditionalPropertiesItem", False), ("type", 22, "TypeItem", False),
               ("items", 23, "ItemsItem", False), ("all_of", 24, "Schema", True),
               ("properties", 25, "Properties", False), ("vendor_extension", 31, "NamedAny", True)],
}
_SCALARS = {"string": descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
            "bool": descriptor_pb2.FieldDescriptorProto.TYPE_BOOL,
            "double": descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
            "int64": descriptor_pb2.FieldDescriptorProto.TYPE_INT64}


@pytest.fixture(scope="module")
def gnostic() -> dict[str, type[Message]]:
    f = descriptor_pb2.FileDescriptorProto(name="minik_test_openapiv2.proto", package="openapi.v2", syntax="proto3")
    for name, fields in _GNOSTIC.items():
        m = f.message_type.add(name=name)
        for field, number, type_, repeated in fields:
            fd = m.field.add(name=field, number=number, json_name=field,
                             label=(descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED if repeated
                                    else descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL))
            if type_ in _SCALARS:
                fd.type = _SCALARS[type_]
            else:
                fd.type = descriptor_pb2.FieldDescriptorProto.TYPE_MESSAGE
                fd.type_name = ".openapi.v2." + type_
    pool = descriptor_pool.DescriptorPool()
    pool.Add(f)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName("openapi.v2." + name))
            for name in _GNOSTIC}


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas()


def parse(cls: type[Message], data: bytes) -> dict[str, Any]:
    msg = cls()
    msg.ParseFromString(data)
    out: dict[str, Any] = json_format.MessageToDict(msg, preserving_proto_field_name=True)
    return out


def ext(named: list[dict[str, Any]]) -> dict[str, Any]:
    """NamedAny list → {name: yaml-decoded value}, as kube-openapi's VendorExtensionToMap does."""
    return {n["name"]: yaml.safe_load(n["value"]["yaml"]) for n in named}


# --- conversion ---------------------------------------------------------------------------------

def test_allof_ref_becomes_a_v2_ref_with_its_description() -> None:
    v3 = {"description": "meta", "allOf": [{"$ref": "#/components/schemas/io.k8s.X"}]}
    assert convert_schema(v3) == {"description": "meta", "$ref": "#/definitions/io.k8s.X"}


def test_v3_only_keywords_are_dropped_like_kube_does_for_crds() -> None:
    v3 = {"type": "object", "properties": {
        "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        "opt": {"type": "string", "nullable": True},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
        "list": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Y"}], "description": "y"}},
    }}
    props = convert_schema(v3)["properties"]
    assert props["port"] == {"x-kubernetes-int-or-string": True}
    assert props["opt"] == {}
    assert props["free"] == {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    assert props["list"] == {"type": "array", "items": {"$ref": "#/definitions/Y", "description": "y"}}


# --- encoding -----------------------------------------------------------------------------------

def test_schema_fields_round_trip(gnostic: dict[str, type[Message]]) -> None:
    schema = {
        "description": "d", "type": "object", "required": ["spec"],
        "properties": {
            "spec": {"$ref": "#/definitions/S", "description": "the spec"},
            "n": {"type": "integer", "format": "int32", "minimum": -1, "maximum": 10.5, "default": 3},
            "mode": {"type": "string", "enum": ["A", "B"], "pattern": "^[AB]$", "maxLength": 1},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "closed": {"type": "object", "additionalProperties": False},
        },
        "x-kubernetes-group-version-kind": [{"group": "", "kind": "ConfigMap", "version": "v1"}],
    }
    got = parse(gnostic["Schema"], encode_schema(schema))
    assert got["description"] == "d" and got["type"] == {"value": ["object"]} and got["required"] == ["spec"]
    props = {p["name"]: p["value"] for p in got["properties"]["additional_properties"]}
    assert list(props) == ["spec", "n", "mode", "tags", "labels", "closed"]   # order kept
    assert props["spec"] == {"_ref": "#/definitions/S", "description": "the spec"}
    assert props["n"]["minimum"] == -1 and props["n"]["maximum"] == 10.5 and props["n"]["format"] == "int32"
    assert yaml.safe_load(props["n"]["default"]["yaml"]) == 3
    assert [yaml.safe_load(e["yaml"]) for e in props["mode"]["enum"]] == ["A", "B"]
    assert props["mode"]["max_length"] == "1" and props["mode"]["pattern"] == "^[AB]$"   # int64 → JSON string
    assert props["tags"]["items"] == {"schema": [{"type": {"value": ["string"]}}]}
    assert ext(props["tags"]["vendor_extension"]) == {"x-kubernetes-list-type": "set"}
    assert props["labels"]["additional_properties"] == {"schema": {"type": {"value": ["string"]}}}
    # A false oneof member is still written (proto3 keeps oneof presence).
    closed = props["closed"]["additional_properties"]
    assert closed.get("boolean", False) is False and "schema" not in closed
    assert list(iter_fields(memoryview(encode_schema({"additionalProperties": False}))))[0][:2] == (21, 2)
    assert ext(got["vendor_extension"])["x-kubernetes-group-version-kind"] == [
        {"group": "", "kind": "ConfigMap", "version": "v1"}]


def test_vendor_extension_yaml_keeps_non_ascii_literal() -> None:
    # YAML cannot join JSON's \\u surrogate pairs, so the text must carry the characters themselves.
    data = encode_schema({"x-note": "caf\u00e9 \U0001F600"})
    (number, _, named), = iter_fields(memoryview(data))
    assert number == 31 and isinstance(named, memoryview)
    value = dict((n, v) for n, _, v in iter_fields(named))[2]
    assert isinstance(value, memoryview)
    yaml_field = dict((n, v) for n, _, v in iter_fields(value))[2]
    assert isinstance(yaml_field, memoryview)
    text = bytes(yaml_field).decode()
    assert "\\u" not in text and yaml.safe_load(text) == "caf\u00e9 \U0001F600"


def test_negative_int64_is_ten_byte_twos_complement(gnostic: dict[str, type[Message]]) -> None:
    assert parse(gnostic["Schema"], encode_schema({"minLength": -2}))["min_length"] == "-2"


def test_document_operations_and_parameters(gnostic: dict[str, type[Message]]) -> None:
    doc = {
        "swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": {"/api/v1/namespaces/{namespace}/configmaps/{name}": {
            "patch": {"operationId": "patchCM", "tags": ["core_v1"], "consumes": ["application/merge-patch+json"],
                      "parameters": [
                          {"name": "body", "in": "body", "required": True, "schema": {"$ref": "#/definitions/P"}},
                          {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": True}],
                      "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/CM"}}},
                      "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": {"group": "", "kind": "ConfigMap", "version": "v1"}},
            "parameters": [{"name": "name", "in": "path", "required": True, "type": "string"},
                           {"$ref": "#/parameters/pretty"}]}},
        "definitions": {"CM": {"type": "object", "properties": {}}, "P": {"type": "object"}},
    }
    got = parse(gnostic["Document"], encode_document(doc))
    assert got["swagger"] == "2.0" and got["info"] == {"title": "Kubernetes", "version": "v1.32.0"}
    (path,) = got["paths"]["path"]
    assert path["name"] == "/api/v1/namespaces/{namespace}/configmaps/{name}"
    item = path["value"]
    op = item["patch"]
    assert op["operation_id"] == "patchCM" and op["tags"] == ["core_v1"]
    assert op["consumes"] == ["application/merge-patch+json"]
    body, query = (p["parameter"] for p in op["parameters"])
    assert body["body_parameter"] == {"name": "body", "in": "body", "required": True,
                                      "schema": {"_ref": "#/definitions/P"}}
    assert query["non_body_parameter"]["query_parameter_sub_schema"] == {
        "name": "fieldValidation", "in": "query", "type": "string", "unique_items": True}
    (resp,) = op["responses"]["response_code"]
    assert resp["name"] == "200" and resp["value"]["response"]["schema"]["schema"]["_ref"] == "#/definitions/CM"
    assert ext(op["vendor_extension"]) == {"x-kubernetes-action": "patch", "x-kubernetes-group-version-kind":
                                           {"group": "", "kind": "ConfigMap", "version": "v1"}}
    path_param, ref_param = item["parameters"]
    assert path_param["parameter"]["non_body_parameter"]["path_parameter_sub_schema"] == {
        "name": "name", "in": "path", "required": True, "type": "string"}
    assert ref_param == {"json_reference": {"_ref": "#/parameters/pretty"}}
    defs = {d["name"]: d["value"] for d in got["definitions"]["additional_properties"]}
    # An empty properties message is still present: kube-openapi tells kinds from maps by it.
    assert defs["CM"] == {"type": {"value": ["object"]}, "properties": {}}


# --- the whole document, as kubectl's v2 reader sees it ------------------------------------------

def _check_readable(name: str, s: dict[str, Any], models: set[str]) -> None:
    """The rules of kube-openapi's util/proto parser, which fails the whole document otherwise."""
    if "_ref" in s:
        assert s["_ref"].startswith("#/definitions/") and s["_ref"][len("#/definitions/"):] in models, name
        assert "type" not in s and not s.get("properties", {}).get("additional_properties"), name
        return
    types = s.get("type", {}).get("value", [])
    assert len(types) <= 1, name
    if types == ["array"]:
        assert len(s.get("items", {}).get("schema", [])) == 1, name
    elif types and types != ["object"]:
        assert types[0] in ("string", "integer", "number", "boolean"), name
    for p in s.get("properties", {}).get("additional_properties", []):
        _check_readable(f"{name}.{p['name']}", p["value"], models)
    for sub in s.get("items", {}).get("schema", []):
        _check_readable(name + "[]", sub, models)
    extra = s.get("additional_properties", {}).get("schema")
    if extra is not None:
        _check_readable(name + "{}", extra, models)


def test_full_document_is_readable_by_kubectl(gnostic: dict[str, type[Message]], schemas: Schemas) -> None:
    registry = Registry()
    registry.add(make_crontab())
    openapi = OpenAPI(registry, schemas)
    openapi.set_custom_schema("stable.example.com", "v1", "CronTab", CRONTAB_SCHEMA)
    doc = OpenAPIV2(openapi).build()
    assert doc["swagger"] == "2.0"
    got = parse(gnostic["Document"], encode_document(doc))
    defs = {d["name"]: d["value"] for d in got["definitions"]["additional_properties"]}
    for name, schema in defs.items():
        _check_readable(name, schema, set(defs))
    # kubectl maps GVK → model through this extension.
    gvks = {(g["group"], g["version"], g["kind"]): name for name, s in defs.items()
            for g in ext(s.get("vendor_extension", [])).get("x-kubernetes-group-version-kind", [])}
    assert gvks[("", "v1", "ConfigMap")] == "io.k8s.api.core.v1.ConfigMap"
    assert gvks[("apps", "v1", "Deployment")] == "io.k8s.api.apps.v1.Deployment"
    assert gvks[("stable.example.com", "v1", "CronTab")] == "com.example.stable.v1.CronTab"
    # The definition the v3 closure misses (a property named x-kubernetes-validations) is there.
    assert "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.ValidationRule" in defs
    # Every served resource has paths whose operations carry action and GVK.
    paths = {p["name"]: p["value"] for p in got["paths"]["path"]}
    patch = paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert ext(patch["vendor_extension"])["x-kubernetes-group-version-kind"] == {
        "group": "apps", "version": "v1", "kind": "Deployment"}
    assert "application/strategic-merge-patch+json" in patch["consumes"]
    assert "/apis/stable.example.com/v1/namespaces/{namespace}/crontabs" in paths
    port = defs["com.example.stable.v1.CronTab"]["properties"]["additional_properties"]
    spec = next(p["value"] for p in port if p["name"] == "spec")
    port_schema = next(p["value"] for p in spec["properties"]["additional_properties"] if p["name"] == "port")
    assert "type" not in port_schema   # int-or-string: untyped in v2


# --- caching and HTTP ---------------------------------------------------------------------------

def test_cached_until_a_crd_schema_changes(schemas: Schemas) -> None:
    registry = Registry()
    registry.add(make_crontab())
    openapi = OpenAPI(registry, schemas)
    v2 = OpenAPIV2(openapi)
    first = v2.encoded(True)
    assert v2.encoded(True) is first
    openapi.set_custom_schema("stable.example.com", "v1", "CronTab", CRONTAB_SCHEMA)
    second = v2.encoded(True)
    assert second.fingerprint != first.fingerprint and b"cronSpec" in gzip.decompress(second.gzipped)
    registry.remove("stable.example.com", "v1", "crontabs")
    third = v2.encoded(True)
    assert third.fingerprint != second.fingerprint and b"cronSpec" not in gzip.decompress(third.gzipped)
    # Only one encoding is held: asking for JSON replaces the protobuf bytes.
    as_json = v2.encoded(False)
    assert json.loads(gzip.decompress(as_json.gzipped))["swagger"] == "2.0"
    assert v2._cached is as_json


async def test_respond_negotiates_and_revalidates(schemas: Schemas) -> None:
    v2 = OpenAPIV2(OpenAPI(Registry(), schemas))
    kubectl = {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf", "Accept-Encoding": "gzip"}
    resp = await v2.respond(make_mocked_request("GET", "/openapi/v2", headers=kubectl))
    assert resp.status == 200 and resp.content_type == PROTOBUF_TYPE and resp.headers["Content-Encoding"] == "gzip"
    assert isinstance(resp.body, bytes) and gzip.decompress(resp.body).startswith(b"\x0a\x032.0")
    again = await v2.respond(make_mocked_request("GET", "/openapi/v2",
                                                 headers={**kubectl, "If-None-Match": resp.headers["ETag"]}))
    assert again.status == 304
    plain = await v2.respond(make_mocked_request("GET", "/openapi/v2", headers={"Accept": "application/json"}))
    assert plain.content_type == "application/json" and "Content-Encoding" not in plain.headers
    assert isinstance(plain.body, bytes) and json.loads(plain.body)["swagger"] == "2.0"
    assert plain.headers["ETag"] != resp.headers["ETag"]


def test_accept_spellings() -> None:
    assert wants_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert wants_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf, application/json")
    assert not wants_protobuf("application/json")
