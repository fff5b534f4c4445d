"""Cluster DNS records, as the Kubernetes DNS-Based Service Discovery specification (schema 1.1.0)
defines them, built from Services and EndpointSlices.

Pure: `service_entry(svc, slices)` turns one Service and its EndpointSlices into a small frozen
`ServiceEntry`; `Zone` holds the entries of all Services (plus pod IPs for PTR) and answers
`resolve(qname, qtype)` with an `Answer` (rcode and records in presentation form) or None for a
name that is not the cluster's (the resolver forwards it). Updates are per Service, so a change
costs the size of one Service. A Service change bumps `generation`, a pod IP change only
`pod_generation` (it can change nothing but PTR answers): the resolver's response cache is keyed on
them, so pod churn does not flush the cached Service names.

Names served under `<zone>` (default cluster.local):
- `<svc>.<ns>.svc` A/AAAA: the ClusterIPs; headless: one record per ready endpoint (NXDOMAIN when
  there is none); ExternalName: a CNAME to `externalName` (the resolver follows it);
- `<hostname>.<svc>.<ns>.svc`: a headless endpoint by its EndpointSlice `hostname`, or by its
  dashed IP when it has none (CoreDNS's names, also the SRV targets);
- `_<port>._<proto>.<svc>.<ns>.svc` SRV for each named port (target the Service, or each ready
  endpoint of a headless Service with the endpoint's port);
- `<a-b-c-d>.<ns>.pod` A (CoreDNS `pods insecure`, as k3s configures it);
- `dns-version` TXT "1.1.0"; the apex SOA and NS (`ns.dns.<zone>`, the DNS IP);
- PTR in in-addr.arpa/ip6.arpa for ClusterIPs, headless endpoints, pod IPs and Node IPs;
- outside the zone, a Node's name answers with its InternalIPs, as k3s's NodeHosts does, so
  pods reach nodes by name.
A name that exists with no record of the asked type is NODATA (NOERROR, SOA in authority); a name
that does not exist (including the empty non-terminals that have nothing under them) is NXDOMAIN.
Neighbours: `minik.dns.service` feeds it from the shared informers; `minik.dns.resolver` renders
answers to wire format.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dns.rdatatype import RdataType

from minik.machinery import keysets

Obj = dict[str, Any]

SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 5
NOERROR = 0
NXDOMAIN = 3
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

A, AAAA, CNAME, SRV, PTR = RdataType.A, RdataType.AAAA, RdataType.CNAME, RdataType.SRV, RdataType.PTR
TXT, SOA, NS, ANY = RdataType.TXT, RdataType.SOA, RdataType.NS, RdataType.ANY


@dataclass(frozen=True, slots=True)
class RR:
    """One resource record; `value` is the rdata in presentation form ("10.43.0.1",
    "0 100 80 web.default.svc.cluster.local.")."""

    name: str
    rtype: int
    ttl: int
    value: str


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: int
    answer: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()


@dataclass(frozen=True, slots=True)
class Port:
    name: str
    protocol: str        # lower case: tcp, udp, sctp
    port: int


@dataclass(frozen=True, slots=True)
class Endpoint:
    label: str           # EndpointSlice hostname, else the dashed IP
    ip: str
    ports: tuple[Port, ...]


@dataclass(frozen=True, slots=True)
class ServiceEntry:
    namespace: str
    name: str
    cluster_ips: tuple[str, ...] = ()
    external_name: str = ""                # absolute, lower case
    headless: bool = False
    ports: tuple[Port, ...] = ()           # named Service ports
    endpoints: tuple[Endpoint, ...] = ()   # ready endpoints of a headless Service

    def ptr_names(self, zone: str) -> dict[str, str]:
        """IP → the name its PTR points at."""
        base = f"{self.name}.{self.namespace}.svc.{zone}"
        if self.headless:
            return {ep.ip: f"{ep.label}.{base}" for ep in self.endpoints}
        return {ip: base for ip in self.cluster_ips}


def absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def dashed(ip: str) -> str:
    """10.42.0.7 → 10-42-0-7; fd00::7 → fd00--7 (CoreDNS's endpoint and pod names)."""
    return ip.replace(".", "-").replace(":", "-")


def undashed(label: str) -> str | None:
    """The IP of a dashed label, or None when it is not one."""
    try:
        if label.count("-") == 3 and "--" not in label:
            return str(ipaddress.IPv4Address(label.replace("-", ".")))
        return ipaddress.IPv6Address(label.replace("-", ":")).compressed
    except ValueError:
        return None


def _ip(value: Any) -> str | None:
    try:
        return ipaddress.ip_address(value).compressed if isinstance(value, str) else None
    except ValueError:
        return None


def _ports(raw: Any) -> tuple[Port, ...]:
    out = []
    for p in raw if isinstance(raw, list) else []:
        if not isinstance(p, dict):
            continue
        name, port = p.get("name"), p.get("port")
        if isinstance(name, str) and name and isinstance(port, int):
            out.append(Port(name.lower(), str(p.get("protocol") or "TCP").lower(), port))
    return tuple(out)


def ready_endpoints(slices: Iterable[Obj], include_not_ready: bool = False) -> tuple[Endpoint, ...]:
    """Ready endpoints of a Service's slices (an absent `ready` condition means ready), one per
    (label, IP), with the ports of every slice they appear in."""
    merged: dict[tuple[str, str], list[Port]] = {}
    for sl in slices:
        if sl.get("addressType") == "FQDN":
            continue
        ports = _ports(sl.get("ports"))
        for ep in sl.get("endpoints") or []:
            if not isinstance(ep, dict):
                continue
            ready = (ep.get("conditions") or {}).get("ready")
            if ready is False and not include_not_ready:
                continue
            hostname = ep.get("hostname")
            for addr in ep.get("addresses") or []:
                ip = _ip(addr)
                if ip is None:
                    continue
                label = hostname.lower() if isinstance(hostname, str) and hostname else dashed(ip)
                have = merged.setdefault((label, ip), [])
                have.extend(p for p in ports if p not in have)
    return tuple(Endpoint(label, ip, tuple(ports)) for (label, ip), ports in sorted(merged.items()))


def service_entry(svc: Obj, slices: Iterable[Obj]) -> ServiceEntry | None:
    """The DNS view of one Service (None: it has no records, e.g. no ClusterIP yet)."""
    m, spec = svc.get("metadata") or {}, svc.get("spec") or {}
    ns, name = m.get("namespace"), m.get("name")
    if not isinstance(ns, str) or not isinstance(name, str) or not ns or not name:
        return None
    if spec.get("type") == "ExternalName":
        target = spec.get("externalName")
        if not isinstance(target, str) or not target.strip():
            return None
        return ServiceEntry(ns, name, external_name=absolute(target))
    ports = _ports(spec.get("ports"))
    if spec.get("clusterIP") == "None":
        publish = bool(spec.get("publishNotReadyAddresses"))
        return ServiceEntry(ns, name, headless=True, ports=ports, endpoints=ready_endpoints(slices, publish))
    raw = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    ips = tuple(ip for ip in (_ip(x) for x in raw) if ip is not None)
    if not ips:
        return None
    return ServiceEntry(ns, name, cluster_ips=ips, ports=ports)


def _reverse_ip(qname: str) -> str | None:
    """The address of a full in-addr.arpa / ip6.arpa name (None for partial or invalid names)."""
    if qname.endswith(".in-addr.arpa."):
        parts = qname[: -len(".in-addr.arpa.")].split(".")
        if len(parts) != 4:
            return None
        return _ip(".".join(reversed(parts)))
    if qname.endswith(".ip6.arpa."):
        nibbles = qname[: -len(".ip6.arpa.")].split(".")
        if len(nibbles) != 32 or any(len(n) != 1 for n in nibbles):
            return None
        hexs = "".join(reversed(nibbles))
        return _ip(":".join(hexs[i:i + 4] for i in range(0, 32, 4)))
    return None


@dataclass
class Zone:
    """All cluster records of one cluster domain."""

    domain: str = "cluster.local"
    dns_ip: str = ""
    ttl: int = DEFAULT_TTL
    generation: int = 0
    pod_generation: int = 0
    _services: dict[tuple[str, str], ServiceEntry] = field(default_factory=dict)
    _namespaces: dict[str, int] = field(default_factory=dict)      # namespace → Services in it
    _ptr: dict[str, str | set[str]] = field(default_factory=dict)   # IP → names (keysets)
    _pods: dict[str, dict[str, str]] = field(default_factory=dict)  # IP → pod key → namespace
    _pod_keys: dict[str, frozenset[str]] = field(default_factory=dict)  # pod key → its IPs
    _nodes: dict[str, tuple[str, ...]] = field(default_factory=dict)    # "name." → InternalIPs
    _known_namespaces: set[str] = field(default_factory=set)            # Namespace objects that exist
    _node_ptr: dict[str, str] = field(default_factory=dict)             # IP → "name."

    def __post_init__(self) -> None:
        self.domain = absolute(self.domain)
        self._soa = RR(self.domain, SOA, self.ttl,
                       f"ns.dns.{self.domain} hostmaster.{self.domain} 1 7200 1800 86400 {self.ttl}")

    # ---- updates ------------------------------------------------------------------------------
    def service(self, namespace: str, name: str) -> ServiceEntry | None:
        return self._services.get((namespace, name))

    def __len__(self) -> int:
        return len(self._services)

    def set_service(self, namespace: str, name: str, entry: ServiceEntry | None) -> bool:
        """Replace one Service's records (None removes them); True when anything changed."""
        key = (namespace, name)
        old = self._services.get(key)
        if old == entry:
            return False
        if old is not None:
            for ip, target in old.ptr_names(self.domain).items():
                keysets.discard(self._ptr, ip, target)
            left = self._namespaces[namespace] - 1
            if left:
                self._namespaces[namespace] = left
            else:
                del self._namespaces[namespace]
        if entry is None:
            del self._services[key]
        else:
            self._services[key] = entry
            self._namespaces[namespace] = self._namespaces.get(namespace, 0) + 1
            for ip, target in entry.ptr_names(self.domain).items():
                keysets.add(self._ptr, ip, target)
        self.generation += 1
        return True

    def set_pod(self, key: str, namespace: str, ips: Iterable[str]) -> bool:
        """Record the IPs of one pod (none: forget it); True when the PTR data changed."""
        want = frozenset(ip for ip in (_ip(x) for x in ips) if ip is not None)
        have = self._pod_keys.get(key, frozenset())
        if want == have and all(self._pods[ip].get(key) == namespace for ip in want):
            return False
        for ip in have - want:
            pods = self._pods[ip]
            pods.pop(key, None)
            if not pods:
                del self._pods[ip]
        for ip in want:
            self._pods.setdefault(ip, {})[key] = namespace
        if want:
            self._pod_keys[key] = want
        else:
            self._pod_keys.pop(key, None)
        self.pod_generation += 1
        return True

    def set_namespace(self, name: str, exists: bool) -> bool:
        """A Namespace exists (`<ns>.svc.<zone>` is NODATA, not NXDOMAIN, even without Services)."""
        if (name in self._known_namespaces) == exists:
            return False
        if exists:
            self._known_namespaces.add(name)
        else:
            self._known_namespaces.discard(name)
        self.generation += 1
        return True

    def set_node(self, name: str, ips: Iterable[str]) -> bool:
        """Record a Node's InternalIPs (none: forget it); True when that changed its answers."""
        key = absolute(name)
        want = tuple(sorted({ip for ip in (_ip(x) for x in ips) if ip is not None}))
        if self._nodes.get(key, ()) == want:
            return False
        for ip in self._nodes.pop(key, ()):
            if self._node_ptr.get(ip) == key:
                del self._node_ptr[ip]
        if want:
            self._nodes[key] = want
            for ip in want:
                self._node_ptr[ip] = key
        self.generation += 1
        return True

    # ---- lookups ------------------------------------------------------------------------------
    def resolve(self, qname: str, qtype: int) -> Answer | None:
        """The answer for a lower-case absolute name, or None when the name is not the cluster's."""
        if qname.endswith(".arpa."):
            return self._reverse(qname, qtype)
        if qname == self.domain:
            rel: list[str] = []
        elif qname.endswith("." + self.domain):
            rel = qname[: -len(self.domain) - 1].split(".")
        else:
            return self._node(qname, qtype)
        found = self._records(rel, qname)
        if found is None:
            return Answer(NXDOMAIN, authority=(self._soa,))
        records, additional = found
        if records and records[0].rtype == CNAME:
            # A CNAME answers every type at its name (the resolver follows it).
            return Answer(NOERROR, tuple(records))
        picked = tuple(r for r in records if qtype in (ANY, r.rtype))
        if not picked:
            return Answer(NOERROR, authority=(self._soa,))
        extra = tuple(r for r in additional if picked[0].rtype in (SRV, NS))
        return Answer(NOERROR, picked, (), extra)

    def _rr(self, name: str, rtype: int, value: str) -> RR:
        return RR(name, rtype, self.ttl, value)

    def _addr(self, name: str, ip: str) -> RR:
        return self._rr(name, AAAA if ":" in ip else A, ip)

    def _records(self, rel: list[str], qname: str) -> tuple[list[RR], list[RR]] | None:
        """(records at the name, additional records); None: no such name."""
        n = len(rel)
        if n == 0:
            ns_name = f"ns.dns.{self.domain}"
            glue = [self._addr(ns_name, self.dns_ip)] if self.dns_ip else []
            return [self._soa, self._rr(qname, NS, ns_name)], glue
        if rel == ["dns-version"]:
            return [self._rr(qname, TXT, f'"{SCHEMA_VERSION}"')], []
        if rel == ["dns"]:
            return [], []
        if rel == ["ns", "dns"]:
            return ([self._addr(qname, self.dns_ip)] if self.dns_ip else []), []
        if rel[-1] == "svc":
            return self._service_records(rel, qname)
        if rel[-1] == "pod":
            if n <= 2:
                return [], []
            if n == 3:
                ip = undashed(rel[0])
                return ([self._addr(qname, ip)], []) if ip is not None else None
        return None

    def _service_records(self, rel: list[str], qname: str) -> tuple[list[RR], list[RR]] | None:
        n = len(rel)
        if n == 1:
            return [], []
        if n == 2:
            return ([], []) if rel[0] in self._namespaces or rel[0] in self._known_namespaces else None
        entry = self._services.get((rel[-2], rel[-3]))
        if entry is None:
            return None
        base = ".".join(rel[-3:]) + "." + self.domain
        if n == 3:
            if entry.external_name:
                return [self._rr(qname, CNAME, entry.external_name)], []
            if entry.headless:
                if not entry.endpoints:
                    return None
                return [self._addr(qname, ep.ip) for ep in entry.endpoints], []
            return [self._addr(qname, ip) for ip in entry.cluster_ips], []
        if entry.external_name:
            return None
        if n == 4:
            label = rel[0]
            if label.startswith("_"):
                proto = label[1:]
                return ([], []) if any(p.protocol == proto for p in entry.ports) else None
            if not entry.headless:
                return None
            addrs = [self._addr(qname, ep.ip) for ep in entry.endpoints if ep.label == label]
            return (addrs, []) if addrs else None
        if n == 5 and rel[0].startswith("_") and rel[1].startswith("_"):
            want = (rel[0][1:], rel[1][1:])
            if entry.headless:
                hits = [(ep, p) for ep in entry.endpoints for p in ep.ports if (p.name, p.protocol) == want]
                if not hits:
                    return None
                weight = max(1, 100 // len(hits))
                srv = [self._rr(qname, SRV, f"0 {weight} {p.port} {ep.label}.{base}") for ep, p in hits]
                extra = [self._addr(f"{ep.label}.{base}", ep.ip) for ep, _ in hits]
                return srv, extra
            port = next((p for p in entry.ports if (p.name, p.protocol) == want), None)
            if port is None:
                return None
            return ([self._rr(qname, SRV, f"0 100 {port.port} {base}")],
                    [self._addr(base, ip) for ip in entry.cluster_ips])
        return None

    def _node(self, qname: str, qtype: int) -> Answer | None:
        """A Node's name answers with its InternalIPs (k3s's NodeHosts); other names are not ours."""
        ips = self._nodes.get(qname)
        if ips is None:
            return None
        return Answer(NOERROR, tuple(self._addr(qname, ip) for ip in ips
                                     if qtype in (ANY, AAAA if ":" in ip else A)))

    def _reverse(self, qname: str, qtype: int) -> Answer | None:
        ip = _reverse_ip(qname)
        if ip is None:
            return None
        names = sorted(keysets.members(self._ptr, ip))
        if not names:
            pods = self._pods.get(ip)
            node = self._node_ptr.get(ip)
            if pods:
                names = [f"{dashed(ip)}.{ns}.pod.{self.domain}" for ns in sorted(set(pods.values()))[:1]]
            elif node:
                names = [node]
            else:
                return None
        if qtype not in (PTR, ANY):
            soa = RR("in-addr.arpa." if qname.endswith(".in-addr.arpa.") else "ip6.arpa.", SOA, self.ttl,
                     f"ns.dns.{self.domain} hostmaster.{self.domain} 1 7200 1800 86400 {self.ttl}")
            return Answer(NOERROR, authority=(soa,))
        return Answer(NOERROR, tuple(self._rr(qname, PTR, n) for n in names))
