"""Composition root of `minik agent`: join a server, keep the link, run this machine's node.

Order: credentials (reuse `<agent-dir>/client-node.{crt,key}` when they still belong to this
node and this CA; otherwise bootstrap: read the CA from the server's `/cacerts`, check it against
the token's `K10<sha256>` pin, Join with the secret, node name and node password) → the link
(`minik.client.grpc.GrpcLink`, reconnecting with back-off) → the cluster's addressing from the
server's welcome → `NodeRuntime` over the link's client (containerd, pod network, pod workers) →
the node parts the server also runs for its own node, on one `InformerFactory` over the link:
Service rules (proxier), cluster DNS, NetworkPolicy. Pod streams the server opens over the link
are served by this node's `CriPodStreams`. Stop: reverse order; containerd and pods keep running.
Neighbours: `minik.cli.agent` builds the `JoinConfig`; `minik.daemon` is the server's twin.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING

from minik.client.grpc import GrpcLink, JoinError, LinkCredentials, check_ca, join
from minik.cluster.jointokens import TokenError, parse_token
from minik.config import AgentConfig, JoinConfig
from minik.machinery.gcpause import settle
from minik.machinery.informers import InformerFactory
from minik.machinery.memory import MemoryTrimmer, trim, tune_allocator
from minik.machinery.tasks import Supervisor
from minik.pki.nodekey import NODE_USER_PREFIX, NodeKeyError, common_name, key_and_csr

if TYPE_CHECKING:
    from minik.agent.prepare import PreparedRuntime
    from minik.agent.runtime import NodeRuntime

log = logging.getLogger("minik.agent")

CA_FILE, CERT_FILE, KEY_FILE = "server-ca.crt", "client-node.crt", "client-node.key"


def _sd_notify(message: str) -> None:
    """Tell systemd (Type=notify, minik-agent.service) we are ready; a no-op without NOTIFY_SOCKET."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(message.encode(), "\0" + addr[1:] if addr.startswith("@") else addr)
        except OSError as e:
            log.warning("sd_notify failed: %s", e)


class AgentError(Exception):
    """A failure the operator must act on; the message says what to do."""


def _read_or_create(path: str, make: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read().strip()
        if value:
            return value
    except FileNotFoundError:
        pass
    _write(path, (make + "\n").encode())
    return make


def _write(path: str, data: bytes, mode: int = 0o600) -> None:
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(path + ".tmp", path)


def node_name_for(cfg: JoinConfig) -> str:
    name = (cfg.node_name or socket.gethostname()).lower()
    if cfg.with_node_id:
        name += "-" + _read_or_create(os.path.join(cfg.agent_dir, "node-id"), secrets.token_hex(4))
    return name


async def fetch_ca(server_url: str, timeout: float = 15.0) -> bytes:
    """The server's CA from /cacerts. Read without verification on purpose: it is checked
    against the token's pin before anything is trusted or sent. One HTTP/1.0 GET (no chunking,
    the body ends with the connection) over asyncio: urllib.request would load http.client and
    email into an agent that never needs them again."""
    u = urllib.parse.urlsplit(server_url if "://" in server_url else "https://" + server_url)
    if u.scheme != "https" or not u.hostname:
        raise AgentError(f"--server must look like https://host:6443, got {server_url!r}")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(u.hostname, u.port or 443, ssl=ctx)
            try:
                writer.write(f"GET {u.path.rstrip('/')}/cacerts HTTP/1.0\r\nHost: {host}\r\n"
                             "Accept: */*\r\nUser-Agent: minik-agent\r\n\r\n".encode())
                response = await reader.read(1 << 20)
                while chunk := await reader.read(1 << 20):
                    response += chunk
            finally:
                writer.close()
    except (OSError, TimeoutError) as e:
        raise AgentError(f"cannot reach the server at {server_url}: {e or type(e).__name__}") from None
    head, _, data = response.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or status[1] != b"200" or b"BEGIN CERTIFICATE" not in data:
        raise AgentError(f"{server_url}/cacerts did not answer a CA certificate (is this a minik server?)")
    return data


def supervisor_target(server_url: str, port: int) -> str:
    u = urllib.parse.urlsplit(server_url if "://" in server_url else "https://" + server_url)
    if u.scheme != "https" or not u.hostname:
        raise AgentError(f"--server must look like https://host:6443, got {server_url!r}")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{port}"


async def credentials(cfg: JoinConfig, node: str) -> LinkCredentials:
    try:
        token = parse_token(cfg.token)
    except TokenError as e:
        raise AgentError(str(e)) from None
    d = cfg.agent_dir
    paths = [os.path.join(d, n) for n in (CA_FILE, CERT_FILE, KEY_FILE)]
    if all(os.path.exists(p) for p in paths):
        ca, cert, key = (open(p, "rb").read() for p in paths)
        try:
            check_ca(ca, token.ca_hash)
            if await common_name(cert) == NODE_USER_PREFIX + node:
                return LinkCredentials(node, ca, cert, key)
        except (JoinError, NodeKeyError):
            pass
        log.info("stored node credentials do not match this node name or token; joining again")
    # The key and CSR (a child process, ~0.15 s) while the CA is fetched: neither needs the other.
    keygen = asyncio.ensure_future(key_and_csr(node))
    try:
        ca = await fetch_ca(cfg.server_url)
        try:
            check_ca(ca, token.ca_hash)
        except JoinError as e:
            raise AgentError(str(e)) from None
        key, csr, proof = await keygen
    except BaseException:
        keygen.cancel()
        raise
    if not token.ca_hash:
        log.warning("the token pins no CA (not a K10 token): trusting the server's CA as presented")
    password = _read_or_create(os.path.join(d, "node-password"), secrets.token_hex(16))
    try:
        cert = await join(supervisor_target(cfg.server_url, cfg.supervisor_port), ca, token.secret, node, password, csr)
    except JoinError as e:
        raise AgentError(f"the server refused to let node {node!r} join: {e}") from None
    for p, data, mode in zip(paths, (ca, cert, key), (0o644, 0o644, 0o600)):
        await asyncio.to_thread(_write, p, data, mode)
    log.info("joined %s as node %s", cfg.server_url, node)
    return LinkCredentials(node, ca, cert, key, first_proof=proof)


def _since_exec() -> float:
    """Seconds since this process was started (for the start-up timeline in the log); 0 if unknown."""
    try:
        with open("/proc/self/stat", "rb") as f:
            started = int(f.read().rsplit(b")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime", "rb") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return 0.0


def _agent_config(cfg: JoinConfig, node_name: str, s: Mapping[str, str]) -> AgentConfig:
    """This node's settings: its own from the flags, the cluster's (`s`) from the server's welcome."""
    return AgentConfig(
        node_name=node_name, data_dir=cfg.data_dir, run_dir=cfg.run_dir, config_dir=cfg.config_dir,
        node_ip=cfg.node_ip, cluster_cidr=s.get("cluster_cidr", "10.42.0.0/16"),
        service_cidr=s.get("service_cidr", "10.43.0.0/16"), cluster_dns=s.get("cluster_dns", "10.43.0.10"),
        cluster_domain=s.get("cluster_domain", "cluster.local"), bridge_name=cfg.bridge_name,
        nft_table=cfg.nft_table, container_runtime_endpoint=cfg.container_runtime_endpoint,
        server=False, resolv_conf=cfg.resolv_conf,
        # The backend, VNI and port are the cluster's (the server's flags); the device name is this host's.
        pod_network_backend=s.get("pod_network_backend", "vxlan"), vxlan_device=cfg.vxlan_device,
        vxlan_vni=int(s.get("vxlan_vni", "1")), vxlan_port=int(s.get("vxlan_port", "8472")),
        cgroup_parent=cfg.cgroup_parent)


def _import_node_parts() -> None:
    """The node's modules (containerd, CRI, pod workers, network, DNS, rules): about 0.5 s of
    imports, done on a worker thread so the event loop meanwhile runs the bootstrap's I/O."""
    import minik.agent.netpol
    import minik.agent.overlay
    import minik.agent.proxier
    import minik.agent.runtime
    import minik.agent.stats
    import minik.agent.streams
    import minik.dns.service  # noqa: F401


class Agent:
    def __init__(self, cfg: JoinConfig) -> None:
        self.cfg = cfg
        self.supervisor = Supervisor()
        self.node_name = node_name_for(cfg)
        self.link: GrpcLink | None = None
        self.runtime: NodeRuntime | None = None
        self._prepare: asyncio.Task[PreparedRuntime] | None = None

    async def _prepare_runtime(self) -> PreparedRuntime:
        from minik.agent.prepare import prepare_runtime
        imports = asyncio.ensure_future(asyncio.to_thread(_import_node_parts))
        try:
            # Only the machine's own settings matter here; the cluster's arrive with the link.
            return await prepare_runtime(_agent_config(self.cfg, self.node_name, {}))
        finally:
            await imports

    async def start(self) -> None:
        cfg = self.cfg
        # containerd and the images need nothing from the server: they start while the node still
        # bootstraps its credentials and link (the longest step of a join otherwise).
        self._prepare = asyncio.create_task(self._prepare_runtime(), name="prepare-runtime")
        creds = await credentials(cfg, self.node_name)
        link = self.link = GrpcLink(supervisor_target(cfg.server_url, cfg.supervisor_port), creds)
        self.supervisor.spawn("link", link.run)
        while not link.connected:
            try:
                await link.wait_connected(30.0)
            except Exception:
                log.warning("waiting for the link to %s: %s", link.target, link.last_error)
        from minik.agent.netpol import NetpolEnforcer, remove_rules
        from minik.agent.proxier import Proxier
        from minik.agent.runtime import NodeRuntime
        from minik.agent.streams import CriPodStreams
        from minik.dns.service import ClusterDns, DnsSettings
        from minik.net.services import Settings
        acfg = _agent_config(cfg, self.node_name, link.settings)
        runtime = NodeRuntime(acfg, link.client, prepared=self._prepare)
        self.runtime = runtime
        await runtime.start()
        link.pod_streams = CriPodStreams(runtime.cri)
        self.supervisor.spawn("node-agent", runtime.run)
        from minik.agent.stats import StatsCollector
        stats = StatsCollector(lambda: runtime.cri, self.node_name, interval=cfg.metric_resolution)
        self.supervisor.spawn("stats-collector", stats.run)
        self.supervisor.spawn("metrics-report", lambda: link.report_metrics(stats, cfg.metric_resolution))
        informers = InformerFactory(link.client, self.supervisor)
        proxier = Proxier(informers, self.node_name, Settings(cfg.nft_table, acfg.service_cidr, acfg.cluster_cidr),
                          cfg.bridge_name)
        self.supervisor.spawn("proxier", proxier.run)
        dns = ClusterDns(DnsSettings(acfg.cluster_dns, acfg.cluster_domain, cfg.dns_interface, cfg.resolv_conf),
                         informers, self.supervisor)
        if cfg.disable_network_policy:
            self.supervisor.spawn("netpol-cleanup", lambda: remove_rules(cfg.nft_table, cfg.bridge_name), restart=False)
        else:
            netpol = NetpolEnforcer(informers, self.node_name, cfg.nft_table, cfg.bridge_name, acfg.cluster_dns)
            self.supervisor.spawn("netpol-enforcer", netpol.run)
        from minik.agent.overlay import start_overlay
        start_overlay(self.supervisor, link.client, informers, self.node_name, acfg)
        if not cfg.disable_ingress:
            from minik.ingress.controller import IngressController, IngressSettings
            ingress = IngressController(link.client, informers, IngressSettings(
                cfg.ingress_bind_address, cfg.ingress_http_port, cfg.ingress_https_port, ()))
            self.supervisor.spawn("ingress", ingress.run)
        informers.start()
        dns.start()
        log.info("minik agent ready: node %s linked to %s, %.2f s after exec", self.node_name, cfg.server_url,
                 _since_exec())

    async def stop(self) -> None:
        await self.supervisor.stop()
        if self.runtime is not None:
            await self.runtime.stop()  # containerd and the pods keep running
        elif self._prepare is not None:  # failed before the node runtime took the prepared one over
            self._prepare.cancel()
            try:
                prepared = await self._prepare
            except (asyncio.CancelledError, Exception):  # cancelled, or failed: nothing was started
                return
            await prepared.containerd.stop(kill=False)
            await prepared.cri.close()


async def run_agent(cfg: JoinConfig) -> int:
    # Before any thread exists: one malloc arena for all threads (grpc's, the to_thread pool)
    # instead of one each, every one keeping its own peak (the server allows two, `minik.daemon`).
    tune_allocator(arenas=1)
    log.info("minik agent starting: %.2f s after exec (interpreter and imports)", _since_exec())
    agent = Agent(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await agent.start()
    except AgentError as e:
        log.error("%s", e)
        await agent.stop()
        return 1
    except Exception:
        log.exception("minik agent failed to start")
        await agent.stop()
        return 1
    settle()  # collect start-up garbage and freeze the survivors: later full collections skip them
    trim()    # start-up garbage (imports, certificates, first lists) back to the OS
    agent.supervisor.spawn("memory-trimmer", MemoryTrimmer().run)
    _sd_notify("READY=1")
    await stop.wait()
    log.info("signal received, stopping")
    await agent.stop()
    return 0
