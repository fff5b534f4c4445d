"""The host's resolv.conf as pods and cluster DNS should see it.

`--resolv-conf` names it (default /etc/resolv.conf). When that file names only systemd-resolved's
stub listener (127.0.0.53 / 127.0.0.54), which is unreachable from a pod's network namespace and
would make cluster DNS forward to a loop-back stub, the real upstreams are read from
/run/systemd/resolve/resolv.conf instead, as k3s does for the kubelet and CoreDNS.
Neighbours: `minik.dns.forward` (upstreams for names outside the cluster) and `minik.agent.runtime`
(dnsPolicy Default and the host search list of ClusterFirst pods).
"""

from __future__ import annotations

import ipaddress

SYSTEMD_RESOLV_CONF = "/run/systemd/resolve/resolv.conf"
STUB_ADDRESSES = frozenset({"127.0.0.53", "127.0.0.54"})


def parse_nameservers(text: str) -> list[str]:
    """The valid `nameserver` addresses of a resolv.conf, in order, without duplicates."""
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(fields) >= 2 and fields[0] == "nameserver":
            addr = fields[1]
            try:
                ipaddress.ip_address(addr.split("%", 1)[0])
            except ValueError:
                continue
            if addr not in out:
                out.append(addr)
    return out


def read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def host_resolv_conf(path: str, systemd_path: str = SYSTEMD_RESOLV_CONF) -> str:
    """The text of `path`, or of systemd-resolved's real resolv.conf when `path` names only its stub."""
    text = read_text(path)
    servers = parse_nameservers(text)
    if servers and all(s in STUB_ADDRESSES for s in servers):
        real = read_text(systemd_path)
        if parse_nameservers(real):
            return real
    return text
