"""Credit-based flow control for the pod streams multiplexed over an agent's link.

Role: the server and the agent exchange pod-stream bytes (exec/attach/logs/port-forward) as
`StreamData` messages on ONE gRPC stream, so neither side may block its link reader on a slow
consumer (that would stall every call and watch of that node) and neither may queue without
bound (a slow `kubectl port-forward` client would grow the server's RSS until OOM). Like HTTP/2's
WINDOW_UPDATE, each channel of each stream has a window in each direction: the sender may have at
most `WINDOW` bytes that the receiver's consumer has not yet taken from its queue; the receiver
returns credit (`StreamCredit`) as bytes are taken, in batches of at least `GRANT_AT`. A sender
without credit waits, and only that channel's pump waits: it stops reading from the container or
socket, which pushes back to the pod through the kernel.

Bound: a link carries at most `MAX_STREAMS` pod streams, each with at most three counted
channels per direction (CH_CONTROL is not counted), so the StreamData buffered for one link on
either side is at most MAX_STREAMS × 3 × WINDOW = 32 × 3 × 1 MiB = 96 MiB (in practice one busy
channel per stream: 32 MiB; one slow port-forward or `logs -f`: 1 MiB), whatever the consumers do.
WINDOW: 256 KiB measurably cut port-forward throughput over the link (bench/portforward.py);
1 MiB and 4 MiB measured the same, so 1 MiB.

`RecvWindow` / `SendWindow` are the pure accounting (unit-tested in tests/unit/client/
test_window.py); `SendGate` adds the asyncio wait. Both ends use them: `minik.cluster.link`
(server) and `minik.client.grpc` (agent). A peer that sends beyond its window, or grants credit
beyond the window, gets `WindowError`; the caller closes that stream only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import TypeVar

from minik.client._generated import cluster_pb2 as pb

WINDOW = 1024 * 1024
GRANT_AT = WINDOW // 4
MAX_STREAMS = 32
MERGE_LIMIT = 256 * 1024   # largest StreamData `coalesce` builds (well under the link's 8 MiB message limit)
WRITE_BATCH = 64           # queued link messages a writer takes at once to coalesce

M = TypeVar("M", pb.AgentMessage, pb.ServerMessage)


class WindowError(Exception):
    """The peer broke the flow-control contract of one stream channel."""


class RecvWindow:
    """The receiving side of one channel: how much the peer may still send, what to grant back.

    Invariant: credit + queued + pending == size, where queued are bytes received and not yet
    taken by the consumer and pending are bytes taken but not yet granted back."""

    __slots__ = ("size", "grant_at", "credit", "pending")

    def __init__(self, size: int = WINDOW, grant_at: int = GRANT_AT) -> None:
        if size <= 0 or not 0 < grant_at <= size:
            raise ValueError(f"bad window {size}/{grant_at}")
        self.size, self.grant_at = size, grant_at
        self.credit, self.pending = size, 0

    @property
    def queued(self) -> int:
        return self.size - self.credit - self.pending

    def received(self, n: int) -> None:
        """Account for n bytes of data from the peer; WindowError when they exceed its credit."""
        if n > self.credit:
            raise WindowError(f"peer sent {n} bytes with only {self.credit} bytes of its {self.size}-byte window left")
        self.credit -= n

    def taken(self, n: int) -> int:
        """The consumer took n bytes off the queue; returns the credit to grant now (0: not yet).
        Grants are batched (at least `grant_at`). That never strands a sender: a sender waits only
        at zero credit, when queued + pending == size >= grant_at, so taking the queue grants."""
        if n > self.queued:
            raise ValueError(f"took {n} bytes but only {self.queued} were queued")
        self.pending += n
        if self.pending >= self.grant_at:
            grant, self.pending = self.pending, 0
            self.credit += grant
            return grant
        return 0


class SendWindow:
    """The sending side of one channel: how many bytes may go out before the peer grants more."""

    __slots__ = ("size", "credit")

    def __init__(self, size: int = WINDOW) -> None:
        if size <= 0:
            raise ValueError(f"bad window {size}")
        self.size, self.credit = size, size

    def granted(self, n: int) -> None:
        """The peer returned n bytes of credit; WindowError if that is more than was ever sent."""
        if n <= 0 or self.credit + n > self.size:
            raise WindowError(f"peer granted {n} bytes of credit with {self.credit} of a {self.size}-byte window unused")
        self.credit += n

    def take(self, want: int) -> int:
        """Reserve up to `want` bytes of credit (possibly 0) for a message about to be sent."""
        n = min(want, self.credit)
        self.credit -= n
        return n


class SendGate:
    """A `SendWindow` a pump can wait on. `pieces(data)` yields data cut to the credit available,
    waiting for credit between pieces; each yielded piece must be sent before the next step.
    After `close(why)` waiting pumps get ConnectionError(why)."""

    __slots__ = ("window", "_ready", "closed")

    def __init__(self, size: int = WINDOW) -> None:
        self.window = SendWindow(size)
        self._ready = asyncio.Event()
        self._ready.set()
        self.closed = ""

    def grant(self, n: int) -> None:
        self.window.granted(n)
        self._ready.set()

    def close(self, why: str) -> None:
        if not self.closed:
            self.closed = why or "stream closed"
        self._ready.set()

    async def pieces(self, data: bytes) -> AsyncIterator[bytes]:
        view = memoryview(data)
        while view:
            await self._ready.wait()
            if self.closed:
                raise ConnectionError(self.closed)
            n = self.window.take(len(view))
            if not self.window.credit:
                self._ready.clear()
            if n:
                yield bytes(view[:n])
                view = view[n:]


def coalesce(batch: Sequence[M], limit: int = MERGE_LIMIT) -> list[M]:
    """The messages of `batch` in order, with each run of consecutive StreamData of the same
    stream and channel joined into one message of at most `limit` bytes (a single larger piece
    is kept as it is). A link writer drains what queued up while it was sending and writes this:
    every message through gRPC costs the same whatever its size, and pumps read the pod's bytes
    in pieces of a few KiB. Flow control is unchanged: the receiver counts bytes, not messages."""
    out: list[M] = []
    parts: list[bytes] = []
    size = 0
    for m in batch:
        if m.WhichOneof("msg") == "data":
            d = m.data
            if parts and (d.id, d.channel) == (out[-1].data.id, out[-1].data.channel) and size + len(d.data) <= limit:
                parts.append(d.data)
                size += len(d.data)
                continue
            _seal(out, parts)
            out.append(m)
            parts, size = [d.data], len(d.data)
        else:
            _seal(out, parts)
            out.append(m)
            parts, size = [], 0
    _seal(out, parts)
    return out


def _seal(out: list[M], parts: list[bytes]) -> None:
    if len(parts) > 1:
        last = out[-1]
        joined = pb.StreamData(id=last.data.id, channel=last.data.channel, data=b"".join(parts))
        out[-1] = type(last)(data=joined)
