"""Status bodies as kube-apiserver writes them: key order of the Go structs, "\n" at the end.

Clients compare these texts byte for byte (the Python client's utils.FailToCreateError carries the
raw body and its own e2e suite asserts it), so order is part of the contract.
"""

from __future__ import annotations

from minik.api import status as st
from minik.api.handlers import json_response
from minik.apis.errors import PatchConflict
from minik.apis.registry import Registry, ResourceType


def _rt(group: str, plural: str) -> ResourceType:
    rt = Registry().lookup(group, "v1", plural)
    assert rt is not None
    return rt


def test_already_exists_renders_like_kube() -> None:
    deployments = _rt("apps", "deployments")
    resp = json_response(st.already_exists(deployments, "web").body(), 409)
    assert resp.body == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
        b'"message":"deployments.apps \\"web\\" already exists","reason":"AlreadyExists",'
        b'"details":{"name":"web","group":"apps","kind":"deployments"},"code":409}\n')


def test_core_details_have_no_group_and_code_comes_last() -> None:
    services = _rt("", "services")
    body = st.not_found(services, "web").body()
    assert list(body) == ["kind", "apiVersion", "metadata", "status", "message", "reason", "details", "code"]
    assert list(body["details"]) == ["name", "kind"]


def test_body_without_details_still_ends_with_code() -> None:
    assert list(st.status_body(404, "NotFound", "gone")) == [
        "kind", "apiVersion", "metadata", "status", "message", "reason", "code"]


def test_success_details_in_struct_order() -> None:
    deployments = _rt("apps", "deployments")
    assert list(st.success(deployments, "web", "u-1")["details"]) == ["name", "group", "kind", "uid"]


def test_patch_conflict_causes_follow_name_group_kind() -> None:
    deployments = _rt("apps", "deployments")
    err = st.from_exception(PatchConflict(), deployments, "web")
    assert err is not None and err.details is not None
    assert list(err.details) == ["name", "group", "kind", "causes"]
