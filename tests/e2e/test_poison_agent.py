"""Poison written straight into the database of an agent-enabled server: after a restart the
server loads it, reports it (MalformedObject events, FailedSync from the agent) and keeps
working: the pod that ran before still runs without a restart, a new pod is scheduled and
started next to the poison, a new Deployment gets its pods, and every poison object can be
deleted through kubectl."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from typing import Any

from tests.e2e.agent_fixtures import Ns, bb, cstatus, get_json, pod, running, wait_node_ready
from tests.e2e.minikd import Minik


def the_node(m: Minik) -> str:
    nodes = get_json(m, "/api/v1/nodes")
    assert nodes and len(nodes["items"]) == 1
    return str(nodes["items"][0]["metadata"]["name"])


def insert_raw(db: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Append objects to the revision log as the store would, without any API in between."""
    con = sqlite3.connect(db)
    try:
        rev = con.execute("SELECT COALESCE(MAX(revision), 0) FROM log").fetchone()[0]
        for resource, obj in rows:
            rev += 1
            m = obj["metadata"]
            m.setdefault("uid", str(uuid.uuid4()))
            m.setdefault("creationTimestamp", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
            m["resourceVersion"] = str(rev)
            con.execute("INSERT INTO log (revision, resource, namespace, name, created, deleted, prev_revision, value) "
                        "VALUES (?, ?, ?, ?, 1, 0, 0, ?)", (rev, resource, m.get("namespace", ""), m["name"], json.dumps(obj)))
        con.commit()
    finally:
        con.close()


def test_stored_poison_does_not_stop_the_node(node_minik: Minik) -> None:
    m = node_minik
    node = the_node(m)
    ns = Ns.make(m, "poison")
    ns.create(pod("before", [bb("main", "exec sleep 3600")]))
    before = ns.wait("before", timeout=60)
    container_id = cstatus(before, "main")["containerID"]

    good = [{"name": "main", "image": "busybox", "command": ["sleep", "3600"]}]
    poison: list[tuple[str, dict[str, Any]]] = [
        ("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound-volumes", "namespace": ns.name},
                  "spec": {"nodeName": node, "volumes": 1, "containers": good}}),
        ("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bound-containers", "namespace": ns.name},
                  "spec": {"nodeName": node, "containers": 1, "terminationGracePeriodSeconds": "s"}}),
        ("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pending-priority", "namespace": ns.name},
                  "spec": {"priority": "s", "containers": good}}),
        ("configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "owners", "namespace": ns.name, "ownerReferences": 1, "finalizers": 1},
                        "data": {"n": 1}}),
        # Stored as the text `Infinity` (what `1e999` became before decoding refused it).
        ("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "infinite", "namespace": ns.name},
                        "data": {"big": float("inf")}}),
    ]
    assert m.proc is not None
    m.stop()
    insert_raw(os.path.join(m.data_dir, "server", "db", "state.db"), poison)
    m.start(timeout=90)
    wait_node_ready(m, node)

    # Reported: one MalformedObject event per poison object, a FailedSync from the agent.
    def reported() -> bool:
        names = {e["involvedObject"]["name"] for e in ns.events() if e["reason"] == "MalformedObject"}
        return names >= {o["metadata"]["name"] for _, o in poison}
    deadline = time.monotonic() + 60
    while not reported():
        assert time.monotonic() < deadline, [(e["reason"], e["involvedObject"]["name"]) for e in ns.events()]
        time.sleep(0.5)
    # Only the poison: everything minik itself wrote before the restart (the Node, its Lease, the
    # running pod and its status, events, RBAC, APIServices…) passes today's validation.
    code, all_events = m.raw_json("GET", "/api/v1/events")
    assert code == 200
    malformed = {(e["involvedObject"].get("namespace", ""), e["involvedObject"]["name"])
                 for e in all_events["items"] if e["reason"] == "MalformedObject"}
    assert malformed == {(ns.name, o["metadata"]["name"]) for _, o in poison}, malformed

    # Readable by everyone: a stored Infinity no longer makes `kubectl get cm -A -o json` fail.
    listed = json.loads(m.kubectl("get", "cm", "-A", "-o", "json").stdout)
    assert any(i["metadata"]["name"] == "infinite" and i["data"] == {"big": None} for i in listed["items"])

    # Working: a new pod runs, a Deployment gets its pods, the old pod was never restarted.
    ns.create(pod("after", [bb("main", "exec sleep 3600")]))
    ns.wait("after", timeout=60)
    ns.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=2", "--", "sleep", "3600")
    ns.kubectl("rollout", "status", "deployment/web", "--timeout=90s", timeout=120)
    now = ns.get("before")
    assert running(now) and cstatus(now, "main")["containerID"] == container_id
    assert cstatus(now, "main").get("restartCount", 0) == 0
    deadline = time.monotonic() + 60
    while not any(e["reason"] == "FailedSync" and e["involvedObject"]["name"] in ("bound-volumes", "bound-containers")
                  for e in ns.events()):
        assert time.monotonic() < deadline, "no FailedSync event for a malformed bound pod"
        time.sleep(0.5)

    # Deletable, every one of them.
    ns.kubectl("delete", "pod", "bound-volumes", "bound-containers", "pending-priority", "--grace-period=0", "--force", "--wait=false")
    ns.kubectl("delete", "configmap", "owners", "infinite", "--wait=false")
    deadline = time.monotonic() + 60
    while True:
        left = [n for n in ("bound-volumes", "bound-containers", "pending-priority") if ns.get(n) is not None]
        code, _ = m.raw_json("GET", f"/api/v1/namespaces/{ns.name}/configmaps/owners")
        if not left and code == 404:
            break
        assert time.monotonic() < deadline, (left, code)
        time.sleep(0.5)
    # And the namespace itself goes away cleanly (pods forced: `sleep` ignores SIGTERM).
    ns.kubectl("delete", "deployment", "web")
    ns.kubectl("delete", "pods", "--all", "--grace-period=0", "--force")
    m.kubectl("delete", "namespace", ns.name, "--timeout=120s", timeout=150)
