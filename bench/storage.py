"""Local-path volume benchmark: a pod with a new PersistentVolumeClaim against the same pod with an
emptyDir, same server, same run.

One agent-enabled `minik server` (tests/e2e/agent_fixtures.py: own containerd, bridge, nft table,
CIDRs, busybox from a local registry mirror). For each of N rounds, one at a time:
  (a) baseline: POST a pod with an emptyDir volume → Ready (polled), then delete it (grace 0) and
      wait until it is gone;
  (b) local-path: POST a claim and a pod using it → Ready (scheduler records the node on the
      claim, the provisioner makes the directory and the PV, the binder binds, the scheduler binds
      the pod, the agent mounts it), then delete pod and claim and wait until the PV and its
      directory are gone (pvc-protection, release, reclaim Delete).
Prints p50 per row and the ratios (b)/(a) for start and for tear-down, then the server's RSS.

    python bench/storage.py [--n 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.e2e.agent_fixtures import node_server, seed_registry  # noqa: E402
from tests.e2e.minikd import Minik  # noqa: E402
from tests.support.registry import LocalRegistry  # noqa: E402

Obj = dict[str, Any]
NS = "bench"


def ready(m: Minik, name: str) -> bool:
    code, p = m.raw_json("GET", f"/api/v1/namespaces/{NS}/pods/{name}")
    return code == 200 and any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions") or [])


def wait(pred: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.02)


def pod(name: str, volume: Obj) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": {
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "main", "image": "busybox", "command": ["sh", "-c", "echo x > /data/f; exec sleep 3600"],
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
        "volumes": [{"name": "data", **volume}]}}


def gone(m: Minik, path: str) -> bool:
    return m.raw_json("GET", path)[0] == 404


def round_trip(m: Minik, with_claim: bool) -> tuple[float, float]:
    name = f"p-{uuid.uuid4().hex[:6]}"
    t0 = time.monotonic()
    if with_claim:
        code, body = m.raw_json("POST", f"/api/v1/namespaces/{NS}/persistentvolumeclaims", {
            "metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}})
        assert code == 201, body
        volume: Obj = {"persistentVolumeClaim": {"claimName": name}}
    else:
        volume = {"emptyDir": {}}
    code, body = m.raw_json("POST", f"/api/v1/namespaces/{NS}/pods", pod(name, volume))
    assert code == 201, body
    wait(lambda: ready(m, name), f"pod {name} Ready")
    started = time.monotonic() - t0
    pv = ""
    if with_claim:
        pv = m.raw_json("GET", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}")[1]["spec"]["volumeName"]
    t1 = time.monotonic()
    m.raw_json("DELETE", f"/api/v1/namespaces/{NS}/pods/{name}?gracePeriodSeconds=0")
    if with_claim:
        m.raw_json("DELETE", f"/api/v1/namespaces/{NS}/persistentvolumeclaims/{name}")
        wait(lambda: gone(m, f"/api/v1/persistentvolumes/{pv}"), f"volume {pv} deleted")
    wait(lambda: gone(m, f"/api/v1/namespaces/{NS}/pods/{name}"), f"pod {name} gone")
    return started, time.monotonic() - t1


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10)
    args = p.parse_args()
    reg = LocalRegistry().start()
    try:
        seed_registry(reg)
        with node_server(reg.host) as (m, _net):
            m.raw_json("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
            round_trip(m, False)     # warm-up: image pull, first sandbox
            rows: dict[str, tuple[list[float], list[float]]] = {"emptyDir (baseline)": ([], []), "local-path claim": ([], [])}
            for _ in range(args.n):
                for label, claim in (("emptyDir (baseline)", False), ("local-path claim", True)):
                    s, d = round_trip(m, claim)
                    rows[label][0].append(s)
                    rows[label][1].append(d)
            base_s, base_d = (statistics.median(x) for x in rows["emptyDir (baseline)"])
            print(f"{'row':24} {'start p50 ms':>13} {'ratio':>6} {'teardown p50 ms':>16} {'ratio':>6}")
            for label, (s, d) in rows.items():
                ms, md = statistics.median(s), statistics.median(d)
                print(f"{label:24} {ms * 1000:13.0f} {ms / base_s:6.2f} {md * 1000:16.0f} {md / base_d:6.2f}")
            assert m.proc is not None
            print(f"server RSS after {args.n} claims: {rss_mb(m.proc.pid):.1f} MB")
    finally:
        reg.stop()


if __name__ == "__main__":
    main()
