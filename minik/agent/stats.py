"""The node's resource usage collector: CPU and memory of every pod container and of the node.

Every `interval` seconds it asks containerd for `ListContainerStats` and reads /proc/stat and
/proc/meminfo, then turns two cumulative CPU counters into a rate (nanocores over the window,
as metrics-server does from the kubelet's counters). Memory is the working set (containers) and
MemTotal − MemAvailable (node). Only the latest sample and the previous counters are kept, in
memory; nothing is written. Implements `minik.client.metrics.ResourceMetrics`.
Neighbours: CRI through `minik.agent.cri.client`; read by the daemon's metrics API and the HPA.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from minik.agent.cri.client import CriClient
from minik.client.metrics import ContainerUsage, NodeUsage, PodUsage

log = logging.getLogger("minik.agent.stats")

POD_NAME = "io.kubernetes.pod.name"
POD_NAMESPACE = "io.kubernetes.pod.namespace"
CONTAINER_NAME = "io.kubernetes.container.name"
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class CpuSample:
    at_ns: int            # when the counter was read (monotonic for the node, CRI timestamp for containers)
    used_ns: int          # cumulative CPU time in nanoseconds


def cpu_rate(prev: CpuSample | None, cur: CpuSample) -> tuple[int, float] | None:
    """Nanocores used between two samples and the window in seconds; None when no rate exists
    (first sample, clock not advancing, or a counter reset after a restart)."""
    if prev is None or cur.at_ns <= prev.at_ns or cur.used_ns < prev.used_ns:
        return None
    window_ns = cur.at_ns - prev.at_ns
    return (cur.used_ns - prev.used_ns) * _NS // window_ns, window_ns / _NS


def read_proc_cpu(text: str, ticks_per_second: int) -> int:
    """Busy CPU time in nanoseconds from /proc/stat's first line (all but idle and iowait)."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            f = [int(x) for x in line.split()[1:]]
            # user nice system idle iowait irq softirq steal (guest time is already in user/nice)
            busy = sum(f[:8]) - f[3] - (f[4] if len(f) > 4 else 0)
            return busy * _NS // ticks_per_second
    raise ValueError("no cpu line in /proc/stat")


def read_meminfo_used(text: str) -> int:
    """MemTotal − MemAvailable in bytes."""
    vals: dict[str, int] = {}
    for line in text.splitlines():
        k, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            vals[k] = int(parts[0]) * 1024
    return vals.get("MemTotal", 0) - vals.get("MemAvailable", 0)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


class StatsCollector:
    def __init__(self, cri: Callable[[], CriClient], node_name: str, interval: float = 15.0,
                 proc: str = "/proc") -> None:
        self._cri = cri
        self.node_name = node_name
        self.interval = interval
        self._proc = proc
        self._ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self._cpu: dict[str, CpuSample] = {}          # container id → last counter
        self._node_cpu: CpuSample | None = None
        self._pods: list[PodUsage] = []
        self._nodes: list[NodeUsage] = []

    def pods(self) -> list[PodUsage]:
        return self._pods

    def nodes(self) -> list[NodeUsage]:
        return self._nodes

    async def run(self) -> None:
        while True:
            try:
                await self.sample()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # containerd restarting, a pod going away mid-call: next round
                log.debug("stats sample failed: %s", e)
            await asyncio.sleep(self.interval)

    async def sample(self) -> None:
        await self._sample_node()
        stats = await self._cri().list_container_stats()
        now = time.time()
        seen: set[str] = set()
        pods: dict[tuple[str, str], list[ContainerUsage]] = {}
        windows: dict[tuple[str, str], float] = {}
        for s in stats:
            cid = s.attributes.id
            labels = s.attributes.labels
            ns, pod, cname = labels.get(POD_NAMESPACE, ""), labels.get(POD_NAME, ""), labels.get(CONTAINER_NAME, "")
            if not (cid and ns and pod and cname):
                continue
            seen.add(cid)
            if not s.cpu.HasField("usage_core_nano_seconds"):
                continue
            cur = CpuSample(s.cpu.timestamp, s.cpu.usage_core_nano_seconds.value)
            rate = cpu_rate(self._cpu.get(cid), cur)
            self._cpu[cid] = cur
            if rate is None:
                continue
            mem = s.memory.working_set_bytes.value if s.memory.HasField("working_set_bytes") else 0
            pods.setdefault((ns, pod), []).append(ContainerUsage(cname, rate[0], mem))
            windows[(ns, pod)] = max(windows.get((ns, pod), 0.0), rate[1])
        for gone in set(self._cpu) - seen:
            del self._cpu[gone]
        self._pods = [PodUsage(ns, name, now, windows[(ns, name)], tuple(sorted(cs, key=lambda c: c.name)))
                      for (ns, name), cs in sorted(pods.items())]

    async def _sample_node(self) -> None:
        stat, meminfo = await asyncio.to_thread(lambda: (_read(f"{self._proc}/stat"), _read(f"{self._proc}/meminfo")))
        cur = CpuSample(time.monotonic_ns(), read_proc_cpu(stat, self._ticks))
        rate = cpu_rate(self._node_cpu, cur)
        self._node_cpu = cur
        if rate is not None:
            self._nodes = [NodeUsage(self.node_name, time.time(), rate[1], rate[0], read_meminfo_used(meminfo))]
