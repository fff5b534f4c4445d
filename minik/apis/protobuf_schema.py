"""Field tables for the Kubernetes protobuf messages minik decodes.

Neighbours: read by `minik.apis.protobuf` (the wire reader and decoder); nothing else imports
it. Field numbers are the published ones from Kubernetes' `generated.proto` files
(k8s.io/api core/v1, apps/v1, batch/v1, networking/v1, rbac/v1, policy/v1, scheduling/v1,
authentication/v1, authorization/v1 and apimachinery meta/v1). Only the messages that
kubectl's typed clients send are listed (`kubectl create <generator>`, `create token`,
`auth can-i`, `drain`); fields not listed are skipped by the decoder, like unknown JSON
fields under `fieldValidation=Ignore`.

`ptr=True` marks fields that are Go pointers (`*int32`, `*bool`, `*string`): the Go encoder
writes them only when set, so a zero value is meaningful and kept. Every other scalar is
always written by the Go encoder and is dropped when zero, which is what `omitempty` does
in the JSON form.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


class Kind(enum.Enum):
    STR = "string"
    BYTES = "bytes"          # base64 in JSON
    INT = "int"              # int32/int64 varint (two's complement for negatives)
    BOOL = "bool"
    MSG = "message"          # nested message → dict (kept even when empty, like Go structs)
    INLINE = "inline"        # nested message whose fields are inlined in JSON (`json:",inline"`)
    MAP = "map"              # map entry message {1: key, 2: value}; value kind in `value`
    QUANTITY = "quantity"    # resource.Quantity {1: string} → "500m"
    INTSTR = "intstr"        # intstr.IntOrString {1: type, 2: intVal, 3: strVal} → int | str
    TIME = "time"            # metav1.Time {1: seconds, 2: nanos} → RFC3339
    MICROTIME = "microtime"  # metav1.MicroTime → RFC3339 with microseconds
    RAWJSON = "rawjson"      # runtime.RawExtension / FieldsV1 {1: raw bytes} → parsed JSON


@dataclass(frozen=True, slots=True)
class Field:
    json: str
    kind: Kind
    msg: str = ""                 # message name for MSG / INLINE / MAP with MSG values
    repeated: bool = False
    ptr: bool = False
    value: Kind = Kind.STR        # value kind of a MAP


def s(name: str, ptr: bool = False) -> Field:
    return Field(name, Kind.STR, ptr=ptr)


def rs(name: str) -> Field:
    return Field(name, Kind.STR, repeated=True)


def i(name: str, ptr: bool = False) -> Field:
    return Field(name, Kind.INT, ptr=ptr)


def b(name: str, ptr: bool = False) -> Field:
    return Field(name, Kind.BOOL, ptr=ptr)


def m(name: str, msg: str) -> Field:
    return Field(name, Kind.MSG, msg)


def rm(name: str, msg: str) -> Field:
    return Field(name, Kind.MSG, msg, repeated=True)


def inline(msg: str) -> Field:
    return Field("", Kind.INLINE, msg)


def smap(name: str, value: Kind = Kind.STR, msg: str = "") -> Field:
    return Field(name, Kind.MAP, msg, value=value)


def intstr(name: str, ptr: bool = True) -> Field:
    return Field(name, Kind.INTSTR, ptr=ptr)


def quantity(name: str) -> Field:
    return Field(name, Kind.QUANTITY)


def time(name: str) -> Field:
    return Field(name, Kind.TIME)


Schema = Mapping[str, Mapping[int, Field]]

_OBJ = {1: m("metadata", "ObjectMeta")}

_MESSAGES: dict[str, dict[int, Field]] = {
    # ---- apimachinery meta/v1
    "ObjectMeta": {
        1: s("name"), 2: s("generateName"), 3: s("namespace"), 4: s("selfLink"), 5: s("uid"),
        6: s("resourceVersion"), 7: i("generation"), 8: time("creationTimestamp"),
        9: time("deletionTimestamp"), 10: i("deletionGracePeriodSeconds", ptr=True),
        11: smap("labels"), 12: smap("annotations"), 13: rm("ownerReferences", "OwnerReference"),
        14: rs("finalizers"), 17: rm("managedFields", "ManagedFieldsEntry"),
    },
    "OwnerReference": {
        5: s("apiVersion"), 1: s("kind"), 3: s("name"), 4: s("uid"),
        6: b("controller", ptr=True), 7: b("blockOwnerDeletion", ptr=True),
    },
    "ManagedFieldsEntry": {
        1: s("manager"), 2: s("operation"), 3: s("apiVersion"), 4: time("time"),
        6: s("fieldsType"), 7: Field("fieldsV1", Kind.RAWJSON), 8: s("subresource"),
    },
    "LabelSelector": {1: smap("matchLabels"), 2: rm("matchExpressions", "LabelSelectorRequirement")},
    "LabelSelectorRequirement": {1: s("key"), 2: s("operator"), 3: rs("values")},
    "DeleteOptions": {
        1: i("gracePeriodSeconds", ptr=True), 2: m("preconditions", "Preconditions"),
        3: b("orphanDependents", ptr=True), 4: s("propagationPolicy", ptr=True), 5: rs("dryRun"),
    },
    "Preconditions": {1: s("uid", ptr=True), 2: s("resourceVersion", ptr=True)},
    # ---- core/v1 objects
    "Namespace": {**_OBJ, 2: m("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: rs("finalizers")},
    "ConfigMap": {**_OBJ, 2: smap("data"), 3: smap("binaryData", Kind.BYTES), 4: b("immutable", ptr=True)},
    "Secret": {
        **_OBJ, 2: smap("data", Kind.BYTES), 3: s("type"), 4: smap("stringData"), 5: b("immutable", ptr=True),
    },
    "ServiceAccount": {
        **_OBJ, 2: rm("secrets", "ObjectReference"), 3: rm("imagePullSecrets", "LocalObjectReference"),
        4: b("automountServiceAccountToken", ptr=True),
    },
    "Service": {**_OBJ, 2: m("spec", "ServiceSpec")},
    "ServiceSpec": {
        1: rm("ports", "ServicePort"), 2: smap("selector"), 3: s("clusterIP"), 4: s("type"),
        5: rs("externalIPs"), 7: s("sessionAffinity"), 8: s("loadBalancerIP"),
        9: rs("loadBalancerSourceRanges"), 10: s("externalName"), 11: s("externalTrafficPolicy"),
        12: i("healthCheckNodePort"), 13: b("publishNotReadyAddresses"),
        14: m("sessionAffinityConfig", "SessionAffinityConfig"), 17: s("ipFamilyPolicy", ptr=True),
        18: rs("clusterIPs"), 19: rs("ipFamilies"), 20: b("allocateLoadBalancerNodePorts", ptr=True),
        21: s("loadBalancerClass", ptr=True), 22: s("internalTrafficPolicy", ptr=True),
        23: s("trafficDistribution", ptr=True),
    },
    "ServicePort": {
        1: s("name"), 2: s("protocol"), 3: i("port"), 4: intstr("targetPort", ptr=False), 5: i("nodePort"),
        6: s("appProtocol", ptr=True),
    },
    "SessionAffinityConfig": {1: m("clientIP", "ClientIPConfig")},
    "ClientIPConfig": {1: i("timeoutSeconds", ptr=True)},
    "ResourceQuota": {**_OBJ, 2: m("spec", "ResourceQuotaSpec")},
    "ResourceQuotaSpec": {
        1: smap("hard", Kind.QUANTITY), 2: rs("scopes"), 3: m("scopeSelector", "ScopeSelector"),
    },
    "ScopeSelector": {1: rm("matchExpressions", "ScopedResourceSelectorRequirement")},
    "ScopedResourceSelectorRequirement": {1: s("scopeName"), 2: s("operator"), 3: rs("values")},
    "ObjectReference": {
        1: s("kind"), 2: s("namespace"), 3: s("name"), 4: s("uid"), 5: s("apiVersion"),
        6: s("resourceVersion"), 7: s("fieldPath"),
    },
    "LocalObjectReference": {1: s("name")},
    # ---- core/v1 pod template
    "PodTemplateSpec": {**_OBJ, 2: m("spec", "PodSpec")},
    "PodSpec": {
        1: rm("volumes", "Volume"), 20: rm("initContainers", "Container"), 2: rm("containers", "Container"),
        3: s("restartPolicy"), 4: i("terminationGracePeriodSeconds", ptr=True),
        5: i("activeDeadlineSeconds", ptr=True), 6: s("dnsPolicy"), 7: smap("nodeSelector"),
        8: s("serviceAccountName"), 9: s("serviceAccount"), 21: b("automountServiceAccountToken", ptr=True),
        10: s("nodeName"), 11: b("hostNetwork"), 12: b("hostPID"), 13: b("hostIPC"),
        27: b("shareProcessNamespace", ptr=True), 14: m("securityContext", "PodSecurityContext"),
        15: rm("imagePullSecrets", "LocalObjectReference"), 16: s("hostname"), 17: s("subdomain"),
        18: m("affinity", "Affinity"), 19: s("schedulerName"), 22: rm("tolerations", "Toleration"),
        23: rm("hostAliases", "HostAlias"), 24: s("priorityClassName"), 25: i("priority", ptr=True),
        26: m("dnsConfig", "PodDNSConfig"), 28: rm("readinessGates", "PodReadinessGate"),
        29: s("runtimeClassName", ptr=True), 30: b("enableServiceLinks", ptr=True),
        31: s("preemptionPolicy", ptr=True), 32: smap("overhead", Kind.QUANTITY),
        33: rm("topologySpreadConstraints", "TopologySpreadConstraint"),
        35: b("setHostnameAsFQDN", ptr=True), 37: b("hostUsers", ptr=True),
    },
    "Container": {
        1: s("name"), 2: s("image"), 3: rs("command"), 4: rs("args"), 5: s("workingDir"),
        6: rm("ports", "ContainerPort"), 19: rm("envFrom", "EnvFromSource"), 7: rm("env", "EnvVar"),
        8: m("resources", "ResourceRequirements"), 9: rm("volumeMounts", "VolumeMount"),
        10: m("livenessProbe", "Probe"), 11: m("readinessProbe", "Probe"), 22: m("startupProbe", "Probe"),
        12: m("lifecycle", "Lifecycle"), 13: s("terminationMessagePath"), 20: s("terminationMessagePolicy"),
        14: s("imagePullPolicy"), 15: m("securityContext", "SecurityContext"), 16: b("stdin"),
        17: b("stdinOnce"), 18: b("tty"), 24: s("restartPolicy", ptr=True),
    },
    "ContainerPort": {1: s("name"), 2: i("hostPort"), 3: i("containerPort"), 4: s("protocol"), 5: s("hostIP")},
    "EnvVar": {1: s("name"), 2: s("value"), 3: m("valueFrom", "EnvVarSource")},
    "EnvVarSource": {
        1: m("fieldRef", "ObjectFieldSelector"), 2: m("resourceFieldRef", "ResourceFieldSelector"),
        3: m("configMapKeyRef", "KeySelector"), 4: m("secretKeyRef", "KeySelector"),
    },
    # ConfigMapKeySelector and SecretKeySelector share one layout.
    "KeySelector": {1: inline("LocalObjectReference"), 2: s("key"), 3: b("optional", ptr=True)},
    "ObjectFieldSelector": {1: s("apiVersion"), 2: s("fieldPath")},
    "ResourceFieldSelector": {1: s("containerName"), 2: s("resource"), 3: quantity("divisor")},
    "EnvFromSource": {1: s("prefix"), 2: m("configMapRef", "EnvSource"), 3: m("secretRef", "EnvSource")},
    "EnvSource": {1: inline("LocalObjectReference"), 2: b("optional", ptr=True)},
    "ResourceRequirements": {
        1: smap("limits", Kind.QUANTITY), 2: smap("requests", Kind.QUANTITY), 3: rm("claims", "ResourceClaim"),
    },
    "ResourceClaim": {1: s("name"), 2: s("request")},
    "VolumeMount": {
        1: s("name"), 2: b("readOnly"), 3: s("mountPath"), 4: s("subPath"),
        5: s("mountPropagation", ptr=True), 6: s("subPathExpr"), 7: s("recursiveReadOnly", ptr=True),
    },
    "Probe": {
        1: inline("ProbeHandler"), 2: i("initialDelaySeconds"), 3: i("timeoutSeconds"), 4: i("periodSeconds"),
        5: i("successThreshold"), 6: i("failureThreshold"), 7: i("terminationGracePeriodSeconds", ptr=True),
    },
    "ProbeHandler": {
        1: m("exec", "ExecAction"), 2: m("httpGet", "HTTPGetAction"), 3: m("tcpSocket", "TCPSocketAction"),
        4: m("grpc", "GRPCAction"),
    },
    "LifecycleHandler": {
        1: m("exec", "ExecAction"), 2: m("httpGet", "HTTPGetAction"), 3: m("tcpSocket", "TCPSocketAction"),
        4: m("sleep", "SleepAction"),
    },
    "Lifecycle": {1: m("postStart", "LifecycleHandler"), 2: m("preStop", "LifecycleHandler"), 3: s("stopSignal", ptr=True)},
    "ExecAction": {1: rs("command")},
    "SleepAction": {1: i("seconds")},
    "HTTPGetAction": {
        1: s("path"), 2: intstr("port", ptr=False), 3: s("host"), 4: s("scheme"), 5: rm("httpHeaders", "HTTPHeader"),
    },
    "HTTPHeader": {1: s("name"), 2: s("value")},
    "TCPSocketAction": {1: intstr("port", ptr=False), 2: s("host")},
    "GRPCAction": {1: i("port"), 2: s("service", ptr=True)},
    "SecurityContext": {
        1: m("capabilities", "Capabilities"), 2: b("privileged", ptr=True), 3: m("seLinuxOptions", "SELinuxOptions"),
        4: i("runAsUser", ptr=True), 8: i("runAsGroup", ptr=True), 5: b("runAsNonRoot", ptr=True),
        6: b("readOnlyRootFilesystem", ptr=True), 7: b("allowPrivilegeEscalation", ptr=True),
        9: s("procMount", ptr=True), 11: m("seccompProfile", "SeccompProfile"),
    },
    "PodSecurityContext": {
        1: m("seLinuxOptions", "SELinuxOptions"), 2: i("runAsUser", ptr=True), 6: i("runAsGroup", ptr=True),
        3: b("runAsNonRoot", ptr=True), 4: Field("supplementalGroups", Kind.INT, repeated=True),
        5: i("fsGroup", ptr=True), 7: rm("sysctls", "Sysctl"), 9: s("fsGroupChangePolicy", ptr=True),
        10: m("seccompProfile", "SeccompProfile"),
    },
    "Capabilities": {1: rs("add"), 2: rs("drop")},
    "SELinuxOptions": {1: s("user"), 2: s("role"), 3: s("type"), 4: s("level")},
    "SeccompProfile": {1: s("type"), 2: s("localhostProfile", ptr=True)},
    "Sysctl": {1: s("name"), 2: s("value")},
    "Toleration": {
        1: s("key"), 2: s("operator"), 3: s("value"), 4: s("effect"), 5: i("tolerationSeconds", ptr=True),
    },
    "HostAlias": {1: s("ip"), 2: rs("hostnames")},
    "PodDNSConfig": {1: rs("nameservers"), 2: rs("searches"), 3: rm("options", "PodDNSConfigOption")},
    "PodDNSConfigOption": {1: s("name"), 2: s("value", ptr=True)},
    "PodReadinessGate": {1: s("conditionType")},
    "TopologySpreadConstraint": {
        1: i("maxSkew"), 2: s("topologyKey"), 3: s("whenUnsatisfiable"), 4: m("labelSelector", "LabelSelector"),
        5: i("minDomains", ptr=True), 6: s("nodeAffinityPolicy", ptr=True), 7: s("nodeTaintsPolicy", ptr=True),
        8: rs("matchLabelKeys"),
    },
    "Affinity": {
        1: m("nodeAffinity", "NodeAffinity"), 2: m("podAffinity", "PodAffinity"),
        3: m("podAntiAffinity", "PodAffinity"),
    },
    "NodeAffinity": {
        1: m("requiredDuringSchedulingIgnoredDuringExecution", "NodeSelector"),
        2: rm("preferredDuringSchedulingIgnoredDuringExecution", "PreferredSchedulingTerm"),
    },
    "NodeSelector": {1: rm("nodeSelectorTerms", "NodeSelectorTerm")},
    "NodeSelectorTerm": {
        1: rm("matchExpressions", "NodeSelectorRequirement"), 2: rm("matchFields", "NodeSelectorRequirement"),
    },
    "NodeSelectorRequirement": {1: s("key"), 2: s("operator"), 3: rs("values")},
    "PreferredSchedulingTerm": {1: i("weight"), 2: m("preference", "NodeSelectorTerm")},
    # PodAffinity and PodAntiAffinity share one layout.
    "PodAffinity": {
        1: rm("requiredDuringSchedulingIgnoredDuringExecution", "PodAffinityTerm"),
        2: rm("preferredDuringSchedulingIgnoredDuringExecution", "WeightedPodAffinityTerm"),
    },
    "PodAffinityTerm": {
        1: m("labelSelector", "LabelSelector"), 2: rs("namespaces"), 3: s("topologyKey"),
        4: m("namespaceSelector", "LabelSelector"), 5: rs("matchLabelKeys"), 6: rs("mismatchLabelKeys"),
    },
    "WeightedPodAffinityTerm": {1: i("weight"), 2: m("podAffinityTerm", "PodAffinityTerm")},
    "Volume": {1: s("name"), 2: inline("VolumeSource")},
    "VolumeSource": {
        1: m("hostPath", "HostPathVolumeSource"), 2: m("emptyDir", "EmptyDirVolumeSource"),
        6: m("secret", "SecretVolumeSource"), 7: m("nfs", "NFSVolumeSource"),
        10: m("persistentVolumeClaim", "PersistentVolumeClaimVolumeSource"),
        16: m("downwardAPI", "DownwardAPIVolumeSource"), 19: m("configMap", "ConfigMapVolumeSource"),
        26: m("projected", "ProjectedVolumeSource"),
    },
    "HostPathVolumeSource": {1: s("path"), 2: s("type", ptr=True)},
    "EmptyDirVolumeSource": {1: s("medium"), 2: quantity("sizeLimit")},
    "NFSVolumeSource": {1: s("server"), 2: s("path"), 3: b("readOnly")},
    "SecretVolumeSource": {
        1: s("secretName"), 2: rm("items", "KeyToPath"), 3: i("defaultMode", ptr=True), 4: b("optional", ptr=True),
    },
    "ConfigMapVolumeSource": {
        1: inline("LocalObjectReference"), 2: rm("items", "KeyToPath"), 3: i("defaultMode", ptr=True),
        4: b("optional", ptr=True),
    },
    "PersistentVolumeClaimVolumeSource": {1: s("claimName"), 2: b("readOnly")},
    "KeyToPath": {1: s("key"), 2: s("path"), 3: i("mode", ptr=True)},
    "DownwardAPIVolumeSource": {1: rm("items", "DownwardAPIVolumeFile"), 2: i("defaultMode", ptr=True)},
    "DownwardAPIVolumeFile": {
        1: s("path"), 2: m("fieldRef", "ObjectFieldSelector"), 3: m("resourceFieldRef", "ResourceFieldSelector"),
        4: i("mode", ptr=True),
    },
    "ProjectedVolumeSource": {1: rm("sources", "VolumeProjection"), 2: i("defaultMode", ptr=True)},
    "VolumeProjection": {
        1: m("secret", "Projection"), 2: m("downwardAPI", "DownwardAPIVolumeSource"),
        3: m("configMap", "Projection"), 4: m("serviceAccountToken", "ServiceAccountTokenProjection"),
    },
    # SecretProjection and ConfigMapProjection share one layout.
    "Projection": {1: inline("LocalObjectReference"), 2: rm("items", "KeyToPath"), 4: b("optional", ptr=True)},
    "ServiceAccountTokenProjection": {1: s("audience"), 2: i("expirationSeconds", ptr=True), 3: s("path")},
    # ---- apps/v1
    "Deployment": {**_OBJ, 2: m("spec", "DeploymentSpec")},
    "DeploymentSpec": {
        1: i("replicas", ptr=True), 2: m("selector", "LabelSelector"), 3: m("template", "PodTemplateSpec"),
        4: m("strategy", "DeploymentStrategy"), 5: i("minReadySeconds"), 6: i("revisionHistoryLimit", ptr=True),
        7: b("paused"), 9: i("progressDeadlineSeconds", ptr=True),
    },
    "DeploymentStrategy": {1: s("type"), 2: m("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: intstr("maxUnavailable"), 2: intstr("maxSurge")},
    # ---- batch/v1
    "Job": {**_OBJ, 2: m("spec", "JobSpec")},
    "JobSpec": {
        1: i("parallelism", ptr=True), 2: i("completions", ptr=True), 3: i("activeDeadlineSeconds", ptr=True),
        4: m("selector", "LabelSelector"), 5: b("manualSelector", ptr=True), 6: m("template", "PodTemplateSpec"),
        7: i("backoffLimit", ptr=True), 8: i("ttlSecondsAfterFinished", ptr=True),
        9: s("completionMode", ptr=True), 10: b("suspend", ptr=True), 12: i("backoffLimitPerIndex", ptr=True),
        13: i("maxFailedIndexes", ptr=True), 14: s("podReplacementPolicy", ptr=True), 15: s("managedBy", ptr=True),
    },
    "CronJob": {**_OBJ, 2: m("spec", "CronJobSpec")},
    "CronJobSpec": {
        1: s("schedule"), 8: s("timeZone", ptr=True), 2: i("startingDeadlineSeconds", ptr=True),
        3: s("concurrencyPolicy"), 4: b("suspend", ptr=True), 5: m("jobTemplate", "JobTemplateSpec"),
        6: i("successfulJobsHistoryLimit", ptr=True), 7: i("failedJobsHistoryLimit", ptr=True),
    },
    "JobTemplateSpec": {**_OBJ, 2: m("spec", "JobSpec")},
    # ---- autoscaling/v1 (`kubectl autoscale` sends this)
    "HorizontalPodAutoscaler": {**_OBJ, 2: m("spec", "HorizontalPodAutoscalerSpec")},
    "HorizontalPodAutoscalerSpec": {
        1: m("scaleTargetRef", "CrossVersionObjectReference"), 2: i("minReplicas", ptr=True), 3: i("maxReplicas"),
        4: i("targetCPUUtilizationPercentage", ptr=True),
    },
    "CrossVersionObjectReference": {1: s("kind"), 2: s("name"), 3: s("apiVersion")},
    # ---- networking.k8s.io/v1
    "Ingress": {**_OBJ, 2: m("spec", "IngressSpec")},
    "IngressSpec": {
        4: s("ingressClassName", ptr=True), 1: m("defaultBackend", "IngressBackend"), 2: rm("tls", "IngressTLS"),
        3: rm("rules", "IngressRule"),
    },
    "IngressTLS": {1: rs("hosts"), 2: s("secretName")},
    "IngressRule": {1: s("host"), 2: inline("IngressRuleValue")},
    "IngressRuleValue": {1: m("http", "HTTPIngressRuleValue")},
    "HTTPIngressRuleValue": {1: rm("paths", "HTTPIngressPath")},
    "HTTPIngressPath": {1: s("path"), 3: s("pathType", ptr=True), 2: m("backend", "IngressBackend")},
    "IngressBackend": {4: m("service", "IngressServiceBackend"), 3: m("resource", "TypedLocalObjectReference")},
    "IngressServiceBackend": {1: s("name"), 2: m("port", "ServiceBackendPort")},
    "ServiceBackendPort": {1: s("name"), 2: i("number")},
    "TypedLocalObjectReference": {1: s("apiGroup", ptr=True), 2: s("kind"), 3: s("name")},
    # ---- rbac.authorization.k8s.io/v1
    "Role": {**_OBJ, 2: rm("rules", "PolicyRule")},
    "ClusterRole": {**_OBJ, 2: rm("rules", "PolicyRule"), 3: m("aggregationRule", "AggregationRule")},
    "AggregationRule": {1: rm("clusterRoleSelectors", "LabelSelector")},
    "PolicyRule": {1: rs("verbs"), 2: rs("apiGroups"), 3: rs("resources"), 4: rs("resourceNames"), 5: rs("nonResourceURLs")},
    "RoleBinding": {**_OBJ, 2: rm("subjects", "Subject"), 3: m("roleRef", "RoleRef")},
    "Subject": {1: s("kind"), 2: s("apiGroup"), 3: s("name"), 4: s("namespace")},
    "RoleRef": {1: s("apiGroup"), 2: s("kind"), 3: s("name")},
    # ---- policy/v1
    "PodDisruptionBudget": {**_OBJ, 2: m("spec", "PodDisruptionBudgetSpec")},
    "PodDisruptionBudgetSpec": {
        1: intstr("minAvailable"), 2: m("selector", "LabelSelector"), 3: intstr("maxUnavailable"),
        4: s("unhealthyPodEvictionPolicy", ptr=True),
    },
    "Eviction": {**_OBJ, 2: m("deleteOptions", "DeleteOptions")},
    # ---- scheduling.k8s.io/v1
    "PriorityClass": {
        **_OBJ, 2: i("value"), 3: b("globalDefault"), 4: s("description"), 5: s("preemptionPolicy", ptr=True),
    },
    # ---- authentication.k8s.io/v1
    "TokenRequest": {**_OBJ, 2: m("spec", "TokenRequestSpec")},
    "TokenRequestSpec": {
        1: rs("audiences"), 4: i("expirationSeconds", ptr=True), 3: m("boundObjectRef", "BoundObjectReference"),
    },
    "BoundObjectReference": {1: s("kind"), 2: s("apiVersion"), 3: s("name"), 4: s("uid")},
    # ---- authorization.k8s.io/v1
    "SelfSubjectAccessReview": {**_OBJ, 2: m("spec", "SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {
        1: m("resourceAttributes", "ResourceAttributes"), 2: m("nonResourceAttributes", "NonResourceAttributes"),
    },
    "ResourceAttributes": {
        1: s("namespace"), 2: s("verb"), 3: s("group"), 4: s("version"), 5: s("resource"), 6: s("subresource"),
        7: s("name"),
    },
    "NonResourceAttributes": {1: s("path"), 2: s("verb")},
    "SelfSubjectRulesReview": {**_OBJ, 2: m("spec", "SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: s("namespace")},
    # SelfSubjectReview (`kubectl auth whoami`) carries only metadata; its status is the server's.
    "SelfSubjectReview": {**_OBJ},
}

MESSAGES: Schema = MappingProxyType({k: MappingProxyType(v) for k, v in _MESSAGES.items()})

# (apiVersion, kind) of a runtime.Unknown envelope → top-level message. Status is never
# decoded: the server owns it, and kube-apiserver ignores it on create as well.
TOP_LEVEL: Mapping[tuple[str, str], str] = MappingProxyType({
    ("v1", "Namespace"): "Namespace",
    ("v1", "ConfigMap"): "ConfigMap",
    ("v1", "Secret"): "Secret",
    ("v1", "ServiceAccount"): "ServiceAccount",
    ("v1", "Service"): "Service",
    ("v1", "ResourceQuota"): "ResourceQuota",
    ("apps/v1", "Deployment"): "Deployment",
    ("batch/v1", "Job"): "Job",
    ("batch/v1", "CronJob"): "CronJob",
    ("networking.k8s.io/v1", "Ingress"): "Ingress",
    ("autoscaling/v1", "HorizontalPodAutoscaler"): "HorizontalPodAutoscaler",
    ("rbac.authorization.k8s.io/v1", "Role"): "Role",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "ClusterRole",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "RoleBinding",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "RoleBinding",
    ("policy/v1", "PodDisruptionBudget"): "PodDisruptionBudget",
    ("policy/v1", "Eviction"): "Eviction",
    ("scheduling.k8s.io/v1", "PriorityClass"): "PriorityClass",
    ("authentication.k8s.io/v1", "TokenRequest"): "TokenRequest",
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): "SelfSubjectAccessReview",
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): "SelfSubjectRulesReview",
    ("authentication.k8s.io/v1", "SelfSubjectReview"): "SelfSubjectReview",
})
