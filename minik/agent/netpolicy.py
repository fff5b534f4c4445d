"""NetworkPolicy planner (pure): policies + pods + namespaces → what each local pod allows.

Role: the semantics of networking.k8s.io/v1 NetworkPolicy, as the Kubernetes documentation and
API reference define them, for the pods of one node:
- A pod is isolated for ingress (egress) when some policy in its namespace selects it by
  `spec.podSelector` and lists `Ingress` (`Egress`) in `policyTypes` (the API server defaults
  policyTypes: Ingress always, Egress when egress rules exist). A pod selected by no policy is
  not isolated. Policies are additive: the allow list is the union over every selecting policy.
  A selecting policy with no rules of a direction it isolates is a default deny.
- A rule's peers (`from`/`to`): absent or empty = every address; `podSelector` alone = pods of
  the policy's namespace; `namespaceSelector` alone = every pod of the matching namespaces;
  both = pods matching the podSelector in the matching namespaces; `ipBlock` = the CIDR minus
  its `except` entries. Namespaces carry the implicit `kubernetes.io/metadata.name` label.
- A rule's ports: absent or empty = every port; `port` by number (with `endPort` a range) or by
  name. A named port is resolved on the pod that serves it: for ingress the isolated pod's own
  container ports, for egress the container ports of each destination pod.
- Cluster DNS is served by the daemon at the cluster DNS IP, not by pods: it stands in for a
  pod labelled `k8s-app: kube-dns` in `kube-system` with ports `dns` (UDP 53) and `dns-tcp`
  (TCP 53), so both "allow DNS" idioms (port 53 to anywhere, or to the kube-dns pods) admit
  queries to the DNS IP, matched on the connection's original destination.
- Only pods with an IP, on the pod network (not hostNetwork), not finished, are peers; only
  those bound to this node get rules (the node that hosts a pod enforces its policy).
Malformed policies (they passed validation, so only an old stored object) are skipped.

Neighbours: `minik.agent.netpol` (the enforcer) calls `plan()` with informer caches and hands the
result to `minik.net.netpol.NetpolTable`; tests in tests/unit/agent/test_netpolicy.py.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from minik.apis.selectors import LabelSelector, SelectorError
from minik.net.netpol import PROTOCOLS, Allow, PodRules, PortRange

log = logging.getLogger(__name__)

Obj = Mapping[str, Any]
NAME_LABEL = "kubernetes.io/metadata.name"
DNS_NAMESPACE = "kube-system"
DNS_LABELS: Mapping[str, str] = {"k8s-app": "kube-dns"}
DNS_PORTS: Mapping[str, tuple[str, int]] = {"dns": ("udp", 53), "dns-tcp": ("tcp", 53)}
_ALL = ipaddress.IPv4Network("0.0.0.0/0")


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    ip: ipaddress.IPv4Address
    labels: Mapping[str, str]
    node: str
    named_ports: Mapping[str, tuple[tuple[str, int], ...]]   # name → ((protocol, port), …)


@dataclass(frozen=True, slots=True)
class Peer:
    ip_nets: tuple[ipaddress.IPv4Network, ...] | None     # ipBlock (cidr minus except)
    pods: LabelSelector | None                             # None with namespaces set: every pod
    namespaces: LabelSelector | None                       # None: the policy's own namespace


@dataclass(frozen=True, slots=True)
class PortSpec:
    protocol: str
    number: int | None = None
    end: int | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    peers: tuple[Peer, ...]        # () = every address
    ports: tuple[PortSpec, ...]    # () = every port


@dataclass(frozen=True, slots=True)
class Policy:
    namespace: str
    name: str
    selector: LabelSelector
    ingress: tuple[Rule, ...] | None   # None: does not isolate ingress
    egress: tuple[Rule, ...] | None


@dataclass(frozen=True, slots=True)
class Cluster:
    """The inputs of one plan, indexed once."""

    pods: tuple[PodInfo, ...]
    namespaces: Mapping[str, Mapping[str, str]]   # namespace → labels (with the name label)
    dns_ip: ipaddress.IPv4Address | None
    by_namespace: Mapping[str, tuple[PodInfo, ...]]


# ---- parsing (API objects → values) --------------------------------------------------------------

def pod_info(pod: Obj) -> PodInfo | None:
    """A pod as a peer, or None when it is not on the pod network with an address."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    if spec.get("hostNetwork") or status.get("phase") in ("Succeeded", "Failed"):
        return None
    try:
        ip = ipaddress.IPv4Address(str(status.get("podIP") or ""))
    except ValueError:
        return None
    ports: dict[str, list[tuple[str, int]]] = {}
    for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
        for p in (c.get("ports") or []) if isinstance(c, Mapping) else []:
            proto = str(p.get("protocol") or "TCP").lower() if isinstance(p, Mapping) else ""
            if proto in PROTOCOLS and p.get("name") and isinstance(p.get("containerPort"), int) and 0 < p["containerPort"] < 65536:
                ports.setdefault(str(p["name"]), []).append((proto, p["containerPort"]))
    labels = meta.get("labels") or {}
    return PodInfo(str(meta.get("namespace") or ""), str(meta.get("name") or ""), ip,
                   {str(k): str(v) for k, v in labels.items()}, str(spec.get("nodeName") or ""),
                   {k: tuple(v) for k, v in ports.items()})


def namespace_labels(ns: Obj) -> tuple[str, dict[str, str]]:
    meta = ns.get("metadata") or {}
    name = str(meta.get("name") or "")
    labels = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    # Set by the API server on every namespace since Kubernetes 1.22; selectors rely on it.
    labels.setdefault(NAME_LABEL, name)
    return name, labels


def _ip_block(block: Obj) -> tuple[ipaddress.IPv4Network, ...] | None:
    """CIDR minus except, collapsed; None for an IPv6 block (minik's pod network is IPv4)."""
    net = ipaddress.ip_network(str(block.get("cidr")), strict=False)
    if not isinstance(net, ipaddress.IPv4Network):
        return None
    nets = [net]
    for raw in block.get("except") or []:
        ex = ipaddress.ip_network(str(raw), strict=False)
        if not isinstance(ex, ipaddress.IPv4Network):
            continue
        out: list[ipaddress.IPv4Network] = []
        for n in nets:
            if ex.supernet_of(n):
                continue
            if n.supernet_of(ex):
                out.extend(n.address_exclude(ex))
            else:
                out.append(n)
        nets = out
    return tuple(ipaddress.collapse_addresses(nets))


def _peer(raw: Obj) -> Peer:
    if raw.get("ipBlock") is not None:
        nets = _ip_block(raw["ipBlock"])
        return Peer(nets if nets is not None else (), None, None)
    pods = LabelSelector.from_api(raw["podSelector"]) if raw.get("podSelector") is not None else None
    nss = LabelSelector.from_api(raw["namespaceSelector"]) if raw.get("namespaceSelector") is not None else None
    if pods is None and nss is None:
        raise ValueError("a peer needs podSelector, namespaceSelector or ipBlock")
    return Peer(None, pods, nss)


def _port(raw: Obj) -> PortSpec:
    proto = str(raw.get("protocol") or "TCP").lower()
    if proto not in PROTOCOLS:
        raise ValueError(f"unsupported protocol {raw.get('protocol')!r}")
    port = raw.get("port")
    if port is None:
        return PortSpec(proto)
    if isinstance(port, str) and not port.isdigit():
        return PortSpec(proto, name=port)
    number = int(port)
    end = int(raw["endPort"]) if raw.get("endPort") is not None else None
    if not 0 < number <= (end if end is not None else number) <= 65535:
        raise ValueError(f"invalid port range {number}-{end}")
    return PortSpec(proto, number, end)


def _rules(raw: Any, peers_key: str) -> tuple[Rule, ...]:
    out = []
    for r in raw or []:
        out.append(Rule(tuple(_peer(p) for p in r.get(peers_key) or []),
                        tuple(_port(p) for p in r.get("ports") or [])))
    return tuple(out)


def parse_policy(obj: Obj) -> Policy | None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
    try:
        types = spec.get("policyTypes") or (["Ingress"] + (["Egress"] if spec.get("egress") else []))
        return Policy(
            ns, name, LabelSelector.from_api(spec.get("podSelector") or {}),
            _rules(spec.get("ingress"), "from") if "Ingress" in types else None,
            _rules(spec.get("egress"), "to") if "Egress" in types else None,
        )
    except (SelectorError, ValueError, TypeError, KeyError, AttributeError) as e:
        log.warning("NetworkPolicy %s/%s is skipped: %s", ns, name, e)
        return None


# ---- evaluation ----------------------------------------------------------------------------------

def _peer_pods(peer: Peer, policy_ns: str, cluster: Cluster) -> list[PodInfo]:
    if peer.namespaces is None:
        namespaces = [policy_ns]
    else:
        sel = peer.namespaces
        namespaces = [ns for ns in cluster.by_namespace
                      if sel.matches(cluster.namespaces.get(ns, {NAME_LABEL: ns}))]
    out = []
    for ns in namespaces:
        for p in cluster.by_namespace.get(ns, ()):
            if peer.pods is None or peer.pods.matches(p.labels):
                out.append(p)
    return out


def _peer_is_dns(peer: Peer, policy_ns: str, cluster: Cluster) -> bool:
    if cluster.dns_ip is None:
        return False
    if peer.ip_nets is not None:
        return any(cluster.dns_ip in n for n in peer.ip_nets)
    if peer.namespaces is None:
        if policy_ns != DNS_NAMESPACE:
            return False
    elif not peer.namespaces.matches(cluster.namespaces.get(DNS_NAMESPACE, {NAME_LABEL: DNS_NAMESPACE})):
        return False
    return peer.pods is None or peer.pods.matches(DNS_LABELS)


def _numeric(ports: Iterable[PortSpec]) -> list[PortRange]:
    return [PortRange(p.protocol, p.number, p.end if p.end is not None else p.number) if p.number is not None
            else PortRange(p.protocol) for p in ports if p.name is None]


def _named_on(spec: PortSpec, named: Mapping[str, tuple[tuple[str, int], ...]]) -> list[PortRange]:
    assert spec.name is not None
    return [PortRange(proto, port, port) for proto, port in named.get(spec.name, ()) if proto == spec.protocol]


def _nets(ips: Iterable[ipaddress.IPv4Address | ipaddress.IPv4Network]) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.collapse_addresses(ipaddress.IPv4Network(i) for i in ips))


def _rule_peers(rule: Rule, policy_ns: str, cluster: Cluster) -> tuple[tuple[ipaddress.IPv4Network, ...] | None, list[PodInfo]]:
    """(peer addresses or None for all, the peer pods named by selectors)."""
    if not rule.peers:
        return None, []
    nets: list[ipaddress.IPv4Network] = []
    pods: dict[ipaddress.IPv4Address, PodInfo] = {}
    for peer in rule.peers:
        if peer.ip_nets is not None:
            nets.extend(peer.ip_nets)
        else:
            for p in _peer_pods(peer, policy_ns, cluster):
                pods[p.ip] = p
    nets.extend(ipaddress.IPv4Network(ip) for ip in pods)
    return tuple(ipaddress.collapse_addresses(nets)), list(pods.values())


def ingress_allows(rule: Rule, peers: tuple[ipaddress.IPv4Network, ...] | None, target: PodInfo) -> list[Allow]:
    """`peers`: the rule's sources (`_rule_peers`, the same for every target pod)."""
    if not rule.ports:
        return [Allow(peers)]
    ports = _numeric(rule.ports)
    for spec in rule.ports:
        if spec.name is not None:
            ports += _named_on(spec, target.named_ports)
    # Only named ports that the pod does not have: the rule matches nothing (not everything).
    return [Allow(peers, tuple(ports))] if ports else []


def egress_allows(rule: Rule, policy_ns: str, cluster: Cluster) -> list[Allow]:
    peers, peer_pods = _rule_peers(rule, policy_ns, cluster)
    out: list[Allow] = []
    numeric = _numeric(rule.ports)
    if not rule.ports:
        out.append(Allow(peers))
    elif numeric:
        out.append(Allow(peers, tuple(numeric)))
    named = [s for s in rule.ports if s.name is not None]
    if named:
        # A named port is the destination pod's: resolve it on every pod the rule can reach.
        if peers is None:
            candidates = list(cluster.pods)
        else:
            by_sel = {p.ip for p in peer_pods}
            candidates = [p for p in cluster.pods if p.ip in by_sel or any(p.ip in n for n in peers)]
        by_port: dict[PortRange, list[ipaddress.IPv4Address]] = {}
        for pod in candidates:
            for spec in named:
                for pr in _named_on(spec, pod.named_ports):
                    by_port.setdefault(pr, []).append(pod.ip)
        for pr in sorted(by_port):
            out.append(Allow(_nets(by_port[pr]), (pr,)))
    dns = _dns_allow(rule, policy_ns, cluster)
    if dns is not None:
        out.append(dns)
    return out


def _dns_allow(rule: Rule, policy_ns: str, cluster: Cluster) -> Allow | None:
    """Queries to the cluster DNS IP, when the rule admits the kube-dns stand-in."""
    if cluster.dns_ip is None:
        return None
    if rule.peers and not any(_peer_is_dns(p, policy_ns, cluster) for p in rule.peers):
        return None
    dns_ports = [PortRange(proto, port, port) for proto, port in DNS_PORTS.values()]
    if rule.ports:
        allowed: list[PortRange] = []
        for spec in rule.ports:
            if spec.name is not None:
                named = DNS_PORTS.get(spec.name)
                if named is not None and named[0] == spec.protocol:
                    allowed.append(PortRange(named[0], named[1], named[1]))
                continue
            lo, hi = spec.number, spec.end if spec.end is not None else spec.number
            for p in dns_ports:
                if spec.protocol == p.protocol and (lo is None or (hi is not None and lo <= 53 <= hi)):
                    allowed.append(p)
        dns_ports = sorted(set(allowed))
    if not dns_ports:
        return None
    return Allow((ipaddress.IPv4Network(cluster.dns_ip),), tuple(dns_ports), original=True)


def plan(policies: Iterable[Obj], pods: Iterable[Obj | PodInfo], namespaces: Iterable[Obj], node: str,
         dns_ip: str | None = None) -> tuple[PodRules, ...]:
    """The rules of every isolated pod on `node`, ordered by pod IP (deterministic output).
    `pods`: API objects, or their `pod_info` already computed (the enforcer keeps them)."""
    parsed = [p for p in (parse_policy(o) for o in policies) if p is not None]
    infos = [i for i in (o if isinstance(o, PodInfo) else pod_info(o) for o in pods) if i is not None]
    # Two pods cannot hold one address; a stale one (IP reused after a restart) loses to the
    # pod on this node, then to the later name, so the output is stable.
    by_ip: dict[ipaddress.IPv4Address, PodInfo] = {}
    for i in sorted(infos, key=lambda i: (i.node == node, i.namespace, i.name)):
        by_ip[i.ip] = i
    grouped: dict[str, list[PodInfo]] = {}
    for i in by_ip.values():
        grouped.setdefault(i.namespace, []).append(i)
    cluster = Cluster(tuple(by_ip.values()), dict(namespace_labels(n) for n in namespaces),
                      ipaddress.IPv4Address(dns_ip) if dns_ip else None,
                      {ns: tuple(ps) for ns, ps in grouped.items()})
    by_ns: dict[str, list[Policy]] = {}
    for p in parsed:
        by_ns.setdefault(p.namespace, []).append(p)
    # A rule's peers (and a whole egress rule) do not depend on the isolated pod: computed once
    # per plan, so a plan costs rules x pods + local pods x policies, not their product.
    peers_of: dict[int, tuple[ipaddress.IPv4Network, ...] | None] = {}
    egress_of: dict[int, list[Allow]] = {}
    out: list[PodRules] = []
    for pod in sorted(cluster.pods, key=lambda i: i.ip):
        if pod.node != node:
            continue
        selecting = [p for p in by_ns.get(pod.namespace, ()) if p.selector.matches(pod.labels)]
        if not selecting:
            continue
        ingress: list[Allow] | None = None
        egress: list[Allow] | None = None
        for pol in sorted(selecting, key=lambda p: p.name):
            if pol.ingress is not None:
                ingress = ingress if ingress is not None else []
                for rule in pol.ingress:
                    if id(rule) not in peers_of:
                        peers_of[id(rule)] = _rule_peers(rule, pol.namespace, cluster)[0]
                    ingress += ingress_allows(rule, peers_of[id(rule)], pod)
            if pol.egress is not None:
                egress = egress if egress is not None else []
                for rule in pol.egress:
                    if id(rule) not in egress_of:
                        egress_of[id(rule)] = egress_allows(rule, pol.namespace, cluster)
                    egress += egress_of[id(rule)]
        if ingress is None and egress is None:
            continue
        out.append(PodRules(pod.ip, _dedup(ingress), _dedup(egress)))
    return tuple(out)


def _dedup(allows: list[Allow] | None) -> tuple[Allow, ...] | None:
    """Drop repeats of one Allow object (an egress rule's allows are shared by every pod the
    policy selects); by identity, since hashing large peer tuples on every plan is costly.
    Equal rules from different policies are merged later, as rule text (`minik.net.netpol`)."""
    if allows is None:
        return None
    seen: dict[int, Allow] = {}
    for a in allows:
        seen.setdefault(id(a), a)
    return tuple(seen.values())
