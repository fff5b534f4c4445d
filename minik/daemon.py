"""Composition root of `minik server`: builds the parts, starts them behind readiness gates, stops
them in reverse order.

Order: PKI and token → store → API (serving) → bootstrap objects → controllers → node agent.
Neighbours: `minik.cli` builds the `ServerConfig` and calls `run_server`; everything else is
constructed here and handed its dependencies (no globals).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from typing import TYPE_CHECKING

from minik.api import status as st
from minik.api.app import ApiServer, server_ssl_context
from minik.api.auth import Authenticator, User
from minik.api.health import Check
from minik.api.rbac import RBACAuthorizer, bootstrap_objects
from minik.api.rbac_aggregation import CLUSTERROLES, ClusterRoleAggregator
from minik.api.rbac_bootstrap import reconcile_rbac_defaults
from minik.api.handlers import ApiHandlers
from minik.api.kinds import KindHooksImpl
from minik.api.metrics import MetricsApi
from minik.api.reviews import Reviews
from minik.api.openapi import OpenAPI
from minik.api.service import ResourceService, WriteOptions
from minik.apis.registry import Registry
from minik.apis.schema import Schemas
from minik.client.local import LocalClient
from minik.client.metrics import NodeUsage, PodUsage
from minik.config import ServerConfig, agent_config
from minik.controllers.deployment import DeploymentController
from minik.controllers.endpoints import EndpointsController
from minik.controllers.apiservice import APIServiceController
from minik.controllers.garbagecollector import GarbageCollector
from minik.controllers.hpa import HorizontalPodAutoscaler
from minik.controllers.replicaset import ReplicaSetController
from minik.controllers.namespace import NamespaceController
from minik.controllers.nodeipam import NodeIpamController
from minik.controllers.nodelifecycle import NodeLifecycleController
from minik.machinery.informers import InformerFactory
from minik.machinery.tasks import Supervisor
from minik.net.hostaddr import default_ip
from minik.pki import certs, kubeconfig, satoken
from minik.pki.token import ensure_admin_token, ensure_token
from minik.scheduler.scheduler import Scheduler
from minik.store.store import Store

if TYPE_CHECKING:
    from minik.agent.netpol import NetpolEnforcer
    from minik.agent.runtime import NodeRuntime
    from minik.cluster.server import ClusterServer
    from minik.dns.service import ClusterDns
    from minik.ingress.controller import IngressController

log = logging.getLogger("minik")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
VOLATILE = frozenset({"coordination.k8s.io/leases"})


def sd_notify(message: str) -> None:
    """Tell systemd (Type=notify) we are ready; a no-op without NOTIFY_SOCKET."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(message.encode(), addr)
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


class Server:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.supervisor = Supervisor()
        self.registry = Registry()
        self.schemas = Schemas()
        self.store = Store(cfg.db_path, volatile=VOLATILE)
        self.api: ApiServer | None = None
        self.service: ResourceService | None = None
        self.node_name = cfg.node_name or socket.gethostname().lower()
        self.advertise = cfg.advertise_address or default_ip()
        self._ready = False
        self.runtime: NodeRuntime | None = None
        self.informers: InformerFactory | None = None
        self.dns: ClusterDns | None = None
        self.netpol: NetpolEnforcer | None = None
        self.ingress: IngressController | None = None
        self.cluster: ClusterServer | None = None

    async def start(self) -> None:
        cfg = self.cfg
        self._start_memory_trimmer()
        self._start_loop_probe()
        os.makedirs(cfg.server_dir, mode=0o700, exist_ok=True)
        os.makedirs(os.path.dirname(cfg.db_path), mode=0o700, exist_ok=True)
        first_ip = _first_service_ip(cfg.service_cidr)
        hostnames = [socket.gethostname().lower(), "localhost", "kubernetes", "kubernetes.default",
                     "kubernetes.default.svc", f"kubernetes.default.svc.{cfg.cluster_domain}", *cfg.tls_san]
        ips = ["127.0.0.1", self.advertise, first_ip]
        pki = await asyncio.to_thread(certs.ensure_pki, cfg.tls_dir, hostnames, ips)
        token = await asyncio.to_thread(ensure_token, os.path.join(cfg.server_dir, "token"), pki.ca_cert, cfg.token)
        node_token_path = os.path.join(cfg.server_dir, "node-token")
        if not os.path.exists(node_token_path) or open(node_token_path).read().strip() != token:
            await asyncio.to_thread(_write_secret, node_token_path, token)
        await self._start_secrets_encryption()
        await self.store.start()
        log.info("store open at %s (revision %d)", cfg.db_path, self.store.revision)

        openapi = OpenAPI(self.registry, self.schemas)
        hooks = KindHooksImpl(self.store, self.registry, cfg.service_cidr, openapi,
                              node_port_range=cfg.service_node_port_range)
        for crd in self.store.list("apiextensions.k8s.io/customresourcedefinitions").items:
            hooks.register_crd(crd)
        self.service = ResourceService(self.store, self.registry, self.schemas, hooks)
        server_addr = f"{self.advertise}:{cfg.https_listen_port}"
        handlers = ApiHandlers(self.registry, self.service, hooks, server_addr)
        sa_key = await asyncio.to_thread(satoken.ensure_key, os.path.join(cfg.tls_dir, "service.key"))
        issuer = f"https://kubernetes.default.svc.{cfg.cluster_domain}"
        self.tokens = satoken.ServiceAccountTokens(sa_key, issuer, (issuer, "minik"))
        # The join token is not an API credential; the admin bearer token lives in its own file.
        admin_token = await asyncio.to_thread(ensure_admin_token, os.path.join(cfg.server_dir, "admin-token"))
        authn = Authenticator({admin_token: User("system:admin", ("system:masters", "system:authenticated"))},
                              jwt_verifier=self._service_account_user)
        authz = RBACAuthorizer(self.store)
        handlers.authz = authz
        reviews = handlers.reviews = Reviews(authn, authz, self.tokens)
        with open(pki.ca_cert, "rb") as f:
            ca_pem = f.read()
        self.api = ApiServer(handlers, openapi, authn, ca_pem, authz, ready=lambda: self._ready, metrics=self._metrics,
                             live_checks=(Check("etcd", lambda: self.store.healthy),))
        ssl_ctx = server_ssl_context(pki.serving_cert, pki.serving_key, pki.ca_cert)
        await self.api.start(cfg.bind_address, cfg.https_listen_port, ssl_ctx)
        log.info("API listening on https://%s:%d", cfg.bind_address, cfg.https_listen_port)
        await self._bootstrap(first_ip)
        await self._write_kubeconfig(pki)
        self.client = LocalClient(self.service, token_issuer=reviews.token_request)
        # One shared cache per resource for every controller and the scheduler (informer-<resource> tasks).
        # Informers share the store's read-only objects (no deep copy per cache; see LocalClient).
        self.informers = InformerFactory(LocalClient(self.service, copy_reads=False), self.supervisor)
        self.supervisor.spawn("namespace-controller", NamespaceController(self.client, ca_pem.decode(), informers=self.informers).run)
        self.supervisor.spawn("garbage-collector", GarbageCollector(self.client).run)
        self.supervisor.spawn("scheduler", Scheduler(self.client, informers=self.informers).run)
        self.supervisor.spawn("replicaset-controller", ReplicaSetController(self.client, informers=self.informers).run)
        self.supervisor.spawn("deployment-controller", DeploymentController(self.client, informers=self.informers).run)
        self.supervisor.spawn("endpoints-controller", EndpointsController(self.client, informers=self.informers).run)
        self.supervisor.spawn("node-ipam-controller", NodeIpamController(self.client, self.informers.informer("nodes"), cfg.cluster_cidr,
                                                                         run_informers=False).run)
        self.supervisor.spawn("clusterrole-aggregation-controller",
                              ClusterRoleAggregator(self.informers.informer(CLUSTERROLES), self.client, run_informers=False).run)
        self.supervisor.spawn("node-lifecycle-controller", NodeLifecycleController(
            self.client, self.informers.informer("nodes"), self.informers.informer("coordination.k8s.io/leases"),
            self.informers.informer("pods"), grace=cfg.node_monitor_grace_period, run_informers=False).run)
        self._start_workloads()
        self._start_autoscaling(handlers)
        await self._start_storage_and_policy()
        self.informers.start()
        self._start_poison_audit()
        await self._start_dns()
        if not cfg.disable_agent:
            await self._start_agent(handlers)
            self._start_overlay()
            self._start_netpol()
            await self._start_ingress()
        self._start_services()
        await self._start_cluster(handlers, pki)
        self._ready = True
        release_memory()
        sd_notify("READY=1")
        log.info("minik server ready: kubeconfig at %s", cfg.kubeconfig_path)

    def _start_poison_audit(self) -> None:
        """Report (log + Warning event) stored objects that today's API would refuse: once, in
        the background, so start-up is not delayed by a large store."""
        from minik.api.audit import report
        from minik.machinery.events import EventRecorder
        service = self.service
        assert service is not None
        recorder = EventRecorder(self.client, "minik-apiserver", host=self.node_name)

        async def audit() -> None:
            await report(service, recorder)
        self.supervisor.spawn("poison-audit", audit, restart=False)

    def _start_workloads(self) -> None:
        """Job, CronJob, StatefulSet and DaemonSet controllers on the shared informers."""
        from minik.controllers.cronjob import CronJobController
        from minik.controllers.daemonset import DaemonSetController
        from minik.controllers.job import JobController
        from minik.controllers.statefulset import StatefulSetController
        assert self.informers is not None
        self.supervisor.spawn("job-controller", JobController(self.client, informers=self.informers).run)
        self.supervisor.spawn("statefulset-controller", StatefulSetController(self.client, informers=self.informers).run)
        self.supervisor.spawn("daemonset-controller", DaemonSetController(self.client, informers=self.informers).run)
        self.supervisor.spawn("cronjob-controller", CronJobController(self.client, informers=self.informers).run)
    async def _start_storage_and_policy(self) -> None:
        """Storage (default `local-path` class, PV binder, local-path provisioner, in-use
        protection), disruption budgets, the cordon taint and quota status, on the shared informers."""
        from minik.controllers.disruption import DisruptionController
        from minik.controllers.localpath import LocalPathProvisioner
        from minik.controllers.nodeunschedulable import UnschedulableTaintController
        from minik.controllers.pvbinder import PVBinder
        from minik.controllers.pvprotection import PVProtection
        from minik.controllers.resourcequota import ResourceQuotaController
        from minik.machinery.storage import DEFAULT_CLASS, IS_DEFAULT_CLASS, PROVISIONER
        assert self.service is not None and self.informers is not None
        sc_rt = self.registry.lookup("storage.k8s.io", "v1", "storageclasses")
        assert sc_rt is not None
        local_storage = not self.cfg.disabled("local-storage")    # k3s: --disable local-storage
        if local_storage and self.store.get(sc_rt.store_key, "", DEFAULT_CLASS) is None:
            await self.service.create(sc_rt, "", {
                "metadata": {"name": DEFAULT_CLASS, "annotations": {IS_DEFAULT_CLASS: "true"}},
                "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer"},
                WriteOptions("minik", "Ignore"))
        inf = self.informers
        self.supervisor.spawn("persistentvolume-binder", PVBinder(self.client, inf).run)
        if local_storage:
            self.supervisor.spawn("local-path-provisioner", LocalPathProvisioner(self.client, inf, self.cfg.storage_dir, self.node_name).run)
        self.supervisor.spawn("pv-protection-controller", PVProtection(self.client, inf).run)
        self.supervisor.spawn("disruption-controller", DisruptionController(self.client, inf).run)
        self.supervisor.spawn("node-unschedulable-taint", UnschedulableTaintController(self.client, inf.informer("nodes")).run)
        self.supervisor.spawn("resourcequota-controller", ResourceQuotaController(self.client, inf).run)

    def _start_memory_trimmer(self) -> None:
        """glibc settings before any thread exists, and the task that returns memory to the kernel
        after a storm of watches or LISTs (minik.machinery.memory)."""
        from minik.machinery.memory import MemoryTrimmer, tune_allocator
        if not tune_allocator():
            log.info("allocator tuning unavailable (not glibc)")
        self.supervisor.spawn("memory-trimmer", MemoryTrimmer().run)

    def _start_loop_probe(self) -> None:
        """Diagnostics only (--loop-probe): event-loop lag, slow callbacks and GC pauses in the log."""
        if self.cfg.loop_probe > 0:
            from minik.machinery.loopprobe import LoopProbe
            self.supervisor.spawn("loop-probe", LoopProbe(self.cfg.loop_probe, ready=lambda: self._ready).run)

    async def _start_secrets_encryption(self) -> None:
        """Secrets at rest: the key file (created on first start), the store's transformer (set
        before the store opens, so plaintext rows are sealed at start), and the control socket
        of `minik secrets-encrypt`."""
        from minik.store.encryption import KeySet, Transformer, ensure_config, read_config
        from minik.store.keyctl import SOCKET_NAME, ControlServer, hold_lock
        cfg = self.cfg
        path = cfg.encryption_config_path
        await asyncio.to_thread(_private_tree, cfg.server_dir)
        self._keyctl_lock = hold_lock(cfg.server_dir)   # held until the process exits
        keyset: KeySet
        if cfg.secrets_encryption:
            keyset = await asyncio.to_thread(ensure_config, path)
        else:   # off: new writes stay plaintext, but Secrets sealed earlier still load
            found: KeySet | None = await asyncio.to_thread(read_config, path)
            keyset = found or KeySet(())
        self.store.use_transformer(Transformer(keyset, enabled=cfg.secrets_encryption))
        log.info("secrets encryption %s (%d key(s) in %s)", "enabled" if cfg.secrets_encryption else "disabled",
                 len(keyset.keys), path)
        control = ControlServer(os.path.join(cfg.server_dir, SOCKET_NAME), path, self.store, cfg.secrets_encryption)
        self.supervisor.spawn("secrets-encrypt-control", control.run)

    def _start_autoscaling(self, handlers: ApiHandlers) -> None:
        """APIServices for what is served locally, and the HPA on the metrics the node samples
        (`handlers.metrics.source` is set when the agent starts)."""
        assert self.informers is not None
        registry = self.registry

        def served() -> dict[tuple[str, str], bool]:
            return {(t.group, t.version): not t.custom for t in registry.types}

        self.supervisor.spawn("apiservice-controller", APIServiceController(
            self.client, self.informers.informer("apiregistration.k8s.io/apiservices"), self.informers.informer("services"),
            served, run_informers=False).run)
        metrics = handlers.metrics
        self.supervisor.spawn("horizontal-pod-autoscaler", HorizontalPodAutoscaler(
            self.client, self.informers.informer("autoscaling/horizontalpodautoscalers"), self.informers.informer("pods"),
            _MetricsView(metrics), sync_period=self.cfg.hpa_sync_period, run_informers=False).run)

    def _service_account_user(self, token: str) -> User | None:
        """A bound ServiceAccount token is valid while its ServiceAccount (same uid) exists."""
        ident = self.tokens.verify(token)
        if ident is None:
            return None
        sa = self.store.get("serviceaccounts", ident.namespace, ident.name)
        if sa is None or (ident.uid and sa["metadata"].get("uid") != ident.uid):
            return None
        if ident.pod_name:
            # A token bound to a pod dies with the pod (Kubernetes's bound service account tokens).
            pod = self.store.get("pods", ident.namespace, ident.pod_name)
            if pod is None or pod["metadata"].get("uid") != ident.pod_uid:
                return None
        extra = {"authentication.kubernetes.io/pod-name": [ident.pod_name], "authentication.kubernetes.io/pod-uid": [ident.pod_uid]} if ident.pod_name else {}
        return User(ident.username, ident.groups, ident.uid, extra)

    async def _start_agent(self, handlers: ApiHandlers) -> None:
        """The local node: containerd, pod network, pod workers; pod streams served by the API."""
        from minik.agent.runtime import NodeRuntime
        from minik.agent.streams import CriPodStreams
        self.runtime = NodeRuntime(agent_config(self.cfg, self.advertise), self.client)
        await self.runtime.start()
        handlers.pod_streams = CriPodStreams(self.runtime.cri)
        self.supervisor.spawn("node-agent", self.runtime.run)
        from minik.agent.stats import StatsCollector
        runtime = self.runtime
        stats = StatsCollector(lambda: runtime.cri, runtime.node_name, interval=self.cfg.metric_resolution)
        handlers.metrics.source = stats
        self.supervisor.spawn("stats-collector", stats.run)
        log.info("node agent started for node %s", self.runtime.node_name)

    def _start_overlay(self) -> None:
        """The pod network across nodes on this node (VXLAN or host-gw entries from the Nodes)."""
        from minik.agent.overlay import start_overlay
        assert self.informers is not None and self.runtime is not None
        start_overlay(self.supervisor, self.client, self.informers, self.runtime.node_name, self.runtime.cfg)

    def _start_services(self) -> None:
        """ServiceLB (LoadBalancer status), and with the agent the node's Service proxy: VIPs,
        NodePorts and ServiceLB ports as nftables rules."""
        from minik.agent.proxier import Proxier
        from minik.controllers.servicelb import ServiceLBController
        from minik.net.listeners import host_listeners
        from minik.net.services import Settings
        assert self.informers is not None
        cfg = self.cfg
        self.supervisor.spawn("servicelb-controller", ServiceLBController(self.client, self.informers, host_listeners).run)
        if self.runtime is None:
            return
        proxier = Proxier(self.informers, self.runtime.node_name,
                          Settings(cfg.nft_table, cfg.service_cidr, cfg.cluster_cidr, bridge=cfg.bridge_name),
                          cfg.bridge_name)
        self.supervisor.spawn("proxier", proxier.run)
    async def _start_dns(self) -> None:
        """kube-dns Service/Endpoints/EndpointSlice, and cluster DNS on this node when it runs pods."""
        if self.cfg.disable_dns:
            return
        from minik.dns.bootstrap import ensure_kube_dns
        from minik.dns.service import ClusterDns, DnsSettings
        assert self.informers is not None
        await ensure_kube_dns(self.client, self.cfg.cluster_dns)
        if self.cfg.disable_agent:
            return
        settings = DnsSettings(self.cfg.cluster_dns, self.cfg.cluster_domain, self.cfg.dns_interface, self.cfg.resolv_conf)
        self.dns = ClusterDns(settings, self.informers, self.supervisor)
        self.dns.start()
    def _start_netpol(self) -> None:
        """NetworkPolicy enforcement for the local node's pods (nftables, same table as the pod network)."""
        from minik.agent.netpol import NetpolEnforcer, remove_rules
        assert self.informers is not None and self.runtime is not None
        cfg = self.cfg
        if cfg.disable_network_policy:
            self.supervisor.spawn("netpol-cleanup", lambda: remove_rules(cfg.nft_table, cfg.bridge_name), restart=False)
            return
        self.netpol = NetpolEnforcer(self.informers, self.runtime.node_name, cfg.nft_table, cfg.bridge_name, cfg.cluster_dns)
        self.supervisor.spawn("netpol-enforcer", self.netpol.run)
    async def _start_ingress(self) -> None:
        """The ingress proxy on this node (it runs where the agent runs), unless --disable ingress."""
        if self.cfg.disabled("ingress"):
            log.info("ingress disabled")
            return
        from minik.ingress.controller import IngressController, IngressSettings, ensure_class
        assert self.informers is not None
        await ensure_class(self.client)
        cfg = self.cfg
        addresses = (cfg.node_ip or self.advertise,)
        self.ingress = IngressController(self.client, self.informers, IngressSettings(
            cfg.ingress_bind_address, cfg.ingress_http_port, cfg.ingress_https_port, addresses))
        self.supervisor.spawn("ingress", self.ingress.run)

    async def _start_cluster(self, handlers: ApiHandlers, pki: certs.Pki) -> None:
        """The supervisor port: agents join with the token and link over gRPC; pod streams of
        pods on joined nodes are routed over their links (`minik.cluster`)."""
        from minik.cluster.link import ClusterMetrics, RoutingPodStreams
        from minik.cluster.server import ClusterServer, ClusterSettings
        cfg = self.cfg
        if not cfg.supervisor_port:
            return
        self.cluster = ClusterServer(ClusterSettings(cfg.bind_address, cfg.supervisor_port, cfg.server_dir, pki.ca_cert,
                                                     pki.ca_key, pki.serving_cert, pki.serving_key,
                                                     (("cluster_cidr", cfg.cluster_cidr), ("service_cidr", cfg.service_cidr),
                                                      ("cluster_dns", cfg.cluster_dns), ("cluster_domain", cfg.cluster_domain),
                                                      ("pod_network_backend", cfg.pod_network_backend),
                                                      ("vxlan_vni", str(cfg.vxlan_vni)), ("vxlan_port", str(cfg.vxlan_port)))),
                                     self.client)
        try:
            await self.cluster.start()
        except OSError as e:
            # Not fatal: this server still serves its own node; say plainly that agents cannot join.
            log.error("%s: agents cannot join this server (pick a free --supervisor-port)", e)
        handlers.metrics.source = ClusterMetrics(handlers.metrics.source, self.cluster.links)
        handlers.pod_streams = RoutingPodStreams(self.cluster.links, handlers.pod_streams,
                                                 self.runtime.node_name if self.runtime is not None else "")

    async def _bootstrap(self, first_ip: str) -> None:
        assert self.service is not None
        svc = self.service
        ns_rt = self.registry.lookup("", "v1", "namespaces")
        svc_rt = self.registry.lookup("", "v1", "services")
        ep_rt = self.registry.lookup("", "v1", "endpoints")
        assert ns_rt and svc_rt and ep_rt
        opts = WriteOptions("minik", "Ignore")
        for ns in SYSTEM_NAMESPACES:
            if self.store.get("namespaces", "", ns) is None:
                await svc.create(ns_rt, "", {"metadata": {"name": ns}}, opts)
        await reconcile_rbac_defaults(svc, self.registry, bootstrap_objects(), opts)
        if self.store.get("services", "default", "kubernetes") is None:
            await svc.create(svc_rt, "default", {"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                                                 "spec": {"clusterIP": first_ip, "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                                                                            "targetPort": self.cfg.https_listen_port}]}}, opts)
        ep = {"metadata": {"name": "kubernetes", "namespace": "default", "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
              "subsets": [{"addresses": [{"ip": self.advertise}], "ports": [{"name": "https", "port": self.cfg.https_listen_port, "protocol": "TCP"}]}]}
        cur = self.store.get("endpoints", "default", "kubernetes")
        try:
            if cur is None:
                await svc.create(ep_rt, "default", ep, opts)
            elif cur.get("subsets") != ep["subsets"]:
                upd = dict(cur)
                upd["subsets"] = ep["subsets"]
                await svc.update(ep_rt, "default", "kubernetes", upd, opts)
        except st.StatusError as e:
            log.warning("bootstrap endpoints: %s", e.message)

    async def _write_kubeconfig(self, pki: certs.Pki) -> None:
        cfg = self.cfg
        host = "127.0.0.1" if cfg.bind_address in ("0.0.0.0", "::", "") else cfg.bind_address
        server = f"https://{host}:{cfg.https_listen_port}"

        def read(p: str) -> bytes:
            with open(p, "rb") as f:
                return f.read()

        content = kubeconfig.render(server, read(pki.ca_cert), read(pki.admin_cert), read(pki.admin_key))
        await asyncio.to_thread(kubeconfig.write, cfg.kubeconfig_path, content, cfg.write_kubeconfig_mode)

    def _metrics(self) -> str:
        stats = self.store.stats()
        lines = [f"minik_store_{k} {v}" for k, v in stats.items()]
        lines.append(f"minik_store_revision {self.store.revision}")
        if self.api is not None:   # shared watch/LIST encodings (minik.api.encoded)
            enc = self.api.handlers.encoded
            lines += [f"minik_api_encoded_hits {enc.hits}", f"minik_api_encoded_misses {enc.misses}",
                      f"minik_api_encoded_bytes {enc.size}"]
        if self.informers is not None:
            for key, inf in self.informers.informers().items():
                lines.append(f'minik_informer_objects{{resource="{key.resource}"}} {len(inf.list())}')
        if self.netpol is not None:
            lines += self.netpol.metrics()
        if self.ingress is not None:
            lines += self.ingress.metrics()
        return "\n".join(lines) + "\n"

    async def stop(self) -> None:
        self._ready = False
        sd_notify("STOPPING=1")
        if self.cluster is not None:
            await self.cluster.stop()
        await self.supervisor.stop()
        if self.runtime is not None:
            await self.runtime.stop()  # containerd and the pods keep running
        if self.api is not None:
            await self.api.stop()
        await self.store.close()
        if getattr(self, "_keyctl_lock", -1) >= 0:   # offline `secrets-encrypt` may run from now on
            os.close(self._keyctl_lock)
            self._keyctl_lock = -1
        log.info("minik server stopped")


class _MetricsView:
    """The HPA's view of the metrics the API serves (the source is set once the agent runs)."""

    def __init__(self, api: MetricsApi) -> None:
        self.api = api

    def pods(self) -> list[PodUsage]:
        return self.api.source.pods()

    def nodes(self) -> list[NodeUsage]:
        return self.api.source.nodes()


def release_memory() -> None:
    """Start-up allocates and frees a lot (imports, certificates, schema indexes): collect, then
    hand the freed heap back to the OS (glibc keeps it otherwise), so idle RSS reflects real use."""
    import ctypes

    from minik.machinery.gcpause import settle
    settle()   # and freeze what survived: later full collections skip it (short GC pauses)
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to trim
        pass


def _first_service_ip(cidr: str) -> str:
    import ipaddress
    return str(ipaddress.ip_network(cidr, strict=False).network_address + 1)


def _write_secret(path: str, content: str) -> None:
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(content + "\n")
    os.replace(path + ".tmp", path)


def _private_tree(root: str) -> None:
    """server/ holds keys, tokens and the database: directories 0700, files 0600, whatever an
    older version or a different umask left behind."""
    import stat
    for dirpath, _dirs, files in os.walk(root):
        os.chmod(dirpath, 0o700)
        for name in files:
            p = os.path.join(dirpath, name)
            mode = os.lstat(p).st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
                os.chmod(p, stat.S_IMODE(mode) & 0o700)


async def run_server(cfg: ServerConfig) -> int:
    # Everything the daemon creates under its data dir (database, keys, pod volumes) is private
    # unless a mode is set explicitly; containerd gets 022 of its own (minik.agent.containerd).
    os.umask(0o077)
    server = Server(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except Exception:
        log.exception("minik server failed to start")
        await server.stop()
        return 1
    await stop.wait()
    log.info("signal received, stopping")
    await server.stop()
    return 0
