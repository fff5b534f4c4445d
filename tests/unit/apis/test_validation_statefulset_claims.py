"""A StatefulSet's mounts may name its volumeClaimTemplates (the controller adds those volumes);
names that are neither a volume nor a claim template are still refused."""

from __future__ import annotations

from typing import Any

from tests.unit.apis.test_validation import run

Obj = dict[str, Any]


def sts(mount: str, claim: str = "www", volumes: list[Obj] | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "nginx", "image": "nginx:1.27", "volumeMounts": [{"name": mount, "mountPath": "/usr/share/nginx/html"}]}]}
    if volumes:
        spec["volumes"] = volumes
    return {"metadata": {"name": "web", "namespace": "d"}, "spec": {
        "serviceName": "nginx", "replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
        "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": spec},
        "volumeClaimTemplates": [{"metadata": {"name": claim}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}


def test_mount_may_name_a_claim_template() -> None:
    assert run("apps", "StatefulSet", sts("www")) == []
    assert run("apps", "StatefulSet", sts("cfg", volumes=[{"name": "cfg", "emptyDir": {}}])) == []


def test_unknown_mount_is_still_not_found() -> None:
    assert run("apps", "StatefulSet", sts("nope")) == [
        ("spec.template.spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", 'Not found: "nope"')]


def test_the_stored_template_is_not_changed() -> None:
    obj = sts("www")
    run("apps", "StatefulSet", obj)
    assert "volumes" not in obj["spec"]["template"]["spec"]
