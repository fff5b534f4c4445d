"""Label and field selectors: parse, match, render, and kube's error texts."""

from __future__ import annotations

from typing import Any

import pytest

from minik.apis.errors import BadRequest
from minik.apis.registry import Registry
from minik.apis.selectors import (LabelSelector, check_field_selector, parse_field_selector, parse_label_selector)


@pytest.mark.parametrize("text, rendered", [
    ("app=web", "app=web"),
    ("app==web", "app==web"),
    ("app!=web", "app!=web"),
    ("tier in (b,a)", "tier in (a,b)"),
    ("tier notin (a)", "tier notin (a)"),
    ("app", "app"),
    ("!app", "!app"),
    ("tier in (a,b),app=web", "app=web,tier in (a,b)"),
    (" app = web , !x ", "app=web,!x"),
    ("example.com/role=db", "example.com/role=db"),
    ("app=", "app="),
    ("x in ()", "x in ()"),
    ("n>5", "n>5"),
    ("", ""),
])
def test_parse_and_render(text: str, rendered: str) -> None:
    assert str(parse_label_selector(text)) == rendered


@pytest.mark.parametrize("text, labels, ok", [
    ("app=web", {"app": "web"}, True),
    ("app=web", {"app": "db"}, False),
    ("app=web", {}, False),
    ("app!=web", {}, True),
    ("app!=web", {"app": "web"}, False),
    ("tier in (a,b)", {"tier": "b"}, True),
    ("tier in (a,b)", {"tier": "c"}, False),
    ("tier notin (a,b)", {}, True),
    ("tier notin (a,b)", {"tier": "a"}, False),
    ("app", {"app": ""}, True),
    ("app", {}, False),
    ("!app", {}, True),
    ("!app", {"app": "x"}, False),
    ("app=web,tier=fe", {"app": "web", "tier": "fe"}, True),
    ("app=web,tier=fe", {"app": "web"}, False),
    ("n>5", {"n": "6"}, True),
    ("n<5", {"n": "x"}, False),
    ("", {"anything": "x"}, True),
])
def test_matches(text: str, labels: dict[str, str], ok: bool) -> None:
    assert parse_label_selector(text).matches(labels) is ok


@pytest.mark.parametrize("text, message", [
    ("app in a", "unable to parse requirement: found 'a' expected: '('"),
    ("a,", "found '', expected: identifier after ','"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("=x", "found '=', expected: !, identifier, or 'end of string'"),
    ("app=web=x", "found '=', expected: ',' or 'end of string'"),
    ("Bad Key=x", "unable to parse requirement: found 'Key', expected: in, notin, =, ==, !=, gt, lt"),
    ("a/b/c=x", "unable to parse requirement: <nil>: Invalid value: \"a/b/c\": a qualified name must consist of "
                "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
                "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
                "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
                "(e.g. 'example.com/MyName')"),
    ("app=a b", "found 'b', expected: ',' or 'end of string'"),
    ("app=-x", "unable to parse requirement: values[0][app]: Invalid value: \"-x\": a valid label must be an empty "
               "string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
               "alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
               "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ("n>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value "
            "must be an integer"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as e:
        parse_label_selector(text)
    assert e.value.code == 400
    assert e.value.message == message


def test_from_api_and_empty() -> None:
    sel = LabelSelector.from_api({"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["b", "a"]},
                                                       {"key": "canary", "operator": "DoesNotExist"}]})
    assert str(sel) == "app=web,!canary,tier in (a,b)"
    assert sel.matches({"app": "web", "tier": "a"})
    assert not sel.matches({"app": "web", "tier": "a", "canary": "1"})
    everything = LabelSelector.from_api({})
    assert everything.empty and everything.matches({}) and str(everything) == ""
    nothing = LabelSelector.from_api(None)
    assert not nothing.empty and not nothing.matches({"a": "b"})
    with pytest.raises(BadRequest, match='"Foo" is not a valid label selector operator'):
        LabelSelector.from_api({"matchExpressions": [{"key": "a", "operator": "Foo"}]})
    assert LabelSelector.from_api(sel.to_api()) == sel


def _pod(**kw: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "namespace": "default"},
                           "spec": {"nodeName": "n1", "restartPolicy": "Always"}, "status": {"phase": "Running",
                                                                                            "podIPs": [{"ip": "10.42.0.5"}]}}
    pod.update(kw)
    return pod


@pytest.mark.parametrize("text, ok", [
    ("metadata.name=web-1", True),
    ("metadata.name==web-1", True),
    ("metadata.name!=web-1", False),
    ("metadata.namespace=default,spec.nodeName=n1", True),
    ("spec.nodeName=n2", False),
    ("spec.nodeName=", False),
    ("status.phase!=Pending", True),
    ("status.podIP=10.42.0.5", True),
    ("spec.hostNetwork=false", True),
    ("", True),
])
def test_field_selector_matches(text: str, ok: bool) -> None:
    assert parse_field_selector(text).matches(_pod()) is ok


def test_field_selector_escapes_and_errors() -> None:
    sel = parse_field_selector(r"metadata.name=a\,b")
    assert sel.terms[0].value == "a,b"
    assert str(sel) == r"metadata.name=a\,b"
    with pytest.raises(BadRequest, match="invalid selector: 'foo'; can't understand 'foo'"):
        parse_field_selector("foo")
    with pytest.raises(BadRequest, match="invalid field selector: unescaped character ="):
        parse_field_selector("a=b=c")
    with pytest.raises(BadRequest, match="invalid escape sequence"):
        parse_field_selector(r"a=b\x")


@pytest.mark.parametrize("group, kind, field, ok", [
    ("", "Pod", "spec.nodeName", True),
    ("", "Pod", "status.phase", True),
    ("", "Pod", "spec.foo", False),
    ("", "ConfigMap", "metadata.name", True),
    ("", "ConfigMap", "data.x", False),
    ("", "Secret", "type", True),
    ("", "Event", "involvedObject.name", True),
    ("", "Node", "spec.unschedulable", True),
    ("", "Namespace", "status.phase", True),
    ("apps", "ReplicaSet", "status.replicas", True),
    ("apps", "Deployment", "status.replicas", False),
    ("batch", "Job", "status.successful", True),
])
def test_check_field_selector(group: str, kind: str, field: str, ok: bool) -> None:
    rt = Registry().by_kind(group, kind)
    assert rt is not None
    sel = parse_field_selector(f"{field}=x")
    if ok:
        check_field_selector(rt, sel)
    else:
        with pytest.raises(BadRequest) as e:
            check_field_selector(rt, sel)
        assert e.value.message == f"field label not supported: {field}"


def test_event_and_secret_fields() -> None:
    ev = {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "e", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web-1"}, "reason": "Scheduled", "type": "Normal",
          "source": {"component": "default-scheduler"}}
    assert parse_field_selector("involvedObject.kind=Pod,involvedObject.name=web-1,type=Normal").matches(ev)
    assert parse_field_selector("source=default-scheduler").matches(ev)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls"}
    assert parse_field_selector("type=kubernetes.io/tls").matches(secret)
