"""The pure Service rule generator: Ruleset contents for tables of inputs, and the diff scripts."""

from __future__ import annotations

import pytest

from minik.net.services import (Endpoint, Ruleset, ServiceInfo, ServicePort, ServiceRulesError, Settings, build,
                                render_diff, render_full, render_skeleton)

S = Settings("minik", "10.43.0.0/16", "10.42.0.0/16")
A, B = Endpoint("10.42.0.5", 8080), Endpoint("10.42.0.6", 8080, local=False)


def svc(name: str = "web", cip: str = "10.43.0.20", ports: tuple[ServicePort, ...] | None = None, **kw: object) -> ServiceInfo:
    return ServiceInfo("default", name, cip, ports if ports is not None else (ServicePort("tcp", 80, 0, (A, B)),),
                       **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("info, vips, no_eps, chains", [
    # Two endpoints: one VIP element, a service chain spreading over two endpoint chains.
    (svc(), {"10.43.0.20 . tcp . 80": "goto svc-default/web/tcp/80"}, {},
     {"svc-default/web/tcp/80", "svc-ep-default/web/tcp/80/10.42.0.5/8080", "svc-ep-default/web/tcp/80/10.42.0.6/8080"}),
    # No ready endpoint: no chains, the VIP port is rejected.
    (svc(ports=(ServicePort("udp", 53),)), {}, {"10.43.0.20 . udp . 53": "goto svc-reject"}, set()),
    # Headless: nothing at all.
    (svc(cip=""), {}, {}, {"svc-default/web/tcp/80", "svc-ep-default/web/tcp/80/10.42.0.5/8080",
                           "svc-ep-default/web/tcp/80/10.42.0.6/8080"}),
    # The kube-dns Service whose endpoint is its own ClusterIP: no rules, not even the reject.
    (svc(cip="10.43.0.10", ports=(ServicePort("udp", 53, 0, (Endpoint("10.43.0.10", 53),)),)), {}, {}, set()),
])
def test_build_table(info: ServiceInfo, vips: dict[str, str], no_eps: dict[str, str], chains: set[str]) -> None:
    rs = build([info], S)
    assert dict(rs.maps["svc-ips"]) == vips
    assert dict(rs.maps["svc-no-endpoints"]) == no_eps
    assert set(rs.chains) == chains
    if info.cluster_ip and not info.cluster_ip.endswith(".10"):
        assert rs.cluster_ips == {info.cluster_ip}
    else:
        assert rs.cluster_ips == frozenset()


def test_spread_masquerade_hairpin_and_dnat() -> None:
    rs = build([svc()], S)
    rules = rs.chains["svc-default/web/tcp/80"]
    assert rules == ("numgen random mod 2 == 0 goto svc-ep-default/web/tcp/80/10.42.0.5/8080",
                     "goto svc-ep-default/web/tcp/80/10.42.0.6/8080")
    assert rs.chains["svc-ep-default/web/tcp/80/10.42.0.5/8080"] == (
        "ip saddr 10.42.0.5 jump svc-mark",                                            # hairpin
        "ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 jump svc-mark",     # from outside
        "meta l4proto tcp dnat to 10.42.0.5:8080")
    # An endpoint on a node address (the API server) is not masqueraded for outside clients.
    api = build([svc(ports=(ServicePort("tcp", 443, 0, (Endpoint("192.0.2.2", 6443),)),))], S)
    assert api.chains["svc-ep-default/web/tcp/443/192.0.2.2/6443"] == ("meta l4proto tcp dnat to 192.0.2.2:6443",)


def test_named_target_ports_differ_per_endpoint_and_protocols() -> None:
    info = svc(ports=(ServicePort("tcp", 80, 0, (Endpoint("10.42.0.5", 8080), Endpoint("10.42.0.6", 9090))),
                      ServicePort("sctp", 80, 0, (A,))))
    rs = build([info], S)
    assert rs.chains["svc-ep-default/web/tcp/80/10.42.0.6/9090"][-1] == "meta l4proto tcp dnat to 10.42.0.6:9090"
    assert rs.maps["svc-ips"]["10.43.0.20 . sctp . 80"] == "goto svc-default/web/sctp/80"


def test_affinity_sets_and_lookups() -> None:
    rs = build([svc(affinity_timeout=60)], S)
    aff = "svc-aff-default/web/tcp/80/10.42.0.5/8080/60"
    assert rs.sets[aff] == 60
    assert f"ip saddr @{aff} goto svc-ep-default/web/tcp/80/10.42.0.5/8080" in rs.chains["svc-default/web/tcp/80"]
    assert f"update @{aff} {{ ip saddr }}" in rs.chains["svc-ep-default/web/tcp/80/10.42.0.5/8080"]


def test_nodeport_cluster_and_local_policies() -> None:
    cluster = build([svc(ports=(ServicePort("tcp", 80, 30080, (A, B)),))], S)
    assert cluster.maps["svc-nodeports"] == {"tcp . 30080": "goto svc-ext-default/web/tcp/80"}
    assert cluster.chains["svc-ext-default/web/tcp/80"] == ("jump svc-mark", "goto svc-default/web/tcp/80")
    local = build([svc(ports=(ServicePort("tcp", 80, 30080, (A, B)),), external_local=True)], S)
    ext = local.chains["svc-ext-default/web/tcp/80"]
    assert ext[-1] == "goto svc-local-default/web/tcp/80"
    assert "jump svc-mark" not in ext                      # the client address is kept
    assert local.chains["svc-local-default/web/tcp/80"] == ("goto svc-ep-default/web/tcp/80/10.42.0.5/8080",)
    only_remote = build([svc(ports=(ServicePort("tcp", 80, 30080, (B,)),), external_local=True)], S)
    assert only_remote.chains["svc-ext-default/web/tcp/80"][-1] == "drop"
    empty = build([svc(ports=(ServicePort("tcp", 80, 30080),))], S)
    assert empty.maps["svc-no-endpoint-nodeports"] == {"tcp . 30080": "goto svc-reject"}


def test_loadbalancer_addresses_are_vip_elements() -> None:
    rs = build([svc(lb_addresses=("192.0.2.2", "127.0.0.1"))], S)
    assert rs.maps["svc-ips"]["192.0.2.2 . tcp . 80"] == "goto svc-ext-default/web/tcp/80"
    assert rs.maps["svc-ips"]["127.0.0.1 . tcp . 80"] == "goto svc-ext-default/web/tcp/80"


@pytest.mark.parametrize("bad", [
    svc(cip="not-an-ip"),
    svc(ports=(ServicePort("icmp", 80),)),
    svc(ports=(ServicePort("tcp", 0),)),
    svc(ports=(ServicePort("tcp", 80, 0, (Endpoint("10.42.0.5; drop", 80),)),)),
    ServiceInfo("default", "web; flush ruleset", "10.43.0.1", ()),
])
def test_bad_input_never_renders(bad: ServiceInfo) -> None:
    with pytest.raises((ServiceRulesError, ValueError)):
        build([bad], S)


def test_bad_table_name() -> None:
    with pytest.raises(ServiceRulesError):
        Settings("minik; flush ruleset", "10.43.0.0/16", "10.42.0.0/16")


def test_skeleton_safety_rules() -> None:
    text = render_skeleton(S)
    assert "add rule ip minik svc-ips-check fib daddr type local return" in text
    assert "add rule ip minik svc-ips-check ip daddr @svc-cluster-ips jump svc-reject" in text
    assert "add rule ip minik svc-ips-check ip daddr 10.43.0.0/16 drop" in text
    assert "add rule ip minik svc-filter-forward jump svc-ips-check" in text
    assert "add chain ip minik svc-filter-output-post { type filter hook output priority -90; policy accept; }" in text
    assert "flush map" not in text        # keeps a previous run's elements until the first full sync
    lines = text.splitlines()
    # Masquerade only what leaves through a real interface (an endpoint on the node itself
    # answers over lo, whose extra addresses must never become the source) …
    assert lines.index('add rule ip minik svc-nat-postrouting oifname "lo" return') < \
        lines.index("add rule ip minik svc-nat-postrouting masquerade")
    # … and with the bridge known, only what goes to this instance's pods.
    lines = render_skeleton(Settings("minik", "10.43.0.0/16", "10.42.0.0/16", bridge="minik0")).splitlines()
    clear = "add rule ip minik svc-nat-postrouting meta mark set meta mark & 0xffffbfff"
    assert lines.index('add rule ip minik svc-nat-postrouting oifname != "minik0" return') < \
        lines.index(clear) < lines.index("add rule ip minik svc-nat-postrouting masquerade")


def test_full_render_deletes_stale_chains_only() -> None:
    rs = build([svc()], S)
    text = render_full(rs, S, stale_chains=["svc-default/old/tcp/80", "svc-default/web/tcp/80", "svc-services"],
                       stale_sets=["svc-aff-x", "svc-cluster-ips"])
    assert "delete chain ip minik svc-default/old/tcp/80" in text
    assert "delete chain ip minik svc-default/web/tcp/80" not in text
    assert "delete chain ip minik svc-services" not in text
    assert "delete set ip minik svc-aff-x" in text and "delete set ip minik svc-cluster-ips" not in text
    assert "flush map ip minik svc-ips" in text


def test_diff_touches_only_what_changed() -> None:
    others = [svc(f"s{i}", f"10.43.1.{i}") for i in range(1, 50)]
    old = build([svc(), *others], S)
    assert render_diff(old, old, S) == ""
    new = build([svc(ports=(ServicePort("tcp", 80, 0, (A,)),)), *others], S)
    text = render_diff(old, new, S)
    lines = text.splitlines()
    # The endpoint that went away: chain flushed and deleted, after the service chain no longer
    # jumps to it; the map element is unchanged (same verdict), other services untouched.
    assert "flush chain ip minik svc-default/web/tcp/80" in lines
    assert lines.index("flush chain ip minik svc-default/web/tcp/80") < \
        lines.index("delete chain ip minik svc-ep-default/web/tcp/80/10.42.0.6/8080")
    assert "element" not in text
    assert "s1/" not in text
    # Scale to zero: the VIP element moves from svc-ips to svc-no-endpoints.
    zero = build([svc(ports=(ServicePort("tcp", 80),)), *others], S)
    text = render_diff(new, zero, S)
    assert "delete element ip minik svc-ips { 10.43.0.20 . tcp . 80 : goto svc-default/web/tcp/80 }" in text
    assert "add element ip minik svc-no-endpoints { 10.43.0.20 . tcp . 80 : goto svc-reject }" in text
    assert text.index("delete element") < text.index("delete chain")


def test_diff_of_removed_service_removes_ip_from_cluster_set() -> None:
    old = build([svc()], S)
    text = render_diff(old, Ruleset(), S)
    assert "delete element ip minik svc-cluster-ips { 10.43.0.20 }" in text


def test_stale_udp_flows() -> None:
    from minik.net.services import StaleFlow, stale_udp_flows
    dns = lambda *eps: ServiceInfo("default", "dns", "10.43.0.53",  # noqa: E731
                                   (ServicePort("udp", 53, 30053, eps), ServicePort("tcp", 53, 0, eps)))
    # An endpoint went away: its flows go (ClusterIP and NodePort), TCP is left to itself.
    assert stale_udp_flows(dns(A, B), dns(A)) == [StaleFlow("10.43.0.53", 53, "10.42.0.6", 8080),
                                                  StaleFlow("", 30053, "10.42.0.6", 8080)]
    # Same address, another port (a named targetPort moved): the old flows go too.
    moved = Endpoint("10.42.0.5", 9090)
    assert StaleFlow("10.43.0.53", 53, "10.42.0.5", 8080) in stale_udp_flows(dns(A), dns(moved))
    # From no endpoint to some: every flow to the port (rejected, never NATed) goes.
    assert stale_udp_flows(dns(), dns(A)) == [StaleFlow("10.43.0.53", 53), StaleFlow("", 30053)]
    # New Service, unchanged Service: nothing.
    assert stale_udp_flows(None, dns(A)) == [] and stale_udp_flows(dns(A), dns(A)) == []
    # Service deleted: flows to all its endpoints go.
    assert stale_udp_flows(dns(A), None) == [StaleFlow("10.43.0.53", 53, "10.42.0.5", 8080),
                                             StaleFlow("", 30053, "10.42.0.5", 8080)]


def test_spread_is_uniform_rules_then_one_vmap_for_many_endpoints() -> None:
    three = build([svc(ports=(ServicePort("tcp", 80, 0, tuple(Endpoint(f"10.42.0.{i}", 80) for i in range(1, 4))),))], S)
    body = three.chains["svc-default/web/tcp/80"]
    # P(first) = 1/3, P(second) = 2/3 * 1/2, P(third) = the rest: uniform.
    assert [r.rsplit("goto ", 1)[0].strip() for r in body] == ["numgen random mod 3 == 0", "numgen random mod 2 == 0", ""]
    many = build([svc(ports=(ServicePort("tcp", 80, 0, tuple(Endpoint(f"10.42.0.{i}", 80) for i in range(1, 21))),))], S)
    body = many.chains["svc-default/web/tcp/80"]
    assert len(body) == 1 and body[0].startswith("numgen random mod 20 vmap { 0 : goto ")
