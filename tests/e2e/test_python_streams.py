"""The Python `kubernetes` client's streaming calls against a node: exec (websocket v4 channels),
logs, and port-forward over the websocket channel protocol (not kubectl's SPDY)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.stream import portforward, stream

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik

SERVE = "mkdir -p /www && echo py-stream > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"


def test_python_client_exec_logs_portforward(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "pystream")
    ns.create(pod("web", [bb("web", SERVE)]))
    ns.wait("web")
    v1 = client.CoreV1Api(node_minik.client())
    out = stream(v1.connect_get_namespaced_pod_exec, "web", ns.name, command=["sh", "-c", "echo hi; echo err >&2"],
                 stderr=True, stdin=False, stdout=True, tty=False)
    assert sorted(out.split()) == ["err", "hi"]
    assert "serving" in v1.read_namespaced_pod_log("web", ns.name)
    pf = portforward(v1.connect_get_namespaced_pod_portforward, "web", ns.name, ports="8080")
    sock = pf.socket(8080)
    sock.setblocking(True)
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    assert data.startswith(b"HTTP/1.") and b"py-stream" in data
    pf.close()
