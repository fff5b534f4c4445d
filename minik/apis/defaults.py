"""Kubernetes 1.32 defaulting for built-in kinds, applied in place to decoded objects.

Mirrors the `SetDefaults_*` functions of `k8s.io/kubernetes/pkg/apis/*/v1` (and the generated
walkers that apply them to nested pod specs, probes, volumes and ports), plus what kube-apiserver's
default admission plugins and create strategies add to every object of a kind: the pod's
`serviceAccountName` (ServiceAccount), not-ready/unreachable tolerations (DefaultTolerationSeconds),
`priority`/`preemptionPolicy` (Priority), pod `status.phase`/`qosClass`, the Namespace
`kubernetes` finalizer and name label, and the Job selector/labels derived from its uid.
Quantities in resource lists are rewritten in canonical form (`0.5` → `500m`) as kube stores them.
Every function is idempotent: the API layer runs `apply_defaults` on creates and on updates.
Neighbours: called by `minik.api.service` before `minik.apis.validation.validate`; cluster IP
and node port allocation stay with the API layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minik.apis.quantity import Quantity, canonicalize
from minik.apis.registry import ResourceType

Obj = dict[str, Any]

RBAC_GROUP = "rbac.authorization.k8s.io"
DEFAULT_FILE_MODE = 420  # 0644, the default for configMap/secret/downwardAPI/projected volumes
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
DEFAULT_TOLERATION_SECONDS = 300
# Built-in PriorityClasses (scheduling.k8s.io) that exist in every cluster.
SYSTEM_PRIORITIES = {"system-node-critical": 2000001000, "system-cluster-critical": 2000000000}
JOB_NAME_LABELS = ("job-name", "batch.kubernetes.io/job-name")
CONTROLLER_UID_LABELS = ("controller-uid", "batch.kubernetes.io/controller-uid")


def _d(parent: Obj, key: str) -> Obj:
    """parent[key] as a dict, created when missing or null (Go's non-pointer structs)."""
    v = parent.get(key)
    if not isinstance(v, dict):
        v = {}
        parent[key] = v
    return v


def _as_dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _dicts(v: Any) -> list[Obj]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []


def _set(parent: Obj, key: str, value: Any) -> None:
    """Default `key` when it is absent, null or the Go zero value "" (kube's `== ""` checks)."""
    if parent.get(key) in (None, ""):
        parent[key] = value


# ---- quantities -----------------------------------------------------------------------------------
def canonicalize_resource_list(rl: Any) -> None:
    """SetDefaults_ResourceList: round up to milli and store canonical strings."""
    if isinstance(rl, dict):
        for k, v in list(rl.items()):
            rl[k] = canonicalize(v, milli=True)


def _canonical_quantities(d: Any) -> None:
    if isinstance(d, dict):
        for k, v in list(d.items()):
            d[k] = canonicalize(v)


# ---- pod spec -------------------------------------------------------------------------------------
def image_pull_policy(image: str) -> str:
    """SetDefaults_Container: Always for `:latest` or an untagged, undigested image."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    tag = last.split(":", 1)[1] if ":" in last else ""
    if not tag and not digest:
        tag = "latest"
    if name != name.lower():
        tag = ""  # not a valid reference: kube's parser fails and the tag comes back empty
    return "Always" if tag == "latest" else "IfNotPresent"


def _http_get(h: Any) -> None:
    if isinstance(h, dict):
        _set(h, "path", "/")
        _set(h, "scheme", "HTTP")


def _probe(p: Any) -> None:
    if not isinstance(p, dict):
        return
    for k, v in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1), ("failureThreshold", 3)):
        if p.get(k) in (None, 0):
            p[k] = v
    _http_get(p.get("httpGet"))


def _field_ref(ref: Any) -> None:
    if isinstance(ref, dict):
        _set(ref, "apiVersion", "v1")


def container_defaults(c: Obj) -> None:
    _set(c, "imagePullPolicy", image_pull_policy(str(c.get("image") or "")))
    _set(c, "terminationMessagePath", "/dev/termination-log")
    _set(c, "terminationMessagePolicy", "File")
    for p in _dicts(c.get("ports")):
        _set(p, "protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            h = lifecycle.get(hook)
            if isinstance(h, dict):
                _http_get(h.get("httpGet"))
    for e in _dicts(c.get("env")):
        vf = e.get("valueFrom")
        if isinstance(vf, dict):
            _field_ref(vf.get("fieldRef"))
    res = _d(c, "resources")
    canonicalize_resource_list(res.get("limits"))
    canonicalize_resource_list(res.get("requests"))


_VOLUME_SOURCES = ("hostPath", "emptyDir", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "secret", "nfs",
                   "iscsi", "glusterfs", "persistentVolumeClaim", "rbd", "flexVolume", "cinder", "cephfs", "flocker",
                   "downwardAPI", "fc", "azureFile", "configMap", "vsphereVolume", "quobyte", "azureDisk",
                   "photonPersistentDisk", "projected", "portworxVolume", "scaleIO", "storageos", "csi", "ephemeral",
                   "image")


def _downward_items(items: Any) -> None:
    for it in _dicts(items):
        _field_ref(it.get("fieldRef"))


def volume_defaults(v: Obj) -> None:
    if not any(isinstance(v.get(s), dict) for s in _VOLUME_SOURCES):
        v["emptyDir"] = {}
    for src in ("configMap", "secret", "downwardAPI", "projected"):
        s = v.get(src)
        if isinstance(s, dict) and s.get("defaultMode") is None:
            s["defaultMode"] = DEFAULT_FILE_MODE
    if isinstance(v.get("downwardAPI"), dict):
        _downward_items(v["downwardAPI"].get("items"))
    proj = v.get("projected")
    if isinstance(proj, dict):
        for s in _dicts(proj.get("sources")):
            tok = s.get("serviceAccountToken")
            if isinstance(tok, dict):
                _set(tok, "expirationSeconds", 3600)
            if isinstance(s.get("downwardAPI"), dict):
                _downward_items(s["downwardAPI"].get("items"))
    hp = v.get("hostPath")
    if isinstance(hp, dict) and hp.get("type") is None:
        hp["type"] = ""
    ed = v.get("emptyDir")
    if isinstance(ed, dict) and "sizeLimit" in ed:
        ed["sizeLimit"] = canonicalize(ed["sizeLimit"])
    eph = v.get("ephemeral")
    if isinstance(eph, dict) and isinstance(eph.get("volumeClaimTemplate"), dict):
        pvc_spec_defaults(_d(eph["volumeClaimTemplate"], "spec"))


def pod_spec_defaults(spec: Obj) -> None:
    """SetDefaults_PodSpec and everything nested (containers, probes, volumes): pods and templates."""
    _set(spec, "dnsPolicy", "ClusterFirst")
    _set(spec, "restartPolicy", "Always")
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _set(spec, "schedulerName", "default-scheduler")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            container_defaults(c)
    for v in _dicts(spec.get("volumes")):
        volume_defaults(v)
    # v1 conversion keeps the deprecated serviceAccount field equal to serviceAccountName.
    if spec.get("serviceAccountName") and not spec.get("serviceAccount"):
        spec["serviceAccount"] = spec["serviceAccountName"]
    elif spec.get("serviceAccount") and not spec.get("serviceAccountName"):
        spec["serviceAccountName"] = spec["serviceAccount"]


def _template(obj: Obj, *path: str) -> None:
    cur = obj
    for p in path:
        cur = _d(cur, p)
    pod_spec_defaults(_d(cur, "spec"))


def qos_class(spec: Obj) -> str:
    """GetPodQOS over cpu and memory of all containers and init containers."""
    requests: dict[str, Quantity] = {}
    limits: dict[str, Quantity] = {}
    guaranteed = True
    for c in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
        res = _as_dict(c.get("resources"))
        req = {k: q for k, v in _as_dict(res.get("requests")).items() if k in ("cpu", "memory") and (q := Quantity.of(v))}
        lim = {k: q for k, v in _as_dict(res.get("limits")).items() if k in ("cpu", "memory") and (q := Quantity.of(v))}
        for k, q in req.items():
            if not q.is_zero():
                requests[k] = q
        for k, q in lim.items():
            if not q.is_zero():
                limits[k] = q
        if set(lim) != {"cpu", "memory"} or any(lim[k].is_zero() for k in lim):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed:
        for c in _dicts(spec.get("containers")) + _dicts(spec.get("initContainers")):
            res = _as_dict(c.get("resources"))
            for k in ("cpu", "memory"):
                if Quantity.of(_as_dict(res.get("requests")).get(k)) != Quantity.of(_as_dict(res.get("limits")).get(k)):
                    guaranteed = False
    return "Guaranteed" if guaranteed else "Burstable"


def _tolerates(tols: list[Obj], key: str) -> bool:
    return any(t.get("key") in (key, "", None) and t.get("effect") in ("NoExecute", "", None) for t in tols)


def pod_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    pod_spec_defaults(spec)
    # SetDefaults_Pod: requests default to limits (pods only, not templates).
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            res = _d(c, "resources")
            lim = res.get("limits")
            if isinstance(lim, dict) and lim:
                req = res.get("requests")
                if not isinstance(req, dict):
                    req = res["requests"] = {}
                for k, v in lim.items():
                    req.setdefault(k, v)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork"):
        for key in ("containers", "initContainers"):
            for c in _dicts(spec.get(key)):
                for p in _dicts(c.get("ports")):
                    if not p.get("hostPort"):
                        p["hostPort"] = p.get("containerPort")
    # Admission: ServiceAccount.
    _set(spec, "serviceAccountName", "default")
    _set(spec, "serviceAccount", spec["serviceAccountName"])
    # Admission: DefaultTolerationSeconds.
    tols = spec.get("tolerations")
    if not isinstance(tols, list):
        tols = []
    added = [t for t in tols if isinstance(t, dict)]
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not _tolerates(added, key):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    if tols:
        spec["tolerations"] = tols
    # Admission: Priority (no global default PriorityClass in minik).
    pc = spec.get("priorityClassName") or ""
    if spec.get("priority") is None and (not pc or pc in SYSTEM_PRIORITIES):
        spec["priority"] = SYSTEM_PRIORITIES.get(pc, 0)
    _set(spec, "preemptionPolicy", "PreemptLowerPriority")
    status = _d(obj, "status")
    _set(status, "phase", "Pending")
    _set(status, "qosClass", qos_class(spec))


# ---- workloads --------------------------------------------------------------------------------------
def deployment_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _d(spec, "strategy")
    _set(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        ru = _d(strategy, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = "25%"
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _template(spec, "template")
    obj.setdefault("status", {})


def replicaset_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _template(spec, "template")
    _d(obj, "status").setdefault("replicas", 0)


def replication_controller_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    tmpl = spec.get("template")
    labels = _as_dict(_as_dict(_as_dict(tmpl).get("metadata")).get("labels"))
    if labels:
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        m = _d(obj, "metadata")
        if not m.get("labels"):
            m["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if isinstance(tmpl, dict):
        _template(spec, "template")
    _d(obj, "status").setdefault("replicas", 0)


def pvc_spec_defaults(spec: Obj) -> None:
    _set(spec, "volumeMode", "Filesystem")
    res = spec.get("resources")
    if isinstance(res, dict):
        canonicalize_resource_list(res.get("requests"))
        canonicalize_resource_list(res.get("limits"))


def pvc_defaults(obj: Obj) -> None:
    pvc_spec_defaults(_d(obj, "spec"))
    _set(_d(obj, "status"), "phase", "Pending")


def statefulset_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    _set(spec, "podManagementPolicy", "OrderedReady")
    us = _d(spec, "updateStrategy")
    if not us.get("type"):
        us["type"] = "RollingUpdate"
        if not isinstance(us.get("rollingUpdate"), dict):
            us["rollingUpdate"] = {}
    if us["type"] == "RollingUpdate" and isinstance(us.get("rollingUpdate"), dict):
        if us["rollingUpdate"].get("partition") is None:
            us["rollingUpdate"]["partition"] = 0
    policy = _d(spec, "persistentVolumeClaimRetentionPolicy")
    _set(policy, "whenDeleted", "Retain")
    _set(policy, "whenScaled", "Retain")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    for t in _dicts(spec.get("volumeClaimTemplates")):
        pvc_defaults(t)
    _template(spec, "template")
    status = _d(obj, "status")
    status.setdefault("replicas", 0)
    status.setdefault("availableReplicas", 0)


def daemonset_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    us = _d(spec, "updateStrategy")
    _set(us, "type", "RollingUpdate")
    if us["type"] == "RollingUpdate":
        ru = _d(us, "rollingUpdate")
        if ru.get("maxUnavailable") is None:
            ru["maxUnavailable"] = 1
        if ru.get("maxSurge") is None:
            ru["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _template(spec, "template")
    status = _d(obj, "status")
    for k in ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady"):
        status.setdefault(k, 0)


def job_selector(obj: Obj) -> None:
    """The Job strategy's generateSelector: job-name and controller-uid labels on the template and
    a controller-uid selector, unless the user manages the selector (`manualSelector: true`)."""
    m = _as_dict(obj.get("metadata"))
    spec = _d(obj, "spec")
    uid = m.get("uid")
    if not uid or spec.get("manualSelector") is True:
        return
    # Kubernetes 1.32 stores the generated-selector choice explicitly (`-o yaml` shows it).
    if spec.get("manualSelector") is None:
        spec["manualSelector"] = False
    tm = _d(_d(spec, "template"), "metadata")
    labels = _d(tm, "labels")
    for k in JOB_NAME_LABELS:
        labels.setdefault(k, m.get("name", ""))
    for k in CONTROLLER_UID_LABELS:
        labels.setdefault(k, uid)
    sel = _d(spec, "selector")
    _d(sel, "matchLabels").setdefault(CONTROLLER_UID_LABELS[1], uid)


def job_spec_defaults(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    _set(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    pfp = spec.get("podFailurePolicy")
    if isinstance(pfp, dict):
        for rule in _dicts(pfp.get("rules")):
            for pat in _dicts(rule.get("onPodConditions")):
                _set(pat, "status", "True")
    _set(spec, "podReplacementPolicy", "Failed" if isinstance(pfp, dict) else "TerminatingOrFailed")


def job_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    job_spec_defaults(spec)
    job_selector(obj)
    labels = _as_dict(_as_dict(_as_dict(spec.get("template")).get("metadata")).get("labels"))
    m = _d(obj, "metadata")
    if labels and not m.get("labels"):
        m["labels"] = dict(labels)
    _template(spec, "template")
    obj.setdefault("status", {})


def cronjob_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    _set(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    _template(spec, "jobTemplate", "spec", "template")
    obj.setdefault("status", {})


# ---- core, non-workload -----------------------------------------------------------------------------
def service_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    _set(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        cfg = _d(_d(spec, "sessionAffinityConfig"), "clientIP")
        if cfg.get("timeoutSeconds") is None:
            cfg["timeoutSeconds"] = 10800
    _set(spec, "type", "ClusterIP")
    for p in _dicts(spec.get("ports")):
        _set(p, "protocol", "TCP")
        if p.get("targetPort") in (None, 0, ""):
            p["targetPort"] = p.get("port")
    typ = spec["type"]
    if typ in ("NodePort", "LoadBalancer"):
        _set(spec, "externalTrafficPolicy", "Cluster")
    if typ in ("NodePort", "LoadBalancer", "ClusterIP") and spec.get("internalTrafficPolicy") is None:
        spec["internalTrafficPolicy"] = "Cluster"
    if typ == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    # v1 conversion keeps clusterIP and clusterIPs[0] in step.
    if spec.get("clusterIP") and not spec.get("clusterIPs"):
        spec["clusterIPs"] = [spec["clusterIP"]]
    elif isinstance(spec.get("clusterIPs"), list) and spec["clusterIPs"] and not spec.get("clusterIP"):
        spec["clusterIP"] = spec["clusterIPs"][0]
    if typ != "ExternalName":
        # Done by the service REST strategy on a single-stack IPv4 cluster.
        headless_no_selector = spec.get("clusterIP") == "None" and not spec.get("selector")
        _set(spec, "ipFamilyPolicy", "RequireDualStack" if headless_no_selector else "SingleStack")
        if not spec.get("ipFamilies"):
            ip = str(spec.get("clusterIP") or "")
            spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4"]
    _d(_d(obj, "status"), "loadBalancer")


def namespace_defaults(obj: Obj) -> None:
    m = _d(obj, "metadata")
    if m.get("name"):
        _d(m, "labels")["kubernetes.io/metadata.name"] = m["name"]
    spec = _d(obj, "spec")
    # Added while the namespace lives (kube's PrepareForCreate); a Terminating namespace whose
    # controller removed it through `finalize` must not get it back, or it is never removed.
    if not spec.get("finalizers") and not m.get("deletionTimestamp"):
        spec["finalizers"] = ["kubernetes"]
    _set(_d(obj, "status"), "phase", "Active")


def node_defaults(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict):
        _canonical_quantities(status.get("capacity"))
        _canonical_quantities(status.get("allocatable"))
        if status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
            status["allocatable"] = dict(status["capacity"])


def pv_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    _set(spec, "persistentVolumeReclaimPolicy", "Retain")
    _set(spec, "volumeMode", "Filesystem")
    _canonical_quantities(spec.get("capacity"))
    hp = spec.get("hostPath")
    if isinstance(hp, dict) and hp.get("type") is None:
        hp["type"] = ""
    _set(_d(obj, "status"), "phase", "Pending")


def secret_defaults(obj: Obj) -> None:
    _set(obj, "type", "Opaque")


def endpoints_defaults(obj: Obj) -> None:
    for ss in _dicts(obj.get("subsets")):
        for p in _dicts(ss.get("ports")):
            _set(p, "protocol", "TCP")


def endpointslice_defaults(obj: Obj) -> None:
    for p in _dicts(obj.get("ports")):
        if p.get("name") is None:
            p["name"] = ""
        _set(p, "protocol", "TCP")


def limitrange_defaults(obj: Obj) -> None:
    for item in _dicts(_d(obj, "spec").get("limits")):
        for k in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            canonicalize_resource_list(item.get(k))
        if item.get("type") == "Container":
            default = _d(item, "default")
            default_request = _d(item, "defaultRequest")
            for k, v in _as_dict(item.get("max")).items():
                default.setdefault(k, v)
            for k, v in default.items():
                default_request.setdefault(k, v)
            for k, v in _as_dict(item.get("min")).items():
                default_request.setdefault(k, v)


def resourcequota_defaults(obj: Obj) -> None:
    canonicalize_resource_list(_d(obj, "spec").get("hard"))


# ---- other groups --------------------------------------------------------------------------------
def networkpolicy_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for p in _dicts(rule.get("ports")):
                _set(p, "protocol", "TCP")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])


def ingressclass_defaults(obj: Obj) -> None:
    params = _d(obj, "spec").get("parameters")
    if isinstance(params, dict):
        _set(params, "scope", "Cluster")


def ingress_defaults(obj: Obj) -> None:
    _d(_d(obj, "status"), "loadBalancer")


def _subjects(obj: Obj) -> None:
    for s in _dicts(obj.get("subjects")):
        if not s.get("apiGroup"):
            if s.get("kind") == "ServiceAccount":
                s.pop("apiGroup", None)
            elif s.get("kind") in ("User", "Group"):
                s["apiGroup"] = RBAC_GROUP


def rolebinding_defaults(obj: Obj) -> None:
    _set(_d(obj, "roleRef"), "apiGroup", RBAC_GROUP)
    _subjects(obj)


def _scaling_rules(rules: Any, up: bool) -> Obj:
    r: Obj = rules if isinstance(rules, dict) else {}
    if r.get("stabilizationWindowSeconds") is None:
        r["stabilizationWindowSeconds"] = 0 if up else 300
    _set(r, "selectPolicy", "Max")
    if r.get("policies") is None:
        r["policies"] = ([{"type": "Pods", "value": 4, "periodSeconds": 15},
                          {"type": "Percent", "value": 100, "periodSeconds": 15}] if up
                         else [{"type": "Percent", "value": 100, "periodSeconds": 15}])
    return r


def hpa_defaults(obj: Obj, version: str) -> None:
    spec = _d(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if version == "v2":
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        behavior = spec.get("behavior")
        if isinstance(behavior, dict):
            behavior["scaleUp"] = _scaling_rules(behavior.get("scaleUp"), True)
            behavior["scaleDown"] = _scaling_rules(behavior.get("scaleDown"), False)


def storageclass_defaults(obj: Obj) -> None:
    _set(obj, "reclaimPolicy", "Delete")
    _set(obj, "volumeBindingMode", "Immediate")


def crd_defaults(obj: Obj) -> None:
    spec = _d(obj, "spec")
    names = _d(spec, "names")
    if not names.get("singular") and names.get("kind"):
        names["singular"] = str(names["kind"]).lower()
    if not names.get("listKind") and names.get("kind"):
        names["listKind"] = str(names["kind"]) + "List"
    conv = spec.get("conversion")
    if not isinstance(conv, dict):
        spec["conversion"] = {"strategy": "None"}
    else:
        _set(conv, "strategy", "None")
        svc = ((conv.get("webhook") or {}).get("clientConfig") or {}).get("service")
        if isinstance(svc, dict) and svc.get("port") is None:
            svc["port"] = 443
    status = _d(obj, "status")
    if not status.get("storedVersions"):
        stored = [v.get("name") for v in _dicts(spec.get("versions")) if v.get("storage")]
        if stored:
            status["storedVersions"] = stored[:1]


_BY_KIND: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): pod_defaults,
    ("", "Service"): service_defaults,
    ("", "Secret"): secret_defaults,
    ("", "Namespace"): namespace_defaults,
    ("", "Node"): node_defaults,
    ("", "PersistentVolume"): pv_defaults,
    ("", "PersistentVolumeClaim"): pvc_defaults,
    ("", "Endpoints"): endpoints_defaults,
    ("", "LimitRange"): limitrange_defaults,
    ("", "ResourceQuota"): resourcequota_defaults,
    ("", "ReplicationController"): replication_controller_defaults,
    ("", "PodTemplate"): lambda o: _template(o, "template"),
    ("apps", "Deployment"): deployment_defaults,
    ("apps", "ReplicaSet"): replicaset_defaults,
    ("apps", "StatefulSet"): statefulset_defaults,
    ("apps", "DaemonSet"): daemonset_defaults,
    ("batch", "Job"): job_defaults,
    ("batch", "CronJob"): cronjob_defaults,
    ("networking.k8s.io", "NetworkPolicy"): networkpolicy_defaults,
    ("networking.k8s.io", "IngressClass"): ingressclass_defaults,
    ("networking.k8s.io", "Ingress"): ingress_defaults,
    ("discovery.k8s.io", "EndpointSlice"): endpointslice_defaults,
    (RBAC_GROUP, "RoleBinding"): rolebinding_defaults,
    (RBAC_GROUP, "ClusterRoleBinding"): rolebinding_defaults,
    ("storage.k8s.io", "StorageClass"): storageclass_defaults,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): crd_defaults,
}


def apply_defaults(rt: ResourceType, obj: Obj) -> None:
    """Fill in what Kubernetes 1.32 defaults for `rt`, in place. Custom resources: nothing here
    (their schema defaults belong to the CRD machinery)."""
    if rt.custom:
        return
    if rt.group == "autoscaling" and rt.kind == "HorizontalPodAutoscaler":
        hpa_defaults(obj, rt.version)
        return
    fn = _BY_KIND.get((rt.group, rt.kind))
    if fn is not None:
        fn(obj)
