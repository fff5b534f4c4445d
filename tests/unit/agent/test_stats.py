"""The stats collector's pure parts: CPU rates from counters, /proc parsing."""

from __future__ import annotations

from minik.agent.stats import CpuSample, cpu_rate, read_meminfo_used, read_proc_cpu


def test_cpu_rate() -> None:
    assert cpu_rate(None, CpuSample(10, 5)) is None
    # 0.5 s of CPU over 1 s → half a core.
    assert cpu_rate(CpuSample(0, 0), CpuSample(1_000_000_000, 500_000_000)) == (500_000_000, 1.0)
    assert cpu_rate(CpuSample(5, 100), CpuSample(5, 200)) is None     # no time passed
    assert cpu_rate(CpuSample(0, 900), CpuSample(10, 100)) is None    # counter reset (container restarted)


def test_proc_parsing() -> None:
    stat = "cpu  100 0 50 1000 20 5 5 0 0 0\ncpu0 1 2 3 4\n"
    assert read_proc_cpu(stat, 100) == (100 + 50 + 5 + 5) * 10_000_000
    meminfo = "MemTotal:       2048 kB\nMemFree:  100 kB\nMemAvailable:   1024 kB\n"
    assert read_meminfo_used(meminfo) == 1024 * 1024
