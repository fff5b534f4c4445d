"""Validation of built-in objects with Kubernetes 1.32's field paths, reasons and messages.

`validate(rt, obj, old)` returns the `Cause`s kube-apiserver would put in a 422 Invalid
(empty = valid): ObjectMeta first, then the kind's own rules, plus update rules when `old` is
given (immutable fields, Pod and StatefulSet spec restrictions, immutable ConfigMaps/Secrets).
Objects are expected to be defaulted already (`minik.apis.defaults.apply_defaults`), as kube
defaults before it validates. Custom resources get ObjectMeta checks only here; their schema is
checked by `minik.apis.crdschema`. Modules: `field` (cause builders, Go value rendering), `meta`,
`core`, `apps`, `batch` (with cron parsing), `networking`, `rbac`, `apiextensions`,
`autoscaling` (with policy/storage/discovery/coordination). Neighbours: `minik.api.service`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from minik.apis.errors import Cause
from minik.apis.registry import ResourceType
from minik.apis.validation import apiextensions, apiregistration, apps, autoscaling, batch, core, networking, rbac
from minik.apis.validation.meta import validate_object_meta, validate_object_meta_update

Obj = dict[str, Any]
Validator = Callable[[Obj, "Obj | None"], list[Cause]]

_BY_KIND: dict[tuple[str, str], Validator] = {
    ("", "Pod"): core.validate_pod,
    ("", "Service"): core.validate_service,
    ("", "ConfigMap"): core.validate_configmap,
    ("", "Secret"): core.validate_secret,
    ("", "Namespace"): core.validate_namespace,
    ("", "Node"): core.validate_node,
    ("", "PersistentVolume"): core.validate_pv,
    ("", "PersistentVolumeClaim"): core.validate_pvc,
    ("", "ReplicationController"): core.validate_replication_controller,
    ("", "ServiceAccount"): core.validate_service_account,
    ("", "Event"): core.validate_event,
    ("", "ResourceQuota"): core.validate_resource_quota,
    ("", "LimitRange"): core.validate_limit_range,
    ("", "Endpoints"): core.validate_endpoints,
    ("apps", "Deployment"): apps.validate_deployment,
    ("apps", "ReplicaSet"): apps.validate_replicaset,
    ("apps", "StatefulSet"): apps.validate_statefulset,
    ("apps", "DaemonSet"): apps.validate_daemonset,
    ("apps", "ControllerRevision"): apps.validate_controller_revision,
    ("batch", "Job"): batch.validate_job,
    ("batch", "CronJob"): batch.validate_cronjob,
    ("networking.k8s.io", "Ingress"): networking.validate_ingress,
    ("networking.k8s.io", "IngressClass"): networking.validate_ingress_class,
    ("networking.k8s.io", "NetworkPolicy"): networking.validate_network_policy,
    ("rbac.authorization.k8s.io", "Role"): rbac.validate_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): rbac.validate_cluster_role,
    ("rbac.authorization.k8s.io", "RoleBinding"): rbac.validate_role_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): rbac.validate_cluster_role_binding,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): apiextensions.validate_crd,
    ("autoscaling", "HorizontalPodAutoscaler"): autoscaling.validate_hpa,
    ("policy", "PodDisruptionBudget"): autoscaling.validate_pdb,
    ("storage.k8s.io", "StorageClass"): autoscaling.validate_storage_class,
    ("discovery.k8s.io", "EndpointSlice"): autoscaling.validate_endpoint_slice,
    ("coordination.k8s.io", "Lease"): autoscaling.validate_lease,
    ("apiregistration.k8s.io", "APIService"): apiregistration.validate_apiservice,
}


def validate(rt: ResourceType, obj: Obj, old: Obj | None = None) -> list[Cause]:
    """Causes for a create (`old` None) or an update of `obj` (already defaulted)."""
    if old is None:
        causes = validate_object_meta(rt, obj)
    else:
        causes = validate_object_meta_update(rt, obj, old)
    if rt.custom:
        return causes
    fn = _BY_KIND.get((rt.group, rt.kind))
    if fn is not None:
        causes += fn(obj, old)
    return causes


def validate_status_update(rt: ResourceType, obj: Obj, old: Obj) -> list[Cause]:
    """For `/status` writes: kube only re-checks ObjectMeta there (the spec is copied from `old`)."""
    return validate_object_meta_update(rt, obj, old)


__all__ = ["validate", "validate_status_update"]
