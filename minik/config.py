"""Frozen settings for `minik server` (and later `minik agent`), with k3s-like defaults.

Neighbours: built by `minik.cli`, read by `minik.daemon` and the parts it composes.
"""

from __future__ import annotations

import os
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
    def tls_dir(self) -> str:
        return os.path.join(self.server_dir, "tls")
