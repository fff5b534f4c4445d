"""Idle footprint benchmark: a real `minik server --disable-agent` empty and holding 100 pods.

Starts the server, measures its RSS at idle, creates a 100-replica Deployment behind a Service
(the ReplicaSet, Deployment and Endpoints controllers and the scheduler all look at those pods),
waits until the controllers have stopped writing, and measures RSS at idle again. Prints both and
the cost per pod: with one shared pod cache per process (`minik.machinery.informers`) the pods are
held once by the informers plus once by the store's cache.

    python bench/idle.py [--pods 100] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.e2e.minikd import Minik, free_port  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def settle(m: Minik, seconds: float = 3.0, limit: float = 120.0) -> None:
    """Wait until the store's revision stops moving for `seconds` (controllers are idle)."""
    deadline = time.monotonic() + limit
    last, since = "", time.monotonic()
    while time.monotonic() < deadline:
        rv = json.loads(m.kubectl("get", "--raw", "/api/v1/namespaces/default/pods?limit=1").stdout)["metadata"]["resourceVersion"]
        if rv != last:
            last, since = rv, time.monotonic()
        elif time.monotonic() - since >= seconds:
            return
        time.sleep(0.5)
    raise SystemExit("the controllers never went idle")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pods", type=int, default=100)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    root = tempfile.mkdtemp(prefix="minik-bench-idle-")
    m = Minik(root, free_port(), ["--disable-agent"])
    m.start()
    try:
        pid = m.proc.pid if m.proc else 0
        settle(m)
        time.sleep(5)
        empty = rss_mb(pid)
        deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "idle", "namespace": "default"},
                  "spec": {"replicas": args.pods, "selector": {"matchLabels": {"app": "idle"}},
                           "template": {"metadata": {"labels": {"app": "idle"}},
                                        "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["sleep", "1d"]}]}}}}
        svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "idle", "namespace": "default"},
               "spec": {"selector": {"app": "idle"}, "ports": [{"port": 80}]}}
        for obj in (deploy, svc):
            m.kubectl("apply", "-f", "-", input=json.dumps(obj))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            items = json.loads(m.kubectl("get", "pods", "-o", "json").stdout)["items"]
            if len(items) >= args.pods:
                break
            time.sleep(0.5)
        settle(m)
        time.sleep(10)
        full = rss_mb(pid)
        print(f"minik idle footprint (server, --disable-agent, {args.pods} pods from one Deployment + Service)")
        print(f"idle RSS, empty cluster:      {empty:7.1f} MB")
        print(f"idle RSS, with {args.pods} pods:     {full:7.1f} MB")
        print(f"growth: {full - empty:.1f} MB ({(full - empty) * 1024 / max(1, args.pods):.0f} KiB per pod)")
        _, _, text = m.raw("GET", "/metrics")
        for ln in text.decode().splitlines():
            if ln.startswith("minik_informer"):
                print(ln)
    finally:
        m.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
