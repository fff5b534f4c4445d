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
    usage: dict[str, int]           # nano-units
    at: float


def exceeded(hard: dict[str, int], used: dict[str, int], requested: dict[str, int]) -> list[str]:
    """Resource names whose used + requested would pass hard (sorted; nano-units)."""
    return sorted(n for n, q in requested.items() if n in hard and q > 0 and hard[n] < used.get(n, 0) + q)


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


class QuotaAdmission:
    def __init__(self, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.store, self.clock = store, clock
        # uid → reservation, oldest first; `_by_name` finds the reservation of a name.
        self._reserved: dict[str, _Reserved] = {}
        self._by_name: dict[tuple[str, str, str], str] = {}
        self.usage = rq.UsageCache()

    def _drop(self, uid: str) -> None:
        r = self._reserved.pop(uid, None)
        if r is not None and self._by_name.get((r.store_key, r.namespace, r.name)) == uid:
            del self._by_name[(r.store_key, r.namespace, r.name)]

    def _pending(self, namespace: str) -> list[_Reserved]:
        """Admitted creates not stored yet. A reservation ends when the store takes the create
        (`release`) or the name exists (a create that lost to another), when the same name is
        admitted again (a dry run or a failed create came first), or after RESERVATION_SECONDS
        (a create that failed after admission)."""
        now = self.clock()
        while self._reserved:
            uid, first = next(iter(self._reserved.items()))
            if now - first.at < RESERVATION_SECONDS:
                break
            self._drop(uid)
        out = []
        for r in list(self._reserved.values()):
            if r.namespace != namespace:
                continue
            if self.store.get(r.store_key, r.namespace, r.name) is not None:
                self._drop(r.uid)     # the name is taken: stored, or this create lost to another
                continue
            out.append(r)
        return out

    def _used(self, names: tuple[str, ...], namespace: str, scopes: list[rq.Scope]) -> dict[str, int]:
        used: dict[str, int] = {}
        for key in {k for k in (rq.store_key_of(n) for n in names) if k}:
            for n, v in self.usage.total(key, self.store.list(key, namespace).items, names, scopes).items():
                used[n] = used.get(n, 0) + v
        return used

    def release(self, obj: Obj) -> None:
        """Drop the reservation of a create the store has taken (it is in the cache now)."""
        if self._reserved:
            self._drop(str(_d(obj.get("metadata")).get("uid", "")))

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
        earlier = self._by_name.get((rt.store_key, ns, name))
        if earlier is not None:
            self._drop(earlier)
        pending = self._pending(ns)
        total: dict[str, int] = {}
        for quota in sorted(quotas, key=lambda q: str(q["metadata"].get("name", ""))):
            hard_q = {k: q for k, v in _d(_d(quota.get("spec")).get("hard")).items() if (q := Quantity.of(v)) is not None}
            names = tuple(hard_q)
            scopes = rq.quota_scopes(quota)
            if rt.store_key == "pods" and scopes and not rq.pod_matches_scopes(obj, scopes):
                continue
            qname = quota["metadata"].get("name", "")
            if rt.store_key == "pods" and old is None:
                missing = rq.missing_compute(obj, names)
                if missing:
                    raise st.forbidden(f'{rt.plural} "{name}" is forbidden: failed quota: {qname}: must specify {"; ".join(missing)}', rt, name)
            req_q = rq.usage(rt.store_key, obj, names)
            requested = {n: rq.nanos(q) for n, q in req_q.items()}
            if old is not None:
                before = {n: rq.nanos(q) for n, q in rq.usage(rt.store_key, old, names).items()}
                requested = {n: v - before.get(n, 0) for n, v in requested.items() if v - before.get(n, 0) > 0}
            if not requested:
                continue
            hard = {n: rq.nanos(q) for n, q in hard_q.items()}
            used = self._used(names, ns, scopes)
            for r in pending:
                if r.store_key == "pods" and scopes:
                    continue
                for n, v in r.usage.items():
                    if n in hard:
                        used[n] = used.get(n, 0) + v
            over = exceeded(hard, used, requested)
            if over:
                def show(d: dict[str, int]) -> str:
                    return ",".join(f"{n}={rq.fmt(rq.from_nanos(d.get(n, 0), req_q.get(n) or hard_q[n]))}" for n in over)

                def show_hard() -> str:
                    return ",".join(f"{n}={rq.fmt(hard_q[n])}" for n in over)
                raise st.forbidden(f'{rt.plural} "{name}" is forbidden: exceeded quota: {qname}, requested: {show(requested)}, '
                                   f"used: {show(used)}, limited: {show_hard()}", rt, name)
            for n, v in requested.items():
                total[n] = v
        if total and old is None:
            uid = str(m.get("uid", ""))
            self._reserved[uid] = _Reserved(rt.store_key, ns, name, uid, total, self.clock())
            self._by_name[(rt.store_key, ns, name)] = uid
