"""`/openapi/v2` through the real kubectl: `kind: List` files (what `get -o yaml` writes) validate
against it, so they can be created and applied, and unknown fields in them are refused."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import yaml

from tests.e2e.minikd import Minik

LABEL = "suite=openapi-v2"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.v2.example.com"},
    "spec": {"group": "v2.example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                 "type": "object", "properties": {"spec": {"type": "object", "properties": {
                     "size": {"type": "integer"}, "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}}}]},
}


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"suite": "openapi-v2"}},
            "data": data}


def as_list(*items: Mapping[str, object]) -> str:
    text: str = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": [dict(i) for i in items]})
    return text


def names(minik: Minik, resource: str) -> list[str]:
    out = minik.kubectl("get", resource, "-l", LABEL, "-o", "jsonpath={.items[*].metadata.name}").stdout
    return sorted(out.split())


def test_get_yaml_list_round_trips_through_create_and_apply(minik: Minik) -> None:
    minik.kubectl("apply", "-f", "-", input=as_list(configmap("one", a="1"), configmap("two", b="2")))
    listed = minik.kubectl("get", "configmap", "-l", LABEL, "-o", "yaml").stdout
    assert yaml.safe_load(listed)["kind"] == "List"

    minik.kubectl("delete", "configmap", "-l", LABEL)
    out = minik.kubectl("create", "-f", "-", input=listed).stdout
    assert "configmap/one created" in out and "configmap/two created" in out
    assert names(minik, "configmap") == ["one", "two"]

    minik.kubectl("delete", "configmap", "-l", LABEL)
    out = minik.kubectl("apply", "-f", "-", input=listed).stdout
    assert "configmap/one created" in out and "configmap/two created" in out
    got = json.loads(minik.kubectl("get", "configmap", "two", "-o", "json").stdout)
    assert got["data"] == {"b": "2"}


def test_unknown_field_in_a_list_item_is_refused(minik: Minik) -> None:
    bad = configmap("bad", x="1")
    bad["bogus"] = True
    for verb in ("create", "apply"):
        r = minik.kubectl(verb, "-f", "-", input=as_list(configmap("good-" + verb), bad), check=False)
        assert r.returncode == 1, r.stdout
        # kubectl's own (v2 schema) validation refuses the whole file before sending anything.
        assert 'unknown field "bogus"' in r.stderr and "io.k8s.api.core.v1.ConfigMap" in r.stderr, r.stderr
    assert "bad" not in names(minik, "configmap") and "good-create" not in names(minik, "configmap")
    # --validate=false still goes through (the server ignores the field).
    minik.kubectl("create", "--validate=false", "-f", "-", input=as_list(bad))
    assert "bad" in names(minik, "configmap")


def test_custom_resources_in_a_list(minik: Minik) -> None:
    minik.kubectl("apply", "-f", "-", input=yaml.safe_dump(CRD))
    minik.kubectl("wait", "--for=condition=Established", "crd/widgets.v2.example.com", "--timeout=20s")
    ok = {"apiVersion": "v2.example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
          "spec": {"size": 3, "extra": {"free": "form"}}}
    deadline = time.time() + 10
    while True:   # a fresh discovery may lag the Established condition briefly
        r = minik.kubectl("create", "-f", "-", input=as_list(ok), check=False)
        if r.returncode == 0 or time.time() > deadline:
            break
        time.sleep(0.3)
    assert "widget.v2.example.com/w1 created" in r.stdout, r.stderr
    typo = {**ok, "metadata": {"name": "w2"}, "spec": {"size": 3, "sise": 4}}
    r = minik.kubectl("create", "-f", "-", input=as_list(typo), check=False)
    assert r.returncode == 1 and 'unknown field "sise"' in r.stderr, r.stderr


def test_document_formats_and_explain(minik: Minik) -> None:
    code, headers, body = minik.raw("GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert code == 200 and headers["Content-Type"].startswith("application/json")
    doc = json.loads(body)
    assert doc["swagger"] == "2.0"
    assert doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    code, headers, body = minik.raw("GET", "/openapi/v2", headers={
        "Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert code == 200 and headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert body.startswith(b"\x0a\x032.0")   # Document.swagger = "2.0"
    code, headers, _ = minik.raw("GET", "/openapi/v2", headers={"Accept": "application/json", "If-None-Match": headers["ETag"]})
    assert code == 200   # the ETag names the encoding: the protobuf one does not match the JSON body
    assert "replicas" in minik.kubectl("explain", "deployment.spec.replicas").stdout
