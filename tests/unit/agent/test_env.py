"""Container environment resolution and $(VAR) expansion."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from minik.agent.env import EnvError, EnvSources, expand, field_value, referenced_objects, resolve_env, resource_value

POD: dict[str, Any] = {
    "metadata": {"name": "web", "namespace": "ns1", "uid": "u-1", "labels": {"app": "x"},
                 "annotations": {"a": "b"}},
    "spec": {"nodeName": "n1", "serviceAccountName": "sa",
             "containers": [{"name": "main", "resources": {"limits": {"memory": "64Mi", "cpu": "250m"},
                                                           "requests": {"cpu": "100m"}}}]},
}
CM = {"data": {"k1": "v1", "k2": "v2", "bad key": "x"}}
SEC = {"data": {"pw": base64.b64encode(b"secret").decode()}}
SRC = EnvSources({"cm": CM}, {"sec": SEC}, "10.0.0.5", "192.168.1.2", {"cpu": "4", "memory": "8Gi"},
                 {"KUBERNETES_SERVICE_HOST": "10.43.0.1"})


@pytest.mark.parametrize("text,expected", [
    ("$(A)", "1"), ("x$(A)y$(B)", "x1y2"), ("$(MISSING)", "$(MISSING)"), ("$$(A)", "$(A)"),
    ("$$", "$"), ("$(A", "$(A"), ("a$b", "a$b"), ("", ""),
])
def test_expand(text: str, expected: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expected


def test_resolve_env_order_and_sources() -> None:
    container = {
        "name": "main",
        "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "P_"}, {"secretRef": {"name": "sec"}}],
        "env": [
            {"name": "PLAIN", "value": "x-$(P_k1)"},
            {"name": "FROM_CM", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k2"}}},
            {"name": "FROM_SEC", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "LBL", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "x", "optional": True}}},
        ],
    }
    env = dict(resolve_env(POD, container, SRC))
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["P_k1"] == "v1" and "P_bad key" not in env
    assert env["pw"] == "secret"
    assert env["PLAIN"] == "x-v1"
    assert env["FROM_CM"] == "v2" and env["FROM_SEC"] == "secret"
    assert env["NODE"] == "n1" and env["IP"] == "10.0.0.5" and env["LBL"] == "x"
    assert env["MEM"] == "64"
    assert "OPT" not in env


@pytest.mark.parametrize("env,message", [
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "none", "key": "k"}}}], 'configmap "none"'),
    ([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "nokey"}}}], 'key "nokey"'),
    ([{"name": "X", "valueFrom": {"secretKeyRef": {"name": "none", "key": "k"}}}], 'secret "none"'),
    ([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "spec.bogus"}}}], "unsupported fieldRef"),
])
def test_resolve_env_errors(env: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(EnvError, match=message):
        resolve_env(POD, {"name": "main", "env": env}, SRC)


@pytest.mark.parametrize("resource,divisor,expected", [
    ("limits.cpu", None, "1"),          # 250m rounds up to 1 core
    ("limits.cpu", "1m", "250"),
    ("requests.cpu", "1m", "100"),
    ("limits.memory", "1Mi", "64"),
    ("requests.memory", None, "0"),
])
def test_resource_value(resource: str, divisor: Any, expected: str) -> None:
    assert resource_value(POD, "main", resource, divisor, {}) == expected


def test_resource_value_unset_limit_is_node_allocatable() -> None:
    pod = {"spec": {"containers": [{"name": "c"}]}}
    assert resource_value(pod, "c", "limits.cpu", None, {"cpu": "4"}) == "4"


def test_field_value_labels_block_and_refs() -> None:
    assert field_value(POD, "metadata.labels", "", "") == 'app="x"'
    assert field_value(POD, "metadata.annotations['a']", "", "") == "b"
    cms, secrets = referenced_objects({"envFrom": [{"configMapRef": {"name": "a"}}],
                                       "env": [{"name": "x", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
    assert cms == {"a"} and secrets == {"s"}


# ---- Service links (kubelet's getServiceEnvVarMap) ---------------------------------------------------
def _svc(ns: str, name: str, ip: str, *ports: tuple[str, int, str]) -> dict[str, Any]:
    return {"metadata": {"namespace": ns, "name": name},
            "spec": {"clusterIP": ip, "ports": [{"name": n, "port": p, "protocol": pr} for n, p, pr in ports]}}


def test_service_links_for_the_pods_namespace_and_the_master_service() -> None:
    from minik.agent.env import service_link_env
    services = [
        _svc("default", "kubernetes", "10.43.0.1", ("https", 443, "TCP")),
        _svc("default", "other", "10.43.0.9", ("", 80, "TCP")),
        _svc("shop", "redis-main", "10.43.0.5", ("db", 6379, "TCP"), ("metrics", 9121, "UDP")),
        _svc("shop", "headless", "None", ("", 80, "TCP")),
        _svc("shop", "ext", "", ("", 80, "TCP")),
    ]
    env = service_link_env(services, "shop", True)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.43.0.1"
    assert env["KUBERNETES_PORT_443_TCP_ADDR"] == "10.43.0.1"
    assert env["REDIS_MAIN_SERVICE_HOST"] == "10.43.0.5"
    assert env["REDIS_MAIN_SERVICE_PORT"] == "6379"
    assert env["REDIS_MAIN_SERVICE_PORT_DB"] == "6379"
    assert env["REDIS_MAIN_SERVICE_PORT_METRICS"] == "9121"
    assert env["REDIS_MAIN_PORT"] == "tcp://10.43.0.5:6379"
    assert env["REDIS_MAIN_PORT_9121_UDP"] == "udp://10.43.0.5:9121"
    assert env["REDIS_MAIN_PORT_9121_UDP_PROTO"] == "udp"
    assert env["REDIS_MAIN_PORT_6379_TCP_PORT"] == "6379"
    assert not any(k.startswith(("OTHER_", "HEADLESS_", "EXT_")) for k in env)
    off = service_link_env(services, "shop", False)
    assert set(off) == {k for k in env if k.startswith("KUBERNETES_")}
    # A Service of the pod's namespace named like a master one wins.
    mine = service_link_env([*services, _svc("shop", "kubernetes", "10.43.0.77", ("", 8443, "TCP"))], "shop", True)
    assert mine["KUBERNETES_SERVICE_HOST"] == "10.43.0.77"
