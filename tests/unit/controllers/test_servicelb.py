"""ServiceLB's pure plan: who gets a port, and why a Service stays pending."""

from __future__ import annotations

from typing import Any

from minik.controllers.servicelb import plan
from minik.net.listeners import host_listeners, parse

Obj = dict[str, Any]


def lb(name: str, port: int = 8080, created: str = "2026-01-01T00:00:00Z", ingress: list[str] | None = None,
       **spec: Any) -> Obj:
    obj: Obj = {"metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
                "spec": {"type": "LoadBalancer", "ports": [{"port": port, "protocol": "TCP"}], **spec}}
    if ingress:
        obj["status"] = {"loadBalancer": {"ingress": [{"ip": i} for i in ingress]}}
    return obj


NODES = [{"metadata": {"name": "n1"}, "status": {"conditions": [{"type": "Ready", "status": "True"}],
                                                  "addresses": [{"type": "InternalIP", "address": "192.0.2.2"},
                                                                {"type": "Hostname", "address": "n1"}]}},
         {"metadata": {"name": "n2"}, "status": {"conditions": [{"type": "Ready", "status": "False"}],
                                                  "addresses": [{"type": "InternalIP", "address": "192.0.2.3"}]}}]


def test_ready_node_addresses_are_published() -> None:
    a = lb("a")
    assert plan(a, [a], NODES, set()).ingress == ("192.0.2.2",)


def test_first_come_keeps_the_port() -> None:
    old, new = lb("old", created="2026-01-01T00:00:00Z"), lb("new", created="2026-01-02T00:00:00Z")
    p = plan(new, [old, new], NODES, set())
    assert p.ingress == () and "default/old" in p.conflict and "8080/TCP" in p.conflict
    assert plan(old, [old, new], NODES, set()).ingress == ("192.0.2.2",)
    # Already serving beats older.
    serving = lb("serving", created="2026-01-03T00:00:00Z", ingress=["192.0.2.2"])
    assert plan(old, [old, serving], NODES, set()).ingress == ()
    # Other protocols and other classes do not clash.
    udp = lb("udp", created="2026-01-05T00:00:00Z")
    udp["spec"]["ports"][0]["protocol"] = "UDP"
    assert plan(udp, [old, udp], NODES, set()).ingress == ("192.0.2.2",)
    other = lb("other", loadBalancerClass="example.com/lb")
    assert plan(new, [other, new], NODES, set()).ingress == ("192.0.2.2",)
    assert plan(other, [other], NODES, set()).ingress == ()


def test_host_listener_blocks_only_before_the_port_is_held() -> None:
    assert "process on the node" in plan(lb("a"), [], NODES, {("TCP", 8080)}).conflict
    held = lb("a", ingress=["192.0.2.2"])
    assert plan(held, [held], NODES, {("TCP", 8080)}).ingress == ("192.0.2.2",)


def test_not_a_loadbalancer_gets_nothing() -> None:
    svc = lb("a", ingress=["192.0.2.2"])
    svc["spec"]["type"] = "ClusterIP"
    assert plan(svc, [svc], NODES, set()).ingress == ()


PROC_TCP = """  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0200000A:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
"""


def test_proc_net_parse() -> None:
    got = parse(PROC_TCP, "TCP")
    assert [(x.address, x.port) for x in got] == [("0.0.0.0", 8080), ("127.0.0.1", 53)]


def test_host_listeners_reads_proc(tmp_path: Any) -> None:
    (tmp_path / "tcp").write_text(PROC_TCP)
    assert host_listeners(tmp_path) == {("TCP", 8080), ("TCP", 53)}
