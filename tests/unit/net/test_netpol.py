"""NetworkPolicy rule rendering: rule text per Allow, full resync vs incremental diff, and (as root
with nft) that the scripts load and that a diff leaves the kernel equal to a full render."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import secrets
import shutil
import subprocess

import pytest

from minik.net.netpol import (Allow, NetpolError, NetpolTable, PodRules, PortRange, allow_rules, build,
                              pod_chain, render, render_delete, stale_chains)
from minik.net.nft import Nft

N = ipaddress.IPv4Network
IP = ipaddress.IPv4Address


def test_allow_rule_text() -> None:
    assert allow_rules(Allow(None), egress=False) == [""]
    assert allow_rules(Allow(()), egress=False) == []   # no peer matched: no rule, not "any"
    assert allow_rules(Allow((N("10.0.0.0/8"), N("10.1.0.0/16")), ()), egress=False) == \
        ["ip saddr { 10.0.0.0/8, 10.1.0.0/16 }"]
    assert allow_rules(Allow((N("1.2.3.4/32"),), (PortRange("tcp", 80, 80), PortRange("tcp", 81, 90),
                                                  PortRange("udp", 53, 53), PortRange("sctp"))), egress=True) == [
        "ip daddr 1.2.3.4/32 meta l4proto tcp th dport 80-90",
        "ip daddr 1.2.3.4/32 meta l4proto udp th dport 53",
        "ip daddr 1.2.3.4/32 meta l4proto sctp",
    ]
    assert allow_rules(Allow(None, (PortRange("tcp", 80, 80), PortRange("tcp", 8000, 8080))), egress=False) == \
        ["meta l4proto tcp th dport { 80, 8000-8080 }"]
    assert allow_rules(Allow((N("10.43.0.10/32"),), (PortRange("udp", 53, 53),), original=True), egress=True) == \
        ["ct original ip daddr 10.43.0.10/32 meta l4proto udp ct original proto-dst 53"]


def test_port_range_validation() -> None:
    with pytest.raises(NetpolError):
        PortRange("icmp", 1, 1)
    with pytest.raises(NetpolError):
        PortRange("tcp", 90, 80)


def test_pod_chain_verdicts() -> None:
    assert pod_chain((), egress=False) == ("counter drop",)
    assert pod_chain((Allow((N("1.1.1.1/32"),)),), egress=True) == ("ip daddr 1.1.1.1/32 return", "counter drop")
    # Allow-all makes the drop unreachable: it is not emitted.
    assert pod_chain((Allow(None), Allow((N("1.1.1.1/32"),))), egress=False) == ("accept",)


def test_full_render_then_diff_touches_only_what_changed() -> None:
    a = PodRules(IP("10.42.0.5"), ingress=(Allow((N("10.42.0.6/32"),)),))
    b = PodRules(IP("10.42.0.6"), ingress=(), egress=())
    first = build([a, b])
    full = render("mk", "br0", None, first, stale_chains=["netpol-in-10-42-0-99"])
    assert "flush map ip mk netpol-ingress" in full
    assert "add element ip mk netpol-ingress { 10.42.0.5 : jump netpol-in-10-42-0-5, 10.42.0.6 : jump netpol-in-10-42-0-6 }" in full
    assert "delete chain ip mk netpol-in-10-42-0-99" in full
    assert 'add rule ip mk netpol-input iifname "br0" ip saddr vmap @netpol-egress' in full
    assert render("mk", "br0", first, first) == ""

    a2 = PodRules(IP("10.42.0.5"), ingress=(Allow((N("10.42.0.7/32"),)),))
    second = build([a2])
    diff = render("mk", "br0", first, second)
    lines = diff.splitlines()
    assert "add table" not in diff and "flush map" not in diff
    # b's elements leave both maps before its chains go; a's chain is rewritten, its element kept.
    assert lines[0] == "delete element ip mk netpol-ingress { 10.42.0.6 }"
    assert lines[1] == "delete element ip mk netpol-egress { 10.42.0.6 }"
    assert "flush chain ip mk netpol-in-10-42-0-5" in lines
    assert "add rule ip mk netpol-in-10-42-0-5 ip saddr 10.42.0.7/32 accept" in lines
    assert not any(l.startswith("add element") for l in lines)
    assert lines[-2:] == ["delete chain ip mk netpol-in-10-42-0-6", "delete chain ip mk netpol-out-10-42-0-6"]


def test_names_are_checked_and_listing_parsed() -> None:
    with pytest.raises(NetpolError):
        render("bad table", "br0", None, build([]))
    with pytest.raises(NetpolError):
        render("mk", "br0; drop", None, build([]))
    listing = "table ip mk {\n\tchain netpol-in-10-42-0-5 {\n\t}\n\tchain netpol-forward {\n\t}\n\tchain pod-forward {\n\t}\n}"
    assert stale_chains(listing) == ["netpol-in-10-42-0-5"]


class _Recorder:
    def __init__(self) -> None:
        self.scripts: list[str] = []

    async def run_script(self, script: str) -> None:
        self.scripts.append(script)

    async def list_table(self, table: str) -> str:
        raise RuntimeError("no such table")


def test_table_sync_resyncs_after_reset_and_skips_no_ops() -> None:
    async def go() -> None:
        rec = _Recorder()
        t = NetpolTable(rec, "mk", "br0")
        pods = [PodRules(IP("10.42.0.5"), ingress=())]
        assert await t.sync(pods) is True
        assert await t.sync(pods) is False
        t.reset()
        assert await t.sync(pods) is True
        assert len(rec.scripts) == 2 and rec.scripts[0] == rec.scripts[1]
    asyncio.run(go())


# ---- against the kernel ---------------------------------------------------------------------------

def _need_nft() -> None:
    if os.geteuid() != 0 or shutil.which("nft") is None:
        pytest.skip("needs root and nft")


def test_scripts_load_into_nft_and_diffs_equal_full_render() -> None:
    _need_nft()
    table = f"mkt_np_{secrets.token_hex(3)}"

    def listing() -> str:
        return subprocess.run(["nft", "list", "table", "ip", table], capture_output=True, text=True, check=True).stdout

    async def go() -> None:
        nft = Nft()
        t = NetpolTable(nft, table, "mkt0")
        v1 = [PodRules(IP("10.99.0.5"), ingress=(Allow((N("10.99.0.6/32"),), (PortRange("tcp", 80, 80),)),),
                       egress=(Allow(None, (PortRange("udp", 53, 53),)),
                               Allow((N("10.43.0.10/32"),), (PortRange("udp", 53, 53), PortRange("tcp", 53, 53)), original=True))),
              PodRules(IP("10.99.0.6"), ingress=())]
        v2 = [PodRules(IP("10.99.0.5"), ingress=(Allow((N("192.168.0.0/16"),), (PortRange("tcp", 8000, 8080), PortRange("sctp"))),)),
              PodRules(IP("10.99.0.7"), egress=())]
        assert await t.sync(v1)
        assert "10.99.0.6 : jump netpol-in-10-99-0-6" in listing()
        assert await t.sync(v2)
        incremental = listing()
        # The same state rendered from scratch (after a restart) lists identically.
        t2 = NetpolTable(nft, table, "mkt0")
        await nft.run_script(f"delete table ip {table}\n")
        await nft.run_script(f"add table ip {table}\nadd chain ip {table} netpol-in-10-99-0-42\n")  # left by a "crash"
        assert await t2.sync(v2)
        assert listing() == incremental
        assert "netpol-in-10-99-0-42" not in incremental and "netpol-in-10-99-0-6" not in incremental
        await t2.delete()
        assert "netpol" not in listing()

    try:
        asyncio.run(go())
    finally:
        subprocess.run(["nft", "delete", "table", "ip", table], capture_output=True, check=False)


def test_render_delete_is_safe_on_an_empty_table() -> None:
    assert "delete map ip mk netpol-egress" in render_delete("mk")
