"""Defaults as Kubernetes 1.32 applies them (SetDefaults_* plus default admission plugins)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from minik.apis.defaults import apply_defaults, image_pull_policy, qos_class
from minik.apis.registry import Registry, ResourceType

Obj = dict[str, Any]
REG = Registry()


def rt(group: str, kind: str, version: str = "") -> ResourceType:
    if version:
        t = REG.lookup(group, version, kind.lower() + "s")
    else:
        t = REG.by_kind(group, kind)
    assert t is not None
    return t


def defaulted(group: str, kind: str, obj: Obj, version: str = "") -> Obj:
    apply_defaults(rt(group, kind, version), obj)
    again = copy.deepcopy(obj)
    apply_defaults(rt(group, kind, version), again)
    assert again == obj, "defaulting must be idempotent"
    return obj


def make_pod(**spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], **spec}}


def make_template(**spec: Any) -> Obj:
    return {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.27"}], **spec}}


@pytest.mark.parametrize("image, policy", [
    ("nginx", "Always"),
    ("nginx:latest", "Always"),
    ("nginx:1.27", "IfNotPresent"),
    ("registry.local:5000/nginx", "Always"),
    ("registry.local:5000/nginx:1.2", "IfNotPresent"),
    ("nginx@sha256:" + "a" * 64, "IfNotPresent"),
    ("nginx:latest@sha256:" + "a" * 64, "Always"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy(image) == policy


def test_pod_defaults() -> None:
    pod = defaulted("", "Pod", make_pod(volumes=[{"name": "cm", "configMap": {"name": "x"}},
                                                  {"name": "s", "secret": {"secretName": "y"}},
                                                  {"name": "e"}, {"name": "h", "hostPath": {"path": "/x"}}]))
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["securityContext"] == {}
    assert spec["enableServiceLinks"] is True
    assert spec["serviceAccountName"] == "default" and spec["serviceAccount"] == "default"
    assert spec["priority"] == 0 and spec["preemptionPolicy"] == "PreemptLowerPriority"
    assert spec["tolerations"] == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
    ]
    c = spec["containers"][0]
    assert c["imagePullPolicy"] == "Always"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert c["resources"] == {}
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["cm"]["configMap"]["defaultMode"] == 420
    assert vols["s"]["secret"]["defaultMode"] == 420
    assert vols["e"]["emptyDir"] == {}
    assert vols["h"]["hostPath"]["type"] == ""
    assert pod["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_pod_keeps_user_values_and_existing_tolerations() -> None:
    pod = defaulted("", "Pod", make_pod(restartPolicy="Never", serviceAccountName="builder",
                                        tolerations=[{"operator": "Exists"}], priorityClassName="system-node-critical"))
    spec = pod["spec"]
    assert spec["restartPolicy"] == "Never"
    assert spec["serviceAccountName"] == "builder" and spec["serviceAccount"] == "builder"
    assert spec["tolerations"] == [{"operator": "Exists"}]  # tolerates everything already
    assert spec["priority"] == 2000001000


def test_container_ports_probes_and_resources() -> None:
    pod = defaulted("", "Pod", make_pod(containers=[{
        "name": "c", "image": "nginx:1.27", "ports": [{"containerPort": 80}],
        "livenessProbe": {"httpGet": {"port": 80}},
        "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 5},
        "resources": {"limits": {"cpu": "0.5", "memory": "1024Mi"}},
        "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
    }]))
    c = pod["spec"]["containers"][0]
    assert c["imagePullPolicy"] == "IfNotPresent"
    assert c["ports"] == [{"containerPort": 80, "protocol": "TCP"}]
    assert c["livenessProbe"] == {"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}
    assert c["readinessProbe"]["periodSeconds"] == 5
    assert c["resources"] == {"limits": {"cpu": "500m", "memory": "1Gi"}, "requests": {"cpu": "500m", "memory": "1Gi"}}
    assert c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"] == "v1"
    assert pod["status"]["qosClass"] == "Guaranteed"


def test_qos_class() -> None:
    assert qos_class({"containers": [{"resources": {}}]}) == "BestEffort"
    assert qos_class({"containers": [{"resources": {"requests": {"cpu": "1"}}}]}) == "Burstable"
    assert qos_class({"containers": [{"resources": {"requests": {"cpu": "1", "memory": "1Gi"},
                                                    "limits": {"cpu": "1", "memory": "1Gi"}}}]}) == "Guaranteed"


def test_host_network_ports() -> None:
    pod = defaulted("", "Pod", make_pod(hostNetwork=True, containers=[
        {"name": "c", "image": "x:1", "ports": [{"containerPort": 8080}]}]))
    assert pod["spec"]["containers"][0]["ports"][0]["hostPort"] == 8080


def test_deployment_defaults() -> None:
    d = defaulted("apps", "Deployment", {"metadata": {"name": "web", "namespace": "default"},
                                         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": make_template()}})
    spec = d["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10 and spec["progressDeadlineSeconds"] == 600
    tspec = spec["template"]["spec"]
    assert tspec["restartPolicy"] == "Always" and tspec["dnsPolicy"] == "ClusterFirst"
    # Pod-only defaults stay out of templates, as in Kubernetes.
    for k in ("enableServiceLinks", "tolerations", "serviceAccountName", "priority"):
        assert k not in tspec


def test_deployment_recreate_has_no_rolling_update() -> None:
    d = defaulted("apps", "Deployment", {"metadata": {"name": "w"}, "spec": {"strategy": {"type": "Recreate"},
                                                                           "template": make_template()}})
    assert d["spec"]["strategy"] == {"type": "Recreate"}


def test_statefulset_defaults() -> None:
    s = defaulted("apps", "StatefulSet", {"metadata": {"name": "db"}, "spec": {
        "serviceName": "db", "template": make_template(),
        "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                                         "resources": {"requests": {"storage": "1024Mi"}}}}]}})
    spec = s["spec"]
    assert spec["podManagementPolicy"] == "OrderedReady"
    assert spec["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    assert spec["replicas"] == 1 and spec["revisionHistoryLimit"] == 10
    vct = spec["volumeClaimTemplates"][0]
    assert vct["spec"]["volumeMode"] == "Filesystem"
    assert vct["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert vct["status"] == {"phase": "Pending"}


def test_daemonset_and_replicaset_defaults() -> None:
    ds = defaulted("apps", "DaemonSet", {"metadata": {"name": "d"}, "spec": {"template": make_template()}})
    assert ds["spec"]["updateStrategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}
    assert ds["spec"]["revisionHistoryLimit"] == 10
    rs = defaulted("apps", "ReplicaSet", {"metadata": {"name": "r"}, "spec": {"template": make_template()}})
    assert rs["spec"]["replicas"] == 1


def test_job_defaults_and_selector() -> None:
    job = defaulted("batch", "Job", {"metadata": {"name": "pi", "namespace": "default", "uid": "u-1"},
                                     "spec": {"template": make_template(restartPolicy="Never")}})
    spec = job["spec"]
    assert spec["completions"] == 1 and spec["parallelism"] == 1
    assert spec["backoffLimit"] == 6 and spec["completionMode"] == "NonIndexed"
    assert spec["suspend"] is False and spec["podReplacementPolicy"] == "TerminatingOrFailed"
    assert spec["selector"] == {"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}}
    assert spec["manualSelector"] is False  # shown by `kubectl get job pi -o yaml` ("Jobs" page)
    labels = spec["template"]["metadata"]["labels"]
    assert labels["job-name"] == "pi" and labels["batch.kubernetes.io/job-name"] == "pi"
    assert labels["controller-uid"] == "u-1" and labels["batch.kubernetes.io/controller-uid"] == "u-1"
    assert job["metadata"]["labels"] == labels


def test_job_parallelism_only_and_manual_selector() -> None:
    job = defaulted("batch", "Job", {"metadata": {"name": "x", "uid": "u"}, "spec": {
        "parallelism": 3, "manualSelector": True, "selector": {"matchLabels": {"a": "b"}},
        "template": make_template(restartPolicy="OnFailure")}})
    assert "completions" not in job["spec"] and job["spec"]["parallelism"] == 3
    assert job["spec"]["selector"] == {"matchLabels": {"a": "b"}}


def test_cronjob_defaults() -> None:
    cj = defaulted("batch", "CronJob", {"metadata": {"name": "c"}, "spec": {
        "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": make_template(restartPolicy="OnFailure")}}}})
    spec = cj["spec"]
    assert spec["concurrencyPolicy"] == "Allow" and spec["suspend"] is False
    assert spec["successfulJobsHistoryLimit"] == 3 and spec["failedJobsHistoryLimit"] == 1
    assert spec["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst"
    assert "backoffLimit" not in spec["jobTemplate"]["spec"]  # SetDefaults_Job is for Job objects only


def test_service_defaults() -> None:
    svc = defaulted("", "Service", {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                                                                          "ports": [{"port": 80}, {"port": 53, "protocol": "UDP", "targetPort": "dns"}]}})
    spec = svc["spec"]
    assert spec["type"] == "ClusterIP" and spec["sessionAffinity"] == "None"
    assert spec["ports"][0] == {"port": 80, "protocol": "TCP", "targetPort": 80}
    assert spec["ports"][1]["targetPort"] == "dns"
    assert spec["ipFamilies"] == ["IPv4"] and spec["ipFamilyPolicy"] == "SingleStack"
    assert spec["internalTrafficPolicy"] == "Cluster"
    assert "externalTrafficPolicy" not in spec
    assert svc["status"] == {"loadBalancer": {}}
    lb = defaulted("", "Service", {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}})
    assert lb["spec"]["externalTrafficPolicy"] == "Cluster" and lb["spec"]["allocateLoadBalancerNodePorts"] is True
    ext = defaulted("", "Service", {"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "a.b"}})
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]
    aff = defaulted("", "Service", {"metadata": {"name": "a"}, "spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 1}]}})
    assert aff["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}


def test_namespace_secret_pvc_pv() -> None:
    ns = defaulted("", "Namespace", {"metadata": {"name": "team"}})
    assert ns["spec"] == {"finalizers": ["kubernetes"]} and ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "team"}
    assert defaulted("", "Secret", {"metadata": {"name": "s"}})["type"] == "Opaque"
    pvc = defaulted("", "PersistentVolumeClaim", {"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"]}})
    assert pvc["spec"]["volumeMode"] == "Filesystem" and pvc["status"] == {"phase": "Pending"}
    pv = defaulted("", "PersistentVolume", {"metadata": {"name": "v"}, "spec": {"capacity": {"storage": "1024Mi"}}})
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain" and pv["spec"]["capacity"] == {"storage": "1Gi"}


def test_other_groups() -> None:
    np = defaulted("networking.k8s.io", "NetworkPolicy", {"metadata": {"name": "n"}, "spec": {
        "podSelector": {}, "egress": [{"ports": [{"port": 53}]}]}})
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"][0]["ports"][0]["protocol"] == "TCP"
    rb = defaulted("rbac.authorization.k8s.io", "RoleBinding", {"metadata": {"name": "b"}, "roleRef": {"kind": "Role", "name": "r"},
                                                                "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa"}]})
    assert rb["roleRef"]["apiGroup"] == "rbac.authorization.k8s.io"
    assert rb["subjects"][0]["apiGroup"] == "rbac.authorization.k8s.io" and "apiGroup" not in rb["subjects"][1]
    hpa = defaulted("autoscaling", "HorizontalPodAutoscaler", {"metadata": {"name": "h"}, "spec": {
        "maxReplicas": 3, "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}}}, version="v2")
    assert hpa["spec"]["minReplicas"] == 1
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 80}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 60
    assert hpa["spec"]["behavior"]["scaleUp"]["policies"][0] == {"type": "Pods", "value": 4, "periodSeconds": 15}
    sc = defaulted("storage.k8s.io", "StorageClass", {"metadata": {"name": "local"}, "provisioner": "x"})
    assert sc["reclaimPolicy"] == "Delete" and sc["volumeBindingMode"] == "Immediate"
    crd = defaulted("apiextensions.k8s.io", "CustomResourceDefinition", {"metadata": {"name": "crontabs.stable.example.com"}, "spec": {
        "group": "stable.example.com", "scope": "Namespaced", "names": {"plural": "crontabs", "kind": "CronTab"},
        "versions": [{"name": "v1", "served": True, "storage": True}]}})
    assert crd["spec"]["names"]["singular"] == "crontab" and crd["spec"]["names"]["listKind"] == "CronTabList"
    assert crd["spec"]["conversion"] == {"strategy": "None"} and crd["status"]["storedVersions"] == ["v1"]


def test_custom_resources_untouched() -> None:
    custom = ResourceType("stable.example.com", "v1", "CronTab", "crontabs", True, custom=True)
    obj = {"spec": {"x": 1}}
    apply_defaults(custom, obj)
    assert obj == {"spec": {"x": 1}}
