"""APIService autoregistration and availability, as tables."""

from __future__ import annotations

from minik.controllers.apiservice import AUTOMANAGED, Condition, local_apiservice, plan


def _status(obj: dict, status: str, reason: str, message: str) -> dict:
    return {**obj, "status": {"conditions": [{"type": "Available", "status": status, "reason": reason, "message": message}]}}


def test_local_apiservices_created_for_served_versions() -> None:
    p = plan({("", "v1"): True, ("apps", "v1"): True, ("autoscaling", "v2"): True}, [], {})
    names = [o["metadata"]["name"] for o in p.create]
    assert names == ["v1.", "v1.apps", "v2.autoscaling"]
    core = p.create[0]
    assert "group" not in core["spec"] and core["spec"]["groupPriorityMinimum"] == 18000
    assert p.create[2]["spec"]["versionPriority"] == 30


def test_status_and_removal() -> None:
    local = _status(local_apiservice("apps", "v1", True), "True", "Local", "Local APIServices are always available")
    crd = local_apiservice("example.test", "v1", False)
    user = {"metadata": {"name": "v1beta1.custom.metrics.k8s.io"},
            "spec": {"service": {"namespace": "monitoring", "name": "adapter"}}}
    p = plan({("apps", "v1"): True}, [local, crd, user], {("monitoring", "adapter"): {}})
    assert p.create == () and p.delete == ("v1.example.test",)
    assert p.status == (("v1beta1.custom.metrics.k8s.io",
                         Condition("False", "FailedDiscoveryCheck",
                                   "minik does not proxy aggregated API servers; serve this API from a CRD or run the server outside minik")),)
    p = plan({("apps", "v1"): True}, [local, user], {})
    assert p.status[0][1].reason == "ServiceNotFound"
    assert crd["metadata"]["labels"][AUTOMANAGED] == "true"
