"""Tests for minik.api.tables: column definitions, cell formatting and the Table shape."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from minik.api.tables import cells, columns, table
from minik.api.tables.format import format_selector, human_duration
from minik.apis.registry import BUILTIN, ResourceType

NOW = datetime(2025, 1, 10, 12, 0, 0, tzinfo=timezone.utc)


def ts(ago: timedelta) -> str:
    return (NOW - ago).strftime("%Y-%m-%dT%H:%M:%SZ")


def rt(kind: str, group: str = "") -> ResourceType:
    for t in BUILTIN:
        if t.kind == kind and t.group == group:
            return t
    raise KeyError(kind)


POD, DEPLOY, SVC, NODE, EVENT = rt("Pod"), rt("Deployment", "apps"), rt("Service"), rt("Node"), rt("Event")
CRONTAB = ResourceType("stable.example.com", "v1", "CronTab", "crontabs", True, custom=True)


def make_pod(name: str = "web", *, containers: int = 1, statuses: list[dict[str, Any]] | None = None,
             init: list[dict[str, Any]] | None = None, init_statuses: list[dict[str, Any]] | None = None,
             phase: str = "Running", age: timedelta = timedelta(seconds=51), **extra: Any) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": "u-" + name, "resourceVersion": "7",
                     "creationTimestamp": ts(age), "labels": {"run": name}},
        "spec": {"containers": [{"name": f"c{i}", "image": "nginx"} for i in range(containers)],
                 "nodeName": "node-1"},
        "status": {"phase": phase, "podIP": "10.42.0.5", "podIPs": [{"ip": "10.42.0.5"}],
                   "containerStatuses": statuses if statuses is not None else []},
    }
    if init is not None:
        pod["spec"]["initContainers"] = init
    if init_statuses is not None:
        pod["status"]["initContainerStatuses"] = init_statuses
    for k, v in extra.items():
        pod["status" if k in ("conditions", "reason") else "metadata"][k] = v
    return pod


def running(ready: bool = True, restarts: int = 0, last_finished: str | None = None) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "c", "ready": ready, "restartCount": restarts,
                          "state": {"running": {"startedAt": ts(timedelta(seconds=40))}}}
    if last_finished:
        cs["lastState"] = {"terminated": {"exitCode": 1, "finishedAt": last_finished}}
    return cs


def waiting(reason: str, restarts: int = 0) -> dict[str, Any]:
    return {"name": "c", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}


def terminated(reason: str = "", exit_code: int = 0, signal: int = 0) -> dict[str, Any]:
    t: dict[str, Any] = {"exitCode": exit_code}
    if reason:
        t["reason"] = reason
    if signal:
        t["signal"] = signal
    return {"name": "c", "ready": False, "restartCount": 0, "state": {"terminated": t}}


# ---- durations ----------------------------------------------------------------------------

@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-1, "0s"), (0, "0s"), (51, "51s"), (119, "119s"), (120, "2m"), (310, "5m10s"),
    (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 600, "3h10m"), (8 * 3600, "8h"),
    (47 * 3600, "47h"), (2 * 86400 + 5 * 3600, "2d5h"), (3 * 86400, "3d"), (30 * 86400, "30d"),
    (800 * 86400, "2y70d"), (3 * 365 * 86400, "3y"), (9 * 365 * 86400, "9y"),
])
def test_human_duration(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_selector_string_is_sorted_like_kubernetes() -> None:
    sel = {"matchLabels": {"tier": "web", "app": "x"},
           "matchExpressions": [{"key": "env", "operator": "In", "values": ["prod", "dev"]},
                                {"key": "gone", "operator": "DoesNotExist"},
                                {"key": "b", "operator": "Exists"},
                                {"key": "z", "operator": "NotIn", "values": ["1"]}]}
    assert format_selector(sel) == "app=x,b,env in (dev,prod),!gone,tier=web,z notin (1)"
    assert format_selector({}) == "<none>"


# ---- columns ------------------------------------------------------------------------------

def names(defs: list[dict[str, Any]], priority: int | None = None) -> list[str]:
    return [d["name"] for d in defs if priority is None or d["priority"] == priority]


def test_pod_columns() -> None:
    defs = columns(POD)
    assert names(defs, 0) == ["Name", "Ready", "Status", "Restarts", "Age"]
    assert names(defs, 1) == ["IP", "Node", "Nominated Node", "Readiness Gates"]
    assert defs[0] == {"name": "Name", "type": "string", "format": "name", "description": defs[0]["description"],
                       "priority": 0}
    assert all(set(d) == {"name", "type", "format", "description", "priority"} for d in defs)


@pytest.mark.parametrize("kind,group,normal,wide", [
    ("Deployment", "apps", ["Name", "Ready", "Up-to-date", "Available", "Age"], ["Containers", "Images", "Selector"]),
    ("Service", "", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"], ["Selector"]),
    ("Node", "", ["Name", "Status", "Roles", "Age", "Version"],
     ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]),
    ("Event", "", ["Last Seen", "Type", "Reason", "Object", "Message"],
     ["Subobject", "Source", "First Seen", "Count", "Name"]),
    ("ConfigMap", "", ["Name", "Data", "Age"], []),
    ("Secret", "", ["Name", "Type", "Data", "Age"], []),
    ("ServiceAccount", "", ["Name", "Secrets", "Age"], []),
    ("Namespace", "", ["Name", "Status", "Age"], []),
    ("Job", "batch", ["Name", "Status", "Completions", "Duration", "Age"], ["Containers", "Images", "Selector"]),
    ("CronJob", "batch", ["Name", "Schedule", "Timezone", "Suspend", "Active", "Last Schedule", "Age"],
     ["Containers", "Images", "Selector"]),
    ("ReplicaSet", "apps", ["Name", "Desired", "Current", "Ready", "Age"], ["Containers", "Images", "Selector"]),
    ("StatefulSet", "apps", ["Name", "Ready", "Age"], ["Containers", "Images"]),
    ("Ingress", "networking.k8s.io", ["Name", "Class", "Hosts", "Address", "Ports", "Age"], []),
    ("PersistentVolumeClaim", "", ["Name", "Status", "Volume", "Capacity", "Access Modes", "StorageClass",
                                   "VolumeAttributesClass", "Age"], ["VolumeMode"]),
    ("CustomResourceDefinition", "apiextensions.k8s.io", ["Name", "Created At"], []),
    ("Role", "rbac.authorization.k8s.io", ["Name", "Created At"], []),
    ("RoleBinding", "rbac.authorization.k8s.io", ["Name", "Role", "Age"], ["Users", "Groups", "ServiceAccounts"]),
    ("PodDisruptionBudget", "policy", ["Name", "Min Available", "Max Unavailable", "Allowed Disruptions", "Age"], []),
    ("HorizontalPodAutoscaler", "autoscaling", ["Name", "Reference", "Targets", "MinPods", "MaxPods", "Replicas",
                                                "Age"], []),
])
def test_builtin_columns(kind: str, group: str, normal: list[str], wide: list[str]) -> None:
    defs = columns(rt(kind, group))
    assert names(defs, 0) == normal
    assert names(defs, 1) == wide


def test_unknown_kind_prints_name_and_age() -> None:
    other = ResourceType("example.com", "v1", "Widget", "widgets", True)
    assert names(columns(other)) == ["Name", "Age"]
    assert cells(other, {"metadata": {"name": "w", "creationTimestamp": ts(timedelta(minutes=3))}}, NOW) == ["w", "3m"]


@pytest.mark.parametrize("t", BUILTIN, ids=lambda t: f"{t.group}/{t.version}/{t.kind}")
def test_every_builtin_prints_a_row_as_wide_as_its_columns(t: ResourceType) -> None:
    for obj in ({"metadata": {"name": "x"}}, {"metadata": {"name": "x", "creationTimestamp": ts(timedelta(hours=1))},
                                              "spec": {}, "status": {}}):
        row = cells(t, obj, NOW)
        assert len(row) == len(columns(t))
        if columns(t)[0]["format"] == "name":
            assert row[0] == "x"


# ---- pods ---------------------------------------------------------------------------------

def pod_row(pod: dict[str, Any]) -> list[Any]:
    return cells(POD, pod, NOW)


@pytest.mark.parametrize("pod,ready,status", [
    (make_pod(phase="Pending", statuses=[]), "0/1", "Pending"),
    (make_pod(phase="Pending", statuses=[waiting("ContainerCreating")]), "0/1", "ContainerCreating"),
    (make_pod(statuses=[running()]), "1/1", "Running"),
    (make_pod(containers=2, statuses=[running(), running(ready=False)]), "1/2", "Running"),
    (make_pod(phase="Succeeded", statuses=[terminated("Completed")]), "0/1", "Completed"),
    (make_pod(phase="Failed", statuses=[terminated("Error", 1)]), "0/1", "Error"),
    (make_pod(phase="Failed", statuses=[terminated(exit_code=3)]), "0/1", "ExitCode:3"),
    (make_pod(phase="Failed", statuses=[terminated(exit_code=137, signal=9)]), "0/1", "Signal:9"),
    (make_pod(statuses=[waiting("CrashLoopBackOff", 3)]), "0/1", "CrashLoopBackOff"),
    (make_pod(phase="Pending", statuses=[waiting("ErrImagePull")]), "0/1", "ErrImagePull"),
    (make_pod(statuses=[running()], deletionTimestamp=ts(timedelta(seconds=1))), "1/1", "Terminating"),
    (make_pod(phase="Succeeded", statuses=[terminated("Completed")], deletionTimestamp=ts(timedelta(seconds=1))),
     "0/1", "Completed"),
    (make_pod(phase="Failed", reason="Evicted", statuses=[]), "0/1", "Evicted"),
    (make_pod(phase="Pending", statuses=[], conditions=[{"type": "PodScheduled", "status": "False",
                                                         "reason": "SchedulingGated"}]), "0/1", "SchedulingGated"),
])
def test_pod_ready_and_status(pod: dict[str, Any], ready: str, status: str) -> None:
    row = pod_row(pod)
    assert row[1:3] == [ready, status]


def test_pod_init_containers() -> None:
    init = [{"name": "i1", "image": "busybox"}]
    pending = make_pod(phase="Pending", init=init, init_statuses=[waiting("PodInitializing")],
                       statuses=[waiting("PodInitializing")])
    assert pod_row(pending)[2] == "Init:0/1"
    crash = make_pod(phase="Pending", init=init, init_statuses=[waiting("CrashLoopBackOff", 2)],
                     statuses=[waiting("PodInitializing")])
    assert pod_row(crash)[2:4] == ["Init:CrashLoopBackOff", "2"]
    failed = make_pod(phase="Failed", init=init, init_statuses=[terminated("Error", 1)], statuses=[])
    assert pod_row(failed)[2] == "Init:Error"
    done = make_pod(init=init, init_statuses=[terminated("Completed")], statuses=[running()])
    assert pod_row(done)[1:3] == ["1/1", "Running"]


def test_pod_sidecar_counts_as_a_container() -> None:
    init = [{"name": "side", "image": "envoy", "restartPolicy": "Always"}]
    side = {"name": "side", "ready": True, "started": True, "restartCount": 1, "state": {"running": {}}}
    pod = make_pod(init=init, init_statuses=[side], statuses=[running()],
                   conditions=[{"type": "Initialized", "status": "True"}])
    assert pod_row(pod)[1:4] == ["2/2", "Running", "1"]


def test_pod_restarts_show_when_the_last_one_happened() -> None:
    pod = make_pod(statuses=[running(restarts=3, last_finished=ts(timedelta(minutes=5)))])
    assert pod_row(pod)[3] == "3 (5m ago)"
    assert pod_row(make_pod(statuses=[waiting("CrashLoopBackOff", 2)]))[3] == "2"


def test_pod_wide_cells() -> None:
    pod = make_pod(statuses=[running()], age=timedelta(minutes=5, seconds=10))
    pod["spec"]["readinessGates"] = [{"conditionType": "x/ready"}, {"conditionType": "y/ready"}]
    pod["status"]["conditions"] = [{"type": "x/ready", "status": "True"}]
    assert pod_row(pod) == ["web", "1/1", "Running", "0", "5m10s", "10.42.0.5", "node-1", "<none>", "1/2"]
    bare = make_pod(phase="Pending")
    del bare["spec"]["nodeName"]
    bare["status"] = {"phase": "Pending"}
    assert pod_row(bare)[5:] == ["<none>", "<none>", "<none>", "<none>"]


def test_pod_without_creation_timestamp_has_unknown_age() -> None:
    pod = make_pod()
    del pod["metadata"]["creationTimestamp"]
    assert pod_row(pod)[4] == "<unknown>"


# ---- other kinds --------------------------------------------------------------------------

def test_deployment_cells() -> None:
    d = {"metadata": {"name": "web", "creationTimestamp": ts(timedelta(hours=3))},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                  "template": {"spec": {"containers": [{"name": "a", "image": "nginx"},
                                                       {"name": "b", "image": "busybox"}]}}},
         "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    assert cells(DEPLOY, d, NOW) == ["web", "2/3", 3, 2, "3h", "a,b", "nginx,busybox", "app=web"]


def test_service_cells() -> None:
    svc = {"metadata": {"name": "web", "creationTimestamp": ts(timedelta(days=2, hours=5))},
           "spec": {"type": "NodePort", "clusterIP": "10.43.0.10", "clusterIPs": ["10.43.0.10"],
                    "ports": [{"port": 80, "protocol": "TCP"}, {"port": 443, "nodePort": 30443, "protocol": "TCP"}],
                    "selector": {"app": "web"}}}
    assert cells(SVC, svc, NOW) == ["web", "NodePort", "10.43.0.10", "<none>", "80/TCP,443:30443/TCP", "2d5h", "app=web"]
    lb = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.11", "ports": []}}
    assert cells(SVC, lb, NOW)[2:5] == ["10.43.0.11", "<pending>", "<none>"]
    lb["status"] = {"loadBalancer": {"ingress": [{"ip": "192.168.1.10"}]}}
    assert cells(SVC, lb, NOW)[3] == "192.168.1.10"
    ext = {"metadata": {"name": "ext"}, "spec": {"type": "ExternalName", "externalName": "example.com"}}
    assert cells(SVC, ext, NOW)[1:4] == ["ExternalName", "<none>", "example.com"]
    headless = {"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 53, "protocol": "UDP"}]}}
    assert cells(SVC, headless, NOW)[1:5] == ["ClusterIP", "None", "<none>", "53/UDP"]


def test_node_cells() -> None:
    node: dict[str, Any] = {"metadata": {"name": "n1", "creationTimestamp": ts(timedelta(days=10)),
                         "labels": {"node-role.kubernetes.io/control-plane": "true",
                                    "node-role.kubernetes.io/master": "true", "kubernetes.io/hostname": "n1"}},
            "spec": {"unschedulable": True},
            "status": {"conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
                       "addresses": [{"type": "InternalIP", "address": "192.168.1.5"}, {"type": "Hostname", "address": "n1"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0+minik", "osImage": "Debian GNU/Linux 12",
                                    "kernelVersion": "6.1.0", "containerRuntimeVersion": "containerd://1.7.24"}}}
    assert cells(NODE, node, NOW) == ["n1", "Ready,SchedulingDisabled", "control-plane,master", "10d", "v1.32.0+minik",
                                      "192.168.1.5", "<none>", "Debian GNU/Linux 12", "6.1.0", "containerd://1.7.24"]
    node["status"]["conditions"] = [{"type": "Ready", "status": "Unknown"}]
    node["spec"] = {}
    node["metadata"]["labels"] = {}
    assert cells(NODE, node, NOW)[1:3] == ["NotReady", "<none>"]
    assert cells(NODE, {"metadata": {"name": "n2"}}, NOW)[1] == "Unknown"


def test_event_cells() -> None:
    ev = {"metadata": {"name": "web.17f", "namespace": "default"},
          "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{app}"},
          "reason": "Pulled", "message": "Successfully pulled image\n", "type": "Normal", "count": 3,
          "firstTimestamp": ts(timedelta(minutes=10)), "lastTimestamp": ts(timedelta(seconds=30)),
          "source": {"component": "kubelet", "host": "node-1"}}
    assert cells(EVENT, ev, NOW) == ["30s", "Normal", "Pulled", "pod/web", "spec.containers{app}", "kubelet, node-1",
                                     "Successfully pulled image", "10m", 3, "web.17f"]
    new_style = {"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"}, "eventTime": "2025-01-10T11:59:00.123456Z",
                 "reportingComponent": "minik", "type": "Normal", "reason": "Started", "message": "m"}
    assert cells(EVENT, new_style, NOW)[:4] == ["59s", "Normal", "Started", "node"]
    assert cells(EVENT, new_style, NOW)[5] == "minik"
    assert cells(EVENT, new_style, NOW)[8] == 1


def test_config_and_identity_cells() -> None:
    age = ts(timedelta(seconds=5))
    assert cells(rt("ConfigMap"), {"metadata": {"name": "c", "creationTimestamp": age}, "data": {"a": "1"},
                                   "binaryData": {"b": "AA=="}}, NOW) == ["c", 2, "5s"]
    assert cells(rt("Secret"), {"metadata": {"name": "s", "creationTimestamp": age}, "type": "kubernetes.io/tls",
                                "data": {"tls.crt": "", "tls.key": ""}}, NOW) == ["s", "kubernetes.io/tls", 2, "5s"]
    assert cells(rt("ServiceAccount"), {"metadata": {"name": "default", "creationTimestamp": age}}, NOW) == \
        ["default", 0, "5s"]
    assert cells(rt("Namespace"), {"metadata": {"name": "x", "creationTimestamp": age},
                                   "status": {"phase": "Terminating"}}, NOW) == ["x", "Terminating", "5s"]


def test_job_and_cronjob_cells() -> None:
    job = {"metadata": {"name": "pi", "creationTimestamp": ts(timedelta(minutes=2))},
           "spec": {"completions": 1, "parallelism": 1, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                    "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
           "status": {"succeeded": 1, "startTime": ts(timedelta(minutes=2)), "completionTime": ts(timedelta(seconds=60)),
                      "conditions": [{"type": "Complete", "status": "True"}]}}
    assert cells(rt("Job", "batch"), job, NOW) == ["pi", "Complete", "1/1", "60s", "2m", "pi", "perl",
                                                    "batch.kubernetes.io/controller-uid=u"]
    running_job = {"metadata": {"name": "j"}, "spec": {"parallelism": 3}, "status": {"startTime": ts(timedelta(seconds=9))}}
    assert cells(rt("Job", "batch"), running_job, NOW)[1:4] == ["Running", "0/1 of 3", "9s"]
    failed = {"metadata": {"name": "j"}, "spec": {}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    assert cells(rt("Job", "batch"), failed, NOW)[1:4] == ["Failed", "0/1", ""]
    cj = {"metadata": {"name": "cj", "creationTimestamp": ts(timedelta(hours=1))},
          "spec": {"schedule": "*/1 * * * *", "suspend": False,
                   "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
          "status": {"active": [{"name": "cj-1"}], "lastScheduleTime": ts(timedelta(seconds=20))}}
    assert cells(rt("CronJob", "batch"), cj, NOW) == ["cj", "*/1 * * * *", "<none>", "False", 1, "20s", "60m", "c",
                                                      "busybox", "<none>"]


def test_ingress_rbac_and_storage_cells() -> None:
    ing = {"metadata": {"name": "ing"}, "spec": {"ingressClassName": "minik", "tls": [{"hosts": ["a.com"]}],
                                                "rules": [{"host": "a.com"}, {"host": "b.com"}, {}]},
           "status": {"loadBalancer": {"ingress": [{"ip": "192.168.1.5"}]}}}
    assert cells(rt("Ingress", "networking.k8s.io"), ing, NOW)[:5] == ["ing", "minik", "a.com,b.com", "192.168.1.5",
                                                                      "80, 443"]
    rb = {"metadata": {"name": "rb"}, "roleRef": {"kind": "ClusterRole", "name": "view"},
          "subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "sa", "namespace": "ns"},
                       {"kind": "Group", "name": "g"}]}
    assert cells(rt("RoleBinding", "rbac.authorization.k8s.io"), rb, NOW)[1:] == ["ClusterRole/view", "<unknown>",
                                                                                 "u", "g", "ns/sa"]
    role = {"metadata": {"name": "r", "creationTimestamp": "2025-01-01T00:00:00Z"}}
    assert cells(rt("Role", "rbac.authorization.k8s.io"), role, NOW) == ["r", "2025-01-01T00:00:00Z"]
    sc = {"metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
          "provisioner": "minik.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"}
    assert cells(rt("StorageClass", "storage.k8s.io"), sc, NOW)[:5] == [
        "local-path (default)", "minik.io/local-path", "Delete", "WaitForFirstConsumer", False]
    pvc = {"metadata": {"name": "data"}, "spec": {"volumeName": "pv-1", "storageClassName": "local-path"},
           "status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}}
    assert cells(rt("PersistentVolumeClaim"), pvc, NOW) == ["data", "Bound", "pv-1", "1Gi", "RWO", "local-path",
                                                            "<unset>", "<unknown>", "<unset>"]
    hpa = {"metadata": {"name": "h"}, "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1,
                                              "maxReplicas": 5, "metrics": [{"type": "Resource", "resource": {
                                                  "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
           "status": {"currentReplicas": 2}}
    assert cells(rt("HorizontalPodAutoscaler", "autoscaling"), hpa, NOW)[:6] == [
        "h", "Deployment/web", "cpu: <unknown>/80%", "1", 5, 2]
    pdb = {"metadata": {"name": "p"}, "spec": {"maxUnavailable": "50%"}, "status": {"disruptionsAllowed": 1}}
    assert cells(rt("PodDisruptionBudget", "policy"), pdb, NOW)[:4] == ["p", "N/A", "50%", 1]


def test_endpoints_cells() -> None:
    ep = {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": f"10.42.0.{i}"} for i in range(1, 5)],
                                                     "ports": [{"port": 80}]}]}
    assert cells(rt("Endpoints"), ep, NOW)[1] == "10.42.0.1:80,10.42.0.2:80,10.42.0.3:80 + 1 more..."
    assert cells(rt("Endpoints"), {"metadata": {"name": "e"}}, NOW)[1] == "<none>"


# ---- custom resources ---------------------------------------------------------------------

def test_custom_resource_without_printer_columns() -> None:
    obj = {"metadata": {"name": "ct", "creationTimestamp": ts(timedelta(minutes=4))}}
    defs = columns(CRONTAB)
    assert [(d["name"], d["type"]) for d in defs] == [("Name", "string"), ("Age", "date")]
    assert cells(CRONTAB, obj, NOW) == ["ct", "4m"]


def test_custom_resource_printer_columns() -> None:
    cols: list[dict[str, Any]] = [{"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec", "description": "cron"},
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status",
             "priority": 1},
            {"name": "Image", "type": "string", "jsonPath": ".spec['image.name']"},
            {"name": "First", "type": "string", "jsonPath": ".spec.items[0]"},
            {"name": "Missing", "type": "string", "jsonPath": ".spec.nope"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
    obj = {"metadata": {"name": "ct", "creationTimestamp": ts(timedelta(hours=2))},
           "spec": {"cronSpec": "* * * * */5", "replicas": 2, "image.name": "img", "items": ["a", "b"]},
           "status": {"conditions": [{"type": "Synced", "status": "False"}, {"type": "Ready", "status": "True"}]}}
    defs = columns(CRONTAB, cols)
    assert [d["name"] for d in defs] == ["Name", "Spec", "Replicas", "Ready", "Image", "First", "Missing", "Age"]
    assert defs[3]["priority"] == 1 and defs[1]["description"] == "cron"
    assert cells(CRONTAB, obj, NOW, cols) == ["ct", "* * * * */5", 2, "True", "img", "a", None, "120m"]


# ---- the Table ----------------------------------------------------------------------------

def test_table_shape() -> None:
    pods = [make_pod("a", statuses=[running()]), make_pod("b", statuses=[running()])]
    t = table(POD, pods, NOW, resource_version="1012", continue_token="tok")
    assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
    assert t["metadata"] == {"resourceVersion": "1012", "continue": "tok"}
    assert names(t["columnDefinitions"]) == names(columns(POD))
    assert [r["cells"][0] for r in t["rows"]] == ["a", "b"]
    assert t["rows"][0]["object"] == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                      "metadata": pods[0]["metadata"]}
    assert table(POD, [], NOW, resource_version="5")["metadata"] == {"resourceVersion": "5"}


def test_table_include_object_and_headers() -> None:
    pod = make_pod(statuses=[running()])
    assert table(POD, [pod], NOW, include_object="Object")["rows"][0]["object"] is pod
    assert "object" not in table(POD, [pod], NOW, include_object="None")["rows"][0]
    t = table(POD, [pod], NOW, with_headers=False)
    assert t["columnDefinitions"] == [] and len(t["rows"][0]["cells"]) == 9


def test_table_accepts_naive_now() -> None:
    pod = make_pod(statuses=[running()])
    assert table(POD, [pod], NOW.replace(tzinfo=None))["rows"][0]["cells"][4] == "51s"


def test_malformed_object_does_not_break_the_table() -> None:
    bad = {"metadata": {"name": "bad"}, "spec": {"containers": "oops"}, "status": {"containerStatuses": [None]}}
    row = table(POD, [bad], NOW)["rows"][0]["cells"]
    assert row[0] == "bad" and len(row) == 9


def test_a_thousand_pods_print_fast() -> None:
    pods = [make_pod(f"p{i}", containers=2, statuses=[running(restarts=1, last_finished=ts(timedelta(minutes=1))),
                                                     running()]) for i in range(1000)]
    table(POD, pods[:10], NOW)  # warm up
    best = min(_timed(lambda: table(POD, pods, NOW, resource_version="1")) for _ in range(3))
    assert best < 0.05, f"{best * 1000:.1f} ms for 1000 pods"


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start
