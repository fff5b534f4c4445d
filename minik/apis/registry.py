"""The resource types minik serves: group/version/kind/plural, scope, short names, subresources.

Neighbours: `minik.api.discovery` renders it; `minik.api.router` resolves URLs with it; the
store keys objects by `ResourceType.store_key`. Custom resources are added at run time when a
CRD becomes established (`Registry.add`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


# Resources whose kube-apiserver storage sets ReturnDeletedObject (kube 1.32 pkg/registry); the
# published OpenAPI, and so the generated clients, type their DELETE response as the object itself
# (e.g. the Python client's delete_namespaced_service() decodes a V1Service).
_RETURNS_DELETED_OBJECT = frozenset({
    ("", "pods"), ("", "podtemplates"), ("", "services"), ("", "serviceaccounts"),
    ("", "persistentvolumes"), ("", "persistentvolumeclaims"), ("", "resourcequotas"),
    ("storage.k8s.io", "storageclasses"), ("storage.k8s.io", "csidrivers"), ("storage.k8s.io", "csinodes"),
    ("storage.k8s.io", "volumeattachments"), ("storage.k8s.io", "volumeattributesclasses"),
})


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str            # "" for core
    version: str
    kind: str
    plural: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()   # "status", "scale", "log", "exec", "portforward", "attach", "binding", "eviction"
    verbs: tuple[str, ...] = ALL_VERBS
    schema_name: str = ""                # OpenAPI definition name, e.g. io.k8s.api.apps.v1.Deployment
    custom: bool = False                 # served from a CRD
    computed: bool = False               # read-only view computed on each request, never stored (metrics.k8s.io)

    @property
    def returns_deleted_object(self) -> bool:
        """A DELETE that removes the object at once answers with the object, not a Success Status."""
        return not self.custom and (self.group, self.plural) in _RETURNS_DELETED_OBJECT

    @property
    def virtual(self) -> bool:
        """Create-only review kinds answered by the server and never stored."""
        return self.verbs == ("create",)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def store_key(self) -> str:
        """Key of this resource in the store: "pods", "apps/deployments", "stable.example.com/crontabs"."""
        return f"{self.group}/{self.plural}" if self.group else self.plural

    @property
    def group_resource(self) -> str:
        """How Kubernetes names the resource in messages: "deployments.apps", "pods"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(kind: str, plural: str, namespaced: bool = True, short: tuple[str, ...] = (), cats: tuple[str, ...] = (),
          sub: tuple[str, ...] = (), verbs: tuple[str, ...] = ALL_VERBS) -> ResourceType:
    return ResourceType("", "v1", kind, plural, namespaced, short, cats, sub, verbs, f"io.k8s.api.core.v1.{kind}")


def _g(group: str, version: str, pkg: str, kind: str, plural: str, namespaced: bool = True,
       short: tuple[str, ...] = (), cats: tuple[str, ...] = (), sub: tuple[str, ...] = ()) -> ResourceType:
    return ResourceType(group, version, kind, plural, namespaced, short, cats, sub, ALL_VERBS, f"io.k8s.api.{pkg}.{version}.{kind}")


_NOT_COLLECTION = ("create", "delete", "get", "list", "patch", "update", "watch")

BUILTIN: tuple[ResourceType, ...] = (
    _core("Namespace", "namespaces", False, ("ns",), sub=("status", "finalize"), verbs=_NOT_COLLECTION),
    _core("Pod", "pods", short=("po",), cats=("all",), sub=("status", "log", "exec", "portforward", "attach", "binding", "eviction", "ephemeralcontainers", "proxy")),
    _core("Service", "services", short=("svc",), cats=("all",), sub=("status", "proxy"), verbs=_NOT_COLLECTION + ("deletecollection",)),
    _core("Endpoints", "endpoints", short=("ep",)),
    _core("ConfigMap", "configmaps", short=("cm",)),
    _core("Secret", "secrets"),
    _core("ServiceAccount", "serviceaccounts", short=("sa",), sub=("token",)),
    _core("Event", "events", short=("ev",)),
    _core("Node", "nodes", False, ("no",), sub=("status",)),
    _core("PersistentVolume", "persistentvolumes", False, ("pv",), sub=("status",)),
    _core("PersistentVolumeClaim", "persistentvolumeclaims", short=("pvc",), sub=("status",)),
    _core("ResourceQuota", "resourcequotas", short=("quota",), sub=("status",)),
    _core("LimitRange", "limitranges", short=("limits",)),
    _core("ReplicationController", "replicationcontrollers", short=("rc",), cats=("all",), sub=("status", "scale")),
    _g("apps", "v1", "apps", "Deployment", "deployments", short=("deploy",), cats=("all",), sub=("status", "scale")),
    _g("apps", "v1", "apps", "ReplicaSet", "replicasets", short=("rs",), cats=("all",), sub=("status", "scale")),
    _g("apps", "v1", "apps", "StatefulSet", "statefulsets", short=("sts",), cats=("all",), sub=("status", "scale")),
    _g("apps", "v1", "apps", "DaemonSet", "daemonsets", short=("ds",), cats=("all",), sub=("status",)),
    _g("apps", "v1", "apps", "ControllerRevision", "controllerrevisions"),
    _g("batch", "v1", "batch", "Job", "jobs", cats=("all",), sub=("status",)),
    _g("batch", "v1", "batch", "CronJob", "cronjobs", short=("cj",), cats=("all",), sub=("status",)),
    _g("networking.k8s.io", "v1", "networking", "Ingress", "ingresses", short=("ing",), sub=("status",)),
    _g("networking.k8s.io", "v1", "networking", "IngressClass", "ingressclasses", False),
    _g("networking.k8s.io", "v1", "networking", "NetworkPolicy", "networkpolicies", short=("netpol",)),
    _g("discovery.k8s.io", "v1", "discovery", "EndpointSlice", "endpointslices"),
    _g("coordination.k8s.io", "v1", "coordination", "Lease", "leases"),
    _g("storage.k8s.io", "v1", "storage", "StorageClass", "storageclasses", False, ("sc",)),
    _g("autoscaling", "v2", "autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",), cats=("all",), sub=("status",)),
    _g("autoscaling", "v1", "autoscaling", "HorizontalPodAutoscaler", "horizontalpodautoscalers", short=("hpa",), cats=("all",), sub=("status",)),
    _g("rbac.authorization.k8s.io", "v1", "rbac", "Role", "roles"),
    _g("rbac.authorization.k8s.io", "v1", "rbac", "RoleBinding", "rolebindings"),
    _g("rbac.authorization.k8s.io", "v1", "rbac", "ClusterRole", "clusterroles", False),
    _g("rbac.authorization.k8s.io", "v1", "rbac", "ClusterRoleBinding", "clusterrolebindings", False),
    _g("policy", "v1", "policy", "PodDisruptionBudget", "poddisruptionbudgets", short=("pdb",), sub=("status",)),
    # Reviews: create-only, answered by the API server and never stored (`minik.api.reviews`).
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SelfSubjectAccessReview"),
    ResourceType("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SelfSubjectRulesReview"),
    ResourceType("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.SubjectAccessReview"),
    ResourceType("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True, verbs=("create",),
                 schema_name="io.k8s.api.authorization.v1.LocalSubjectAccessReview"),
    ResourceType("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=("create",),
                 schema_name="io.k8s.api.authentication.v1.SelfSubjectReview"),
    ResourceType("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=("create",),
                 schema_name="io.k8s.api.authentication.v1.TokenReview"),
    ResourceType("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, subresources=("status",),
                 schema_name="io.k8s.kube-aggregator.pkg.apis.apiregistration.v1.APIService"),
    # Resource usage, computed from the nodes' samples on each request (`minik.api.metrics`).
    ResourceType("metrics.k8s.io", "v1beta1", "PodMetrics", "pods", True, verbs=("get", "list"), computed=True),
    ResourceType("metrics.k8s.io", "v1beta1", "NodeMetrics", "nodes", False, verbs=("get", "list"), computed=True),
    ResourceType("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False, ("crd", "crds"), (),
                 ("status",), ALL_VERBS, "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.CustomResourceDefinition"),
)

# Group versions in the order discovery lists them; the first version listed for a group is preferred.
PREFERRED_VERSION = {"autoscaling": "v2"}


@dataclass
class Registry:
    """All served resource types, indexed for URL resolution. Mutable only through add/remove (CRDs)."""

    types: list[ResourceType] = field(default_factory=lambda: list(BUILTIN))

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        for t in self.types:
            if t.group == group and t.version == version and t.plural == plural:
                return t
        return None

    def by_kind(self, group: str, kind: str) -> ResourceType | None:
        for t in self.types:
            if t.group == group and t.kind == kind:
                if not t.group or t.version == self.preferred_version(group):
                    return t
        return None

    def group_versions(self) -> dict[str, list[str]]:
        """group → versions, preferred first ("" is the core group)."""
        out: dict[str, list[str]] = {}
        for t in self.types:
            vs = out.setdefault(t.group, [])
            if t.version not in vs:
                vs.append(t.version)
        for g, vs in out.items():
            pref = self.preferred_version(g)
            vs.sort(key=lambda v: (v != pref, v))
        return out

    def preferred_version(self, group: str) -> str:
        if group in PREFERRED_VERSION:
            return PREFERRED_VERSION[group]
        for t in self.types:
            if t.group == group:
                return t.version
        return "v1"

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]

    def add(self, t: ResourceType) -> None:
        self.remove(t.group, t.version, t.plural)
        self.types.append(t)

    def remove(self, group: str, version: str, plural: str) -> None:
        self.types = [t for t in self.types if not (t.group == group and t.version == version and t.plural == plural)]
