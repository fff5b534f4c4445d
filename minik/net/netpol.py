"""NetworkPolicy rules in minik's nftables table: per-pod allow chains behind two verdict maps.

Role: turn per-pod allow lists (computed by `minik.agent.netpolicy` from NetworkPolicies, Pods
and Namespaces) into nftables rules, and keep the kernel in step with the fewest changes.

Layout, all inside minik's own `table ip <table>` (other chains of the table are never touched;
every name here starts with `netpol-`):
  netpol-ingress         map ipv4_addr : verdict, one element per ingress-isolated local pod
                         (`<pod IP> : jump netpol-in-<pod IP>`)
  netpol-egress          the same for egress-isolated local pods (`netpol-out-<pod IP>`)
  netpol-forward         filter/forward: established/related accepted first (replies of allowed
                         connections are always allowed, as Kubernetes requires), then the
                         egress check of the sender, then the ingress check of the receiver.
                         Pod-to-pod traffic on one node is bridged: it reaches this hook only
                         with br_netfilter and `net.bridge.bridge-nf-call-iptables=1`
                         (`ensure_bridge_netfilter`). Traffic through a Service VIP was DNATed
                         at prerouting, so this hook sees the real pod address and port, which
                         is what NetworkPolicy is evaluated against.
  netpol-input           filter/input: the egress check for traffic from a pod to the node
                         itself (the node's addresses, the cluster DNS served by the daemon).
  netpol-in-<ip> / netpol-out-<ip>
                         one chain per isolated pod and direction: one rule per allowed
                         (peers, protocol, ports) with `accept` (ingress) or `return` (egress,
                         so the receiver's ingress check still runs), then `drop`.
Traffic from the node to its pods (probes, `curl <pod IP>` on the host) never passes the
forward hook and stays allowed, as Kubernetes requires for a pod's own node.

`Allow.original` rules match the connection's original destination (`ct original ip daddr` /
`ct original proto-dst`): that is how an egress rule admits DNS to the cluster DNS IP however
the daemon serves it (an address on a local interface, or a local DNAT to another port).

`render(old, new)` is pure: with `old=None` it renders a full resync (maps flushed, stale
`netpol-*` chains found in the kernel deleted); otherwise only the chains whose rules changed
are rewritten and map elements are diffed. The script runs as one `nft -f -` transaction.

Neighbours: `minik.agent.netpol` (the enforcer: informers → planner → `NetpolTable.sync`),
`minik.net.nft` (`Nft.run_script` runs the scripts; the egress chains there are not touched).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

PROTOCOLS = ("tcp", "udp", "sctp")
INGRESS_MAP = "netpol-ingress"
EGRESS_MAP = "netpol-egress"
BASE_CHAINS = ("netpol-forward", "netpol-input")
BRIDGE_NF = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
_CHAIN_LINE = re.compile(r"^\s*chain (netpol-(?:in|out)-[0-9-]+) \{", re.M)


class NetpolError(Exception):
    """Bad names, or the rules could not be applied."""


@dataclass(frozen=True, slots=True, order=True)
class PortRange:
    """One protocol and an inclusive port range; `first is None` means every port."""

    protocol: str                 # tcp, udp, sctp
    first: int | None = None
    last: int | None = None

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise NetpolError(f"unsupported protocol {self.protocol!r}")
        if self.first is not None:
            last = self.first if self.last is None else self.last
            if not 0 < self.first <= last <= 65535:
                raise NetpolError(f"invalid port range {self.first}-{last}")

    @property
    def end(self) -> int | None:
        return self.first if self.last is None else self.last


@dataclass(frozen=True, slots=True)
class Allow:
    """Traffic one isolated pod accepts (ingress) or may send (egress).

    `peers`: the other side's addresses (sources for ingress, destinations for egress), already
    collapsed; None is every address, () matches nothing. `ports`: empty is every port and
    protocol. `original`: match the original destination of the connection (before DNAT)."""

    peers: tuple[ipaddress.IPv4Network, ...] | None = None
    ports: tuple[PortRange, ...] = ()
    original: bool = False


@dataclass(frozen=True, slots=True)
class PodRules:
    """The policy of one local pod: None for a direction in which it is not isolated."""

    ip: ipaddress.IPv4Address
    ingress: tuple[Allow, ...] | None = None
    egress: tuple[Allow, ...] | None = None


@dataclass(frozen=True, slots=True)
class Rendered:
    """What a ruleset looks like in the kernel: chain name → rule bodies, map → elements."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ingress: Mapping[str, str] = field(default_factory=dict)   # pod IP → chain
    egress: Mapping[str, str] = field(default_factory=dict)


def chain_name(direction: str, ip: ipaddress.IPv4Address) -> str:
    return f"netpol-{direction}-{str(ip).replace('.', '-')}"


def _set(items: Iterable[str]) -> str:
    values = list(items)
    return values[0] if len(values) == 1 else "{ " + ", ".join(values) + " }"


def _port_text(p: PortRange) -> str:
    return str(p.first) if p.end == p.first else f"{p.first}-{p.end}"


def allow_rules(allow: Allow, egress: bool) -> list[str]:
    """The rule bodies (without verdict) of one Allow; [] when it can match nothing."""
    if allow.peers is not None and not allow.peers:
        return []
    if allow.original:
        # One rule per protocol and port: `ct original proto-dst` has no usable set type in
        # nft 1.0.6 (elements are printed and compared as raw integers).
        nets = "" if allow.peers is None else f"ct original ip daddr {_set(str(n) for n in allow.peers)} "
        out = []
        for p in sorted(set(allow.ports)):
            if p.first is None:
                out.append(f"{nets}meta l4proto {p.protocol}")
            else:
                for port in range(p.first, (p.end or p.first) + 1):
                    out.append(f"{nets}meta l4proto {p.protocol} ct original proto-dst {port}")
        return out or ([nets.strip()] if nets else [""])
    addr = "daddr" if egress else "saddr"
    nets = "" if allow.peers is None else f"ip {addr} {_set(str(n) for n in allow.peers)} "
    if not allow.ports:
        return [nets.strip()]
    out = []
    for proto in PROTOCOLS:
        ranges = sorted({p for p in allow.ports if p.protocol == proto}, key=lambda p: (p.first or 0, p.end or 0))
        if not ranges:
            continue
        if any(p.first is None for p in ranges):
            out.append(f"{nets}meta l4proto {proto}")
        else:
            out.append(f"{nets}meta l4proto {proto} th dport {_set(_port_text(p) for p in _merge(ranges))}")
    return out


def _merge(ranges: list[PortRange]) -> list[PortRange]:
    """Overlapping or touching ranges of one protocol joined (nft rejects overlapping set
    elements in an anonymous interval set)."""
    out: list[PortRange] = []
    for r in ranges:
        assert r.first is not None and r.end is not None
        if out and out[-1].end is not None and r.first <= out[-1].end + 1:
            prev = out[-1]
            assert prev.first is not None and prev.end is not None
            out[-1] = PortRange(prev.protocol, prev.first, max(prev.end, r.end))
        else:
            out.append(r)
    return out


_TextCache = dict[tuple[int, tuple[PortRange, ...], bool, bool], list[str]]


def pod_chain(allows: tuple[Allow, ...], egress: bool, cache: _TextCache | None = None) -> tuple[str, ...]:
    """The rules of one pod's chain. `cache`: rule text by (peer tuple identity, ports, …), as
    many pods share one rule's peers (one selector's pods rendered once per build)."""
    verdict = "return" if egress else "accept"
    rules: dict[str, None] = {}
    for a in allows:
        if cache is not None:
            key = (id(a.peers), a.ports, a.original, egress)
            bodies = cache.get(key)
            if bodies is None:
                bodies = cache[key] = allow_rules(a, egress)
        else:
            bodies = allow_rules(a, egress)
        for body in bodies:
            rule = f"{body} {verdict}".strip()
            rules.setdefault(rule, None)
            if rule == verdict:
                # Everything is allowed; later rules and the drop can never be reached.
                return tuple(rules)
    rules.setdefault("counter drop", None)
    return tuple(rules)


def build(pods: Iterable[PodRules]) -> Rendered:
    chains: dict[str, tuple[str, ...]] = {}
    ingress: dict[str, str] = {}
    egress: dict[str, str] = {}
    pods = list(pods)   # keeps the peer tuples alive: the text cache is keyed by their identity
    cache: _TextCache = {}
    for p in pods:
        if p.ingress is not None:
            name = chain_name("in", p.ip)
            chains[name] = pod_chain(p.ingress, egress=False, cache=cache)
            ingress[str(p.ip)] = name
        if p.egress is not None:
            name = chain_name("out", p.ip)
            chains[name] = pod_chain(p.egress, egress=True, cache=cache)
            egress[str(p.ip)] = name
    return Rendered(chains, ingress, egress)


def _check(table: str, bridge: str) -> None:
    if not _TABLE.match(table):
        raise NetpolError(f"invalid nft table name {table!r}")
    if not _IFNAME.match(bridge):
        raise NetpolError(f"invalid bridge name {bridge!r}")


def render(table: str, bridge: str, old: Rendered | None, new: Rendered,
           stale_chains: Iterable[str] = ()) -> str:
    """The `nft -f` script taking the kernel from `old` (None: unknown, resync everything) to
    `new`; "" when nothing changes. `stale_chains`: netpol chains found in the kernel on a
    resync (left by an earlier run), deleted unless still wanted."""
    _check(table, bridge)
    t = f"ip {table}"
    lines: list[str] = []
    full = old is None
    prev = old if old is not None else Rendered()
    if full:
        lines += [
            f"add table {t}",
            f"add map {t} {INGRESS_MAP} {{ type ipv4_addr : verdict; }}",
            f"add map {t} {EGRESS_MAP} {{ type ipv4_addr : verdict; }}",
            f"flush map {t} {INGRESS_MAP}",
            f"flush map {t} {EGRESS_MAP}",
            # Priority filter (0), like the pod-forward chain of minik.net.nft: an accept there
            # does not skip this chain (every base chain on a hook has its say), a drop here
            # is final.
            f"add chain {t} netpol-forward {{ type filter hook forward priority filter; policy accept; }}",
            f"add chain {t} netpol-input {{ type filter hook input priority filter; policy accept; }}",
            f"flush chain {t} netpol-forward",
            f"flush chain {t} netpol-input",
            f"add rule {t} netpol-forward ct state established,related accept",
            f"add rule {t} netpol-forward ip saddr vmap @{EGRESS_MAP}",
            f"add rule {t} netpol-forward ip daddr vmap @{INGRESS_MAP}",
            f"add rule {t} netpol-input ct state established,related accept",
            f'add rule {t} netpol-input iifname "{bridge}" ip saddr vmap @{EGRESS_MAP}',
        ]
    else:
        # Elements leave their maps before the chains they jump to are deleted or rewritten.
        for mapname, before, after in ((INGRESS_MAP, prev.ingress, new.ingress), (EGRESS_MAP, prev.egress, new.egress)):
            gone = [ip for ip, chain in before.items() if after.get(ip) != chain]
            if gone:
                lines.append(f"delete element {t} {mapname} {{ {', '.join(gone)} }}")
    for name in sorted(new.chains):
        rules = new.chains[name]
        if not full and prev.chains.get(name) == rules:
            continue
        lines += [f"add chain {t} {name}", f"flush chain {t} {name}"]
        lines += [f"add rule {t} {name} {r}" for r in rules]
    for mapname, before, after in ((INGRESS_MAP, prev.ingress, new.ingress), (EGRESS_MAP, prev.egress, new.egress)):
        added = [f"{ip} : jump {chain}" for ip, chain in sorted(after.items()) if full or before.get(ip) != chain]
        if added:
            lines.append(f"add element {t} {mapname} {{ {', '.join(added)} }}")
    dead = set(prev.chains) | set(stale_chains) if not full else set(stale_chains)
    for name in sorted(dead - set(new.chains)):
        lines.append(f"delete chain {t} {name}")
    return "\n".join(lines) + "\n" if lines else ""


def render_delete(table: str, pod_chains: Iterable[str] = ()) -> str:
    """Remove every netpol object from the table (the rest of the table stays); `pod_chains`
    are the per-pod chains present (`stale_chains` of a listing)."""
    if not _TABLE.match(table):
        raise NetpolError(f"invalid nft table name {table!r}")
    t = f"ip {table}"
    return "\n".join([
        f"add table {t}",
        *(f"add chain {t} {c}" for c in BASE_CHAINS),
        *(f"delete chain {t} {c}" for c in BASE_CHAINS),
        f"add map {t} {INGRESS_MAP} {{ type ipv4_addr : verdict; }}",
        f"add map {t} {EGRESS_MAP} {{ type ipv4_addr : verdict; }}",
        f"delete map {t} {INGRESS_MAP}",
        f"delete map {t} {EGRESS_MAP}",
        *(f"delete chain {t} {c}" for c in pod_chains),
    ]) + "\n"


def stale_chains(listing: str) -> list[str]:
    """The per-pod netpol chains in an `nft list table` listing."""
    return _CHAIN_LINE.findall(listing)


class ScriptRunner(Protocol):
    """The part of `minik.net.nft.Nft` this module uses (fakes in tests)."""

    async def run_script(self, script: str) -> None: ...
    async def list_table(self, table: str) -> str: ...


class NetpolTable:
    """Keeps the netpol chains of one table equal to the last `sync`ed pod rules.

    The first sync (and the one after any failure) is a full resync in one transaction, so
    a daemon restarted after kill -9 replaces the rules it left without an open window."""

    def __init__(self, runner: ScriptRunner, table: str, bridge: str) -> None:
        _check(table, bridge)
        self._runner, self.table, self.bridge = runner, table, bridge
        self._applied: Rendered | None = None

    @property
    def applied(self) -> Rendered | None:
        return self._applied

    async def sync(self, pods: Iterable[PodRules]) -> bool:
        """Apply; True when a script ran (something changed)."""
        new = build(pods)
        old = self._applied
        stale: list[str] = []
        if old is None:
            try:
                stale = stale_chains(await self._runner.list_table(self.table))
            except Exception as e:   # no table yet: nothing stale (a real error shows below)
                log.debug("listing table %s: %s", self.table, e)
        script = render(self.table, self.bridge, old, new, stale)
        if not script:
            return False
        self._applied = None   # unknown until the transaction succeeded
        await self._runner.run_script(script)
        self._applied = new
        return True

    def reset(self) -> None:
        """Forget what was applied: the next sync is a full resync."""
        self._applied = None

    async def delete(self) -> None:
        try:
            chains = stale_chains(await self._runner.list_table(self.table))
        except Exception:   # no table: nothing to delete but the declarations
            chains = []
        await self._runner.run_script(render_delete(self.table, chains))
        self._applied = None


async def ensure_bridge_netfilter(path: Path = BRIDGE_NF) -> str:
    """Make bridged IPv4 traffic pass the ip family's hooks (pod-to-pod on one bridge).
    Returns what was done ("" when it already was on); raises NetpolError when impossible."""
    def enable() -> str:
        done = ""
        if not path.exists():
            r = subprocess.run(["modprobe", "br_netfilter"], capture_output=True, text=True, check=False)
            if not path.exists():
                raise NetpolError(f"br_netfilter is not available ({r.stderr.strip() or 'modprobe failed'}): "
                                  "NetworkPolicy cannot see pod-to-pod traffic on the bridge")
            done = "loaded br_netfilter; "
        try:
            if path.read_text().strip() != "1":
                path.write_text("1\n")
                done += f"set {path.name}=1"
        except OSError as e:
            raise NetpolError(f"enabling {path}: {e}") from e
        return done

    return await asyncio.to_thread(enable)
