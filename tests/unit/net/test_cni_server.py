"""The daemon side of the CNI plugin with a fake netlink, and the real shim exec'd against a
real `CNIServer` (no root needed: the fake does no kernel work)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from minik.net import cniconf
from minik.net.bridge import NetConfigError, PodLink
from minik.net.cni_server import (
    CNIError,
    CNIRequest,
    CNIServer,
    PodPlumber,
    build_add_result,
    host_ifname_for,
    parse_cni_args,
    parse_request,
)
from minik.net.ipam import IPAM

NETNS = "/var/run/netns/cni-1234"


@dataclass
class FakeLinks:
    pods: dict[str, PodLink] = field(default_factory=dict)
    fail_add: bool = False
    lo_up: list[str] = field(default_factory=list)

    async def add_pod(
        self, *, netns: str, ifname: str, host_ifname: str, bridge: str,
        address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address, mtu: int,
    ) -> PodLink:
        if self.fail_add:
            raise NetConfigError("veth creation failed")
        link = PodLink(host_ifname, "aa:aa:aa:aa:aa:01", ifname, "aa:aa:aa:aa:aa:02", netns)
        self.pods[host_ifname] = link
        return link

    async def delete_pod(self, host_ifname: str) -> bool:
        return self.pods.pop(host_ifname, None) is not None

    async def check_pod(
        self, *, netns: str, ifname: str, host_ifname: str, bridge: str,
        address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address,
    ) -> list[str]:
        return [] if host_ifname in self.pods else [f"host interface {host_ifname} is missing"]

    async def loopback_up(self, netns: str) -> None:
        self.lo_up.append(netns)


def make_request(command: str = "ADD", container_id: str = "c1", netns: str = NETNS,
                 **config: Any) -> CNIRequest:
    conf = {"cniVersion": "1.0.0", "name": "minik", "type": "minik-cni", "bridge": "minik0"}
    conf.update(config)
    return CNIRequest(command, container_id, netns, "eth0", {}, conf)


def make_plumber(tmp_path: Path, links: FakeLinks | None = None) -> tuple[PodPlumber, IPAM, FakeLinks]:
    ipam = IPAM(tmp_path / "ipam", "10.42.0.0/24")
    fake = links or FakeLinks()
    return PodPlumber(ipam=ipam, netlink=fake, bridge="minik0", mtu=1400), ipam, fake


def test_add_result_points_ips_at_the_sandbox_interface() -> None:
    link = PodLink("veth0123", "aa:aa:aa:aa:aa:01", "eth0", "aa:aa:aa:aa:aa:02", NETNS)
    result = build_add_result(
        "1.0.0", "minik0", link, ipaddress.IPv4Interface("10.42.0.5/24"), ipaddress.IPv4Address("10.42.0.1")
    )
    assert result == {
        "cniVersion": "1.0.0",
        "interfaces": [
            {"name": "minik0"},
            {"name": "veth0123", "mac": "aa:aa:aa:aa:aa:01"},
            {"name": "eth0", "mac": "aa:aa:aa:aa:aa:02", "sandbox": NETNS},
        ],
        "ips": [{"address": "10.42.0.5/24", "gateway": "10.42.0.1", "interface": 2}],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }
    target = result["interfaces"][result["ips"][0]["interface"]]
    assert target["name"] == "eth0" and target["sandbox"] == NETNS


def test_old_result_versions_carry_ip_version() -> None:
    link = PodLink("v", "m1", "eth0", "m2", NETNS)
    result = build_add_result(
        "0.4.0", "b", link, ipaddress.IPv4Interface("10.0.0.2/24"), ipaddress.IPv4Address("10.0.0.1")
    )
    assert result["ips"][0]["version"] == "4"


def test_host_ifname_fits_kernel_limit_and_is_stable() -> None:
    name = host_ifname_for("f" * 64)
    assert len(name) <= 15 and name.startswith("veth")
    assert host_ifname_for("f" * 64) == name != host_ifname_for("e" * 64)


def test_parse_request_and_args() -> None:
    request = parse_request({
        "command": "DEL", "containerID": "abc", "netns": "", "ifName": "eth0",
        "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;junk",
        "config": {"cniVersion": "0.4.0", "type": "minik-cni"},
    })
    assert request.command == "DEL" and request.netns == "" and request.cni_version == "0.4.0"
    assert request.args["K8S_POD_NAME"] == "web"
    assert "web" in request.describe()
    assert parse_cni_args("a=1;=x;b") == {"a": "1"}


@pytest.mark.parametrize("obj,code", [
    ([], 6),
    ({"command": "STATUS", "containerID": "x", "config": {}}, 4),
    ({"command": "ADD", "config": {}}, 4),
    ({"command": "ADD", "containerID": "x", "config": "no"}, 6),
    ({"command": "ADD", "containerID": "x", "config": {"cniVersion": "9.9.9"}}, 1),
])
def test_parse_request_rejects(obj: Any, code: int) -> None:
    with pytest.raises(CNIError) as info:
        parse_request(obj)
    assert info.value.code == code


async def test_add_then_del_twice(tmp_path: Path) -> None:
    plumber, ipam, links = make_plumber(tmp_path)
    result = await plumber.handle(make_request("ADD"))
    assert result is not None
    assert result["ips"][0]["address"] == "10.42.0.2/24"
    assert host_ifname_for("c1") in links.pods
    assert await plumber.handle(make_request("CHECK")) is None
    assert await plumber.handle(make_request("DEL")) is None
    assert await plumber.handle(make_request("DEL", netns="")) is None
    assert ipam.lookup("c1") is None and links.pods == {}


async def test_repeated_add_keeps_the_address(tmp_path: Path) -> None:
    plumber, _, _ = make_plumber(tmp_path)
    first = await plumber.handle(make_request("ADD"))
    second = await plumber.handle(make_request("ADD"))
    assert first is not None and second is not None
    assert first["ips"] == second["ips"]


async def test_failed_add_releases_the_address(tmp_path: Path) -> None:
    plumber, ipam, _ = make_plumber(tmp_path, FakeLinks(fail_add=True))
    with pytest.raises(CNIError) as info:
        await plumber.handle(make_request("ADD"))
    assert info.value.code == 100 and "veth creation failed" in info.value.details
    assert ipam.list() == []


async def test_check_reports_unknown_and_broken(tmp_path: Path) -> None:
    plumber, _, links = make_plumber(tmp_path)
    with pytest.raises(CNIError) as info:
        await plumber.handle(make_request("CHECK"))
    assert info.value.code == 3
    await plumber.handle(make_request("ADD"))
    links.pods.clear()
    with pytest.raises(CNIError) as info:
        await plumber.handle(make_request("CHECK"))
    assert "missing" in info.value.details


async def test_wrong_bridge_in_config_is_refused(tmp_path: Path) -> None:
    plumber, _, _ = make_plumber(tmp_path)
    with pytest.raises(CNIError) as info:
        await plumber.handle(make_request("ADD", bridge="other0"))
    assert info.value.code == 7


async def test_loopback_type_only_brings_lo_up(tmp_path: Path) -> None:
    plumber, ipam, links = make_plumber(tmp_path)
    result = await plumber.handle(make_request("ADD", type="loopback", cniVersion="0.3.1"))
    assert result is not None and result["interfaces"][0]["name"] == "lo"
    assert links.lo_up == [NETNS] and ipam.list() == []


# -- the real shim against a real server ----------------------------------------------------

@dataclass(frozen=True)
class ShimRun:
    rc: int
    out: Any


async def exec_shim(bin_dir: Path, command: str, config: dict[str, Any] | bytes,
                    netns: str = NETNS, program: str = "minik-cni") -> ShimRun:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": netns,
           "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAME=p", "CNI_PATH": str(bin_dir),
           "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    stdin = config if isinstance(config, bytes) else json.dumps(config).encode()
    proc = await asyncio.create_subprocess_exec(
        str(bin_dir / program), env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(stdin)
    assert not err, err.decode()
    assert proc.returncode is not None
    return ShimRun(proc.returncode, json.loads(out) if out.strip() else None)


@pytest.fixture
async def served(tmp_path: Path) -> Any:
    plumber, ipam, links = make_plumber(tmp_path)
    server = CNIServer(tmp_path / "run" / "cni.sock", plumber)
    await server.start()
    bin_dir = tmp_path / "bin"
    cniconf.install_shim(bin_dir)
    config = {"cniVersion": "1.0.0", "name": "minik", "type": "minik-cni",
              "socket": str(server.socket_path), "bridge": "minik0"}
    try:
        yield bin_dir, config, ipam, server
    finally:
        await server.stop()


async def test_shim_round_trip(served: Any) -> None:
    bin_dir, config, ipam, server = served
    add = await exec_shim(bin_dir, "ADD", config)
    assert add.rc == 0, add
    assert add.out["ips"][0]["address"] == "10.42.0.2/24"
    assert ipam.lookup("c1") == ipaddress.IPv4Address("10.42.0.2")
    assert await exec_shim(bin_dir, "CHECK", config) == ShimRun(0, None)
    assert await exec_shim(bin_dir, "DEL", config) == ShimRun(0, None)
    assert await exec_shim(bin_dir, "DEL", config, netns="") == ShimRun(0, None)
    assert ipam.list() == []
    assert server.socket_path.stat().st_mode & 0o777 == 0o600


async def test_shim_passes_daemon_errors_through(served: Any) -> None:
    bin_dir, config, _, _ = served
    run = await exec_shim(bin_dir, "CHECK", config)
    assert run.rc == 1
    assert run.out["code"] == 3 and run.out["cniVersion"] == "1.0.0" and "details" in run.out


async def test_shim_version_and_bad_input(served: Any) -> None:
    bin_dir, config, _, _ = served
    version = await exec_shim(bin_dir, "VERSION", b"")
    assert version == ShimRun(0, {"cniVersion": "1.0.0",
                                  "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]})
    garbage = await exec_shim(bin_dir, "ADD", b"{not json")
    assert garbage.rc == 1 and garbage.out["code"] == 6
    old = await exec_shim(bin_dir, "ADD", {**config, "cniVersion": "0.1.0"})
    assert old.rc == 1 and old.out["code"] == 1
    no_socket = await exec_shim(bin_dir, "ADD", {k: v for k, v in config.items() if k != "socket"})
    assert no_socket.rc == 1 and no_socket.out["code"] == 7
    no_netns = await exec_shim(bin_dir, "ADD", config, netns="")
    assert no_netns.rc == 1 and no_netns.out["code"] == 4


async def test_shim_when_daemon_is_down(served: Any) -> None:
    bin_dir, config, _, server = served
    await server.stop()
    run = await exec_shim(bin_dir, "ADD", config)
    assert run.rc == 1 and run.out["code"] == 11


async def test_server_refuses_a_socket_in_use_and_replaces_a_stale_one(served: Any, tmp_path: Path) -> None:
    _, _, _, server = served
    plumber, _, _ = make_plumber(tmp_path / "other")
    with pytest.raises(CNIError, match="another process"):
        await CNIServer(server.socket_path, plumber).start()
    await server.stop()
    stale = tmp_path / "stale.sock"
    import socket
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(stale))  # bound, never listening: what a crashed daemon leaves
    replacement = CNIServer(stale, plumber)
    await replacement.start()
    await replacement.stop()
    assert not stale.exists()


async def test_server_answers_garbage_with_an_error(served: Any) -> None:
    _, _, _, server = served
    reader, writer = await asyncio.open_unix_connection(str(server.socket_path))
    writer.write(b"[1,2\n")
    await writer.drain()
    response = json.loads(await reader.readline())
    writer.close()
    assert response["ok"] is False and response["error"]["code"] == 6
