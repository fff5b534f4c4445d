"""Route table: hosts, wildcards, path types, longest match, default backends, ports by name or
number, ready endpoints, class selection, conflicts (oldest wins) and annotations."""

from __future__ import annotations

from typing import Any

import pytest

from minik.ingress.routes import (CONTROLLER, DEFAULT_CLASS_ANNOTATION, Backend, Snapshot, build, parse_size,
                                  snapshot)

Obj = dict[str, Any]

MINIK_CLASS: Obj = {"metadata": {"name": "minik", "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
                    "spec": {"controller": CONTROLLER}}
OTHER_CLASS: Obj = {"metadata": {"name": "nginx"}, "spec": {"controller": "k8s.io/ingress-nginx"}}


def backend(svc: str, port: int | str = 80) -> Obj:
    p = {"number": port} if isinstance(port, int) else {"name": port}
    return {"service": {"name": svc, "port": p}}


def path(p: str, svc: str, ptype: str = "Prefix", port: int | str = 80) -> Obj:
    return {"path": p, "pathType": ptype, "backend": backend(svc, port)}


def ingress(name: str, rules: list[Obj] | None = None, created: str = "2026-01-01T00:00:00Z", ns: str = "default",
            default: Obj | None = None, cls: str | None = None, annotations: dict[str, str] | None = None,
            tls: list[Obj] | None = None) -> Obj:
    spec: Obj = {"rules": rules or []}
    if default:
        spec["defaultBackend"] = default
    if cls:
        spec["ingressClassName"] = cls
    if tls:
        spec["tls"] = tls
    return {"metadata": {"name": name, "namespace": ns, "creationTimestamp": created, "annotations": annotations or {}},
            "spec": spec}


def rule(host: str, *paths: Obj) -> Obj:
    r: Obj = {"http": {"paths": list(paths)}}
    if host:
        r["host"] = host
    return r


def service(name: str, ns: str = "default", ports: list[Obj] | None = None) -> Obj:
    return {"metadata": {"name": name, "namespace": ns},
            "spec": {"ports": ports or [{"name": "http", "port": 80, "targetPort": 8080}]}}


def eps(svc: str, *ips: str, ns: str = "default", port: int = 8080, port_name: str = "http",
        not_ready: tuple[str, ...] = ()) -> Obj:
    return {"metadata": {"name": f"{svc}-abc", "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": ip not in not_ready}} for ip in (*ips, *not_ready)]}


def table_for(ings: list[Obj], svcs: list[Obj] | None = None, slices: list[Obj] | None = None,
              classes: list[Obj] | None = None) -> Any:
    return build(snapshot(ings, [MINIK_CLASS] if classes is None else classes, svcs or [], slices or []))


def svc_of(b: Backend | None) -> str | None:
    return b.service if b else None


SHOP = [ingress("shop", [rule("shop.example.test", path("/api", "api"), path("/", "web"))]),
        ingress("colors", [rule("blue.example.test", path("/", "blue")), rule("green.example.test", path("/", "green"))]),
        ingress("wild", [rule("*.apps.example.test", path("/", "wild"))]),
        ingress("exact", [rule("x.test", path("/a/b", "exact", "Exact"), path("/a", "prefix"),
                               path("/a/b/c", "deep", "ImplementationSpecific"))])]


@pytest.mark.parametrize(("host", "p", "want"), [
    ("shop.example.test", "/api", "api"),
    ("shop.example.test", "/api/", "api"),
    ("shop.example.test", "/api/v1/items", "api"),
    ("shop.example.test", "/apiary", "web"),          # element-wise: /api is no prefix of /apiary
    ("shop.example.test", "/", "web"),
    ("shop.example.test", "/cart", "web"),
    ("blue.example.test", "/", "blue"),
    ("green.example.test", "/anything", "green"),
    ("unknown.example.test", "/", None),
    ("a.apps.example.test", "/x", "wild"),
    ("a.b.apps.example.test", "/x", None),            # a wildcard matches one label only
    ("apps.example.test", "/", None),
    ("x.test", "/a/b", "exact"),                      # Exact beats a Prefix of the same length
    ("x.test", "/a/b/", "prefix"),                    # Exact is exact
    ("x.test", "/a/b/c/d", "deep"),                   # longest match; ImplementationSpecific = Prefix
    ("x.test", "/a/bc", "prefix"),
    ("x.test", "/b", None),
])
def test_lookup(host: str, p: str, want: str | None) -> None:
    t = table_for(SHOP).table
    assert svc_of(t.lookup(host, p)) == want


def test_trailing_slash_prefix_is_element_wise() -> None:
    t = table_for([ingress("i", [rule("h", path("/foo/", "foo"))])]).table
    assert svc_of(t.lookup("h", "/foo")) == "foo"
    assert svc_of(t.lookup("h", "/foo/bar")) == "foo"
    assert svc_of(t.lookup("h", "/foobar")) is None


def test_default_backend_and_hostless_rules() -> None:
    t = table_for([ingress("d", default=backend("fallback")),
                   ingress("any", [rule("", path("/any", "anyhost"))]),
                   ingress("named", [rule("n.test", path("/only", "named"))])]).table
    assert svc_of(t.lookup("whatever.test", "/any/x")) == "anyhost"
    assert svc_of(t.lookup("whatever.test", "/")) == "fallback"
    assert svc_of(t.lookup("n.test", "/only")) == "named"
    assert svc_of(t.lookup("n.test", "/other")) == "fallback"   # a named host does not fall to hostless rules


def test_endpoints_by_port_number_and_name_only_ready() -> None:
    svcs = [service("web", ports=[{"name": "http", "port": 80}, {"name": "admin", "port": 9000}])]
    slices = [eps("web", "10.0.0.2", "10.0.0.1", not_ready=("10.0.0.3",)),
              eps("web", "10.0.0.1", port=9001, port_name="admin")]
    b = table_for([ingress("i", [rule("h", path("/", "web", port=80), path("/admin", "web", port="admin"))])],
                  svcs, slices)
    assert b.table.lookup("h", "/").endpoints == (("10.0.0.1", 8080), ("10.0.0.2", 8080))
    assert b.table.lookup("h", "/admin").endpoints == (("10.0.0.1", 9001),)


def test_missing_service_or_port_gives_a_backend_without_endpoints() -> None:
    b = table_for([ingress("i", [rule("h", path("/", "ghost"), path("/p", "web", port=81))])],
                  [service("web")], [eps("web", "10.0.0.1")])
    assert b.table.lookup("h", "/").endpoints == ()
    assert b.table.lookup("h", "/p").endpoints == ()
    assert [p.reason for p in b.problems] == ["ServicePortNotFound"]


def test_unnamed_service_port() -> None:
    b = table_for([ingress("i", [rule("h", path("/", "web"))])],
                  [service("web", ports=[{"port": 80, "targetPort": 8080}])], [eps("web", "10.0.0.9", port_name="")])
    assert b.table.lookup("h", "/").endpoints == (("10.0.0.9", 8080),)


def test_resource_backend_is_rejected_with_a_problem() -> None:
    res = {"path": "/", "pathType": "Prefix", "backend": {"resource": {"apiGroup": "x.io", "kind": "Bucket", "name": "b"}}}
    b = table_for([ingress("i", [rule("h", res)])])
    assert b.table.lookup("h", "/") is None
    assert [(p.name, p.reason) for p in b.problems] == [("i", "UnsupportedBackend")]


def test_conflicts_oldest_wins_and_loser_gets_a_problem() -> None:
    new = ingress("new", [rule("h", path("/", "second"), path("/new", "extra"))], created="2026-02-01T00:00:00Z")
    old = ingress("old", [rule("h", path("/", "first"))], created="2026-01-01T00:00:00Z")
    d1 = ingress("d1", default=backend("d-old"), created="2026-01-01T00:00:00Z")
    d2 = ingress("d2", default=backend("d-new"), created="2026-03-01T00:00:00Z")
    for order in ([new, old, d2, d1], [d1, old, new, d2]):
        b = table_for(order)
        assert svc_of(b.table.lookup("h", "/")) == "first"
        assert svc_of(b.table.lookup("h", "/new")) == "extra"      # the loser's other paths still merge
        assert svc_of(b.table.lookup("other", "/")) == "d-old"
        assert sorted((p.name, p.reason) for p in b.problems) == [("d2", "Conflict"), ("new", "Conflict")]


def test_same_timestamp_breaks_ties_by_namespace_and_name() -> None:
    a = ingress("a", [rule("h", path("/", "from-a"))])
    b = ingress("b", [rule("h", path("/", "from-b"))])
    assert svc_of(table_for([b, a]).table.lookup("h", "/")) == "from-a"


@pytest.mark.parametrize(("cls", "annotation", "classes", "served"), [
    (None, None, [MINIK_CLASS], True),                     # no class: the default class (minik)
    ("minik", None, [MINIK_CLASS], True),
    ("nginx", None, [MINIK_CLASS, OTHER_CLASS], False),
    (None, "nginx", [MINIK_CLASS, OTHER_CLASS], False),   # the deprecated annotation counts as a class
    (None, None, [{**MINIK_CLASS, "metadata": {"name": "minik"}}], False),   # minik is not the default
    ("ghost", None, [MINIK_CLASS], False),
])
def test_class_selection(cls: str | None, annotation: str | None, classes: list[Obj], served: bool) -> None:
    ann = {"kubernetes.io/ingress.class": annotation} if annotation else {}
    b = table_for([ingress("i", [rule("h", path("/", "web"))], cls=cls, annotations=ann)], classes=classes)
    assert (b.served == (("default", "i"),)) is served
    assert (b.table.lookup("h", "/") is not None) is served


def test_annotations() -> None:
    ann = {"minik.io/proxy-body-size": "8m", "minik.io/proxy-read-timeout": "5", "minik.io/ssl-redirect": "true"}
    b = table_for([ingress("i", [rule("h", path("/", "web"))], annotations=ann),
                   ingress("bad", [rule("g", path("/", "web"))], annotations={"minik.io/proxy-body-size": "lots"})])
    be = b.table.lookup("h", "/")
    assert (be.body_limit, be.read_timeout, be.ssl_redirect) == (8 << 20, 5.0, True)
    assert [(p.name, p.reason) for p in b.problems] == [("bad", "InvalidAnnotation")]
    assert b.table.lookup("g", "/").ssl_redirect is False


@pytest.mark.parametrize(("text", "want"), [("0", 0), ("512", 512), ("8k", 8192), ("10M", 10 << 20), ("1g", 1 << 30),
                                            ("x", None), ("", None), ("-1", None)])
def test_parse_size(text: str, want: int | None) -> None:
    assert parse_size(text) == want


def test_tls_hosts_oldest_secret_wins() -> None:
    a = ingress("a", [rule("s.test", path("/", "web"))], tls=[{"hosts": ["s.test", "*.w.test"], "secretName": "one"}])
    b = ingress("b", [rule("s.test", path("/x", "web"))], tls=[{"hosts": ["s.test"], "secretName": "two"}],
                created="2026-05-01T00:00:00Z")
    r = table_for([b, a])
    assert r.table.tls_for("s.test").secret == "one"
    assert r.table.tls_for("x.w.test").secret == "one"
    assert r.table.tls_for("y.x.w.test") is None
    assert r.table.tls_for("other.test") is None
    assert [(p.name, p.reason) for p in r.problems] == [("b", "Conflict")]


def test_snapshot_keeps_only_named_services() -> None:
    snap = snapshot([ingress("i", [rule("h", path("/", "web"))])], [MINIK_CLASS],
                    [service("web"), service("other")], [eps("web", "10.0.0.1"), eps("other", "10.0.0.2")])
    assert isinstance(snap, Snapshot)
    assert list(snap.services) == [("default", "web")]
    assert list(snap.slices) == [("default", "web")]
