"""Pod → CRI sandbox and container configs."""

from __future__ import annotations

from typing import Any

from minik.agent.containers import MountSpec, container_config, linux_resources, non_root_violation
from minik.agent.cri import pb
from minik.agent.sandbox import SandboxContext, dns_config, parse_resolv_conf, sandbox_config

CTX = SandboxContext("/var/lib/minik/agent/pods", "10.43.0.10", "cluster.local",
                     "nameserver 1.1.1.1\nsearch example.org\noptions edns0\n")


def make_pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "u1", "labels": {"app": "a"},
                         "annotations": {"note": "n"}},
            "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec}}


def test_sandbox_config_basics() -> None:
    pod = make_pod(containers=[{"name": "main", "image": "b", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
                   securityContext={"sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]})
    cfg = sandbox_config(pod, 2, CTX)
    assert (cfg.metadata.name, cfg.metadata.namespace, cfg.metadata.uid, cfg.metadata.attempt) == ("web", "ns", "u1", 2)
    assert cfg.hostname == "web"
    assert cfg.log_directory == "/var/lib/minik/agent/pods/ns_web_u1"
    assert cfg.labels["io.kubernetes.pod.uid"] == "u1" and cfg.labels["app"] == "a"
    assert cfg.annotations["note"] == "n"
    assert [(p.container_port, p.host_port, p.protocol) for p in cfg.port_mappings] == [(80, 8080, pb.TCP)]
    assert cfg.linux.sysctls == {"net.ipv4.ip_unprivileged_port_start": "0"}
    assert cfg.linux.security_context.namespace_options.network == pb.POD
    assert list(cfg.dns_config.servers) == ["10.43.0.10"]
    assert list(cfg.dns_config.searches) == ["ns.svc.cluster.local", "svc.cluster.local", "cluster.local", "example.org"]
    assert list(cfg.dns_config.options) == ["ndots:5"]


def test_dns_policies() -> None:
    host = dns_config(make_pod(dnsPolicy="Default"), CTX)
    assert host is not None and list(host.servers) == ["1.1.1.1"] and list(host.options) == ["edns0"]
    hostnet = dns_config(make_pod(hostNetwork=True), CTX)
    assert hostnet is not None and list(hostnet.servers) == ["1.1.1.1"]
    withhost = dns_config(make_pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), CTX)
    assert withhost is not None and list(withhost.servers) == ["10.43.0.10"]
    none = dns_config(make_pod(dnsPolicy="None", dnsConfig={"nameservers": ["9.9.9.9"], "searches": ["a.b"],
                                                            "options": [{"name": "ndots", "value": "2"}]}), CTX)
    assert none is not None and list(none.servers) == ["9.9.9.9"] and list(none.options) == ["ndots:2"]
    assert parse_resolv_conf("# c\nnameserver 8.8.8.8 # x\ndomain d\n") == (["8.8.8.8"], ["d"], [])


def test_host_network_namespaces() -> None:
    cfg = sandbox_config(make_pod(hostNetwork=True, hostPID=True), 0, CTX)
    ns = cfg.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (pb.NODE, pb.NODE, pb.POD)
    assert cfg.hostname == ""


def test_linux_resources() -> None:
    r = linux_resources({"resources": {"requests": {"cpu": "250m"}, "limits": {"cpu": "500m", "memory": "64Mi"}}})
    assert (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes) == (256, 100000, 50000, 64 * 2**20)
    assert linux_resources({}).cpu_shares == 2
    assert linux_resources({"resources": {"requests": {"cpu": "1m"}}}).cpu_shares == 2


def test_container_config() -> None:
    pod = make_pod(securityContext={"runAsUser": 1000})
    c = {"name": "main", "image": "busybox", "command": ["sh", "-c", "echo $(GREETING)"], "args": ["$(X)"],
         "workingDir": "/w", "tty": True, "stdin": True,
         "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                             "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]}}}
    cfg = container_config(pod, c, kind="regular", attempt=3, env=[("GREETING", "hi")],
                           mounts=[MountSpec("/data", "/host", True)])
    assert list(cfg.command) == ["sh", "-c", "echo hi"] and list(cfg.args) == ["$(X)"]
    assert cfg.log_path == "main/3.log"
    assert cfg.metadata.attempt == 3
    assert cfg.labels["io.kubernetes.container.name"] == "main"
    assert cfg.annotations["io.kubernetes.container.restartCount"] == "3"
    assert cfg.annotations["io.kubernetes.container.hash"]
    sc = cfg.linux.security_context
    assert sc.run_as_user.value == 1000 and sc.no_new_privs and sc.readonly_rootfs
    assert list(sc.capabilities.add_capabilities) == ["NET_ADMIN"]
    assert "/proc/kcore" in sc.masked_paths
    assert cfg.tty and cfg.stdin and cfg.working_dir == "/w"
    assert [(m.container_path, m.host_path, m.readonly) for m in cfg.mounts] == [("/data", "/host", True)]


def test_non_root_violation() -> None:
    pod = make_pod(securityContext={"runAsNonRoot": True})
    c = {"name": "main"}
    assert "image will run as root" in non_root_violation(pod, c, 0, "")
    assert non_root_violation(pod, c, 1000, "") == ""
    assert "breaks non-root" in non_root_violation(pod, {"name": "m", "securityContext": {"runAsUser": 0}}, None, "")
    assert non_root_violation(make_pod(), c, 0, "") == ""
