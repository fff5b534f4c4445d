"""Joining and the link against a real `minik server` (control plane only): tokens, CA pinning,
node passwords, the node authorizer and the gRPC Client, driven the way `minik agent` does.
The multi-host scenarios with containerd in network namespaces are in test_join.py."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import pytest

from minik.client import ClientError
from minik.client.grpc import GrpcLink, JoinError, LinkCredentials, check_ca, join
from minik.cluster.jointokens import parse_token
from minik.pki.nodecert import make_key_and_csr
from tests.e2e.minikd import KUBECTL, Minik, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Minik, int]]:
    if not os.path.exists(KUBECTL):
        pytest.skip(f"{KUBECTL} is not installed")
    root = tempfile.mkdtemp(prefix="minik-e2e-join-")
    sup = free_port()
    m = Minik(root, free_port(), ["--disable-agent", "--supervisor-port", str(sup)])
    m.start()
    try:
        yield m, sup
    finally:
        m.stop()
        shutil.rmtree(root, ignore_errors=True)


def _token(m: Minik) -> str:
    with open(os.path.join(m.data_dir, "server", "token")) as f:
        return f.read().strip()


def _ca(m: Minik) -> bytes:
    code, _, body = m.raw("GET", "/cacerts", auth=False)
    assert code == 200
    return body


async def _join(m: Minik, sup: int, node: str, password: str, secret: str | None = None) -> LinkCredentials:
    ca = _ca(m)
    check_ca(ca, parse_token(_token(m)).ca_hash)
    key, csr = make_key_and_csr(node)
    cert = await join(f"127.0.0.1:{sup}", ca, secret if secret is not None else parse_token(_token(m)).secret,
                      node, password, csr)
    return LinkCredentials(node, ca, cert, key)


async def _linked(m: Minik, sup: int, creds: LinkCredentials) -> tuple[GrpcLink, asyncio.Task[None]]:
    link = GrpcLink(f"127.0.0.1:{sup}", creds, backoff=(0.2, 1.0))
    task = asyncio.create_task(link.run())
    await link.wait_connected(20)
    return link, task


def _agent_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    d = tempfile.mkdtemp(prefix="minik-e2e-agentcli-")
    try:
        return subprocess.run([sys.executable, "-m", "minik", "agent", "--data-dir", d, "--run-dir", d + "/run",
                               "--config-dir", d + "/etc", *args], capture_output=True, text=True, timeout=timeout)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_join_and_link_serve_node_scoped_calls(server: tuple[Minik, int]) -> None:
    m, sup = server

    async def scenario() -> None:
        creds = await _join(m, sup, "link-a", "pw-a")
        link, task = await _linked(m, sup, creds)
        c = link.client
        try:
            node = await c.create("nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "link-a"}})
            assert node["metadata"]["name"] == "link-a"
            nodes, rv = await c.list("nodes")
            assert "link-a" in [n["metadata"]["name"] for n in nodes] and rv
            # Another node's object, and the node-password Secrets, are out of reach.
            with pytest.raises(ClientError) as e:
                await c.create("nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "link-other"}})
            assert e.value.code == 403 and "own Node" in e.value.message
            # Listing Secrets yields only those the node may read: none of kube-system's.
            assert (await c.list("secrets", "kube-system"))[0] == []
            with pytest.raises(ClientError) as e:
                await c.get("secrets", "kube-system", "link-a.node-password.minik")
            assert e.value.code == 403 and "references it" in e.value.message
            # A Secret referenced by a pod bound to the node is readable; by an unbound pod not.
            ns = "link-" + os.urandom(2).hex()
            assert m.raw_json("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
            assert m.raw_json("POST", f"/api/v1/namespaces/{ns}/secrets",
                              {"metadata": {"name": "s1"}, "stringData": {"k": "v"}})[0] == 201
            pod = {"metadata": {"name": "p1"}, "spec": {"nodeName": "link-a", "containers": [
                {"name": "c", "image": "busybox", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s1", "key": "k"}}}]}]}}
            assert m.raw_json("POST", f"/api/v1/namespaces/{ns}/pods", pod)[0] == 201
            got = await c.get("secrets", ns, "s1")
            assert got is not None and got["data"]["k"]
            # A watch delivers changes; the pod's status is writable by its node only.
            events: list[str] = []

            async def watch() -> None:
                async for ev in c.watch("pods", ns, resource_version=rv):
                    events.append(f"{ev.type}:{ev.object['metadata']['name']}")

            wt = asyncio.create_task(watch())
            await c.patch("pods", ns, "p1", {"status": {"phase": "Pending", "message": "from link-a"}}, subresource="status")
            deadline = time.monotonic() + 20
            while not any(e.startswith("MODIFIED:p1") for e in events) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert any(e.startswith("MODIFIED:p1") for e in events), events
            wt.cancel()
            other = {"metadata": {"name": "p2"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
            assert m.raw_json("POST", f"/api/v1/namespaces/{ns}/pods", other)[0] == 201
            with pytest.raises(ClientError) as e:
                await c.patch("pods", ns, "p2", {"status": {"message": "x"}}, subresource="status")
            assert e.value.code == 403 and "bound to it" in e.value.message
            with pytest.raises(ClientError) as e:
                await c.delete("namespaces", "", ns)
            assert e.value.code == 403
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert "node authorizer" in m.log_tail(200)

    asyncio.run(scenario())


def test_wrong_token_and_wrong_ca_hash_are_refused_saying_which(server: tuple[Minik, int]) -> None:
    m, sup = server
    good = _token(m)
    pin, _, secret = good[3:].partition("::")
    wrong_secret = f"K10{pin}::server:{'0' * 32}"
    r = _agent_cli("--server", m.url, "--supervisor-port", str(sup), "--token", wrong_secret, "--node-name", "bad-token")
    assert r.returncode == 1
    assert "join token rejected" in r.stderr and "not valid" in r.stderr, r.stderr
    wrong_pin = f"K10{'ab' * 32}::{secret}"
    r = _agent_cli("--server", m.url, "--supervisor-port", str(sup), "--token", wrong_pin, "--node-name", "bad-ca")
    assert r.returncode == 1
    assert "does not match the join token's CA hash" in r.stderr, r.stderr
    assert "join refused" in m.log_tail(200)
    with pytest.raises(JoinError):
        asyncio.run(_join(m, sup, "bad-token-2", "pw", secret="nope"))


def test_node_name_owned_by_another_machine_until_kubectl_delete_node(server: tuple[Minik, int]) -> None:
    m, sup = server

    async def scenario() -> None:
        creds = await _join(m, sup, "dup-node", "machine-1")
        link, task = await _linked(m, sup, creds)
        try:
            await link.client.create("nodes", "", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "dup-node"}})
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        # The same machine rejoins fine; another machine is told what to do.
        await _join(m, sup, "dup-node", "machine-1")
        with pytest.raises(JoinError) as e:
            await _join(m, sup, "dup-node", "machine-2")
        assert "kubectl delete node dup-node" in str(e.value)

    asyncio.run(scenario())
    m.kubectl("delete", "node", "dup-node")
    asyncio.run(_join(m, sup, "dup-node", "machine-2"))
    # Kept as a Secret in kube-system, hashed.
    code, sec = m.raw_json("GET", "/api/v1/namespaces/kube-system/secrets/dup-node.node-password.minik")
    assert code == 200 and "machine-2" not in str(sec)


def test_token_create_list_delete_and_expiry(server: tuple[Minik, int]) -> None:
    m, sup = server

    def tok(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "minik", "token", "--data-dir", m.data_dir, *args],
                              capture_output=True, text=True, timeout=60)

    r = tok("create", "--ttl", "1h")
    assert r.returncode == 0, r.stderr
    extra = r.stdout.strip()
    assert extra.startswith("K10") and parse_token(extra).ca_hash == parse_token(_token(m)).ca_hash
    tid = parse_token(extra).secret.split(".")[0]
    asyncio.run(_join(m, sup, "extra-token-node", "pw", secret=parse_token(extra).secret))
    assert tid in tok("list").stdout
    short = tok("create", "--ttl", "1s").stdout.strip()
    time.sleep(2.5)
    with pytest.raises(JoinError) as e:
        asyncio.run(_join(m, sup, "expired-node", "pw", secret=parse_token(short).secret))
    assert "expired" in str(e.value)
    assert tok("delete", tid).returncode == 0
    assert tid not in tok("list").stdout
    with pytest.raises(JoinError):
        asyncio.run(_join(m, sup, "extra-token-node-2", "pw", secret=parse_token(extra).secret))
    assert tok("create", "--ttl", "soon").returncode != 0


def test_oversized_message_closes_only_that_link(server: tuple[Minik, int]) -> None:
    m, sup = server

    async def scenario() -> None:
        creds = await _join(m, sup, "big-msg", "pw")
        a, ta = await _linked(m, sup, creds)
        creds_b = await _join(m, sup, "big-msg-b", "pw")
        b, tb = await _linked(m, sup, creds_b)
        try:
            with pytest.raises(ClientError) as e:
                await a.client.create("nodes", "", {"metadata": {"name": "big-msg", "annotations": {"x": "y" * (9 << 20)}}})
            assert e.value.code == 503
            # The other agent's link is untouched, and the first reconnects.
            assert (await b.client.list("nodes"))[1]
            await a.wait_connected(20)
            assert a.connects >= 1
        finally:
            for t in (ta, tb):
                t.cancel()
            await asyncio.gather(ta, tb, return_exceptions=True)

    asyncio.run(scenario())

