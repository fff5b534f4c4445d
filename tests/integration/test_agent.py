"""The node agent end to end: a real in-process store + API service behind `LocalClient`, a
`NodeRuntime` with its own containerd, pod network (unique bridge, subnet and nft table per test)
and a busybox image imported through the airgap directory. Back-offs, relist and heartbeat are
shortened through `RuntimeOptions` so the suite stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import random
import secrets
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from minik.agent.backoff import BackoffPolicy
from minik.agent.cri import pb
from minik.agent.images import build_image, busybox_image_files
from minik.agent.runtime import NodeRuntime, RuntimeOptions
from minik.client import Client
from minik.config import AgentConfig
from minik.controllers.nodeipam import NodeIpamController
from minik.machinery.informer import Informer

Obj = dict[str, Any]

IMAGE = "localhost/minik-test/busybox:1"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(b) for b in ("containerd", "runc", "ctr", "nft", "ip")),
    reason="needs root, containerd, runc, nftables and iproute2",
)


def _free_subnet() -> str:
    routes = subprocess.run(["ip", "-4", "route", "show"], capture_output=True, text=True).stdout
    for _ in range(100):
        net = f"10.{random.randrange(210, 250)}.{random.randrange(256)}.0"
        if net.rsplit(".", 1)[0] + "." not in routes:
            return net + "/24"
    raise RuntimeError("no free test subnet")


async def _make_client(db_path: str) -> tuple[Client, Any]:
    from minik.api.kinds import KindHooksImpl
    from minik.api.service import ResourceService
    from minik.apis.registry import Registry
    from minik.apis.schema import Schemas
    from minik.client.local import LocalClient
    from minik.store.store import Store

    store = Store(db_path, volatile=frozenset({"coordination.k8s.io/leases"}))
    await store.start()
    registry = Registry()
    service = ResourceService(store, registry, Schemas(), KindHooksImpl(store, registry, "10.43.0.0/16"))
    # As the daemon composes it: a token issuer for the pods' ServiceAccount token volumes, and what
    # the namespace controller would create (the default ServiceAccount, kube-root-ca.crt).
    from cryptography.hazmat.primitives.asymmetric import ec

    from minik.api.auth import AllowAuthenticated, Authenticator
    from minik.api.reviews import Reviews
    from minik.pki.satoken import ServiceAccountTokens
    issuer = "https://kubernetes.default.svc.cluster.local"
    tokens = ServiceAccountTokens(ec.generate_private_key(ec.SECP256R1()), issuer, (issuer,))
    client = LocalClient(service, token_issuer=Reviews(Authenticator({}), AllowAuthenticated(), tokens).token_request)
    for ns in ("default", "kube-node-lease"):
        await client.create("namespaces", "", {"metadata": {"name": ns}})
        await client.create("serviceaccounts", ns, {"metadata": {"name": "default"}})
        await client.create("configmaps", ns, {"metadata": {"name": "kube-root-ca.crt"}, "data": {"ca.crt": "test CA"}})
    return client, store


@dataclass
class Node:
    base: str
    cfg: AgentConfig
    client: Client
    runtime: NodeRuntime
    options: RuntimeOptions
    task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.cfg.node_name

    async def start(self) -> None:
        self.runtime = NodeRuntime(self.cfg, self.client, self.options)
        await self.runtime.start()
        self.task = asyncio.create_task(self.runtime.run(), name="node-runtime")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None
        await self.runtime.stop()

    async def create_pod(self, name: str, containers: list[Obj], **spec: Any) -> Obj:
        body = {"metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": self.name, "containers": containers,
                         "terminationGracePeriodSeconds": 2, **spec}}
        return await self.client.create("pods", "default", body)

    async def pod(self, name: str) -> Obj | None:
        return await self.client.get("pods", "default", name)

    async def wait_pod(self, name: str, pred: Callable[[Obj], bool], timeout: float = 30.0) -> Obj:
        deadline = time.monotonic() + timeout
        last: Obj | None = None
        while time.monotonic() < deadline:
            last = await self.pod(name)
            if last is not None and pred(last):
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"pod {name} did not reach the expected state; last: {last and last.get('status')}")

    async def events_for(self, name: str) -> list[Obj]:
        await self.runtime.agent.ctx.events.flush()  # type: ignore[union-attr]
        items, _ = await self.client.list("events", "default")
        return [e for e in items if e["involvedObject"].get("name") == name]


def cstatus(pod: Obj, name: str, init: bool = False) -> Obj:
    key = "initContainerStatuses" if init else "containerStatuses"
    for s in (pod.get("status") or {}).get(key) or []:
        if s["name"] == name:
            return s
    return {}


def condition(pod: Obj, ctype: str) -> str:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    return ""


def running(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and all(
        "running" in s["state"] for s in pod["status"].get("containerStatuses") or [{"state": {}}])


def container(name: str, *cmd: str, **extra: Any) -> Obj:
    return {"name": name, "image": IMAGE, "imagePullPolicy": "IfNotPresent", "command": list(cmd), **extra}


@pytest.fixture(scope="session")
def busybox_archive() -> str:
    d = tempfile.mkdtemp(prefix="mk-agimg-")
    return build_image(IMAGE, busybox_image_files(), (), ("sh",), None, dest=os.path.join(d, "busybox.tar"))


@pytest.fixture
async def node(busybox_archive: str) -> AsyncIterator[Node]:
    base = tempfile.mkdtemp(prefix="mk-ag-", dir="/tmp")
    tag = secrets.token_hex(3)
    cfg = AgentConfig(
        data_dir=os.path.join(base, "d"), run_dir=os.path.join(base, "r"), config_dir=os.path.join(base, "c"),
        node_name=f"node-{tag}", cluster_cidr=_free_subnet(), bridge_name=f"mkag{tag}",
        nft_table=f"mkag_{tag}", node_ip="",
    )
    images_dir = os.path.join(cfg.agent_dir, "images")
    os.makedirs(images_dir)
    shutil.copy(busybox_archive, os.path.join(images_dir, "busybox.tar"))
    client, store = await _make_client(os.path.join(base, "db.sqlite"))
    options = RuntimeOptions(crash_backoff=BackoffPolicy(1.0, 4.0, 600.0),
                             image_backoff=BackoffPolicy(1.0, 4.0, 600.0),
                             relist_period=0.3, heartbeat=1.0, containerd_backoff=(0.2, 1.0))
    n = Node(base, cfg, client, NodeRuntime(cfg, client, options), options)
    # The server's node IPAM gives the Node its pod subnet (the agent waits for spec.podCIDR).
    ipam = asyncio.create_task(NodeIpamController(client, Informer(client, "nodes"), cfg.cluster_cidr).run(),
                               name="node-ipam-controller")
    try:
        await n.start()
        yield n
    finally:
        with contextlib.suppress(Exception):
            await n.stop()
        rt = n.runtime
        with contextlib.suppress(Exception):
            cri = type(rt.cri)(rt.containerd.endpoint)  # type: ignore[union-attr]
            for sb in await cri.list_pod_sandbox():
                with contextlib.suppress(Exception):
                    await cri.stop_pod_sandbox(sb.id)
                    await cri.remove_pod_sandbox(sb.id)
            await cri.close()
        if rt.containerd is not None:
            await rt.containerd.stop(kill=True)
        if rt.network is not None:
            with contextlib.suppress(Exception):
                await rt.network.teardown()
        ipam.cancel()
        await asyncio.gather(ipam, return_exceptions=True)
        await store.close()
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            points = [line.split()[4] for line in f]
        for p in sorted((p for p in points if p.startswith(base + "/")), reverse=True):
            subprocess.run(["umount", "-l", p], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


async def http_get(url: str, timeout: float = 2.0) -> str:
    def get() -> str:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read().decode()
    return await asyncio.to_thread(get)


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if await fn():
                return
        await asyncio.sleep(0.2)
    raise AssertionError("condition not met in time")


# ---- tests ------------------------------------------------------------------------------------

async def test_node_registers_ready_with_lease(node: Node) -> None:
    n = await node.client.get("nodes", "", node.name)
    assert n is not None
    labels = n["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == node.name
    assert labels["node-role.kubernetes.io/control-plane"] == "true"
    st = n["status"]
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    assert st["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert st["nodeInfo"]["kubeletVersion"] == "v1.32.0+minik"
    assert st["capacity"]["pods"] == "110"
    assert {a["type"] for a in st["addresses"]} == {"InternalIP", "Hostname"}
    lease = await node.client.get("coordination.k8s.io/leases", "kube-node-lease", node.name)
    assert lease is not None
    first = lease["spec"]["renewTime"]
    rv = n["metadata"]["resourceVersion"]
    await asyncio.sleep(2.5)
    lease = await node.client.get("coordination.k8s.io/leases", "kube-node-lease", node.name)
    assert lease is not None and lease["spec"]["renewTime"] != first
    # Idle: heartbeats renewed the lease but did not rewrite the Node.
    n2 = await node.client.get("nodes", "", node.name)
    assert n2 is not None and n2["metadata"]["resourceVersion"] == rv


async def test_httpd_pod_reachable_on_pod_ip(node: Node) -> None:
    await node.create_pod("web", [container(
        "web", "sh", "-c", "mkdir -p /www && echo hello-minik > /www/index.html && exec httpd -f -p 8080 -h /www",
        ports=[{"containerPort": 8080}])])
    pod = await node.wait_pod("web", running)
    ip = pod["status"]["podIP"]
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(node.cfg.cluster_cidr)
    assert pod["status"]["hostIP"]
    assert cstatus(pod, "web")["containerID"].startswith("containerd://")
    assert cstatus(pod, "web")["ready"] is True
    assert condition(pod, "Ready") == "True"

    async def served() -> bool:
        return "hello-minik" in await http_get(f"http://{ip}:8080/")

    await eventually(served)
    reasons = [e["reason"] for e in await node.events_for("web")]
    assert "Created" in reasons and "Started" in reasons


async def test_multi_container_shares_localhost_and_empty_dir(node: Node) -> None:
    await node.create_pod("duo", [
        container("server", "sh", "-c", "mkdir -p /www && echo from-server > /www/index.html && exec httpd -f -p 8081 -h /www"),
        container("client", "sh", "-c",
                  "while true; do timeout 2 wget -q -O /shared/got http://127.0.0.1:8081/ && break; sleep 0.2; done; exec sleep 3600",
                  volumeMounts=[{"name": "shared", "mountPath": "/shared"}]),
        container("reader", "sh", "-c", "exec sleep 3600", volumeMounts=[{"name": "shared", "mountPath": "/data", "readOnly": True}]),
    ], volumes=[{"name": "shared", "emptyDir": {}}])
    pod = await node.wait_pod("duo", running)
    cid = cstatus(pod, "reader")["containerID"].split("://", 1)[1]

    async def shared() -> bool:
        res = await node.runtime.cri.exec_sync(cid, ["cat", "/data/got"], timeout=5)
        return res.exit_code == 0 and b"from-server" in res.stdout

    await eventually(shared)
    res = await node.runtime.cri.exec_sync(cid, ["touch", "/data/x"], timeout=5)
    assert res.exit_code != 0  # readOnly mount


async def test_init_containers_run_in_order(node: Node) -> None:
    await node.create_pod("inits", [container("main", "sh", "-c", "cat /work/log; exec sleep 3600",
                                              volumeMounts=[{"name": "w", "mountPath": "/work"}])],
                          initContainers=[
                              container("first", "sh", "-c", "echo first >> /work/log",
                                        volumeMounts=[{"name": "w", "mountPath": "/work"}]),
                              container("second", "sh", "-c", "sleep 0.5; echo second >> /work/log",
                                        volumeMounts=[{"name": "w", "mountPath": "/work"}]),
                          ],
                          volumes=[{"name": "w", "emptyDir": {}}])
    pod = await node.wait_pod("inits", running)
    assert condition(pod, "Initialized") == "True"
    for name in ("first", "second"):
        st = cstatus(pod, name, init=True)
        assert st["state"]["terminated"]["exitCode"] == 0
        assert st["state"]["terminated"]["reason"] == "Completed"
    cid = cstatus(pod, "main")["containerID"].split("://", 1)[1]
    res = await node.runtime.cri.exec_sync(cid, ["cat", "/work/log"], timeout=5)
    assert res.stdout == b"first\nsecond\n"


async def test_env_from_configmap_secret_and_configmap_volume_updates(node: Node) -> None:
    import base64
    await node.client.create("configmaps", "default", {"metadata": {"name": "cfg"},
                                                       "data": {"greeting": "hi", "mode": "fast"}})
    await node.client.create("secrets", "default", {"metadata": {"name": "sec"},
                                                    "data": {"password": base64.b64encode(b"s3cret").decode()}})
    await node.create_pod("envy", [container(
        "main", "sh", "-c", "exec sleep 3600",
        env=[{"name": "GREETING", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
             {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "password"}}},
             {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
             {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
             {"name": "COMBINED", "value": "$(GREETING)-$(POD_NAME)"},
             {"name": "MISSING", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "x", "optional": True}}}],
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
        volumeMounts=[{"name": "c", "mountPath": "/etc/cfg"}])],
        volumes=[{"name": "c", "configMap": {"name": "cfg"}}])
    pod = await node.wait_pod("envy", running)
    cid = cstatus(pod, "main")["containerID"].split("://", 1)[1]
    res = await node.runtime.cri.exec_sync(cid, ["env"], timeout=5)
    env = dict(line.split("=", 1) for line in res.stdout.decode().splitlines() if "=" in line)
    assert env["GREETING"] == "hi"
    assert env["PASSWORD"] == "s3cret"
    assert env["POD_NAME"] == "envy"
    assert env["POD_IP"] == pod["status"]["podIP"]
    assert env["COMBINED"] == "hi-envy"
    assert env["CFG_mode"] == "fast"
    assert "MISSING" not in env
    res = await node.runtime.cri.exec_sync(cid, ["cat", "/etc/cfg/greeting"], timeout=5)
    assert res.stdout == b"hi"

    # A patch, not get-modify-update: LocalClient hands out the store's cached objects.
    await node.client.patch("configmaps", "default", "cfg", {"data": {"greeting": "hello again"}})

    async def updated() -> bool:
        r = await node.runtime.cri.exec_sync(cid, ["cat", "/etc/cfg/greeting"], timeout=5)
        return r.stdout == b"hello again"

    await eventually(updated, timeout=10)


async def test_crash_loop_backoff_grows(node: Node) -> None:
    await node.create_pod("crash", [container("main", "sh", "-c", "echo dying; exit 3")])
    seen: list[str] = []   # back-off messages in order of appearance (policy here: 1 s doubling to 4 s)
    deadline = time.monotonic() + 40
    pod: Obj | None = None
    while time.monotonic() < deadline:
        pod = await node.pod("crash")
        assert pod is not None
        waiting = cstatus(pod, "main").get("state", {}).get("waiting", {})
        if waiting.get("reason") == "CrashLoopBackOff":
            delay = waiting["message"].split()[1]
            if not seen or seen[-1] != delay:
                seen.append(delay)
        if cstatus(pod, "main").get("restartCount", 0) >= 4 and "4s" in seen:
            break
        await asyncio.sleep(0.05)
    assert pod is not None
    assert seen[:3] == ["1s", "2s", "4s"], seen
    st = cstatus(pod, "main")
    last = st["lastState"]["terminated"]
    assert last["exitCode"] == 3 and last["reason"] == "Error"
    cris = await node.runtime.cri.list_containers(pb.ContainerFilter(
        label_selector={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}))
    assert len(cris) <= 2  # only the newest and the previous container are kept
    started = [e for e in await node.events_for("crash") if e["reason"] == "Started"]
    assert len(started) == 1 and started[0]["count"] >= 3  # aggregated into one Event


async def test_liveness_failure_restarts_container(node: Node) -> None:
    await node.create_pod("live", [container(
        "main", "sh", "-c", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; exec sleep 3600",
        livenessProbe={"exec": {"command": ["test", "-e", "/tmp/healthy"]}, "periodSeconds": 1,
                       "failureThreshold": 1, "initialDelaySeconds": 0})])
    pod = await node.wait_pod("live", lambda p: cstatus(p, "main").get("restartCount", 0) >= 1, timeout=30)
    reasons = {e["reason"] for e in await node.events_for("live")}
    assert {"Unhealthy", "Killing"} <= reasons
    assert pod


async def test_readiness_gates_ready(node: Node) -> None:
    await node.create_pod("ready", [container(
        "main", "sh", "-c", "mkdir -p /www; sleep 2; echo ok > /www/index.html; exec httpd -f -p 8082 -h /www",
        readinessProbe={"httpGet": {"path": "/", "port": 8082}, "periodSeconds": 1})])
    pod = await node.wait_pod("ready", lambda p: "running" in cstatus(p, "main").get("state", {}))
    assert condition(pod, "Ready") == "False"
    pod = await node.wait_pod("ready", lambda p: condition(p, "Ready") == "True", timeout=20)
    assert cstatus(pod, "main")["ready"] is True
    assert condition(pod, "ContainersReady") == "True"


async def test_memory_limit_oom_killed(node: Node) -> None:
    await node.create_pod("oom", [container(
        "main", "sh", "-c", "x=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; while true; do x=$x$x; done",
        resources={"limits": {"memory": "16Mi", "cpu": "500m"}})], restartPolicy="Never")
    pod = await node.wait_pod("oom", lambda p: "terminated" in cstatus(p, "main").get("state", {}), timeout=60)
    term = cstatus(pod, "main")["state"]["terminated"]
    assert term["reason"] == "OOMKilled"
    assert pod["status"]["phase"] == "Failed"


async def test_delete_runs_prestop_then_stops_within_grace(node: Node) -> None:
    await node.create_pod("bye", [container(
        "main", "sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done",
        lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /mark/prestop"]}}},
        volumeMounts=[{"name": "mark", "mountPath": "/mark"}])],
        volumes=[{"name": "mark", "hostPath": {"path": os.path.join(node.base, "mark"), "type": "DirectoryOrCreate"}}],
        terminationGracePeriodSeconds=5)
    pod = await node.wait_pod("bye", running)
    uid = pod["metadata"]["uid"]
    started = time.monotonic()
    await node.client.delete("pods", "default", "bye")
    deadline = time.monotonic() + 20
    while await node.pod("bye") is not None:
        assert time.monotonic() < deadline, "pod not deleted"
        await asyncio.sleep(0.1)
    assert time.monotonic() - started < 8
    with open(os.path.join(node.base, "mark", "prestop"), encoding="utf-8") as f:
        assert f.read() == "stopping\n"
    assert await node.runtime.cri.list_pod_sandbox(pb.PodSandboxFilter(
        label_selector={"io.kubernetes.pod.uid": uid})) == []
    assert not os.path.exists(os.path.join(node.runtime.pods_dir, uid))


async def test_agent_restart_adopts_running_containers(node: Node) -> None:
    await node.create_pod("stay", [container("main", "sh", "-c", "exec sleep 3600")])
    pod = await node.wait_pod("stay", running)
    cid = cstatus(pod, "main")["containerID"]
    started_at = cstatus(pod, "main")["state"]["running"]["startedAt"]
    await node.stop()
    # A pod deleted while the agent was down: its containers must be cleaned up on start.
    await node.create_pod("gone", [container("main", "sh", "-c", "exec sleep 3600")])
    await node.start()
    gone = await node.wait_pod("gone", running)
    gone_uid = gone["metadata"]["uid"]
    await node.stop()
    await node.client.delete("pods", "default", "gone", grace_period_seconds=0)
    await node.start()
    await asyncio.sleep(2)
    pod = await node.wait_pod("stay", running)
    assert cstatus(pod, "main")["containerID"] == cid
    assert cstatus(pod, "main")["restartCount"] == 0
    assert cstatus(pod, "main")["state"]["running"]["startedAt"] == started_at

    async def cleaned() -> bool:
        return await node.runtime.cri.list_pod_sandbox(pb.PodSandboxFilter(
            label_selector={"io.kubernetes.pod.uid": gone_uid})) == []

    await eventually(cleaned)


async def test_missing_image_err_image_pull_then_backoff(node: Node) -> None:
    image = "127.0.0.1:1/nope/missing:1"
    await node.create_pod("noimg", [{"name": "main", "image": image, "imagePullPolicy": "IfNotPresent"}])

    def backing_off(p: Obj) -> bool:
        return cstatus(p, "main").get("state", {}).get("waiting", {}).get("reason") == "ImagePullBackOff"

    pod = await node.wait_pod("noimg", backing_off, timeout=30)
    assert pod["status"]["phase"] == "Pending"
    events = await node.events_for("noimg")
    failed = [e for e in events if e["reason"] == "Failed" and image in e["message"]]
    assert failed, events
    assert any(e["reason"] == "BackOff" and image in e["message"] for e in events)


async def test_containerd_crash_is_survived(node: Node) -> None:
    import signal
    await node.create_pod("survivor", [container("main", "sh", "-c", "exec sleep 3600")])
    pod = await node.wait_pod("survivor", running)
    cid = cstatus(pod, "main")["containerID"]
    cd = node.runtime.containerd
    assert cd is not None and cd.pid is not None
    os.kill(cd.pid, signal.SIGKILL)

    async def back() -> bool:
        return cd.restarts >= 1 and cd.ready

    await eventually(back, timeout=30)
    # The container lived on in its shim; new pods start again after the reconnect.
    await node.create_pod("after", [container("main", "sh", "-c", "exec sleep 3600")])
    await node.wait_pod("after", running, timeout=30)
    pod = await node.wait_pod("survivor", running)
    assert cstatus(pod, "main")["containerID"] == cid
    assert cstatus(pod, "main")["restartCount"] == 0
