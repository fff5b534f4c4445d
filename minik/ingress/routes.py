"""The ingress route table: a pure function from Ingresses, IngressClasses, Services,
EndpointSlices and TLS Secrets' names to what the proxy looks up per request.

`build(Snapshot) -> Build` merges every served Ingress (class `minik`, or no class while `minik`
is the default IngressClass) into one `RouteTable`:
- hosts: exact names and `*.suffix` wildcards that match exactly one more label (networking.k8s.io
  /v1 semantics); rules without a host apply to every host not named by another rule;
- paths: `Exact`, `Prefix` compared element-wise (`/foo` matches `/foo` and `/foo/bar`, never
  `/foobar`), `ImplementationSpecific` treated as `Prefix`; the longest match wins and an `Exact`
  path beats a `Prefix` of the same length;
- backends: a Service port by number or by name, resolved to the ready endpoints of the Service's
  EndpointSlices for that port (none → the proxy answers 503); `resource` backends are not
  supported and reported;
- conflicts (the same host+path, two default backends, one TLS host with two Secrets) go to the
  oldest Ingress (creationTimestamp, then namespace/name), and each loser gets a `Problem`, which
  the controller turns into a Warning event.
Nothing here does I/O; `minik.ingress.controller` feeds it from the shared informers and
`minik.ingress.proxy` reads the result. Unit tests: tests/unit/ingress/test_routes.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

CLASS_NAME = "minik"
CONTROLLER = "minik.io/ingress"
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
BODY_SIZE_ANNOTATION = "minik.io/proxy-body-size"
READ_TIMEOUT_ANNOTATION = "minik.io/proxy-read-timeout"
SSL_REDIRECT_ANNOTATION = "minik.io/ssl-redirect"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

DEFAULT_BODY_LIMIT = 1 << 30        # 1 GiB; 0 means unlimited (nginx's client_max_body_size 0)
DEFAULT_READ_TIMEOUT = 60.0         # seconds, nginx's proxy_read_timeout


@dataclass(frozen=True, slots=True)
class Backend:
    """Where matching requests go: a Service port, its ready endpoints, and the settings of the
    Ingress that routed it."""

    ingress: str                        # "namespace/name" of the Ingress the route came from
    namespace: str
    service: str
    port: str                           # the Ingress's port (number or name) as written
    endpoints: tuple[tuple[str, int], ...]
    body_limit: int = DEFAULT_BODY_LIMIT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    ssl_redirect: bool = False

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.service}:{self.port}"


@dataclass(frozen=True, slots=True)
class HostRoutes:
    """The paths of one host: exact paths by value, prefixes by their element-normalised value."""

    exact: Mapping[str, Backend] = field(default_factory=dict)
    prefix: Mapping[str, Backend] = field(default_factory=dict)

    def match(self, path: str) -> Backend | None:
        b = self.exact.get(path)
        if b is not None:
            return b
        if not self.prefix:
            return None
        # Element-wise: try the path itself, then drop one segment at a time ("/a/b" → "/a" → "/").
        p = path.rstrip("/") or "/"
        while True:
            b = self.prefix.get(p)
            if b is not None:
                return b
            if p == "/":
                return None
            cut = p.rfind("/")
            p = p[:cut] if cut > 0 else "/"


@dataclass(frozen=True, slots=True)
class TlsHost:
    namespace: str
    secret: str
    ingress: str


@dataclass(frozen=True, slots=True)
class RouteTable:
    hosts: Mapping[str, HostRoutes] = field(default_factory=dict)
    wildcards: Mapping[str, HostRoutes] = field(default_factory=dict)   # "example.test" for "*.example.test"
    any_host: HostRoutes | None = None
    default: Backend | None = None
    tls: Mapping[str, TlsHost] = field(default_factory=dict)          # host (or "*.suffix") → Secret

    def lookup(self, host: str, path: str) -> Backend | None:
        """The backend for a request (host lower-cased without port, path without query)."""
        hr = self.hosts.get(host)
        if hr is None and self.wildcards:
            dot = host.find(".")
            if dot > 0:
                hr = self.wildcards.get(host[dot + 1:])
        if hr is None:
            hr = self.any_host
        if hr is not None:
            b = hr.match(path)
            if b is not None:
                return b
        return self.default

    def tls_for(self, host: str) -> TlsHost | None:
        t = self.tls.get(host)
        if t is None:
            dot = host.find(".")
            if dot > 0:
                t = self.tls.get("*" + host[dot:])
        return t


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one Ingress, reported as a Warning event on it."""

    namespace: str
    name: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    ingresses: tuple[Obj, ...]
    classes: tuple[Obj, ...] = ()
    services: Mapping[tuple[str, str], Obj] = field(default_factory=dict)
    # (namespace, service name) → that Service's EndpointSlices
    slices: Mapping[tuple[str, str], tuple[Obj, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Build:
    table: RouteTable
    served: tuple[tuple[str, str], ...]          # (namespace, name) of the Ingresses this controller serves
    problems: tuple[Problem, ...]


# ---- helpers ------------------------------------------------------------------------------------

def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _dict(v: Any) -> Obj:
    return v if isinstance(v, dict) else {}


def _list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def age_key(obj: Obj) -> tuple[str, str, str]:
    """Oldest first: creationTimestamp (RFC 3339 sorts as text), then namespace/name."""
    m = _meta(obj)
    return (str(m.get("creationTimestamp") or ""), str(m.get("namespace") or ""), str(m.get("name") or ""))


def is_served(ing: Obj, classes: Iterable[Obj]) -> bool:
    """Ingress class resolution as Kubernetes documents it: `spec.ingressClassName` (or the
    deprecated `kubernetes.io/ingress.class` annotation) names a class whose controller is
    minik's; with no class at all the Ingress belongs to the default IngressClass."""
    classes = list(classes)
    name = _dict(ing.get("spec")).get("ingressClassName") or _dict(_meta(ing).get("annotations")).get(LEGACY_CLASS_ANNOTATION)
    if name:
        for c in classes:
            if _meta(c).get("name") == name:
                return bool(_dict(c.get("spec")).get("controller") == CONTROLLER)
        return False
    return any(_dict(c.get("spec")).get("controller") == CONTROLLER
               and _dict(_meta(c).get("annotations")).get(DEFAULT_CLASS_ANNOTATION) == "true" for c in classes)


def parse_size(text: str) -> int | None:
    """nginx-style sizes: "0" (unlimited), "512", "8k", "10m", "1g" (case-insensitive)."""
    t = text.strip().lower()
    mult = 1
    if t[-1:] in ("k", "m", "g"):
        mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[t[-1]]
        t = t[:-1]
    if not t.isdigit():
        return None
    return int(t) * mult


def parse_seconds(text: str) -> float | None:
    t = text.strip().lower().removesuffix("s")
    try:
        v = float(t)
    except ValueError:
        return None
    return v if v > 0 else None


def normalise_prefix(path: str) -> str:
    return path.rstrip("/") or "/"


def _ready_endpoints(slices: Iterable[Obj], port_name: str) -> tuple[tuple[str, int], ...]:
    """Ready addresses of the slices' port called `port_name` ("" for an unnamed port), sorted
    so the table (and so round-robin order) does not depend on dict order."""
    out: set[tuple[str, int]] = set()
    for s in slices:
        if s.get("addressType", "IPv4") not in ("IPv4", "IPv6"):
            continue
        number = None
        for p in _list(s.get("ports")):
            p = _dict(p)
            if (p.get("name") or "") == port_name and isinstance(p.get("port"), int):
                number = p["port"]
                break
        if number is None:
            continue
        for ep in _list(s.get("endpoints")):
            ep = _dict(ep)
            # EndpointSlice semantics: a nil `ready` means ready.
            if _dict(ep.get("conditions")).get("ready") is False:
                continue
            for addr in _list(ep.get("addresses")):
                if isinstance(addr, str):
                    out.add((addr, number))
    return tuple(sorted(out))


@dataclass
class _Settings:
    body_limit: int
    read_timeout: float
    ssl_redirect: bool


def _settings(ing: Obj, problems: list[Problem]) -> _Settings:
    m = _meta(ing)
    ann = _dict(m.get("annotations"))
    ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
    limit, timeout = DEFAULT_BODY_LIMIT, DEFAULT_READ_TIMEOUT
    if BODY_SIZE_ANNOTATION in ann:
        v = parse_size(str(ann[BODY_SIZE_ANNOTATION]))
        if v is None:
            problems.append(Problem(ns, name, "InvalidAnnotation", f"{BODY_SIZE_ANNOTATION}: {ann[BODY_SIZE_ANNOTATION]!r} is not a size like 8m"))
        else:
            limit = v
    if READ_TIMEOUT_ANNOTATION in ann:
        t = parse_seconds(str(ann[READ_TIMEOUT_ANNOTATION]))
        if t is None:
            problems.append(Problem(ns, name, "InvalidAnnotation", f"{READ_TIMEOUT_ANNOTATION}: {ann[READ_TIMEOUT_ANNOTATION]!r} is not a number of seconds"))
        else:
            timeout = t
    return _Settings(limit, timeout, str(ann.get(SSL_REDIRECT_ANNOTATION, "")).lower() == "true")


def _backend(ing: Obj, b: Obj, where: str, snap: Snapshot, settings: _Settings, problems: list[Problem]) -> Backend | None:
    m = _meta(ing)
    ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
    if b.get("resource") is not None:
        r = _dict(b["resource"])
        problems.append(Problem(ns, name, "UnsupportedBackend",
                                f"{where}: resource backend {r.get('kind', '')}/{r.get('name', '')} is not supported by {CONTROLLER}; only Service backends are"))
        return None
    svc_ref = _dict(b.get("service"))
    svc_name = str(svc_ref.get("name") or "")
    if not svc_name:
        return None
    port = _dict(svc_ref.get("port"))
    want_name, want_num = port.get("name"), port.get("number")
    port_text = str(want_name or want_num or "")
    svc = snap.services.get((ns, svc_name))
    endpoints: tuple[tuple[str, int], ...] = ()
    if svc is not None:
        port_name: str | None = None
        for sp in _list(_dict(svc.get("spec")).get("ports")):
            sp = _dict(sp)
            if (want_name and sp.get("name") == want_name) or (want_num and sp.get("port") == want_num):
                port_name = str(sp.get("name") or "")
                break
        if port_name is None:
            problems.append(Problem(ns, name, "ServicePortNotFound", f"{where}: service {svc_name} has no port {port_text}"))
        else:
            endpoints = _ready_endpoints(snap.slices.get((ns, svc_name), ()), port_name)
    return Backend(f"{ns}/{name}", ns, svc_name, port_text, endpoints,
                   settings.body_limit, settings.read_timeout, settings.ssl_redirect)


@dataclass
class _HostBuilder:
    exact: dict[str, tuple[Backend, str]] = field(default_factory=dict)     # value → (backend, owner ingress)
    prefix: dict[str, tuple[Backend, str]] = field(default_factory=dict)

    def freeze(self) -> HostRoutes:
        return HostRoutes({k: v[0] for k, v in self.exact.items()}, {k: v[0] for k, v in self.prefix.items()})


# ---- build --------------------------------------------------------------------------------------

def build(snap: Snapshot) -> Build:
    problems: list[Problem] = []
    served: list[tuple[str, str]] = []
    hosts: dict[str, _HostBuilder] = {}
    default: tuple[Backend, str] | None = None
    tls: dict[str, TlsHost] = {}
    for ing in sorted(snap.ingresses, key=age_key):
        if not is_served(ing, snap.classes):
            continue
        m = _meta(ing)
        ns, name = str(m.get("namespace") or ""), str(m.get("name") or "")
        me = f"{ns}/{name}"
        served.append((ns, name))
        spec = _dict(ing.get("spec"))
        settings = _settings(ing, problems)
        if isinstance(spec.get("defaultBackend"), dict):
            b = _backend(ing, spec["defaultBackend"], "spec.defaultBackend", snap, settings, problems)
            if b is not None:
                if default is None:
                    default = (b, me)
                else:
                    problems.append(Problem(ns, name, "Conflict", f"defaultBackend ignored: the older Ingress {default[1]} already sets one"))
        for i, rule in enumerate(_list(spec.get("rules"))):
            rule = _dict(rule)
            host = str(rule.get("host") or "").lower()
            hb = hosts.setdefault(host, _HostBuilder())
            for j, p in enumerate(_list(_dict(rule.get("http")).get("paths"))):
                p = _dict(p)
                where = f"spec.rules[{i}].http.paths[{j}]"
                b = _backend(ing, _dict(p.get("backend")), where, snap, settings, problems)
                if b is None:
                    continue
                path = str(p.get("path") or "/")
                if p.get("pathType") == "Exact":
                    paths, key, kind = hb.exact, path, "Exact"
                else:
                    paths, key, kind = hb.prefix, normalise_prefix(path), "Prefix"
                owner = paths.get(key)
                if owner is not None and owner[1] != me:
                    problems.append(Problem(ns, name, "Conflict",
                                            f"{where}: host {host or '*'} {kind} path {path} is already routed by the older Ingress {owner[1]}"))
                    continue
                if owner is None:
                    paths[key] = (b, me)
        for i, t in enumerate(_list(spec.get("tls"))):
            t = _dict(t)
            secret = str(t.get("secretName") or "")
            if not secret:
                continue
            for h in _list(t.get("hosts")):
                h = str(h).lower()
                prev = tls.get(h)
                if prev is None:
                    tls[h] = TlsHost(ns, secret, me)
                elif prev.ingress != me and (prev.namespace, prev.secret) != (ns, secret):
                    problems.append(Problem(ns, name, "Conflict",
                                            f"spec.tls[{i}]: host {h} already takes its certificate from {prev.namespace}/{prev.secret} (Ingress {prev.ingress})"))
    exact_hosts: dict[str, HostRoutes] = {}
    wildcards: dict[str, HostRoutes] = {}
    any_host: HostRoutes | None = None
    for host, hb in hosts.items():
        hr = hb.freeze()
        if not host:
            any_host = hr
        elif host.startswith("*."):
            wildcards[host[2:]] = hr
        else:
            exact_hosts[host] = hr
    table = RouteTable(exact_hosts, wildcards, any_host, default[0] if default else None, tls)
    return Build(table, tuple(served), tuple(problems))


def snapshot(ingresses: Iterable[Obj], classes: Iterable[Obj], services: Iterable[Obj], slices: Iterable[Obj]) -> Snapshot:
    """Index the informers' lists for `build` (only the Services and slices Ingresses name are kept)."""
    ings = tuple(ingresses)
    wanted: set[tuple[str, str]] = set()
    for ing in ings:
        ns = str(_meta(ing).get("namespace") or "")
        spec = _dict(ing.get("spec"))
        backends = [_dict(spec.get("defaultBackend"))]
        for rule in _list(spec.get("rules")):
            backends += [_dict(_dict(p).get("backend")) for p in _list(_dict(_dict(rule).get("http")).get("paths"))]
        for b in backends:
            svc = _dict(b.get("service")).get("name")
            if svc:
                wanted.add((ns, str(svc)))
    svcs = {}
    for s in services:
        k = (str(_meta(s).get("namespace") or ""), str(_meta(s).get("name") or ""))
        if k in wanted:
            svcs[k] = s
    by_svc: dict[tuple[str, str], list[Obj]] = {}
    for es in slices:
        m = _meta(es)
        k = (str(m.get("namespace") or ""), str(_dict(m.get("labels")).get(SERVICE_NAME_LABEL) or ""))
        if k in wanted:
            by_svc.setdefault(k, []).append(es)
    return Snapshot(ings, tuple(classes), svcs, {k: tuple(v) for k, v in by_svc.items()})
