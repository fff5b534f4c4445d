"""DefaultIngressClass admission: which Ingresses get the default class, and which class."""

from __future__ import annotations

from typing import Any

import pytest

from minik.apis.ingressclass import default_class_name, set_default_class

Obj = dict[str, Any]


def cls(name: str, default: bool = True, created: str = "2026-01-01T00:00:00Z") -> Obj:
    ann = {"ingressclass.kubernetes.io/is-default-class": "true" if default else "false"}
    return {"metadata": {"name": name, "annotations": ann, "creationTimestamp": created}, "spec": {"controller": "x.io/c"}}


@pytest.mark.parametrize(("classes", "want"), [
    ([], None),
    ([cls("a", default=False)], None),
    ([cls("minik"), cls("other", default=False)], "minik"),
    ([cls("old"), cls("new", created="2026-06-01T00:00:00Z")], "new"),     # several defaults: the newest
    ([cls("b"), cls("a")], "b"),                                            # same second: by name
])
def test_default_class_name(classes: list[Obj], want: str | None) -> None:
    assert default_class_name(classes) == want


def test_set_default_class_only_when_no_class_is_named() -> None:
    classes = [cls("minik")]
    ing: Obj = {"metadata": {"name": "i"}, "spec": {"rules": []}}
    set_default_class(ing, classes)
    assert ing["spec"]["ingressClassName"] == "minik"
    named: Obj = {"metadata": {"name": "i"}, "spec": {"ingressClassName": "nginx"}}
    set_default_class(named, classes)
    assert named["spec"]["ingressClassName"] == "nginx"
    legacy: Obj = {"metadata": {"name": "i", "annotations": {"kubernetes.io/ingress.class": "nginx"}}, "spec": {}}
    set_default_class(legacy, classes)
    assert "ingressClassName" not in legacy["spec"]
    nodefault: Obj = {"metadata": {"name": "i"}, "spec": {}}
    set_default_class(nodefault, [cls("x", default=False)])
    assert "ingressClassName" not in nodefault["spec"]
