"""Ephemeral container validation (kube 1.32's validateEphemeralContainers and
ValidatePodEphemeralContainersUpdate): fields, names, targets, add-only updates, and that neither
a pod create nor a plain pod update may set them."""

from __future__ import annotations

import copy
from typing import Any

from minik.apis.defaults import apply_defaults
from minik.apis.registry import Registry, ResourceType
from minik.apis.validation import validate
from minik.apis.validation.core import validate_pod_ephemeral_update

Obj = dict[str, Any]
POD = Registry().by_kind("", "Pod")
assert POD is not None
RT: ResourceType = POD
FORBIDDEN = "FieldValueForbidden"


def make_pod(*ephemerals: Obj) -> Obj:
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "default"},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}],
                         "initContainers": [{"name": "setup", "image": "busybox"}]}}
    if ephemerals:
        pod["spec"]["ephemeralContainers"] = [copy.deepcopy(e) for e in ephemerals]
    apply_defaults(RT, pod)
    return pod


def dbg(name: str = "dbg", **extra: Any) -> Obj:
    return {"name": name, "image": "busybox", "targetContainerName": "web", **extra}


def causes(new: Obj, old: Obj) -> list[tuple[str, str, str]]:
    return [(c.field, c.reason, c.message) for c in validate_pod_ephemeral_update(new, old)]


def test_adding_a_valid_ephemeral_container_passes_and_is_defaulted() -> None:
    new = make_pod(dbg())
    e = new["spec"]["ephemeralContainers"][0]
    assert (e["imagePullPolicy"], e["terminationMessagePath"], e["terminationMessagePolicy"]) == (
        "Always", "/dev/termination-log", "File")
    assert causes(new, make_pod()) == []
    assert causes(make_pod(dbg(), dbg("two", image="busybox:1.36")), make_pod(dbg())) == []


def test_existing_ones_may_not_change_or_go() -> None:
    old = make_pod(dbg())
    changed = make_pod(dbg(image="busybox:1.36"))
    assert causes(changed, old) == [("spec.ephemeralContainers", FORBIDDEN,
                                     'Forbidden: existing ephemeral containers "dbg" may not be changed\n')]
    assert causes(make_pod(), old) == [("spec.ephemeralContainers", FORBIDDEN,
                                        'Forbidden: existing ephemeral containers "dbg" may not be removed\n')]


def test_names_are_unique_across_all_containers() -> None:
    for name in ("web", "setup"):
        assert ("spec.ephemeralContainers[0].name", "FieldValueDuplicate", f'Duplicate value: "{name}"') in causes(
            make_pod(dbg(name)), make_pod())
    assert ("spec.ephemeralContainers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"') in causes(
        make_pod(dbg("a"), dbg("a")), make_pod())


def test_target_must_be_a_pod_container() -> None:
    assert causes(make_pod(dbg(targetContainerName="nope")), make_pod()) == [
        ("spec.ephemeralContainers[0].targetContainerName", "FieldValueNotFound", 'Not found: "nope"')]
    assert ("spec.ephemeralContainers[1].targetContainerName", "FieldValueNotFound", 'Not found: "a"') in causes(
        make_pod(dbg("a"), dbg("b", targetContainerName="a")), make_pod())
    assert causes(make_pod(dbg(targetContainerName="setup")), make_pod()) == []
    untargeted = dbg()
    del untargeted["targetContainerName"]
    assert causes(make_pod(untargeted), make_pod()) == []


def test_pod_service_fields_are_forbidden() -> None:
    probe = {"exec": {"command": ["true"]}}
    e = dbg(ports=[{"containerPort": 80}], readinessProbe=probe, livenessProbe=probe, startupProbe=probe,
            lifecycle={"preStop": {"exec": {"command": ["true"]}}}, resources={"limits": {"cpu": "1"}},
            volumeMounts=[{"name": "v", "mountPath": "/v", "subPath": "x"}])
    pod = make_pod(e)
    pod["spec"]["volumes"] = [{"name": "v", "emptyDir": {}}]
    got = {f for f, reason, msg in causes(pod, make_pod())
           if reason == FORBIDDEN and msg == "Forbidden: cannot be set for an Ephemeral Container"}
    p = "spec.ephemeralContainers[0]."
    assert got == {p + k for k in ("ports", "resources", "lifecycle", "livenessProbe", "readinessProbe",
                                   "startupProbe", "volumeMounts[0].subPath")}


def test_common_container_rules_apply() -> None:
    assert ("spec.ephemeralContainers[0].image", "FieldValueRequired", "Required value") in causes(
        make_pod(dbg(image="")), make_pod())


def test_create_and_plain_update_may_not_set_them() -> None:
    assert [(c.field, c.message) for c in validate(RT, make_pod(dbg()))] == [
        ("spec.ephemeralContainers", "Forbidden: cannot be set on create")]
    upd = validate(RT, make_pod(dbg()), make_pod())
    assert [(c.field, c.reason) for c in upd] == [("spec", FORBIDDEN)]
    assert upd[0].message.startswith("Forbidden: pod updates may not change fields other than")
    assert validate(RT, make_pod(dbg()), make_pod(dbg())) == []


def test_not_allowed_in_pod_templates() -> None:
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
           "spec": {"selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "web", "image": "nginx"}],
                                          "ephemeralContainers": [{"name": "dbg", "image": "busybox"}]}}}}
    rt = Registry().by_kind("apps", "Deployment")
    assert rt is not None
    apply_defaults(rt, dep)
    assert ("spec.template.spec.ephemeralContainers", FORBIDDEN,
            "Forbidden: ephemeral containers not allowed in pod template") in [
        (c.field, c.reason, c.message) for c in validate(rt, dep)]
