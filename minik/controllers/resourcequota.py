"""The resource quota controller: `status.hard` and `status.used` of every ResourceQuota.

`status.hard` is the spec's `hard`; `status.used` sums, over the objects of the quota's
namespace, what each uses of the quota's resource names (`minik.apis.resourcequota.usage`, the
same arithmetic admission applies), pods filtered by the quota's scopes. Objects come from the
shared informers: one per resource type a quota of the cluster names (pods, services, configmaps,
secrets, persistentvolumeclaims, or any `count/<resource>` type), asked for lazily, so a cluster
without quotas holds no extra cache. A change of such an object re-syncs the quotas of its
namespace; the status is written only when it changes (an idle cluster writes nothing).
`compute_used` is pure.
Neighbours: `minik.api.quota_admission` refuses creates over quota; shared informers from
`minik.daemon`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterable

from minik.apis import resourcequota as rq
from minik.apis.quantity import Quantity
from minik.client import Client, ClientError, Obj
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer, object_key, split_key
from minik.machinery.informers import InformerFactory
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.resourcequota")

COMPONENT = "resourcequota-controller"
QUOTAS = "resourcequotas"
RECHECK = 10.0


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def hard_of(quota: Obj) -> dict[str, str]:
    return {str(k): str(v) for k, v in _d(_d(quota.get("spec")).get("hard")).items()}


def compute_used(quota: Obj, objects: Callable[[str], Iterable[Obj]], cache: rq.UsageCache | None = None) -> dict[str, str]:
    """status.used: every hard name, counted over `objects(store_key)` of the namespace."""
    hard = {n: q for n, v in hard_of(quota).items() if (q := Quantity.of(v)) is not None}
    names = tuple(hard_of(quota))
    scopes = rq.quota_scopes(quota)
    cache = cache or rq.UsageCache()
    used: dict[str, int] = {}
    for key in sorted({k for k in (rq.store_key_of(n) for n in names) if k}):
        for n, v in cache.total(key, objects(key), names, scopes).items():
            used[n] = used.get(n, 0) + v
    return {n: rq.fmt(rq.from_nanos(used[n], hard.get(n))) if used.get(n) else "0" for n in names}


class ResourceQuotaController:
    def __init__(self, client: Client, informers: InformerFactory, run_informers: bool = False) -> None:
        self.client, self.factory = client, informers
        self.quotas: Informer = informers.informer(QUOTAS)
        self.watched: dict[str, Informer] = {}
        self.usage = rq.UsageCache()
        # Resource types the API serves (discovery); a quota naming another counts 0 for it
        # rather than watching a resource that does not exist. Refreshed when a quota names an
        # unknown one (a CRD may have been added since), at most every RECHECK seconds.
        self.served: set[str] = set()
        self._served_at = -RECHECK
        self.queue = WorkQueue()
        self.quotas.add_handler(self._on_quota)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [self.quotas], workers=1, run_informers=run_informers)

    def _on_quota(self, old: Obj | None, new: Obj | None) -> None:
        if new is not None:
            self.queue.add(object_key(new))

    async def _watch(self, keys: set[str]) -> None:
        """Shared informers for the served resource types among `keys` (asked for once)."""
        missing = keys - set(self.watched)
        if missing - self.served and time.monotonic() - self._served_at >= RECHECK:
            self.served = {r.resource for r in await self.client.resources()}
            self._served_at = time.monotonic()
        for key in missing & self.served:
            inf = self.factory.informer(key)
            inf.add_handler(self._on_object)
            self.watched[key] = inf

    def _on_object(self, old: Obj | None, new: Obj | None) -> None:
        obj = new if new is not None else old
        ns = str(_d(_d(obj).get("metadata")).get("namespace", "")) if obj is not None else ""
        if ns:
            for q in self.quotas.list(ns):
                self.queue.add(object_key(q))

    async def run(self) -> None:
        await self.controller.run()

    async def sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        quota = self.quotas.get(ns, name)
        if quota is None:
            return None
        keys = {k for k in (rq.store_key_of(n) for n in hard_of(quota)) if k}
        await self._watch(keys)
        for k in keys:
            inf = self.watched.get(k)
            if inf is not None and not inf.synced:
                return 0.2    # its cache is still filling: counting now would under-count
        used = compute_used(quota, lambda k: self.watched[k].list(ns) if k in self.watched else [], self.usage)
        hard = hard_of(quota)
        status = _d(quota.get("status"))
        if status.get("hard") == hard and status.get("used") == used:
            return None
        # Merge patch: names dropped from the spec are removed with explicit nulls.
        body: dict[str, Any] = {"hard": {**{k: None for k in _d(status.get("hard"))}, **hard},
                                "used": {**{k: None for k in _d(status.get("used"))}, **used}}
        try:
            await self.client.patch(QUOTAS, ns, name, {"status": body}, subresource="status",
                                    field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise
        return None
