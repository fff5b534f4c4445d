"""ResourceQuota arithmetic: what an object uses of each quota resource name, pure.

Kubernetes's quota evaluators in small:
- pods (while not finished): `pods`, `count/pods`, `requests.cpu`/`cpu`, `requests.memory`/
  `memory`, `limits.cpu`, `limits.memory`, `requests.ephemeral-storage`, … — a pod's request is
  the larger of its containers' sum and its largest init container (plus overhead);
- services: `services`, `services.nodeports` (one per node port), `services.loadbalancers`;
- persistentvolumeclaims: `persistentvolumeclaims`, `requests.storage`,
  `<class>.storageclass.storage.k8s.io/persistentvolumeclaims` and `…/requests.storage`;
- every kind: `count/<plural>` (core) or `count/<plural>.<group>`; the legacy names
  `configmaps`, `secrets`, `replicationcontrollers`, `resourcequotas`.
Quota scopes select pods: Terminating/NotTerminating/BestEffort/NotBestEffort/
CrossNamespacePodAffinity, and PriorityClass (In/NotIn/Exists/DoesNotExist) from a scopeSelector.
Neighbours: `minik.api.quota_admission` (admission: 403 over quota) and
`minik.controllers.resourcequota` (status.used) both count with these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from fractions import Fraction

from minik.apis.quantity import DECIMAL_SI, Quantity

Obj = dict[str, Any]

LEGACY_COUNTS = {"pods": "pods", "services": "services", "configmaps": "configmaps", "secrets": "secrets",
                 "persistentvolumeclaims": "persistentvolumeclaims", "replicationcontrollers": "replicationcontrollers",
                 "resourcequotas": "resourcequotas"}
COMPUTE = ("cpu", "memory", "ephemeral-storage")
ZERO = Quantity.parse(0)
ONE = Quantity.parse(1)


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _l(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def count_name(store_key: str) -> str:
    """`count/<plural>` or `count/<plural>.<group>` for a store key ("apps/deployments")."""
    group, _, plural = store_key.rpartition("/")
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def store_key_of(resource_name: str) -> str | None:
    """The store key a quota resource name counts objects of; None for compute names."""
    if resource_name.startswith("count/"):
        rest = resource_name[len("count/"):]
        plural, _, group = rest.partition(".")
        return f"{group}/{plural}" if group else plural
    if resource_name in LEGACY_COUNTS:
        return LEGACY_COUNTS[resource_name]
    if resource_name in ("services.nodeports", "services.loadbalancers"):
        return "services"
    if resource_name == "requests.storage" or resource_name.endswith(".storageclass.storage.k8s.io/requests.storage") \
            or resource_name.endswith(".storageclass.storage.k8s.io/persistentvolumeclaims"):
        return "persistentvolumeclaims"
    if resource_name in COMPUTE or resource_name.startswith(("requests.", "limits.")):
        return "pods"
    return None


def _sum(lists: Iterable[Mapping[str, Any]]) -> dict[str, Quantity]:
    out: dict[str, Quantity] = {}
    for rl in lists:
        for k, v in rl.items():
            q = Quantity.of(v)
            if q is not None:
                out[k] = add(out.get(k), q)
    return out


def pod_resources(pod: Obj, kind: str) -> dict[str, Quantity]:
    """requests or limits of a pod: max(sum of containers, each init container) + overhead."""
    spec = _d(pod.get("spec"))
    total = _sum(_d(_d(c).get("resources")).get(kind) or {} for c in _l(spec.get("containers")))
    for c in _l(spec.get("initContainers")):
        for k, v in _d(_d(_d(c).get("resources")).get(kind)).items():
            q = Quantity.of(v)
            if q is not None and (k not in total or total[k] < q):
                total[k] = q
    for k, v in _d(spec.get("overhead")).items():
        q = Quantity.of(v)
        if q is not None and k in total:
            total[k] = total[k] + q
    return total


def pod_terminal(pod: Obj) -> bool:
    return _d(pod.get("status")).get("phase") in ("Succeeded", "Failed")


def best_effort(pod: Obj) -> bool:
    spec = _d(pod.get("spec"))
    for c in _l(spec.get("containers")) + _l(spec.get("initContainers")):
        res = _d(_d(c).get("resources"))
        if _d(res.get("requests")) or _d(res.get("limits")):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Scope:
    """One scope of a quota: `spec.scopes` entries read as `Exists`; `spec.scopeSelector`
    expressions keep their operator and values (PriorityClass In/NotIn)."""
    name: str
    operator: str = "Exists"
    values: tuple[str, ...] = ()


def _scope_holds(pod: Obj, name: str) -> bool | None:
    spec = _d(pod.get("spec"))
    if name in ("Terminating", "NotTerminating"):
        terminating = spec.get("activeDeadlineSeconds") is not None
        return terminating if name == "Terminating" else not terminating
    if name in ("BestEffort", "NotBestEffort"):
        return best_effort(pod) if name == "BestEffort" else not best_effort(pod)
    if name == "CrossNamespacePodAffinity":
        aff = _d(spec.get("affinity"))
        terms = [t for k in ("podAffinity", "podAntiAffinity") for kind in ("requiredDuringSchedulingIgnoredDuringExecution",
                 "preferredDuringSchedulingIgnoredDuringExecution") for t in _l(_d(aff.get(k)).get(kind))]
        return any(_d(t).get("namespaces") or _d(t).get("namespaceSelector") is not None
                   or _d(_d(t).get("podAffinityTerm")).get("namespaceSelector") is not None for t in terms)
    return None


def pod_matches_scopes(pod: Obj, scopes: Iterable[Scope]) -> bool:
    for s in scopes:
        if s.name == "PriorityClass":
            pc = _d(pod.get("spec")).get("priorityClassName") or ""
            ok = {"In": pc in s.values, "NotIn": pc not in s.values, "Exists": bool(pc), "DoesNotExist": not pc}.get(s.operator, False)
        else:
            holds = _scope_holds(pod, s.name)
            if holds is None:
                return False
            ok = holds if s.operator != "DoesNotExist" else not holds
        if not ok:
            return False
    return True


def quota_scopes(quota: Obj) -> list[Scope]:
    spec = _d(quota.get("spec"))
    scopes = [Scope(s) for s in _l(spec.get("scopes")) if isinstance(s, str)]
    for e in _l(_d(spec.get("scopeSelector")).get("matchExpressions")):
        e = _d(e)
        if isinstance(e.get("scopeName"), str):
            scopes.append(Scope(e["scopeName"], str(e.get("operator") or "Exists"),
                                tuple(str(v) for v in _l(e.get("values")))))
    return scopes


def usage(store_key: str, obj: Obj, names: Iterable[str]) -> dict[str, Quantity]:
    """What `obj` (of `store_key`) uses of each quota resource name in `names` (absent: nothing)."""
    out: dict[str, Quantity] = {}
    names = list(names)
    count = count_name(store_key)
    if store_key == "pods" and pod_terminal(obj):
        return out
    for n in names:
        if n == count or LEGACY_COUNTS.get(n) == store_key:
            out[n] = ONE
    if store_key == "pods":
        req, lim = pod_resources(obj, "requests"), pod_resources(obj, "limits")
        for n in names:
            if n.startswith("requests.") and n[len("requests."):] in req:
                out[n] = req[n[len("requests."):]]
            elif n.startswith("limits.") and n[len("limits."):] in lim:
                out[n] = lim[n[len("limits."):]]
            elif n in COMPUTE and n in req:
                out[n] = req[n]
    elif store_key == "services":
        spec = _d(obj.get("spec"))
        stype = spec.get("type") or "ClusterIP"
        ports = len(_l(spec.get("ports")))
        if "services.nodeports" in names and stype in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = Quantity.parse(ports)
        if "services.loadbalancers" in names and stype == "LoadBalancer":
            out["services.loadbalancers"] = ONE
    elif store_key == "persistentvolumeclaims":
        spec = _d(obj.get("spec"))
        storage = Quantity.of(_d(_d(spec.get("resources")).get("requests")).get("storage"))
        cls = spec.get("storageClassName") if isinstance(spec.get("storageClassName"), str) else ""
        if storage is not None and "requests.storage" in names:
            out["requests.storage"] = storage
        if cls:
            prefix = f"{cls}.storageclass.storage.k8s.io/"
            if storage is not None and prefix + "requests.storage" in names:
                out[prefix + "requests.storage"] = storage
            if prefix + "persistentvolumeclaims" in names:
                out[prefix + "persistentvolumeclaims"] = ONE
    return out


def missing_compute(pod: Obj, names: Iterable[str]) -> list[str]:
    """Kubernetes refuses a pod that does not state a compute resource a quota limits:
    "must specify limits.cpu for: c; …" — the names with the containers lacking them."""
    spec = _d(pod.get("spec"))
    out: list[str] = []
    for n in sorted(names):
        kind, _, res = n.partition(".")
        if n in ("cpu", "memory"):
            kind, res = "requests", n
        if kind not in ("requests", "limits") or res not in ("cpu", "memory"):
            continue
        lacking = [str(_d(c).get("name", "")) for c in _l(spec.get("containers"))
                   if res not in _d(_d(_d(c).get("resources")).get(kind))]
        if lacking:
            out.append(f"{n} for: {','.join(lacking)}")
    return out


def add(a: Quantity | None, b: Quantity) -> Quantity:
    """a + b in the format of the first quantity summed (1Gi + 1Gi prints as 2Gi, as kube's)."""
    return b if a is None else a + b


NANO = 10 ** 9


def nanos(q: Quantity) -> int:
    """A quantity in integer nano-units (quantities are kept to nano precision), for fast sums."""
    return int(q.value * NANO)


def from_nanos(v: int, like: Quantity | None = None) -> Quantity:
    return Quantity(Fraction(v, NANO), like.format if like is not None else DECIMAL_SI)


class UsageCache:
    """`usage()` of stored objects in nano-units, remembered by (store key, uid, names) for the
    object's resourceVersion: counting a namespace again after one create parses only that one."""

    def __init__(self, limit: int = 100_000) -> None:
        self.limit = limit
        self._memo: dict[tuple[str, str, tuple[str, ...]], tuple[str, dict[str, int]]] = {}

    def usage(self, store_key: str, obj: Obj, names: tuple[str, ...]) -> dict[str, int]:
        m = _d(obj.get("metadata"))
        uid, rv = m.get("uid"), m.get("resourceVersion")
        key = (store_key, str(uid), names)
        if uid and rv:
            hit = self._memo.get(key)
            if hit is not None and hit[0] == rv:
                return hit[1]
        out = {n: nanos(q) for n, q in usage(store_key, obj, names).items()}
        if uid and rv:
            if len(self._memo) >= self.limit:
                self._memo.clear()     # objects come and go; a full rebuild is cheap and bounded
            self._memo[key] = (str(rv), out)
        return out

    def total(self, store_key: str, objs: Iterable[Obj], names: tuple[str, ...], scopes: list[Scope]) -> dict[str, int]:
        out: dict[str, int] = {}
        memo = self._memo
        scoped = store_key == "pods" and bool(scopes)
        for obj in objs:
            if scoped and not pod_matches_scopes(obj, scopes):
                continue
            # The memo hit inlined: this loop runs over a whole namespace on every admission.
            m = obj.get("metadata") or {}
            hit = memo.get((store_key, str(m.get("uid")), names))
            u = hit[1] if hit is not None and hit[0] == m.get("resourceVersion") else self.usage(store_key, obj, names)
            for n, v in u.items():
                out[n] = out.get(n, 0) + v
        return out


def fmt(q: Quantity) -> str:
    return q.canonical()
