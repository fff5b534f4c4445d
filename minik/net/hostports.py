"""Pod hostPorts: DNAT from the node's own addresses to pod ports, like CNI `portmap`.

Role: containerd hands the CRI PortMappings of a sandbox to CNI in
`runtimeConfig.portMappings` (only because our conflist declares the `portMappings`
capability, see `minik.net.cniconf`). `parse_port_mappings` turns them into values,
`render_apply` renders the complete set of hostPort rules as one `nft -f` script (pure),
and `HostPorts` keeps the current mappings per sandbox container id, persisted one JSON
file per container so a restarted daemon re-applies exactly what its pods were given.

Rules, all in minik's own `table ip <table>`, all re-declared and flushed on every apply so
applying is atomic and idempotent (the egress chains of `minik.net.nft` are not touched):
  hostports              one DNAT rule per mapping (newest sandbox first, so on a clash
                         the newest pod wins instead of a stale one)
  hostports-prerouting   nat/prerouting: traffic to any local address -> hostports
  hostports-output       nat/output: locally originated traffic to local addresses
                         (127.0.0.1:<hostPort>, <node IP>:<hostPort> from the node itself)
  hostports-postrouting  nat/postrouting: masquerade DNATed connections that came from
                         127.0.0.0/8 (the pod could not answer 127.0.0.1) and hairpin ones
                         (pod -> node IP:hostPort -> pod on the same bridge, whose reply
                         would otherwise go straight over the bridge, skipping the host's
                         conntrack). Hairpin is recognised by the source being in the node's
                         pod subnet: `iifname` is empty at postrouting (measured) — and by the
                         mark hostports-prerouting puts on packets to local addresses, so pod
                         connections DNATed to a Service's endpoints keep their source.
  hostports-input        filter/input: drop packets from the bridge to 127.0.0.0/8 that
                         are not replies of DNATed connections (see route_localnet below)

Why `route_localnet=1` on the bridge (measured, tests/integration/test_podnet.py): a
connection to 127.0.0.1:<hostPort> keeps source 127.0.0.1 when the output DNAT reroutes it
to the pod, and the kernel refuses to route a loopback source out of a non-loopback device
(`__mkroute_output`) unless the *outgoing* device has route_localnet; the reply, un-NATed to
127.0.0.1, arrives on the bridge and is a martian there for the same reason. `lo` needs
nothing. route_localnet also lets a pod send to 127.0.0.1 of the host through the bridge
(the kube-proxy CVE-2020-8558 class); `hostports-input` closes that. It is turned on only
once some mapping exists.

Neighbours: `minik.net.cni_server` (ADD sets, DEL removes), `minik.net.podnet` (builds the
manager, `start()` re-applies after a restart, `retain()` drops vanished sandboxes),
`minik.net.nft` (runs the script, writes the sysctl).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "udp", "sctp")
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_CONTAINER_ID = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_LOOPBACK = ipaddress.IPv4Network("127.0.0.0/8")
LOCAL_DNAT_MARK = 0x2000
CHAINS = ("hostports", "hostports-prerouting", "hostports-output",
          "hostports-postrouting", "hostports-input")


class HostPortError(Exception):
    """Malformed port mappings, or the rules could not be applied."""


@dataclass(frozen=True, slots=True)
class PortMapping:
    host_port: int
    container_port: int
    protocol: str                                 # tcp, udp, sctp
    host_ip: ipaddress.IPv4Address | None = None  # None: every local address

    def to_json(self) -> dict[str, Any]:
        return {
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.protocol,
            "hostIP": "" if self.host_ip is None else str(self.host_ip),
        }


@dataclass(frozen=True, slots=True)
class HostPortEntry:
    """The mappings of one sandbox, as persisted."""

    container_id: str
    pod_ip: ipaddress.IPv4Address
    mappings: tuple[PortMapping, ...]
    added_ns: int                                 # orders clashing mappings (newest wins)
    pod: str = ""                                 # "namespace/name", for humans

    def to_json(self) -> dict[str, Any]:
        return {
            "containerID": self.container_id,
            "podIP": str(self.pod_ip),
            "pod": self.pod,
            "addedNs": self.added_ns,
            "portMappings": [m.to_json() for m in self.mappings],
        }


def parse_port_mappings(raw: Any) -> tuple[PortMapping, ...]:
    """`runtimeConfig.portMappings` as containerd sends it: a list of
    `{HostPort, ContainerPort, Protocol, HostIP}` (go-cni's struct has no JSON tags, so the
    keys are Go's field names; the CNI convention and our state files say `hostPort`):
    keys match case-insensitively, as Go's decoder in the reference `portmap` plugin does.
    Entries without a host port are not
    hostPorts and are skipped; IPv6 host IPs are skipped because minik's pod network is
    IPv4 only (the IPv4 table could not match them). Duplicates collapse."""
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise HostPortError("portMappings must be a list")
    out: list[PortMapping] = []
    for item in raw:
        if not isinstance(item, dict):
            raise HostPortError(f"port mapping {item!r} is not an object")
        fields = {str(k).lower(): v for k, v in item.items()}
        host_port = fields.get("hostport", 0)
        container_port = fields.get("containerport", 0)
        if not isinstance(host_port, int) or not isinstance(container_port, int) \
                or isinstance(host_port, bool) or isinstance(container_port, bool):
            raise HostPortError(f"port mapping {item!r}: ports must be integers")
        if host_port == 0:
            continue
        if not (1 <= host_port <= 65535 and 1 <= container_port <= 65535):
            raise HostPortError(f"port mapping {item!r}: ports must be in 1..65535")
        protocol = str(fields.get("protocol") or "tcp").lower()
        if protocol not in PROTOCOLS:
            raise HostPortError(f"port mapping {item!r}: unsupported protocol {protocol!r}")
        host_ip_raw = fields.get("hostip") or ""
        if not isinstance(host_ip_raw, str):
            raise HostPortError(f"port mapping {item!r}: hostIP must be a string")
        host_ip: ipaddress.IPv4Address | None = None
        if host_ip_raw:
            try:
                parsed = ipaddress.ip_address(host_ip_raw)
            except ValueError:
                raise HostPortError(f"port mapping {item!r}: bad hostIP") from None
            if parsed.version == 6:
                if not parsed.is_unspecified:
                    log.warning("hostPort %d on IPv6 %s ignored: pod network is IPv4",
                                host_port, parsed)
                    continue
            elif not parsed.is_unspecified:
                host_ip = ipaddress.IPv4Address(parsed)
        mapping = PortMapping(host_port, container_port, protocol, host_ip)
        if mapping not in out:
            out.append(mapping)
    return tuple(out)


def _check_names(table: str, bridge: str) -> None:
    if not _TABLE.match(table):
        raise HostPortError(f"invalid nft table name {table!r}")
    if not _IFNAME.match(bridge):
        raise HostPortError(f"invalid bridge name {bridge!r}")


def dnat_rule(mapping: PortMapping, pod_ip: ipaddress.IPv4Address) -> str:
    """One rule body of the `hostports` chain."""
    match = "" if mapping.host_ip is None else f"ip daddr {mapping.host_ip} "
    return (f"{match}{mapping.protocol} dport {mapping.host_port} "
            f"dnat to {pod_ip}:{mapping.container_port}")


def render_apply(
    table: str,
    bridge: str,
    pod_subnet: ipaddress.IPv4Network,
    entries: Iterable[HostPortEntry],
) -> str:
    """The `nft -f` script making the hostPort chains exactly match `entries`."""
    _check_names(table, bridge)
    t = f"ip {table}"
    ordered = sorted(entries, key=lambda e: (-e.added_ns, e.container_id))
    lines = [f"add table {t}"]
    # `add chain` is a no-op for an existing chain and the flush that follows empties it,
    # so the result never depends on what was there; one script is one transaction.
    lines += [
        f"add chain {t} hostports",
        f"add chain {t} hostports-prerouting "
        "{ type nat hook prerouting priority dstnat; policy accept; }",
        # nft 1.0.6 accepts the `dstnat` keyword only at prerouting; -100 is its value.
        f"add chain {t} hostports-output "
        "{ type nat hook output priority -100; policy accept; }",
        f"add chain {t} hostports-postrouting "
        "{ type nat hook postrouting priority srcnat; policy accept; }",
        f"add chain {t} hostports-input "
        "{ type filter hook input priority filter; policy accept; }",
    ]
    lines += [f"flush chain {t} {chain}" for chain in CHAINS]
    # Only traffic addressed to the node itself is a hostPort (portmap's `--dst-type LOCAL`),
    # never traffic passing through to other hosts on the same port.
    lines += [
        # The mark tells postrouting which DNATed connections were addressed to the node
        # itself; Service VIP connections (minik.net.services) must keep the pod's source.
        f"add rule {t} hostports-prerouting fib daddr type local "
        f"meta mark set meta mark | 0x{LOCAL_DNAT_MARK:x} jump hostports",
        f"add rule {t} hostports-output fib daddr type local jump hostports",
        f'add rule {t} hostports-postrouting ct status dnat ip saddr {_LOOPBACK} '
        f'oifname "{bridge}" masquerade',
        f"add rule {t} hostports-postrouting ct status dnat meta mark & 0x{LOCAL_DNAT_MARK:x} != 0 "
        f'ip saddr {pod_subnet} oifname "{bridge}" masquerade',
        f'add rule {t} hostports-input iifname "{bridge}" ip daddr {_LOOPBACK} '
        "ct status & dnat == 0 drop",
    ]
    for entry in ordered:
        for mapping in entry.mappings:
            lines.append(f"add rule {t} hostports {dnat_rule(mapping, entry.pod_ip)}")
    lines.append("")
    return "\n".join(lines)


def entry_from_json(obj: Any) -> HostPortEntry:
    if not isinstance(obj, dict):
        raise HostPortError("hostport state is not an object")
    try:
        return HostPortEntry(
            container_id=str(obj["containerID"]),
            pod_ip=ipaddress.IPv4Address(obj["podIP"]),
            mappings=parse_port_mappings(obj.get("portMappings", [])),
            added_ns=int(obj.get("addedNs", 0)),
            pod=str(obj.get("pod", "")),
        )
    except (KeyError, ValueError, TypeError) as e:
        raise HostPortError(f"bad hostport state: {e}") from None


class RuleRunner(Protocol):
    """The part of `minik.net.nft.Nft` the manager uses (fakes in tests)."""

    async def run_script(self, script: str) -> None: ...
    async def enable_route_localnet(self, ifname: str) -> bool: ...


class HostPorts:
    """Current hostPort mappings per sandbox; every change re-renders and applies all of
    them under one lock, so parallel ADDs never apply a script missing the other's rules."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        table: str,
        bridge: str,
        pod_subnet: ipaddress.IPv4Network,
        runner: RuleRunner,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        _check_names(table, bridge)
        self._dir = Path(state_dir)
        self._table = table
        self._bridge = bridge
        self._pod_subnet = pod_subnet
        self._runner = runner
        self._clock_ns = clock_ns
        self._entries: dict[str, HostPortEntry] = {}
        self._lock = asyncio.Lock()

    def entries(self) -> list[HostPortEntry]:
        return sorted(self._entries.values(), key=lambda e: e.container_id)

    def get(self, container_id: str) -> HostPortEntry | None:
        return self._entries.get(container_id)

    async def start(self) -> None:
        """Load the persisted mappings and (re)apply the chains, also when there are none,
        so a fresh table has its guard rule and a stale chain is emptied."""
        async with self._lock:
            self._entries = await asyncio.to_thread(self._load)
            await self._apply()
        if self._entries:
            log.info("hostports: restored %d mappings of %d sandboxes",
                     sum(len(e.mappings) for e in self._entries.values()), len(self._entries))

    async def set(
        self,
        container_id: str,
        pod_ip: ipaddress.IPv4Address,
        mappings: Iterable[PortMapping],
        pod: str = "",
    ) -> bool:
        """Make `container_id`'s mappings exactly `mappings` (empty: none). Returns
        whether anything changed. A repeated ADD with the same mappings is a no-op."""
        wanted = tuple(mappings)
        if not _CONTAINER_ID.match(container_id):
            raise HostPortError(f"invalid container id {container_id!r}")
        async with self._lock:
            current = self._entries.get(container_id)
            if not wanted:
                if current is None:
                    return False
                return await self._remove_locked(container_id)
            if current is not None and current.pod_ip == pod_ip and current.mappings == wanted:
                return False
            entry = HostPortEntry(
                container_id, pod_ip, wanted,
                current.added_ns if current is not None else self._clock_ns(), pod,
            )
            self._entries[container_id] = entry
            try:
                await self._apply()
            except BaseException:
                # Keep memory in step with the kernel: the failed script changed nothing.
                if current is None:
                    del self._entries[container_id]
                else:
                    self._entries[container_id] = current
                raise
            await asyncio.to_thread(self._write, entry)
            return True

    async def remove(self, container_id: str) -> bool:
        async with self._lock:
            if container_id not in self._entries:
                return False
            return await self._remove_locked(container_id)

    async def retain(self, container_ids: Iterable[str]) -> list[str]:
        """Forget every sandbox not in `container_ids` (reconcile after a crash that
        skipped CNI DEL); returns the forgotten ids."""
        keep = set(container_ids)
        async with self._lock:
            gone = [cid for cid in self._entries if cid not in keep]
            if not gone:
                return []
            saved = dict(self._entries)
            for cid in gone:
                del self._entries[cid]
            try:
                await self._apply()
            except BaseException:
                self._entries = saved
                raise
            for cid in gone:
                await asyncio.to_thread(self._unlink, cid)
            return gone

    async def _remove_locked(self, container_id: str) -> bool:
        entry = self._entries.pop(container_id)
        try:
            await self._apply()
        except BaseException:
            self._entries[container_id] = entry
            raise
        await asyncio.to_thread(self._unlink, container_id)
        return True

    async def _apply(self) -> None:
        if self._entries and await self._runner.enable_route_localnet(self._bridge):
            log.info("hostports: enabled route_localnet on %s for 127.0.0.1:<hostPort>",
                     self._bridge)
        await self._runner.run_script(render_apply(
            self._table, self._bridge, self._pod_subnet, self._entries.values()
        ))

    def _path(self, container_id: str) -> Path:
        return self._dir / f"{container_id}.json"

    def _load(self) -> dict[str, HostPortEntry]:
        out: dict[str, HostPortEntry] = {}
        if not self._dir.is_dir():
            return out
        for path in sorted(self._dir.glob("*.json")):
            try:
                entry = entry_from_json(json.loads(path.read_text()))
            except (OSError, ValueError, HostPortError) as e:
                # One unreadable file must not cost every other pod its hostPorts.
                log.warning("hostports: ignoring %s: %s", path, e)
                continue
            if entry.mappings and path.stem == entry.container_id:
                out[entry.container_id] = entry
        return out

    def _write(self, entry: HostPortEntry) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        path = self._path(entry.container_id)
        tmp = path.with_name(f".{path.name}.tmp")
        data = (json.dumps(entry.to_json(), indent=1) + "\n").encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(fd)
        os.replace(tmp, path)

    def _unlink(self, container_id: str) -> None:
        self._path(container_id).unlink(missing_ok=True)
