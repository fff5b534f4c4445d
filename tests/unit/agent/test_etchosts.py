"""The managed /etc/hosts (kubelet's format) for pod-network and host-network pods."""

from __future__ import annotations

import os
from typing import Any

from minik.agent.etchosts import ensure_hosts_file, hosts_content, mounts_etc_hosts


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "busybox1", "namespace": "default", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def test_pod_ip_under_pod_name() -> None:
    text = hosts_content(_pod(), ["10.42.0.7"], "cluster.local")
    lines = text.splitlines()
    assert lines[0] == "# Kubernetes-managed hosts file."
    assert "127.0.0.1\tlocalhost" in lines and "::1\tlocalhost ip6-localhost ip6-loopback" in lines
    assert lines[-1] == "10.42.0.7\tbusybox1"


def test_hostname_and_subdomain_give_the_fqdn_first() -> None:
    text = hosts_content(_pod(hostname="busybox-1", subdomain="busybox-subdomain"), ["10.42.0.7"], "cluster.local")
    assert text.splitlines()[-1] == "10.42.0.7\tbusybox-1.busybox-subdomain.default.svc.cluster.local\tbusybox-1"


def test_host_aliases_appended() -> None:
    pod = _pod(hostAliases=[{"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                            {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]}])
    text = hosts_content(pod, ["10.42.0.7"], "cluster.local")
    assert text.endswith("10.42.0.7\tbusybox1\n\n# Entries added by HostAliases.\n"
                         "127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\tbar.remote\n")


def test_host_network_copies_the_node_file() -> None:
    text = hosts_content(_pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}]),
                         ["192.168.1.5"], "cluster.local", node_hosts="127.0.0.1 localhost\n127.0.0.1 vm")
    assert text == ("# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n127.0.0.1 vm\n"
                    "\n# Entries added by HostAliases.\n1.2.3.4\tx\n")


def test_own_mount_wins() -> None:
    assert mounts_etc_hosts({"volumeMounts": [{"name": "h", "mountPath": "/etc/hosts/"}]})
    assert not mounts_etc_hosts({"volumeMounts": [{"name": "h", "mountPath": "/etc"}]})


def test_written_once(tmp_path: Any) -> None:
    d = str(tmp_path / "pod")
    path = ensure_hosts_file(d, "first\n")
    assert ensure_hosts_file(d, "second\n") == path
    with open(path, encoding="utf-8") as f:
        assert f.read() == "first\n"
    assert oct(os.stat(path).st_mode & 0o777) == "0o644"
