"""The ClusterRole aggregation controller: keeps the rules of aggregated ClusterRoles (`admin`,
`edit`, `view`, and any user-made role with an `aggregationRule`) equal to the rules of the
ClusterRoles their `clusterRoleSelectors` select — so a ClusterRole labelled
`rbac.authorization.k8s.io/aggregate-to-view: "true"` extends `view` (and, through `edit` and
`admin`, those too), as kube-controller-manager's clusterrole-aggregation controller does.

Any ClusterRole change enqueues every aggregated ClusterRole; `sync(name)` computes the wanted
rules with the pure `minik.api.rbac_rules.aggregated_rules` and writes only on a difference.
Nested aggregations converge because the write of `edit` is itself a change that requeues `admin`.
Neighbours: fed by a shared `minik.machinery.informer.Informer` on clusterroles; writes through
`minik.client`; started by `minik.daemon`.
"""

from __future__ import annotations

import copy
import logging

from minik.client import Client, Obj
from minik.machinery.controller import Controller
from minik.machinery.informer import Informer
from minik.machinery.workqueue import WorkQueue
from minik.api.rbac_rules import aggregated_rules

log = logging.getLogger("minik.rbac")

CLUSTERROLES = "rbac.authorization.k8s.io/clusterroles"


class ClusterRoleAggregator:
    def __init__(self, roles: Informer, client: Client, run_informers: bool = True) -> None:
        self.roles, self.client, self.run_informers = roles, client, run_informers
        self.queue = WorkQueue()
        roles.add_handler(self._changed)

    def _changed(self, old: Obj | None, new: Obj | None) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.queue.add(str(role["metadata"]["name"]))

    async def sync(self, name: str) -> float | None:
        role = self.roles.get("", name)
        if role is None:
            return None
        want = aggregated_rules(role, self.roles.list())
        if want is None or want == (role.get("rules") or []):
            return None
        upd = copy.deepcopy(role)
        upd["rules"] = want
        await self.client.update(CLUSTERROLES, "", name, upd, field_manager="clusterrole-aggregation-controller")
        log.info("aggregated ClusterRole %s: %d rules", name, len(want))
        return None

    async def run(self) -> None:
        await Controller("clusterrole-aggregation-controller", self.queue, self.sync, [self.roles], workers=1,
                         run_informers=self.run_informers).run()
