"""Deleting stale UDP conntrack entries of Services (kube-proxy's conntrack cleanup), over netlink.

Role: after the proxier changed a UDP Service's rules, flows the kernel still tracks would keep
their old NAT (to an endpoint that is gone) or their lack of NAT (rejected while the Service had
no endpoint) until they time out; `delete_flows` removes exactly those (`StaleFlow`s from the
pure `minik.net.services.stale_udp_flows`). Runs pyroute2's netlink calls in a thread.
Neighbours: called by `minik.agent.proxier` after a successful sync.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Iterable

from minik.net.services import StaleFlow

log = logging.getLogger(__name__)


def _delete(flows: list[StaleFlow]) -> int:
    import minik.net.rtnl  # noqa: F401 - pyroute2 without its package __init__
    from pyroute2.conntrack import Conntrack, NFCTAttrTuple

    deleted = 0
    with Conntrack() as ct:
        for f in flows:
            match = NFCTAttrTuple(family=socket.AF_INET, daddr=f.daddr or None, proto=socket.IPPROTO_UDP,
                                  dport=f.dport)
            for entry in list(ct.dump_entries(tuple_orig=match)):
                if f.reply_saddr and entry.tuple_reply.saddr != f.reply_saddr:
                    continue
                if f.reply_sport and entry.tuple_reply.sport != f.reply_sport:
                    continue
                if f.daddr and entry.tuple_orig.daddr != f.daddr:
                    continue
                try:
                    ct.delete(entry)
                    deleted += 1
                except Exception as e:  # gone meanwhile (the kernel expires entries concurrently)
                    log.debug("conntrack delete: %s", e)
    return deleted


async def delete_flows(flows: Iterable[StaleFlow]) -> int:
    wanted = list(flows)
    if not wanted:
        return 0
    try:
        return await asyncio.to_thread(_delete, wanted)
    except OSError as e:
        log.warning("services: cannot clear stale UDP conntrack entries: %s", e)
        return 0
