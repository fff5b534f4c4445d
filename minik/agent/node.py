"""The Node object of this machine: registration, status (written only on change), lease heartbeat.

Role: kubelet's node status manager, tuned for "an idle cluster writes nothing": the Node is
created or updated once at start (labels, addresses, capacity, nodeInfo, conditions); afterwards
the status is recomputed every heartbeat but written only when something other than heartbeat
times changed. Liveness is the Lease in kube-node-lease, renewed every 10 s (leases live in
memory in minik's store). `node_status` is pure; `gather_facts` reads the host (blocking).
Neighbours: `minik.agent.agent.NodeAgent` runs `NodeReporter.run`; `minik.agent.runtime` supplies
the runtime version and a readiness callback.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import os
import platform
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minik import KUBE_VERSION
from minik.agent.status import rfc3339
from minik.client import Client, ClientError

__all__ = ["KUBELET_VERSION", "NodeFacts", "NodeReporter", "gather_facts", "node_labels", "node_status"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

# The server's gitVersion (k3s reports v1.32.x+k3s1 for both).
KUBELET_VERSION = f"{KUBE_VERSION}+minik"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION = 40
MAX_PODS = 110
KUBELET_PORT = 10250

_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "armv6l": "arm", "i686": "386",
         "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    internal_ip: str
    hostname: str
    os_image: str
    kernel: str
    arch: str
    machine_id: str
    boot_id: str
    cpus: int
    memory_bytes: int
    ephemeral_bytes: int
    runtime_version: str = ""
    system_uuid: str = ""


@dataclass(frozen=True, slots=True)
class Pressure:
    memory: bool = False
    disk: bool = False
    pid: bool = False
    ready: bool = True
    not_ready_message: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read().strip()
    except OSError:
        return ""


def _os_image(text: str) -> str:
    for line in text.splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def _meminfo(key: str) -> int:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def gather_facts(name: str, internal_ip: str, data_dir: str, runtime_version: str) -> NodeFacts:
    """Blocking: reads /proc, /etc and statvfs."""
    os.makedirs(data_dir, exist_ok=True)
    st = os.statvfs(data_dir)
    return NodeFacts(
        name=name,
        internal_ip=internal_ip,
        hostname=socket.gethostname(),
        os_image=_os_image(_read("/etc/os-release")),
        kernel=platform.release(),
        arch=_ARCH.get(platform.machine(), platform.machine()),
        machine_id=_read("/etc/machine-id"),
        boot_id=_read("/proc/sys/kernel/random/boot_id"),
        cpus=os.cpu_count() or 1,
        memory_bytes=_meminfo("MemTotal"),
        ephemeral_bytes=st.f_blocks * st.f_frsize,
        runtime_version=runtime_version,
        system_uuid=_read("/sys/class/dmi/id/product_uuid"),
    )


def measure_pressure(data_dir: str) -> Pressure:
    """Kubelet's default hard eviction thresholds: memory.available<100Mi, nodefs.available<10%."""
    avail = _meminfo("MemAvailable")
    try:
        st = os.statvfs(data_dir)
        disk = st.f_bavail < st.f_blocks * 0.10
    except OSError:
        disk = False
    try:
        pid_max = int(_read("/proc/sys/kernel/pid_max") or "0")
        nprocs = sum(1 for n in os.listdir("/proc") if n.isdigit())
        pid = pid_max > 0 and nprocs > pid_max * 0.95
    except OSError:
        pid = False
    return Pressure(memory=0 < avail < 100 * 1024 * 1024, disk=disk, pid=pid)


def node_labels(facts: NodeFacts, server: bool) -> dict[str, str]:
    labels = {
        "kubernetes.io/hostname": facts.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": facts.arch,
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": facts.arch,
        "node.kubernetes.io/instance-type": "minik",
        "beta.kubernetes.io/instance-type": "minik",
    }
    if server:
        labels["node-role.kubernetes.io/control-plane"] = "true"
        labels["node-role.kubernetes.io/master"] = "true"
    return labels


def _cond(old: list[Obj], ctype: str, status: bool, reason: str, message: str, now: float) -> Obj:
    value = "True" if status else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    transition = rfc3339(now)
    if prev is not None and prev.get("status") == value and prev.get("lastTransitionTime"):
        transition = prev["lastTransitionTime"]
    return {"type": ctype, "status": value, "reason": reason, "message": message,
            "lastHeartbeatTime": rfc3339(now), "lastTransitionTime": transition}


def node_status(facts: NodeFacts, pressure: Pressure, old: Obj, now: float) -> Obj:
    """The Node's .status. Pure; heartbeat times are `now`, transitions kept from `old`."""
    old_conds: list[Obj] = list(old.get("conditions") or [])
    cap = {
        "cpu": str(facts.cpus),
        "memory": f"{facts.memory_bytes // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{facts.ephemeral_bytes // 1024}Ki",
    }
    conds = [
        _cond(old_conds, "MemoryPressure", pressure.memory,
              "KubeletHasInsufficientMemory" if pressure.memory else "KubeletHasSufficientMemory",
              "kubelet has insufficient memory available" if pressure.memory
              else "kubelet has sufficient memory available", now),
        _cond(old_conds, "DiskPressure", pressure.disk,
              "KubeletHasDiskPressure" if pressure.disk else "KubeletHasNoDiskPressure",
              "kubelet has disk pressure" if pressure.disk else "kubelet has no disk pressure", now),
        _cond(old_conds, "PIDPressure", pressure.pid,
              "KubeletHasInsufficientPID" if pressure.pid else "KubeletHasSufficientPID",
              "kubelet has insufficient PID available" if pressure.pid
              else "kubelet has sufficient PID available", now),
        _cond(old_conds, "Ready", pressure.ready,
              "KubeletReady" if pressure.ready else "KubeletNotReady",
              "kubelet is posting ready status" if pressure.ready
              else (pressure.not_ready_message or "container runtime is not ready"), now),
    ]
    mine = {c["type"] for c in conds}
    status: Obj = {
        "capacity": cap,
        "allocatable": dict(cap),
        "conditions": [c for c in old_conds if c.get("type") not in mine] + conds,
        "addresses": [{"type": "InternalIP", "address": facts.internal_ip},
                      {"type": "Hostname", "address": facts.hostname}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": KUBELET_PORT}},
        "nodeInfo": {
            "machineID": facts.machine_id,
            "systemUUID": facts.system_uuid,
            "bootID": facts.boot_id,
            "kernelVersion": facts.kernel,
            "osImage": facts.os_image,
            "containerRuntimeVersion": facts.runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": KUBELET_VERSION,
            "operatingSystem": "linux",
            "architecture": facts.arch,
        },
    }
    for k in ("images", "volumesInUse", "volumesAttached", "config"):
        if k in old:
            status[k] = copy.deepcopy(old[k])
    return status


def _without_heartbeats(status: Obj) -> Obj:
    out = copy.deepcopy(status)
    for c in out.get("conditions") or []:
        c.pop("lastHeartbeatTime", None)
    return out


def _micro(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class NodeReporter:
    """Registers the Node, keeps its status current (writes only on change), renews its Lease."""

    def __init__(self, client: Client, facts: NodeFacts, *, server: bool, data_dir: str,
                 ready: Callable[[], Awaitable[tuple[bool, str]]],
                 now: Callable[[], float] = time.time, heartbeat: float = 10.0) -> None:
        self.client = client
        self.facts = facts
        self.server = server
        self.data_dir = data_dir
        self.ready = ready
        self.now = now
        self.heartbeat = heartbeat
        self._last: Obj | None = None
        self._node_uid = ""
        self.status_writes = 0

    @property
    def name(self) -> str:
        return self.facts.name

    async def _pressure(self) -> Pressure:
        p = await asyncio.to_thread(measure_pressure, self.data_dir)
        ok, why = await self.ready()
        return Pressure(p.memory, p.disk, p.pid, ok, why)

    async def ensure_node(self) -> Obj:
        """Create the Node (labels only; spec.podCIDR is the server's node IPAM's to set) or bring
        the labels of an existing one up to date. Returns the Node as stored."""
        labels = node_labels(self.facts, self.server)
        node = await self.client.get("nodes", "", self.name)
        if node is None:
            body: Obj = {"apiVersion": "v1", "kind": "Node",
                         "metadata": {"name": self.name, "labels": labels}, "spec": {}}
            try:
                node = await self.client.create("nodes", "", body)
                log.info("registered node %s", self.name)
            except ClientError as e:
                if not e.code == 409:
                    raise
                node = await self.client.get("nodes", "", self.name)
                assert node is not None
        else:
            cur = (node.get("metadata") or {}).get("labels") or {}
            patch: Obj = {}
            if any(cur.get(k) != v for k, v in labels.items()):
                patch["metadata"] = {"labels": labels}
            if patch:
                node = await self.client.patch("nodes", "", self.name, patch)
        return node

    async def wait_pod_cidr(self, poll: float = 0.05, warn_after: float = 10.0) -> str:
        """The Node's spec.podCIDR once the server's node IPAM has set it (the pod subnet).
        The node IPAM answers within milliseconds of the Node's creation, so the poll is short:
        it is on the path to Ready of every joining node."""
        loop = asyncio.get_running_loop()
        warn_at = loop.time() + warn_after
        while True:
            node = await self.client.get("nodes", "", self.name)
            if node is None:
                node = await self.ensure_node()
            cidr = str((node.get("spec") or {}).get("podCIDR") or "")
            if cidr:
                return cidr
            if loop.time() >= warn_at:
                log.warning("node %s: still waiting for spec.podCIDR from the server's node IPAM", self.name)
                warn_at = loop.time() + 60.0
            await asyncio.sleep(poll)

    async def register(self) -> None:
        """Create or update the Node (`ensure_node`), then write its status and Lease."""
        node = await self.ensure_node()
        self._node_uid = str(node["metadata"].get("uid", ""))
        self._last = node.get("status") or {}
        await self.sync_status()
        await self.renew_lease()

    async def sync_status(self) -> bool:
        """Write the status if it changed (ignoring heartbeat times); True when written.

        Compared with the Node as the server has it, not only with what this agent last wrote: the
        node lifecycle controller sets the conditions Unknown when heartbeats stop, and a returning
        agent must put Ready back."""
        try:
            current = await self.client.get("nodes", "", self.name)
        except ClientError:
            current = None
        if current is not None:
            self._last = current.get("status") or {}
        old = self._last or {}
        new = node_status(self.facts, await self._pressure(), old, self.now())
        if _without_heartbeats(new) == _without_heartbeats(old):
            return False
        patch = dict(new)
        for k in old:
            if k not in patch:
                patch[k] = None
        node = await self.client.patch("nodes", "", self.name, {"status": patch}, subresource="status")
        self._last = node.get("status") or new
        self.status_writes += 1
        return True

    async def renew_lease(self) -> None:
        now = _micro(self.now())
        try:
            await self.client.patch("coordination.k8s.io/leases", LEASE_NAMESPACE, self.name,
                                    {"spec": {"renewTime": now, "holderIdentity": self.name}})
            return
        except ClientError as e:
            if not e.not_found:
                raise
        body: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": self.name, "namespace": LEASE_NAMESPACE},
                     "spec": {"holderIdentity": self.name, "leaseDurationSeconds": LEASE_DURATION,
                              "renewTime": now}}
        if self._node_uid:
            body["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": self.name,
                                                    "uid": self._node_uid}]
        await self.client.create("coordination.k8s.io/leases", LEASE_NAMESPACE, body)

    async def run(self) -> None:
        """Heartbeat loop (registration must have happened)."""
        while True:
            await asyncio.sleep(self.heartbeat)
            try:
                await self.renew_lease()
                await self.sync_status()
            except ClientError as e:
                log.warning("node heartbeat: %s", e.message)
                if e.not_found:
                    await self.register()
