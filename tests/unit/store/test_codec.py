"""The store's decoder: equal small subtrees are one shared object, without changing what the
objects encode to, and objects and their metadata stay private."""

from __future__ import annotations

import json

from minik.store import codec


def _svc(name: str, uid: str, ip: str) -> str:
    return json.dumps({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": "7"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}],
                 "ipFamilies": ["IPv4"], "clusterIP": ip, "clusterIPs": [ip]},
        "status": {"loadBalancer": {}},
    })


def test_equal_small_subtrees_are_shared_and_encode_unchanged() -> None:
    a = codec.decode(_svc("a", "u-1", "10.0.0.1"))
    b = codec.decode(_svc("b", "u-2", "10.0.0.2"))
    assert a["spec"]["selector"] is b["spec"]["selector"]
    assert a["spec"]["ports"] is b["spec"]["ports"]
    assert a["spec"]["ipFamilies"] is b["spec"]["ipFamilies"]
    assert a["status"] is b["status"]
    assert a["spec"]["clusterIPs"] is not b["spec"]["clusterIPs"]
    assert json.dumps(a) == json.dumps(json.loads(_svc("a", "u-1", "10.0.0.1")))
    assert json.dumps(b) == json.dumps(json.loads(_svc("b", "u-2", "10.0.0.2")))


def test_objects_and_metadata_are_never_shared() -> None:
    text = '{"metadata":{"name":"x","resourceVersion":"3"},"data":{"k":"v"}}'
    a, b = codec.decode(text), codec.decode(text)
    assert a is not b and a["metadata"] is not b["metadata"]
    assert a["data"] is b["data"]
    a["metadata"]["resourceVersion"] = "4"     # what the store may do to its own copy
    assert b["metadata"]["resourceVersion"] == "3"


def test_scalars_of_different_types_are_not_conflated() -> None:
    values = ["true", "1", "1.0", "-0.0", "0.0", "null", '"1"']
    decoded = [codec.decode('{"metadata":{"name":"x"},"v":{"a":%s},"l":[%s]}' % (v, v)) for v in values]
    for v, obj in zip(values, decoded):
        assert json.dumps(obj["v"]["a"]) == json.dumps(json.loads(v))
        assert json.dumps(obj["l"]) == json.dumps(json.loads(f"[{v}]"))
    assert len({id(o["v"]) for o in decoded}) == len(values)


def test_key_order_is_kept_and_distinguishes() -> None:
    a = codec.decode('{"metadata":{"name":"a"},"s":{"x":1,"y":2}}')
    b = codec.decode('{"metadata":{"name":"b"},"s":{"y":2,"x":1}}')
    assert a["s"] is not b["s"]
    assert list(b["s"]) == ["y", "x"]


def test_large_and_nested_unshared_subtrees_stay_private() -> None:
    big = {f"k{i}": i for i in range(codec.SHARE_MAX + 1)}
    text = json.dumps({"metadata": {"name": "x"}, "big": big, "outer": {"inner": big}})
    a, b = codec.decode(text), codec.decode(text)
    assert a["big"] is not b["big"]
    assert a["outer"] is not b["outer"]   # a child that is not shared keeps its parent private


def test_the_table_is_bounded() -> None:
    for i in range(codec.SHARED_CACHE + 50):
        codec.decode('{"metadata":{"name":"x"},"v":{"n":%d}}' % i)
    assert len(codec._shared) <= codec.SHARED_CACHE
    assert len(codec._shared_keys) == len(codec._shared)


def test_managed_fields_trees_are_shared_between_objects() -> None:
    def obj(name: str, uid: str) -> str:
        return json.dumps({"metadata": {"name": name, "uid": uid, "managedFields": [
            {"manager": "m", "operation": "Update", "apiVersion": "v1", "time": "2026-01-01T00:00:00Z",
             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {f"f:k{i}": {} for i in range(12)}}}]}})
    a, b = codec.decode(obj("a", "1")), codec.decode(obj("b", "2"))
    assert a["metadata"]["managedFields"][0]["fieldsV1"] is b["metadata"]["managedFields"][0]["fieldsV1"]
