"""A real pod on the node: its Secret volume and ServiceAccount token are readable by the
container's non-root user (defaultMode 0400 + fsGroup, the token owned by runAsUser) and by no
local user on the host; the tmpfs mounts go away with the pod."""

from __future__ import annotations

import glob
import os
import subprocess

from tests.e2e.agent_fixtures import Ns, bb, pod
from tests.e2e.minikd import Minik
from tests.support.polling import eventually

SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def as_nobody(*cmd: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, check=False, timeout=30)


def test_pod_secret_and_token_private_to_the_container(node_minik: Minik) -> None:
    ns = Ns.make(node_minik, "priv")
    ns.kubectl("create", "secret", "generic", "db", "--from-literal=password=t0p-s3cret")
    ns.create(pod("reader", [bb("main", "exec sleep 3600",
                                 securityContext={"runAsUser": 1000, "runAsGroup": 3000},
                                 volumeMounts=[{"name": "db", "mountPath": "/etc/db", "readOnly": True}])],
                  securityContext={"fsGroup": 2000},
                  volumes=[{"name": "db", "secret": {"secretName": "db", "defaultMode": 0o400}}]))
    ns.wait("reader", timeout=60)
    # Inside: the non-root user reads the 0400 Secret through fsGroup, and its token.
    assert ns.exec("reader", "id", "-u").stdout.strip() == "1000"
    assert ns.exec("reader", "cat", "/etc/db/password").stdout == "t0p-s3cret"
    perms, _links, _owner, group = ns.exec("reader", "ls", "-lnL", "/etc/db/password").stdout.split()[:4]
    assert (perms, group) == ("-r--r-----", "2000")
    assert ns.exec("reader", "cat", f"{SA_DIR}/token").stdout.count(".") == 2
    # On the host: the files are on tmpfs under root-only directories.
    uid = ns.get("reader")["metadata"]["uid"]  # type: ignore[index]
    pod_dir = os.path.join(node_minik.data_dir, "agent", "pods", uid)
    secret_dir = os.path.join(pod_dir, "volumes", "kubernetes.io~secret", "db")
    [token_dir] = glob.glob(os.path.join(pod_dir, "volumes", "kubernetes.io~projected", "kube-api-access-*"))
    assert os.path.ismount(secret_dir) and os.path.ismount(token_dir)
    assert oct(os.stat(pod_dir).st_mode & 0o777) == "0o700"
    os.chmod(node_minik.root, 0o755)   # the test dir itself must not be what stops the user
    for d in (node_minik.data_dir, os.path.join(node_minik.data_dir, "agent")):
        os.chmod(d, os.stat(d).st_mode | 0o055)
    for path in (os.path.join(secret_dir, "password"), os.path.join(token_dir, "token")):
        r = as_nobody("cat", path)
        assert r.returncode != 0 and b"t0p-s3cret" not in r.stdout, path
    # Deleting the pod unmounts the tmpfs and removes the directory.
    ns.kubectl("delete", "pod", "reader", "--grace-period=1")
    assert eventually(lambda: not os.path.exists(pod_dir), timeout=60)
    with open("/proc/self/mountinfo") as f:
        assert pod_dir not in f.read()
