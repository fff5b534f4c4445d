"""The Python `kubernetes` client's streaming calls against a node: exec (websocket v4 channels),
logs, and port-forward over the websocket channel protocol (not kubectl's SPDY)."""

from __future__ import annotations

import time

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


def test_python_client_exec_stdin_text_and_binary(node_minik: Minik) -> None:
    """write_stdin(str) goes out as websocket TEXT frames, bytes as BINARY: both reach the process."""
    ns = Ns.make(node_minik, "pystdin")
    ns.create(pod("sh", [bb("sh", "exec sleep 3600")]))
    ns.wait("sh")
    v1 = client.CoreV1Api(node_minik.client())
    for line in ("echo from-text\n", b"echo from-bytes\n"):
        resp = stream(v1.connect_get_namespaced_pod_exec, "sh", ns.name, command=["sh"],
                      stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
        resp.write_stdin(line)
        resp.write_stdin("exit 3\n")
        out, deadline = "", time.monotonic() + 20
        while resp.is_open() and time.monotonic() < deadline:
            resp.update(timeout=1)
            out += resp.read_stdout(timeout=1)
        assert out.strip() == ("from-text" if isinstance(line, str) else "from-bytes")
        assert resp.returncode == 3
        resp.close()
