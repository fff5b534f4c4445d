"""CustomResourceDefinitions: a CronTab with a schema is served; invalid custom objects are rejected."""

from __future__ import annotations

import json
import time

import yaml

from tests.e2e.minikd import Minik

CRONTAB_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {
        "group": "stable.example.com", "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab", "shortNames": ["ct"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "additionalPrinterColumns": [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                                         {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}],
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "required": ["cronSpec"], "properties": {
                    "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$"},
                    "image": {"type": "string"},
                    "replicas": {"type": "integer", "minimum": 1, "maximum": 10}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        }],
    },
}


def crontab(name: str, **spec: object) -> dict:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab", "metadata": {"name": name}, "spec": spec}


def test_crd_lifecycle(minik: Minik) -> None:
    assert "created" in minik.kubectl("apply", "-f", "-", input=yaml.safe_dump(CRONTAB_CRD)).stdout
    minik.kubectl("wait", "--for=condition=Established", "crd/crontabs.stable.example.com", "--timeout=20s")
    # Discovery caches are per kubectl cache dir: a fresh one sees the new kind at once.
    deadline = time.time() + 10
    while "crontabs" not in minik.kubectl("api-resources", "--api-group=stable.example.com").stdout:
        assert time.time() < deadline
        time.sleep(0.3)
    ok = crontab("my-new-cron-object", cronSpec="* * * * */5", image="my-awesome-cron-image", replicas=2)
    assert "crontab.stable.example.com/my-new-cron-object created" in minik.kubectl("apply", "-f", "-", input=yaml.safe_dump(ok)).stdout
    out = minik.kubectl("get", "crontabs").stdout
    assert "my-new-cron-object" in out and "* * * * */5" in out and "SPEC" in out
    assert "my-new-cron-object" in minik.kubectl("get", "ct").stdout
    got = json.loads(minik.kubectl("get", "crontab", "my-new-cron-object", "-o", "json").stdout)
    assert got["spec"]["replicas"] == 2 and got["kind"] == "CronTab"

    bad = crontab("bad-cron", cronSpec="not a cron", replicas=20)
    r = minik.kubectl("apply", "-f", "-", input=yaml.safe_dump(bad), check=False)
    assert r.returncode == 1
    assert "spec.cronSpec" in r.stderr and "spec.replicas" in r.stderr and "Invalid" in r.stderr
    missing = crontab("missing-spec", image="x")
    r = minik.kubectl("create", "-f", "-", input=yaml.safe_dump(missing), check=False)
    assert r.returncode == 1 and "spec.cronSpec" in r.stderr and "Required value" in r.stderr
    unknown = crontab("unknown-field", cronSpec="* * * * *", colour="blue")
    r = minik.kubectl("create", "-f", "-", input=yaml.safe_dump(unknown), check=False)
    assert r.returncode == 1 and 'unknown field "spec.colour"' in r.stderr
    assert "bad-cron" not in minik.kubectl("get", "crontabs").stdout

    minik.kubectl("patch", "crontab", "my-new-cron-object", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    assert minik.kubectl("get", "crontab", "my-new-cron-object", "-o", "jsonpath={.spec.replicas}").stdout == "3"
    r = minik.kubectl("patch", "crontab", "my-new-cron-object", "--type=merge", "-p", '{"spec":{"replicas":30}}', check=False)
    assert r.returncode == 1 and "spec.replicas" in r.stderr
    assert minik.kubectl("explain", "crontab.spec").stdout.count("cronSpec") >= 1

    minik.kubectl("delete", "crd", "crontabs.stable.example.com")
    r = minik.kubectl("get", "crontabs", check=False)
    assert r.returncode == 1
