"""The bad-input family against a real server: every malformed, oversized, amplifying or wrongly
typed request is answered with a Kubernetes Status (never a 5xx), while another client's GET keeps
answering within a second, the daemon's memory stays bounded and the store is left exactly as it
was (same objects, same resourceVersions, same global revision).

Wrongly typed fields are generated from the v1.32 schema itself: every top-level field of Pod,
Deployment and Service, of their metadata and of their spec, gets a value of the wrong JSON type.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from minik.apis.schema import Schemas
from tests.e2e.minikd import Minik, _client_ssl

NS = "poison"
CMS = f"/api/v1/namespaces/{NS}/configmaps"
PODS = f"/api/v1/namespaces/{NS}/pods"
DEPLOYS = f"/apis/apps/v1/namespaces/{NS}/deployments"
SVCS = f"/api/v1/namespaces/{NS}/services"
WATCHED = (CMS, PODS, DEPLOYS, SVCS, f"/apis/apps/v1/namespaces/{NS}/replicasets", f"/api/v1/namespaces/{NS}/secrets")
HEARTBEAT = f"{CMS}/sentinel"
# Growth of the daemon's RSS allowed per request and for the whole family (the alias bomb once
# took it past 4 GB, a 20-copy JSON patch added ~670 MB).
RSS_PER_CASE_MB = 64
RSS_FAMILY_MB = 128
JSON = "application/json"
YAML = "application/yaml"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    body: bytes
    content_type: str
    codes: tuple[int, ...]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def snapshot(m: Minik) -> dict[str, Any]:
    """Names → resourceVersion of everything in the namespace, and the store's revision."""
    out: dict[str, Any] = {}
    for path in WATCHED:
        code, lst = m.raw_json("GET", path)
        assert code == 200, (path, lst)
        out[path] = {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in lst["items"]}
    code, lst = m.raw_json("GET", "/api/v1/namespaces")
    out["revision"] = lst["metadata"]["resourceVersion"]
    return out


def settled(m: Minik, quiet: float = 1.5, timeout: float = 60.0) -> dict[str, Any]:
    """A snapshot once nothing has changed for `quiet` seconds (controllers done with the setup)."""
    deadline = time.monotonic() + timeout
    last = snapshot(m)
    since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        cur = snapshot(m)
        if cur != last:
            last, since = cur, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return cur
    raise AssertionError(f"the store did not settle: {last}")


@pytest.fixture(scope="module")
def server(minik: Minik) -> Iterator[Minik]:
    m = minik
    assert m.raw_json("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
    assert m.raw_json("POST", CMS, {"metadata": {"name": "sentinel"}, "data": {"a": "1"}})[0] == 201
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sentinel"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "s"}},
                    "template": {"metadata": {"labels": {"app": "s"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert m.raw_json("POST", DEPLOYS, dep)[0] == 201
    svc = {"metadata": {"name": "sentinel"}, "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}]}}
    assert m.raw_json("POST", SVCS, svc)[0] == 201
    yield m


def send(m: Minik, case: Case) -> tuple[int, dict[str, Any], float]:
    """Send one bad request while another client GETs the sentinel; return its code, body and
    the slowest GET's latency."""
    assert m.proc is not None
    stop = threading.Event()
    beats: list[float] = []
    token = m.token()

    def heartbeat() -> None:
        # One kept-alive connection, as a real client has: the latency is the server's answer,
        # not a TLS handshake on a busy machine.
        conn = http.client.HTTPSConnection("127.0.0.1", m.port, context=_client_ssl(), timeout=30)
        try:
            while not stop.is_set() or len(beats) < 2:
                t0 = time.monotonic()
                conn.request("GET", HEARTBEAT, headers={"Authorization": f"Bearer {token}"})
                resp = conn.getresponse()
                resp.read()
                # A failed GET counts as never answering.
                beats.append(time.monotonic() - t0 if resp.status == 200 else float("inf"))
                time.sleep(0.02)
        finally:
            conn.close()

    t = threading.Thread(target=heartbeat, daemon=True)
    t.start()
    while not beats and t.is_alive():
        time.sleep(0.005)   # connected and answering before the bad request goes out
    try:
        code, headers, raw = m.raw(case.method, case.path, case.body, {"Content-Type": case.content_type})
    finally:
        stop.set()
        t.join(60)
    assert beats, "no heartbeat answered"
    try:
        body = json.loads(raw)
    except ValueError:
        raise AssertionError(f"{case.name}: not JSON ({code}): {raw[:300]!r}") from None
    return code, body, max(beats)


def check(m: Minik, case: Case) -> dict[str, Any]:
    assert m.proc is not None
    before = rss_mb(m.proc.pid)
    code, body, slowest = send(m, case)
    grown = rss_mb(m.proc.pid) - before
    assert code < 500, f"{case.name}: {code} {body}"
    assert body.get("kind") == "Status" and body.get("status") == "Failure", f"{case.name}: {body}"
    assert body.get("code") == code and body.get("message"), f"{case.name}: {body}"
    assert code in case.codes, f"{case.name}: {code} not in {case.codes}: {body.get('message')}"
    assert slowest < 1.0, f"{case.name}: a concurrent GET took {slowest:.2f}s"
    assert grown < RSS_PER_CASE_MB, f"{case.name}: RSS grew {grown:.0f} MB"
    return body


# ---- the family ------------------------------------------------------------------------------

def _j(obj: Any) -> bytes:
    return json.dumps(obj).encode()


BILLION_LAUGHS = (b'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: lol}\n'
                  b'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
                  + b"".join(b"%s: &%s [%s]\n" % (bytes([c]), bytes([c]), b",".join([b"*" + bytes([c - 1])] * 9))
                             for c in range(ord("b"), ord("j")))
                  + b"data: {x: *i}\n")


def decoding_cases() -> list[Case]:
    deep = b'{"metadata":{"name":"deep"},"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    deep_yaml = b"metadata: {name: deep}\ndata:\n  a: " + b"[" * 100_000 + b"]" * 100_000
    many_keys = _j({"metadata": {"name": "keys"}, "data": {f"k{i:06d}": "" for i in range(150_000)}})
    return [
        Case("truncated JSON", "POST", CMS, b'{"metadata": {"name": "x"', JSON, (400,)),
        Case("trailing garbage", "POST", CMS, b'{"metadata": {"name": "x"}} }', JSON, (400,)),
        Case("duplicate field", "POST", CMS, b'{"metadata": {"name": "x"}, "metadata": {"name": "y"}}', JSON, (400,)),
        Case("NaN", "POST", CMS, b'{"metadata": {"name": "x"}, "data": {"a": NaN}}', JSON, (400,)),
        Case("Infinity", "POST", CMS, b'{"metadata": {"name": "x"}, "data": {"a": -Infinity}}', JSON, (400,)),
        Case("1e999", "POST", CMS, b'{"metadata": {"name": "x"}, "data": {"a": 1e999}}', JSON, (400,)),
        Case("1e999 replicas", "POST", DEPLOYS, b'{"metadata": {"name": "x"}, "spec": {"replicas": 1e999}}', JSON, (400,)),
        Case("JSON depth bomb", "POST", CMS, deep, JSON, (400,)),
        Case("invalid UTF-8", "POST", CMS, b'{"metadata": {"name": "x"}, "data": {"a": "\xff\xfe"}}', JSON, (400,)),
        Case("lone surrogate value", "POST", CMS, b'{"metadata": {"name": "x"}, "data": {"a": "\\ud800"}}', JSON, (400,)),
        Case("lone surrogate label key", "POST", CMS, b'{"metadata": {"name": "x", "labels": {"\\udc00": "v"}}}', JSON, (400,)),
        Case("array body", "POST", CMS, b"[1, 2]", JSON, (400,)),
        Case("null body", "POST", CMS, b"null", JSON, (400,)),
        Case("metadata 1", "POST", CMS, b'{"metadata": 1}', JSON, (400, 422)),
        Case("malformed YAML", "POST", CMS, b"a: [1, 2\nb: }", YAML, (400,)),
        Case("alias bomb", "POST", CMS, BILLION_LAUGHS, YAML, (400,)),
        Case("YAML depth bomb", "POST", CMS, deep_yaml, YAML, (400,)),
        Case("!!float abc", "POST", CMS, b"metadata: {name: f}\ndata: {a: !!float abc}\n", YAML, (400,)),
        Case("custom tag", "POST", CMS, b"metadata: {name: f}\ndata: {a: !shell rm}\n", YAML, (400,)),
        Case("!!binary", "POST", CMS, b"metadata: {name: f}\ndata: {a: !!binary aGVsbG8=}\n", YAML, (400,)),
        Case("!!python", "POST", CMS, b"metadata: {name: f}\ndata: {a: !!python/object/apply:os.system [id]}\n", YAML, (400,)),
        Case("YAML .inf", "POST", DEPLOYS, b"metadata: {name: f}\nspec: {replicas: .inf}\n", YAML, (400,)),
        Case("YAML .nan", "POST", CMS, b"metadata: {name: f}\ndata: {a: .nan}\n", YAML, (400,)),
        Case("YAML invalid UTF-8", "POST", CMS, b"metadata: {name: f}\ndata: {a: \xff}\n", YAML, (400,)),
        Case("YAML surrogate", "POST", CMS, b'metadata: {name: f}\ndata: {a: "\\ud800"}\n', YAML, (400,)),
        Case("two YAML documents", "POST", CMS, b"metadata: {name: f}\n---\nmetadata: {name: g}\n", YAML, (400,)),
        Case("150,000 keys", "POST", CMS, many_keys, JSON, (413,)),
        Case("malformed label key", "POST", CMS, _j({"metadata": {"name": "l", "labels": {"bad key\n\u00e4/": "x"}}}), JSON, (422,)),
        Case("malformed label key (YAML)", "POST", CMS, 'metadata: {name: l, labels: {"a/b/c\\u00e4": x}}\n'.encode(), YAML, (422,)),
    ]


def patch_cases() -> list[Case]:
    amplify = _j([{"op": "add", "path": "/data/blob", "value": "x" * 100}]
                 + [{"op": "copy", "from": "/data", "path": f"/metadata/annotations/c{i}"} for i in range(20)])
    doubling = _j([{"op": "add", "path": "/metadata/annotations", "value": {"x": "y" * 1000}}]
                  + [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/{i}"} for i in range(30)])
    many_ops = _j([{"op": "test", "path": "/kind", "value": "ConfigMap"}] * 10_001)
    return [
        Case("JSON patch copy amplification", "PATCH", HEARTBEAT, amplify, JSONPATCH, (413, 422)),
        Case("JSON patch doubling", "PATCH", HEARTBEAT, doubling, JSONPATCH, (413,)),
        Case("JSON patch 10,001 ops", "PATCH", HEARTBEAT, many_ops, JSONPATCH, (413,)),
        Case("JSON patch not a list", "PATCH", HEARTBEAT, b'{"op": "add"}', JSONPATCH, (400,)),
        Case("JSON patch depth bomb", "PATCH", HEARTBEAT, b'[{"op":"add","path":"/data/x","value":' + b"[" * 50_000 + b"]" * 50_000 + b"}]", JSONPATCH, (400,)),
        Case("merge patch metadata 1", "PATCH", HEARTBEAT, b'{"metadata": 1}', MERGE, (422,)),
        Case("merge patch number data", "PATCH", HEARTBEAT, b'{"data": {"a": 1}}', MERGE, (422,)),
        Case("merge patch finalizers 1", "PATCH", HEARTBEAT, b'{"metadata": {"finalizers": 1}}', MERGE, (422,)),
        Case("merge patch ownerReferences 1", "PATCH", HEARTBEAT, b'{"metadata": {"ownerReferences": 1}}', MERGE, (422,)),
        Case("merge patch array", "PATCH", HEARTBEAT, b"[1]", MERGE, (400,)),
        Case("strategic replicas string", "PATCH", f"{DEPLOYS}/sentinel", b'{"spec": {"replicas": "x"}}', STRATEGIC, (422,)),
        Case("strategic containers 1", "PATCH", f"{DEPLOYS}/sentinel", b'{"spec": {"template": {"spec": {"containers": 1}}}}', STRATEGIC, (400, 422)),
        Case("strategic ports string", "PATCH", f"{SVCS}/sentinel", b'{"spec": {"ports": "80"}}', STRATEGIC, (400, 422)),
        Case("apply alias bomb", "PATCH", f"{CMS}/sentinel?fieldManager=t", BILLION_LAUGHS, APPLY, (400,)),
        Case("apply wrong type", "PATCH", f"{CMS}/sentinel?fieldManager=t",
             b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sentinel}\ndata: {a: 1}\n", APPLY, (422,)),
        Case("apply metadata list", "PATCH", f"{CMS}/sentinel?fieldManager=t",
             b"apiVersion: v1\nkind: ConfigMap\nmetadata: [1]\n", APPLY, (400, 422)),
        Case("PUT wrong type", "PUT", HEARTBEAT, _j({"metadata": {"name": "sentinel"}, "data": {"a": ["x"]}}), JSON, (422,)),
        Case("status wrong type", "PUT", f"{DEPLOYS}/sentinel/status",
             _j({"metadata": {"name": "sentinel"}, "status": {"replicas": "many"}}), JSON, (422,)),
        Case("DeleteOptions wrong type", "DELETE", HEARTBEAT, b'{"gracePeriodSeconds": "soon"}', JSON, (400,)),
        Case("DeleteOptions preconditions", "DELETE", HEARTBEAT, b'{"preconditions": 1}', JSON, (400,)),
    ]


def _wrong_value(schemas: Schemas, prop: dict[str, Any]) -> Any:
    """A value of the wrong JSON type for a property of the schema."""
    ref = prop.get("$ref")
    if isinstance(ref, str):
        name = Schemas.ref_name(ref)
        if name.endswith(("intstr.IntOrString", "resource.Quantity")):
            return {"wrong": True}
        target = schemas.definition(name) or {}
        if "properties" in target or target.get("type") in ("object", ["object", "null"]):
            return 1
        return _wrong_value(schemas, target)
    types = prop.get("type")
    kinds = {types} if isinstance(types, str) else set(types or ())
    kinds.discard("null")
    kind = kinds.pop() if len(kinds) == 1 else "object"
    return {"string": 12345, "integer": "s", "number": "s", "boolean": "s", "array": 1, "object": 1}[kind]


def _fields(schemas: Schemas, name: str) -> list[tuple[str, dict[str, Any]]]:
    props = (schemas.definition(name) or {}).get("properties") or {}
    return sorted(props.items())


TYPED = {
    "Pod": (PODS, "io.k8s.api.core.v1.Pod", "io.k8s.api.core.v1.PodSpec",
            {"containers": [{"name": "c", "image": "busybox"}]}),
    "Deployment": (DEPLOYS, "io.k8s.api.apps.v1.Deployment", "io.k8s.api.apps.v1.DeploymentSpec",
                   {"selector": {"matchLabels": {"app": "w"}},
                    "template": {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}),
    "Service": (SVCS, "io.k8s.api.core.v1.Service", "io.k8s.api.core.v1.ServiceSpec", {"ports": [{"port": 80}]}),
}


def wrong_type_cases() -> list[Case]:
    schemas = Schemas()
    out: list[Case] = []
    for kind, (path, root, spec_def, spec) in TYPED.items():
        base = {"apiVersion": "apps/v1" if kind == "Deployment" else "v1", "kind": kind}
        for field, prop in _fields(schemas, root):
            obj = dict(base, metadata={"name": "wrong"}, spec=spec)
            obj[field] = _wrong_value(schemas, prop)
            out.append(Case(f"{kind}.{field}", "POST", path, _j(obj), JSON, (400, 422)))
        for field, prop in _fields(schemas, "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"):
            obj = dict(base, metadata={"name": "wrong", field: _wrong_value(schemas, prop)}, spec=spec)
            if field == "name":
                obj["metadata"] = {"name": 12345}
            out.append(Case(f"{kind}.metadata.{field}", "POST", path, _j(obj), JSON, (400, 422)))
        for field, prop in _fields(schemas, spec_def):
            obj = dict(base, metadata={"name": "wrong"}, spec=dict(spec, **{field: _wrong_value(schemas, prop)}))
            out.append(Case(f"{kind}.spec.{field}", "POST", path, _j(obj), JSON, (422,)))
    return out


# ---- tests -----------------------------------------------------------------------------------

def run_family(m: Minik, cases: list[Case]) -> list[dict[str, Any]]:
    assert m.proc is not None
    before = settled(m)
    rss_before = rss_mb(m.proc.pid)
    bodies = [check(m, case) for case in cases]
    assert snapshot(m) == before, "the store changed"
    assert rss_mb(m.proc.pid) - rss_before < RSS_FAMILY_MB
    return bodies


def test_decoding_family(server: Minik) -> None:
    bodies = run_family(server, decoding_cases())
    by_name = dict(zip((c.name for c in decoding_cases()), bodies))
    assert "nested too deeply" in by_name["JSON depth bomb"]["message"]
    assert "excessive aliasing" in by_name["alias bomb"]["message"]
    assert by_name["150,000 keys"]["reason"] == "RequestEntityTooLarge"
    label = by_name["malformed label key"]
    assert label["reason"] == "Invalid" and label["details"]["causes"][0]["field"].startswith("metadata.labels")


def test_patch_family(server: Minik) -> None:
    bodies = run_family(server, patch_cases())
    by_name = dict(zip((c.name for c in patch_cases()), bodies))
    causes = by_name["merge patch metadata 1"]["details"]["causes"]
    assert causes[0]["field"] == "metadata" and "must be of type object" in causes[0]["message"]
    assert by_name["strategic replicas string"]["details"]["causes"][0]["field"] == "spec.replicas"


def test_wrong_types_in_every_top_level_field(server: Minik) -> None:
    cases = wrong_type_cases()
    assert len(cases) > 100
    bodies = run_family(server, cases)
    for case, body in zip(cases, bodies):
        if case.name.count(".") == 2 and case.codes == (422,):
            # spec fields: 422 naming the field, worded like kube's structural validation.
            field = case.name.split(".", 1)[1]
            assert any(c["field"].startswith(field) for c in body["details"]["causes"]), (case.name, body["message"])


def test_poison_refused_with_kube_wording(server: Minik) -> None:
    m = server
    before = settled(m)
    pod = {"metadata": {"name": "prio"}, "spec": {"priority": "s", "containers": [{"name": "c", "image": "busybox"}]}}
    code, st = m.raw_json("POST", PODS, pod)
    assert code == 422
    assert st["message"] == ('Pod "prio" is invalid: spec.priority: Invalid value: "string": '
                             'spec.priority in body must be of type integer: "string"')
    assert st["details"]["causes"] == [{"reason": "FieldValueTypeInvalid", "field": "spec.priority",
                                        "message": 'Invalid value: "string": spec.priority in body must be of type integer: "string"'}]
    for md in ({"ownerReferences": 1}, {"finalizers": 1}):
        code, st = m.raw_json("POST", CMS, {"metadata": {"name": "p", **md}})
        assert code == 422, st
        assert st["details"]["causes"][0]["field"] == "metadata." + next(iter(md))
    code, st = m.raw_json("POST", CMS, {"metadata": {"name": "p"}, "data": {"n": 1, "f": 2.5}})
    assert code == 422 and {c["field"] for c in st["details"]["causes"]} == {"data.n", "data.f"}
    # kubectl, too, gets the Status back.
    r = m.kubectl("create", "-f", "-", input=json.dumps(dict(pod, apiVersion="v1", kind="Pod", metadata={"name": "prio", "namespace": NS})),
                  check=False)
    assert r.returncode != 0 and "spec.priority in body must be of type integer" in r.stderr
    assert snapshot(m) == before


def test_yaml_dates_stay_text_and_warnings_are_safe(server: Minik) -> None:
    m = server
    code, _, raw = m.raw("POST", CMS, b"metadata: {name: dated}\ndata: {day: 2024-01-01, n: 2024-01-01t10:00:00Z}\n",
                         {"Content-Type": YAML})
    assert code == 201, raw
    assert json.loads(raw)["data"] == {"day": "2024-01-01", "n": "2024-01-01t10:00:00Z"}
    # An unknown field whose name holds a newline and non-ASCII: a Warning header, escaped.
    code, headers, raw = m.raw("POST", CMS + "?dryRun=All", _j({"metadata": {"name": "w"}, "d\r\n\u00e4": 1}),
                               {"Content-Type": JSON})
    assert code == 201, raw
    assert "unknown field" in headers.get("Warning", "") and "\n" not in headers["Warning"]
    assert m.raw("DELETE", CMS + "/dated")[0] == 200

