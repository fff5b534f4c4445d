from __future__ import annotations

import ast
import ipaddress
import json
import os
import sys
from pathlib import Path

from minik.net import cniconf


def _imported_modules(source: str) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def make_conf(**overrides: object) -> cniconf.NetConf:
    values: dict[str, object] = dict(
        socket="/run/minik/cni.sock",
        bridge="minik0",
        subnet=ipaddress.IPv4Network("10.42.0.0/24"),
        gateway=ipaddress.IPv4Address("10.42.0.1"),
        cluster_cidr=ipaddress.IPv4Network("10.42.0.0/16"),
        mtu=1400,
    )
    values.update(overrides)
    return cniconf.NetConf(**values)  # type: ignore[arg-type]


def test_conflist_shape() -> None:
    conflist = cniconf.render_conflist(make_conf())
    assert conflist == {
        "cniVersion": "1.0.0",
        "name": "minik",
        "plugins": [{
            "type": "minik-cni",
            "socket": "/run/minik/cni.sock",
            "bridge": "minik0",
            "subnet": "10.42.0.0/24",
            "gateway": "10.42.0.1",
            "clusterCIDR": "10.42.0.0/16",
            "mtu": 1400,
            "capabilities": {"portMappings": True},
        }],
    }


def test_plugin_stdin_injects_name_and_version_like_libcni() -> None:
    stdin = cniconf.plugin_stdin(cniconf.render_conflist(make_conf(name="net1")))
    assert stdin["name"] == "net1"
    assert stdin["cniVersion"] == "1.0.0"
    assert stdin["type"] == "minik-cni"


def test_write_conflist_atomically(tmp_path: Path) -> None:
    path = cniconf.write_conflist(tmp_path / "net.d", make_conf())
    assert path == tmp_path / "net.d" / "10-minik.conflist"
    assert json.loads(path.read_text())["plugins"][0]["socket"] == "/run/minik/cni.sock"
    assert os.listdir(tmp_path / "net.d") == ["10-minik.conflist"]
    cniconf.remove_conflist(tmp_path / "net.d")
    cniconf.remove_conflist(tmp_path / "net.d")
    assert not path.exists()


def test_install_shim_under_both_names(tmp_path: Path) -> None:
    paths = cniconf.install_shim(tmp_path / "bin")
    assert [p.name for p in paths] == ["minik-cni", "loopback"]
    for path in paths:
        assert path.stat().st_mode & 0o777 == 0o755
        text = path.read_text()
        assert text.startswith("#!/usr/bin/python3 -IS\n")
        assert text.count("#!") == 1
        assert _imported_modules(text) <= set(sys.stdlib_module_names)
    mtime = paths[0].stat().st_mtime_ns
    cniconf.install_shim(tmp_path / "bin")
    assert paths[0].stat().st_mtime_ns == mtime  # unchanged content is not rewritten
    cniconf.remove_shim(tmp_path / "bin")
    assert list((tmp_path / "bin").iterdir()) == []


def test_shim_interpreter_is_configurable(tmp_path: Path) -> None:
    (path, _) = cniconf.install_shim(tmp_path, python="/opt/py/bin/python3")
    assert path.read_text().startswith("#!/opt/py/bin/python3 -IS\n")
