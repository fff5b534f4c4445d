"""The node's Service proxy (kube-proxy's job), entirely in the kernel: nftables, no userspace hop.

Role: reads Services, EndpointSlices (and, for selector-less Services whose Endpoints are written
by hand or by the API server itself, like `default/kubernetes`, the Endpoints: what the
endpointslice mirroring controller does) from the daemon's shared informers, turns each Service
into a `minik.net.services.ServiceInfo` (pure `service_info`), and has
`minik.net.serviceapply.ServiceRules` make the kernel match. Informer events only mark the
Service key dirty and wake the loop; the loop waits a short debounce, builds the dirty
Services' partial rulesets and puts them in place of their previous ones in the applied ruleset
(a previous part is built again from the ServiceInfo it came from: only the infos are kept per
Service, not a second copy of every rule), then applies the difference. The
first sync is a full resync (restart after kill -9 reinstalls the same rules). UDP flows whose
endpoint went away are then deleted from conntrack (`minik.net.conntrack`), as kube-proxy does.
Neighbours: built by `minik.daemon` (`_start_proxier`) with the `InformerFactory`; reads only
through informers (so it could run on a remote agent with its own factory).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

from minik.machinery.informer import Informer
from minik.machinery.informers import SERVICE_INDEX, InformerFactory, slice_service
from minik.net import services as rules
from minik.net.conntrack import delete_flows
from minik.net.serviceapply import ServiceRules, SyncResult

log = logging.getLogger(__name__)

Obj = dict[str, Any]
DEFAULT_AFFINITY_TIMEOUT = 10800
LOOPBACK = "127.0.0.1"


def _ready(ep: Obj) -> bool:
    cond = ep.get("conditions") or {}
    return cond.get("ready") is not False     # nil means ready (EndpointSlice API)


def _endpoints_from_slices(port: Obj, slices: list[Obj], node: str) -> list[rules.Endpoint]:
    """Ready endpoints only. kube-proxy falls back to serving-but-terminating endpoints when none
    is ready; minik does not (tried and reverted): a terminating pod's `serving` lags behind its
    sandbox being torn down, so the fallback sent new connections into a vanished address
    (a timeout) instead of refusing them at once after a scale to zero."""
    name, proto = port.get("name") or "", (port.get("protocol") or "TCP")
    out: list[rules.Endpoint] = []
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        # The slice says which number the Service port has on its pods (named targetPorts are
        # resolved per pod by the endpoints controller, so slices differ by port number).
        number = next((p.get("port") for p in sl.get("ports") or []
                       if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == proto), None)
        if not isinstance(number, int):
            continue
        for ep in sl.get("endpoints") or []:
            addrs = ep.get("addresses") or []
            if not addrs or not _ready(ep):
                continue
            out.append(rules.Endpoint(str(addrs[0]), number, local=(ep.get("nodeName") or node) == node))
    return out


def _endpoints_from_legacy(port: Obj, endpoints: Obj | None, node: str) -> list[rules.Endpoint]:
    name, proto = port.get("name") or "", (port.get("protocol") or "TCP")
    out: list[rules.Endpoint] = []
    for ss in (endpoints or {}).get("subsets") or []:
        number = next((p.get("port") for p in ss.get("ports") or []
                       if (p.get("name") or "") == name and (p.get("protocol") or "TCP") == proto), None)
        if not isinstance(number, int):
            continue
        for a in ss.get("addresses") or []:
            if a.get("ip"):
                out.append(rules.Endpoint(str(a["ip"]), number, local=(a.get("nodeName") or node) == node))
    return out


def _ipv4(value: Any) -> bool:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        return False
    return True


def service_info(svc: Obj, slices: list[Obj], endpoints: Obj | None, node: str) -> rules.ServiceInfo | None:
    """What the rules need of one Service (None: no rules at all — ExternalName, headless)."""
    m, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    stype = spec.get("type") or "ClusterIP"
    cip = spec.get("clusterIP") or ""
    if stype == "ExternalName" or not _ipv4(cip):
        return None
    legacy = not slices and not spec.get("selector")
    ports: list[rules.ServicePort] = []
    for p in spec.get("ports") or []:
        proto = str(p.get("protocol") or "TCP").lower()
        if proto not in rules.PROTOCOLS or not isinstance(p.get("port"), int):
            continue
        eps = _endpoints_from_legacy(p, endpoints, node) if legacy else _endpoints_from_slices(p, slices, node)
        node_port = p.get("nodePort") if stype in ("NodePort", "LoadBalancer") else 0
        ports.append(rules.ServicePort(proto, int(p["port"]), int(node_port or 0), tuple(eps)))
    timeout = 0
    if spec.get("sessionAffinity") == "ClientIP":
        cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
        timeout = int(cfg.get("timeoutSeconds") or DEFAULT_AFFINITY_TIMEOUT)
    lb: tuple[str, ...] = ()
    if stype == "LoadBalancer":
        ingress = [str(i["ip"]) for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                   if _ipv4(i.get("ip"))]
        # ServiceLB publishes the node addresses; the port is served on them and on loopback.
        lb = tuple(sorted(set(ingress) | {LOOPBACK})) if ingress else ()
    return rules.ServiceInfo(
        namespace=str(m.get("namespace", "")), name=str(m.get("name", "")), cluster_ip=cip,
        ports=tuple(ports), affinity_timeout=timeout,
        external_local=stype in ("NodePort", "LoadBalancer") and spec.get("externalTrafficPolicy") == "Local",
        lb_addresses=lb,
    )


def merge(parts: list[rules.Ruleset]) -> rules.Ruleset:
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, int] = {}
    maps: dict[str, dict[str, str]] = {m: {} for m in rules.MAPS}
    ips: set[str] = set()
    for p in parts:
        chains.update(p.chains)
        sets.update(p.sets)
        for m, elems in p.maps.items():
            maps[m].update(elems)
        ips |= p.cluster_ips
    return rules.Ruleset(chains, sets, maps, frozenset(ips))


def replace_parts(current: rules.Ruleset, old: list[rules.Ruleset], new: list[rules.Ruleset]) -> rules.Ruleset:
    """`current` without the `old` parts and with the `new` ones (pure; `current` is unchanged).
    All old parts go first: a ClusterIP or nodePort freed by one Service and taken by another
    in the same sync stays."""
    chains = dict(current.chains)
    sets = dict(current.sets)
    maps: dict[str, dict[str, str]] = {m: dict(current.maps.get(m, {})) for m in rules.MAPS}
    ips = set(current.cluster_ips)
    for p in old:
        for name in p.chains:
            chains.pop(name, None)
        for name in p.sets:
            sets.pop(name, None)
        for m, elems in p.maps.items():
            for k in elems:
                maps[m].pop(k, None)
        ips -= p.cluster_ips
    for p in new:
        chains.update(p.chains)
        sets.update(p.sets)
        for m, elems in p.maps.items():
            maps[m].update(elems)
        ips |= p.cluster_ips
    return rules.Ruleset(chains, sets, maps, frozenset(ips))


class Proxier:
    def __init__(self, informers: InformerFactory, node_name: str, settings: rules.Settings, bridge: str,
                 applier: ServiceRules | None = None, debounce: float = 0.01,
                 on_sync: Callable[[SyncResult], None] | None = None) -> None:
        self._services: Informer = informers.informer("services")
        self._slices: Informer = informers.informer("discovery.k8s.io/endpointslices")
        self._endpoints: Informer = informers.informer("endpoints")
        self._slices.add_indexer(SERVICE_INDEX, slice_service)
        self._node = node_name
        self._settings = settings
        self._rules = applier or ServiceRules(settings, bridge)
        self._debounce = debounce
        self._on_sync = on_sync
        self._dirty: set[str] = set()
        self._all_dirty = True
        self._wake = asyncio.Event()
        # The ServiceInfo each Service's applied rules were built from (its part is rebuilt from
        # it when the Service changes; the applier holds the merged ruleset).
        self._infos: dict[str, rules.ServiceInfo] = {}
        self._services.add_handler(self._on_service)
        self._slices.add_handler(self._on_slice)
        self._endpoints.add_handler(self._on_service)

    # Handlers only record which Service changed (informer callbacks must stay cheap).
    def _on_service(self, old: Obj | None, new: Obj | None) -> None:
        m = (new or old or {}).get("metadata") or {}
        self._mark(f"{m.get('namespace', '')}/{m.get('name', '')}")

    def _on_slice(self, old: Obj | None, new: Obj | None) -> None:
        for obj in (old, new):
            for key in slice_service(obj or {}):
                self._mark(key)

    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    async def run(self) -> None:
        # The safety skeleton first (Service CIDR dropped, unserved ports rejected), keeping
        # whatever Service rules a previous run left until the caches have synced.
        await self._rules.prepare_host()
        await asyncio.gather(self._services.wait_synced(), self._slices.wait_synced(),
                             self._endpoints.wait_synced())
        self._all_dirty = True
        self._wake.set()
        while True:
            await self._wake.wait()
            # Debounce: a rollout changes many slices at once; one transaction covers them.
            await asyncio.sleep(self._debounce)
            self._wake.clear()
            await self.sync_once()

    async def sync_once(self) -> SyncResult | None:
        start = time.monotonic()
        current = self._rules.current
        full = self._all_dirty or current is None
        if full:
            keys = {f"{s['metadata'].get('namespace', '')}/{s['metadata']['name']}" for s in self._services.list()}
            keys |= set(self._infos)
            self._all_dirty = False
            self._dirty.clear()
        else:
            keys, self._dirty = self._dirty, set()
        stale: list[rules.StaleFlow] = []
        old_parts: list[rules.Ruleset] = []
        new_parts: list[rules.Ruleset] = []
        for key in keys:
            info = self._info(key)
            old = self._infos.get(key)
            stale += rules.stale_udp_flows(old, info)
            part = self._build(key, info)
            if not full and old is not None:
                # What this Service contributed so far: built again from its last info (pure),
                # rather than every Service's part kept in memory next to the applied ruleset.
                old_part = self._build(key, old)
                if old_part is not None:
                    old_parts.append(old_part)
            if part is None or info is None:
                self._infos.pop(key, None)
            else:
                self._infos[key] = info
                new_parts.append(part)
        if full:
            wanted = merge(new_parts)   # every Service is in `keys`
        else:
            assert current is not None
            wanted = replace_parts(current, old_parts, new_parts)
        try:
            result = await self._rules.sync(wanted)
        except Exception:
            self._all_dirty = True       # retried on the next wake (below)
            log.exception("proxier: applying Service rules failed; retrying")
            await asyncio.sleep(1.0)
            self._wake.set()
            return None
        if stale:
            # After the rules: new packets of a deleted flow must meet the new DNAT.
            n = await delete_flows(stale)
            log.debug("proxier: %d stale UDP conntrack entries deleted", n)
        if result is not None:
            log.log(logging.INFO if result.full else logging.DEBUG,
                    "proxier: %s sync of %d services, %d chains written in %.1f ms (total %.1f ms)",
                    "full" if result.full else "incremental", len(keys), result.chains_written,
                    result.seconds * 1000, (time.monotonic() - start) * 1000)
            if self._on_sync is not None:
                self._on_sync(result)
        return result

    def _info(self, key: str) -> rules.ServiceInfo | None:
        ns, _, name = key.partition("/")
        svc = self._services.get(ns, name)
        if svc is None:
            return None
        slices = self._slices.by_index(SERVICE_INDEX, key)
        return service_info(svc, slices, self._endpoints.get(ns, name), self._node)

    def _build(self, key: str, info: rules.ServiceInfo | None) -> rules.Ruleset | None:
        if info is None:
            return None
        try:
            return rules.build([info], self._settings)
        except (rules.ServiceRulesError, ValueError) as e:
            log.warning("proxier: service %s skipped: %s", key, e)
            return None
