"""JSON merge patch: the RFC 7386 appendix A table, plus the no-mutation promise."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minik.api.patch import json_merge_patch

RFC7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7386_EXAMPLES)
def test_rfc7386_examples(target: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


@pytest.mark.parametrize(("target", "patch", "expected"), [
    # kubectl scale on /scale
    ({"spec": {"replicas": 1}, "status": {"replicas": 1}}, {"spec": {"replicas": 3}},
     {"spec": {"replicas": 3}, "status": {"replicas": 1}}),
    # kubectl label x=y / label x-
    ({"metadata": {"labels": {"a": "1"}}}, {"metadata": {"labels": {"x": "y", "a": None}}},
     {"metadata": {"labels": {"x": "y"}}}),
    # finalizers emptied with null (the object is then deleted by the service)
    ({"metadata": {"finalizers": ["f"]}}, {"metadata": {"finalizers": None}}, {"metadata": {}}),
])
def test_kubernetes_uses(target: Any, patch: Any, expected: Any) -> None:
    assert json_merge_patch(target, patch) == expected


def test_inputs_are_not_mutated() -> None:
    target: dict[str, Any] = {"a": {"b": [1, {"c": 2}]}, "d": 1}
    patch: dict[str, Any] = {"a": {"b": [3], "x": {"y": None}}, "d": None}
    before = (copy.deepcopy(target), copy.deepcopy(patch))
    out = json_merge_patch(target, patch)
    assert (target, patch) == before
    out["a"]["x"]["z"] = 1
    assert patch["a"]["x"] == {"y": None}
