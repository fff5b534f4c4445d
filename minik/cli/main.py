"""`minik` command line: argument parsing → config → run. Nothing else lives here.

Flags follow k3s's names where k3s has them (see ../shared/docs/k3s-conventions.md); each can
also come from a `MINIK_<FLAG>` environment variable (e.g. MINIK_TOKEN), as k3s reads K3S_*.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from minik import KUBE_VERSION, __version__
from minik.cli import agent, images, secrets_encrypt, token
from minik.config import ServerConfig, valid_cgroup_parent


def _env(name: str, default: str) -> str:
    return os.environ.get("MINIK_" + name.upper().replace("-", "_"), default)


def _server_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:  # type: ignore[type-arg]
    d = ServerConfig()
    p: argparse.ArgumentParser = sub.add_parser("server", help="run the control plane (API, store, controllers) and, unless disabled, a node agent",
                       description="Run minik's server: the Kubernetes API over an SQLite store, the controllers, "
                                   "and (unless --disable-agent) the node agent for this machine.")
    p.add_argument("--data-dir", default=_env("data-dir", d.data_dir), help="state directory: database, certificates, containerd root (default %(default)s)")
    p.add_argument("--config-dir", default=_env("config-dir", d.config_dir), help="configuration directory: kubeconfig, registries.yaml (default %(default)s)")
    p.add_argument("--run-dir", default=_env("run-dir", d.run_dir), help="runtime directory for sockets (default %(default)s)")
    p.add_argument("--bind-address", default=_env("bind-address", d.bind_address), help="address the API listens on (default %(default)s)")
    p.add_argument("--https-listen-port", type=int, default=int(_env("https-listen-port", str(d.https_listen_port))), help="API port (default %(default)s)")
    p.add_argument("--advertise-address", default=_env("advertise-address", ""), help="address other nodes and the kubernetes Service use to reach the API (default: the default-route address)")
    p.add_argument("--tls-san", action="append", default=[s for s in _env("tls-san", "").split(",") if s], help="extra hostname or IP in the serving certificate (repeatable)")
    p.add_argument("--write-kubeconfig", "-o", default=_env("write-kubeconfig", ""), help="where to write the admin kubeconfig (default <config-dir>/kubeconfig.yaml)")
    p.add_argument("--write-kubeconfig-mode", default=_env("write-kubeconfig-mode", "0600"), help="file mode of the kubeconfig, octal (default %(default)s)")
    p.add_argument("--disable-agent", action="store_true", default=_env("disable-agent", "") in ("1", "true"), help="run only the control plane; this machine runs no pods")
    p.add_argument("--node-name", default=_env("node-name", ""), help="name of this node (default: the hostname)")
    p.add_argument("--cluster-cidr", default=_env("cluster-cidr", d.cluster_cidr), help="pod network (default %(default)s)")
    p.add_argument("--service-cidr", default=_env("service-cidr", d.service_cidr), help="Service cluster IP range (default %(default)s)")
    p.add_argument("--cluster-dns", default=_env("cluster-dns", d.cluster_dns), help="cluster DNS service IP (default %(default)s)")
    p.add_argument("--cluster-domain", default=_env("cluster-domain", d.cluster_domain), help="cluster DNS domain (default %(default)s)")
    p.add_argument("--token", default=_env("token", ""), help="shared secret agents join with (default: generated, kept in <data-dir>/server/token)")
    p.add_argument("--container-runtime-endpoint", default=_env("container-runtime-endpoint", ""), help="use this existing containerd socket instead of starting one")
    p.add_argument("--node-ip", default=_env("node-ip", ""), help="IP address to advertise for this node (default: the advertise address)")
    p.add_argument("--bridge-name", default=_env("bridge-name", d.bridge_name), help="name of the pod bridge (default %(default)s)")
    p.add_argument("--nft-table", default=_env("nft-table", d.nft_table), help="name of minik's nftables table (default %(default)s)")
    p.add_argument("--metric-resolution", type=float, default=float(_env("metric-resolution", str(d.metric_resolution))),
                   help="seconds between resource usage samples for kubectl top and the HPA (default %(default)s)")
    p.add_argument("--horizontal-pod-autoscaler-sync-period", type=float,
                   default=float(_env("horizontal-pod-autoscaler-sync-period", str(d.hpa_sync_period))),
                   help="seconds between HorizontalPodAutoscaler checks (default %(default)s)")
    p.add_argument("--node-monitor-grace-period", type=float, default=float(_env("node-monitor-grace-period", str(d.node_monitor_grace_period))),
                   help="seconds without a node heartbeat before the node is marked Unknown and tainted unreachable (default %(default)s)")
    p.add_argument("--service-node-port-range", default=_env("service-node-port-range", d.service_node_port_range), help="port range for NodePort Services (default %(default)s)")
    p.add_argument("--disable-dns", action="store_true", default=_env("disable-dns", "") in ("1", "true"), help="serve no cluster DNS (no kube-dns Service, nothing on the DNS IP)")
    p.add_argument("--dns-interface", default=_env("dns-interface", d.dns_interface), help="dummy interface that holds the cluster DNS IP on this node (default %(default)s)")
    p.add_argument("--resolv-conf", default=_env("resolv-conf", d.resolv_conf), help="resolv.conf whose nameservers answer names outside the cluster (default %(default)s)")
    p.add_argument("--disable-network-policy", action="store_true", default=_env("disable-network-policy", "") in ("1", "true"), help="do not enforce NetworkPolicies on this node")
    p.add_argument("--default-local-storage-path", default=_env("default-local-storage-path", ""),
                   help="directory of the local-path provisioner's volumes (default <data-dir>/storage)")
    p.add_argument("--disable", action="append", default=[s for s in _env("disable", "").split(",") if s],
                   help="turn off a packaged component (repeatable or comma-separated, like k3s): ingress (or traefik), local-storage")
    p.add_argument("--ingress-http-port", type=int, default=int(_env("ingress-http-port", str(d.ingress_http_port))), help="port of the built-in ingress proxy for HTTP (default %(default)s)")
    p.add_argument("--ingress-https-port", type=int, default=int(_env("ingress-https-port", str(d.ingress_https_port))), help="port of the built-in ingress proxy for HTTPS (default %(default)s)")
    p.add_argument("--ingress-bind-address", default=_env("ingress-bind-address", d.ingress_bind_address), help="address the ingress proxy listens on (default %(default)s)")
    p.add_argument("--supervisor-port", type=int, default=int(_env("supervisor-port", str(d.supervisor_port))),
                   help="port agents join and keep their link on (gRPC over TLS; 0: no agents) (default %(default)s)")
    p.add_argument("--pod-network-backend", default=_env("pod-network-backend", d.pod_network_backend), choices=["vxlan", "host-gw", "none"],
                   help="how pods on different nodes reach each other (like k3s's --flannel-backend; default %(default)s)")
    p.add_argument("--vxlan-device", default=_env("vxlan-device", d.vxlan_device), help="name of the VXLAN device (default %(default)s)")
    p.add_argument("--vxlan-vni", type=int, default=int(_env("vxlan-vni", str(d.vxlan_vni))), help="VXLAN network identifier (default %(default)s)")
    p.add_argument("--vxlan-port", type=int, default=int(_env("vxlan-port", str(d.vxlan_port))), help="UDP port of the VXLAN overlay (default %(default)s)")
    p.add_argument("--secrets-encryption", action=argparse.BooleanOptionalAction,
                   default=_env("secrets-encryption", "true").lower() not in ("0", "false", "no"),
                   help="encrypt Secrets at rest with AES-GCM, key in <data-dir>/server/encryption-config (default: on)")
    p.add_argument("--cgroup-parent", default=_env("cgroup-parent", ""),
                   help="cgroup (cgroupfs path) this installation's pod containers are created under "
                        "(default /minik for the default data dir, else /minik-<hash of the data dir>)")
    p.add_argument("--loop-probe", type=float, default=float(_env("loop-probe", "0")),
                   help="diagnostics: log event-loop lag, slow callbacks and GC pauses every this many seconds (default 0: off)")
    p.add_argument("--log-level", default=_env("log-level", "info"), choices=["debug", "info", "warning", "error"], help="log verbosity (default %(default)s)")
    return p


def build_server_config(a: argparse.Namespace) -> ServerConfig:
    try:
        mode = int(str(a.write_kubeconfig_mode), 8)
    except ValueError:
        raise SystemExit(f"minik: --write-kubeconfig-mode must be octal like 0600, got {a.write_kubeconfig_mode!r}") from None
    if not 1 <= len(a.dns_interface) <= 15 or "/" in a.dns_interface or " " in a.dns_interface:
        raise SystemExit(f"minik: --dns-interface must be an interface name of 1 to 15 characters, got {a.dns_interface!r}")
    if a.cgroup_parent and not valid_cgroup_parent(a.cgroup_parent):
        raise SystemExit(f"minik: --cgroup-parent must be an absolute cgroup path like /minik, got {a.cgroup_parent!r}")
    return ServerConfig(
        data_dir=os.path.abspath(a.data_dir), config_dir=os.path.abspath(a.config_dir), run_dir=os.path.abspath(a.run_dir),
        bind_address=a.bind_address, https_listen_port=a.https_listen_port, advertise_address=a.advertise_address,
        tls_san=tuple(a.tls_san), write_kubeconfig=a.write_kubeconfig, write_kubeconfig_mode=mode,
        disable_agent=a.disable_agent, node_name=a.node_name, cluster_cidr=a.cluster_cidr, service_cidr=a.service_cidr,
        cluster_dns=a.cluster_dns, cluster_domain=a.cluster_domain, token=a.token,
        container_runtime_endpoint=a.container_runtime_endpoint, log_level=a.log_level,
        node_ip=a.node_ip, bridge_name=a.bridge_name, nft_table=a.nft_table,
        metric_resolution=a.metric_resolution, hpa_sync_period=a.horizontal_pod_autoscaler_sync_period,
        node_monitor_grace_period=a.node_monitor_grace_period,
        service_node_port_range=_port_range(a.service_node_port_range),
        disable_dns=a.disable_dns, dns_interface=a.dns_interface, resolv_conf=a.resolv_conf,
        disable_network_policy=a.disable_network_policy,
        default_local_storage_path=os.path.abspath(a.default_local_storage_path) if a.default_local_storage_path else "",
        disable=tuple(sorted({c.strip() for item in a.disable for c in item.split(",") if c.strip()})),
        ingress_http_port=a.ingress_http_port, ingress_https_port=a.ingress_https_port,
        ingress_bind_address=a.ingress_bind_address,
        supervisor_port=a.supervisor_port, pod_network_backend=a.pod_network_backend, vxlan_device=a.vxlan_device, vxlan_vni=a.vxlan_vni,
        vxlan_port=a.vxlan_port,
        secrets_encryption=a.secrets_encryption, cgroup_parent=a.cgroup_parent,
        loop_probe=a.loop_probe)


def _port_range(value: str) -> str:
    lo, sep, hi = str(value).partition("-")
    if not (sep and lo.isdigit() and hi.isdigit() and 1 <= int(lo) <= int(hi) <= 65535):
        raise SystemExit(f"minik: --service-node-port-range must look like 30000-32767, got {value!r}")
    return f"{int(lo)}-{int(hi)}"


class _Formatter(logging.Formatter):
    """`2026-11-23T07:00:00.123Z INFO  minik.api  message` — one line, readable, greppable."""

    def format(self, record: logging.LogRecord) -> str:
        import time
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        return f"{t} {record.levelname:<7} {record.name:<28} {msg}"


def setup_logging(level: str) -> None:
    h = logging.StreamHandler(sys.stderr)
    h.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [h]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _kubectl(args: list[str]) -> int:
    cfg = os.environ.get("KUBECONFIG") or os.path.join(_env("config-dir", ServerConfig().config_dir), "kubeconfig.yaml")
    os.environ["KUBECONFIG"] = cfg
    try:
        os.execvp("kubectl", ["kubectl", *args])
    except OSError as e:
        print(f"minik: cannot run kubectl: {e}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kubectl"]:
        raise SystemExit(_kubectl(argv[1:]))
    parser = argparse.ArgumentParser(prog="minik", description="minik: a lightweight single-host Kubernetes (k3s-like) in one Python daemon.")
    parser.add_argument("--version", action="version", version=f"minik {__version__} (Kubernetes {KUBE_VERSION})")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _server_parser(sub)
    images.add_parser(sub)
    agent.add_parser(sub)
    token.add_parser(sub)
    secrets_encrypt.add_parser(sub)
    sub.add_parser("kubectl", help="run kubectl with minik's admin kubeconfig", add_help=False)
    args = parser.parse_args(argv)
    if args.command == "server":
        cfg = build_server_config(args)
        setup_logging(cfg.log_level)
        from minik.daemon import run_server
        raise SystemExit(asyncio.run(run_server(cfg)))
    if args.command == "images":
        raise SystemExit(images.run(args))
    if args.command == "agent":
        raise SystemExit(agent.run(args, setup_logging))
    if args.command == "token":
        raise SystemExit(token.run(args))
    if args.command == "secrets-encrypt":
        raise SystemExit(secrets_encrypt.run(args))
    parser.print_help()
    raise SystemExit(0 if not argv else 2)


if __name__ == "__main__":
    main()
