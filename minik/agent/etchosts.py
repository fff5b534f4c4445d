"""The pod's Kubernetes-managed /etc/hosts (kubelet's `ensureHostsFile`).

Role: build the hosts file every container of a pod sees: localhost and the IPv6 names, the pod's
own IPs under its hostname (and `<hostname>.<subdomain>.<ns>.svc.<domain>` when spec.subdomain is
set), then spec.hostAliases; on the host network the node's own /etc/hosts plus the aliases.
Written once per pod as `<pod dir>/etc-hosts` and bind-mounted into each container that does not
mount /etc/hosts itself. Without it the runtime hands containers a copy of the host's file.
Neighbours: `minik.agent.worker` writes and mounts it when it starts a container;
`minik.agent.sandbox.pod_hostname` is the hostname the sandbox gets too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from minik.agent.sandbox import pod_hostname

__all__ = ["ETC_HOSTS", "HOSTS_FILE_NAME", "ensure_hosts_file", "hosts_content", "mounts_etc_hosts"]

ETC_HOSTS = "/etc/hosts"
HOSTS_FILE_NAME = "etc-hosts"

_MANAGED = "# Kubernetes-managed hosts file.\n"
_MANAGED_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
_LOCAL = ("127.0.0.1\tlocalhost\n"
          "::1\tlocalhost ip6-localhost ip6-loopback\n"
          "fe00::0\tip6-localnet\n"
          "fe00::0\tip6-mcastprefix\n"
          "fe00::1\tip6-allnodes\n"
          "fe00::2\tip6-allrouters\n")


def _aliases(spec: Mapping[str, Any]) -> str:
    aliases: Sequence[Mapping[str, Any]] = spec.get("hostAliases") or []
    if not aliases:
        return ""
    lines = ["", "# Entries added by HostAliases."]
    # One line per IP with all its names, as kubelet writes them.
    lines += [f"{a.get('ip', '')}\t" + "\t".join(str(h) for h in a.get("hostnames") or []) for a in aliases]
    return "\n".join(lines) + "\n"


def hosts_content(pod: dict[str, Any], pod_ips: Sequence[str], cluster_domain: str,
                  node_hosts: str = "") -> str:
    """The file's text. Pure; `node_hosts` is the node's /etc/hosts (used on the host network)."""
    spec: Mapping[str, Any] = pod.get("spec") or {}
    if spec.get("hostNetwork"):
        text = node_hosts if not node_hosts or node_hosts.endswith("\n") else node_hosts + "\n"
        return _MANAGED_HOST_NETWORK + text + _aliases(spec)
    name = pod_hostname(pod)
    sub = str(spec.get("subdomain") or "")
    out = [_MANAGED, _LOCAL]
    for ip in pod_ips:
        if sub:
            domain = f"{sub}.{pod['metadata']['namespace']}.svc.{cluster_domain}"
            out.append(f"{ip}\t{name}.{domain}\t{name}\n")
        else:
            out.append(f"{ip}\t{name}\n")
    out.append(_aliases(spec))
    return "".join(out)


def mounts_etc_hosts(container: Mapping[str, Any]) -> bool:
    """Whether the container mounts something at /etc/hosts itself (then it keeps that)."""
    return any(os.path.normpath(str(vm.get("mountPath") or "")) == ETC_HOSTS
               for vm in container.get("volumeMounts") or [])


def ensure_hosts_file(pod_dir: str, content: str) -> str:
    """Write `<pod_dir>/etc-hosts` unless it exists (kubelet writes it once per pod, so what a
    container changed in it survives restarts); returns its path. Blocking: run in a thread."""
    path = os.path.join(pod_dir, HOSTS_FILE_NAME)
    if os.path.exists(path):
        return path
    os.makedirs(pod_dir, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(content)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path
