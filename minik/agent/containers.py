"""Pod container → CRI `ContainerConfig`. Pure.

Role: the container half of kubelet's CRI translation: metadata (name, attempt), image,
command/args with $(VAR) expansion, env, working dir, mounts, tty/stdin, security context (pod
level merged with container level: user/group, privileged, capabilities, read-only root,
no_new_privs from allowPrivilegeEscalation, seccomp, default masked/read-only /proc paths),
resources (cpu shares from requests, cfs quota from limits, memory limit), the PID namespace of an
ephemeral container's target (NamespaceMode TARGET), the kubelet log layout
`<container>/<restartCount>.log` (the log streaming code relies on it), labels and annotations
that later let a restarted agent recognise and adopt its containers.
Neighbours: `minik.agent.env` (environment), `minik.agent.volumes` (mounts),
`minik.agent.sandbox` (namespaces, label names); the worker calls `CriClient.create_container`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minik.agent.cri import pb
from minik.agent.env import expand
from minik.agent.plan import container_hash
from minik.agent.sandbox import (
    LABEL_CONTAINER_NAME,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    namespace_options,
)
from minik.apis.quantity import Quantity

__all__ = [
    "ANNOTATION_HASH",
    "ANNOTATION_KIND",
    "ANNOTATION_RESTART_COUNT",
    "ANNOTATION_TERMINATION_PATH",
    "ANNOTATION_TERMINATION_POLICY",
    "MountSpec",
    "container_config",
    "linux_resources",
    "non_root_violation",
]

Obj = dict[str, Any]

ANNOTATION_RESTART_COUNT = "io.kubernetes.container.restartCount"
ANNOTATION_HASH = "io.kubernetes.container.hash"
ANNOTATION_TERMINATION_PATH = "io.kubernetes.container.terminationMessagePath"
ANNOTATION_TERMINATION_POLICY = "io.kubernetes.container.terminationMessagePolicy"
ANNOTATION_GRACE = "io.kubernetes.pod.terminationGracePeriod"
ANNOTATION_KIND = "io.minik.container.kind"

# Kubelet's defaults for non-privileged containers (procMount Default).
DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Kubelet's cpu arithmetic (pkg/kubelet/cm/helpers_linux.go).
MIN_SHARES = 2
SHARES_PER_CPU = 1024
QUOTA_PERIOD = 100000
MIN_QUOTA = 1000


@dataclass(frozen=True, slots=True)
class MountSpec:
    container_path: str
    host_path: str
    readonly: bool = False
    propagation: str = ""       # "" | HostToContainer | Bidirectional


def _quantity(raw: Any) -> Quantity | None:
    return None if raw is None else Quantity.of(str(raw))


def linux_resources(container: Mapping[str, Any]) -> pb.LinuxContainerResources:
    res: Obj = container.get("resources") or {}
    req: Obj = res.get("requests") or {}
    lim: Obj = res.get("limits") or {}
    out = pb.LinuxContainerResources()
    cpu_req = _quantity(req.get("cpu")) or _quantity(lim.get("cpu"))
    shares = MIN_SHARES
    if cpu_req is not None:
        shares = max(MIN_SHARES, cpu_req.milli_value() * SHARES_PER_CPU // 1000)
    out.cpu_shares = shares
    cpu_lim = _quantity(lim.get("cpu"))
    if cpu_lim is not None and cpu_lim.milli_value() > 0:
        out.cpu_period = QUOTA_PERIOD
        out.cpu_quota = max(MIN_QUOTA, cpu_lim.milli_value() * QUOTA_PERIOD // 1000)
    mem_lim = _quantity(lim.get("memory"))
    if mem_lim is not None and mem_lim.int_value() > 0:
        out.memory_limit_in_bytes = mem_lim.int_value()
    return out


def _merged_security(pod: Obj, container: Mapping[str, Any]) -> Obj:
    psc: Obj = (pod.get("spec") or {}).get("securityContext") or {}
    csc: Obj = dict(container.get("securityContext") or {})
    for key in ("runAsUser", "runAsGroup", "runAsNonRoot", "seccompProfile"):
        if csc.get(key) is None and psc.get(key) is not None:
            csc[key] = psc[key]
    return csc


def non_root_violation(pod: Obj, container: Mapping[str, Any], image_uid: int | None,
                       image_user: str) -> str:
    """Kubelet's runAsNonRoot check; "" when fine, else the CreateContainerConfigError message."""
    sc = _merged_security(pod, container)
    if not sc.get("runAsNonRoot"):
        return ""
    if sc.get("runAsUser") is not None:
        if int(sc["runAsUser"]) == 0:
            return "container's runAsUser breaks non-root policy"
        return ""
    if image_uid is None:
        if image_user and not image_user.isdigit():
            return "container has runAsNonRoot and image has non-numeric user, cannot verify user is non-root"
        if not image_user or image_user == "0":
            return "container has runAsNonRoot and image will run as root"
        return ""
    if image_uid == 0:
        return "container has runAsNonRoot and image will run as root"
    return ""


def _namespaces(pod: Obj, target_id: str) -> pb.NamespaceOption:
    """Kubelet's namespaces for a container: the pod's, except that an ephemeral container with a
    target joins the target container's PID namespace (only where the pod would otherwise give
    it a private one: with shareProcessNamespace or hostPID it already sees the target)."""
    ns = namespace_options(pod)
    if target_id and ns.pid == pb.CONTAINER:
        ns.pid = pb.TARGET
        ns.target_id = target_id
    return ns


def _security_context(pod: Obj, container: Mapping[str, Any],
                      target_id: str = "") -> pb.LinuxContainerSecurityContext:
    sc = _merged_security(pod, container)
    psc: Obj = (pod.get("spec") or {}).get("securityContext") or {}
    privileged = bool(sc.get("privileged"))
    caps: Obj = sc.get("capabilities") or {}
    out = pb.LinuxContainerSecurityContext(
        namespace_options=_namespaces(pod, target_id),
        privileged=privileged,
        readonly_rootfs=bool(sc.get("readOnlyRootFilesystem")),
        capabilities=pb.Capability(add_capabilities=[str(c) for c in caps.get("add") or []],
                                   drop_capabilities=[str(c) for c in caps.get("drop") or []]),
        supplemental_groups=[int(g) for g in psc.get("supplementalGroups") or []]
        + ([int(psc["fsGroup"])] if psc.get("fsGroup") is not None else []),
        # Kubelet: no_new_privs only when allowPrivilegeEscalation is explicitly false.
        no_new_privs=sc.get("allowPrivilegeEscalation") is False,
    )
    if sc.get("runAsUser") is not None:
        out.run_as_user.value = int(sc["runAsUser"])
    if sc.get("runAsGroup") is not None:
        out.run_as_group.value = int(sc["runAsGroup"])
    if not privileged and sc.get("procMount") != "Unmasked":
        out.masked_paths.extend(DEFAULT_MASKED_PATHS)
        out.readonly_paths.extend(DEFAULT_READONLY_PATHS)
    seccomp = (sc.get("seccompProfile") or {}).get("type")
    if seccomp == "RuntimeDefault":
        out.seccomp.profile_type = pb.SecurityProfile.RuntimeDefault
    elif seccomp == "Localhost":
        out.seccomp.profile_type = pb.SecurityProfile.Localhost
        out.seccomp.localhost_ref = str((sc.get("seccompProfile") or {}).get("localhostProfile", ""))
    else:
        out.seccomp.profile_type = pb.SecurityProfile.Unconfined
    return out


_PROPAGATION = {
    "HostToContainer": pb.PROPAGATION_HOST_TO_CONTAINER,
    "Bidirectional": pb.PROPAGATION_BIDIRECTIONAL,
}


def container_config(
    pod: Obj,
    container: Mapping[str, Any],
    *,
    kind: str,
    attempt: int,
    env: Sequence[tuple[str, str]],
    mounts: Sequence[MountSpec],
    image_ref: str = "",
    target_id: str = "",
) -> pb.ContainerConfig:
    """`image_ref` (the id PullImage/ImageStatus returned) pins the exact image pulled;
    `target_id` (ephemeral containers with a targetContainerName) is the runtime id of the
    container whose PID namespace this one joins."""
    m = pod["metadata"]
    spec = pod.get("spec") or {}
    name = str(container["name"])
    env_map = dict(env)
    command = [expand(str(a), env_map) for a in container.get("command") or []]
    args = [expand(str(a), env_map) for a in container.get("args") or []]
    grace = spec.get("terminationGracePeriodSeconds")
    annotations = {
        ANNOTATION_RESTART_COUNT: str(attempt),
        ANNOTATION_HASH: container_hash(container),
        ANNOTATION_KIND: kind,
        ANNOTATION_TERMINATION_PATH: str(container.get("terminationMessagePath") or "/dev/termination-log"),
        ANNOTATION_TERMINATION_POLICY: str(container.get("terminationMessagePolicy") or "File"),
        ANNOTATION_GRACE: str(30 if grace is None else int(grace)),
    }
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        image=pb.ImageSpec(image=image_ref or str(container.get("image", ""))),
        command=command,
        args=args,
        working_dir=str(container.get("workingDir") or ""),
        envs=[pb.KeyValue(key=k, value=v) for k, v in env],
        mounts=[pb.Mount(container_path=mt.container_path, host_path=mt.host_path,
                         readonly=mt.readonly,
                         propagation=_PROPAGATION.get(mt.propagation, pb.PROPAGATION_PRIVATE))
                for mt in mounts],
        labels={LABEL_CONTAINER_NAME: name, LABEL_POD_NAME: m["name"],
                LABEL_POD_NAMESPACE: m["namespace"], LABEL_POD_UID: m["uid"]},
        annotations=annotations,
        log_path=f"{name}/{attempt}.log",
        stdin=bool(container.get("stdin")),
        stdin_once=bool(container.get("stdinOnce")),
        tty=bool(container.get("tty")),
        linux=pb.LinuxContainerConfig(resources=linux_resources(container),
                                      security_context=_security_context(pod, container, target_id)),
    )
