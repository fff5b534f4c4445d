"""Facts about the host that decide how containerd is configured, checked before it starts.

Role: read capabilities, the cgroup layout and filesystem support once, log what they imply, and
fail early with an actionable message when pods cannot work at all (no memory cgroup).
Neighbours: `minik.agent.containerd` renders its config.toml from `HostFacts`.
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile
from dataclasses import dataclass

__all__ = [
    "CAP_SYS_RESOURCE",
    "HostCheckError",
    "HostFacts",
    "check_host",
    "has_capability",
    "overlay_supported",
    "require_usable",
]

log = logging.getLogger(__name__)

# Bit number in the capability masks of /proc/<pid>/status (linux/capability.h).
CAP_SYS_RESOURCE = 24

_MEMORY_CGROUP_HINT = (
    "the memory cgroup controller is not enabled; pods cannot get memory limits. "
    "Add `cgroup_memory=1 cgroup_enable=memory` to the kernel command line "
    "(on a Raspberry Pi: append it to /boot/firmware/cmdline.txt or /boot/cmdline.txt) "
    "and reboot"
)


class HostCheckError(Exception):
    """The host cannot run containers the way minik needs; the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class HostFacts:
    cap_sys_resource: bool
    cgroup_version: int              # 1 (legacy or hybrid) or 2 (unified)
    memory_controller: bool
    overlayfs: bool
    # Why overlayfs is (not) usable, for the log line that explains a "native" fallback.
    overlay_reason: str = ""

    @property
    def restrict_oom_score_adj(self) -> bool:
        # Without CAP_SYS_RESOURCE runc cannot lower oom_score_adj below ours (the sandbox asks
        # for -998) and fails with "can't get final child's PID from pipe: EOF".
        return not self.cap_sys_resource

    @property
    def snapshotter(self) -> str:
        return "overlayfs" if self.overlayfs else "native"


def has_capability(bit: int, status_path: str = "/proc/self/status") -> bool:
    """Whether `bit` is set in this process's effective capability set."""
    try:
        with open(status_path, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool((int(line.split()[1], 16) >> bit) & 1)
    except OSError:
        pass
    return False


def cgroup_version(cgroup_root: str = "/sys/fs/cgroup") -> int:
    # On a unified (v2-only) host the root itself carries cgroup.controllers; a hybrid host
    # mounts v2 at <root>/unified, which does not make it a v2 host for runc.
    return 2 if os.path.exists(os.path.join(cgroup_root, "cgroup.controllers")) else 1


def memory_controller_enabled(
    version: int,
    cgroup_root: str = "/sys/fs/cgroup",
    proc_cgroups: str = "/proc/cgroups",
) -> bool:
    if version == 2:
        try:
            with open(os.path.join(cgroup_root, "cgroup.controllers"), encoding="ascii") as f:
                return "memory" in f.read().split()
        except OSError:
            return False
    # v1: /proc/cgroups lists "subsys hierarchy num_cgroups enabled"; the Raspberry Pi kernel
    # lists memory with enabled=0 unless cgroup_enable=memory is on the command line.
    try:
        with open(proc_cgroups, encoding="ascii") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 4 and fields[0] == "memory":
                    return fields[3] == "1"
    except OSError:
        pass
    return False


def overlay_supported(
    probe_dir: str | None = None, proc_filesystems: str = "/proc/filesystems"
) -> tuple[bool, str]:
    """(supported, reason). With `probe_dir` (on the filesystem containerd's root will use)
    and root privileges, a real overlay mount is tried there, because overlay registered in
    the kernel still fails on some upper filesystems (overlay on overlay, zfs < 2.2, NFS)."""
    try:
        with open(proc_filesystems, encoding="ascii") as f:
            registered = any(line.split()[-1:] == ["overlay"] for line in f)
    except OSError:
        registered = False
    if not registered:
        # The module may simply not be loaded yet; modprobe is best effort.
        try:
            subprocess.run(["modprobe", "overlay"], capture_output=True, timeout=10, check=False)
            with open(proc_filesystems, encoding="ascii") as f:
                registered = any(line.split()[-1:] == ["overlay"] for line in f)
        except (OSError, subprocess.SubprocessError):
            registered = False
    if not registered:
        return False, "overlay filesystem not available in this kernel"
    if probe_dir is None or os.geteuid() != 0:
        return True, "overlay registered in the kernel (mount not probed)"
    os.makedirs(probe_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="overlay-probe-", dir=probe_dir) as tmp:
        lower, upper, work, merged = (os.path.join(tmp, d) for d in ("l", "u", "w", "m"))
        for d in (lower, upper, work, merged):
            os.mkdir(d)
        opts = f"lowerdir={lower},upperdir={upper},workdir={work}"
        try:
            res = subprocess.run(
                ["mount", "-t", "overlay", "overlay", "-o", opts, merged],
                capture_output=True, text=True, timeout=10, check=False,
            )
        except (OSError, subprocess.SubprocessError) as err:
            return False, f"overlay mount probe failed: {err}"
        if res.returncode != 0:
            return False, f"overlay mount probe in {probe_dir} failed: {res.stderr.strip()}"
        subprocess.run(["umount", merged], capture_output=True, timeout=10, check=False)
    return True, f"overlay mount works in {probe_dir}"


def check_host(
    probe_dir: str | None = None,
    *,
    status_path: str = "/proc/self/status",
    cgroup_root: str = "/sys/fs/cgroup",
    proc_cgroups: str = "/proc/cgroups",
    proc_filesystems: str = "/proc/filesystems",
) -> HostFacts:
    """Gather `HostFacts` and log the decisions they imply. Blocking: run in a thread."""
    cap = has_capability(CAP_SYS_RESOURCE, status_path)
    version = cgroup_version(cgroup_root)
    memory = memory_controller_enabled(version, cgroup_root, proc_cgroups)
    overlay, reason = overlay_supported(probe_dir, proc_filesystems)
    facts = HostFacts(
        cap_sys_resource=cap,
        cgroup_version=version,
        memory_controller=memory,
        overlayfs=overlay,
        overlay_reason=reason,
    )
    if facts.restrict_oom_score_adj:
        log.info(
            "CAP_SYS_RESOURCE is missing from our effective capabilities (container or "
            "restricted root?): setting restrict_oom_score_adj=true so runc does not fail "
            "lowering oom_score_adj for sandboxes"
        )
    if not overlay:
        log.warning("overlayfs unusable (%s): using the slower 'native' snapshotter", reason)
    log.info("host: cgroup v%d, memory controller %s, snapshotter %s",
             version, "on" if memory else "OFF", facts.snapshotter)
    return facts


def require_usable(facts: HostFacts) -> None:
    """Raise `HostCheckError` for hosts where pods cannot work; the agent refuses to start."""
    if not facts.memory_controller:
        raise HostCheckError(_MEMORY_CGROUP_HINT)
