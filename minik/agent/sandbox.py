"""Pod → CRI `PodSandboxConfig`. Pure.

Role: the sandbox half of kubelet's CRI translation: metadata (name, namespace, uid, attempt),
hostname, log directory, DNS (ClusterFirst / ClusterFirstWithHostNet / Default / None plus
spec.dnsConfig), host port mappings, namespaces (hostNetwork/hostPID/hostIPC,
shareProcessNamespace), sysctls, labels and annotations, and the installation's cgroup parent.
Neighbours: `minik.agent.containers` builds the container configs that are created inside this
sandbox; `minik.agent.worker` passes the result to `CriClient.run_pod_sandbox`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minik.agent.cri import pb

__all__ = [
    "LABEL_CONTAINER_NAME",
    "LABEL_POD_NAME",
    "LABEL_POD_NAMESPACE",
    "LABEL_POD_UID",
    "SandboxContext",
    "dns_config",
    "log_directory",
    "parse_resolv_conf",
    "pod_hostname",
    "pod_labels",
    "sandbox_config",
]

Obj = dict[str, Any]

LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_UID = "io.kubernetes.pod.uid"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"

# Kubelet's limits: glibc honours at most 6 search domains and 3 nameservers.
_MAX_SEARCH = 32
_MAX_NAMESERVERS = 3


@dataclass(frozen=True, slots=True)
class SandboxContext:
    """Node facts the sandbox config depends on."""

    pods_dir: str                     # <data_dir>/agent/pods
    cluster_dns: str
    cluster_domain: str
    host_resolv: str = ""             # text of the host's /etc/resolv.conf (dnsPolicy Default)
    cgroup_parent: str = ""           # this installation's cgroup for pods ("" → containerd's /k8s.io)


def log_directory(pods_dir: str, pod: Obj) -> str:
    m = pod["metadata"]
    return os.path.join(pods_dir, f"{m['namespace']}_{m['name']}_{m['uid']}")


def pod_labels(pod: Obj) -> dict[str, str]:
    m = pod["metadata"]
    labels = {str(k): str(v) for k, v in (m.get("labels") or {}).items()}
    labels.update({LABEL_POD_NAME: m["name"], LABEL_POD_NAMESPACE: m["namespace"],
                   LABEL_POD_UID: m["uid"]})
    return labels


def parse_resolv_conf(text: str) -> tuple[list[str], list[str], list[str]]:
    """(nameservers, searches, options) of a resolv.conf."""
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            servers.append(fields[1])
        elif fields[0] in ("search", "domain"):
            searches = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return servers, searches, options


def _merge_options(base: Sequence[str], extra: Sequence[Mapping[str, Any]]) -> list[str]:
    out: dict[str, str] = {}
    for opt in base:
        out[opt.partition(":")[0]] = opt
    for o in extra:
        name = str(o.get("name", ""))
        if not name:
            continue
        val = o.get("value")
        out[name] = f"{name}:{val}" if val not in (None, "") else name
    return list(out.values())


def dns_config(pod: Obj, ctx: SandboxContext) -> pb.DNSConfig | None:
    """Kubelet's DNS policy rules; None lets the runtime copy the host's resolv.conf."""
    spec = pod.get("spec") or {}
    ns = pod["metadata"]["namespace"]
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = bool(spec.get("hostNetwork"))
    if policy == "ClusterFirst" and host_network:
        policy = "Default"  # kubelet: ClusterFirst on the host network falls back to Default
    servers: list[str]
    searches: list[str]
    options: list[str]
    if policy in ("ClusterFirst", "ClusterFirstWithHostNet") and ctx.cluster_dns:
        d = ctx.cluster_domain
        servers = [ctx.cluster_dns]
        searches = [f"{ns}.svc.{d}", f"svc.{d}", d]
        _, host_search, _ = parse_resolv_conf(ctx.host_resolv)
        searches += [s for s in host_search if s not in searches]
        options = ["ndots:5"]
    elif policy == "None":
        servers, searches, options = [], [], []
    else:
        servers, searches, options = parse_resolv_conf(ctx.host_resolv)
    extra: Obj = spec.get("dnsConfig") or {}
    servers += [s for s in extra.get("nameservers") or [] if s not in servers]
    searches += [s for s in extra.get("searches") or [] if s not in searches]
    options = _merge_options(options, extra.get("options") or [])
    if not (servers or searches or options) and policy == "Default":
        return None
    return pb.DNSConfig(servers=servers[:_MAX_NAMESERVERS], searches=searches[:_MAX_SEARCH],
                        options=options)


def _protocol(name: str) -> int:
    return {"UDP": pb.UDP, "SCTP": pb.SCTP}.get(name, pb.TCP)


def pod_hostname(pod: Obj) -> str:
    """spec.hostname, else the pod name, cut to one 63-character label."""
    spec = pod.get("spec") or {}
    name = str(spec.get("hostname") or pod["metadata"]["name"])
    # A pod name may be 253 characters; a hostname label at most 63 (kubelet truncates too).
    return name[:63].rstrip("-.")


def namespace_options(pod: Obj) -> pb.NamespaceOption:
    spec = pod.get("spec") or {}
    return pb.NamespaceOption(
        network=pb.NODE if spec.get("hostNetwork") else pb.POD,
        pid=pb.NODE if spec.get("hostPID") else (pb.POD if spec.get("shareProcessNamespace") else pb.CONTAINER),
        ipc=pb.NODE if spec.get("hostIPC") else pb.POD,
    )


def sandbox_config(pod: Obj, attempt: int, ctx: SandboxContext) -> pb.PodSandboxConfig:
    m = pod["metadata"]
    spec = pod.get("spec") or {}
    psc: Obj = spec.get("securityContext") or {}
    ports = []
    for c in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                ports.append(pb.PortMapping(protocol=_protocol(p.get("protocol", "TCP")),  # type: ignore[arg-type]
                                            container_port=int(p["containerPort"]),
                                            host_port=int(p["hostPort"]),
                                            host_ip=str(p.get("hostIP") or "")))
    privileged = any(((c.get("securityContext") or {}).get("privileged")) for c in
                     list(spec.get("initContainers") or []) + list(spec.get("containers") or []))
    sec = pb.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=bool(privileged),
        supplemental_groups=[int(g) for g in psc.get("supplementalGroups") or []],
    )
    if psc.get("runAsUser") is not None:
        sec.run_as_user.value = int(psc["runAsUser"])
    if psc.get("runAsGroup") is not None:
        sec.run_as_group.value = int(psc["runAsGroup"])
    sysctls = {str(s["name"]): str(s.get("value", "")) for s in psc.get("sysctls") or [] if s.get("name")}
    cfg = pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=m["name"], namespace=m["namespace"], uid=m["uid"],
                                       attempt=attempt),
        hostname="" if spec.get("hostNetwork") else pod_hostname(pod),
        log_directory=log_directory(ctx.pods_dir, pod),
        port_mappings=ports,
        labels=pod_labels(pod),
        annotations={str(k): str(v) for k, v in (m.get("annotations") or {}).items()},
        # Containers inherit the sandbox's parent: <cgroup_parent>/<container id> (cgroupfs driver).
        linux=pb.LinuxPodSandboxConfig(cgroup_parent=ctx.cgroup_parent, security_context=sec, sysctls=sysctls),
    )
    dns = dns_config(pod, ctx)
    if dns is not None:
        cfg.dns_config.CopyFrom(dns)
    return cfg
