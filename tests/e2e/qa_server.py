"""A long-running agent-enabled server for checking tutorials by hand with /usr/bin/kubectl.

Role: the same server the e2e fixtures start (its own node name, bridge, nft table, CIDRs, DNS IP,
a local registry mirroring docker.io with busybox, the ingress proxy on free loopback ports), kept
running until SIGTERM/SIGINT, then reaped like the fixtures do. Not collected by pytest.
Usage: `.venv/bin/python -m tests.e2e.qa_server /tmp/qa-info.json` and read KUBECONFIG from the file.
Neighbours: tests/e2e/agent_fixtures.py (node_server and friends), docs/tutorial-check.md.
"""

from __future__ import annotations

import json
import signal
import sys
import threading

from tests.e2e.agent_fixtures import (claim_node_net, node_minik_for, reap_node, release_node_net,
                                      seed_registry, wait_node_ready)
from tests.e2e.minikd import free_port
from tests.support.registry import LocalRegistry


def main(info_path: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reg = LocalRegistry().start()
    try:
        seed_registry(reg)
        net = claim_node_net()
        m = node_minik_for(net, reg.host)
        http, https = free_port(), free_port()
        m.ingress = True
        m.extra += ["--ingress-http-port", str(http), "--ingress-https-port", str(https),
                    "--ingress-bind-address", "127.0.0.1"]
        try:
            m.start(timeout=120)
            wait_node_ready(m, net.node_name, timeout=120)
            with open(info_path, "w", encoding="utf-8") as f:
                json.dump({"kubeconfig": m.kubeconfig, "root": m.root, "node": net.node_name,
                           "cluster_dns": net.cluster_dns, "service_cidr": net.service_cidr,
                           "ingress_http": http, "ingress_https": https, "log": m.log_path}, f)
            print("ready", info_path, flush=True)
            while not stop.wait(1.0):
                if m.proc is not None and m.proc.poll() is not None:
                    print("minik exited", m.proc.returncode, flush=True)
                    break
        finally:
            reap_node(m, net, keep_dir=True)
            release_node_net(net)
    finally:
        reg.stop()


if __name__ == "__main__":
    main(sys.argv[1])
