"""Frozen settings for `minik server` and the node agent, with k3s-like defaults.

`ServerConfig` is what `minik server`'s flags build; `AgentConfig` is everything a node agent
needs, built from the server's settings by `agent_config` today and from `minik agent`'s flags
later, so `minik.agent` never sees server-only settings.
Neighbours: built by `minik.cli`, read by `minik.daemon` and the parts it composes.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ServerConfig:
    data_dir: str = "/var/lib/minik"
    config_dir: str = "/etc/minik"
    run_dir: str = "/run/minik"
    bind_address: str = "0.0.0.0"
    https_listen_port: int = 6443
    advertise_address: str = ""
    tls_san: tuple[str, ...] = ()
    write_kubeconfig: str = ""           # default: <config_dir>/kubeconfig.yaml
    write_kubeconfig_mode: int = 0o600
    disable_agent: bool = False
    node_name: str = ""                  # default: hostname
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cluster_dns: str = "10.43.0.10"
    cluster_domain: str = "cluster.local"
    token: str = ""                      # default: generated and kept in <data_dir>/server/token
    container_runtime_endpoint: str = ""  # use an existing containerd instead of starting one
    log_level: str = "info"
    bridge_name: str = "minik0"          # pod bridge; unique per instance when several run side by side (tests)
    nft_table: str = "minik"             # minik's nftables table (ip family)
    node_ip: str = ""                    # default: the advertise address
    extra: dict[str, str] = field(default_factory=dict)
    metric_resolution: float = 15.0      # seconds between resource usage samples (metrics.k8s.io, HPA)
    hpa_sync_period: float = 15.0        # seconds between HorizontalPodAutoscaler checks
    node_monitor_grace_period: float = 40.0  # a node silent this long goes Unknown and gets unreachable taints
    service_node_port_range: str = "30000-32767"   # NodePort allocation range, "lo-hi"
    disable_dns: bool = False            # no kube-dns Service and no DNS server on the node
    dns_interface: str = "minik-dns0"    # dummy link holding the cluster DNS IP (unique per instance)
    resolv_conf: str = "/etc/resolv.conf"  # upstreams for names outside the cluster (127.0.0.53 → systemd-resolved's real ones)
    disable_network_policy: bool = False  # k3s's flag: no NetworkPolicy enforcement on this node
    default_local_storage_path: str = ""  # local-path volumes; default: <data_dir>/storage

    @property
    def storage_dir(self) -> str:
        return self.default_local_storage_path or os.path.join(self.data_dir, "storage")
    disable: tuple[str, ...] = ()        # packaged components turned off (k3s --disable): "ingress" (alias "traefik")
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    ingress_bind_address: str = "0.0.0.0"
    supervisor_port: int = 6444          # gRPC port agents join and link on (k3s's supervisor port); 0: none
    pod_network_backend: str = "vxlan"   # pods across nodes: vxlan | host-gw | none (minik.net.overlay)
    vxlan_device: str = "minik.1"        # VXLAN device name (unique per instance when several run side by side)
    vxlan_vni: int = 1
    vxlan_port: int = 8472
    secrets_encryption: bool = True      # Secrets sealed with AES-GCM in the database (key: encryption_config_path)
    cgroup_parent: str = ""              # cgroupfs parent of this installation's pods; "" → default_cgroup_parent(data_dir)
    loop_probe: float = 0.0              # seconds between event-loop probe log lines (minik.machinery.loopprobe); 0: off

    def disabled(self, component: str) -> bool:
        """k3s habit: `--disable traefik` turns off the ingress too."""
        aliases = {"ingress": ("ingress", "traefik")}.get(component, (component,))
        return any(a in self.disable for a in aliases)

    @property
    def kubeconfig_path(self) -> str:
        return self.write_kubeconfig or os.path.join(self.config_dir, "kubeconfig.yaml")

    @property
    def server_dir(self) -> str:
        return os.path.join(self.data_dir, "server")

    @property
    def db_path(self) -> str:
        return os.path.join(self.server_dir, "db", "state.db")

    @property
    def agent_dir(self) -> str:
        return os.path.join(self.data_dir, "agent")

    @property
    def registries_file(self) -> str:
        return os.path.join(self.config_dir, "registries.yaml")

    @property
    def encryption_config_path(self) -> str:
        return os.path.join(self.server_dir, "encryption-config")

    @property
    def tls_dir(self) -> str:
        return os.path.join(self.server_dir, "tls")


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """What one node agent needs: its directories, its identity on the network, the cluster's
    addressing (the pod subnet itself comes from the Node's spec.podCIDR) and the host names of
    the pieces it drives (bridge, nft table, containerd)."""

    node_name: str
    data_dir: str = "/var/lib/minik"
    run_dir: str = "/run/minik"
    config_dir: str = "/etc/minik"
    node_ip: str = ""                    # "" → the host's default address
    cluster_cidr: str = "10.42.0.0/16"
    service_cidr: str = "10.43.0.0/16"
    cluster_dns: str = "10.43.0.10"
    cluster_domain: str = "cluster.local"
    bridge_name: str = "minik0"
    nft_table: str = "minik"
    container_runtime_endpoint: str = ""  # use an existing containerd instead of starting one
    server: bool = True                  # the node also runs the control plane (node-role labels)
    resolv_conf: str = "/etc/resolv.conf"  # the host's resolvers for dnsPolicy Default (systemd's stub replaced)
    pod_network_backend: str = "vxlan"   # pods across nodes: vxlan | host-gw | none (minik.net.overlay)
    vxlan_device: str = "minik.1"
    vxlan_vni: int = 1
    vxlan_port: int = 8472
    cgroup_parent: str = ""              # cgroupfs parent of this node's pods; "" → default_cgroup_parent(data_dir)

    @property
    def agent_dir(self) -> str:
        return os.path.join(self.data_dir, "agent")

    @property
    def pods_dir(self) -> str:
        return os.path.join(self.agent_dir, "pods")

    @property
    def registries_file(self) -> str:
        return os.path.join(self.config_dir, "registries.yaml")


def agent_config(cfg: ServerConfig, node_ip: str = "") -> AgentConfig:
    """The settings of the server's own node agent. `node_ip` is the address the server
    advertises when --node-ip is not given."""
    return AgentConfig(
        node_name=cfg.node_name or socket.gethostname().lower(),
        data_dir=cfg.data_dir, run_dir=cfg.run_dir, config_dir=cfg.config_dir,
        node_ip=cfg.node_ip or cfg.advertise_address or node_ip,
        cluster_cidr=cfg.cluster_cidr, service_cidr=cfg.service_cidr,
        cluster_dns=cfg.cluster_dns, cluster_domain=cfg.cluster_domain,
        bridge_name=cfg.bridge_name, nft_table=cfg.nft_table,
        container_runtime_endpoint=cfg.container_runtime_endpoint,
        server=True,
        resolv_conf=cfg.resolv_conf,
        pod_network_backend=cfg.pod_network_backend, vxlan_device=cfg.vxlan_device,
        vxlan_vni=cfg.vxlan_vni, vxlan_port=cfg.vxlan_port,
        cgroup_parent=cfg.cgroup_parent,
    )


@dataclass(frozen=True, slots=True)
class JoinConfig:
    """`minik agent`: where the server is, how to prove we may join, and this node's own settings
    (the cluster's addressing comes from the server when the link opens)."""

    server_url: str                      # https://host:6443 (the API; /cacerts is read from it)
    token: str
    node_name: str = ""                  # "" → the hostname
    with_node_id: bool = False           # append a random id kept in <agent-dir>/node-id
    supervisor_port: int = 6444
    data_dir: str = "/var/lib/minik"
    run_dir: str = "/run/minik"
    config_dir: str = "/etc/minik"
    node_ip: str = ""
    bridge_name: str = "minik0"
    nft_table: str = "minik"
    dns_interface: str = "minik-dns0"
    resolv_conf: str = "/etc/resolv.conf"
    container_runtime_endpoint: str = ""
    disable_network_policy: bool = False
    log_level: str = "info"
    vxlan_device: str = "minik.1"
    metric_resolution: float = 15.0      # seconds between usage samples pushed to the server (kubectl top)
    disable_ingress: bool = False        # no ingress proxy on this node
    ingress_http_port: int = 80
    ingress_https_port: int = 443
    ingress_bind_address: str = "0.0.0.0"
    cgroup_parent: str = ""              # cgroupfs parent of this node's pods; "" → default_cgroup_parent(data_dir)

    @property
    def agent_dir(self) -> str:
        return os.path.join(self.data_dir, "agent")


DEFAULT_DATA_DIR = "/var/lib/minik"


def default_cgroup_parent(data_dir: str) -> str:
    """The cgroup every pod container of the installation at `data_dir` is created under.

    `/minik` for the default data dir, `/minik-<10 hex digits of sha256(real path)>` for any
    other, so instances side by side never share one and `scripts/killall.sh` (which computes
    the same name) can stop exactly its own containers.
    """
    import hashlib
    real = os.path.realpath(data_dir)
    if real == DEFAULT_DATA_DIR:
        return "/minik"
    return "/minik-" + hashlib.sha256(real.encode()).hexdigest()[:10]


def valid_cgroup_parent(value: str) -> bool:
    """An absolute cgroupfs path of plain names (no "..", no systemd slice syntax needed)."""
    import re
    return bool(re.fullmatch(r"(/[A-Za-z0-9_][A-Za-z0-9_.-]*)+", value)) and "/.." not in value
