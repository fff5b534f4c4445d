"""The DNS flags: parsed into ServerConfig, --resolv-conf reaches the node agent, bad names refused."""

from __future__ import annotations

import argparse

import pytest

from minik.cli.main import _server_parser, build_server_config
from minik.config import ServerConfig, agent_config


def parse(*argv: str) -> ServerConfig:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    _server_parser(sub)
    return build_server_config(parser.parse_args(["server", *argv]))


def test_defaults_and_flags() -> None:
    d = parse()
    assert (d.disable_dns, d.dns_interface, d.resolv_conf, d.cluster_dns) == (False, "minik-dns0", "/etc/resolv.conf", "10.43.0.10")
    c = parse("--disable-dns", "--dns-interface", "mkd1", "--resolv-conf", "/tmp/r.conf", "--resolv-conf", "/dev/null")
    assert (c.disable_dns, c.dns_interface, c.resolv_conf) == (True, "mkd1", "/dev/null")   # the last one wins
    assert agent_config(c, "192.0.2.1").resolv_conf == "/dev/null"


@pytest.mark.parametrize("name", ["", "a-name-that-is-too-long", "a/b", "a b"])
def test_bad_dns_interface_is_refused(name: str) -> None:
    with pytest.raises(SystemExit, match="--dns-interface"):
        parse("--dns-interface", name)
