"""Tests for minik.apis.protobuf.

The fixtures are real request bodies captured from kubectl 1.32 (`kubectl create …` against a
logging HTTPS server); each `<name>.json` beside a `<name>.bin` is what the same command prints
with `--dry-run=client -o json`, i.e. what the JSON API would have received.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from minik.apis.errors import BadRequest, UnsupportedMediaType
from minik.apis.protobuf import decode_k8s_protobuf, iter_fields, read_varint

FIXTURES = Path(__file__).parent / "fixtures"
PAIRED = sorted(p.stem for p in FIXTURES.glob("*.json"))


def _normalize(obj: Any) -> Any:
    """The JSON form minus what the decoder leaves out on purpose: null times and status."""
    if isinstance(obj, dict):
        return {k: _normalize(v) for k, v in obj.items()
                if not (k == "creationTimestamp" and v is None)}
    if isinstance(obj, list):
        return [_normalize(x) for x in obj]
    return obj


@pytest.mark.parametrize("name", PAIRED)
def test_captured_kubectl_bodies_decode_to_the_json_form(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    expected.pop("status", None)
    got = decode_k8s_protobuf((FIXTURES / f"{name}.bin").read_bytes())
    assert got == _normalize(expected)


def test_fixture_set_covers_the_commands_from_the_brief() -> None:
    for name in ("create_namespace", "create_configmap", "create_secret_generic", "create_serviceaccount",
                 "create_deployment"):
        assert name in PAIRED


def test_namespace_has_no_empty_string_keys() -> None:
    got = decode_k8s_protobuf((FIXTURES / "create_namespace.bin").read_bytes())
    assert got == {"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": "x"}, "spec": {}}


def test_binary_configmap_data_is_base64() -> None:
    got = decode_k8s_protobuf((FIXTURES / "create_configmap_files.bin").read_bytes())
    assert got["binaryData"] == {"bin": "AAH/Ymlu"}
    assert got["data"]["txt"] == "hello\n"
    assert got["metadata"]["namespace"] == "kube-system"


def test_secret_data_is_base64() -> None:
    got = decode_k8s_protobuf((FIXTURES / "create_secret_generic.bin").read_bytes())
    assert got["data"] == {"p": "cQ=="}


def test_explicit_zero_replicas_is_kept() -> None:
    got = decode_k8s_protobuf((FIXTURES / "create_deployment_zero.bin").read_bytes())
    assert got["spec"]["replicas"] == 0


def test_rbac_core_group_empty_string_is_kept_in_lists() -> None:
    got = decode_k8s_protobuf((FIXTURES / "create_role.bin").read_bytes())
    assert got["rules"] == [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]


@pytest.mark.parametrize("name,expected", [
    ("create_token_plain", {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
                            "metadata": {}, "spec": {}}),
    ("create_token_full", {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
                           "spec": {"audiences": ["api"], "expirationSeconds": 3600,
                                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "123"}}}),
    ("auth_can_i", {"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1", "metadata": {},
                    "spec": {"resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods"}}}),
    ("auth_can_i_list", {"kind": "SelfSubjectRulesReview", "apiVersion": "authorization.k8s.io/v1",
                         "metadata": {}, "spec": {"namespace": "kube-system"}}),
])
def test_captured_bodies_without_a_json_twin(name: str, expected: dict[str, Any]) -> None:
    assert decode_k8s_protobuf((FIXTURES / f"{name}.bin").read_bytes()) == expected


# ---- a tiny encoder, to build messages kubectl's generators never send --------------------

def _varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        byte = v & 0x7F
        v >>= 7
        if v:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vi(number: int, v: int) -> bytes:
    return _varint(number << 3) + _varint(v)


def ld(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def entry(number: int, key: str, value: bytes | str) -> bytes:
    return ld(number, ld(1, key) + ld(2, value))


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + ld(1, ld(1, api_version) + ld(2, kind)) + ld(2, raw) + ld(3, "") + ld(4, "")


def test_full_deployment() -> None:
    meta = (ld(1, "web") + ld(2, "web-") + ld(3, "prod") + ld(4, "") + ld(5, "") + ld(6, "") + vi(7, 0)
            + ld(8, b"") + entry(11, "app", "web") + entry(12, "note", "x")
            + ld(13, ld(1, "ReplicaSet") + ld(3, "rs") + ld(4, "u-1") + ld(5, "apps/v1") + vi(6, 1))
            + ld(14, "example.com/fin"))
    container = (ld(1, "app") + ld(2, "nginx:1.27") + ld(3, "sh") + ld(3, "-c") + ld(4, "echo hi") + ld(5, "/w")
                 + ld(6, ld(1, "http") + vi(2, 0) + vi(3, 80) + ld(4, "TCP") + ld(5, ""))
                 + ld(7, ld(1, "A") + ld(2, "1"))
                 + ld(7, ld(1, "B") + ld(2, "") + ld(3, ld(3, ld(1, ld(1, "cm")) + ld(2, "k"))))
                 + ld(8, entry(1, "cpu", ld(1, "500m")) + entry(2, "memory", ld(1, "64Mi")))
                 + ld(13, "/dev/termination-log") + ld(14, "IfNotPresent") + vi(16, 0) + vi(17, 0) + vi(18, 0)
                 + ld(20, "File")
                 + ld(11, ld(1, ld(2, ld(1, "/healthz") + ld(2, vi(1, 1) + ld(3, "http")))) + vi(2, 3) + vi(4, 5)))
    pod_spec = (ld(2, container) + ld(3, "Always") + vi(4, 30) + ld(6, "ClusterFirst") + ld(8, "")
                + vi(11, 0) + entry(7, "disk", "ssd")
                + ld(1, ld(1, "data") + ld(2, ld(2, ld(1, "") + ld(2, ld(1, "1Gi")))))
                + ld(22, ld(1, "k") + ld(2, "Exists") + ld(4, "NoSchedule")))
    selector = entry(1, "app", "web") + ld(2, ld(1, "tier") + ld(2, "In") + ld(3, "a") + ld(3, "b"))
    strategy = ld(1, "RollingUpdate") + ld(2, ld(1, vi(1, 1) + ld(3, "25%")) + ld(2, vi(1, 0) + vi(2, 2)))
    spec = (vi(1, 3) + ld(2, selector) + ld(3, ld(1, entry(11, "app", "web")) + ld(2, pod_spec)) + ld(4, strategy)
            + vi(5, 0) + vi(6, 10) + vi(7, 0) + vi(9, 600))
    status = vi(1, 5) + vi(2, 5)
    got = decode_k8s_protobuf(envelope("apps/v1", "Deployment", ld(1, meta) + ld(2, spec) + ld(3, status)))
    assert got == {
        "kind": "Deployment", "apiVersion": "apps/v1",
        "metadata": {"name": "web", "generateName": "web-", "namespace": "prod", "labels": {"app": "web"},
                     "annotations": {"note": "x"}, "finalizers": ["example.com/fin"],
                     "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": "u-1", "apiVersion": "apps/v1",
                                          "controller": True}]},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"},
                         "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                "containers": [{
                    "name": "app", "image": "nginx:1.27", "command": ["sh", "-c"], "args": ["echo hi"],
                    "workingDir": "/w", "ports": [{"name": "http", "containerPort": 80, "protocol": "TCP"}],
                    "env": [{"name": "A", "value": "1"},
                            {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}],
                    "resources": {"limits": {"cpu": "500m"}, "requests": {"memory": "64Mi"}},
                    "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                    "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 3,
                                       "periodSeconds": 5},
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
                "nodeSelector": {"disk": "ssd"},
                "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                "tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule"}],
            }},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": 2}},
            "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600,
        },
    }


def test_times_negative_ints_and_immutable_false() -> None:
    meta = ld(1, "c") + ld(8, vi(1, 1700000000)) + ld(9, vi(1, 1700000060) + vi(2, 5)) + vi(10, 0)
    got = decode_k8s_protobuf(envelope("v1", "ConfigMap", ld(1, meta) + vi(4, 0)))
    assert got["metadata"] == {"name": "c", "creationTimestamp": "2023-11-14T22:13:20Z",
                               "deletionTimestamp": "2023-11-14T22:14:20Z", "deletionGracePeriodSeconds": 0}
    assert got["immutable"] is False
    pc = decode_k8s_protobuf(envelope("scheduling.k8s.io/v1", "PriorityClass", ld(1, ld(1, "low")) + vi(2, -5)))
    assert pc["value"] == -5


def test_secret_string_data_and_type() -> None:
    raw = ld(1, ld(1, "s")) + entry(4, "user", "admin") + entry(2, "bin", b"\x00\xff") + ld(3, "Opaque") + vi(5, 1)
    got = decode_k8s_protobuf(envelope("v1", "Secret", raw))
    assert got == {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "s"}, "stringData": {"user": "admin"},
                   "data": {"bin": "AP8="}, "type": "Opaque", "immutable": True}


def test_unknown_fields_are_skipped() -> None:
    raw = ld(1, ld(1, "sa") + ld(99, "future") + vi(98, 1)) + vi(50, 7)
    got = decode_k8s_protobuf(envelope("v1", "ServiceAccount", raw))
    assert got == {"kind": "ServiceAccount", "apiVersion": "v1", "metadata": {"name": "sa"}}


def test_unknown_kind_is_unsupported_media_type_naming_it() -> None:
    with pytest.raises(UnsupportedMediaType) as err:
        decode_k8s_protobuf(envelope("v1", "Pod", ld(1, ld(1, "p"))))
    assert "Pod" in err.value.message


def test_missing_magic_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        decode_k8s_protobuf(b'{"kind":"Namespace"}')


@pytest.mark.parametrize("body", [
    b"k8s\x00\x0a\x05\x0a\x02v1",            # length runs past the end
    b"k8s\x00\x12\x01\x08\x80",              # raw ends inside a varint
    b"k8s\x00\x0b",                          # wire type 3 (groups) is not used by Kubernetes
])
def test_malformed_bodies_are_bad_request(body: bytes) -> None:
    with pytest.raises((BadRequest, UnsupportedMediaType)):
        decode_k8s_protobuf(body)


def test_truncated_raw_message_is_bad_request() -> None:
    with pytest.raises(BadRequest):
        decode_k8s_protobuf(envelope("v1", "Namespace", b"\x0a\x10\x0a\x01x"))


def test_wire_reader_handles_all_wire_types() -> None:
    buf = memoryview(vi(1, 300) + b"\x11" + (7).to_bytes(8, "little") + ld(3, "ab") + b"\x25" + (9).to_bytes(4, "little"))
    got = [(n, w, v if isinstance(v, int) else bytes(v)) for n, w, v in iter_fields(buf)]
    assert got == [(1, 0, 300), (2, 1, 7), (3, 2, b"ab"), (4, 5, 9)]
    assert read_varint(memoryview(_varint(-1)), 0) == ((1 << 64) - 1, 10)
