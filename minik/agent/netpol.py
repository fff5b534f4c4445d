"""NetworkPolicy enforcer of one node: shared informers → planner → nftables.

Role: reads NetworkPolicies, Pods and Namespaces from the daemon's shared `InformerFactory`
(never a private informer), and after every relevant change recomputes the per-pod allow lists
(`minik.agent.netpolicy.plan`, pure) and brings the node's `netpol-*` chains to them
(`minik.net.netpol.NetpolTable`: only changed chains and map elements are rewritten, in one
`nft -f -` transaction). Handlers only mark the state dirty (pod status churn that changes no
address, label, node or port is ignored); one loop does the work after a 10 ms pause, so a
burst of events costs one plan and at most one transaction.

Ordering: nothing is applied before the three caches are synced, so a restarted daemon never
replaces the rules it left in the kernel (pods keep running across restarts) with an empty,
open ruleset; the first apply is a full resync in one transaction. br_netfilter is turned on
first (pod-to-pod traffic on the bridge must reach the forward hook); without it the enforcer
still runs (Service and cross-node traffic are routed) and says so in the log.

Neighbours: started by `minik.daemon` (`Server._start_netpol`); `minik.agent.netpolicy`;
`minik.net.netpol`; `minik.net.nft.Nft` runs the scripts.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from minik.agent.netpolicy import PodInfo, pod_info, plan
from minik.client import Obj
from minik.machinery.informer import object_key
from minik.machinery.informers import InformerFactory
from minik.net.netpol import BRIDGE_NF, NetpolError, NetpolTable, ScriptRunner, ensure_bridge_netfilter
from minik.net.nft import Nft

log = logging.getLogger(__name__)

NETWORKPOLICIES = "networking.k8s.io/networkpolicies"
RESOURCES = ("pods", "namespaces", NETWORKPOLICIES)


class NetpolEnforcer:
    def __init__(self, informers: InformerFactory, node_name: str, table: str, bridge: str,
                 cluster_dns: str | None, runner: ScriptRunner | None = None,
                 bridge_nf: Path = BRIDGE_NF, debounce: float = 0.01) -> None:
        self.node_name, self.cluster_dns = node_name, cluster_dns or None
        self._informers = informers
        self._policies = informers.informer(NETWORKPOLICIES)
        self._pods = informers.informer("pods")
        self._namespaces = informers.informer("namespaces")
        self._table = NetpolTable(runner if runner is not None else Nft(), table, bridge)
        self._bridge_nf = bridge_nf
        self._debounce = debounce
        self._dirty = asyncio.Event()
        self._infos: dict[str, PodInfo] = {}   # pod key → what the planner reads of it
        self.syncs = 0                 # transactions applied (tests, metrics)
        self.last_sync_seconds = 0.0   # plan + apply of the last change
        self.isolated_pods = 0
        # Registered once: a restarted run() must not add a second set of handlers.
        self._policies.add_handler(self._changed)
        self._namespaces.add_handler(self._ns_changed)
        self._pods.add_handler(self._pod_changed)

    @property
    def table(self) -> NetpolTable:
        return self._table

    def _changed(self, old: Obj | None, new: Obj | None) -> None:
        self._dirty.set()

    def _ns_changed(self, old: Obj | None, new: Obj | None) -> None:
        if old is None or new is None or (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
            self._dirty.set()

    def _pod_changed(self, old: Obj | None, new: Obj | None) -> None:
        # Most pod events are status churn (probes, restarts); only what the plan reads counts.
        # The parsed form is kept, so a plan does not parse every pod again.
        key = object_key(new if new is not None else old or {})
        before = self._infos.get(key)
        after = None if new is None else pod_info(new)
        if after is None:
            self._infos.pop(key, None)
        else:
            self._infos[key] = after
        if before != after:
            self._dirty.set()

    async def run(self) -> None:
        try:
            done = await ensure_bridge_netfilter(self._bridge_nf)
            if done:
                log.info("network policy: %s (pod-to-pod traffic on the bridge reaches nftables)", done)
        except NetpolError as e:
            log.warning("network policy: %s", e)
        await self._informers.wait_synced(*RESOURCES)
        # The shared pods informer may have been synced (and its handlers called) before this
        # enforcer registered its own: take the parsed pods from the cache once.
        self._infos = {object_key(p): i for p in self._pods.list() if (i := pod_info(p)) is not None}
        # A fresh start (also after a failure) resyncs everything in one transaction.
        self._table.reset()
        while True:
            self._dirty.clear()
            await self.sync()
            await self._dirty.wait()
            # A burst (a Deployment's pods getting their IPs, a namespace of policies applied
            # at once) costs one plan: a short pause lets the rest of it arrive.
            await asyncio.sleep(self._debounce)

    def metrics(self) -> list[str]:
        """Lines for the daemon's /metrics."""
        return [f"minik_netpol_isolated_pods {self.isolated_pods}",
                f"minik_netpol_syncs_total {self.syncs}",
                f"minik_netpol_last_sync_seconds {self.last_sync_seconds:.6f}"]

    async def sync(self) -> bool:
        started = time.perf_counter()
        rules = plan(self._policies.list(), list(self._infos.values()), self._namespaces.list(),
                     self.node_name, self.cluster_dns)
        changed = await self._table.sync(rules)
        self.isolated_pods = len(rules)
        if changed:
            self.syncs += 1
            self.last_sync_seconds = time.perf_counter() - started
            log.debug("network policy: %d isolated pods, applied in %.1f ms", len(rules),
                      self.last_sync_seconds * 1000)
        return changed


async def remove_rules(table: str, bridge: str, runner: ScriptRunner | None = None) -> None:
    """With enforcement turned off (`--disable-network-policy`), chains a previous run left in
    the table would keep enforcing stale policies: remove every `netpol-*` object."""
    await NetpolTable(runner if runner is not None else Nft(), table, bridge).delete()
