"""Bad input gets the right Kubernetes Status and leaves the store unchanged."""

from __future__ import annotations

import json

from tests.e2e.minikd import Minik

CMS = "/api/v1/namespaces/default/configmaps"


def names(m: Minik) -> set[str]:
    code, lst = m.raw_json("GET", CMS)
    assert code == 200
    # kube-root-ca.crt is published by the namespace controller, asynchronously: not ours to count.
    return {i["metadata"]["name"] for i in lst["items"]} - {"kube-root-ca.crt"}


def test_malformed_and_unknown(minik: Minik) -> None:
    before = names(minik)
    code, _, body = minik.raw("POST", CMS, b'{"metadata": {"name": "x"', {"Content-Type": "application/json"})
    st = json.loads(body)
    assert code == 400 and st["kind"] == "Status" and st["reason"] == "BadRequest"
    code, _, body = minik.raw("POST", CMS, b"a: [1, 2\nb: }", {"Content-Type": "application/yaml"})
    assert code == 400
    code, st = minik.raw_json("POST", CMS + "?fieldValidation=Strict", {"metadata": {"name": "u"}, "data": {}, "dta": {}})
    assert code == 400 and 'unknown field "dta"' in st["message"]
    code, _, body = minik.raw("POST", CMS, b"{}", {"Content-Type": "application/xml"})
    assert code == 415 and json.loads(body)["reason"] == "UnsupportedMediaType"
    big = json.dumps({"metadata": {"name": "big"}, "data": {"a": "x" * (3 * 1024 * 1024 + 10)}}).encode()
    code, _, body = minik.raw("POST", CMS, big, {"Content-Type": "application/json"})
    assert code == 413
    assert names(minik) == before
    # Warn (the default without the parameter) drops the field and says so.
    code, hdrs, body = minik.raw("POST", CMS, json.dumps({"metadata": {"name": "warned"}, "dta": 1}).encode(),
                                 {"Content-Type": "application/json"})
    assert code == 201 and "dta" not in json.loads(body)
    assert "unknown field" in hdrs.get("Warning", "")


def test_invalid_names_and_fields(minik: Minik) -> None:
    before = names(minik)
    code, st = minik.raw_json("POST", CMS, {"metadata": {"name": "Bad_Name"}})
    assert code == 422 and st["reason"] == "Invalid"
    assert st["details"]["causes"][0]["field"] == "metadata.name"
    code, st = minik.raw_json("POST", CMS, {"metadata": {}})
    assert code == 422 and "metadata.name" in st["message"]
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    code, st = minik.raw_json("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    assert code == 422 and any(c["field"] == "spec.template.metadata.labels" for c in st["details"]["causes"])
    code, st = minik.raw_json("POST", CMS, {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "k"}})
    assert code == 400
    code, st = minik.raw_json("POST", "/api/v1/namespaces/nope/configmaps", {"metadata": {"name": "x"}})
    assert code == 404 and st["message"] == 'namespaces "nope" not found'
    assert names(minik) == before


def test_stale_resource_version_and_immutable(minik: Minik) -> None:
    code, cm = minik.raw_json("POST", CMS, {"metadata": {"name": "rv"}, "data": {"a": "1"}})
    assert code == 201
    cm["data"]["a"] = "2"
    code, new = minik.raw_json("PUT", CMS + "/rv", cm)
    assert code == 200 and int(new["metadata"]["resourceVersion"]) > int(cm["metadata"]["resourceVersion"])
    cm["data"]["a"] = "3"
    code, st = minik.raw_json("PUT", CMS + "/rv", cm)
    assert code == 409 and st["reason"] == "Conflict"
    assert "the object has been modified" in st["message"]
    code, cur = minik.raw_json("GET", CMS + "/rv")
    assert cur["data"]["a"] == "2"
    code, st = minik.raw_json("PATCH", CMS + "/rv", {"metadata": {"resourceVersion": "1"}, "data": {"a": "4"}},
                              content_type="application/merge-patch+json")
    assert code == 409
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "imm"},
           "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a", "x": "y"}},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    assert minik.raw_json("POST", "/apis/apps/v1/namespaces/default/deployments", dep)[0] == 201
    code, st = minik.raw_json("PATCH", "/apis/apps/v1/namespaces/default/deployments/imm",
                              {"spec": {"selector": {"matchLabels": {"app": "a", "x": "y"}}}},
                              content_type="application/merge-patch+json")
    assert code == 422 and "immutable" in st["message"]


def test_authentication(minik: Minik) -> None:
    code, _, body = minik.raw("GET", CMS, auth=False)
    assert code == 401 and json.loads(body)["reason"] == "Unauthorized"
    code, _, body = minik.raw("GET", CMS, token="wrong")
    assert code == 401
    code, _, body = minik.raw("POST", CMS, json.dumps({"metadata": {"name": "anon"}}).encode(), {"Content-Type": "application/json"}, auth=False)
    assert code == 401
    assert "anon" not in names(minik)
    # The join token is for agents joining, not an API credential.
    with open(f"{minik.data_dir}/server/token") as f:
        join_secret = f.read().strip().split("::", 1)[1].split(":", 1)[1]
    assert minik.raw("GET", CMS, token=join_secret)[0] == 401
    for path in ("/version", "/healthz", "/livez", "/readyz"):
        assert minik.raw("GET", path, auth=False)[0] == 200
    r = minik.kubectl("--token=wrong", "--kubeconfig=/dev/null", f"--server={minik.url}", "--insecure-skip-tls-verify", "get", "pods", check=False)
    assert r.returncode == 1 and "You must be logged in to the server" in r.stderr


def test_subresource_and_review_bodies_with_wrong_types(minik: Minik) -> None:
    """Bodies that are answered or applied through a subresource are decoded strictly too:
    a wrong type is a 4xx naming the field, never a 500, and nothing changes."""
    ns = "/api/v1/namespaces/default"
    # Review kinds are never stored but are still typed.
    code, st = minik.raw_json("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                              {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                               "spec": {"resourceAttributes": {"verb": 1}}})
    assert code == 422 and "spec.resourceAttributes.verb" in st["message"], st
    code, st = minik.raw_json("POST", "/apis/authentication.k8s.io/v1/tokenreviews",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"audiences": 1}})
    assert code == 422 and "spec.audiences" in st["message"], st
    # serviceaccounts/token with a wrongly typed audiences.
    code, st = minik.raw_json("POST", ns + "/serviceaccounts/default/token",
                              {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"audiences": 1}})
    assert code == 422 and "spec.audiences" in st["message"], st
    # pods/binding: target must be an object; the pod stays unbound.
    pod = {"metadata": {"name": "fuzz-bind"}, "spec": {"schedulerName": "nobody",
                                                      "containers": [{"name": "c", "image": "busybox"}]}}
    code, _ = minik.raw_json("POST", ns + "/pods", pod)
    assert code == 201
    code, st = minik.raw_json("POST", ns + "/pods/fuzz-bind/binding",
                              {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "fuzz-bind"}, "target": 1})
    assert code == 422 and "target" in st["message"], st
    code, got = minik.raw_json("GET", ns + "/pods/fuzz-bind")
    assert code == 200 and not got["spec"].get("nodeName")
    # scale PUT and PATCH with a wrongly typed spec: 4xx, replicas unchanged.
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fuzz-scale"},
           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "fs"}},
                    "template": {"metadata": {"labels": {"app": "fs"}},
                                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}
    scale = "/apis/apps/v1/namespaces/default/deployments/fuzz-scale/scale"
    code, _ = minik.raw_json("POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    assert code == 201
    code, st = minik.raw_json("PUT", scale, {"apiVersion": "autoscaling/v1", "kind": "Scale",
                                            "metadata": {"name": "fuzz-scale"}, "spec": 1})
    assert code in (400, 422) and "spec" in st["message"], st
    code, st = minik.raw_json("PATCH", scale, {"spec": {"replicas": "two"}}, "application/merge-patch+json")
    assert code in (400, 422) and "spec.replicas" in st["message"], st
    code, st = minik.raw_json("PATCH", scale, {"metadata": 1}, "application/merge-patch+json")
    assert code in (400, 422), st
    code, got = minik.raw_json("GET", "/apis/apps/v1/namespaces/default/deployments/fuzz-scale")
    assert code == 200 and got["spec"]["replicas"] == 0
    # A good scale still works.
    code, got = minik.raw_json("PATCH", scale, {"spec": {"replicas": 0}}, "application/merge-patch+json")
    assert code == 200 and got["spec"]["replicas"] == 0
    minik.raw_json("DELETE", "/apis/apps/v1/namespaces/default/deployments/fuzz-scale")
    minik.raw_json("DELETE", ns + "/pods/fuzz-bind")


def test_scheduling_gates(minik: Minik) -> None:
    """schedulingGates: qualified names, no duplicates, and after create only removal."""
    ns = "/api/v1/namespaces/default/pods"
    def pod(gates: list[dict[str, str]]) -> dict[str, object]:
        return {"metadata": {"name": "gated"}, "spec": {"schedulingGates": gates,
                                                       "containers": [{"name": "c", "image": "busybox"}]}}
    code, st = minik.raw_json("POST", ns, pod([{"name": "a/b/c"}]))
    assert code == 422 and any(c["field"] == "spec.schedulingGates[0]" for c in st["details"]["causes"]), st
    code, st = minik.raw_json("POST", ns, pod([{"name": "example.com/g"}, {"name": "example.com/g"}]))
    assert code == 422 and any(c["field"] == "spec.schedulingGates[1]" for c in st["details"]["causes"]), st
    code, _ = minik.raw_json("POST", ns, pod([{"name": "example.com/g"}]))
    assert code == 201
    code, st = minik.raw_json("PATCH", ns + "/gated", {"spec": {"schedulingGates": [{"name": "example.com/g"}, {"name": "example.com/h"}]}},
                              "application/merge-patch+json")
    assert code == 422 and "only deletion is allowed" in st["message"], st
    code, got = minik.raw_json("PATCH", ns + "/gated", {"spec": {"schedulingGates": []}}, "application/merge-patch+json")
    assert code == 200 and not got["spec"].get("schedulingGates"), got
    minik.raw_json("DELETE", ns + "/gated")
