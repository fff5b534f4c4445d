"""NetworkPolicy ipBlock.except validation (kube-apiserver 1.32's ValidateIPBlock)."""

from __future__ import annotations

from typing import Any

import pytest

from minik.apis.defaults import apply_defaults
from minik.apis.registry import Registry
from minik.apis.validation import validate

REG = Registry()


def causes(block: dict[str, Any]) -> list[tuple[str, str, str]]:
    t = REG.by_kind("networking.k8s.io", "NetworkPolicy")
    assert t is not None
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "default"},
           "spec": {"podSelector": {}, "ingress": [{"from": [{"ipBlock": block}]}]}}
    apply_defaults(t, obj)
    return [(c.field, c.reason, c.message) for c in validate(t, obj, None)]


FIELD = "spec.ingress[0].from[0].ipBlock.except[0]"


@pytest.mark.parametrize("block, expected", [
    ({"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16", "10.2.3.4/32"]}, []),
    ({"cidr": "10.0.0.0/8", "except": ["10.0.0.0/8"]}, [(FIELD, "FieldValueInvalid", "must be a strict subset of `cidr`")]),
    ({"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}, [(FIELD, "FieldValueInvalid", "must be a strict subset of `cidr`")]),
    ({"cidr": "10.0.0.0/16", "except": ["10.0.0.0/8"]}, [(FIELD, "FieldValueInvalid", "must be a strict subset of `cidr`")]),
    ({"cidr": "10.0.0.0/8", "except": ["nope"]},
     [(FIELD, "FieldValueInvalid", "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)")]),
])
def test_except_must_be_strict_subsets(block: dict[str, Any], expected: list[tuple[str, str, str]]) -> None:
    got = [c for c in causes(block) if c[0] == FIELD]
    assert [(f, r) for f, r, _ in got] == [(f, r) for f, r, _ in expected]
    for (_, _, msg), (_, _, want) in zip(got, expected):
        assert want in msg
