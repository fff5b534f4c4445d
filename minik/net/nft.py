"""Pod egress rules in a minik-owned nftables table, applied with the `nft` command.

Role: masquerade traffic from the cluster's pod CIDR leaving for anywhere else, accept
forwarding to and from the pod bridge, and turn on `net.ipv4.ip_forward` (runtime notes,
pitfall 8: host->pod and pod->pod on one bridge need none of this; egress needs both).
The rule text is rendered by a pure function and loaded with `nft -f -` in one
transaction, so applying is atomic and idempotent: our chains are (re)declared and flushed
before their rules are added, other chains in the table are left alone.

Neighbours: called by `minik.net.podnet` at start (`apply`) and at teardown (`delete`).
Pod hostPorts live in their own `hostports*` chains of the same table, rendered by
`minik.net.hostports` and loaded through `run_script`; `apply` here never flushes them, so
restarting the pod network keeps pods' hostPorts working. Service/NodePort rules will live
in their own chains of the same table.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
IPV4_CONF = Path("/proc/sys/net/ipv4/conf")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")


class NftError(Exception):
    """The `nft` command rejected our ruleset or could not run."""


@dataclass(frozen=True, slots=True)
class EgressRules:
    table: str                       # `table ip <table>`
    cluster_cidr: ipaddress.IPv4Network
    bridge: str

    def __post_init__(self) -> None:
        if not _NAME.match(self.table):
            raise NftError(f"invalid nft table name {self.table!r}")
        if not re.match(r"^[A-Za-z0-9_.-]{1,15}$", self.bridge):
            raise NftError(f"invalid bridge name {self.bridge!r}")


def render_apply(rules: EgressRules) -> str:
    """The `nft -f` script installing (or refreshing) the pod egress chains."""
    t = f"ip {rules.table}"
    cidr = str(rules.cluster_cidr)
    br = rules.bridge
    return "\n".join([
        f"add table {t}",
        # `add chain` is a no-op for an existing chain; the flush then makes the rule list
        # exactly what follows, so re-applying never duplicates rules.
        f"add chain {t} pod-postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        f"flush chain {t} pod-postrouting",
        # Pod-to-pod (also across nodes) keeps its source address; only traffic leaving the
        # cluster network is masqueraded. Multicast is never NATed.
        f"add rule {t} pod-postrouting ip saddr {cidr} ip daddr != {cidr} "
        f"ip daddr != 224.0.0.0/4 masquerade",
        f"add chain {t} pod-forward {{ type filter hook forward priority filter; policy accept; }}",
        f"flush chain {t} pod-forward",
        f'add rule {t} pod-forward iifname "{br}" accept',
        f'add rule {t} pod-forward oifname "{br}" ct state established,related accept',
        f'add rule {t} pod-forward oifname "{br}" ip saddr {cidr} accept',
        "",
    ])


def render_delete(table: str) -> str:
    """Remove the whole minik table; declaring it first makes the delete never fail."""
    if not _NAME.match(table):
        raise NftError(f"invalid nft table name {table!r}")
    return f"add table ip {table}\ndelete table ip {table}\n"


class Nft:
    """Runs `nft` scripts as a subprocess of the event loop."""

    def __init__(
        self,
        nft_binary: str = "nft",
        ip_forward_path: Path = IP_FORWARD,
        ipv4_conf_dir: Path = IPV4_CONF,
    ) -> None:
        self._nft = nft_binary
        self._ip_forward = ip_forward_path
        self._ipv4_conf = ipv4_conf_dir

    async def apply(self, rules: EgressRules) -> None:
        await self.run_script(render_apply(rules))

    async def delete(self, table: str) -> None:
        await self.run_script(render_delete(table))

    async def list_table(self, table: str) -> str:
        """The table as `nft list` prints it (for tests and diagnostics)."""
        return await self._exec(["list", "table", "ip", table], None)

    async def run_script(self, script: str) -> None:
        await self._exec(["-f", "-"], script)

    async def enable_ip_forward(self) -> bool:
        """Set net.ipv4.ip_forward=1; True if it was off before."""
        return await asyncio.to_thread(self._enable_ip_forward)

    def _enable_ip_forward(self) -> bool:
        return _set_knob(self._ip_forward)

    async def enable_route_localnet(self, ifname: str) -> bool:
        """Set net.ipv4.conf.<ifname>.route_localnet=1 (hostPorts on 127.0.0.1, see
        `minik.net.hostports`); True if it was off before."""
        if not re.match(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,14}$", ifname):
            raise NftError(f"invalid interface name {ifname!r}")
        return await asyncio.to_thread(_set_knob, self._ipv4_conf / ifname / "route_localnet")

    async def _exec(self, args: list[str], stdin: str | None) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                self._nft, *args,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as e:
            raise NftError(f"running {self._nft}: {e}") from e
        out, err = await proc.communicate(stdin.encode() if stdin is not None else None)
        if proc.returncode != 0:
            raise NftError(f"nft {' '.join(args)} failed ({proc.returncode}): {err.decode().strip()}")
        return out.decode()


def _set_knob(path: Path) -> bool:
    """Write 1 to a sysctl file unless it already holds 1; True if it changed."""
    try:
        if path.read_text().strip() == "1":
            return False
        path.write_text("1\n")
    except OSError as e:
        raise NftError(f"enabling {path}: {e}") from e
    return True
