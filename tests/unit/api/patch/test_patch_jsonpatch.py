"""JSON patch: every operation, pointer escaping, and the 400/422 split Kubernetes makes."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minik.api.patch import JsonPatchFailed, json_patch
from minik.apis import errors

DOC: dict[str, Any] = {"metadata": {"labels": {"a/b": "1", "c~d": "2"}}, "spec": {"ports": [1, 2, 3], "replicas": 1}}

APPLIES: list[tuple[str, list[dict[str, Any]], Any]] = [
    ("add field", [{"op": "add", "path": "/spec/paused", "value": True}],
     {**DOC, "spec": {**DOC["spec"], "paused": True}}),
    ("add replaces field", [{"op": "add", "path": "/spec/replicas", "value": 3}],
     {**DOC, "spec": {**DOC["spec"], "replicas": 3}}),
    ("add inserts at index", [{"op": "add", "path": "/spec/ports/1", "value": 9}],
     {**DOC, "spec": {**DOC["spec"], "ports": [1, 9, 2, 3]}}),
    ("add at end index", [{"op": "add", "path": "/spec/ports/3", "value": 9}],
     {**DOC, "spec": {**DOC["spec"], "ports": [1, 2, 3, 9]}}),
    ("add dash appends", [{"op": "add", "path": "/spec/ports/-", "value": 9}],
     {**DOC, "spec": {**DOC["spec"], "ports": [1, 2, 3, 9]}}),
    ("remove field", [{"op": "remove", "path": "/spec/replicas"}], {**DOC, "spec": {"ports": [1, 2, 3]}}),
    ("remove item", [{"op": "remove", "path": "/spec/ports/0"}], {**DOC, "spec": {**DOC["spec"], "ports": [2, 3]}}),
    ("replace", [{"op": "replace", "path": "/spec/replicas", "value": 5}],
     {**DOC, "spec": {**DOC["spec"], "replicas": 5}}),
    ("replace item", [{"op": "replace", "path": "/spec/ports/2", "value": 7}],
     {**DOC, "spec": {**DOC["spec"], "ports": [1, 2, 7]}}),
    ("escaped ~1", [{"op": "replace", "path": "/metadata/labels/a~1b", "value": "x"}],
     {**DOC, "metadata": {"labels": {"a/b": "x", "c~d": "2"}}}),
    ("escaped ~0", [{"op": "remove", "path": "/metadata/labels/c~0d"}],
     {**DOC, "metadata": {"labels": {"a/b": "1"}}}),
    ("move", [{"op": "move", "from": "/spec/replicas", "path": "/spec/count"}],
     {**DOC, "spec": {"ports": [1, 2, 3], "count": 1}}),
    ("move within list", [{"op": "move", "from": "/spec/ports/0", "path": "/spec/ports/-"}],
     {**DOC, "spec": {**DOC["spec"], "ports": [2, 3, 1]}}),
    ("copy", [{"op": "copy", "from": "/spec/ports", "path": "/spec/more"}],
     {**DOC, "spec": {**DOC["spec"], "more": [1, 2, 3]}}),
    ("test passes", [{"op": "test", "path": "/spec/replicas", "value": 1}], DOC),
    ("test then replace", [{"op": "test", "path": "/spec/ports", "value": [1, 2, 3]},
                           {"op": "replace", "path": "/spec/ports", "value": []}],
     {**DOC, "spec": {**DOC["spec"], "ports": []}}),
    ("whole document", [{"op": "replace", "path": "", "value": {"x": 1}}], {"x": 1}),
    ("empty patch", [], DOC),
]


@pytest.mark.parametrize(("ops", "expected"), [(ops, exp) for _, ops, exp in APPLIES], ids=[n for n, _, _ in APPLIES])
def test_operations(ops: list[dict[str, Any]], expected: Any) -> None:
    before = copy.deepcopy(DOC)
    assert json_patch(DOC, ops) == expected
    assert DOC == before


def test_copy_is_independent() -> None:
    out = json_patch(DOC, [{"op": "copy", "from": "/spec/ports", "path": "/spec/more"}])
    out["spec"]["more"].append(4)
    assert out["spec"]["ports"] == [1, 2, 3]


MALFORMED: list[tuple[str, Any]] = [
    ("not a list", {"op": "add"}),
    ("op not object", ["add"]),
    ("unknown op", [{"op": "frob", "path": "/a"}]),
    ("missing op", [{"path": "/a"}]),
    ("missing path", [{"op": "remove"}]),
    ("missing value", [{"op": "add", "path": "/a"}]),
    ("missing from", [{"op": "copy", "path": "/a"}]),
    ("path without slash", [{"op": "remove", "path": "spec"}]),
    ("bad escape", [{"op": "remove", "path": "/a~2b"}]),
    ("path not string", [{"op": "remove", "path": 3}]),
]


@pytest.mark.parametrize("ops", [ops for _, ops in MALFORMED], ids=[n for n, _ in MALFORMED])
def test_malformed_is_bad_request(ops: Any) -> None:
    with pytest.raises(errors.BadRequest):
        json_patch(DOC, ops)


NOT_APPLICABLE: list[tuple[str, list[dict[str, Any]], str]] = [
    ("test fails", [{"op": "test", "path": "/spec/replicas", "value": 2}], "/spec/replicas"),
    ("test bool is not number", [{"op": "test", "path": "/spec/replicas", "value": True}], "/spec/replicas"),
    ("remove missing", [{"op": "remove", "path": "/spec/nope"}], "/spec/nope"),
    ("replace missing", [{"op": "replace", "path": "/spec/nope", "value": 1}], "/spec/nope"),
    ("add under missing parent", [{"op": "add", "path": "/status/x/y", "value": 1}], "/status/x/y"),
    ("index out of range", [{"op": "add", "path": "/spec/ports/9", "value": 1}], "/spec/ports/9"),
    ("leading zero index", [{"op": "replace", "path": "/spec/ports/01", "value": 1}], "/spec/ports/01"),
    ("dash only for add", [{"op": "remove", "path": "/spec/ports/-"}], "/spec/ports/-"),
    ("move into own child", [{"op": "move", "from": "/spec", "path": "/spec/x"}], "/spec/x"),
    ("copy from missing", [{"op": "copy", "from": "/nope", "path": "/x"}], "/nope"),
]


@pytest.mark.parametrize(("ops", "path"), [(o, p) for _, o, p in NOT_APPLICABLE], ids=[n for n, _, _ in NOT_APPLICABLE])
def test_not_applicable_is_422_naming_the_path(ops: list[dict[str, Any]], path: str) -> None:
    with pytest.raises(JsonPatchFailed) as info:
        json_patch(DOC, ops)
    assert info.value.code == 422 and info.value.reason == "Invalid"
    assert path in info.value.message
    assert info.value.message.startswith("the server rejected our request due to an error in our request")


def test_failed_patch_leaves_input_alone() -> None:
    before = copy.deepcopy(DOC)
    with pytest.raises(JsonPatchFailed):
        json_patch(DOC, [{"op": "remove", "path": "/spec/replicas"}, {"op": "test", "path": "/spec/replicas", "value": 1}])
    assert DOC == before


def test_copy_amplification_is_bounded_by_bytes_produced() -> None:
    from minik.api.patch.jsonpatch import MAX_COPY_BYTES
    from minik.apis import errors as api_errors
    doc = {"metadata": {"name": "x", "annotations": {"a": "y" * 1000}}}
    ops = [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/{i}"} for i in range(30)]
    with pytest.raises(api_errors.RequestEntityTooLarge) as err:
        json_patch(doc, ops)
    assert str(MAX_COPY_BYTES) in err.value.message
    # A few copies of a small value are fine.
    out = json_patch(doc, ops[:3])
    assert set(out["metadata"]["annotations"]) == {"a", "0", "1", "2"}
