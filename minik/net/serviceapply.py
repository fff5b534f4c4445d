"""Applies Service rulesets (`minik.net.services`) to the kernel: one `nft -f -` transaction each.

Role: holds the ruleset the kernel has now. The first `sync` after start is a full resync: the
`svc*` chains and sets a previous run left in the table are listed, everything wanted is
(re)written and the leftovers deleted, in one transaction, so a daemon restarted after kill -9
reinstalls the same rules without a window where Services are unserved (established
connections live in conntrack and never depend on the rules). Later syncs send only the diff.
A failed diff falls back to a full resync on the next call.

Also the host knobs Service traffic needs: `net.bridge.bridge-nf-call-iptables=1` (pod → VIP →
pod on the same bridge: the reply is bridged, and only br_netfilter lets conntrack undo the
DNAT on it), and `route_localnet` on the pod bridge once a NodePort or LoadBalancer port exists
(127.0.0.1:<nodePort>, the same reason as hostPorts in `minik.net.hostports`, whose input
guard drops non-DNATed bridge traffic to 127.0.0.0/8).
Neighbours: `minik.agent.proxier` calls `sync`; `minik.net.nft.Nft` runs the scripts.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from minik.net import services as rules
from minik.net.nft import Nft, NftError

log = logging.getLogger(__name__)

BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


class Runner(Protocol):
    async def run_script(self, script: str) -> None: ...
    async def enable_route_localnet(self, ifname: str) -> bool: ...
    async def list_json(self, *args: str) -> str: ...


class NftRunner(Nft):
    """`Nft` plus the JSON listing the full resync needs."""

    async def list_json(self, *args: str) -> str:
        return await self._exec(["-j", "list", *args], None)


@dataclass(frozen=True, slots=True)
class SyncResult:
    full: bool
    chains_written: int
    seconds: float


class ServiceRules:
    def __init__(self, settings: rules.Settings, bridge: str, runner: Runner | None = None,
                 bridge_nf_path: Path = BRIDGE_NF) -> None:
        self.settings = settings
        self._bridge = bridge
        self._runner: Runner = runner or NftRunner()
        self._bridge_nf = bridge_nf_path
        self._current: rules.Ruleset | None = None
        self._localnet = False
        self._lock = asyncio.Lock()

    @property
    def current(self) -> rules.Ruleset | None:
        return self._current

    async def prepare_host(self) -> None:
        """Host knobs, and the fixed chains and maps (existing map elements and service
        chains are kept: after a restart they keep serving until the first full sync)."""
        await self._runner.run_script(rules.render_skeleton(self.settings))
        try:
            changed = await asyncio.to_thread(_set_knob, self._bridge_nf)
        except OSError as e:
            log.warning("services: cannot enable bridge-nf-call-iptables (%s); a pod reaching "
                        "another pod of its bridge through a Service will not get replies", e)
            return
        if changed:
            log.info("services: enabled net.bridge.bridge-nf-call-iptables")

    async def sync(self, wanted: rules.Ruleset) -> SyncResult | None:
        """Make the kernel hold `wanted`; None when nothing had to change."""
        async with self._lock:
            start = time.monotonic()
            if wanted.maps.get("svc-nodeports") or _has_external(wanted):
                await self._ensure_localnet()
            if self._current is None:
                chains, sets = await self._existing()
                script = rules.render_full(wanted, self.settings, chains, sets)
                await self._runner.run_script(script)
                self._current = wanted
                return SyncResult(True, len(wanted.chains), time.monotonic() - start)
            script = rules.render_diff(self._current, wanted, self.settings)
            if not script:
                return None
            written = rules.changed_services(self._current, wanted)
            try:
                await self._runner.run_script(script)
            except NftError:
                self._current = None   # the next sync starts over from what the kernel has
                raise
            self._current = wanted
            return SyncResult(False, written, time.monotonic() - start)

    async def _ensure_localnet(self) -> None:
        if self._localnet:
            return
        try:
            if await self._runner.enable_route_localnet(self._bridge):
                log.info("services: enabled route_localnet on %s for 127.0.0.1:<nodePort>", self._bridge)
        except NftError as e:
            log.warning("services: %s; NodePorts on 127.0.0.1 will not work", e)
        self._localnet = True

    async def _existing(self) -> tuple[list[str], list[str]]:
        """Names of the `svc*` chains and sets already in the table (none when it is absent)."""
        t = self.settings.table
        try:
            chains = _names(await self._runner.list_json("chains", "ip"), "chain", t)
            sets = _names(await self._runner.list_json("sets", "ip"), "set", t)
        except NftError as e:
            log.debug("services: listing table %s: %s", t, e)
            return [], []
        return ([c for c in chains if c.startswith("svc")], [s for s in sets if s.startswith("svc")])


def _has_external(rs: rules.Ruleset) -> bool:
    return any(v.startswith("goto svc-ext-") for v in (rs.maps.get("svc-ips") or {}).values())


def _names(raw: str, kind: str, table: str) -> list[str]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    out = []
    for item in doc.get("nftables", []):
        obj = item.get(kind)
        if isinstance(obj, dict) and obj.get("table") == table and obj.get("family") == "ip":
            out.append(str(obj.get("name")))
    return out


def _set_knob(path: Path) -> bool:
    if path.read_text().strip() == "1":
        return False
    path.write_text("1\n")
    return True
