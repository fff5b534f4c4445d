"""managedFields bookkeeping for ordinary writes, the FieldsV1 codec, and its cost."""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import pytest
from patch_builders import CONFIGMAP, DEPLOYMENT, make_container, make_deployment, pod_spec

from minik.api.patch import update_managed_fields
from minik.api.patch.fieldpath import from_fields_v1, path_string, to_fields_v1, tree_with, tree_without
from minik.apis.schema import Schemas


def make_configmap(**data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cm", "namespace": "default", "uid": "u1", "resourceVersion": "1",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "data": dict(data)}


def _write(schemas: Schemas | None, old: dict[str, Any] | None, new: dict[str, Any], manager: str,
           now: str = "T1", api_version: str = "v1", subresource: str = "", schema: str = CONFIGMAP) -> dict[str, Any]:
    update_managed_fields(old, new, manager, "Update", api_version, now, subresource,
                          schemas=schemas, schema_name=schema if schemas else None)
    return new


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {e["manager"] + ("/" + e["subresource"] if e.get("subresource") else ""): e["fieldsV1"]
            for e in obj["metadata"].get("managedFields", [])}


def test_create_records_changed_fields_without_server_owned_metadata(schemas: Schemas) -> None:
    cm = make_configmap(a="1", b="2")
    cm["metadata"]["labels"] = {"x": "y"}
    _write(schemas, None, cm, "kubectl-create")
    assert cm["metadata"]["managedFields"] == [{
        "manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": "T1",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:data": {".": {}, "f:a": {}, "f:b": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}},
    }]


def test_update_moves_ownership_and_drops_empty_entries(schemas: Schemas) -> None:
    first = _write(schemas, None, make_configmap(a="1", b="2"), "creator")
    second = copy.deepcopy(first)
    second["data"]["a"] = "changed"
    _write(schemas, first, second, "editor", now="T2")
    assert _fields(second) == {"creator": {"f:data": {".": {}, "f:b": {}}}, "editor": {"f:data": {"f:a": {}}}}
    third = copy.deepcopy(second)
    third["data"]["b"] = "changed"
    _write(schemas, second, third, "editor", now="T3")
    # A member with nothing left below it is written as a plain leaf, as Kubernetes does.
    assert _fields(third) == {"creator": {"f:data": {}}, "editor": {"f:data": {"f:a": {}, "f:b": {}}}}
    assert [e["time"] for e in third["metadata"]["managedFields"]] == ["T1", "T3"]


def test_removed_fields_leave_every_set(schemas: Schemas) -> None:
    first = _write(schemas, None, make_configmap(a="1"), "creator")
    second = copy.deepcopy(first)
    del second["data"]
    _write(schemas, first, second, "editor")
    assert "managedFields" not in second["metadata"]


def test_noop_write_changes_nothing(schemas: Schemas) -> None:
    first = _write(schemas, None, make_configmap(a="1"), "creator", now="T1")
    second = copy.deepcopy(first)
    second["metadata"]["resourceVersion"] = "2"          # server-owned: not a change
    _write(schemas, first, second, "editor", now="T9")
    assert second["metadata"]["managedFields"] == first["metadata"]["managedFields"]


def test_absent_or_empty_list_keeps_old_entries_and_reset_clears_them(schemas: Schemas) -> None:
    first = _write(schemas, None, make_configmap(a="1"), "creator")
    carried: list[Any] | None
    for carried in (None, []):
        second = copy.deepcopy(first)
        second["metadata"]["managedFields"] = carried
        second["data"]["b"] = "2"
        _write(schemas, first, second, "editor")
        assert set(_fields(second)) == {"creator", "editor"}
    reset = copy.deepcopy(first)
    reset["metadata"]["managedFields"] = [{}]
    reset["data"]["b"] = "2"
    _write(schemas, first, reset, "editor")
    assert set(_fields(reset)) == {"editor"}


def test_identity_includes_api_version_and_subresource(schemas: Schemas) -> None:
    first = _write(schemas, None, make_configmap(a="1"), "m", api_version="v1")
    second = copy.deepcopy(first)
    second["data"]["b"] = "2"
    _write(schemas, first, second, "m", api_version="v2")
    third = copy.deepcopy(second)
    third["status"] = {"phase": "x"}
    _write(schemas, second, third, "m", subresource="status")
    entries = [(e["manager"], e["apiVersion"], e.get("subresource", "")) for e in third["metadata"]["managedFields"]]
    assert sorted(entries) == [("m", "v1", ""), ("m", "v1", "status"), ("m", "v2", "")]


def test_entries_sorted_apply_first(schemas: Schemas) -> None:
    cm = make_configmap(a="1")
    cm["metadata"]["managedFields"] = [{"manager": "z-apply", "operation": "Apply", "apiVersion": "v1", "time": "T5",
                                        "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:a": {}}}}]
    new = copy.deepcopy(cm)
    new["data"]["b"] = "2"
    _write(schemas, cm, new, "a-update", now="T0")
    assert [e["operation"] for e in new["metadata"]["managedFields"]] == ["Apply", "Update"]


def test_deployment_containers_keyed_by_name(schemas: Schemas) -> None:
    old = _write(schemas, None, make_deployment(make_container("nginx"), make_container("sidecar", "busybox")),
                 "kubectl-client-side-apply", api_version="apps/v1", schema=DEPLOYMENT)
    new = copy.deepcopy(old)
    pod_spec(new)["containers"][1]["image"] = "busybox:2"
    _write(schemas, old, new, "kubectl-set", api_version="apps/v1", schema=DEPLOYMENT)
    assert _fields(new)["kubectl-set"] == {"f:spec": {"f:template": {"f:spec": {"f:containers": {
        'k:{"name":"sidecar"}': {"f:image": {}}}}}}}
    csa = _fields(new)["kubectl-client-side-apply"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
    assert csa['k:{"name":"sidecar"}'] == {".": {}, "f:name": {}}


def test_without_schema_lists_are_atomic() -> None:
    old = make_deployment(make_container("nginx"))
    update_managed_fields(None, old, "m", "Update", "apps/v1", "T1")
    assert _fields(old)["m"]["f:spec"]["f:template"]["f:spec"] == {".": {}, "f:containers": {}}


@pytest.mark.parametrize("tree", [
    {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}},
    {"f:spec": {"f:containers": {'k:{"name":"a"}': {".": {}, "f:image": {}}}}},
    {"f:metadata": {"f:finalizers": {".": {}, 'v:"example.com/x"': {}}}},
])
def test_fields_v1_round_trip(tree: dict[str, Any]) -> None:
    assert to_fields_v1(from_fields_v1(tree)) == tree


def _random_paths(rng: random.Random, n: int) -> set[tuple[str, ...]]:
    elements = ["f:a", "f:b", "f:c", 'k:{"name":"x"}', 'v:"y"']
    return {tuple(rng.choice(elements) for _ in range(rng.randint(1, 4))) for _ in range(n)}


@pytest.mark.parametrize("seed", range(40))
def test_tree_edits_match_set_algebra(seed: int) -> None:
    rng = random.Random(seed)
    base, other = _random_paths(rng, rng.randint(0, 12)), _random_paths(rng, rng.randint(0, 6))
    tree = to_fields_v1(base)
    frozen = copy.deepcopy(tree)
    assert tree_without(tree, other) == to_fields_v1(base - other)
    assert tree_with(tree, other) == to_fields_v1(base | other)
    assert tree == frozen, "tree edits copy, never mutate"
    if not base & other:
        assert tree_without(tree, other) is tree


@pytest.mark.parametrize(("path", "text"), [
    (("f:spec", "f:replicas"), ".spec.replicas"),
    (("f:spec", "f:containers", 'k:{"name":"nginx"}', "f:image"), '.spec.containers[name="nginx"].image'),
    (("f:ports", 'k:{"containerPort":80,"protocol":"TCP"}'), '.ports[containerPort=80,protocol="TCP"]'),
    (("f:metadata", "f:finalizers", 'v:"a"'), '.metadata.finalizers[="a"]'),
])
def test_path_string(path: tuple[str, ...], text: str) -> None:
    assert path_string(path) == text


def test_cost_of_a_1kib_configmap_create(schemas: Schemas) -> None:
    template = make_configmap(**{f"key-{i}": "v" * 90 for i in range(10)})
    schemas.definitions  # noqa: B018 - load outside the timed loop
    runs = 300
    start = time.perf_counter()
    for _ in range(runs):
        obj = {**template, "metadata": dict(template["metadata"])}
        update_managed_fields(None, obj, "kubectl-create", "Update", "v1", "T1", schemas=schemas, schema_name=CONFIGMAP)
    per_write = (time.perf_counter() - start) / runs
    assert per_write < 0.001, f"{per_write * 1e6:.0f} µs per create"
