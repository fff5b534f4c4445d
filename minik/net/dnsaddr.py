"""The cluster DNS IP owned by this node: an address on a local interface, so that pods' queries to
it (their resolv.conf says `nameserver <DNS IP>`) are delivered to the daemon on this host and
never routed out of the default gateway.

The address goes on a dummy link (`--dns-interface`, default minik-dns0) that holds nothing else.
Where the kernel has no dummy driver (EOPNOTSUPP, e.g. a kernel without modules), it goes on `lo`
instead with the label `lo:<interface>` (IPv4), so uninstall/killall find and remove exactly that
address and nothing else. The address stays when the daemon stops: pods keep running and their
queries must keep ending on this host (refused, while no daemon listens) rather than leave it.
Blocking pyroute2 calls; callers run them in a thread.
Neighbours: `minik.dns.service` (ensures it at start); scripts/killall.sh (removes it).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
from dataclasses import dataclass

from minik.net.rtnl import IPRoute, NetlinkError

log = logging.getLogger("minik.net.dnsaddr")

_MAX_IFNAME = 15
_IFF_UP = 0x1


class DnsAddressError(Exception):
    """The DNS IP could not be put on a local interface."""


@dataclass(frozen=True, slots=True)
class DnsAddress:
    interface: str      # the dummy link, or "lo" when the kernel has no dummy driver
    address: str
    label: str = ""     # "lo:<dns interface>" on the fallback


def fallback_label(ifname: str) -> str:
    return f"lo:{ifname}"[:_MAX_IFNAME]


def _prefixlen(ip: str) -> int:
    return 128 if ipaddress.ip_address(ip).version == 6 else 32


def _has_addr(ipr: IPRoute, index: int, ip: str) -> bool:
    want = ipaddress.ip_address(ip)
    for a in ipr.get_addr(index=index):
        got = a.get_attr("IFA_ADDRESS")
        if got and ipaddress.ip_address(got) == want:
            return True
    return False


def ensure_dns_address(ifname: str, ip: str) -> DnsAddress:
    """Put `ip` on dummy link `ifname` (created and set up if missing), or on `lo` as a fallback."""
    if not ifname or len(ifname) > _MAX_IFNAME:
        raise DnsAddressError(f"DNS interface name {ifname!r} must have 1 to {_MAX_IFNAME} characters")
    ipaddress.ip_address(ip)
    try:
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=ifname)
            if not found:
                try:
                    ipr.link("add", ifname=ifname, kind="dummy")
                except NetlinkError as e:
                    if e.code not in (errno.EOPNOTSUPP, errno.ENODEV, errno.EINVAL):
                        raise
                    return _on_loopback(ipr, ifname, ip)
                found = ipr.link_lookup(ifname=ifname)
            index = found[0]
            _drop_others(ipr, index, ip, label=None)   # a former --cluster-dns
            if not _has_addr(ipr, index, ip):
                ipr.addr("add", index=index, address=ip, prefixlen=_prefixlen(ip))
            ipr.link("set", index=index, state="up")
            return DnsAddress(ifname, ip)
    except NetlinkError as e:
        raise DnsAddressError(f"cannot put DNS IP {ip} on {ifname}: {e}") from e


def _on_loopback(ipr: IPRoute, ifname: str, ip: str) -> DnsAddress:
    index = ipr.link_lookup(ifname="lo")[0]
    label = fallback_label(ifname) if ipaddress.ip_address(ip).version == 4 else ""
    _drop_others(ipr, index, ip, label=fallback_label(ifname))
    if not _has_addr(ipr, index, ip):
        if label:
            ipr.addr("add", index=index, address=ip, prefixlen=_prefixlen(ip), label=label)
        else:
            ipr.addr("add", index=index, address=ip, prefixlen=_prefixlen(ip))
    log.info("no dummy interface driver: DNS IP %s put on lo (label %s)", ip, label or "none")
    return DnsAddress("lo", ip, label)


def _drop_others(ipr: IPRoute, index: int, ip: str, label: str | None) -> None:
    """Remove addresses other than `ip` from our dummy link (label None: all of them are ours) or
    from lo (only those carrying our label)."""
    want = ipaddress.ip_address(ip)
    for a in ipr.get_addr(index=index):
        got = a.get_attr("IFA_ADDRESS")
        if not got or ipaddress.ip_address(got) == want or ipaddress.ip_address(got).is_link_local:
            continue
        if label is None or a.get_attr("IFA_LABEL") == label:
            log.info("removing stale DNS IP %s", got)
            ipr.addr("del", index=index, address=got, prefixlen=a["prefixlen"])


def remove_dns_address(ifname: str, ip: str) -> bool:
    """Delete the dummy link `ifname`, or the DNS IP from `lo` (only if it carries our label);
    True when something was removed."""
    removed = False
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=ifname)
        if found:
            ipr.link("del", index=found[0])
            removed = True
        lo = ipr.link_lookup(ifname="lo")[0]
        label = fallback_label(ifname)
        want = ipaddress.ip_address(ip)
        for a in ipr.get_addr(index=lo):
            got = a.get_attr("IFA_ADDRESS")
            if got and ipaddress.ip_address(got) == want and (want.version == 6 or a.get_attr("IFA_LABEL") == label):
                ipr.addr("del", index=lo, address=got, prefixlen=a["prefixlen"])
                removed = True
    return removed
