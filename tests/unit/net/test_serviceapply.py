"""ServiceRules: first sync is a full resync that removes a previous run's leftovers, later ones
are diffs, a failed diff makes the next sync full again (fake nft runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from minik.net.nft import NftError
from minik.net.serviceapply import ServiceRules
from minik.net.services import Endpoint, ServiceInfo, ServicePort, Settings, build

S = Settings("minik", "10.43.0.0/16", "10.42.0.0/16")


class FakeRunner:
    def __init__(self) -> None:
        self.scripts: list[str] = []
        self.fail_next = False
        self.localnet: list[str] = []

    async def run_script(self, script: str) -> None:
        if self.fail_next:
            self.fail_next = False
            raise NftError("boom")
        self.scripts.append(script)

    async def enable_route_localnet(self, ifname: str) -> bool:
        self.localnet.append(ifname)
        return True

    async def list_json(self, *args: str) -> str:
        kind = "chain" if args[0] == "chains" else "set"
        names = ["svc-default/gone/tcp/80", "svc-services", "hostports"] if kind == "chain" else ["svc-aff-old"]
        return json.dumps({"nftables": [{kind: {"family": "ip", "table": "minik", "name": n}} for n in names]})


def info(eps: tuple[Endpoint, ...], node_port: int = 0) -> ServiceInfo:
    return ServiceInfo("default", "web", "10.43.0.20", (ServicePort("tcp", 80, node_port, eps),))


async def test_full_then_diff_then_full_after_failure(tmp_path: Path) -> None:
    knob = tmp_path / "bridge-nf-call-iptables"
    knob.write_text("0\n")
    runner = FakeRunner()
    rules = ServiceRules(S, "minik0", runner, bridge_nf_path=knob)
    await rules.prepare_host()
    assert knob.read_text().strip() == "1"
    assert "flush map" not in runner.scripts[-1]
    first = await rules.sync(build([info((Endpoint("10.42.0.5", 8080),))], S))
    assert first is not None and first.full
    assert "delete chain ip minik svc-default/gone/tcp/80" in runner.scripts[-1]
    assert "delete set ip minik svc-aff-old" in runner.scripts[-1]
    assert "hostports" not in runner.scripts[-1]
    assert await rules.sync(build([info((Endpoint("10.42.0.5", 8080),))], S)) is None   # nothing changed
    runner.fail_next = True
    with pytest.raises(NftError):
        await rules.sync(build([info((Endpoint("10.42.0.6", 8080),))], S))
    again = await rules.sync(build([info((Endpoint("10.42.0.6", 8080),))], S))
    assert again is not None and again.full
    diff = await rules.sync(build([info((Endpoint("10.42.0.6", 8080),), node_port=30080)], S))
    assert diff is not None and not diff.full
    assert runner.localnet == ["minik0"]        # NodePorts on 127.0.0.1 need route_localnet
