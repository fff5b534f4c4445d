"""ResourceQuota admission: a create that would take a namespace over one of its quotas is refused
with 403 Forbidden and Kubernetes's message
`pods "x" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`.

Usage is counted from the store's cache at admission (the objects of the namespace that the
quota's resource names cover, `minik.apis.resourcequota.usage`), plus the creates admitted in the
last few seconds that are not stored yet, so two concurrent creates cannot both take the last
slot. (Kubernetes serialises through compare-and-swap writes of `status.used`; counting from
the cache gives the same answer without writing the quota on every create. `status.used` is kept
by `minik.controllers.resourcequota`.) A pod that does not state a compute resource a quota
limits is refused as Kubernetes does ("failed quota: q: must specify limits.cpu for: c").
Neighbours: `minik.api.admission`, `minik.apis.resourcequota`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

from minik.api import status as st
from minik.api.meta import Obj
from minik.apis import resourcequota as rq
from minik.apis.quantity import Quantity
from minik.apis.registry import ResourceType
from minik.store.store import Store

RESERVATION_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _Reserved:
    store_key: str
    namespace: str
    name: str
    uid: str
    usage: dict[str, Quantity]
    at: float


def exceeded(hard: dict[str, Quantity], used: dict[str, Quantity], requested: dict[str, Quantity]) -> list[str]:
    """Resource names whose used + requested would pass hard (sorted)."""
    return sorted(n for n, q in requested.items() if n in hard and not q.is_zero() and hard[n] < used.get(n, rq.ZERO) + q)


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class QuotaAdmission:
    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.clock = store, clock
        self._reserved: list[_Reserved] = []

    def _pending(self, namespace: str) -> list[_Reserved]:
        now = self.clock()
        # Reservations end when the store took the create (`release`), when the name exists (a
        # create that lost to another), or after RESERVATION_SECONDS (a create that failed later).
        self._reserved = [r for r in self._reserved if now - r.at < RESERVATION_SECONDS
                          and self.store.get(r.store_key, r.namespace, r.name) is None]
        return [r for r in self._reserved if r.namespace == namespace]

    def _used(self, quota: Obj, names: list[str], namespace: str, scopes: list[rq.Scope]) -> dict[str, Quantity]:
        used: dict[str, Quantity] = {}
        keys = {k for k in (rq.store_key_of(n) for n in names) if k}
        for key in keys:
            for obj in self.store.list(key, namespace).items:
                if key == "pods" and scopes and not rq.pod_matches_scopes(obj, scopes):
                    continue
                for n, q in rq.usage(key, obj, names).items():
                    used[n] = rq.add(used.get(n), q)
        return used

    def release(self, obj: Obj) -> None:
        """Drop the reservation of a create the store has taken (it is in the cache now)."""
        if self._reserved:
            uid = _d(obj.get("metadata")).get("uid")
            self._reserved = [r for r in self._reserved if r.uid != uid]

    def applies(self, obj: Obj) -> bool:
        """The object's namespace has quotas (the only case where admission has work to do)."""
        ns = str(_d(obj.get("metadata")).get("namespace") or "")
        return bool(ns) and bool(self.store.list("resourcequotas", ns).items)

    def admit(self, rt: ResourceType, obj: Obj, old: Obj | None = None) -> None:
        """`old`: an update, where only the growth over the stored object is requested."""
        m = _d(obj.get("metadata"))
        ns = str(m.get("namespace") or "")
        quotas = self.store.list("resourcequotas", ns).items if ns else []
        if not quotas:
            return
        name = str(m.get("name", ""))
        # An earlier reservation of this very name (a dry run, or a create that failed after
        # admission) is replaced: at most one create of a name can be stored.
        self._reserved = [r for r in self._reserved if (r.store_key, r.namespace, r.name) != (rt.store_key, ns, name)]
        pending = self._pending(ns)
        total: dict[str, Quantity] = {}
        for quota in sorted(quotas, key=lambda q: str(q["metadata"].get("name", ""))):
            hard = {k: q for k, v in _d(_d(quota.get("spec")).get("hard")).items() if (q := Quantity.of(v)) is not None}
            names = list(hard)
            scopes = rq.quota_scopes(quota)
            if rt.store_key == "pods" and scopes and not rq.pod_matches_scopes(obj, scopes):
                continue
            qname = quota["metadata"].get("name", "")
            if rt.store_key == "pods":
                missing = rq.missing_compute(obj, names)
                if missing:
                    raise st.forbidden(f'{rt.plural} "{name}" is forbidden: failed quota: {qname}: must specify {"; ".join(missing)}', rt, name)
            requested = rq.usage(rt.store_key, obj, names)
            if old is not None:
                before = rq.usage(rt.store_key, old, names)
                requested = {n: q - before[n] if n in before else q for n, q in requested.items()}
                requested = {n: q for n, q in requested.items() if rq.ZERO < q}
            if not requested:
                continue
            used = self._used(quota, names, ns, scopes)
            for r in pending:
                if r.store_key == "pods" and scopes:
                    continue
                for n, q in r.usage.items():
                    if n in hard:
                        used[n] = rq.add(used.get(n), q)
            over = exceeded(hard, used, requested)
            if over:
                def show(d: dict[str, Quantity]) -> str:
                    return ",".join(f"{n}={rq.fmt(d.get(n, rq.ZERO))}" for n in over)
                raise st.forbidden(f'{rt.plural} "{name}" is forbidden: exceeded quota: {qname}, requested: {show(requested)}, '
                                   f"used: {show(used)}, limited: {show(hard)}", rt, name)
            for n, q in requested.items():
                total[n] = q
        if total and old is None:
            self._reserved.append(_Reserved(rt.store_key, ns, name, str(m.get("uid", "")), total, self.clock()))
