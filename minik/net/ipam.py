"""Pod IP address management for one node subnet, persisted one file per address.

Role: hand out IPv4 addresses from the node's pod subnet to pod sandboxes (keyed by the
container id that CNI gives us) and remember them across daemon restarts, the way the
`host-local` CNI plugin does: a file named after the address whose content is the owner.

Neighbours: used by `minik.net.cni_server` (ADD allocates, DEL releases) and
`minik.net.podnet` (lookups, reconcile with the runtime's sandboxes). Pure file work, no
netlink; callers on the event loop run the mutating methods through `asyncio.to_thread`.
"""

from __future__ import annotations

import builtins
import ipaddress
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

# Written next to the address files; remembers where the last search stopped so a freed
# address is not handed out again at once (a fresh pod inheriting a just-deleted pod's IP
# confuses conntrack entries and peers' ARP caches).
_LAST_RESERVED = "last_reserved_ip"
_TMP_SUFFIX = ".tmp"


class IPAMError(Exception):
    """Base class for address management failures."""


class SubnetExhausted(IPAMError):
    """Every usable address of the subnet is allocated."""


@dataclass(frozen=True, slots=True)
class Allocation:
    address: ipaddress.IPv4Address
    container_id: str


class IPAM:
    """Thread-safe allocator over `subnet`, persisted under `state_dir`.

    The in-memory index is loaded once at construction and kept in step with the files,
    so lookups never touch the disk. Every mutation is durable before it returns.
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        subnet: ipaddress.IPv4Network | str,
        gateway: ipaddress.IPv4Address | str | None = None,
    ) -> None:
        self._dir = Path(state_dir)
        self._subnet = ipaddress.IPv4Network(subnet)
        if self._subnet.num_addresses < 4:
            raise IPAMError(f"subnet {self._subnet} is too small for pods")
        self._gateway = (
            ipaddress.IPv4Address(gateway) if gateway is not None else self._subnet.network_address + 1
        )
        if self._gateway not in self._subnet:
            raise IPAMError(f"gateway {self._gateway} is outside {self._subnet}")
        self._lock = threading.Lock()
        self._by_ip: dict[ipaddress.IPv4Address, str] = {}
        self._by_owner: dict[str, ipaddress.IPv4Address] = {}
        self._dir.mkdir(parents=True, exist_ok=True)
        self._load()

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return self._subnet

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        return self._gateway

    def allocate(self, container_id: str) -> ipaddress.IPv4Interface:
        """Return the address owned by `container_id`, allocating one if it has none.

        Idempotent: a repeated CNI ADD for the same sandbox gets the same address.
        """
        _check_owner(container_id)
        with self._lock:
            known = self._by_owner.get(container_id)
            if known is not None:
                return self._iface(known)
            address = self._next_free()
            self._write_atomic(self._dir / str(address), container_id + "\n")
            self._by_ip[address] = container_id
            self._by_owner[container_id] = address
            # Best effort: losing this hint only changes which free address comes next.
            self._write_atomic(self._dir / _LAST_RESERVED, str(address) + "\n", sync=False)
            return self._iface(address)

    def release(self, container_id: str) -> ipaddress.IPv4Address | None:
        """Free the address of `container_id`; None if it had none (DEL runs twice)."""
        with self._lock:
            address = self._by_owner.pop(container_id, None)
            if address is None:
                return None
            del self._by_ip[address]
            self._unlink(self._dir / str(address))
            return address

    def lookup(self, container_id: str) -> ipaddress.IPv4Address | None:
        with self._lock:
            return self._by_owner.get(container_id)

    def list(self) -> list[Allocation]:
        with self._lock:
            return [Allocation(ip, cid) for ip, cid in sorted(self._by_ip.items())]

    def release_all_except(self, container_ids: Iterable[str]) -> builtins.list[Allocation]:
        """Free every allocation whose owner is not in `container_ids` (reconcile with the
        runtime's live sandboxes after a crash that skipped CNI DEL). Returns what was freed."""
        keep = set(container_ids)
        # `list` below this point is the method of that name; hence builtins.list.
        freed: builtins.list[Allocation] = []
        with self._lock:
            for address, owner in sorted(self._by_ip.items()):
                if owner in keep:
                    continue
                del self._by_ip[address]
                del self._by_owner[owner]
                self._unlink(self._dir / str(address))
                freed.append(Allocation(address, owner))
        return freed

    # -- internals (called with the lock held, except _load from __init__) -----------------

    def _iface(self, address: ipaddress.IPv4Address) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(f"{address}/{self._subnet.prefixlen}")

    def _usable(self, address: ipaddress.IPv4Address) -> bool:
        return (
            address != self._subnet.network_address
            and address != self._subnet.broadcast_address
            and address != self._gateway
        )

    def _next_free(self) -> ipaddress.IPv4Address:
        first = int(self._subnet.network_address)
        size = self._subnet.num_addresses
        start = 0
        last = self._read_last_reserved()
        if last is not None:
            start = int(last) - first + 1
        for step in range(size):
            candidate = ipaddress.IPv4Address(first + (start + step) % size)
            if self._usable(candidate) and candidate not in self._by_ip:
                return candidate
        raise SubnetExhausted(f"no free address left in {self._subnet}")

    def _read_last_reserved(self) -> ipaddress.IPv4Address | None:
        try:
            text = (self._dir / _LAST_RESERVED).read_text().strip()
            address = ipaddress.IPv4Address(text)
        except (OSError, ValueError):
            return None
        return address if address in self._subnet else None

    def _load(self) -> None:
        for entry in self._dir.iterdir():
            if entry.name.endswith(_TMP_SUFFIX):
                # Left by a crash between write and rename: never committed.
                entry.unlink(missing_ok=True)
                continue
            try:
                address = ipaddress.IPv4Address(entry.name)
            except ValueError:
                continue
            if address not in self._subnet:
                # Kept on disk untouched (the subnet may be changed back), but not ours now.
                continue
            owner = entry.read_text().strip().splitlines()
            if not owner or not owner[0]:
                continue
            self._by_ip[address] = owner[0]
            self._by_owner[owner[0]] = address

    def _write_atomic(self, path: Path, text: str, sync: bool = True) -> None:
        tmp = path.with_name(path.name + _TMP_SUFFIX)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if sync:
            self._sync_dir()

    def _unlink(self, path: Path) -> None:
        path.unlink(missing_ok=True)
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _check_owner(container_id: str) -> None:
    # The id becomes file content read back line by line; CNI ids are [A-Za-z0-9_.-].
    if not container_id or any(c in container_id for c in "\n\r\0/"):
        raise IPAMError(f"invalid container id {container_id!r}")
