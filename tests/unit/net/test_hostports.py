"""hostPort parsing, rule rendering and the persisted manager, with a fake rule runner."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from minik.net.cni_server import CNIError, CNIRequest, PodPlumber
from minik.net.hostports import (
    HostPortEntry,
    HostPortError,
    HostPorts,
    PortMapping,
    parse_port_mappings,
    render_apply,
)
from minik.net.ipam import IPAM
from minik.net.nft import Nft, NftError
from tests.unit.net.test_cni_server import FakeLinks  # the fake netlink, shared

SUBNET = ipaddress.IPv4Network("10.42.0.0/24")
POD_A = ipaddress.IPv4Address("10.42.0.5")
POD_B = ipaddress.IPv4Address("10.42.0.6")


def tcp(host: int, container: int, host_ip: str | None = None) -> PortMapping:
    return PortMapping(host, container, "tcp", None if host_ip is None else ipaddress.IPv4Address(host_ip))


def make_entry(cid: str = "c1", pod_ip: ipaddress.IPv4Address = POD_A,
               mappings: tuple[PortMapping, ...] = (tcp(8080, 80),), added_ns: int = 1) -> HostPortEntry:
    return HostPortEntry(cid, pod_ip, mappings, added_ns)


@dataclass
class FakeRunner:
    scripts: list[str] = field(default_factory=list)
    localnet: list[str] = field(default_factory=list)
    fail: bool = False

    async def run_script(self, script: str) -> None:
        if self.fail:
            raise NftError("nft said no")
        self.scripts.append(script)

    async def enable_route_localnet(self, ifname: str) -> bool:
        first = ifname not in self.localnet
        self.localnet.append(ifname)
        return first

    def dnat_rules(self) -> list[str]:
        return [l for l in self.scripts[-1].splitlines() if l.startswith("add rule ip minik hostports ")]


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        self.now += 1
        return self.now


def make_manager(tmp_path: Path, runner: FakeRunner | None = None) -> tuple[HostPorts, FakeRunner]:
    fake = runner or FakeRunner()
    manager = HostPorts(tmp_path / "hostports", table="minik", bridge="minik0",
                        pod_subnet=SUBNET, runner=fake, clock_ns=Clock())
    return manager, fake


# --- parsing ---------------------------------------------------------------------------

def test_parse_as_containerd_sends_them() -> None:
    raw = [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
        {"hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "0.0.0.0"},
        {"hostPort": 9000, "containerPort": 9000, "protocol": "sctp", "hostIP": "192.0.2.7"},
        {"hostPort": 0, "containerPort": 81, "protocol": "tcp"},          # not a hostPort
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},       # duplicate
        {"hostPort": 7000, "containerPort": 70, "hostIP": "2001:db8::1"},  # IPv6: skipped
        {"hostPort": 7001, "containerPort": 71, "hostIP": "::"},          # any: kept
    ]
    assert parse_port_mappings(raw) == (
        tcp(8080, 80),
        PortMapping(5353, 53, "udp"),
        PortMapping(9000, 9000, "sctp", ipaddress.IPv4Address("192.0.2.7")),
        tcp(7001, 71),
    )
    assert parse_port_mappings(None) == ()
    assert parse_port_mappings([]) == ()


def test_parse_go_field_names_as_containerd_1_6_really_sends_them() -> None:
    # Captured from containerd 1.6.20's runtimeConfig (go-cni PortMapping has no JSON tags).
    raw = [{"HostPort": 31999, "ContainerPort": 8080, "Protocol": "tcp", "HostIP": ""},
           {"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "192.0.2.7"}]
    assert parse_port_mappings(raw) == (
        tcp(31999, 8080), PortMapping(5353, 53, "udp", ipaddress.IPv4Address("192.0.2.7")))


@pytest.mark.parametrize("raw", [
    "8080",
    ["x"],
    [{"hostPort": "8080", "containerPort": 80}],
    [{"hostPort": True, "containerPort": 80}],
    [{"hostPort": 70000, "containerPort": 80}],
    [{"hostPort": 8080, "containerPort": 0}],
    [{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}],
    [{"hostPort": 8080, "containerPort": 80, "hostIP": "not-an-ip"}],
    [{"hostPort": 8080, "containerPort": 80, "hostIP": 7}],
])
def test_parse_rejects(raw: Any) -> None:
    with pytest.raises(HostPortError):
        parse_port_mappings(raw)


# --- rendering -------------------------------------------------------------------------

def test_render_chains_hooks_and_rules() -> None:
    script = render_apply("minik", "minik0", SUBNET, [
        make_entry("c1", POD_A, (tcp(8080, 80), PortMapping(5353, 53, "udp"))),
        make_entry("c2", POD_B, (tcp(9090, 90, "192.0.2.7"),), added_ns=2),
    ])
    lines = script.splitlines()
    assert lines[0] == "add table ip minik"
    assert "add chain ip minik hostports-prerouting { type nat hook prerouting priority dstnat; policy accept; }" in lines
    assert "add chain ip minik hostports-output { type nat hook output priority -100; policy accept; }" in lines
    assert ("add rule ip minik hostports-prerouting fib daddr type local meta mark set meta mark | 0x2000 "
            "jump hostports") in lines
    assert "add rule ip minik hostports-output fib daddr type local jump hostports" in lines
    assert ('add rule ip minik hostports-postrouting ct status dnat ip saddr 127.0.0.0/8 '
            'oifname "minik0" masquerade') in lines
    assert ('add rule ip minik hostports-postrouting ct status dnat meta mark & 0x2000 != 0 '
            'ip saddr 10.42.0.0/24 oifname "minik0" masquerade') in lines
    assert ('add rule ip minik hostports-input iifname "minik0" ip daddr 127.0.0.0/8 '
            'ct status & dnat == 0 drop') in lines
    dnat = [l for l in lines if l.startswith("add rule ip minik hostports ")]
    # Newest sandbox first: on a clash the newest pod's rule matches.
    assert dnat == [
        "add rule ip minik hostports ip daddr 192.0.2.7 tcp dport 9090 dnat to 10.42.0.6:90",
        "add rule ip minik hostports tcp dport 8080 dnat to 10.42.0.5:80",
        "add rule ip minik hostports udp dport 5353 dnat to 10.42.0.5:53",
    ]
    # Every chain is declared, then flushed, before any rule: re-applying is idempotent.
    first_rule = next(i for i, l in enumerate(lines) if l.startswith("add rule"))
    for chain in ("hostports", "hostports-prerouting", "hostports-output",
                  "hostports-postrouting", "hostports-input"):
        declared = next(i for i, l in enumerate(lines) if l.startswith(f"add chain ip minik {chain}"))
        assert declared < lines.index(f"flush chain ip minik {chain}") < first_rule
    # The egress chains of minik.net.nft are never touched.
    assert "pod-postrouting" not in script and "pod-forward" not in script
    assert "delete" not in script


def test_render_without_entries_keeps_hooks_and_guard_only() -> None:
    script = render_apply("minik", "minik0", SUBNET, [])
    assert "dnat to" not in script
    assert "hostports-input iifname" in script


@pytest.mark.parametrize("table,bridge", [("1x", "minik0"), ("minik", 'br" accept'), ("a b", "br0")])
def test_render_rejects_unsafe_names(table: str, bridge: str) -> None:
    with pytest.raises(HostPortError):
        render_apply(table, bridge, SUBNET, [])


# --- manager ---------------------------------------------------------------------------

async def test_set_persists_applies_and_is_idempotent(tmp_path: Path) -> None:
    manager, runner = make_manager(tmp_path)
    await manager.start()
    assert len(runner.scripts) == 1 and runner.localnet == []   # no mappings: no route_localnet
    assert await manager.set("c1", POD_A, (tcp(8080, 80),), "default/web") is True
    assert runner.dnat_rules() == ["add rule ip minik hostports tcp dport 8080 dnat to 10.42.0.5:80"]
    assert runner.localnet == ["minik0"]
    state = json.loads((tmp_path / "hostports" / "c1.json").read_text())
    assert state == {"containerID": "c1", "podIP": "10.42.0.5", "pod": "default/web", "addedNs": 1,
                     "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]}
    applied = len(runner.scripts)
    assert await manager.set("c1", POD_A, (tcp(8080, 80),)) is False
    assert len(runner.scripts) == applied


async def test_changed_mappings_replace_and_empty_removes(tmp_path: Path) -> None:
    manager, runner = make_manager(tmp_path)
    await manager.start()
    await manager.set("c1", POD_A, (tcp(8080, 80),))
    await manager.set("c1", POD_A, (tcp(8081, 81),))
    assert runner.dnat_rules() == ["add rule ip minik hostports tcp dport 8081 dnat to 10.42.0.5:81"]
    assert await manager.set("c1", POD_A, ()) is True
    assert runner.dnat_rules() == []
    assert not (tmp_path / "hostports" / "c1.json").exists()
    assert await manager.set("c1", POD_A, ()) is False


async def test_remove_is_idempotent(tmp_path: Path) -> None:
    manager, runner = make_manager(tmp_path)
    await manager.start()
    await manager.set("c1", POD_A, (tcp(8080, 80),))
    await manager.set("c2", POD_B, (tcp(9090, 90),))
    assert await manager.remove("c1") is True
    assert runner.dnat_rules() == ["add rule ip minik hostports tcp dport 9090 dnat to 10.42.0.6:90"]
    applied = len(runner.scripts)
    assert await manager.remove("c1") is False
    assert len(runner.scripts) == applied
    assert [e.container_id for e in manager.entries()] == ["c2"]


async def test_restart_restores_from_files(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path)
    await manager.start()
    await manager.set("c1", POD_A, (tcp(8080, 80),))
    await manager.set("c2", POD_B, (tcp(9090, 90, "192.0.2.7"),))
    (tmp_path / "hostports" / "broken.json").write_text("{not json")
    (tmp_path / "hostports" / "other.json").write_text(json.dumps(make_entry("c9").to_json()))  # name mismatch

    again, runner = make_manager(tmp_path)
    await again.start()
    assert [e.container_id for e in again.entries()] == ["c1", "c2"]
    assert runner.dnat_rules() == [
        "add rule ip minik hostports ip daddr 192.0.2.7 tcp dport 9090 dnat to 10.42.0.6:90",
        "add rule ip minik hostports tcp dport 8080 dnat to 10.42.0.5:80",
    ]
    assert runner.localnet == ["minik0"]


async def test_failed_apply_leaves_state_unchanged(tmp_path: Path) -> None:
    runner = FakeRunner()
    manager, _ = make_manager(tmp_path, runner)
    await manager.start()
    await manager.set("c1", POD_A, (tcp(8080, 80),))
    runner.fail = True
    with pytest.raises(NftError):
        await manager.set("c2", POD_B, (tcp(9090, 90),))
    with pytest.raises(NftError):
        await manager.remove("c1")
    with pytest.raises(NftError):
        await manager.retain([])
    assert [e.container_id for e in manager.entries()] == ["c1"]
    assert sorted(p.name for p in (tmp_path / "hostports").iterdir()) == ["c1.json"]


async def test_retain_forgets_vanished_sandboxes(tmp_path: Path) -> None:
    manager, runner = make_manager(tmp_path)
    await manager.start()
    await manager.set("c1", POD_A, (tcp(8080, 80),))
    await manager.set("c2", POD_B, (tcp(9090, 90),))
    assert await manager.retain(["c2", "c3"]) == ["c1"]
    assert runner.dnat_rules() == ["add rule ip minik hostports tcp dport 9090 dnat to 10.42.0.6:90"]
    assert not (tmp_path / "hostports" / "c1.json").exists()
    assert await manager.retain(["c2"]) == []


async def test_rejects_path_like_container_ids(tmp_path: Path) -> None:
    manager, _ = make_manager(tmp_path)
    with pytest.raises(HostPortError):
        await manager.set("../etc/x", POD_A, (tcp(8080, 80),))


# --- the CNI server's use of it ------------------------------------------------------

def cni_request(command: str, cid: str = "c1", mappings: Any = None) -> CNIRequest:
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "minik", "type": "minik-cni", "bridge": "minik0"}
    if mappings is not None:
        conf["runtimeConfig"] = {"portMappings": mappings}
    return CNIRequest(command, cid, "/var/run/netns/x" if command == "ADD" else "", "eth0",
                      {"K8S_POD_NAMESPACE": "default", "K8S_POD_NAME": "web"}, conf)


def make_plumber(tmp_path: Path, runner: FakeRunner) -> tuple[PodPlumber, IPAM, FakeLinks, HostPorts]:
    ipam = IPAM(tmp_path / "ipam", "10.42.0.0/24")
    links = FakeLinks()
    manager, _ = make_manager(tmp_path, runner)
    return PodPlumber(ipam=ipam, netlink=links, bridge="minik0", mtu=1400, hostports=manager), ipam, links, manager


async def test_add_applies_mappings_and_del_removes_them(tmp_path: Path) -> None:
    runner = FakeRunner()
    plumber, ipam, _, manager = make_plumber(tmp_path, runner)
    await manager.start()
    ports = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]
    result = await plumber.handle(cni_request("ADD", mappings=ports))
    assert result is not None
    pod_ip = result["ips"][0]["address"].split("/")[0]
    assert runner.dnat_rules() == [f"add rule ip minik hostports tcp dport 8080 dnat to {pod_ip}:80"]
    entry = manager.get("c1")
    assert entry is not None and entry.pod == "default/web"
    assert await plumber.handle(cni_request("DEL")) is None
    assert runner.dnat_rules() == []
    assert await plumber.handle(cni_request("DEL")) is None
    assert ipam.lookup("c1") is None


async def test_pods_without_host_ports_cost_no_nft_exec(tmp_path: Path) -> None:
    runner = FakeRunner()
    plumber, _, _, manager = make_plumber(tmp_path, runner)
    await manager.start()
    await plumber.handle(cni_request("ADD"))
    await plumber.handle(cni_request("ADD", "c2", mappings=[]))
    await plumber.handle(cni_request("DEL"))
    assert len(runner.scripts) == 1   # the start() apply only


async def test_repeated_add_without_mappings_drops_old_ones(tmp_path: Path) -> None:
    runner = FakeRunner()
    plumber, _, _, manager = make_plumber(tmp_path, runner)
    await manager.start()
    await plumber.handle(cni_request("ADD", mappings=[{"hostPort": 8080, "containerPort": 80}]))
    await plumber.handle(cni_request("ADD", mappings=[]))
    assert runner.dnat_rules() == [] and manager.get("c1") is None


async def test_bad_mappings_are_refused_before_any_work(tmp_path: Path) -> None:
    runner = FakeRunner()
    plumber, ipam, links, manager = make_plumber(tmp_path, runner)
    await manager.start()
    with pytest.raises(CNIError) as err:
        await plumber.handle(cni_request("ADD", mappings=[{"hostPort": 8080, "containerPort": 80, "protocol": "icmp"}]))
    assert err.value.code == 7
    assert ipam.lookup("c1") is None and links.pods == {}


async def test_failed_rules_undo_the_add(tmp_path: Path) -> None:
    runner = FakeRunner()
    plumber, ipam, links, manager = make_plumber(tmp_path, runner)
    await manager.start()
    runner.fail = True
    with pytest.raises(CNIError) as err:
        await plumber.handle(cni_request("ADD", mappings=[{"hostPort": 8080, "containerPort": 80}]))
    assert err.value.code == 100 and "nft said no" in err.value.details
    assert ipam.lookup("c1") is None and links.pods == {}


async def test_nft_enables_route_localnet_per_interface(tmp_path: Path) -> None:
    knob = tmp_path / "minik0" / "route_localnet"
    knob.parent.mkdir()
    knob.write_text("0\n")
    nft = Nft(ipv4_conf_dir=tmp_path)
    assert await nft.enable_route_localnet("minik0") is True
    assert knob.read_text() == "1\n"
    assert await nft.enable_route_localnet("minik0") is False
    with pytest.raises(NftError):
        await nft.enable_route_localnet("../all")
    with pytest.raises(NftError):
        await nft.enable_route_localnet("missing0")
