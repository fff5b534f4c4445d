"""The daemon's controller set in process (a real `minik.daemon.Server` with `disable_agent`, a
real store and API on a loopback port, no containerd): one shared pod cache however many
controllers read pods, and controllers that survive malformed objects written straight into the
store (bypassing validation, as an old or damaged database could hold them): the scheduler still
binds the other pods, the garbage collector still deletes other dependents, namespace deletion
still completes."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import gc
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from minik.api.audit import REASON, find_malformed
from minik.client import ClientError, Obj
from minik.config import ServerConfig
from minik.daemon import Server
from minik.machinery.informer import Informer
from tests.support.builders import make_configmap, make_deployment, make_node, make_pod, make_replicaset, owner_ref

NS = "default"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    cfg = ServerConfig(data_dir=str(tmp_path / "data"), config_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"),
                       bind_address="127.0.0.1", https_listen_port=_free_port(), advertise_address="127.0.0.1",
                       disable_agent=True, node_name="house-test")
    srv = Server(cfg)
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


async def eventually(fn: Callable[[], Awaitable[bool]], timeout: float = 15.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await fn():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what or fn}")
        await asyncio.sleep(0.05)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def write_raw(srv: Server, resource: str, obj: Obj) -> Obj:
    """Store an object as-is: no defaults, no validation (what a poisoned database holds)."""
    m = obj["metadata"]
    m.setdefault("uid", str(uuid.uuid4()))
    m.setdefault("creationTimestamp", _now())
    return await srv.store.create(resource, obj)


async def add_ready_node(srv: Server, name: str = "n1") -> None:
    node = make_node(name)
    created = await srv.client.create("nodes", "", node)
    created["status"] = node["status"]
    await srv.client.update("nodes", "", name, created, subresource="status")


def informer_counts() -> Counter[str]:
    gc.unfreeze()   # the daemon freezes what survives start-up (machinery/gcpause.py); get_objects skips frozen objects
    return Counter(o.resource for o in gc.get_objects() if isinstance(o, Informer))


async def test_one_pod_cache_with_100_pods(server: Server) -> None:
    srv = server
    for i in range(100):
        await srv.client.create("pods", NS, make_pod(f"p{i:03d}", labels={"app": "many"}))
    pods = srv.informers.informer("pods")
    await eventually(lambda: _true(len(pods) == 100), what="100 pods in the shared cache")
    # Every consumer (ReplicaSet, Deployment, Endpoints controllers, scheduler) reads this one cache.
    assert srv.informers.count("pods") == 1
    assert informer_counts()["pods"] == 1, informer_counts()
    assert all(n == 1 for n in informer_counts().values()), informer_counts()
    assert "informer-pods" in srv.supervisor.names()
    # The scheduler reads unbound pods through the node index ("" = not scheduled yet).
    assert len(pods.by_index("nodeName", "")) == 100


async def test_consumers_do_not_mutate_the_shared_cache(server: Server) -> None:
    srv = server
    await add_ready_node(srv)
    await srv.client.create("apps/deployments", NS, make_deployment("web", replicas=3))
    await srv.client.create("services", NS, {"metadata": {"name": "web"},
                                             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})
    pods = srv.informers.informer("pods")

    async def placed() -> bool:
        ps = pods.list(NS)
        return len(ps) == 3 and all(p["spec"].get("nodeName") for p in ps)
    await eventually(placed, what="3 pods bound")
    await asyncio.sleep(0.3)
    # Every cached object equals what the API serves at the same resourceVersion: nobody
    # (scheduler, ReplicaSet, Deployment, Endpoints controllers) edited a shared object in place.
    for inf in srv.informers.informers().values():
        for cached in inf.list():
            m = cached["metadata"]
            fresh = await srv.client.get(inf.resource, m.get("namespace", ""), m["name"])
            if fresh is not None and fresh["metadata"].get("resourceVersion") == m.get("resourceVersion"):
                assert cached == fresh, (inf.resource, m["name"])


async def _true(v: bool) -> bool:
    return v


async def test_scheduler_binds_other_pods_next_to_poison(server: Server) -> None:
    srv = server
    await add_ready_node(srv)
    # spec.priority "s" once crash-looped the scheduler's sort; spec.containers 1 breaks the filters.
    await write_raw(srv, "pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "bad-priority", "namespace": NS},
                                  "spec": {"priority": "s", "containers": [{"name": "c", "image": "busybox"}]}})
    await write_raw(srv, "pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "bad-containers", "namespace": NS},
                                  "spec": {"containers": 1}})
    await write_raw(srv, "pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "bad-owners", "namespace": NS, "ownerReferences": 1,
                                               "finalizers": 1},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
    for i in range(3):
        await srv.client.create("pods", NS, make_pod(f"good{i}"))

    async def bound() -> bool:
        for i in range(3):
            p = await srv.client.get("pods", NS, f"good{i}")
            if not p or p["spec"].get("nodeName") != "n1":
                return False
        return True
    await eventually(bound, what="good pods bound")

    async def warned() -> bool:
        events, _ = await srv.client.list("events", NS)
        return any(e["involvedObject"]["name"] == "bad-containers" and e["reason"] == "FailedScheduling"
                   and e["type"] == "Warning" for e in events)
    await eventually(warned, what="a Warning event for the malformed pod")
    # The scheduler keeps working afterwards: a pod created later is bound too.
    await srv.client.create("pods", NS, make_pod("later"))

    async def later_bound() -> bool:
        p = await srv.client.get("pods", NS, "later")
        return bool(p and p["spec"].get("nodeName") == "n1")
    await eventually(later_bound, what="later pod bound")


async def test_gc_collects_other_dependents_next_to_poison(server: Server) -> None:
    srv = server
    owner = await srv.client.create("configmaps", NS, make_configmap("owner"))
    for i in range(3):
        await srv.client.create("configmaps", NS, make_configmap(f"dep{i}", owners=[owner_ref(owner, controller=False)]))
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-refs", "namespace": NS, "ownerReferences": 1}})
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-ref-items", "namespace": NS,
                                                     "ownerReferences": [1, "x", {"uid": owner["metadata"]["uid"]}]}})
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-fins", "namespace": NS, "finalizers": 1,
                                                     "deletionTimestamp": _now()}})
    await srv.client.delete("configmaps", NS, "owner")

    async def collected() -> bool:
        left = [await srv.client.get("configmaps", NS, f"dep{i}") for i in range(3)]
        return all(x is None for x in left)
    await eventually(collected, what="dependents collected")
    # A dependent created afterwards with a dead owner is collected too: the collector still runs.
    await srv.client.create("configmaps", NS, make_configmap("late", owners=[owner_ref(owner, controller=False)]))

    async def late_gone() -> bool:
        return await srv.client.get("configmaps", NS, "late") is None
    await eventually(late_gone, what="late dependent collected")


async def test_namespace_deletion_completes_next_to_poison(server: Server) -> None:
    srv = server
    for ns in ("doomed", "stuck"):
        await srv.client.create("namespaces", "", {"metadata": {"name": ns}})
    await srv.client.create("configmaps", "doomed", make_configmap("plain", namespace="doomed"))
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-refs", "namespace": "doomed", "ownerReferences": 1}})
    await write_raw(srv, "pods", {"apiVersion": "v1", "kind": "Pod",
                                  "metadata": {"name": "bad-priority", "namespace": "doomed"},
                                  "spec": {"priority": "s", "schedulerName": "none",
                                           "containers": [{"name": "c", "image": "busybox"}]}})
    # `finalizers: 1` once made DELETE answer 500 and kept its namespace Terminating for good;
    # such an object is deletable now, so "stuck" goes too (checked below).
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-fins", "namespace": "stuck", "finalizers": 1}})
    await srv.client.delete("namespaces", "", "stuck")
    await srv.client.delete("namespaces", "", "doomed")

    async def doomed_gone() -> bool:
        return await srv.client.get("namespaces", "", "doomed") is None
    await eventually(doomed_gone, what="namespace doomed deleted")

    async def stuck_gone() -> bool:
        return await srv.client.get("namespaces", "", "stuck") is None
    await eventually(stuck_gone, what="namespace stuck (holding a finalizers: 1 object) deleted")
    # And a namespace created and deleted afterwards goes too.
    await srv.client.create("namespaces", "", {"metadata": {"name": "after"}})

    async def published() -> bool:
        return await srv.client.get("serviceaccounts", "after", "default") is not None
    await eventually(published, what="default ServiceAccount in a new namespace")
    await srv.client.delete("namespaces", "", "after")

    async def after_gone() -> bool:
        return await srv.client.get("namespaces", "", "after") is None
    await eventually(after_gone, what="namespace after deleted")


async def test_replicaset_controller_survives_a_poison_replicaset(server: Server) -> None:
    srv = server
    await write_raw(srv, "apps/replicasets", {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                              "metadata": {"name": "bad", "namespace": NS},
                                              "spec": {"replicas": "many", "selector": {"matchLabels": {"app": "bad"}},
                                                       "template": {"metadata": {"labels": {"app": "bad"}},
                                                                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    await srv.client.create("apps/replicasets", NS, make_replicaset("good", replicas=2))

    async def two_pods() -> bool:
        items, _ = await srv.client.list("pods", NS, label_selector="app=good")
        return len(items) == 2
    await eventually(two_pods, what="2 pods of the good ReplicaSet")

    async def warned() -> bool:
        events, _ = await srv.client.list("events", NS)
        return any(e["involvedObject"]["name"] == "bad" and e["type"] == "Warning" and e["reason"] == "ReconcileError"
                   for e in events)
    await eventually(warned, what="a Warning event on the malformed ReplicaSet")


async def test_deployment_releases_replicasets_that_stop_matching(server: Server) -> None:
    srv = server
    d = await srv.client.create("apps/deployments", NS, make_deployment("web", replicas=0))

    async def owned_rs() -> bool:
        items, _ = await srv.client.list("apps/replicasets", NS)
        return any(ref.get("uid") == d["metadata"]["uid"] for rs in items for ref in rs["metadata"].get("ownerReferences") or [])
    await eventually(owned_rs, what="the Deployment's ReplicaSet")
    items, _ = await srv.client.list("apps/replicasets", NS)
    rs = items[0]
    await srv.client.patch("apps/replicasets", NS, rs["metadata"]["name"], {"metadata": {"labels": {"app": "moved"}}})

    async def released() -> bool:
        cur = await srv.client.get("apps/replicasets", NS, rs["metadata"]["name"])
        return cur is not None and not any(ref.get("uid") == d["metadata"]["uid"]
                                           for ref in cur["metadata"].get("ownerReferences") or [])
    await eventually(released, what="the ReplicaSet released")


POISON: list[tuple[str, Obj]] = [
    ("pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bad-priority", "namespace": NS},
              "spec": {"priority": "s", "schedulerName": "none", "containers": [{"name": "c", "image": "busybox"}]}}),
    ("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-refs", "namespace": NS, "ownerReferences": 1}}),
    ("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-fins", "namespace": NS, "finalizers": 1}}),
    ("configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-data", "namespace": NS},
                    "data": {"n": 1, "f": 1.5}}),
]


async def test_the_api_refuses_poison_and_deletes_stored_poison(server: Server) -> None:
    srv = server
    for resource, obj in POISON:
        with pytest.raises(ClientError) as err:
            await srv.client.create(resource, NS, dict(obj, metadata=dict(obj["metadata"], name="refused")))
        assert err.value.code == 422, err.value.message
    with pytest.raises(ClientError) as err:
        await srv.client.create("pods", NS, POISON[0][1])
    assert 'spec.priority: Invalid value: "string": spec.priority in body must be of type integer: "string"' in err.value.message
    for resource, obj in POISON:
        await write_raw(srv, resource, obj)
    found = {(b.rt.plural, b.object["metadata"]["name"]): b for b in await find_malformed(srv.service)}
    assert set(found) == {(r, o["metadata"]["name"]) for r, o in POISON}, found
    assert found[("configmaps", "bad-refs")].causes[0].field == "metadata.ownerReferences"
    # A patch that does not fix the bad field is refused too (the merged object is checked) …
    with pytest.raises(ClientError) as err:
        await srv.client.patch("configmaps", NS, "bad-data", {"metadata": {"labels": {"a": "b"}}})
    assert err.value.code == 422
    # … one that fixes it goes through, and every poison object can be deleted.
    fixed = await srv.client.patch("configmaps", NS, "bad-data", {"data": {"n": "1", "f": "1.5"}})
    assert fixed["data"] == {"n": "1", "f": "1.5"}
    for resource, obj in POISON:
        await srv.client.delete(resource, NS, obj["metadata"]["name"])
        assert await srv.client.get(resource, NS, obj["metadata"]["name"]) is None, obj["metadata"]["name"]


async def test_poison_in_the_database_is_reported_at_start(tmp_path: Path) -> None:
    cfg = ServerConfig(data_dir=str(tmp_path / "data"), config_dir=str(tmp_path / "etc"), run_dir=str(tmp_path / "run"),
                       bind_address="127.0.0.1", https_listen_port=_free_port(), advertise_address="127.0.0.1",
                       disable_agent=True, node_name="house-test")
    srv = Server(cfg)
    await srv.start()
    try:
        for resource, obj in POISON:
            await write_raw(srv, resource, obj)
    finally:
        await srv.stop()
    srv = Server(dataclasses.replace(cfg, https_listen_port=_free_port()))
    await srv.start()
    try:
        async def reported() -> bool:
            events, _ = await srv.client.list("events", NS)
            named = {e["involvedObject"]["name"] for e in events if e["reason"] == REASON and e["type"] == "Warning"}
            return named == {o["metadata"]["name"] for _, o in POISON}
        await eventually(reported, what="a MalformedObject event for each poison object")
        events, _ = await srv.client.list("events", NS)
        prio = next(e for e in events if e["reason"] == REASON and e["involvedObject"]["name"] == "bad-priority")
        assert "spec.priority" in prio["message"]
        # And the server works around them: a pod is scheduled next to the poison pod.
        await add_ready_node(srv)
        await srv.client.create("pods", NS, make_pod("fine"))

        async def bound() -> bool:
            p = await srv.client.get("pods", NS, "fine")
            return bool(p and p["spec"].get("nodeName") == "n1")
        await eventually(bound, what="a good pod bound next to poison")
    finally:
        await srv.stop()


async def test_deployment_and_endpoints_controllers_survive_poison(server: Server) -> None:
    srv = server
    await write_raw(srv, "apps/deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "metadata": {"name": "bad-replicas", "namespace": NS},
                                              "spec": {"replicas": "x", "selector": {"matchLabels": {"app": "bad"}}, "template": 1}})
    await write_raw(srv, "apps/deployments", {"apiVersion": "apps/v1", "kind": "Deployment",
                                              "metadata": {"name": "bad-spec", "namespace": NS}, "spec": [1]})
    await write_raw(srv, "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad-ports", "namespace": NS},
                                      "spec": {"selector": 1, "ports": 1}})
    await write_raw(srv, "services", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "bad-port-items", "namespace": NS},
                                      "spec": {"selector": {"app": "web"}, "ports": [1, {"port": "x"}]}})
    await srv.client.create("apps/deployments", NS, make_deployment("web", replicas=2))
    await srv.client.create("services", NS, {"metadata": {"name": "web"},
                                             "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}})

    async def two_pods() -> bool:
        items, _ = await srv.client.list("pods", NS)
        return len([p for p in items if p["metadata"]["name"].startswith("web-")]) == 2
    await eventually(two_pods, what="the good Deployment's 2 pods")

    async def endpoints() -> bool:
        return await srv.client.get("endpoints", NS, "web") is not None
    await eventually(endpoints, what="Endpoints of the good Service")
    found = {b.object["metadata"]["name"] for b in await find_malformed(srv.service)}
    assert {"bad-replicas", "bad-spec", "bad-ports", "bad-port-items"} <= found


async def test_selector_lists_work_next_to_malformed_labels(server: Server) -> None:
    srv = server
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad-labels", "namespace": NS, "labels": 1}})
    await write_raw(srv, "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                        "metadata": {"name": "bad-label-value", "namespace": NS, "labels": {"app": [1], "n": {}}}})
    good = make_configmap("good")
    good["metadata"]["labels"] = {"app": "x", "n": "5"}
    await srv.client.create("configmaps", NS, good)
    for selector, want in (("app=x", {"good"}), ("app in (x,y)", {"good"}), ("n>3", {"good"}),
                           ("!app", {"bad-labels", "kube-root-ca.crt"}), ("app!=y", {"good", "bad-labels", "bad-label-value", "kube-root-ca.crt"})):
        items, _ = await srv.client.list("configmaps", NS, label_selector=selector)
        assert {i["metadata"]["name"] for i in items} - {"kube-root-ca.crt"} == want - {"kube-root-ca.crt"}, selector


async def test_custom_resources_with_wrong_types_are_refused(server: Server) -> None:
    srv = server
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {"name": "widgets.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
                    "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                        "type": "object", "properties": {"spec": {"type": "object", "properties": {
                            "replicas": {"type": "integer"}, "size": {"x-kubernetes-int-or-string": True},
                            "items": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}}}}}}}]}}
    await srv.client.create("apiextensions.k8s.io/customresourcedefinitions", "", crd)

    async def served() -> bool:
        try:
            await srv.client.list("example.com/widgets", NS)
            return True
        except (ClientError, KeyError, LookupError, ValueError):
            return False
    await eventually(served, what="the Widget resource served")
    base = {"apiVersion": "example.com/v1", "kind": "Widget"}
    bad = [{"spec": 1}, {"spec": {"replicas": "x"}}, {"spec": {"items": 1}}, {"spec": {"items": [1]}},
           {"spec": {"size": [1]}}, {"spec": {"replicas": float("inf")}}]
    for i, extra in enumerate(bad):
        with pytest.raises(ClientError) as err:
            await srv.client.create("example.com/widgets", NS, {**base, "metadata": {"name": f"w{i}"}, **extra})
        assert err.value.code == 422, (extra, err.value.message)
    with pytest.raises(ClientError) as err:
        await srv.client.create("example.com/widgets", NS, {**base, "metadata": {"name": "m", "ownerReferences": 1}})
    assert err.value.code == 422 and "metadata.ownerReferences" in err.value.message
    ok = await srv.client.create("example.com/widgets", NS, {**base, "metadata": {"name": "ok"}, "spec": {"replicas": 1, "size": "1Gi"}})
    with pytest.raises(ClientError) as err:
        await srv.client.patch("example.com/widgets", NS, "ok", {"metadata": 1})
    assert err.value.code == 422
    assert ok["spec"] == {"replicas": 1, "size": "1Gi"}
