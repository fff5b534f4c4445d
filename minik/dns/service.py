"""ClusterDns: cluster DNS on this node, fed by the daemon's shared informers.

Start-up: the DNS IP goes on a local interface (`minik.net.dnsaddr`), the zone is filled from
the Services, EndpointSlices, pods, Nodes and Namespaces caches once they are synced, then the
server binds UDP and TCP 53 on the DNS IP (no answer is given from a half-filled zone). Afterwards
informer handlers only mark a Service (or a pod, Node or Namespace) dirty; the `dns-zone` task
rebuilds the records of what is dirty from the caches (`records.service_entry`), so a change
costs one Service, not the cluster.
Tasks: `dns-zone` (zone updates), `dns-server` (address, then UDP/TCP) and `dns-metrics`
(<DNS IP>:9153/metrics, started once the address is there), all supervised.
Neighbours: `minik.dns.records` (Zone), `minik.dns.resolver`, `minik.dns.forward`,
`minik.dns.server`; built by `minik.daemon._start_dns`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minik.client import Obj
from minik.dns.forward import Forwarder
from minik.dns.metrics import serve_metrics
from minik.dns.records import Zone, service_entry
from minik.dns.resolver import Resolver
from minik.dns.server import DnsServer
from minik.machinery.informer import object_key, split_key
from minik.machinery.informers import SERVICE_INDEX, InformerFactory, slice_service
from minik.machinery.tasks import Supervisor
from minik.net.dnsaddr import ensure_dns_address

log = logging.getLogger("minik.dns")

SLICES = "discovery.k8s.io/endpointslices"


def pod_ips(pod: Obj | None) -> tuple[str, ...]:
    """A pod's own IPs (none for host-network pods: those are the node's)."""
    if pod is None or (pod.get("spec") or {}).get("hostNetwork"):
        return ()
    st = pod.get("status") or {}
    ips = [p.get("ip") for p in st.get("podIPs") or [] if isinstance(p, dict)] or [st.get("podIP")]
    return tuple(ip for ip in ips if isinstance(ip, str) and ip)


def node_ips(node: Obj | None) -> tuple[str, ...]:
    """A Node's InternalIP addresses (what k3s's NodeHosts lists)."""
    if node is None:
        return ()
    addrs = (node.get("status") or {}).get("addresses") or []
    return tuple(a["address"] for a in addrs
                 if isinstance(a, dict) and a.get("type") == "InternalIP" and isinstance(a.get("address"), str))


@dataclass(frozen=True, slots=True)
class DnsSettings:
    dns_ip: str = "10.43.0.10"
    domain: str = "cluster.local"
    interface: str = "minik-dns0"
    resolv_conf: str = "/etc/resolv.conf"
    port: int = 53
    metrics_port: int = 9153          # the kube-dns Service's `metrics` port; 0: none
    own_address: bool = True          # put dns_ip on `interface` (tests on loopback say False)


class ClusterDns:
    def __init__(self, settings: DnsSettings, informers: InformerFactory, supervisor: Supervisor,
                 forwarder: Forwarder | None = None) -> None:
        self.settings, self.informers, self.supervisor = settings, informers, supervisor
        self.zone = Zone(settings.domain, settings.dns_ip)
        self.forwarder = forwarder or Forwarder(settings.resolv_conf, exclude=(settings.dns_ip,))
        self.resolver = Resolver(self.zone, self.forwarder)
        self.server = DnsServer(self.resolver, settings.dns_ip, settings.port)
        self.services = informers.informer("services")
        self.slices = informers.informer(SLICES)
        self.pods = informers.informer("pods")
        self.nodes = informers.informer("nodes")
        self.namespaces = informers.informer("namespaces")
        self.slices.add_indexer(SERVICE_INDEX, slice_service)
        self._dirty: set[str] = set()
        self._dirty_pods: set[str] = set()
        self._dirty_nodes: set[str] = set()
        self._dirty_namespaces: set[str] = set()
        self._wake = asyncio.Event()
        self.synced = asyncio.Event()
        self.services.add_handler(self._on_service)
        self.slices.add_handler(self._on_slice)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.namespaces.add_handler(self._on_namespace)

    def start(self) -> None:
        self.supervisor.spawn("dns-zone", self._zone_loop)
        self.supervisor.spawn("dns-server", self._serve)

    # ---- handlers: mark dirty only ------------------------------------------------------------
    def _mark(self, key: str) -> None:
        self._dirty.add(key)
        self._wake.set()

    def _on_service(self, old: Obj | None, new: Obj | None) -> None:
        self._mark(object_key(new if new is not None else old or {}))

    def _on_slice(self, old: Obj | None, new: Obj | None) -> None:
        for obj in (old, new):
            if obj is not None:
                for key in slice_service(obj):
                    self._mark(key)

    def _on_pod(self, old: Obj | None, new: Obj | None) -> None:
        if new is None or pod_ips(old) != pod_ips(new):
            self._dirty_pods.add(object_key(new if new is not None else old or {}))
            self._wake.set()

    def _on_node(self, old: Obj | None, new: Obj | None) -> None:
        if new is None or node_ips(old) != node_ips(new):
            self._dirty_nodes.add(object_key(new if new is not None else old or {}))
            self._wake.set()

    def _on_namespace(self, old: Obj | None, new: Obj | None) -> None:
        if old is None or new is None:
            self._dirty_namespaces.add(object_key(new if new is not None else old or {}))
            self._wake.set()

    # ---- zone ---------------------------------------------------------------------------------
    def sync_service(self, key: str) -> bool:
        ns, name = split_key(key)
        svc = self.services.get(ns, name)
        entry = service_entry(svc, self.slices.by_index(SERVICE_INDEX, key)) if svc is not None else None
        return self.zone.set_service(ns, name, entry)

    def sync_pod(self, key: str) -> bool:
        ns, name = split_key(key)
        return self.zone.set_pod(key, ns, pod_ips(self.pods.get(ns, name)))

    def sync_node(self, name: str) -> bool:
        return self.zone.set_node(name, node_ips(self.nodes.get("", name)))

    async def _zone_loop(self) -> None:
        await self.informers.wait_synced("services", SLICES, "pods", "nodes", "namespaces")
        if not self.synced.is_set():
            self._dirty.update(object_key(s) for s in self.services.list())
            self._dirty_pods.update(object_key(p) for p in self.pods.list())
            self._dirty_nodes.update(object_key(n) for n in self.nodes.list())
            self._dirty_namespaces.update(object_key(n) for n in self.namespaces.list())
        while True:
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            pods, self._dirty_pods = self._dirty_pods, set()
            nodes, self._dirty_nodes = self._dirty_nodes, set()
            namespaces, self._dirty_namespaces = self._dirty_namespaces, set()
            for key in dirty:
                self.sync_service(key)
            for key in pods:
                self.sync_pod(key)
            for key in nodes:
                self.sync_node(key)
            for key in namespaces:
                self.zone.set_namespace(key, self.namespaces.get("", key) is not None)
            if not self.synced.is_set():
                self.synced.set()
                log.info("cluster DNS zone %s loaded: %d services", self.zone.domain, len(self.zone))
            await self._wake.wait()

    # ---- server -------------------------------------------------------------------------------
    async def _serve(self) -> None:
        s = self.settings
        if s.own_address:
            addr = await asyncio.to_thread(ensure_dns_address, s.interface, s.dns_ip)
            log.info("DNS IP %s on %s", addr.address, addr.interface)
        await self.synced.wait()
        if s.metrics_port and "dns-metrics" not in self.supervisor.names():
            self.supervisor.spawn("dns-metrics", lambda: serve_metrics(s.dns_ip, s.metrics_port, self.zone, self.resolver,
                                                                       self.server, self.forwarder))
        await self.server.serve()
