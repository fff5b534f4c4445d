"""Kubernetes 1.32's bootstrap RBAC policy as data: default ClusterRoles and ClusterRoleBindings.

Transcribed (as facts: names, rules, labels, subjects) from the bootstrap policy kube-apiserver
reconciles at start (`plugin/pkg/auth/authorizer/rbac/bootstrappolicy`, feature-gated alpha rules
left out). `admin`, `edit` and `view` are aggregated: their rules are the rules of ClusterRoles
labelled `rbac.authorization.k8s.io/aggregate-to-{admin,edit,view}`, filled by
`minik.api.rbac_aggregation` (and precomputed here, so a fresh cluster is right before the
controller runs). Every object carries `kubernetes.io/bootstrapping: rbac-defaults` and
`rbac.authorization.kubernetes.io/autoupdate: "true"`. kube-system and kube-public also get
their default Roles and RoleBindings (`namespaced_defaults`).
`reconcile(current, desired)` is kube's start-up reconciliation: objects with autoupdate "true"
get missing rules/subjects/labels/annotations added (extra ones are kept), aggregated roles only
get their selectors; `autoupdate: "false"` leaves an object alone.
Neighbours: `minik.api.rbac.bootstrap_objects` lists these; `minik.daemon._bootstrap` calls
`reconcile_rbac_defaults` with them.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING, Any

from minik.api import status as st
from minik.api.rbac_rules import resolve_aggregation
from minik.apis.registry import Registry

if TYPE_CHECKING:
    from minik.api.service import ResourceService, WriteOptions

log = logging.getLogger("minik.rbac")

Obj = dict[str, Any]
RBAC = "rbac.authorization.k8s.io"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
AGG = "rbac.authorization.k8s.io/aggregate-to-"

READ = "get list watch"
WRITE = "create delete deletecollection patch update"
EVENTS = "create patch update"
CORE = ""


def r(groups: list[str] | str, resources: str, verbs: str, names: str = "") -> Obj:
    """One resource rule; resources, verbs and names are space-separated."""
    rule: Obj = {"apiGroups": [groups] if isinstance(groups, str) else list(groups),
                 "resources": resources.split(), "verbs": verbs.split()}
    if names:
        rule["resourceNames"] = names.split()
    return rule


def urls(paths: str, verbs: str = "get") -> Obj:
    return {"nonResourceURLs": paths.split(), "verbs": verbs.split()}


def events() -> Obj:
    return r([CORE, "events.k8s.io"], "events", EVENTS)


# ---- user-facing roles ------------------------------------------------------------------------
AGGREGATE_TO_ADMIN = [
    r("authorization.k8s.io", "localsubjectaccessreviews", "create"),
    r(RBAC, "rolebindings roles", "create delete deletecollection get list patch update watch"),
]
AGGREGATE_TO_EDIT = [
    r(CORE, "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy", READ),
    r(CORE, "serviceaccounts", "impersonate"),
    r(CORE, "pods pods/attach pods/exec pods/portforward pods/proxy", WRITE),
    r(CORE, "pods/eviction", "create"),
    r(CORE, "configmaps events persistentvolumeclaims replicationcontrollers replicationcontrollers/scale secrets "
            "serviceaccounts services services/proxy", WRITE),
    r(CORE, "serviceaccounts/token", "create"),
    r("apps", "daemonsets deployments deployments/rollback deployments/scale replicasets replicasets/scale "
              "statefulsets statefulsets/scale", WRITE),
    r("autoscaling", "horizontalpodautoscalers", WRITE),
    r("batch", "cronjobs jobs", WRITE),
    r("extensions", "daemonsets deployments deployments/rollback deployments/scale ingresses networkpolicies "
                    "replicasets replicasets/scale replicationcontrollers/scale", WRITE),
    r("policy", "poddisruptionbudgets", WRITE),
    r("networking.k8s.io", "ingresses networkpolicies", WRITE),
    r("coordination.k8s.io", "leases", "create delete deletecollection get list patch update watch"),
]
AGGREGATE_TO_VIEW = [
    r(CORE, "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods replicationcontrollers "
            "replicationcontrollers/scale serviceaccounts services services/status", READ),
    r(CORE, "bindings events limitranges namespaces/status pods/log pods/status replicationcontrollers/status "
            "resourcequotas resourcequotas/status", READ),
    r(CORE, "namespaces", READ),
    r("discovery.k8s.io", "endpointslices", READ),
    r("apps", "controllerrevisions daemonsets daemonsets/status deployments deployments/scale deployments/status "
              "replicasets replicasets/scale replicasets/status statefulsets statefulsets/scale statefulsets/status", READ),
    r("autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status", READ),
    r("batch", "cronjobs cronjobs/status jobs jobs/status", READ),
    r("extensions", "daemonsets daemonsets/status deployments deployments/scale deployments/status ingresses "
                    "ingresses/status networkpolicies replicasets replicasets/scale replicasets/status "
                    "replicationcontrollers/scale", READ),
    r("policy", "poddisruptionbudgets poddisruptionbudgets/status", READ),
    r("networking.k8s.io", "ingresses ingresses/status networkpolicies", READ),
]

# name → (rules, extra labels, aggregate-to selector suffix or "")
CLUSTER_ROLES: dict[str, tuple[list[Obj], dict[str, str], str]] = {
    "cluster-admin": ([r("*", "*", "*"), urls("*", "*")], {}, ""),
    "admin": ([], {}, "admin"),
    "edit": ([], {AGG + "admin": "true"}, "edit"),
    "view": ([], {AGG + "edit": "true"}, "view"),
    "system:aggregate-to-admin": (AGGREGATE_TO_ADMIN, {AGG + "admin": "true"}, ""),
    "system:aggregate-to-edit": (AGGREGATE_TO_EDIT, {AGG + "edit": "true"}, ""),
    "system:aggregate-to-view": (AGGREGATE_TO_VIEW, {AGG + "view": "true"}, ""),
    # metrics-server installs this with its API; minik serves metrics.k8s.io itself (kubectl top as view).
    "system:aggregated-metrics-reader": ([r("metrics.k8s.io", "pods nodes", "get list watch")],
                                         {AGG + "admin": "true", AGG + "edit": "true", AGG + "view": "true"}, ""),
    "system:discovery": ([urls("/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/")], {}, ""),
    "system:monitoring": ([urls("/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*")], {}, ""),
    "system:basic-user": ([r("authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews", "create"),
                           r("authentication.k8s.io", "selfsubjectreviews", "create")], {}, ""),
    "system:public-info-viewer": ([urls("/healthz /livez /readyz /version /version/")], {}, ""),
    "system:service-account-issuer-discovery": ([urls("/.well-known/openid-configuration /openid/v1/jwks")], {}, ""),
    "system:auth-delegator": ([r("authentication.k8s.io", "tokenreviews", "create"),
                               r("authorization.k8s.io", "subjectaccessreviews", "create")], {}, ""),
    "system:heapster": ([r(CORE, "events namespaces nodes pods", READ), r("extensions", "deployments", READ)], {}, ""),
    "system:kube-aggregator": ([r(CORE, "endpoints services", READ)], {}, ""),
    "system:kube-dns": ([r(CORE, "endpoints services", "list watch")], {}, ""),
    "system:kubelet-api-admin": ([r(CORE, "nodes", READ), r(CORE, "nodes", "proxy"),
                                  r(CORE, "nodes/log nodes/metrics nodes/proxy nodes/stats", "*")], {}, ""),
    "system:node-bootstrapper": ([r("certificates.k8s.io", "certificatesigningrequests", "create get list watch")], {}, ""),
    "system:node-problem-detector": ([r(CORE, "nodes", "get"), r(CORE, "nodes/status", "patch"), events()], {}, ""),
    "system:node-proxier": ([r(CORE, "endpoints services", "list watch"), r(CORE, "nodes", READ), events(),
                             r("discovery.k8s.io", "endpointslices", "list watch")], {}, ""),
    "system:node": ([
        r("authentication.k8s.io", "tokenreviews", "create"),
        r("authorization.k8s.io", "localsubjectaccessreviews subjectaccessreviews", "create"),
        r(CORE, "services", READ),
        r(CORE, "nodes", "create get list watch"),
        r(CORE, "nodes/status", "patch update"),
        r(CORE, "nodes", "patch update"),
        r(CORE, "events", EVENTS),
        r(CORE, "pods", READ),
        r(CORE, "pods", "create delete"),
        r(CORE, "pods/status", "patch update"),
        r(CORE, "pods/eviction", "create"),
        r(CORE, "configmaps secrets", READ),
        r(CORE, "persistentvolumeclaims persistentvolumes", "get"),
        r(CORE, "endpoints", "get"),
        r("certificates.k8s.io", "certificatesigningrequests", "create get list watch"),
        r("coordination.k8s.io", "leases", "create delete get patch update"),
        r("storage.k8s.io", "volumeattachments", "get"),
        r(CORE, "serviceaccounts/token", "create"),
        r(CORE, "persistentvolumeclaims/status", "get patch update"),
        r("storage.k8s.io", "csidrivers", READ),
        r("storage.k8s.io", "csinodes", "create delete get patch update"),
        r("node.k8s.io", "runtimeclasses", READ),
    ], {}, ""),
    "system:kube-controller-manager": ([
        events(),
        r("coordination.k8s.io", "leases", "create"),
        r("coordination.k8s.io", "leases", "get update", "kube-controller-manager"),
        r(CORE, "secrets serviceaccounts", "create"),
        r(CORE, "secrets", "delete"),
        r(CORE, "configmaps namespaces secrets serviceaccounts", "get"),
        r(CORE, "secrets serviceaccounts", "update"),
        r("authentication.k8s.io", "tokenreviews", "create"),
        r("authorization.k8s.io", "subjectaccessreviews", "create"),
        r("*", "*", "list watch"),
        r(CORE, "serviceaccounts/token", "create"),
    ], {}, ""),
    "system:kube-scheduler": ([
        events(),
        r("coordination.k8s.io", "leases", "create"),
        r("coordination.k8s.io", "leases", "get update", "kube-scheduler"),
        r(CORE, "nodes", READ),
        r(CORE, "pods", "delete get list watch"),
        r(CORE, "bindings pods/binding", "create"),
        r(CORE, "pods/status", "patch update"),
        r(CORE, "replicationcontrollers services", READ),
        r(["apps", "extensions"], "replicasets", READ),
        r("apps", "statefulsets", READ),
        r("policy", "poddisruptionbudgets", READ),
        r(CORE, "persistentvolumeclaims persistentvolumes", READ),
        r("authentication.k8s.io", "tokenreviews", "create"),
        r("authorization.k8s.io", "subjectaccessreviews", "create"),
        r("storage.k8s.io", "csinodes", READ),
        r(CORE, "namespaces", READ),
        r("storage.k8s.io", "csidrivers", READ),
        r("storage.k8s.io", "csistoragecapacities", READ),
    ], {}, ""),
    "system:volume-scheduler": ([r(CORE, "persistentvolumes", "get list patch update watch"),
                                 r("storage.k8s.io", "storageclasses", READ),
                                 r(CORE, "persistentvolumeclaims", "get list patch update watch")], {}, ""),
    "system:persistent-volume-provisioner": ([r(CORE, "persistentvolumes", "create delete get list watch"),
                                              r(CORE, "persistentvolumeclaims", "get list update watch"),
                                              r("storage.k8s.io", "storageclasses", READ),
                                              r(CORE, "events", "watch"), events()], {}, ""),
}

# Controller roles (`system:controller:<name>`) for the controllers minik runs, each bound to the
# ServiceAccount kube-system/<name> as kube-controller-manager's are.
CONTROLLER_ROLES: dict[str, list[Obj]] = {
    "clusterrole-aggregation-controller": [r(RBAC, "clusterroles", "escalate get list patch update watch")],
    "cronjob-controller": [r("batch", "cronjobs", "get list update watch"),
                           r("batch", "jobs", "create delete get list patch update watch"),
                           r("batch", "cronjobs/status", "update"), r("batch", "cronjobs/finalizers", "update"),
                           r(CORE, "pods", "delete list watch"), events()],
    "daemon-set-controller": [r(["apps", "extensions"], "daemonsets", READ),
                              r(["apps", "extensions"], "daemonsets/status", "update"),
                              r(["apps", "extensions"], "daemonsets/finalizers", "update"),
                              r(CORE, "nodes", "list watch"), r(CORE, "pods", "create delete list patch watch"),
                              r(CORE, "pods/binding", "create"),
                              r("apps", "controllerrevisions", "create delete get list patch update watch"), events()],
    "deployment-controller": [r(["apps", "extensions"], "deployments", "get list update watch"),
                              r(["apps", "extensions"], "deployments/status", "update"),
                              r(["apps", "extensions"], "deployments/finalizers", "update"),
                              r(["apps", "extensions"], "replicasets", "create delete get list patch update watch"),
                              r(CORE, "pods", "get list update watch"), events()],
    "disruption-controller": [r(["apps", "extensions"], "deployments", READ), r(["apps", "extensions"], "replicasets", READ),
                              r(CORE, "replicationcontrollers", READ), r("policy", "poddisruptionbudgets", READ),
                              r("apps", "statefulsets", READ), r("policy", "poddisruptionbudgets/status", "update"),
                              r(CORE, "pods/status", "patch update"), r("*", "*/scale", "get"), events()],
    "endpoint-controller": [r(CORE, "pods services", READ), r(CORE, "endpoints", "create delete get list update watch"),
                            r(CORE, "endpoints/restricted", "create"), events()],
    "endpointslice-controller": [r(CORE, "nodes pods services", READ), r(CORE, "services/finalizers", "update"),
                                 r("discovery.k8s.io", "endpointslices", "create delete get list update watch"), events()],
    "generic-garbage-collector": [r("*", "*", "delete get list patch update watch"), events()],
    "horizontal-pod-autoscaler": [r("autoscaling", "horizontalpodautoscalers", READ),
                                  r("autoscaling", "horizontalpodautoscalers/status", "update"),
                                  r("*", "*/scale", "get update"), r(CORE, "pods", "list watch"),
                                  r("metrics.k8s.io", "pods", "list watch"), r("custom.metrics.k8s.io", "*", READ),
                                  r("external.metrics.k8s.io", "*", READ), events()],
    "job-controller": [r("batch", "jobs", "get list patch update watch"), r("batch", "jobs/status", "update"),
                       r("batch", "jobs/finalizers", "update"), r(CORE, "pods", "create delete list patch watch"), events()],
    "namespace-controller": [r(CORE, "namespaces", "delete get list watch"),
                             r(CORE, "namespaces/finalize namespaces/status", "update"),
                             r("*", "*", "delete deletecollection get list watch")],
    "node-controller": [r(CORE, "nodes", "delete get list patch update watch"), r(CORE, "nodes/status", "patch update"),
                        r(CORE, "pods/status", "patch update"), r(CORE, "pods", "delete get list watch"), events()],
    "persistent-volume-binder": [r(CORE, "persistentvolumes", "create delete get list update watch"),
                                 r(CORE, "persistentvolumes/status", "update"),
                                 r(CORE, "persistentvolumeclaims", "get list update watch"),
                                 r(CORE, "persistentvolumeclaims/status", "update"),
                                 r(CORE, "pods", "create delete get list watch"),
                                 r("storage.k8s.io", "storageclasses", READ), r(CORE, "nodes", "list watch"),
                                 events(), r(CORE, "events", "watch")],
    "pod-garbage-collector": [r(CORE, "pods", "delete list watch"), r(CORE, "nodes", READ), r(CORE, "pods/status", "patch")],
    "replicaset-controller": [r(["apps", "extensions"], "replicasets", "get list update watch"),
                              r(["apps", "extensions"], "replicasets/status", "update"),
                              r(["apps", "extensions"], "replicasets/finalizers", "update"),
                              r(CORE, "pods", "create delete list patch watch"), events()],
    "resourcequota-controller": [r("*", "*", "list watch"), r(CORE, "resourcequotas/status", "update"), events()],
    "root-ca-cert-publisher": [r(CORE, "configmaps", "create update"), events()],
    "service-account-controller": [r(CORE, "serviceaccounts", "create"), events()],
    "statefulset-controller": [r(CORE, "pods", "list watch"), r("apps", "statefulsets", READ),
                               r("apps", "statefulsets/status", "update"), r("apps", "statefulsets/finalizers", "update"),
                               r(CORE, "pods", "create delete get patch update"),
                               r("apps", "controllerrevisions", "create delete get list patch update watch"),
                               r(CORE, "persistentvolumeclaims", "create get list watch"),
                               r(CORE, "persistentvolumeclaims", "delete update"),
                               r(CORE, "pods/finalizers", "update"), events()],
    "ttl-after-finished-controller": [r("batch", "jobs", "delete get list watch"), events()],
}


def _group(name: str) -> Obj:
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def _user(name: str) -> Obj:
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def _sa(namespace: str, name: str) -> Obj:
    return {"kind": "ServiceAccount", "name": name, "namespace": namespace}


# binding name (= ClusterRole name) → subjects
CLUSTER_ROLE_BINDINGS: dict[str, list[Obj]] = {
    "cluster-admin": [_group("system:masters")],
    "system:basic-user": [_group("system:authenticated")],
    "system:discovery": [_group("system:authenticated")],
    "system:kube-controller-manager": [_user("system:kube-controller-manager")],
    "system:kube-dns": [_sa("kube-system", "kube-dns")],
    "system:kube-scheduler": [_user("system:kube-scheduler")],
    "system:monitoring": [_group("system:monitoring")],
    "system:node": [],   # nodes are authorized by the Node authorizer; kube ships this binding empty
    "system:node-proxier": [_user("system:kube-proxy")],
    "system:public-info-viewer": [_group("system:authenticated"), _group("system:unauthenticated")],
    "system:service-account-issuer-discovery": [_group("system:serviceaccounts")],
    "system:volume-scheduler": [_user("system:kube-scheduler")],
}


# Namespaced defaults: (namespace, Role name) → rules, and (namespace, RoleBinding name) → (Role, subjects).
_LEADER_LOCKING = [r("coordination.k8s.io", "leases", "create get list update watch")]
ROLES: dict[tuple[str, str], list[Obj]] = {
    ("kube-public", "system:controller:bootstrap-signer"): [r(CORE, "configmaps", READ),
                                                           r(CORE, "configmaps", "update", "cluster-info"), events()],
    ("kube-system", "extension-apiserver-authentication-reader"): [
        r(CORE, "configmaps", READ, "extension-apiserver-authentication")],
    ("kube-system", "system::leader-locking-kube-controller-manager"): _LEADER_LOCKING,
    ("kube-system", "system::leader-locking-kube-scheduler"): _LEADER_LOCKING,
    ("kube-system", "system:controller:bootstrap-signer"): [r(CORE, "secrets", READ)],
    ("kube-system", "system:controller:cloud-provider"): [r(CORE, "configmaps", "create get list watch")],
    ("kube-system", "system:controller:token-cleaner"): [r(CORE, "secrets", "delete get list watch"), events()],
}
ROLE_BINDINGS: dict[tuple[str, str], tuple[str, list[Obj]]] = {
    ("kube-public", "system:controller:bootstrap-signer"): ("system:controller:bootstrap-signer",
                                                           [_sa("kube-system", "bootstrap-signer")]),
    ("kube-system", "system::extension-apiserver-authentication-reader"): (
        "extension-apiserver-authentication-reader", [_user("system:kube-controller-manager"), _user("system:kube-scheduler")]),
    ("kube-system", "system::leader-locking-kube-controller-manager"): (
        "system::leader-locking-kube-controller-manager",
        [_user("system:kube-controller-manager"), _sa("kube-system", "kube-controller-manager")]),
    ("kube-system", "system::leader-locking-kube-scheduler"): (
        "system::leader-locking-kube-scheduler", [_user("system:kube-scheduler"), _sa("kube-system", "kube-scheduler")]),
    ("kube-system", "system:controller:bootstrap-signer"): ("system:controller:bootstrap-signer",
                                                           [_sa("kube-system", "bootstrap-signer")]),
    ("kube-system", "system:controller:cloud-provider"): ("system:controller:cloud-provider",
                                                         [_sa("kube-system", "cloud-provider")]),
    ("kube-system", "system:controller:token-cleaner"): ("system:controller:token-cleaner",
                                                        [_sa("kube-system", "token-cleaner")]),
}


def _meta(name: str, labels: dict[str, str] | None = None, namespace: str = "") -> Obj:
    m: Obj = {"name": name, "labels": {**BOOTSTRAP_LABEL, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}
    if namespace:
        m["namespace"] = namespace
    return m


def namespaced_defaults() -> list[Obj]:
    """The default Roles and RoleBindings of kube-system and kube-public."""
    out: list[Obj] = [{"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": _meta(name, None, ns), "rules": copy.deepcopy(rules)}
                      for (ns, name), rules in ROLES.items()]
    for (ns, name), (role, subjects) in ROLE_BINDINGS.items():
        out.append({"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": _meta(name, None, ns),
                    "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": role}, "subjects": copy.deepcopy(subjects)})
    return out


def cluster_roles() -> list[Obj]:
    """Every default ClusterRole, aggregated ones with their rules already resolved."""
    out: list[Obj] = []
    for name, (rules, labels, aggregate) in CLUSTER_ROLES.items():
        role: Obj = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": _meta(name, labels),
                     "rules": copy.deepcopy(rules)}
        if aggregate:
            role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {AGG + aggregate: "true"}}]}
        out.append(role)
    for name, rules in CONTROLLER_ROLES.items():
        out.append({"apiVersion": f"{RBAC}/v1", "kind": "ClusterRole", "metadata": _meta(f"system:controller:{name}"),
                    "rules": copy.deepcopy(rules)})
    return resolve_aggregation(out)


def cluster_role_bindings() -> list[Obj]:
    out: list[Obj] = []
    for name, subjects in CLUSTER_ROLE_BINDINGS.items():
        out.append(_binding(name, name, subjects))
    for name in CONTROLLER_ROLES:
        full = f"system:controller:{name}"
        out.append(_binding(full, full, [_sa("kube-system", name)]))
    return out


def _binding(name: str, role: str, subjects: list[Obj]) -> Obj:
    b: Obj = {"apiVersion": f"{RBAC}/v1", "kind": "ClusterRoleBinding", "metadata": _meta(name),
              "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role}}
    if subjects:
        b["subjects"] = copy.deepcopy(subjects)
    return b


# ---- start-up reconciliation ------------------------------------------------------------------
def reconcile(current: Obj, desired: Obj) -> Obj | None:
    """The updated object when `current` lacks something of `desired`, else None.

    Only objects annotated autoupdate "true" are touched; rules and subjects are added, never
    removed (kube reconciles without removing extra permissions); an aggregated role only gets
    its selectors (its rules belong to the aggregation controller). A changed roleRef cannot be
    expressed as an update: the caller recreates the binding (`needs_recreate`)."""
    cm = current.get("metadata") or {}
    if (cm.get("annotations") or {}).get(AUTOUPDATE, "true") != "true":
        return None
    out = copy.deepcopy(current)
    om = out.setdefault("metadata", {})
    dm = desired["metadata"]
    om["labels"] = {**(om.get("labels") or {}), **dm.get("labels", {})}
    om["annotations"] = {**(om.get("annotations") or {}), **dm.get("annotations", {})}
    if desired.get("kind") == "ClusterRole":
        if desired.get("aggregationRule"):
            sels = list((out.get("aggregationRule") or {}).get("clusterRoleSelectors") or [])
            for s in desired["aggregationRule"]["clusterRoleSelectors"]:
                if s not in sels:
                    sels.append(s)
            out["aggregationRule"] = {"clusterRoleSelectors": sels}
            if not out.get("rules"):
                out["rules"] = copy.deepcopy(desired.get("rules") or [])
        else:
            rules = list(out.get("rules") or [])
            for rule in desired.get("rules") or []:
                if rule not in rules:
                    rules.append(rule)
            out["rules"] = rules
    else:
        subjects = list(out.get("subjects") or [])
        for s in desired.get("subjects") or []:
            if s not in subjects:
                subjects.append(s)
        if subjects:
            out["subjects"] = subjects
    return out if out != current else None


def needs_recreate(current: Obj, desired: Obj) -> bool:
    """A default binding whose roleRef was changed (autoupdate on) is deleted and created again."""
    auto = ((current.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE, "true") == "true"
    return auto and "roleRef" in desired and current.get("roleRef") != desired["roleRef"]


async def reconcile_rbac_defaults(service: ResourceService, registry: Registry, objects: list[tuple[str, Obj]],
                                  opts: WriteOptions) -> None:
    """Create missing defaults and bring autoupdate ones up to date (one write per changed object)."""
    for key, desired in objects:
        rt = next(t for t in registry.types if t.store_key == key)
        name, ns = desired["metadata"]["name"], desired["metadata"].get("namespace", "")
        current = service.store.get(key, ns, name)
        try:
            if current is not None and needs_recreate(current, desired):
                await service.delete(rt, ns, name)
                current = None
            if current is None:
                await service.create(rt, ns, desired, opts)
                continue
            upd = reconcile(current, desired)
            if upd is not None:
                await service.update(rt, ns, name, upd, opts)
                log.info("reconciled default %s %s", rt.kind, name)
        except st.StatusError as e:
            log.warning("bootstrap %s %s: %s", rt.kind, name, e.message)
