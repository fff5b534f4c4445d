"""`NodeRuntime`: everything a node needs to run pods, composed in start-up order.

Order (each step needs the previous): `prepare_runtime` (which a joining agent runs while it
still bootstraps: it needs nothing from the server): host checks → containerd (started, adopted, or the
existing --container-runtime-endpoint) → CRI client → pause image (built and imported when
missing) → airgap images from <agent_dir>/images/ → registries.yaml rendered to certs.d; then the
Node object (created without status, so nothing is scheduled here yet) → the pod subnet: the
Node's spec.podCIDR, set by the server's node IPAM (`minik.controllers.nodeipam`) → pod network
(bridge, nft, IPAM, CNI server and conflist) → `NodeAgent` (status, Lease, adoption of running
pods). `stop()` stops only minik's side: containerd, its shims and the pods keep running, so
restarting minik restarts no container (the next start adopts them).
Neighbours: `minik.daemon` (server) and later `minik agent` create it with an `AgentConfig` and a
`Client`; it composes `containerd`, `images`, `registries`, `minik.net.podnet`, `agent`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from minik.agent.agent import NodeAgent
from minik.agent.backoff import Backoff, BackoffPolicy
from minik.agent.containerd import Containerd, ContainerdPaths
from minik.agent.cri import CriClient, CriError
from minik.agent.events import EventRecorder
from minik.agent.node import NodeReporter, gather_facts
from minik.agent.observe import Observer
from minik.agent.prepare import PreparedRuntime, prepare_runtime
from minik.agent.sandbox import SandboxContext
from minik.agent.volumes import VolumeManager
from minik.agent.worker import WorkerContext
from minik.client import Client, ClientError
from minik.config import AgentConfig, default_cgroup_parent
from minik.net.hostaddr import default_ip
from minik.net.overlay import pod_mtu
from minik.net.podnet import PodNetwork
from minik.net.resolvconf import host_resolv_conf

__all__ = ["NodeRuntime", "PreparedRuntime", "RuntimeOptions", "prepare_runtime"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    """Knobs tests turn (short back-offs, faster relist/heartbeat); production uses defaults."""

    crash_backoff: BackoffPolicy = BackoffPolicy()
    image_backoff: BackoffPolicy = BackoffPolicy()
    relist_period: float = 1.0
    heartbeat: float = 10.0
    now: Callable[[], float] = time.time
    containerd_backoff: tuple[float, float] = (1.0, 30.0)


class NodeRuntime:
    def __init__(self, cfg: AgentConfig, client: Client, options: RuntimeOptions | None = None,
                 prepared: Awaitable[PreparedRuntime] | None = None) -> None:
        """`prepared`: the container runtime, already being started by `prepare_runtime` (a joining
        agent starts containerd while it still bootstraps its credentials and link)."""
        self.cfg = cfg
        self._prepared = prepared
        self.client = client
        self.options = options or RuntimeOptions()
        self._node_name = cfg.node_name
        self.containerd: Containerd | None = None
        self.network: PodNetwork | None = None
        self.agent: NodeAgent | None = None
        self._cri: CriClient | None = None

    @property
    def cri(self) -> CriClient:
        if self._cri is None:
            raise RuntimeError("NodeRuntime.start() has not run")
        return self._cri

    @property
    def node_name(self) -> str:
        return self._node_name

    @property
    def pods_dir(self) -> str:
        return self.cfg.pods_dir

    async def start(self) -> None:
        cfg, opts = self.cfg, self.options
        prep = await self._prepared if self._prepared is not None else await prepare_runtime(cfg, opts.containerd_backoff)
        self.containerd, cri, registries = prep.containerd, prep.cri, prep.registries
        self._cri = cri
        paths = ContainerdPaths.from_dirs(cfg.data_dir, cfg.run_dir)

        version = await cri.version()
        node_ip = cfg.node_ip or default_ip()
        node_facts = await asyncio.to_thread(
            gather_facts, self._node_name, node_ip, cfg.data_dir,
            f"{version.runtime_name}://{version.runtime_version}")
        reporter = NodeReporter(self.client, node_facts, server=cfg.server, data_dir=cfg.data_dir,
                                ready=self._runtime_ready, now=opts.now, heartbeat=opts.heartbeat)
        # The Node first, without status (the scheduler binds only to Ready nodes), so the server's
        # node IPAM can give it a pod subnet.
        await reporter.ensure_node()
        subnet = await reporter.wait_pod_cidr()
        log.info("node %s: pod subnet %s", self._node_name, subnet)
        self.network = PodNetwork(
            data_dir=cfg.data_dir, run_dir=cfg.run_dir,
            cni_bin_dir=paths.cni_bin_dir, cni_conf_dir=paths.cni_conf_dir,
            cluster_cidr=cfg.cluster_cidr, node_subnet=subnet,
            bridge=cfg.bridge_name, nft_table=cfg.nft_table,
            mtu=await pod_mtu(cfg.pod_network_backend, node_ip),
        )
        await self.network.start()
        # Addresses of sandboxes that vanished while we were down (crash without CNI DEL).
        live = [s.id for s in await cri.list_pod_sandbox()]
        await self.network.release_all_except(live)

        allocatable = {"cpu": str(node_facts.cpus), "memory": str(node_facts.memory_bytes),
                       "ephemeral-storage": str(node_facts.ephemeral_bytes)}
        host_resolv = await asyncio.to_thread(host_resolv_conf, cfg.resolv_conf)
        events = EventRecorder(self.client, self._node_name, now=opts.now)
        ctx = WorkerContext(
            client=self.client,
            cri=cri,
            node_name=self._node_name,
            node_ip=node_ip,
            sandbox=SandboxContext(self.pods_dir, cfg.cluster_dns, cfg.cluster_domain, host_resolv,
                                   cfg.cgroup_parent or default_cgroup_parent(cfg.data_dir)),
            volumes=VolumeManager(self.pods_dir, self.client),
            events=events,
            observer=Observer(cri),
            registries=registries,
            crash_backoff=Backoff(opts.crash_backoff),
            image_backoff=Backoff(opts.image_backoff),
            node_allocatable=allocatable,
            service_env=await self._service_env(),
            now=opts.now,
        )
        self.agent = NodeAgent(ctx, reporter, relist_period=opts.relist_period)
        await self.agent.start()

    async def _service_env(self) -> dict[str, str]:
        """KUBERNETES_SERVICE_* for in-cluster clients (the `kubernetes` Service's cluster IP)."""
        try:
            svc = await self.client.get("services", "default", "kubernetes")
        except ClientError:
            return {}
        ip = ((svc or {}).get("spec") or {}).get("clusterIP")
        if not ip:
            return {}
        port = str((((svc or {}).get("spec") or {}).get("ports") or [{}])[0].get("port", 443))
        return {
            "KUBERNETES_SERVICE_HOST": ip, "KUBERNETES_SERVICE_PORT": port,
            "KUBERNETES_SERVICE_PORT_HTTPS": port, "KUBERNETES_PORT": f"tcp://{ip}:{port}",
            f"KUBERNETES_PORT_{port}_TCP": f"tcp://{ip}:{port}",
            f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp", f"KUBERNETES_PORT_{port}_TCP_PORT": port,
            f"KUBERNETES_PORT_{port}_TCP_ADDR": ip,
        }

    async def _runtime_ready(self) -> tuple[bool, str]:
        try:
            st = await self.cri.status()
        except CriError as e:
            return False, f"container runtime is down: {e.details or e}"
        bad = [f"{c.type}: {c.reason} {c.message}".strip() for c in st.status.conditions if not c.status]
        if bad:
            return False, "container runtime not ready: " + "; ".join(bad)
        return True, ""

    async def run(self) -> None:
        """The agent loop; returns only when cancelled."""
        if self.agent is None:
            raise RuntimeError("NodeRuntime.start() has not run")
        await self.agent.run()

    async def stop(self) -> None:
        """Stop minik's agent side. containerd, shims and pods keep running."""
        if self.agent is not None:
            await self.agent.stop()
        if self.network is not None:
            await self.network.stop()
        if self.containerd is not None:
            await self.containerd.stop(kill=False)
        if self._cri is not None:
            await self._cri.close()
