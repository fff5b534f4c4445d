"""hostcheck against fake /proc and /sys trees."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from minik.agent.hostcheck import (
    CAP_SYS_RESOURCE,
    HostCheckError,
    HostFacts,
    check_host,
    has_capability,
    require_usable,
)


def make_host(
    tmp: Path,
    *,
    cap_eff: str = "000001ffffffffff",
    v2_controllers: str | None = None,
    v1_memory_enabled: str = "1",
    overlay: bool = True,
) -> dict[str, str]:
    status = tmp / "status"
    status.write_text(f"Name:\tpython\nCapInh:\t0000000000000000\nCapEff:\t{cap_eff}\n")
    cgroot = tmp / "cgroup"
    cgroot.mkdir()
    if v2_controllers is not None:
        (cgroot / "cgroup.controllers").write_text(v2_controllers + "\n")
    cgroups = tmp / "cgroups"
    cgroups.write_text(
        "#subsys_name\thierarchy\tnum_cgroups\tenabled\n"
        "cpu\t1\t1\t1\n"
        f"memory\t4\t36\t{v1_memory_enabled}\n"
    )
    fs = tmp / "filesystems"
    fs.write_text("nodev\tsysfs\n\text4\n" + ("nodev\toverlay\n" if overlay else ""))
    return {
        "status_path": str(status),
        "cgroup_root": str(cgroot),
        "proc_cgroups": str(cgroups),
        "proc_filesystems": str(fs),
    }


def test_missing_cap_sys_resource_restricts_oom_score_adj(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # This machine's mask: everything but bit 24.
    host = make_host(tmp_path, cap_eff="000001fffeffffff")
    with caplog.at_level(logging.INFO, logger="minik.agent.hostcheck"):
        facts = check_host(**host)
    assert not facts.cap_sys_resource
    assert facts.restrict_oom_score_adj
    assert "CAP_SYS_RESOURCE" in caplog.text and "restrict_oom_score_adj" in caplog.text


def test_full_capabilities(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path))
    assert facts.cap_sys_resource and not facts.restrict_oom_score_adj


def test_has_capability_reads_bits(tmp_path: Path) -> None:
    host = make_host(tmp_path, cap_eff=f"{1 << CAP_SYS_RESOURCE:016x}")
    assert has_capability(CAP_SYS_RESOURCE, host["status_path"])
    assert not has_capability(CAP_SYS_RESOURCE - 1, host["status_path"])
    assert not has_capability(CAP_SYS_RESOURCE, str(tmp_path / "missing"))


def test_cgroup_v2_memory_controller(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path, v2_controllers="cpuset cpu io memory pids"))
    assert facts.cgroup_version == 2 and facts.memory_controller
    require_usable(facts)


def test_cgroup_v2_without_memory_is_refused_with_kernel_hint(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path, v2_controllers="cpuset cpu io pids"))
    assert facts.cgroup_version == 2 and not facts.memory_controller
    with pytest.raises(HostCheckError, match="cgroup_memory=1 cgroup_enable=memory"):
        require_usable(facts)


def test_cgroup_v1_memory_disabled_like_a_stock_raspberry_pi(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path, v1_memory_enabled="0"))
    assert facts.cgroup_version == 1 and not facts.memory_controller
    with pytest.raises(HostCheckError, match="cgroup_enable=memory"):
        require_usable(facts)


def test_no_overlay_falls_back_to_native(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path, overlay=False))
    assert not facts.overlayfs
    assert facts.snapshotter == "native"
    assert facts.overlay_reason


def test_overlay_registered_without_probe(tmp_path: Path) -> None:
    facts = check_host(**make_host(tmp_path, overlay=True))
    assert facts.overlayfs and facts.snapshotter == "overlayfs"


def test_host_facts_is_a_frozen_value() -> None:
    facts = HostFacts(cap_sys_resource=True, cgroup_version=2, memory_controller=True,
                      overlayfs=True)
    with pytest.raises(AttributeError):
        facts.overlayfs = False  # type: ignore[misc]
