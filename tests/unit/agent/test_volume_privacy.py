"""Secret and ServiceAccount-token volumes are private to the pod: a real tmpfs per volume under
root-only pod directories, files at the pod's defaultMode / item mode (0644 as Kubernetes), fsGroup
as kubelet applies it. A non-root local user (setpriv) cannot read them; a process with the
container's uid reading through a bind mount (what runc gives the container) can. Needs root."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest

from minik.agent.volumes import VolumeManager, pod_ownership

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None or shutil.which("unshare") is None,
                                reason="needs root, setpriv and unshare (tmpfs mounts, another user)")

NOBODY = 65534
SECRET_VALUE = b"s3cr3t-value-for-privacy-test"


class FakeClient:
    """The two calls VolumeManager makes: get a Secret, request a bound token."""

    def __init__(self) -> None:
        self.objects = {("secrets", "ns", "creds"): {"metadata": {"name": "creds", "namespace": "ns"},
                                                     "data": {"password": base64.b64encode(SECRET_VALUE).decode(),
                                                              "user": base64.b64encode(b"admin").decode()}}}

    async def get(self, resource: str, ns: str, name: str) -> Any:
        return self.objects.get((resource, ns, name))

    async def create_token(self, ns: str, sa: str, req: Any) -> Any:
        return {"status": {"token": f"token-for-{ns}-{sa}"}}


def make_pod(uid: str, *, fs_group: int | None = None, run_as_user: int | None = None,
             secret_source: dict[str, Any] | None = None) -> dict[str, Any]:
    sc: dict[str, Any] = {}
    if fs_group is not None:
        sc["fsGroup"] = fs_group
    if run_as_user is not None:
        sc["runAsUser"] = run_as_user
    return {"metadata": {"name": "p", "namespace": "ns", "uid": uid},
            "spec": {"securityContext": sc, "serviceAccountName": "default",
                     "containers": [{"name": "c", "image": "busybox"}],
                     "volumes": [
                         {"name": "creds", "secret": secret_source or {"secretName": "creds"}},
                         {"name": "kube-api-access", "projected": {"defaultMode": 0o644, "sources": [
                             {"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}},
                         {"name": "sa-token", "projected": {"sources": [
                             {"serviceAccountToken": {"path": "token"}}]}},
                     ]}}


@pytest.fixture
def base() -> Iterator[str]:
    """A data dir everyone may traverse (so only minik's own modes protect the pods)."""
    d = tempfile.mkdtemp(prefix="minik-privacy-", dir="/tmp")
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        subprocess.run(["sh", "-c", f"grep -o ' {d}[^ ]*' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"],
                       check=False, capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def as_user(uid: int, *cmd: str, gid: int | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={gid if gid is not None else uid}", "--clear-groups",
                           *cmd], capture_output=True, check=False, timeout=30)


def in_container(volume_dir: str, uid: int, gid: int, path: str) -> subprocess.CompletedProcess[bytes]:
    """Read `path` inside a bind mount of the volume, as runc sets it up for a container."""
    mnt = tempfile.mkdtemp(prefix="minik-ctr-", dir="/tmp")
    os.chmod(mnt, 0o755)
    try:
        script = f'mount --bind "$1" "$2" && exec setpriv --reuid={uid} --regid={gid} --clear-groups cat "$2/{path}"'
        return subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", volume_dir, mnt],
                              capture_output=True, check=False, timeout=30)
    finally:
        os.rmdir(mnt)


def mode(path: str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


async def test_secret_and_token_volumes_are_private_to_the_pod(base: str) -> None:
    pods = os.path.join(base, "agent", "pods")
    vm = VolumeManager(pods, FakeClient())  # type: ignore[arg-type]
    pod = make_pod("uid-1")
    paths = await vm.setup(pod, "10.42.0.5", "127.0.0.1", {})
    secret_dir, _ = paths["creds"]
    token_dir, _ = paths["kube-api-access"]
    for d in (secret_dir, token_dir, paths["sa-token"][0]):
        assert os.path.ismount(d), f"{d} is not its own tmpfs"
    # Kubernetes's default file mode, and the token of the kube-api-access volume at its defaultMode.
    assert mode(os.path.join(secret_dir, "password")) == 0o644
    assert os.path.realpath(os.path.join(secret_dir, "password")).startswith(secret_dir + "/..")
    assert mode(os.path.join(token_dir, "token")) == 0o644
    assert mode(os.path.join(paths["sa-token"][0], "token")) == 0o600
    # The pod's directory and everything between it and the volumes: root only.
    for d in (pods, vm.pod_dir("uid-1"), os.path.join(vm.pod_dir("uid-1"), "volumes"), os.path.dirname(secret_dir)):
        assert mode(d) == 0o700, d

    # The data dir itself is open to everyone (control: the user can read a file there) …
    control = os.path.join(base, "control")
    with open(control, "w") as f:
        f.write("ok")
    os.chmod(control, 0o644)
    assert as_user(NOBODY, "cat", control).returncode == 0
    # … but no Secret value and no token.
    for p in (os.path.join(secret_dir, "password"), os.path.join(token_dir, "token"),
              os.path.join(paths["sa-token"][0], "token")):
        r = as_user(NOBODY, "cat", p)
        assert r.returncode != 0 and b"Permission denied" in r.stderr, (p, r)
        assert SECRET_VALUE not in r.stdout
    assert as_user(NOBODY, "ls", vm.pod_dir("uid-1")).returncode != 0
    # The container (any uid, here 1000) reads its Secret through its bind mount.
    r = in_container(secret_dir, 1000, 1000, "password")
    assert r.returncode == 0, r.stderr
    assert r.stdout == SECRET_VALUE
    r = in_container(token_dir, 1000, 1000, "token")
    assert r.returncode == 0 and r.stdout == b"token-for-ns-default", r.stderr

    # Removal unmounts every tmpfs and deletes the pod's directory.
    await vm.teardown("uid-1")
    assert not os.path.exists(vm.pod_dir("uid-1"))
    with open("/proc/self/mountinfo") as f:
        assert vm.pod_dir("uid-1") not in f.read()


async def test_default_mode_items_and_fs_group(base: str) -> None:
    vm = VolumeManager(os.path.join(base, "pods"), FakeClient())  # type: ignore[arg-type]
    pod = make_pod("uid-2", fs_group=2000, run_as_user=1000,
                   secret_source={"secretName": "creds", "defaultMode": 0o400,
                                  "items": [{"key": "password", "path": "pw"},
                                            {"key": "user", "path": "dir/user", "mode": 0o600}]})
    assert pod_ownership(pod).fs_group == 2000 and pod_ownership(pod).run_as_user == 1000
    paths = await vm.setup(pod, "10.42.0.6", "127.0.0.1", {})
    secret_dir = paths["creds"][0]
    pw, user = os.path.join(secret_dir, "pw"), os.path.join(secret_dir, "dir", "user")
    # kubelet's fsGroup rules for read-only volumes: group fsGroup, group read added.
    assert mode(pw) == 0o440 and os.stat(pw).st_gid == 2000
    assert mode(user) == 0o640 and os.stat(user).st_gid == 2000
    assert os.stat(os.path.realpath(os.path.join(secret_dir, "dir"))).st_mode & stat.S_ISGID
    # The container's user (uid 1000 in group 2000) reads a 0400 Secret thanks to fsGroup …
    r = in_container(secret_dir, 1000, 2000, "pw")
    assert r.returncode == 0 and r.stdout == SECRET_VALUE, r.stderr
    # … another uid outside the group does not, even inside the container.
    assert in_container(secret_dir, 1001, 1001, "pw").returncode != 0
    # The token of a volume without defaultMode belongs to the containers' runAsUser, 0600 (+ group read).
    token = os.path.join(paths["sa-token"][0], "token")
    assert os.stat(token).st_uid == 1000
    assert in_container(paths["sa-token"][0], 1000, 1000, "token").stdout == b"token-for-ns-default"
    # A second sync with the same content rewrites nothing.
    data_before = os.readlink(os.path.join(secret_dir, "..data"))
    await vm.setup(pod, "10.42.0.6", "127.0.0.1", {})
    assert os.readlink(os.path.join(secret_dir, "..data")) == data_before
    # No local user gets in.
    assert as_user(NOBODY, "cat", pw, gid=2000).returncode != 0
    await vm.teardown("uid-2")
    assert not os.path.exists(vm.pod_dir("uid-2"))
