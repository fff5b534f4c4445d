"""Pod networking for one node: composition of bridge, nftables, IPAM, CNI server and conf.

Role: the object the agent holds. `start()` brings the node's pod network up in the order
containerd needs it: bridge with the gateway address, egress rules, IPAM state loaded,
the CNI socket server listening, and only then the shim and the conflist in containerd's
CNI dirs (runtime notes, pitfall 2: a conflist that points at nothing fails sandboxes).
`stop()` only stops serving: the bridge, rules, conflist and pods' veths stay, because
pods outlive a daemon restart (as with k3s). `teardown()` removes everything this object
created on the host (tests, uninstall).

Neighbours: built by the agent/daemon from `minik.config`; uses `minik.net.bridge`,
`minik.net.nft`, `minik.net.ipam`, `minik.net.cni_server`, `minik.net.cniconf`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minik.net import cniconf
from minik.net.bridge import Netlink
from minik.net.cni_server import CNIServer, PodPlumber
from minik.net.hostports import HostPorts
from minik.net.ipam import IPAM, Allocation
from minik.net.nft import EgressRules, Nft

log = logging.getLogger(__name__)


class PodNetworkAPI(Protocol):
    """What the rest of minik (agent, tests with a fake) relies on."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def pod_ip(self, container_id: str) -> str | None: ...
    async def release_all_except(self, container_ids: Iterable[str]) -> list[Allocation]: ...


@dataclass(frozen=True, slots=True)
class PodNetworkSettings:
    data_dir: Path
    run_dir: Path
    cni_bin_dir: Path
    cni_conf_dir: Path
    cluster_cidr: ipaddress.IPv4Network
    node_subnet: ipaddress.IPv4Network
    bridge: str
    nft_table: str
    socket_path: Path
    mtu: int | None                  # None: the MTU of the host's default-route interface
    python: str
    enable_ip_forward: bool
    network_name: str

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{self.node_subnet.network_address + 1}/{self.node_subnet.prefixlen}")

    @property
    def ipam_dir(self) -> Path:
        return self.data_dir / "agent" / "net" / "ipam"

    @property
    def hostports_dir(self) -> Path:
        return self.data_dir / "agent" / "net" / "hostports"


class PodNetwork:
    def __init__(
        self,
        *,
        data_dir: str | os.PathLike[str],
        run_dir: str | os.PathLike[str],
        cni_bin_dir: str | os.PathLike[str],
        cni_conf_dir: str | os.PathLike[str],
        cluster_cidr: str = "10.42.0.0/16",
        node_subnet: str = "10.42.0.0/24",
        bridge: str = "minik0",
        nft_table: str = "minik",
        socket_path: str | os.PathLike[str] | None = None,
        mtu: int | None = None,
        python: str = cniconf.DEFAULT_PYTHON,
        enable_ip_forward: bool = True,
        network_name: str = "minik",
    ) -> None:
        cluster = ipaddress.IPv4Network(cluster_cidr)
        subnet = ipaddress.IPv4Network(node_subnet)
        if not subnet.subnet_of(cluster):
            raise ValueError(f"node subnet {subnet} is not inside cluster CIDR {cluster}")
        if not 1 <= len(bridge) <= 15:
            raise ValueError(f"bridge name {bridge!r} must be 1..15 characters")
        run = Path(run_dir)
        self.settings = PodNetworkSettings(
            data_dir=Path(data_dir),
            run_dir=run,
            cni_bin_dir=Path(cni_bin_dir),
            cni_conf_dir=Path(cni_conf_dir),
            cluster_cidr=cluster,
            node_subnet=subnet,
            bridge=bridge,
            nft_table=nft_table,
            socket_path=Path(socket_path) if socket_path is not None else run / "cni.sock",
            mtu=mtu,
            python=python,
            enable_ip_forward=enable_ip_forward,
            network_name=network_name,
        )
        self._nft = Nft()
        self._netlink: Netlink | None = None
        self._ipam: IPAM | None = None
        self._server: CNIServer | None = None
        self._hostports: HostPorts | None = None
        self._mtu: int | None = None

    @property
    def socket_path(self) -> Path:
        return self.settings.socket_path

    @property
    def conflist_path(self) -> Path:
        return self.settings.cni_conf_dir / cniconf.CONFLIST_NAME

    @property
    def mtu(self) -> int | None:
        """The pod interface MTU in use (known after start)."""
        return self._mtu

    async def start(self) -> None:
        s = self.settings
        netlink = self._netlink = Netlink()
        try:
            self._ipam = await asyncio.to_thread(IPAM, s.ipam_dir, s.node_subnet, s.gateway.ip)
            await netlink.ensure_bridge(s.bridge, s.gateway)
            self._mtu = s.mtu if s.mtu is not None else await netlink.default_route_mtu()
            if s.enable_ip_forward and await self._nft.enable_ip_forward():
                log.info("enabled net.ipv4.ip_forward for pod egress")
            await self._nft.apply(EgressRules(s.nft_table, s.cluster_cidr, s.bridge))
            # Re-applies the persisted hostPorts (after a reboot the table is gone).
            self._hostports = HostPorts(
                s.hostports_dir, table=s.nft_table, bridge=s.bridge,
                pod_subnet=s.node_subnet, runner=self._nft,
            )
            await self._hostports.start()
            plumber = PodPlumber(
                ipam=self._ipam, netlink=netlink, bridge=s.bridge, mtu=self._mtu,
                hostports=self._hostports,
            )
            self._server = CNIServer(s.socket_path, plumber)
            await self._server.start()
            conf = cniconf.NetConf(
                socket=str(s.socket_path),
                bridge=s.bridge,
                subnet=s.node_subnet,
                gateway=s.gateway.ip,
                cluster_cidr=s.cluster_cidr,
                mtu=self._mtu,
                name=s.network_name,
            )
            # Shim before conflist: the conflist is what makes containerd exec the shim.
            await asyncio.to_thread(cniconf.install_shim, s.cni_bin_dir, s.python)
            await asyncio.to_thread(cniconf.write_conflist, s.cni_conf_dir, conf)
        except BaseException:
            await self.stop()
            raise
        log.info(
            "pod network up: bridge %s %s, mtu %s, %d addresses in use, cni socket %s",
            s.bridge, s.gateway, self._mtu, len(self._ipam.list()), s.socket_path,
        )

    async def stop(self) -> None:
        """Stop serving CNI requests. Host plumbing stays for the pods that keep running."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self._netlink is not None:
            await self._netlink.close()
            self._netlink = None

    async def teardown(self) -> None:
        """Stop and remove the conflist, shims, nft table and bridge (tests, uninstall).
        Pod veths on the bridge are not deleted here; their netns owners remove them."""
        await self.stop()
        s = self.settings
        await asyncio.to_thread(cniconf.remove_conflist, s.cni_conf_dir)
        await asyncio.to_thread(cniconf.remove_shim, s.cni_bin_dir)
        await self._nft.delete(s.nft_table)
        netlink = Netlink(max_workers=1)
        try:
            await netlink.delete_bridge(s.bridge)
        finally:
            await netlink.close()

    def pod_ip(self, container_id: str) -> str | None:
        if self._ipam is None:
            return None
        ip = self._ipam.lookup(container_id)
        return None if ip is None else str(ip)

    def allocations(self) -> list[Allocation]:
        return [] if self._ipam is None else self._ipam.list()

    async def release_all_except(self, container_ids: Iterable[str]) -> list[Allocation]:
        """Free addresses of sandboxes the runtime no longer knows (reconcile after a crash
        that skipped CNI DEL). Their host veths died with their namespaces."""
        if self._ipam is None:
            return []
        keep = list(container_ids)
        if self._hostports is not None:
            for cid in await self._hostports.retain(keep):
                log.info("removed hostPorts of vanished sandbox %s", cid[:12])
        freed = await asyncio.to_thread(self._ipam.release_all_except, keep)
        for a in freed:
            log.info("released %s of vanished sandbox %s", a.address, a.container_id[:12])
        return freed
