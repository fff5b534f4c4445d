"""`minik agent --server https://host:6443 --token K10…`: join this machine to a server as a node.

Flags follow k3s's agent (`--server`, `--token`, `--token-file`, `--node-name`, `--node-ip`,
`--with-node-id`, `--data-dir`), each also from `MINIK_<FLAG>` (MINIK_URL for --server, like
K3S_URL). Parsing only; `minik.agentd.run_agent` does the work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable

from minik.config import JoinConfig, valid_cgroup_parent


def _env(name: str, default: str) -> str:
    return os.environ.get("MINIK_" + name.upper().replace("-", "_"), default)


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = JoinConfig("", "")
    p = sub.add_parser("agent", help="join this machine to a minik server as a node",
                       description="Run a node that joins a minik server: it links to the server over gRPC "
                                   "(TLS, pinned by the token's CA hash) and runs pods, Service rules, DNS and "
                                   "network policy for this machine.")
    p.add_argument("--server", "-s", default=_env("url", ""), help="the server's API URL, https://host:6443 (MINIK_URL)")
    p.add_argument("--token", "-t", default=_env("token", ""), help="join token K10<ca hash>::<secret> (MINIK_TOKEN)")
    p.add_argument("--token-file", default=_env("token-file", ""), help="file holding the join token")
    p.add_argument("--supervisor-port", type=int, default=int(_env("supervisor-port", str(d.supervisor_port))),
                   help="the server's supervisor (join/link) port (default %(default)s)")
    p.add_argument("--node-name", default=_env("node-name", ""), help="name of this node (default: the hostname)")
    p.add_argument("--with-node-id", action="store_true", default=_env("with-node-id", "") in ("1", "true"),
                   help="append a random id (kept in <data-dir>/agent/node-id) to the node name")
    p.add_argument("--node-ip", default=_env("node-ip", ""), help="IP address to advertise for this node (default: the default-route address)")
    p.add_argument("--data-dir", default=_env("data-dir", d.data_dir), help="state directory (default %(default)s)")
    p.add_argument("--config-dir", default=_env("config-dir", d.config_dir), help="configuration directory: registries.yaml (default %(default)s)")
    p.add_argument("--run-dir", default=_env("run-dir", d.run_dir), help="runtime directory for sockets (default %(default)s)")
    p.add_argument("--bridge-name", default=_env("bridge-name", d.bridge_name), help="name of the pod bridge (default %(default)s)")
    p.add_argument("--nft-table", default=_env("nft-table", d.nft_table), help="name of minik's nftables table (default %(default)s)")
    p.add_argument("--dns-interface", default=_env("dns-interface", d.dns_interface), help="dummy interface that holds the cluster DNS IP (default %(default)s)")
    p.add_argument("--resolv-conf", default=_env("resolv-conf", d.resolv_conf), help="resolv.conf for names outside the cluster (default %(default)s)")
    p.add_argument("--container-runtime-endpoint", default=_env("container-runtime-endpoint", ""), help="use this existing containerd socket")
    p.add_argument("--disable-network-policy", action="store_true", default=_env("disable-network-policy", "") in ("1", "true"),
                   help="do not enforce NetworkPolicies on this node")
    p.add_argument("--vxlan-device", default=_env("vxlan-device", d.vxlan_device), help="name of the VXLAN device (default %(default)s)")
    p.add_argument("--metric-resolution", type=float, default=float(_env("metric-resolution", str(d.metric_resolution))),
                   help="seconds between resource usage samples sent to the server for kubectl top and the HPA (default %(default)s)")
    p.add_argument("--disable", action="append", default=[x for x in _env("disable", "").split(",") if x],
                   help="turn off a component on this node: ingress (or traefik)")
    p.add_argument("--ingress-http-port", type=int, default=int(_env("ingress-http-port", str(d.ingress_http_port))), help="port of the ingress proxy for HTTP (default %(default)s)")
    p.add_argument("--ingress-https-port", type=int, default=int(_env("ingress-https-port", str(d.ingress_https_port))), help="port of the ingress proxy for HTTPS (default %(default)s)")
    p.add_argument("--ingress-bind-address", default=_env("ingress-bind-address", d.ingress_bind_address), help="address the ingress proxy listens on (default %(default)s)")
    p.add_argument("--cgroup-parent", default=_env("cgroup-parent", ""),
                   help="cgroup (cgroupfs path) this node's pod containers are created under "
                        "(default /minik for the default data dir, else /minik-<hash of the data dir>)")
    p.add_argument("--log-level", default=_env("log-level", "info"), choices=["debug", "info", "warning", "error"], help="log verbosity (default %(default)s)")


def build_join_config(a: argparse.Namespace) -> JoinConfig:
    if not a.server:
        raise SystemExit("minik agent: --server (or MINIK_URL) is required, e.g. https://192.168.1.10:6443")
    if a.cgroup_parent and not valid_cgroup_parent(a.cgroup_parent):
        raise SystemExit(f"minik agent: --cgroup-parent {a.cgroup_parent!r} is not an absolute cgroupfs path such as /minik")
    token = a.token
    if not token and a.token_file:
        try:
            with open(a.token_file, encoding="utf-8") as f:
                token = f.read().strip()
        except OSError as e:
            raise SystemExit(f"minik agent: cannot read --token-file: {e}") from None
    if not token:
        raise SystemExit("minik agent: --token, --token-file or MINIK_TOKEN is required "
                         "(the server's token is in <data-dir>/server/token)")
    return JoinConfig(
        server_url=a.server, token=token, node_name=a.node_name, with_node_id=a.with_node_id,
        supervisor_port=a.supervisor_port, data_dir=os.path.abspath(a.data_dir), run_dir=os.path.abspath(a.run_dir),
        config_dir=os.path.abspath(a.config_dir), node_ip=a.node_ip, bridge_name=a.bridge_name, nft_table=a.nft_table,
        dns_interface=a.dns_interface, resolv_conf=a.resolv_conf, container_runtime_endpoint=a.container_runtime_endpoint,
        disable_network_policy=a.disable_network_policy, log_level=a.log_level,
        vxlan_device=a.vxlan_device, metric_resolution=a.metric_resolution,
        disable_ingress=bool({c.strip() for item in a.disable for c in item.split(",")} & {"ingress", "traefik"}),
        ingress_http_port=a.ingress_http_port, ingress_https_port=a.ingress_https_port,
        ingress_bind_address=a.ingress_bind_address, cgroup_parent=a.cgroup_parent)


def run(a: argparse.Namespace, setup_logging: Callable[[str], None]) -> int:
    cfg = build_join_config(a)
    setup_logging(cfg.log_level)
    from minik.agentd import run_agent
    return asyncio.run(run_agent(cfg))


__all__ = ["add_parser", "build_join_config", "run"]
