"""OpenAPI v3 documents: what kubectl's validation check, explain and apply read from them."""

from __future__ import annotations

import json
from typing import Any

import pytest

from minik.api.openapi import OpenAPI, custom_schema_name
from minik.apis.registry import Registry, ResourceType
from minik.apis.schema import Schemas

CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {"type": "object", "description": "the spec", "properties": {
            "cronSpec": {"type": "string"},
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
        }},
    },
}


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    return Schemas()


def make_crontab() -> ResourceType:
    return ResourceType("stable.example.com", "v1", "CronTab", "crontabs", True, ("ct",), custom=True)


def make_openapi(schemas: Schemas, *extra: ResourceType) -> OpenAPI:
    registry = Registry()
    for t in extra:
        registry.add(t)
    return OpenAPI(registry, schemas)


def load(api: OpenAPI, group: str, version: str) -> dict[str, Any]:
    found = api.document(group, version)
    assert found is not None
    body, _ = found
    doc: dict[str, Any] = json.loads(body)
    return doc


def all_refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        refs = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for key, value in node.items():
            if not key.startswith("x-"):
                refs.extend(all_refs(value))
        return refs
    if isinstance(node, list):
        return [r for item in node for r in all_refs(item)]
    return []


def patch_ops(doc: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [item["patch"] for item in doc["paths"].values()
            if "patch" in item and item["patch"]["x-kubernetes-group-version-kind"]["kind"] == kind]


def test_index_lists_every_group_version_with_a_hash(schemas: Schemas) -> None:
    api = make_openapi(schemas, make_crontab())
    paths = api.index()["paths"]
    assert {"api/v1", "apis/apps/v1", "apis/autoscaling/v1", "apis/autoscaling/v2",
            "apis/stable.example.com/v1"} <= set(paths)
    url = paths["apis/apps/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/apps/v1?hash=")
    found = api.document("apps", "v1")
    assert found is not None and url.endswith("hash=" + found[1])
    assert found[1] == found[1].upper() and len(found[1]) == 128


def test_unknown_group_version_is_none(schemas: Schemas) -> None:
    assert make_openapi(schemas).document("nope.example.com", "v1") is None


def test_apps_v1_has_deployment_schema_with_gvk(schemas: Schemas) -> None:
    doc = load(make_openapi(schemas), "apps", "v1")
    assert doc["openapi"].startswith("3.")
    deployment = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["type"] == "object"
    assert "enum" not in deployment["properties"]["apiVersion"]
    spec = deployment["properties"]["spec"]
    assert spec["allOf"] == [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    assert spec["description"]


def test_patch_operation_supports_field_validation(schemas: Schemas) -> None:
    doc = load(make_openapi(schemas), "apps", "v1")
    ops = patch_ops(doc, "Deployment")
    assert ops
    # kubectl stops at the first patch op with a matching GVK, so every one must carry it.
    for op in ops:
        assert op["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
        assert {"name": "fieldValidation", "in": "query"}.items() <= next(
            p for p in op["parameters"] if p["name"] == "fieldValidation").items()
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    assert {"get", "put", "patch", "delete"} <= set(item)
    collection = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]
    assert {"get", "post"} <= set(collection)
    assert any(p["name"] == "fieldValidation" for p in collection["post"]["parameters"])
    assert any(p["name"] == "fieldValidation" for p in item["put"]["parameters"])


@pytest.mark.parametrize("group,version", [("", "v1"), ("apps", "v1"), ("batch", "v1"),
                                           ("apiextensions.k8s.io", "v1"), ("autoscaling", "v2")])
def test_every_ref_resolves_inside_the_document(schemas: Schemas, group: str, version: str) -> None:
    doc = load(make_openapi(schemas), group, version)
    components = doc["components"]["schemas"]
    refs = set(all_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in components, ref


def test_schemas_are_converted_to_openapi_3(schemas: Schemas) -> None:
    doc = load(make_openapi(schemas), "", "v1")
    components = doc["components"]["schemas"]
    assert "$defs" not in json.dumps(doc)
    containers = components["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["type"] == "array"
    assert containers["items"] == {"$ref": "#/components/schemas/io.k8s.api.core.v1.Container"}
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert components["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["format"] == "int-or-string"
    labels = components["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["labels"]
    assert labels["additionalProperties"] == {"type": "string"}
    pod_paths = [p for p in doc["paths"] if "/pods" in p]
    assert "/api/v1/namespaces/{namespace}/pods/{name}/status" in pod_paths
    assert "io.k8s.api.apps.v1.Deployment" not in components


def test_custom_resource_document(schemas: Schemas) -> None:
    api = make_openapi(schemas, make_crontab())
    api.set_custom_schema("stable.example.com", "v1", "CronTab", CRONTAB_SCHEMA)
    doc = load(api, "stable.example.com", "v1")
    name = custom_schema_name("stable.example.com", "v1", "CronTab")
    assert name == "com.example.stable.v1.CronTab"
    schema = doc["components"]["schemas"][name]
    assert schema["x-kubernetes-group-version-kind"] == [{"group": "stable.example.com", "kind": "CronTab", "version": "v1"}]
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"}
    assert schema["properties"]["metadata"]["allOf"][0]["$ref"].endswith("meta.v1.ObjectMeta")
    assert schema["properties"]["spec"]["properties"]["cronSpec"] == {"type": "string"}
    assert patch_ops(doc, "CronTab")
    for ref in all_refs(doc):
        assert ref.removeprefix("#/components/schemas/") in doc["components"]["schemas"]


def test_custom_schema_change_changes_hash_and_document(schemas: Schemas) -> None:
    api = make_openapi(schemas, make_crontab())
    before = api.document("stable.example.com", "v1")
    assert before is not None
    api.set_custom_schema("stable.example.com", "v1", "CronTab", CRONTAB_SCHEMA)
    after = api.document("stable.example.com", "v1")
    assert after is not None and after[1] != before[1] and after[0] != before[0]
    assert api.index()["paths"]["apis/stable.example.com/v1"]["serverRelativeURL"].endswith(after[1])


def test_documents_are_cached_until_the_registry_changes(schemas: Schemas) -> None:
    registry = Registry()
    api = OpenAPI(registry, schemas)
    first = api.document("apps", "v1")
    assert first is not None and api.document("apps", "v1") is not None
    assert api.document("apps", "v1")[0] is first[0]  # type: ignore[index]
    registry.remove("apps", "v1", "controllerrevisions")
    second = api.document("apps", "v1")
    assert second is not None and second[1] != first[1]
    assert b"controllerrevisions" not in second[0]
    api.invalidate()
    third = api.document("apps", "v1")
    assert third is not None and third[1] == second[1] and third[0] == second[0]


def test_hash_is_stable_across_instances(schemas: Schemas) -> None:
    a = make_openapi(schemas).index()
    b = make_openapi(schemas).index()
    assert a == b


def _delete_ref(doc: dict[str, Any], path: str) -> str:
    schema = doc["paths"][path]["delete"]["responses"]["200"]["content"]["application/json"]["schema"]
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def test_delete_response_is_the_object_where_kube_returns_it(schemas: Schemas) -> None:
    # Generated clients decode DELETE bodies by this type (ReturnDeletedObject in kube's storage).
    core = load(make_openapi(schemas), "", "v1")
    assert _delete_ref(core, "/api/v1/namespaces/{namespace}/services/{name}") == "io.k8s.api.core.v1.Service"
    assert _delete_ref(core, "/api/v1/namespaces/{namespace}/pods/{name}") == "io.k8s.api.core.v1.Pod"
    assert _delete_ref(core, "/api/v1/namespaces/{namespace}/configmaps/{name}") == "io.k8s.apimachinery.pkg.apis.meta.v1.Status"
    apps = load(make_openapi(schemas), "apps", "v1")
    assert _delete_ref(apps, "/apis/apps/v1/namespaces/{namespace}/deployments/{name}") == "io.k8s.apimachinery.pkg.apis.meta.v1.Status"


def test_custom_resources_never_return_the_deleted_object() -> None:
    assert not ResourceType("", "v1", "Service", "services", True, custom=True).returns_deleted_object
    assert ResourceType("", "v1", "Service", "services", True).returns_deleted_object
