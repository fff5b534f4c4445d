"""Pod streams as byte streams: the seam between the API's streaming front and a node's back.

Role: the API server speaks kubectl's protocols (websocket channels, SPDY/3.1, chunked logs) in
`minik.api.streams`; a node agent speaks CRI in `minik.agent.streams`. They meet here, in terms
that carry no HTTP request and no CRI type, so a remote transport (gRPC to an agent on another
machine) can implement `PodStreams` later and the API front stays as it is:
- `exec`/`attach` → an `ExecSession`: stdout/stderr to read, stdin to write and close, terminal
  resizes, and the final Status (exit code) from `wait()`;
- `port_forward` → a `PortForwarder` that dials ports inside the pod's network namespace, each
  connection a `PortConnection` (bytes both ways, half-close, reset, the runtime's error text);
- `logs` → an async iterator of the rendered log bytes;
- `PodDialer` opens TCP connections to addresses in the pod network (pods/proxy,
  services/proxy), in asyncio's own terms so any HTTP client can run on them. `DirectDialer`
  dials the address itself, which is right while the API server's host routes to the pod network.
Requests are refused before any protocol upgrade by raising `StreamError`, which the front turns
into a Kubernetes Status. Also here, because both sides need them: the exec and log options,
container resolution from a Pod (`find_container`, worded like Kubernetes) and RFC3339 times.
Neighbours: `minik.api.streams.front` (uses it), `minik.agent.streams.cri` (implements it).
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

__all__ = ["ContainerRef", "DirectDialer", "ExecOptions", "PodDialer", "ExecSession", "LogOptions", "PodStreams", "PortConnection",
           "PortForwarder", "StreamError", "find_container", "parse_timestamp", "strip_scheme"]

Obj = dict[str, Any]

_NS = 1_000_000_000
# RFC3339 with optional fraction (up to nanoseconds) and a Z or ±hh:mm offset.
_TS = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?([Zz]|[+-]\d{2}:\d{2})$"
)


class StreamError(Exception):
    """Refuse a stream request with a Kubernetes Status (before any upgrade)."""

    def __init__(self, message: str, code: int = 400, reason: str = "BadRequest") -> None:
        super().__init__(message)
        self.message, self.code, self.reason = message, code, reason


@dataclass(frozen=True, slots=True)
class ExecOptions:
    command: tuple[str, ...]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool

    @property
    def wants_stderr(self) -> bool:
        # With a TTY the runtime merges stderr into stdout; no stderr stream exists.
        return self.stderr and not self.tty


@dataclass(frozen=True, slots=True)
class LogOptions:
    """The PodLogOptions that change what is read (the container is named separately)."""

    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    previous: bool = False


class ExecSession(Protocol):
    """One running exec/attach. Reads return b"" at end (and at once for a stream not asked
    for); writes and reads raise ConnectionError when the session broke."""

    async def read_stdout(self) -> bytes: ...

    async def read_stderr(self) -> bytes: ...

    async def write_stdin(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, data: bytes) -> None:
        """TerminalSize JSON (`{"Width":W,"Height":H}`) as kubectl sends it."""
        ...

    async def wait(self) -> bytes:
        """The final Status JSON: Success, or Failure (NonZeroExitCode with an ExitCode cause)."""
        ...

    async def close(self) -> None: ...


class PortConnection(Protocol):
    """One forwarded connection to a port inside the pod."""

    @property
    def reset_by_peer(self) -> bool: ...

    async def read(self) -> bytes: ...          # b"" at end

    async def write(self, data: bytes) -> None: ...

    async def close_write(self) -> None: ...

    async def reset(self) -> None: ...

    async def read_error(self) -> bytes: ...    # the runtime's error text for this connection, in chunks; b"" at end


class PortForwarder(Protocol):
    async def dial(self, port: int, request_id: str) -> PortConnection:
        """Raises ConnectionError/OSError (or asyncio.TimeoutError) when the pod cannot be reached."""
        ...

    async def close(self) -> None: ...


class PodStreams(Protocol):
    """What a node offers for its pods' streaming subresources."""

    async def exec(self, pod: Obj, opts: ExecOptions) -> ExecSession: ...

    async def attach(self, pod: Obj, opts: ExecOptions) -> ExecSession: ...

    async def port_forward(self, pod: Obj) -> PortForwarder: ...

    async def logs(self, pod: Obj, container: str, opts: LogOptions) -> AsyncIterator[bytes]:
        """Checks first (raising StreamError), then returns the stream of log bytes; closing the
        iterator (`aclose`) stops a follow."""
        ...


class PodDialer(Protocol):
    async def create_connection(self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int,
                                *, ssl: ssl.SSLContext | None = None) -> asyncio.Protocol:
        """Connect `protocol_factory()` to host:port in the pod network (as
        `loop.create_connection`); raises OSError when the address cannot be reached."""
        ...


class DirectDialer:
    """A `PodDialer` that dials the address from this host."""

    async def create_connection(self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int,
                                *, ssl: ssl.SSLContext | None = None) -> asyncio.Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(protocol_factory, host, port, ssl=ssl)
        return protocol


# ---- shared vocabulary ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ContainerRef:
    name: str
    container_id: str  # runtime id without the "containerd://" scheme; "" when none
    running: bool
    waiting_reason: str
    previous_id: str  # lastState.terminated container id, "" when none


def strip_scheme(cid: str) -> str:
    return cid.split("://", 1)[1] if "://" in cid else cid


def find_container(pod: Obj, name: str) -> ContainerRef:
    """Resolve the `container` parameter against the pod; errors worded like Kubernetes'."""
    meta, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    pod_name = meta.get("name", "")
    mains = [c.get("name", "") for c in spec.get("containers", [])]
    inits = [c.get("name", "") for c in spec.get("initContainers", [])]
    ephemeral = [c.get("name", "") for c in spec.get("ephemeralContainers", [])]
    if not name:
        if len(mains) == 1 and not inits:
            name = mains[0]
        else:
            msg = (f"a container name must be specified for pod {pod_name}, "
                   f"choose one of: [{' '.join(mains)}]")
            if inits:
                msg += f" or one of the init containers: [{' '.join(inits)}]"
            raise StreamError(msg)
    if name not in mains + inits + ephemeral:
        raise StreamError(f"container {name} is not valid for pod {pod_name}")
    statuses = (status.get("containerStatuses") or []) + (
        status.get("initContainerStatuses") or []) + (
        status.get("ephemeralContainerStatuses") or [])
    st: Obj = next((s for s in statuses if s.get("name") == name), {})
    state: Obj = st.get("state") or {}
    waiting = state.get("waiting")
    last_term = (st.get("lastState") or {}).get("terminated") or {}
    return ContainerRef(
        name=name,
        container_id=strip_scheme(st.get("containerID", "") or ""),
        running="running" in state,
        waiting_reason=(waiting or {}).get("reason", "") or "ContainerCreating",
        previous_id=strip_scheme(last_term.get("containerID", "") or ""),
    )


def parse_timestamp(text: str) -> int:
    """RFC3339 / RFC3339Nano → nanoseconds since the epoch. Raises ValueError."""
    m = _TS.match(text)
    if m is None:
        raise ValueError(f"invalid RFC3339 time {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or "", m.group(8)
    offset = 0
    if zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        offset = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    secs = int(datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp())
    return (secs - offset) * _NS + int(frac.ljust(9, "0") or 0)
