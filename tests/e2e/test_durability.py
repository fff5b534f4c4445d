"""Restarts keep every object; kill -9 during a burst loses no acknowledged write."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import threading
import time

from tests.e2e.minikd import Minik


def _settled(m: Minik, ns: str) -> dict:
    """The namespace's configmaps and deployments once the controllers stopped writing them.

    The deployment controller writes status right after a create; a snapshot taken before it
    finished would race the restart, so wait until two reads a second apart agree."""
    last = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        snap = json.loads(m.kubectl("get", "cm,deploy", "-n", ns, "-o", "json").stdout)
        deploys = [i for i in snap["items"] if i["kind"] == "Deployment"]
        observed = all(d.get("status", {}).get("observedGeneration") == d["metadata"]["generation"]
                       for d in deploys)
        versions = sorted(i["metadata"]["resourceVersion"] for i in snap["items"])
        if observed and versions == last:
            return snap  # type: ignore[no-any-return]
        last = versions
        time.sleep(1.0)
    raise AssertionError("the controllers kept writing for 30 s")


def test_restart_keeps_objects(fresh_minik: Minik) -> None:
    m = fresh_minik
    m.kubectl("create", "namespace", "keep")
    m.kubectl("create", "configmap", "c", "--from-literal=a=b", "-n", "keep")
    m.kubectl("create", "deployment", "web", "--image=busybox", "-n", "keep")
    before = _settled(m, "keep")
    assert m.stop() == 0
    m.start()
    after = json.loads(m.kubectl("get", "cm,deploy", "-n", "keep", "-o", "json").stdout)
    strip = lambda l: sorted((i["kind"], i["metadata"]["name"], i["metadata"]["uid"], i["metadata"]["resourceVersion"]) for i in l["items"])
    assert strip(before) == strip(after)
    # The revision keeps growing after a restart.
    m.kubectl("create", "configmap", "d", "--from-literal=a=b", "-n", "keep")
    rv_d = int(m.kubectl("get", "cm", "d", "-n", "keep", "-o", "jsonpath={.metadata.resourceVersion}").stdout)
    assert rv_d > max(int(i["metadata"]["resourceVersion"]) for i in after["items"])


def test_kill_9_during_burst_loses_no_acknowledged_write(fresh_minik: Minik) -> None:
    m = fresh_minik
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(worker: int) -> None:
        i = 0
        while not stop.is_set():
            name = f"burst-{worker}-{i}"
            try:
                code, _ = m.raw_json("POST", "/api/v1/namespaces/default/configmaps",
                                     {"metadata": {"name": name}, "data": {"v": "x" * 512}})
            except OSError:
                return
            if code == 201:
                with lock:
                    acked.append(name)
            i += 1

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futs = [pool.submit(writer, w) for w in range(8)]
        time.sleep(2.5)
        assert m.proc is not None
        m.proc.send_signal(signal.SIGKILL)
        m.proc.wait()
        stop.set()
        for f in futs:
            f.result()
    assert len(acked) > 50, "the burst should have acknowledged a good number of writes"
    m.start()
    code, lst = m.raw_json("GET", "/api/v1/namespaces/default/configmaps")
    assert code == 200
    present = {i["metadata"]["name"] for i in lst["items"]}
    missing = [n for n in acked if n not in present]
    assert not missing, f"{len(missing)} acknowledged creates lost after kill -9: {missing[:5]}"
