"""The cluster DNS IP on a local link (root, real netlink): on the dummy link when the kernel has
the driver, else on lo with the label lo:<interface>; a former DNS IP is replaced; removal takes
exactly our address and nothing else on lo."""

from __future__ import annotations

import os
import secrets
import subprocess

import pytest

from minik.net.dnsaddr import ensure_dns_address, fallback_label, remove_dns_address

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (netlink)")


def _route(ip: str) -> str:
    return subprocess.run(["ip", "route", "get", ip], capture_output=True, text=True, check=True).stdout


def _lo_addrs() -> str:
    return subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True).stdout


def test_dns_ip_is_local_replaced_and_removed() -> None:
    ifname = f"mkt{secrets.token_hex(3)}"
    a, b = f"10.254.{secrets.randbelow(200) + 1}.10", f"10.254.{secrets.randbelow(200) + 1}.11"
    other = f"10.253.{secrets.randbelow(200) + 1}.9"
    subprocess.run(["ip", "addr", "add", f"{other}/32", "dev", "lo"], check=True)   # not ours: must stay
    try:
        got = ensure_dns_address(ifname, a)
        assert got.address == a
        assert _route(a).startswith("local "), _route(a)
        if got.interface == "lo":
            assert got.label == fallback_label(ifname)
            assert f"{a}/32" in _lo_addrs() and got.label in _lo_addrs()
        assert ensure_dns_address(ifname, a) == got          # idempotent
        ensure_dns_address(ifname, b)                       # --cluster-dns changed
        assert _route(b).startswith("local ")
        assert not _route(a).startswith("local ")
        assert remove_dns_address(ifname, b)
        assert not _route(b).startswith("local ")
        assert f"{other}/32" in _lo_addrs()
        assert not remove_dns_address(ifname, b)
    finally:
        remove_dns_address(ifname, a)
        remove_dns_address(ifname, b)
        subprocess.run(["ip", "addr", "del", f"{other}/32", "dev", "lo"], check=False)
