"""Service virtual IPs, NodePorts and ServiceLB ports as nftables rules. Pure.

Role: frozen values describing Services and their ready endpoints go in (`ServiceInfo`),
a `Ruleset` (what minik's table should hold for Services) comes out of `build`, and
`render_full` / `render_diff` turn one or two rulesets into `nft -f` script text. No I/O here:
`minik.net.serviceapply` runs the scripts, `minik.agent.proxier` builds the inputs from the API.

Layout, after kube-proxy's nftables mode, all in minik's own `table ip <table>`, every object
named `svc…` so the pod egress (`pod-*`) and hostPort (`hostports*`) chains are never touched:

  svc-nat-prerouting   nat/prerouting (dstnat)  ─┐  jump svc-services
  svc-nat-output       nat/output (-100)        ─┘  (the node itself reaches ClusterIPs)
  svc-services         `ip daddr . meta l4proto . th dport vmap @svc-ips`, then for local
                       destinations `meta l4proto . th dport vmap @svc-nodeports`
  svc-<ns>/<name>/<proto>/<port>                one chain per Service port: ClientIP
                       affinity lookups, then a uniform random choice of an endpoint chain
                       (`numgen random`; one vmap from 16 endpoints on, see `_spread`)
  svc-ep-<…>/<ip>/<port>                        one chain per endpoint: for pod endpoints the
                       masquerade mark on hairpin (a pod reaching itself through its Service)
                       and on ClusterIP traffic from outside the cluster CIDR; affinity
                       update; DNAT
  svc-ext-<…>          NodePort/LoadBalancer entry: Cluster policy marks for masquerade;
                       Local policy keeps the client address and only uses local endpoints
                       (traffic from the node itself still takes the cluster path, as kube-proxy)
  svc-aff-<…>          dynamic set with timeout per endpoint (sessionAffinity: ClientIP)
  svc-nat-postrouting  masquerade marked packets leaving through this instance's bridge (then clear the mark)

Safety (nothing addressed to the Service CIDR leaves the node), in filter chains because nat
chains cannot reject:
  svc-filter-input / -forward / -output (priority -110, before the output DNAT):
      new connections to a Service port without ready endpoints → `svc-reject`
      (`@svc-no-endpoints`, `@svc-no-endpoint-nodeports`): TCP reset / ICMP port unreachable
  svc-filter-forward and svc-filter-output-post (output priority -90, after DNAT):
      a packet still addressed to an allocated ClusterIP → reject (unserved port);
      any other address in the Service CIDR → drop. Local addresses (the cluster DNS IP when it
      is owned by a local interface) return first.
A Service whose endpoint is its own ClusterIP (the kube-dns Service, served on the node by the
DNS server) gets no rules at all: its traffic must reach the local address untouched.

Incremental updates: `render_diff(old, new)` declares new chains/sets, deletes changed or gone
map elements, rewrites (flush + add) only chains whose rules changed, adds new elements, then
deletes chains and sets that are gone; one script, one transaction.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PROTOCOLS = ("tcp", "udp", "sctp")
MASQ_MARK = 0x4000
SPREAD_VMAP_MIN = 16      # endpoints from which the random spread is one vmap (see `_spread`)
_TABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")

# Chains that belong to the fixed skeleton (declared and flushed by every full sync).
BASE_CHAINS = (
    "svc-nat-prerouting", "svc-nat-output", "svc-nat-postrouting", "svc-services", "svc-mark",
    "svc-reject", "svc-filter-input", "svc-filter-forward", "svc-filter-output",
    "svc-filter-output-post", "svc-endpoints-check", "svc-ips-check",
)
MAPS = ("svc-ips", "svc-nodeports", "svc-no-endpoints", "svc-no-endpoint-nodeports")
CLUSTER_IPS_SET = "svc-cluster-ips"


class ServiceRulesError(ValueError):
    """Input that cannot be rendered safely (bad table name, protocol, address)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    ip: str
    port: int
    local: bool = True          # runs on this node (externalTrafficPolicy: Local)


@dataclass(frozen=True, slots=True)
class ServicePort:
    protocol: str               # tcp, udp, sctp
    port: int
    node_port: int = 0
    endpoints: tuple[Endpoint, ...] = ()   # ready endpoints only


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    namespace: str
    name: str
    cluster_ip: str             # "" for headless: no VIP rules
    ports: tuple[ServicePort, ...]
    affinity_timeout: int = 0   # seconds; 0 = no ClientIP affinity
    external_local: bool = False
    lb_addresses: tuple[str, ...] = ()   # where the LoadBalancer ports are served

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Settings:
    table: str
    service_cidr: str
    cluster_cidr: str
    mark: int = MASQ_MARK
    bridge: str = ""            # the pod bridge: only traffic leaving through it is masqueraded

    def __post_init__(self) -> None:
        if not _TABLE.match(self.table):
            raise ServiceRulesError(f"invalid nft table name {self.table!r}")
        if self.bridge and not _IFNAME.match(self.bridge):
            raise ServiceRulesError(f"invalid bridge name {self.bridge!r}")
        ipaddress.IPv4Network(self.service_cidr)
        ipaddress.IPv4Network(self.cluster_cidr)


@dataclass(frozen=True, slots=True)
class Ruleset:
    """What the Service part of the table holds: per-service chains (name → rule bodies),
    affinity sets (name → timeout), the elements of each map (key → verdict) and the set of
    allocated ClusterIPs."""

    chains: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sets: Mapping[str, int] = field(default_factory=dict)
    maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    cluster_ips: frozenset[str] = frozenset()


def _check_port(p: ServicePort) -> None:
    if p.protocol not in PROTOCOLS:
        raise ServiceRulesError(f"unsupported protocol {p.protocol!r}")
    if not 1 <= p.port <= 65535 or not 0 <= p.node_port <= 65535:
        raise ServiceRulesError(f"port out of range: {p.port}/{p.node_port}")
    for ep in p.endpoints:
        ipaddress.IPv4Address(ep.ip)
        if not 1 <= ep.port <= 65535:
            raise ServiceRulesError(f"endpoint port out of range: {ep.port}")


def _check_service(s: ServiceInfo) -> None:
    if not (_LABEL.match(s.namespace) and _LABEL.match(s.name)):
        raise ServiceRulesError(f"invalid service name {s.key!r}")
    if s.cluster_ip:
        ipaddress.IPv4Address(s.cluster_ip)
    for a in s.lb_addresses:
        ipaddress.IPv4Address(a)
    for p in s.ports:
        _check_port(p)


def self_served(s: ServiceInfo) -> bool:
    """The Service's endpoint is its own ClusterIP (kube-dns served on the node): no rules."""
    return bool(s.cluster_ip) and any(ep.ip == s.cluster_ip for p in s.ports for ep in p.endpoints)


def port_chain(s: ServiceInfo, p: ServicePort) -> str:
    return f"svc-{s.namespace}/{s.name}/{p.protocol}/{p.port}"


def endpoint_chain(s: ServiceInfo, p: ServicePort, ep: Endpoint) -> str:
    return f"svc-ep-{s.namespace}/{s.name}/{p.protocol}/{p.port}/{ep.ip}/{ep.port}"


def external_chain(s: ServiceInfo, p: ServicePort) -> str:
    return f"svc-ext-{s.namespace}/{s.name}/{p.protocol}/{p.port}"


def local_chain(s: ServiceInfo, p: ServicePort) -> str:
    return f"svc-local-{s.namespace}/{s.name}/{p.protocol}/{p.port}"


def affinity_set(s: ServiceInfo, p: ServicePort, ep: Endpoint) -> str:
    # The timeout is part of the name: an existing set's timeout cannot be changed in place.
    return f"svc-aff-{s.namespace}/{s.name}/{p.protocol}/{p.port}/{ep.ip}/{ep.port}/{s.affinity_timeout}"


def _spread(targets: list[str]) -> list[str]:
    """Uniform random choice among endpoint chains.

    Up to SPREAD_VMAP_MIN endpoints: rule i jumps with probability 1/(N-i) (`numgen random`
    draws anew in every rule), the last one takes the rest. From SPREAD_VMAP_MIN on: one
    `numgen random mod N vmap { … }`, O(1) per new connection. Why not the vmap always:
    each is an anonymous set, and `nft` loads every set of the table into its cache for each
    transaction; measured with 6,000 two-endpoint Services, a full load took 5.5 s with vmaps
    and 2.2 s with rules, and a one-Service update 0.23–0.34 s against 0.09–0.11 s."""
    n = len(targets)
    if n == 1:
        return [f"goto {targets[0]}"]
    if n >= SPREAD_VMAP_MIN:
        arms = ", ".join(f"{i} : goto {t}" for i, t in enumerate(targets))
        return [f"numgen random mod {n} vmap {{ {arms} }}"]
    return [f"numgen random mod {n - i} == 0 goto {t}" for i, t in enumerate(targets[:-1])] + [f"goto {targets[-1]}"]


def build(services: Iterable[ServiceInfo], settings: Settings) -> Ruleset:
    """The complete desired Service ruleset (pure)."""
    chains: dict[str, tuple[str, ...]] = {}
    sets: dict[str, int] = {}
    maps: dict[str, dict[str, str]] = {m: {} for m in MAPS}
    cluster_ips: set[str] = set()
    for s in sorted(services, key=lambda x: x.key):
        _check_service(s)
        if self_served(s):
            continue
        if s.cluster_ip:
            cluster_ips.add(s.cluster_ip)
        for p in s.ports:
            _build_port(s, p, settings, chains, sets, maps)
    return Ruleset(chains, sets, maps, frozenset(cluster_ips))


def _build_port(s: ServiceInfo, p: ServicePort, settings: Settings, chains: dict[str, tuple[str, ...]],
                sets: dict[str, int], maps: dict[str, dict[str, str]]) -> None:
    eps = sorted(set(p.endpoints), key=lambda e: (ipaddress.IPv4Address(e.ip), e.port))
    external = [f"{a} . {p.protocol} . {p.port}" for a in s.lb_addresses]
    if not eps:
        # No ready endpoint: new connections are refused on the node (fail fast), never routed.
        if s.cluster_ip:
            maps["svc-no-endpoints"][f"{s.cluster_ip} . {p.protocol} . {p.port}"] = "goto svc-reject"
        for key in external:
            maps["svc-no-endpoints"][key] = "goto svc-reject"
        if p.node_port:
            maps["svc-no-endpoint-nodeports"][f"{p.protocol} . {p.node_port}"] = "goto svc-reject"
        return
    ep_chains: list[str] = []
    local_eps: list[str] = []
    cluster_net = ipaddress.IPv4Network(settings.cluster_cidr)
    for ep in eps:
        name = endpoint_chain(s, p, ep)
        rules = []
        pod = ipaddress.IPv4Address(ep.ip) in cluster_net
        if pod:
            rules.append(f"ip saddr {ep.ip} jump svc-mark")   # hairpin: the reply must come back to us
        if s.cluster_ip and pod:
            # ClusterIP traffic to a pod from outside the pod network (the node itself, other
            # hosts) is masqueraded so replies come back through this node (kube-proxy's cluster
            # CIDR rule). An endpoint outside the pod network (the API server on a node address)
            # needs none: its replies come back by themselves.
            rules.append(f"ip daddr {s.cluster_ip} {p.protocol} dport {p.port} "
                         f"ip saddr != {settings.cluster_cidr} jump svc-mark")
        if s.affinity_timeout:
            aff = affinity_set(s, p, ep)
            sets[aff] = s.affinity_timeout
            rules.append(f"update @{aff} {{ ip saddr }}")
        rules.append(f"meta l4proto {p.protocol} dnat to {ep.ip}:{ep.port}")
        chains[name] = tuple(rules)
        ep_chains.append(name)
        if ep.local:
            local_eps.append(name)
    svc_chain = port_chain(s, p)
    rules = []
    if s.affinity_timeout:
        rules += [f"ip saddr @{affinity_set(s, p, ep)} goto {endpoint_chain(s, p, ep)}" for ep in eps]
    rules += _spread(ep_chains)
    chains[svc_chain] = tuple(rules)
    if s.cluster_ip:
        maps["svc-ips"][f"{s.cluster_ip} . {p.protocol} . {p.port}"] = f"goto {svc_chain}"
    if not (p.node_port or external):
        return
    ext = external_chain(s, p)
    if s.external_local:
        # The client address is kept; only endpoints on this node may answer. Traffic the node
        # sends itself has a local source and takes the cluster path (masqueraded).
        ext_rules = [f"fib saddr type local jump svc-mark", f"fib saddr type local goto {svc_chain}"]
        if local_eps:
            local = local_chain(s, p)
            chains[local] = tuple(_spread(local_eps))
            ext_rules.append(f"goto {local}")
        else:
            ext_rules.append("drop")
        chains[ext] = tuple(ext_rules)
    else:
        chains[ext] = ("jump svc-mark", f"goto {svc_chain}")
    if p.node_port:
        maps["svc-nodeports"][f"{p.protocol} . {p.node_port}"] = f"goto {ext}"
    for key in external:
        maps["svc-ips"][key] = f"goto {ext}"


def _skeleton(settings: Settings) -> list[str]:
    """Declare and fill the fixed chains, maps and sets (idempotent: `add` + `flush`)."""
    t = f"ip {settings.table}"
    mark = f"0x{settings.mark:x}"
    lines = [f"add table {t}"]
    lines += [
        f"add map {t} svc-ips {{ type ipv4_addr . inet_proto . inet_service : verdict; }}",
        f"add map {t} svc-nodeports {{ type inet_proto . inet_service : verdict; }}",
        f"add map {t} svc-no-endpoints {{ type ipv4_addr . inet_proto . inet_service : verdict; }}",
        f"add map {t} svc-no-endpoint-nodeports {{ type inet_proto . inet_service : verdict; }}",
        f"add set {t} {CLUSTER_IPS_SET} {{ type ipv4_addr; }}",
        f"add chain {t} svc-nat-prerouting {{ type nat hook prerouting priority dstnat; policy accept; }}",
        # nft 1.0.6 accepts the `dstnat` keyword only at prerouting; -100 is its value.
        f"add chain {t} svc-nat-output {{ type nat hook output priority -100; policy accept; }}",
        f"add chain {t} svc-nat-postrouting {{ type nat hook postrouting priority srcnat; policy accept; }}",
        f"add chain {t} svc-filter-input {{ type filter hook input priority -110; policy accept; }}",
        f"add chain {t} svc-filter-forward {{ type filter hook forward priority -110; policy accept; }}",
        f"add chain {t} svc-filter-output {{ type filter hook output priority -110; policy accept; }}",
        f"add chain {t} svc-filter-output-post {{ type filter hook output priority -90; policy accept; }}",
        f"add chain {t} svc-services",
        f"add chain {t} svc-mark",
        f"add chain {t} svc-reject",
        f"add chain {t} svc-endpoints-check",
        f"add chain {t} svc-ips-check",
    ]
    lines += [f"flush chain {t} {c}" for c in BASE_CHAINS]
    lines += [
        f"add rule {t} svc-nat-prerouting jump svc-services",
        f"add rule {t} svc-nat-output jump svc-services",
        f"add rule {t} svc-services ip daddr . meta l4proto . th dport vmap @svc-ips",
        f"add rule {t} svc-services fib daddr type local meta l4proto . th dport vmap @svc-nodeports",
        f"add rule {t} svc-mark meta mark set meta mark | {mark}",
        f"add rule {t} svc-nat-postrouting meta mark & {mark} == 0 return",
        # Only what goes to this instance's pods is masqueraded. An endpoint on the node itself
        # (the API server behind `kubernetes`) answers over lo without it, and masquerading out
        # of lo would pick whatever address lo holds (other instances' DNS IPs live there),
        # breaking UDP replies. The mark bit is shared by every instance on the host, so this
        # also keeps one instance's rules from acting on another's packets.
        # (Checked before the mark is cleared: another instance's chain may run after ours.)
        f'add rule {t} svc-nat-postrouting oifname != "{settings.bridge}" return' if settings.bridge
        else f'add rule {t} svc-nat-postrouting oifname "lo" return',
        f"add rule {t} svc-nat-postrouting meta mark set meta mark & 0x{~settings.mark & 0xFFFFFFFF:x}",
        f"add rule {t} svc-nat-postrouting masquerade",
        f"add rule {t} svc-reject meta l4proto tcp reject with tcp reset",
        f"add rule {t} svc-reject reject",
        f"add rule {t} svc-endpoints-check ip daddr . meta l4proto . th dport vmap @svc-no-endpoints",
        f"add rule {t} svc-endpoints-check fib daddr type local meta l4proto . th dport "
        "vmap @svc-no-endpoint-nodeports",
        f"add rule {t} svc-ips-check fib daddr type local return",
        f"add rule {t} svc-ips-check ip daddr @{CLUSTER_IPS_SET} jump svc-reject",
        f"add rule {t} svc-ips-check ip daddr {settings.service_cidr} drop",
        f"add rule {t} svc-filter-input ct state new jump svc-endpoints-check",
        f"add rule {t} svc-filter-forward ct state new jump svc-endpoints-check",
        # Not only new connections: no packet still addressed to the Service CIDR after DNAT
        # may be routed out (established ones were rewritten to their endpoint by now).
        f"add rule {t} svc-filter-forward jump svc-ips-check",
        f"add rule {t} svc-filter-output ct state new jump svc-endpoints-check",
        f"add rule {t} svc-filter-output-post jump svc-ips-check",
    ]
    return lines


def render_skeleton(settings: Settings) -> str:
    """Only the fixed part (safety rules on, Service chains and map elements untouched)."""
    return "\n".join(_skeleton(settings) + [""])


def _chain_lines(t: str, name: str, rules: tuple[str, ...]) -> list[str]:
    return [f"flush chain {t} {name}"] + [f"add rule {t} {name} {r}" for r in rules]


def render_full(new: Ruleset, settings: Settings, stale_chains: Iterable[str] = (),
                stale_sets: Iterable[str] = ()) -> str:
    """Full resync: skeleton, maps refilled, every service chain rewritten, and the `svc-*`
    chains/sets found in the kernel but not wanted (`stale_*`, from a previous run) deleted."""
    t = f"ip {settings.table}"
    lines = _skeleton(settings)
    lines += [f"add chain {t} {c}" for c in sorted(new.chains)]
    lines += [f"add set {t} {s} {{ type ipv4_addr; flags dynamic,timeout; timeout {tmo}s; }}"
              for s, tmo in sorted(new.sets.items())]
    lines += [f"flush map {t} {m}" for m in MAPS]
    lines.append(f"flush set {t} {CLUSTER_IPS_SET}")
    for name in sorted(new.chains):
        lines += _chain_lines(t, name, new.chains[name])
    lines += _element_lines("add", t, new)
    gone = sorted(set(stale_chains) - set(new.chains) - set(BASE_CHAINS))
    lines += [f"flush chain {t} {c}" for c in gone]
    lines += [f"delete chain {t} {c}" for c in gone]
    lines += [f"delete set {t} {s}" for s in sorted(set(stale_sets) - set(new.sets) - {CLUSTER_IPS_SET})]
    lines.append("")
    return "\n".join(lines)


def _element_lines(verb: str, t: str, rs: Ruleset) -> list[str]:
    out = []
    for m in MAPS:
        elems = rs.maps.get(m) or {}
        if elems:
            body = ", ".join(f"{k} : {v}" for k, v in sorted(elems.items()))
            out.append(f"{verb} element {t} {m} {{ {body} }}")
    if rs.cluster_ips:
        out.append(f"{verb} element {t} {CLUSTER_IPS_SET} {{ {', '.join(sorted(rs.cluster_ips))} }}")
    return out


def render_diff(old: Ruleset, new: Ruleset, settings: Settings) -> str:
    """Only what changed from `old` (what the kernel holds) to `new`; "" when nothing did."""
    t = f"ip {settings.table}"
    lines: list[str] = []
    added_chains = sorted(set(new.chains) - set(old.chains))
    removed_chains = sorted(set(old.chains) - set(new.chains))
    changed_chains = sorted(c for c in set(new.chains) & set(old.chains) if new.chains[c] != old.chains[c])
    lines += [f"add chain {t} {c}" for c in added_chains]
    lines += [f"add set {t} {s} {{ type ipv4_addr; flags dynamic,timeout; timeout {tmo}s; }}"
              for s, tmo in sorted(new.sets.items()) if s not in old.sets]
    dels: dict[str, dict[str, str]] = {}
    adds: dict[str, dict[str, str]] = {}
    for m in MAPS:
        o, n = old.maps.get(m) or {}, new.maps.get(m) or {}
        dels[m] = {k: v for k, v in o.items() if n.get(k) != v}
        adds[m] = {k: v for k, v in n.items() if o.get(k) != v}
    ip_del = old.cluster_ips - new.cluster_ips
    ip_add = new.cluster_ips - old.cluster_ips
    lines += _element_lines("delete", t, Ruleset(maps=dels, cluster_ips=ip_del))
    for name in added_chains + changed_chains:
        lines += _chain_lines(t, name, new.chains[name])
    lines += _element_lines("add", t, Ruleset(maps=adds, cluster_ips=ip_add))
    lines += [f"flush chain {t} {c}" for c in removed_chains]
    lines += [f"delete chain {t} {c}" for c in removed_chains]
    lines += [f"delete set {t} {s}" for s in sorted(set(old.sets) - set(new.sets))]
    if not lines:
        return ""
    lines.append("")
    return "\n".join(lines)


def changed_services(old: Ruleset, new: Ruleset) -> int:
    """How many chains a diff rewrites (for logs and the benchmark)."""
    return sum(1 for c in set(old.chains) | set(new.chains) if old.chains.get(c) != new.chains.get(c))


@dataclass(frozen=True, slots=True)
class StaleFlow:
    """UDP conntrack entries that must go: original destination port `dport` (on `daddr`, or on
    any address for a NodePort when `daddr` is ""), and when `reply_saddr` is set only those
    answered by that (removed) endpoint address and port."""

    daddr: str
    dport: int
    reply_saddr: str = ""
    reply_sport: int = 0


def stale_udp_flows(old: ServiceInfo | None, new: ServiceInfo | None) -> list[StaleFlow]:
    """What kube-proxy clears after a change (UDP has no connection end, so a flow keeps its NAT
    until conntrack forgets it): flows to endpoints that were removed, and flows to a port that
    had no endpoint (they were rejected without NAT and would keep bypassing the new DNAT)."""
    if old is None:
        return []
    new_ports = {(p.protocol, p.port): p for p in new.ports} if new is not None else {}
    out: list[StaleFlow] = []
    for p in old.ports:
        if p.protocol != "udp":
            continue
        after = new_ports.get((p.protocol, p.port))
        before_ips = {(e.ip, e.port) for e in p.endpoints}
        after_ips = {(e.ip, e.port) for e in after.endpoints} if after is not None else set()
        targets = [(old.cluster_ip, p.port)] if old.cluster_ip else []
        if p.node_port:
            targets.append(("", p.node_port))
        for daddr, dport in targets:
            if not before_ips and after_ips:
                out.append(StaleFlow(daddr, dport))
            out += [StaleFlow(daddr, dport, ip, port) for ip, port in sorted(before_ips - after_ips)]
    return out
