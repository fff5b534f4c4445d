"""Validation causes (field, reason, message) as kube-apiserver 1.32 reports them."""

from __future__ import annotations

import base64
import copy
from collections.abc import Callable
from typing import Any

import pytest

from minik.apis.defaults import apply_defaults
from minik.apis.errors import Cause
from minik.apis.names import generate_name, GENERATE_ALPHABET
from minik.apis.registry import Registry, ResourceType
from minik.apis.validation import validate
from minik.apis.validation.batch import CronError, parse_schedule

Obj = dict[str, Any]
REG = Registry()

SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
                 "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
                 "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
             "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035_MSG = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic "
               "character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
               "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
CONFIG_KEY_MSG = ("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or "
                  "'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')")


def rt(group: str, kind: str) -> ResourceType:
    t = REG.by_kind(group, kind)
    assert t is not None
    return t


def run(group: str, kind: str, obj: Obj, old: Obj | None = None) -> list[tuple[str, str, str]]:
    t = rt(group, kind)
    apply_defaults(t, obj)
    if old is not None:
        apply_defaults(t, old)
    return [(c.field, c.reason, c.message) for c in validate(t, obj, old)]


def template(labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    return {"metadata": {"labels": labels if labels is not None else {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], **spec}}


def pod(name: str = "web", **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}], **spec}}


def deployment(**spec: Any) -> Obj:
    base: Obj = {"selector": {"matchLabels": {"app": "web"}}, "template": template()}
    base.update(spec)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "default"},
            "spec": base}


def ok(group: str, kind: str, obj: Obj) -> None:
    assert run(group, kind, obj) == []


# ---- metadata ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, name, msg", [
    ("ConfigMap", "Bad_Name", SUBDOMAIN_MSG),
    ("Pod", "a" * 254, "must be no more than 253 characters"),
    ("Service", "1abc", DNS1035_MSG),
    ("Namespace", "a.b", "must not contain dots"),
    ("Namespace", "Team", LABEL_MSG),
])
def test_metadata_name(kind: str, name: str, msg: str) -> None:
    obj: Obj = {"metadata": {"name": name}}
    if rt("", kind).namespaced:
        obj["metadata"]["namespace"] = "default"
    causes = run("", kind, obj)
    assert ("metadata.name", "FieldValueInvalid", f'Invalid value: "{name}": {msg}') in causes


def test_metadata_required_and_namespace() -> None:
    assert run("", "ConfigMap", {"metadata": {}}) == [
        ("metadata.name", "FieldValueRequired", "Required value: name or generateName is required"),
        ("metadata.namespace", "FieldValueRequired", "Required value"),
    ]
    assert run("", "Node", {"metadata": {"name": "n", "namespace": "x"}}) == [
        ("metadata.namespace", "FieldValueForbidden", "Forbidden: not allowed on this type")]


def test_generate_name() -> None:
    causes = run("", "ConfigMap", {"metadata": {"generateName": "Job-", "name": "job-abcde", "namespace": "d"}})
    assert causes[0][0] == "metadata.generateName" and causes[0][2].startswith('Invalid value: "Job-": a lowercase RFC 1123')
    ok("", "ConfigMap", {"metadata": {"generateName": "job-", "name": "job-abcde", "namespace": "d"}})
    name = generate_name("job-")
    assert name.startswith("job-") and len(name) == 9 and all(c in GENERATE_ALPHABET for c in name[4:])
    assert len(generate_name("x" * 100)) == 63


def test_rbac_names_are_path_segments() -> None:
    ok("rbac.authorization.k8s.io", "ClusterRole", {"metadata": {"name": "system:controller:Foo"}, "rules": []})
    causes = run("rbac.authorization.k8s.io", "ClusterRole", {"metadata": {"name": "a/b"}, "rules": []})
    assert causes == [("metadata.name", "FieldValueInvalid", "Invalid value: \"a/b\": may not contain '/'")]


def test_labels_and_annotations() -> None:
    causes = run("", "ConfigMap", {"metadata": {"name": "c", "namespace": "d",
                                                "labels": {"bad key": "v", "ok": "bad value"}}})
    assert causes == [
        ("metadata.labels", "FieldValueInvalid",
         "Invalid value: \"bad key\": name part must consist of alphanumeric characters, '-', '_' or '.', and must "
         "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
         "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"),
        ("metadata.labels", "FieldValueInvalid",
         "Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, "
         "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
         "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"),
    ]
    big = {"metadata": {"name": "c", "namespace": "d", "annotations": {"a": "x" * (256 * 1024)}}}
    assert run("", "ConfigMap", big) == [
        ("metadata.annotations", "FieldValueTooLong", "Too long: may not be more than 262144 bytes")]
    ok("", "ConfigMap", {"metadata": {"name": "c", "namespace": "d", "annotations": {"Example.COM/Key": "x"}}})


def test_metadata_update_immutables() -> None:
    old = {"metadata": {"name": "c", "namespace": "d", "uid": "1"}}
    new = {"metadata": {"name": "c", "namespace": "d", "uid": "2"}}
    assert run("", "ConfigMap", new, old) == [("metadata.uid", "FieldValueInvalid", 'Invalid value: "2": field is immutable')]


# ---- pods -----------------------------------------------------------------------------------------
def test_valid_pod() -> None:
    ok("", "Pod", pod(volumes=[{"name": "data", "emptyDir": {}}], containers=[{
        "name": "web", "image": "nginx:1.27", "ports": [{"name": "http", "containerPort": 80}],
        "env": [{"name": "MY.VAR-1", "value": "x"}, {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        "livenessProbe": {"httpGet": {"port": "http"}},
        "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "1", "memory": "128Mi"}}}]))


@pytest.mark.parametrize("spec, expected", [
    ({"containers": []}, [("spec.containers", "FieldValueRequired", "Required value")]),
    ({"containers": [{"name": "Web", "image": "x:1"}]},
     [("spec.containers[0].name", "FieldValueInvalid", f'Invalid value: "Web": {LABEL_MSG}')]),
    ({"containers": [{"name": "web"}]}, [("spec.containers[0].image", "FieldValueRequired", "Required value")]),
    ({"containers": [{"name": "a", "image": "x:1"}, {"name": "a", "image": "x:1"}]},
     [("spec.containers[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')]),
    ({"initContainers": [{"name": "web", "image": "x:1"}]},
     [("spec.initContainers[0].name", "FieldValueDuplicate", 'Duplicate value: "web"')]),
    ({"restartPolicy": "Sometimes"},
     [("spec.restartPolicy", "FieldValueNotSupported",
       'Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"')]),
    ({"containers": [{"name": "web", "image": "x:1", "ports": [{"containerPort": 70000}]}]},
     [("spec.containers[0].ports[0].containerPort", "FieldValueInvalid",
       "Invalid value: 70000: must be between 1 and 65535, inclusive")]),
    ({"containers": [{"name": "web", "image": "x:1", "ports": [{"name": "http", "containerPort": 80},
                                                                {"name": "http", "containerPort": 81}]}]},
     [("spec.containers[0].ports[1].name", "FieldValueDuplicate", 'Duplicate value: "http"')]),
    ({"containers": [{"name": "web", "image": "x:1", "ports": [{"name": "8080", "containerPort": 80}]}]},
     [("spec.containers[0].ports[0].name", "FieldValueInvalid", 'Invalid value: "8080": must contain at least one letter (a-z)')]),
    ({"containers": [{"name": "web", "image": "x:1", "ports": [{"containerPort": 80, "protocol": "ICMP"}]}]},
     [("spec.containers[0].ports[0].protocol", "FieldValueNotSupported",
       'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"')]),
    ({"containers": [{"name": "web", "image": "x:1", "env": [{"name": "A=B"}, {"value": "x"}]}]},
     [("spec.containers[0].env[0].name", "FieldValueInvalid",
       "Invalid value: \"A=B\": a valid environment variable name must consist only of printable ASCII characters other than '='"),
      ("spec.containers[0].env[1].name", "FieldValueRequired", "Required value")]),
    ({"containers": [{"name": "web", "image": "x:1", "volumeMounts": [{"name": "missing", "mountPath": "/x"}]}]},
     [("spec.containers[0].volumeMounts[0].name", "FieldValueNotFound", 'Not found: "missing"')]),
    ({"volumes": [{"name": "a", "emptyDir": {}}, {"name": "a", "emptyDir": {}}]},
     [("spec.volumes[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')]),
    ({"volumes": [{"name": "a", "emptyDir": {}, "hostPath": {"path": "/x"}}]},
     [("spec.volumes[0].emptyDir", "FieldValueForbidden", "Forbidden: may not specify more than 1 volume type")]),
    ({"volumes": [{"name": "c", "configMap": {}}]},
     [("spec.volumes[0].configMap.name", "FieldValueRequired", "Required value")]),
    ({"containers": [{"name": "web", "image": "x:1", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}]},
     [("spec.containers[0].resources.requests", "FieldValueInvalid", 'Invalid value: "2": must be less than or equal to cpu limit of 1')]),
    ({"containers": [{"name": "web", "image": "x:1", "resources": {"requests": {"memory": "abc"}}}]},
     [("spec.containers[0].resources.requests[memory]", "FieldValueInvalid",
       "Invalid value: \"abc\": quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]),
    ({"containers": [{"name": "web", "image": "x:1", "resources": {"requests": {"gpu": "1"}}}]},
     [("spec.containers[0].resources.requests[gpu]", "FieldValueInvalid", 'Invalid value: "gpu": must be a standard resource for containers')]),
    ({"containers": [{"name": "web", "image": "x:1", "livenessProbe": {"periodSeconds": 5}}]},
     [("spec.containers[0].livenessProbe", "FieldValueRequired", "Required value: must specify a handler type")]),
    ({"containers": [{"name": "web", "image": "x:1", "livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}}]},
     [("spec.containers[0].livenessProbe.successThreshold", "FieldValueInvalid", "Invalid value: 2: must be 1")]),
    ({"containers": [{"name": "web", "image": "x:1", "readinessProbe": {"tcpSocket": {"port": 0}}}]},
     [("spec.containers[0].readinessProbe.tcpSocket.port", "FieldValueInvalid", "Invalid value: 0: must be between 1 and 65535, inclusive")]),
    ({"tolerations": [{"key": "k", "operator": "Exists", "effect": "NoSchedule", "tolerationSeconds": 5}]},
     [("spec.tolerations[0].effect", "FieldValueInvalid",
       "Invalid value: \"NoSchedule\": effect must be 'NoExecute' when `tolerationSeconds` is set")]),
])
def test_pod_spec_errors(spec: Obj, expected: list[tuple[str, str, str]]) -> None:
    assert run("", "Pod", pod(**spec)) == expected


def test_pod_update_rules() -> None:
    old = pod()
    new = copy.deepcopy(old)
    new["spec"]["containers"][0]["image"] = "nginx:1.28"
    new["spec"]["activeDeadlineSeconds"] = 30
    assert run("", "Pod", new, copy.deepcopy(old)) == []
    changed = copy.deepcopy(old)
    changed["spec"]["containers"][0]["ports"] = [{"containerPort": 80}]
    causes = run("", "Pod", changed, copy.deepcopy(old))
    assert causes == [("spec", "FieldValueForbidden",
                       "Forbidden: pod updates may not change fields other than `spec.containers[*].image`,"
                       "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                       "to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it "
                       "was previously negative)")]
    added = copy.deepcopy(old)
    added["spec"]["tolerations"] = [{"key": "k", "operator": "Exists"}]
    assert run("", "Pod", added, copy.deepcopy(old)) == []


# ---- workloads ------------------------------------------------------------------------------------
def test_valid_workloads() -> None:
    ok("apps", "Deployment", deployment())
    ok("apps", "ReplicaSet", {"metadata": {"name": "r", "namespace": "d"},
                              "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    ok("apps", "DaemonSet", {"metadata": {"name": "r", "namespace": "d"},
                             "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": template()}})
    ok("apps", "StatefulSet", {"metadata": {"name": "r", "namespace": "d"}, "spec": {
        "serviceName": "r", "selector": {"matchLabels": {"app": "web"}}, "template": template(),
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}})


def test_deployment_selector_mismatch() -> None:
    assert run("apps", "Deployment", deployment(template=template({"app": "x"}))) == [
        ("spec.template.metadata.labels", "FieldValueInvalid",
         'Invalid value: map[string]string{"app":"x"}: `selector` does not match template `labels`')]


def test_deployment_missing_and_empty_selector() -> None:
    d = deployment()
    del d["spec"]["selector"]
    assert run("apps", "Deployment", d) == [
        ("spec.selector", "FieldValueRequired", "Required value"),
        ("spec.template.metadata.labels", "FieldValueInvalid",
         'Invalid value: map[string]string{"app":"web"}: `selector` does not match template `labels`')]
    assert run("apps", "Deployment", deployment(selector={})) == [
        ("spec.selector", "FieldValueInvalid",
         "Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), "
         "MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment")]


def test_deployment_misc() -> None:
    assert run("apps", "Deployment", deployment(replicas=-1)) == [
        ("spec.replicas", "FieldValueInvalid", "Invalid value: -1: must be greater than or equal to 0")]
    assert run("apps", "Deployment", deployment(template=template(restartPolicy="Never"))) == [
        ("spec.template.spec.restartPolicy", "FieldValueNotSupported", 'Unsupported value: "Never": supported values: "Always"')]
    assert run("apps", "Deployment", deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": 1}})) == [
        ("spec.strategy.rollingUpdate", "FieldValueForbidden",
         "Forbidden: may not be specified when strategy `type` is 'Recreate'")]
    assert run("apps", "Deployment", deployment(strategy={"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}})) == [
        ("spec.strategy.rollingUpdate.maxUnavailable", "FieldValueInvalid",
         'Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:""}: may not be 0 when `maxSurge` is 0')]


def test_selector_immutable() -> None:
    old = deployment()
    new = deployment(selector={"matchLabels": {"app": "web2"}}, template=template({"app": "web2"}))
    assert run("apps", "Deployment", new, old) == [
        ("spec.selector", "FieldValueInvalid",
         'Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web2"}, '
         'MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable')]


def test_statefulset_update() -> None:
    def sts(**extra: Any) -> Obj:
        return {"metadata": {"name": "db", "namespace": "d"}, "spec": {
            "serviceName": "db", "selector": {"matchLabels": {"app": "web"}}, "template": template(), **extra}}
    assert run("apps", "StatefulSet", sts(replicas=3), sts()) == []
    causes = run("apps", "StatefulSet", sts(serviceName="other"), sts())
    assert causes == [("spec", "FieldValueForbidden",
                       "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', "
                       "'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and "
                       "'minReadySeconds' are forbidden")]


def test_job_and_cronjob() -> None:
    job = {"metadata": {"name": "pi", "namespace": "d", "uid": "u1"}, "spec": {"template": template()}}
    assert run("batch", "Job", job) == [
        ("spec.template.spec.restartPolicy", "FieldValueNotSupported",
         'Unsupported value: "Always": supported values: "OnFailure", "Never"')]
    good = {"metadata": {"name": "pi", "namespace": "d", "uid": "u1"}, "spec": {"template": template(restartPolicy="Never")}}
    assert run("batch", "Job", good) == []
    changed = copy.deepcopy(good)
    changed["spec"]["completions"] = 3
    assert ("spec.completions", "FieldValueInvalid", "Invalid value: 3: field is immutable") in run(
        "batch", "Job", changed, copy.deepcopy(good))

    def cj(schedule: str) -> Obj:
        return {"metadata": {"name": "c", "namespace": "d"}, "spec": {
            "schedule": schedule, "jobTemplate": {"spec": {"template": template(restartPolicy="OnFailure")}}}}
    assert run("batch", "CronJob", cj("*/5 * * * *")) == []
    assert run("batch", "CronJob", cj("@hourly")) == []
    assert run("batch", "CronJob", cj("0 0 * * MON-FRI")) == []
    assert run("batch", "CronJob", cj("61 * * * *")) == [
        ("spec.schedule", "FieldValueInvalid", 'Invalid value: "61 * * * *": end of range (61) above maximum (59): 61')]
    assert run("batch", "CronJob", cj("* * *")) == [
        ("spec.schedule", "FieldValueInvalid", 'Invalid value: "* * *": expected exactly 5 fields, found 3: [* * *]')]
    assert run("batch", "CronJob", cj("")) == [("spec.schedule", "FieldValueRequired", "Required value")]
    long_name = cj("@daily")
    long_name["metadata"]["name"] = "x" * 53
    assert run("batch", "CronJob", long_name) == [
        ("metadata.name", "FieldValueInvalid", f'Invalid value: "{"x" * 53}": must be no more than 52 characters')]


@pytest.mark.parametrize("spec, message", [
    ("@yearly", None), ("@every 1h30m", None), ("*/15 0-6 1,15 JAN-jun ?", None), ("0 0 * * 7", "end of range (7) above maximum (6): 7"),
    ("@fortnightly", "unrecognized descriptor: @fortnightly"), ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"), ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("1-2-3 * * * *", "too many hyphens: 1-2-3"), ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
])
def test_cron(spec: str, message: str | None) -> None:
    if message is None:
        parse_schedule(spec)
    else:
        with pytest.raises(CronError) as e:
            parse_schedule(spec)
        assert str(e.value) == message


# ---- services, config -----------------------------------------------------------------------------
def service(**spec: Any) -> Obj:
    return {"metadata": {"name": "web", "namespace": "d"}, "spec": {"selector": {"app": "web"}, **spec}}


def test_service() -> None:
    ok("", "Service", service(ports=[{"port": 80}]))
    ok("", "Service", service(clusterIP="None"))
    ok("", "Service", {"metadata": {"name": "ext", "namespace": "d"}, "spec": {"type": "ExternalName", "externalName": "example.com"}})
    assert run("", "Service", service()) == [("spec.ports", "FieldValueRequired", "Required value")]
    assert run("", "Service", service(ports=[{"port": 80}, {"port": 81}])) == [
        ("spec.ports[0].name", "FieldValueRequired", "Required value"),
        ("spec.ports[1].name", "FieldValueRequired", "Required value")]
    assert run("", "Service", service(ports=[{"name": "a", "port": 0}, {"name": "a", "port": 81}])) == [
        ("spec.ports[0].port", "FieldValueInvalid", "Invalid value: 0: must be between 1 and 65535, inclusive"),
        ("spec.ports[1].name", "FieldValueDuplicate", 'Duplicate value: "a"')]
    assert run("", "Service", service(type="Magic", ports=[{"port": 1}])) == [
        ("spec.type", "FieldValueNotSupported",
         'Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"')]
    old = service(ports=[{"port": 80}], clusterIP="10.43.0.10")
    new = service(ports=[{"port": 80}], clusterIP="10.43.0.11")
    assert run("", "Service", new, old) == [
        ("spec.clusterIPs[0]", "FieldValueInvalid", 'Invalid value: []string{"10.43.0.11"}: may not change once set')]


def test_configmap_and_secret() -> None:
    cm = {"metadata": {"name": "c", "namespace": "d"}, "data": {"bad key": "v", "ok": "v"}}
    assert run("", "ConfigMap", cm) == [("data[bad key]", "FieldValueInvalid", f'Invalid value: "bad key": {CONFIG_KEY_MSG}')]
    big = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "x" * (1024 * 1024 + 1)}}
    assert run("", "ConfigMap", big) == [("", "FieldValueTooLong", "Too long: may not be more than 1048576 bytes")]
    frozen = {"metadata": {"name": "c", "namespace": "d"}, "immutable": True, "data": {"a": "1"}}
    thawed = {"metadata": {"name": "c", "namespace": "d"}, "data": {"a": "2"}}
    assert run("", "ConfigMap", thawed, frozen) == [
        ("immutable", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set"),
        ("data", "FieldValueForbidden", "Forbidden: field is immutable when `immutable` is set")]

    def secret(typ: str, **data: str) -> Obj:
        return {"metadata": {"name": "s", "namespace": "d"}, "type": typ,
                "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}
    assert run("", "Secret", secret("kubernetes.io/tls", **{"tls.crt": "x"})) == [
        ("data[tls.key]", "FieldValueRequired", "Required value")]
    assert run("", "Secret", secret("kubernetes.io/dockerconfigjson")) == [
        ("data[.dockerconfigjson]", "FieldValueRequired", "Required value")]
    ok("", "Secret", secret("kubernetes.io/dockerconfigjson", **{".dockerconfigjson": '{"auths":{}}'}))
    ok("", "Secret", secret("Opaque", a="1"))
    assert run("", "Secret", secret("kubernetes.io/tls", **{"tls.crt": "x", "tls.key": "y"}),
               secret("Opaque")) == [("type", "FieldValueInvalid", 'Invalid value: "kubernetes.io/tls": field is immutable')]


# ---- other groups ---------------------------------------------------------------------------------
def ingress(**path: Any) -> Obj:
    p = {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}
    p.update(path)
    return {"metadata": {"name": "i", "namespace": "d"}, "spec": {"rules": [{"host": "example.com", "http": {"paths": [p]}}]}}


def test_ingress() -> None:
    ok("networking.k8s.io", "Ingress", ingress())
    no_type = ingress()
    del no_type["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
    assert run("networking.k8s.io", "Ingress", no_type) == [
        ("spec.rules[0].http.paths[0].pathType", "FieldValueRequired", "Required value: pathType must be specified")]
    assert run("networking.k8s.io", "Ingress", ingress(path="api")) == [
        ("spec.rules[0].http.paths[0].path", "FieldValueInvalid", 'Invalid value: "api": must be an absolute path')]
    assert run("networking.k8s.io", "Ingress", ingress(backend={"service": {"name": "web", "port": {}}})) == [
        ("spec.rules[0].http.paths[0].backend", "FieldValueRequired", "Required value: port name or number is required")]
    assert run("networking.k8s.io", "Ingress", {"metadata": {"name": "i", "namespace": "d"}, "spec": {}}) == [
        ("spec", "FieldValueInvalid",
         "Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified")]


def test_rbac() -> None:
    ok("rbac.authorization.k8s.io", "Role", {"metadata": {"name": "r", "namespace": "d"},
                                             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    assert run("rbac.authorization.k8s.io", "Role", {"metadata": {"name": "r", "namespace": "d"}, "rules": [{"resources": ["pods"]}]}) == [
        ("rules[0].verbs", "FieldValueRequired", "Required value: verbs must contain at least one value"),
        ("rules[0].apiGroups", "FieldValueRequired", "Required value: resource rules must supply at least one api group")]
    rb = {"metadata": {"name": "b", "namespace": "d"}, "roleRef": {"kind": "Role", "name": "r"},
          "subjects": [{"kind": "ServiceAccount", "name": "default"}]}
    ok("rbac.authorization.k8s.io", "RoleBinding", copy.deepcopy(rb))
    changed = copy.deepcopy(rb)
    changed["roleRef"]["name"] = "other"
    assert run("rbac.authorization.k8s.io", "RoleBinding", changed, copy.deepcopy(rb)) == [
        ("roleRef", "FieldValueInvalid",
         'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", Kind:"Role", Name:"other"}: cannot change roleRef')]
    crb = {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"}, "subjects": [{"kind": "ServiceAccount", "name": "x"}]}
    assert run("rbac.authorization.k8s.io", "ClusterRoleBinding", crb) == [
        ("roleRef.kind", "FieldValueNotSupported", 'Unsupported value: "Role": supported values: "ClusterRole"'),
        ("subjects[0].namespace", "FieldValueRequired", "Required value")]


def crd(**spec: Any) -> Obj:
    base: Obj = {"group": "stable.example.com", "scope": "Namespaced", "names": {"plural": "crontabs", "kind": "CronTab"},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": {"openAPIV3Schema": {"type": "object"}}}]}
    base.update(spec)
    return {"metadata": {"name": "crontabs.stable.example.com"}, "spec": base}


def test_crd() -> None:
    ok("apiextensions.k8s.io", "CustomResourceDefinition", crd())
    bad = crd(scope="Global")
    bad["metadata"]["name"] = "crontab.stable.example.com"
    assert run("apiextensions.k8s.io", "CustomResourceDefinition", bad) == [
        ("metadata.name", "FieldValueInvalid", 'Invalid value: "crontab.stable.example.com": must be spec.names.plural+"."+spec.group'),
        ("spec.scope", "FieldValueNotSupported", 'Unsupported value: "Global": supported values: "Cluster", "Namespaced"')]
    two = crd(versions=[{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {}}},
                        {"name": "v2", "served": True, "storage": True, "schema": {"openAPIV3Schema": {}}}])
    assert run("apiextensions.k8s.io", "CustomResourceDefinition", two) == [
        ("spec.versions", "FieldValueInvalid",
         "Invalid value: []apiextensions.CustomResourceDefinitionVersion{...}: must have exactly one version marked as storage version")]


def test_pvc_update_and_custom() -> None:
    pvc = {"metadata": {"name": "c", "namespace": "d"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                               "resources": {"requests": {"storage": "1Gi"}}}}
    ok("", "PersistentVolumeClaim", copy.deepcopy(pvc))
    bigger = copy.deepcopy(pvc)
    bigger["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert run("", "PersistentVolumeClaim", bigger, copy.deepcopy(pvc)) == []
    other = copy.deepcopy(pvc)
    other["spec"]["accessModes"] = ["ReadWriteMany"]
    assert run("", "PersistentVolumeClaim", other, copy.deepcopy(pvc))[0][:2] == ("spec", "FieldValueForbidden")
    custom = ResourceType("stable.example.com", "v1", "CronTab", "crontabs", True, custom=True)
    causes: list[Cause] = validate(custom, {"metadata": {"name": "Bad", "namespace": "d"}, "spec": {"x": 1}})
    assert [c.field for c in causes] == ["metadata.name"]


def test_validation_of_everything_registered_does_not_crash() -> None:
    """Every built-in kind accepts a minimal (possibly invalid) object without raising."""
    builders: dict[str, Callable[[], Obj]] = {"empty": lambda: {"metadata": {"name": "x", "namespace": "d"}}}
    for t in REG.types:
        for build in builders.values():
            obj = build()
            apply_defaults(t, obj)
            validate(t, obj)
            validate(t, obj, copy.deepcopy(obj))
