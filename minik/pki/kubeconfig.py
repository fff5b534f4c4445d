"""The admin kubeconfig (k3s writes /etc/rancher/k3s/k3s.yaml; minik writes <config-dir>/kubeconfig.yaml)."""

from __future__ import annotations

import base64
import os

import yaml


def render(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, name: str = "default") -> str:
    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    doc = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority-data": b64(ca_pem)}}],
        "users": [{"name": name, "user": {"client-certificate-data": b64(cert_pem), "client-key-data": b64(key_pem)}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    return str(yaml.safe_dump(doc, sort_keys=False))


def write(path: str, content: str, mode: int) -> None:
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory):
        # 0755 like /etc/rancher/k3s, whatever the daemon's umask (077): the file's own mode
        # (--write-kubeconfig-mode) decides who reads it.
        os.makedirs(directory, exist_ok=True)
        os.chmod(directory, 0o755)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(content)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
