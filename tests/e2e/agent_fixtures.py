"""Agent-enabled `minik server` processes for end-to-end pod tests (real containerd, pod network).

Role: start a server WITH its node agent next to anything else on the machine (an installed minik
on 10.42.0.0/16, other test workers): every instance gets its own node name, bridge, nftables
table, cluster/service CIDRs and a registries.yaml mirroring docker.io to a local registry that
holds a busybox-static image. Tear-down removes what outlives the daemon by design: containerd,
the shims and the pods' processes, netns mounts, the bridge and the nft table.
Neighbours: tests/e2e/minikd.py (the `Minik` process harness), tests/support/registry.py
(registry and image builders), tests/e2e/conftest.py (the fixtures wrapping these builders).
Pod builders for the scenarios live here too: `bb()`/`pod()` build manifests (image `busybox`,
pulled through the docker.io mirror), `Ns` is a namespace of one test that reads pods through the
API (fast polling) while the scenarios drive kubectl.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import yaml

from tests.e2e.minikd import Minik, free_port
from tests.support.registry import LocalRegistry, build_busybox, mirror_registries_yaml, push_archive

__all__ = ["NodeNet", "agent_skip_reason", "claim_node_net", "containerd_pid", "get_json",
           "node_minik_for", "node_server", "reap_node", "release_node_net", "seed_registry",
           "wait_node_ready",
           "Ns", "Obj", "bb", "condition", "cstatus", "pod", "running", "state_of"]

_CLAIMS_DIR = "/tmp/minik-e2e-nets"


def agent_skip_reason() -> str:
    if os.geteuid() != 0:
        return "needs root (containerd, netlink, nftables)"
    missing = [b for b in ("containerd", "runc", "ctr", "nft", "ip", "docker-registry", "skopeo")
               if shutil.which(b) is None]
    return f"not installed: {', '.join(missing)}" if missing else ""


@dataclass(frozen=True, slots=True)
class NodeNet:
    """The names and address ranges that must be unique per running instance."""

    octet: int          # 10.<octet>.0.0/16 belongs to this instance
    tag: str

    @property
    def node_name(self) -> str:
        return f"e2e-{self.tag}"

    @property
    def bridge(self) -> str:
        return f"mke{self.tag}"    # ≤ 15 characters (IFNAMSIZ)

    @property
    def nft_table(self) -> str:
        return f"mke_{self.tag}"

    @property
    def cluster_cidr(self) -> str:
        return f"10.{self.octet}.0.0/17"

    @property
    def service_cidr(self) -> str:
        return f"10.{self.octet}.128.0/17"

    @property
    def cluster_dns(self) -> str:
        return f"10.{self.octet}.128.10"

    @property
    def dns_interface(self) -> str:
        return f"mkd{self.tag}"    # ≤ 12 characters: "lo:<name>" labels the lo fallback address

    def server_flags(self) -> list[str]:
        return ["--node-name", self.node_name, "--cluster-cidr", self.cluster_cidr,
                "--service-cidr", self.service_cidr, "--cluster-dns", self.cluster_dns,
                "--bridge-name", self.bridge, "--nft-table", self.nft_table,
                # Each instance owns its DNS IP on its own link; names outside the cluster are not
                # forwarded anywhere unless a test points --resolv-conf at its own resolver.
                "--dns-interface", self.dns_interface, "--resolv-conf", "/dev/null",
                # Its own VXLAN device and VNI: instances on one host share UDP port 8472.
                "--vxlan-device", self.vxlan_device, "--vxlan-vni", str(self.octet)]

    @property
    def vxlan_device(self) -> str:
        return f"mkx{self.tag}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim_node_net() -> NodeNet:
    """Reserve a free 10.<200..249>.0.0/16: a claim directory (atomic mkdir, owner pid inside,
    stale claims of dead owners are taken over) plus a check that no route uses the range."""
    os.makedirs(_CLAIMS_DIR, exist_ok=True)
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    start = int(worker[2:]) * 7 if worker[2:].isdigit() else 0
    for i in range(50):
        octet = 200 + (start + i) % 50
        if f"10.{octet}." in routes:
            continue
        claim = os.path.join(_CLAIMS_DIR, str(octet))
        try:
            os.mkdir(claim)
        except FileExistsError:
            try:
                with open(os.path.join(claim, "pid"), encoding="ascii") as f:
                    owner = int(f.read())
            except (OSError, ValueError):
                continue  # being written right now by another claimer
            if _pid_alive(owner):
                continue
        with open(os.path.join(claim, "pid"), "w", encoding="ascii") as f:
            f.write(str(os.getpid()))
        return NodeNet(octet, secrets.token_hex(3))
    raise RuntimeError("no free 10.x.0.0/16 for an e2e node")


def release_node_net(net: NodeNet) -> None:
    shutil.rmtree(os.path.join(_CLAIMS_DIR, str(net.octet)), ignore_errors=True)


def seed_registry(reg: LocalRegistry) -> None:
    """Push busybox as docker.io/library/busybox:latest's mirror copy."""
    d = tempfile.mkdtemp(prefix="mk-e2e-img-")
    try:
        archive = build_busybox("docker.io/library/busybox:latest", os.path.join(d, "busybox.tar"))
        push_archive(archive, f"{reg.host}/library/busybox:latest")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def containerd_pid(m: Minik) -> int | None:
    try:
        with open(os.path.join(m.root, "run", "containerd", "containerd.pid"), encoding="ascii") as f:
            pid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def get_json(m: Minik, path: str) -> Any:
    code, obj = m.raw_json("GET", path)
    return obj if code == 200 else None


def wait_node_ready(m: Minik, name: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    node: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        node = get_json(m, f"/api/v1/nodes/{name}")
        conds = {c["type"]: c["status"] for c in ((node or {}).get("status") or {}).get("conditions") or []}
        if conds.get("Ready") == "True":
            assert node is not None
            return node
        if m.proc is not None and m.proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"node {name} not Ready: {node and node.get('status')}\n{m.log_tail()}")


def node_minik_for(net: NodeNet, registry_host: str, extra: list[str] | None = None) -> Minik:
    """An unstarted agent-enabled server whose registries.yaml mirrors docker.io to the registry."""
    root = tempfile.mkdtemp(prefix="mk-e2e-node-", dir="/tmp")
    os.makedirs(os.path.join(root, "etc"))
    with open(os.path.join(root, "etc", "registries.yaml"), "w", encoding="utf-8") as f:
        f.write(mirror_registries_yaml(registry_host))
    return Minik(root, free_port(), [*net.server_flags(), *(extra or [])])


def _ctr(sock: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ctr", "-a", sock, "-n", "k8s.io", *args], capture_output=True, text=True,
                          timeout=30, check=False)


def _pids_with_arg(needle: str) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if needle.encode() in cmd:
            pids.append(int(entry))
    return pids


def reap_node(m: Minik, net: NodeNet, keep_dir: bool = False) -> None:
    """Stop the daemon, then everything it leaves running on purpose, then its network."""
    if m.proc is not None and m.proc.poll() is None:
        m.stop()
    sock = os.path.join(m.root, "run", "containerd", "containerd.sock")
    if containerd_pid(m) is not None:
        # CRI StopPodSandbox would need the (stopped) daemon for CNI DEL; kill the tasks directly.
        ids = _ctr(sock, "tasks", "ls", "-q").stdout.split()
        for tid in ids:
            _ctr(sock, "tasks", "rm", "-f", tid)
    pid = containerd_pid(m)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
    # Shims whose tasks could not be removed (containerd was already dead): at least the shims
    # go; their container processes would be reparented to init, which is why tasks go first.
    for shim in _pids_with_arg(sock):
        with contextlib.suppress(ProcessLookupError):
            os.kill(shim, signal.SIGKILL)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p.startswith(m.root + "/")), reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", net.bridge], capture_output=True, check=False)
    subprocess.run(["nft", "delete", "table", "ip", net.nft_table], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", net.dns_interface], capture_output=True, check=False)
    subprocess.run(["ip", "link", "del", net.vxlan_device], capture_output=True, check=False)
    subprocess.run(["ip", "-4", "addr", "flush", "dev", "lo", "label", f"lo:{net.dns_interface}"], capture_output=True, check=False)
    _remove_pod_cgroups(m)
    if not keep_dir:
        shutil.rmtree(m.root, ignore_errors=True)


def _remove_pod_cgroups(m: Minik) -> None:
    """The (now empty) cgroup parent of the instance's pods, in every hierarchy."""
    from minik.config import default_cgroup_parent
    parent = m.extra[m.extra.index("--cgroup-parent") + 1] if "--cgroup-parent" in m.extra else default_cgroup_parent(m.data_dir)
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        mounts = [(fields[4], fields[3], fields[fields.index("-") + 1]) for fields in (line.split() for line in f)]
    for point, root, fstype in mounts:
        top = point + parent
        if fstype in ("cgroup", "cgroup2") and root == "/" and os.path.isdir(top):
            for d, _, _ in sorted(os.walk(top), key=lambda w: -len(w[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(d)


@contextlib.contextmanager
def node_server(registry_host: str, extra: list[str] | None = None) -> Iterator[tuple[Minik, NodeNet]]:
    """A running server with a Ready node; everything it started is reaped on exit. `extra`:
    more server flags (a later flag overrides the same one in `NodeNet.server_flags`)."""
    net = claim_node_net()
    m = node_minik_for(net, registry_host, extra)
    try:
        m.start(timeout=90)
        wait_node_ready(m, net.node_name)
        yield m, net
    finally:
        reap_node(m, net, keep_dir=os.environ.get("MINIK_KEEP_TEST_DIRS") == "1")
        release_node_net(net)


# ---- pod manifests and polling -----------------------------------------------------------------

Obj = dict[str, Any]

def bb(name: str, script: str, **extra: Any) -> Obj:
    """A busybox container running `sh -c script`."""
    return {"name": name, "image": "busybox", "command": ["sh", "-c", script], **extra}


def pod(name: str, containers: list[Obj], **spec: Any) -> Obj:
    spec.setdefault("terminationGracePeriodSeconds", 2)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": containers, **spec}}


def cstatus(p: Obj | None, name: str, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in ((p or {}).get("status") or {}).get(key) or []:
        if s["name"] == name:
            return dict(s)
    return {}


def state_of(p: Obj | None, name: str) -> Obj:
    return dict(cstatus(p, name).get("state") or {})


def condition(p: Obj | None, ctype: str) -> str:
    for c in ((p or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    return ""


def running(p: Obj | None) -> bool:
    st = (p or {}).get("status") or {}
    statuses = st.get("containerStatuses") or []
    return st.get("phase") == "Running" and bool(statuses) and all("running" in s["state"] for s in statuses)


@dataclass
class Ns:
    """A namespace of one test on one server."""

    m: Minik
    name: str

    @classmethod
    def make(cls, m: Minik, prefix: str) -> Ns:
        name = f"{prefix}-{secrets.token_hex(2)}"
        code, body = m.raw_json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
        assert code == 201, body
        return cls(m, name)

    def kubectl(self, *args: str, **kw: Any) -> Any:
        return self.m.kubectl("-n", self.name, *args, **kw)

    def create(self, *objs: Obj) -> None:
        # A YAML stream, not a v1 List: kubectl validates a List against /openapi/v2, which
        # minik does not serve (404 -> "error validating data").
        self.kubectl("create", "-f", "-", input=yaml.safe_dump_all(objs))

    def get(self, name: str) -> Obj | None:
        code, obj = self.m.raw_json("GET", f"/api/v1/namespaces/{self.name}/pods/{name}")
        return obj if code == 200 else None

    def wait(self, name: str, pred: Callable[[Obj], bool] = running, timeout: float = 30.0,
             interval: float = 0.1) -> Obj:
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while time.monotonic() < deadline:
            last = self.get(name)
            if last is not None and pred(last):
                return last
            time.sleep(interval)
        raise AssertionError(f"pod {self.name}/{name} did not reach the expected state in {timeout}s; "
                             f"status: {json.dumps((last or {}).get('status'), indent=1)}\n"
                             f"events: {self.event_lines()}\nserver log:\n{self.m.log_tail(30)}")

    def events(self, involved: str = "") -> list[Obj]:
        code, body = self.m.raw_json("GET", f"/api/v1/namespaces/{self.name}/events")
        assert code == 200, body
        items: list[Obj] = body["items"]
        return [e for e in items if not involved or e["involvedObject"].get("name") == involved]

    def event_lines(self) -> list[str]:
        return [f"{e.get('reason')}: {e.get('message')}" for e in self.events()]

    def exec(self, pod_name: str, *cmd: str, container: str = "", check: bool = True) -> Any:
        extra = ["-c", container] if container else []
        return self.kubectl("exec", pod_name, *extra, "--", *cmd, check=check)
