"""Daemon side of minik's CNI plugin: a unix-socket server and the ADD/DEL/CHECK logic.

Role: `minik/net/minik_cni.py` (the shim containerd execs) forwards each CNI request here;
the wire protocol is documented in that file (one request per connection, one JSON line
each way). `CNIServer` owns the socket and framing; `PodPlumber` turns a request into IPAM
and netlink work and into a CNI result:
  ADD   allocate an address, veth pair into the pod netns as CNI_IFNAME, address, default
        route via the bridge gateway, lo up, host end on the bridge, hostPorts from
        `runtimeConfig.portMappings` -> CNI 1.0.0 result
  DEL   remove the hostPorts, delete the host veth if present, release the address;
        idempotent, because containerd sends it twice, the second time with an empty
        netns (pitfall 4)
  CHECK verify the above is still in place
Requests for a `loopback` type network (normally served by the shim itself) just set lo up.

Neighbours: `minik.net.ipam` (addresses), `minik.net.bridge` (netlink),
`minik.net.hostports` (hostPort DNAT), composed and started by `minik.net.podnet`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from minik.net.bridge import NetConfigError, NetnsNotFound, PodLink
from minik.net.hostports import HostPortEntry, HostPortError, PortMapping, parse_port_mappings
from minik.net.ipam import IPAM, IPAMError, SubnetExhausted
from minik.net.nft import NftError

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 1024 * 1024
READ_TIMEOUT_S = 10.0
SUPPORTED_VERSIONS = ("0.3.0", "0.3.1", "0.4.0", "1.0.0")

# CNI spec error codes (well-known below 100, plugin-specific from 100).
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN_LATER = 11
ERR_INTERNAL = 100
ERR_NO_ADDRESS = 101
ERR_CHECK_FAILED = 102


class CNIError(Exception):
    """A failure reported to the runtime as a CNI error object."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg, "details": self.details}


@dataclass(frozen=True, slots=True)
class CNIRequest:
    command: str                      # ADD, DEL, CHECK
    container_id: str
    netns: str                        # "" on the second DEL
    ifname: str
    args: dict[str, str]              # parsed CNI_ARGS (K8S_POD_NAMESPACE, K8S_POD_NAME, ...)
    config: dict[str, Any]

    @property
    def cni_version(self) -> str:
        return str(self.config.get("cniVersion", "1.0.0"))

    @property
    def plugin_type(self) -> str:
        return str(self.config.get("type", ""))

    @property
    def port_mappings(self) -> tuple[PortMapping, ...]:
        """hostPorts from `runtimeConfig.portMappings` (present because the conflist
        declares the capability); raises HostPortError when malformed."""
        runtime = self.config.get("runtimeConfig")
        if not isinstance(runtime, dict):
            return ()
        return parse_port_mappings(runtime.get("portMappings"))

    @property
    def pod(self) -> str:
        name = self.args.get("K8S_POD_NAME", "")
        return f"{self.args.get('K8S_POD_NAMESPACE', '')}/{name}" if name else ""

    def describe(self) -> str:
        pod = self.args.get("K8S_POD_NAME")
        ns = self.args.get("K8S_POD_NAMESPACE")
        who = f" pod {ns}/{pod}" if pod else ""
        return f"{self.command} {self.container_id[:12]}{who}"


def parse_request(obj: Any) -> CNIRequest:
    if not isinstance(obj, dict):
        raise CNIError(ERR_DECODE, "request is not a JSON object")
    command = obj.get("command")
    if command not in ("ADD", "DEL", "CHECK"):
        raise CNIError(ERR_INVALID_ENV, f"unsupported CNI command {command!r}")
    container_id = obj.get("containerID")
    if not isinstance(container_id, str) or not container_id:
        raise CNIError(ERR_INVALID_ENV, "containerID is required")
    netns = obj.get("netns", "")
    ifname = obj.get("ifName", "")
    config = obj.get("config")
    if not isinstance(netns, str) or not isinstance(ifname, str):
        raise CNIError(ERR_DECODE, "netns and ifName must be strings")
    if not isinstance(config, dict):
        raise CNIError(ERR_DECODE, "config must be a JSON object")
    version = str(config.get("cniVersion", "1.0.0"))
    if version not in SUPPORTED_VERSIONS:
        raise CNIError(ERR_INCOMPATIBLE_VERSION, f"unsupported cniVersion {version}")
    return CNIRequest(command, container_id, netns, ifname, parse_cni_args(obj.get("args", "")), config)


def parse_cni_args(raw: Any) -> dict[str, str]:
    """CNI_ARGS is `K=V;K2=V2`; malformed pieces are ignored (they are informational)."""
    out: dict[str, str] = {}
    if not isinstance(raw, str):
        return out
    for piece in raw.split(";"):
        key, sep, value = piece.partition("=")
        if sep and key:
            out[key.strip()] = value.strip()
    return out


def host_ifname_for(container_id: str) -> str:
    """Host end of a pod's veth: stable per sandbox so DEL finds it without state."""
    return "veth" + hashlib.sha256(container_id.encode()).hexdigest()[:11]


def build_add_result(
    version: str,
    bridge: str,
    link: PodLink,
    address: ipaddress.IPv4Interface,
    gateway: ipaddress.IPv4Address,
) -> dict[str, Any]:
    """CNI ADD result. `ips[].interface` must index the in-sandbox interface (the entry
    with `sandbox` set) or containerd reports no pod IP (pitfall 5)."""
    ip: dict[str, Any] = {"address": str(address), "gateway": str(gateway), "interface": 2}
    if not version.startswith("1."):
        ip["version"] = "4"  # required by the 0.3.x/0.4.0 result format
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": bridge},
            {"name": link.host_ifname, "mac": link.host_mac},
            {"name": link.ifname, "mac": link.mac, "sandbox": link.netns},
        ],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dns": {},
    }


def loopback_result(version: str, netns: str) -> dict[str, Any]:
    ip: dict[str, Any] = {"address": "127.0.0.1/8", "interface": 0}
    if not version.startswith("1."):
        ip["version"] = "4"
    return {
        "cniVersion": version,
        "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": netns}],
        "ips": [ip],
        "dns": {},
    }


class RequestHandler(Protocol):
    async def handle(self, request: CNIRequest) -> dict[str, Any] | None: ...


class PodLinks(Protocol):
    """The part of `minik.net.bridge.Netlink` that pod plumbing uses (fakes in tests)."""

    async def add_pod(
        self, *, netns: str, ifname: str, host_ifname: str, bridge: str,
        address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address, mtu: int,
    ) -> PodLink: ...

    async def delete_pod(self, host_ifname: str) -> bool: ...

    async def check_pod(
        self, *, netns: str, ifname: str, host_ifname: str, bridge: str,
        address: ipaddress.IPv4Interface, gateway: ipaddress.IPv4Address,
    ) -> list[str]: ...

    async def loopback_up(self, netns: str) -> None: ...


class HostPortTable(Protocol):
    """The part of `minik.net.hostports.HostPorts` pod plumbing uses."""

    def get(self, container_id: str) -> HostPortEntry | None: ...

    async def set(
        self, container_id: str, pod_ip: ipaddress.IPv4Address,
        mappings: tuple[PortMapping, ...], pod: str = "",
    ) -> bool: ...

    async def remove(self, container_id: str) -> bool: ...


class PodPlumber:
    """ADD/DEL/CHECK for pods on one node bridge."""

    def __init__(
        self,
        *,
        ipam: IPAM,
        netlink: PodLinks,
        bridge: str,
        mtu: int,
        hostports: HostPortTable | None = None,
    ) -> None:
        self._ipam = ipam
        self._netlink = netlink
        self._bridge = bridge
        self._mtu = mtu
        self._hostports = hostports
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiters: dict[str, int] = {}

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self._ipam.gateway

    async def handle(self, request: CNIRequest) -> dict[str, Any] | None:
        bridge = request.config.get("bridge")
        if request.plugin_type != "loopback" and bridge not in (None, self._bridge):
            raise CNIError(
                ERR_INVALID_CONFIG,
                f"network config names bridge {bridge!r} but this daemon serves {self._bridge!r}",
            )
        # The runtime does not overlap operations on one sandbox on purpose, but a timed-out
        # ADD can still be running when its DEL arrives; serialise per container.
        async with self._container_lock(request.container_id):
            try:
                if request.command == "ADD":
                    return await self._add(request)
                if request.command == "DEL":
                    await self._del(request)
                    return None
                await self._check(request)
                return None
            except NetnsNotFound as e:
                raise CNIError(ERR_IO, str(e)) from e
            except SubnetExhausted as e:
                raise CNIError(ERR_NO_ADDRESS, str(e)) from e
            except (NetConfigError, IPAMError, HostPortError, NftError) as e:
                raise CNIError(ERR_INTERNAL, f"{request.describe()} failed", str(e)) from e

    async def _add(self, request: CNIRequest) -> dict[str, Any]:
        if not request.netns:
            raise CNIError(ERR_INVALID_ENV, "ADD needs a netns")
        if request.plugin_type == "loopback":
            await self._netlink.loopback_up(request.netns)
            return loopback_result(request.cni_version, request.netns)
        try:
            mappings = request.port_mappings  # refuse bad input before touching anything
        except HostPortError as e:
            raise CNIError(ERR_INVALID_CONFIG, str(e)) from e
        if mappings and self._hostports is None:
            log.warning("cni %s: hostPorts requested but this server has no hostport table",
                        request.describe())
        address = await asyncio.to_thread(self._ipam.allocate, request.container_id)
        host_ifname = host_ifname_for(request.container_id)
        link_made = False
        try:
            link = await self._netlink.add_pod(
                netns=request.netns,
                ifname=request.ifname,
                host_ifname=host_ifname,
                bridge=self._bridge,
                address=address,
                gateway=self._ipam.gateway,
                mtu=self._mtu,
            )
            link_made = True
            # A repeated ADD may carry other mappings (or none): always converge, but skip
            # the nft exec for the common pod without hostPorts.
            if self._hostports is not None and (mappings or self._hostports.get(request.container_id)):
                await self._hostports.set(request.container_id, address.ip, mappings, request.pod)
        except BaseException:
            # The runtime tears the sandbox down after a failed ADD, but may not send DEL.
            if link_made:
                with contextlib.suppress(Exception):
                    await self._netlink.delete_pod(host_ifname)
            await asyncio.to_thread(self._ipam.release, request.container_id)
            raise
        ports = ", ".join(f"{m.host_port}->{m.container_port}/{m.protocol}" for m in mappings)
        log.info("cni %s: %s on %s%s", request.describe(), address, host_ifname,
                 f", hostPorts {ports}" if ports else "")
        return build_add_result(request.cni_version, self._bridge, link, address, self._ipam.gateway)

    async def _del(self, request: CNIRequest) -> None:
        if request.plugin_type == "loopback":
            return
        # Rules first: a hostPort must not DNAT to an address about to be reused.
        if self._hostports is not None:
            await self._hostports.remove(request.container_id)
        # Interface first, address second: the address must not be handed to a new pod
        # while an interface still answers for it.
        await self._netlink.delete_pod(host_ifname_for(request.container_id))
        released = await asyncio.to_thread(self._ipam.release, request.container_id)
        if released is not None:
            log.info("cni %s: released %s", request.describe(), released)

    async def _check(self, request: CNIRequest) -> None:
        if request.plugin_type == "loopback":
            return
        ip = self._ipam.lookup(request.container_id)
        if ip is None:
            raise CNIError(ERR_UNKNOWN_CONTAINER, f"no address allocated to {request.container_id}")
        problems = await self._netlink.check_pod(
            netns=request.netns,
            ifname=request.ifname,
            host_ifname=host_ifname_for(request.container_id),
            bridge=self._bridge,
            address=ipaddress.IPv4Interface(f"{ip}/{self._ipam.subnet.prefixlen}"),
            gateway=self._ipam.gateway,
        )
        if problems:
            raise CNIError(ERR_CHECK_FAILED, "pod network check failed", "; ".join(problems))

    @contextlib.asynccontextmanager
    async def _container_lock(self, container_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(container_id, asyncio.Lock())
        self._waiters[container_id] = self._waiters.get(container_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[container_id] -= 1
            if self._waiters[container_id] == 0:
                del self._waiters[container_id]
                del self._locks[container_id]


class CNIServer:
    """Serves the shim's requests on a unix socket until `stop()`."""

    def __init__(self, socket_path: str | os.PathLike[str], handler: RequestHandler) -> None:
        self._path = Path(socket_path)
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[Any]] = set()

    @property
    def socket_path(self) -> Path:
        return self._path

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self._clear_stale_socket)
        self._server = await asyncio.start_unix_server(
            self._on_client, path=str(self._path), limit=MAX_REQUEST_BYTES
        )
        # Only root (containerd) may ask us to plumb namespaces.
        os.chmod(self._path, 0o600)

    async def stop(self, grace_s: float = 5.0) -> None:
        if self._server is None:
            return
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        # Let in-flight requests finish so no veth is left half-built, but not forever.
        if self._clients:
            _, pending = await asyncio.wait(set(self._clients), timeout=grace_s)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def _clear_stale_socket(self) -> None:
        if not self._path.exists() and not self._path.is_symlink():
            return
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self._path))
        except OSError:
            self._path.unlink(missing_ok=True)  # left by a daemon that died
            return
        finally:
            probe.close()
        raise CNIError(ERR_IO, f"another process is serving {self._path}")

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            response = await self._respond(reader)
            writer.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError) as e:
            log.warning("cni client went away: %s", e)
        except Exception:
            log.exception("cni connection failed")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._clients.discard(task)

    async def _respond(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            try:
                line = await asyncio.wait_for(reader.readline(), READ_TIMEOUT_S)
            except (asyncio.LimitOverrunError, ValueError) as e:
                raise CNIError(ERR_DECODE, "request too large", str(e)) from None
            except TimeoutError:
                raise CNIError(ERR_IO, "timed out reading request") from None
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise CNIError(ERR_DECODE, "request is not JSON", str(e)) from None
            request = parse_request(obj)
            result = await self._handler.handle(request)
            return {"ok": True, "result": result}
        except CNIError as e:
            log.warning("cni request failed: %s %s", e.msg, e.details)
            return {"ok": False, "error": e.to_json()}
        except Exception as e:
            log.exception("cni request crashed")
            return {"ok": False, "error": CNIError(ERR_INTERNAL, "internal error", repr(e)).to_json()}
