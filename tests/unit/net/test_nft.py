from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from minik.net.nft import EgressRules, Nft, NftError, render_apply, render_delete


def make_rules(**overrides: object) -> EgressRules:
    values: dict[str, object] = dict(
        table="minik", cluster_cidr=ipaddress.IPv4Network("10.42.0.0/16"), bridge="minik0"
    )
    values.update(overrides)
    return EgressRules(**values)  # type: ignore[arg-type]


def test_apply_script_masquerades_only_leaving_traffic_and_is_rerunnable() -> None:
    script = render_apply(make_rules())
    assert "add table ip minik" in script
    assert (
        "add rule ip minik pod-postrouting ip saddr 10.42.0.0/16 ip daddr != 10.42.0.0/16 "
        "ip daddr != 224.0.0.0/4 masquerade" in script
    )
    assert 'add rule ip minik pod-forward iifname "minik0" accept' in script
    # Each chain is flushed after being declared and before its rules are added.
    for chain in ("pod-postrouting", "pod-forward"):
        lines = script.splitlines()
        declared = next(i for i, l in enumerate(lines) if l.startswith(f"add chain ip minik {chain} "))
        flushed = lines.index(f"flush chain ip minik {chain}")
        first_rule = next(i for i, l in enumerate(lines) if l.startswith(f"add rule ip minik {chain} "))
        assert declared < flushed < first_rule
    assert "delete" not in script


def test_delete_script_cannot_fail_on_missing_table() -> None:
    assert render_delete("mk1") == "add table ip mk1\ndelete table ip mk1\n"


@pytest.mark.parametrize("table", ["", "1abc", "a b", "x;flush ruleset"])
def test_rejects_unsafe_table_names(table: str) -> None:
    with pytest.raises(NftError):
        make_rules(table=table)
    with pytest.raises(NftError):
        render_delete(table)


def test_rejects_unsafe_bridge_name() -> None:
    with pytest.raises(NftError):
        make_rules(bridge='br" accept; flush ruleset; "')


async def test_enable_ip_forward_reports_change(tmp_path: Path) -> None:
    knob = tmp_path / "ip_forward"
    knob.write_text("0\n")
    nft = Nft(ip_forward_path=knob)
    assert await nft.enable_ip_forward() is True
    assert knob.read_text() == "1\n"
    assert await nft.enable_ip_forward() is False


async def test_failing_nft_raises_with_stderr(tmp_path: Path) -> None:
    fake = tmp_path / "nft"
    fake.write_text("#!/bin/sh\ncat >/dev/null\necho 'Error: syntax' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(NftError, match="Error: syntax"):
        await Nft(nft_binary=str(fake)).apply(make_rules())
    with pytest.raises(NftError):
        await Nft(nft_binary=str(tmp_path / "missing")).apply(make_rules())
