"""AgentConfig from the server's flags: every setting the node agent reads, nothing else."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from minik.config import AgentConfig, ServerConfig, agent_config


def test_agent_config_carries_the_agent_settings() -> None:
    cfg = ServerConfig(data_dir="/d", run_dir="/r", config_dir="/c", node_name="n1", cluster_cidr="10.50.0.0/16",
                       service_cidr="10.60.0.0/16", cluster_dns="10.60.0.10", cluster_domain="example.local",
                       bridge_name="br9", nft_table="t9", container_runtime_endpoint="unix:///x.sock",
                       node_ip="192.0.2.7", advertise_address="192.0.2.1")
    a = agent_config(cfg, "198.51.100.1")
    assert a == AgentConfig(node_name="n1", data_dir="/d", run_dir="/r", config_dir="/c", node_ip="192.0.2.7",
                            cluster_cidr="10.50.0.0/16", service_cidr="10.60.0.0/16", cluster_dns="10.60.0.10",
                            cluster_domain="example.local", bridge_name="br9", nft_table="t9",
                            container_runtime_endpoint="unix:///x.sock", server=True)
    assert (a.agent_dir, a.pods_dir, a.registries_file) == ("/d/agent", "/d/agent/pods", "/c/registries.yaml")
    assert (a.agent_dir, a.registries_file) == (cfg.agent_dir, cfg.registries_file)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.node_name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("node_ip, advertise, fallback, want", [
    ("192.0.2.7", "192.0.2.1", "198.51.100.1", "192.0.2.7"),   # --node-ip wins
    ("", "192.0.2.1", "198.51.100.1", "192.0.2.1"),            # then --advertise-address
    ("", "", "198.51.100.1", "198.51.100.1"),                  # then what the server advertises
])
def test_node_ip_order(node_ip: str, advertise: str, fallback: str, want: str) -> None:
    assert agent_config(ServerConfig(node_ip=node_ip, advertise_address=advertise), fallback).node_ip == want


def test_node_name_defaults_to_the_hostname() -> None:
    assert agent_config(ServerConfig()).node_name == socket.gethostname().lower()


def test_service_node_port_range_flag() -> None:
    import argparse

    from minik.cli.main import _server_parser, build_server_config
    parser = argparse.ArgumentParser()
    _server_parser(parser.add_subparsers(dest="command"))
    cfg = build_server_config(parser.parse_args(["server", "--service-node-port-range", "31000-31009"]))
    assert cfg.service_node_port_range == "31000-31009"
    assert build_server_config(parser.parse_args(["server"])).service_node_port_range == "30000-32767"
    with pytest.raises(SystemExit):
        build_server_config(parser.parse_args(["server", "--service-node-port-range", "32767-30000"]))


def test_local_storage_path_flag_and_default() -> None:
    import argparse

    from minik.cli.main import _server_parser, build_server_config
    top = argparse.ArgumentParser()
    _server_parser(top.add_subparsers())
    cfg = build_server_config(top.parse_args(["server", "--data-dir", "/srv/mk"]))
    assert cfg.storage_dir == "/srv/mk/storage"
    cfg = build_server_config(top.parse_args(["server", "--data-dir", "/srv/mk", "--default-local-storage-path", "/mnt/disk"]))
    assert cfg.storage_dir == "/mnt/disk"
