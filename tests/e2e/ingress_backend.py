"""A tiny stdlib-only HTTP/WebSocket backend that ingress e2e tests run in a pod.

The pod is busybox plus the host's Python (hostPath mounts of /usr, /lib and /lib64, read-only),
so a real pod on the pod network answers: `GET /...` → "<hostname> <method> <target> <x-* headers>",
`GET /big?n=N` → N zero bytes streamed with a Content-Length, `POST` → "<hostname> received <N>"
after reading the whole body, and `Upgrade: websocket` → an echo of text frames prefixed "echo:".
Keep-alive is supported (the proxy pools connections). `SOURCE` is passed to `python3 -c`.
"""

from __future__ import annotations

import os
from typing import Any

SOURCE = r'''
import asyncio, base64, hashlib, socket, sys
NAME = socket.gethostname()
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

async def ws_echo(r, w):
    while True:
        b0, b1 = await r.readexactly(2)
        op, n = b0 & 0x0F, b1 & 0x7F
        if n == 126:
            n = int.from_bytes(await r.readexactly(2), "big")
        elif n == 127:
            n = int.from_bytes(await r.readexactly(8), "big")
        mask = await r.readexactly(4) if b1 & 0x80 else bytes(4)
        data = bytes(c ^ mask[i % 4] for i, c in enumerate(await r.readexactly(n)))
        if op == 8:
            w.write(b"\x88\x00")
            await w.drain()
            return
        if op == 1:
            out = b"echo:" + data
            w.write(bytes([0x81, len(out)]) + out)
            await w.drain()

async def handle(r, w):
    try:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            h = {}
            for line in lines[1:]:
                if ":" in line:
                    k, v = line.split(":", 1)
                    h[k.strip().lower()] = v.strip()
            path, _, query = target.partition("?")
            if h.get("upgrade", "").lower() == "websocket":
                acc = base64.b64encode(hashlib.sha1(h["sec-websocket-key"].encode() + GUID).digest())
                w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
                await ws_echo(r, w)
                return
            if method == "POST":
                n, got = int(h.get("content-length", "0")), 0
                while got < n:
                    chunk = await r.read(min(1 << 20, n - got))
                    if not chunk:
                        return
                    got += len(chunk)
                body = f"{NAME} received {got}\n".encode()
            elif path == "/big":
                n = int(query.split("=", 1)[1])
                w.write(f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {n}\r\n\r\n".encode())
                block, sent = bytes(65536), 0
                while sent < n:
                    k = min(len(block), n - sent)
                    w.write(block[:k])
                    sent += k
                    await w.drain()
                continue
            else:
                xh = "".join(f"{k}={v};" for k, v in sorted(h.items()) if k.startswith("x-"))
                body = f"{NAME} {method} {target} {xh}\n".encode()
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body))
            await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ValueError):
        pass
    finally:
        w.close()

async def main():
    srv = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[1]))
    await srv.serve_forever()

asyncio.run(main())
'''

Obj = dict[str, Any]


# What the host's /usr/bin/python3 needs (/lib64 only exists on some architectures).
HOST_DIRS = tuple(d for d in ("/usr", "/lib", "/lib64") if os.path.exists(d))


def python_container(name: str, port: int) -> Obj:
    return {"name": name, "image": "busybox", "command": ["/usr/bin/python3", "-I", "-c", SOURCE, str(port)],
            "ports": [{"name": "http", "containerPort": port}],
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 1},
            "volumeMounts": [{"name": d.strip("/"), "mountPath": d, "readOnly": True} for d in HOST_DIRS]}


def python_volumes() -> list[Obj]:
    return [{"name": d.strip("/"), "hostPath": {"path": d}} for d in HOST_DIRS]
