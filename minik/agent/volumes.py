"""Pod volumes on the node: payloads (pure), kubelet's atomic writer, and the per-pod manager.

Role: every pod volume becomes a host directory under
<data_dir>/agent/pods/<uid>/volumes/<plugin>/<name> (emptyDir on disk or tmpfs for medium
Memory; configMap, secret, downwardAPI and projected written with kubelet's atomic "..data"
symlink swap so mounts without subPath see edits; secrets and projected volumes on tmpfs so they
never touch the disk), or an existing host path (hostPath with its type checks, a bound
PersistentVolumeClaim's hostPath/local path). `container_mounts` turns volumeMounts (readOnly,
subPath, subPathExpr, mountPropagation) into CRI mounts.
The payload functions are pure and table-tested; the filesystem work is blocking and runs in
threads (`asyncio.to_thread`) from `VolumeManager`.
Neighbours: `minik.agent.worker` calls `VolumeManager.setup` before creating containers (and
again when a referenced ConfigMap/Secret changes) and `teardown` when the pod is gone;
`minik.agent.env` provides downward API field values.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minik.agent.containers import MountSpec
from minik.agent.env import EnvError, expand, field_value, resource_value
from minik.apis.quantity import Quantity
from minik.client import Client, ClientError

__all__ = [
    "FileSpec",
    "Ownership",
    "VolumeError",
    "VolumeManager",
    "configmap_payload",
    "container_mounts",
    "downward_payload",
    "projected_payload",
    "pod_ownership",
    "referenced_objects",
    "secret_payload",
    "write_atomic",
]

Obj = dict[str, Any]

DEFAULT_MODE = 0o644
DATA_DIR = "..data"
TOKEN_REFRESH_FRACTION = 0.8   # kubelet refreshes a projected token at 80% of its lifetime
DEFAULT_TOKEN_SECONDS = 3607

_PLUGINS = {
    "emptyDir": "kubernetes.io~empty-dir",
    "configMap": "kubernetes.io~configmap",
    "secret": "kubernetes.io~secret",
    "downwardAPI": "kubernetes.io~downward-api",
    "projected": "kubernetes.io~projected",
}


class VolumeError(Exception):
    """A volume cannot be set up (FailedMount); the message is the event text."""


@dataclass(frozen=True, slots=True)
class FileSpec:
    data: bytes
    mode: int = DEFAULT_MODE
    owner: int = -1          # uid to chown the file to (-1: leave it root's); projected tokens


@dataclass(frozen=True, slots=True)
class Ownership:
    """How a pod's securityContext shapes its volume files: `fs_group` (kubelet's
    SetVolumeOwnership: group fsGroup, group read added, directories setgid) and the single
    `run_as_user` every container shares (a projected token then belongs to that user)."""

    fs_group: int | None = None
    run_as_user: int | None = None


def pod_ownership(pod: Obj) -> Ownership:
    spec = pod.get("spec") or {}
    psc = spec.get("securityContext") or {}
    fs_group = psc.get("fsGroup")
    users: set[Any] = set()
    for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        users.add((c.get("securityContext") or {}).get("runAsUser", psc.get("runAsUser")))
    user = next(iter(users)) if len(users) == 1 else None
    return Ownership(int(fs_group) if isinstance(fs_group, int) else None,
                     int(user) if isinstance(user, int) else None)


# Kubelet's SetVolumeOwnership for read-only (secret, configMap, projected, downwardAPI) volumes.
_FSGROUP_FILE_BITS = 0o440
_FSGROUP_DIR_BITS = 0o2550
# The volume's own directory inside the container: readable by any container user; the host
# directories above it (the pod's directory) are root-only, so no other local user reaches it.
VOLUME_ROOT_MODE = 0o755
PRIVATE_DIR_MODE = 0o700


# ---- payloads (pure) ---------------------------------------------------------------------------

def _mode(value: Any, default: int) -> int:
    return default if value is None else int(value) & 0o7777


def _keyed_payload(kind: str, name: str, data: Mapping[str, bytes], items: Sequence[Mapping[str, Any]],
                   default_mode: int, optional: bool) -> dict[str, FileSpec]:
    if not items:
        return {k: FileSpec(v, default_mode) for k, v in data.items()}
    out: dict[str, FileSpec] = {}
    for it in items:
        key = str(it.get("key", ""))
        if key not in data:
            if optional:
                continue
            raise VolumeError(f'configmap references non-existent config key: {key}' if kind == "configmap"
                              else f'references non-existent secret key: {key}')
        out[_safe_rel(str(it.get("path") or key))] = FileSpec(data[key], _mode(it.get("mode"), default_mode))
    return out


def _safe_rel(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts or parts[0].startswith(".."):
        raise VolumeError(f"invalid path {path!r} in volume items")
    return "/".join(parts)


def configmap_payload(cm: Obj | None, source: Mapping[str, Any], default_mode: int | None = None) -> dict[str, FileSpec]:
    name = str(source.get("name", ""))
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode") if default_mode is None else default_mode, DEFAULT_MODE)
    if cm is None:
        if optional:
            return {}
        raise VolumeError(f'configmap "{name}" not found')
    data = {k: str(v).encode() for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        data[k] = base64.b64decode(v)
    return _keyed_payload("configmap", name, data, source.get("items") or [], mode, optional)


def secret_payload(secret: Obj | None, source: Mapping[str, Any], default_mode: int | None = None) -> dict[str, FileSpec]:
    name = str(source.get("secretName") or source.get("name") or "")
    optional = bool(source.get("optional"))
    mode = _mode(source.get("defaultMode") if default_mode is None else default_mode, DEFAULT_MODE)
    if secret is None:
        if optional:
            return {}
        raise VolumeError(f'secret "{name}" not found')
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        data[k] = str(v).encode()
    return _keyed_payload("secret", name, data, source.get("items") or [], mode, optional)


def downward_payload(pod: Obj, items: Sequence[Mapping[str, Any]], default_mode: int, pod_ip: str,
                     host_ip: str, node_allocatable: Mapping[str, str]) -> dict[str, FileSpec]:
    out: dict[str, FileSpec] = {}
    for it in items:
        path = _safe_rel(str(it.get("path", "")))
        try:
            if it.get("fieldRef"):
                value = field_value(pod, str(it["fieldRef"].get("fieldPath", "")), pod_ip, host_ip)
            elif it.get("resourceFieldRef"):
                ref = it["resourceFieldRef"]
                value = resource_value(pod, str(ref.get("containerName", "")), str(ref.get("resource", "")),
                                       ref.get("divisor"), node_allocatable)
            else:
                continue
        except EnvError as e:
            raise VolumeError(str(e)) from None
        out[path] = FileSpec(value.encode(), _mode(it.get("mode"), default_mode))
    return out


def projected_payload(pod: Obj, source: Mapping[str, Any], configmaps: Mapping[str, Obj | None],
                      secrets: Mapping[str, Obj | None], pod_ip: str, host_ip: str,
                      node_allocatable: Mapping[str, str], token: bytes | Mapping[str, bytes] = b"",
                      token_owner: int = -1) -> dict[str, FileSpec]:
    """`token`: the ServiceAccount token, or path → token when the volume projects several;
    `token_owner`: the uid the token file belongs to (the containers' shared runAsUser)."""
    mode = _mode(source.get("defaultMode"), DEFAULT_MODE)
    out: dict[str, FileSpec] = {}
    for s in source.get("sources") or []:
        if s.get("configMap") is not None:
            ref = s["configMap"]
            out.update(configmap_payload(configmaps.get(str(ref.get("name", ""))), ref, mode))
        elif s.get("secret") is not None:
            ref = s["secret"]
            out.update(secret_payload(secrets.get(str(ref.get("name", ""))), ref, mode))
        elif s.get("downwardAPI") is not None:
            out.update(downward_payload(pod, s["downwardAPI"].get("items") or [], mode, pod_ip, host_ip,
                                        node_allocatable))
        elif s.get("serviceAccountToken") is not None:
            ref = s["serviceAccountToken"]
            path = _safe_rel(str(ref.get("path", "token")))
            value = token.get(path, b"") if isinstance(token, Mapping) else token
            if not value:
                raise VolumeError(f"no service account token for {path!r}")
            # Token files are private to the pod's user: kubelet writes them 0600 unless a mode is set.
            out[path] = FileSpec(value, mode if source.get("defaultMode") is not None else 0o600, token_owner)
    return out


def referenced_objects(pod: Obj) -> tuple[set[str], set[str]]:
    """(configmap names, secret names) the pod's volumes read."""
    cms: set[str] = set()
    secrets: set[str] = set()
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("configMap") is not None:
            cms.add(str(v["configMap"].get("name", "")))
        if v.get("secret") is not None:
            secrets.add(str(v["secret"].get("secretName", "")))
        for s in (v.get("projected") or {}).get("sources") or []:
            if s.get("configMap") is not None:
                cms.add(str(s["configMap"].get("name", "")))
            if s.get("secret") is not None:
                secrets.add(str(s["secret"].get("name", "")))
    return cms, secrets


# ---- atomic writer (blocking) --------------------------------------------------------------------

def _file_state(spec: FileSpec, fs_group: int | None) -> tuple[bytes, int, int, int]:
    """(data, mode, uid, gid) a payload file should have on disk (-1: whatever it is)."""
    if fs_group is None:
        return spec.data, spec.mode, spec.owner, -1
    return spec.data, spec.mode | _FSGROUP_FILE_BITS, spec.owner, fs_group


def _is_current(root: str, payload: Mapping[str, FileSpec], fs_group: int | None) -> bool:
    found: set[str] = set()
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, root)
            spec = payload.get(rel)
            if spec is None:
                return False
            found.add(rel)
            data, mode, uid, gid = _file_state(spec, fs_group)
            st = os.lstat(p)
            if stat.S_IMODE(st.st_mode) != mode or uid not in (-1, st.st_uid) or gid not in (-1, st.st_gid):
                return False
            with open(p, "rb") as fh:
                if fh.read() != data:
                    return False
    return found == set(payload)


def _own_dir(path: str, fs_group: int | None) -> None:
    if fs_group is None:
        os.chmod(path, VOLUME_ROOT_MODE)
    else:
        os.chown(path, -1, fs_group)
        os.chmod(path, VOLUME_ROOT_MODE | _FSGROUP_DIR_BITS)


def write_atomic(target: str, payload: Mapping[str, FileSpec], fs_group: int | None = None) -> bool:
    """Make `target` show exactly `payload`, the way kubelet's AtomicWriter does: files go into a
    fresh hidden timestamped directory, `..data` is swapped to it with one rename (readers see the
    old or the new set, never a mix), and each top-level entry is a symlink through `..data`.
    Files get their mode (and owner); with `fs_group`, kubelet's ownership rules on top (group
    fsGroup, group-readable, setgid directories). Returns False when the content was already
    current. Blocking."""
    os.makedirs(target, exist_ok=True)
    data_link = os.path.join(target, DATA_DIR)
    old_dir = ""
    if os.path.islink(data_link):
        old_dir = os.path.join(target, os.readlink(data_link))
        if os.path.isdir(old_dir) and _is_current(old_dir, payload, fs_group):
            return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
    new_dir = tempfile.mkdtemp(prefix=stamp, dir=target)
    _own_dir(new_dir, fs_group)
    for rel, spec in payload.items():
        path = os.path.join(new_dir, rel)
        parent = os.path.dirname(path)
        if not os.path.isdir(parent):
            os.makedirs(parent, exist_ok=True)
            p = parent
            while p != new_dir:
                _own_dir(p, fs_group)
                p = os.path.dirname(p)
        data, mode, uid, gid = _file_state(spec, fs_group)
        # Created 0600 and only then opened up: the content is never readable by more than
        # the final mode allows, whatever the process umask.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if uid != -1 or gid != -1:
                os.fchown(f.fileno(), uid, gid)
            os.fchmod(f.fileno(), mode)
    tmp_link = os.path.join(target, "..data_tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp_link)
    os.symlink(os.path.basename(new_dir), tmp_link)
    os.rename(tmp_link, data_link)
    top = {rel.split("/", 1)[0] for rel in payload}
    for name in top:
        link = os.path.join(target, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(DATA_DIR, name), link)
    for name in os.listdir(target):
        if name.startswith("..") or name in top:
            continue
        link = os.path.join(target, name)
        if os.path.islink(link) and os.readlink(link).startswith(DATA_DIR + "/"):
            os.unlink(link)
    if old_dir and os.path.isdir(old_dir) and old_dir != new_dir:
        shutil.rmtree(old_dir, ignore_errors=True)
    return True


# ---- host filesystem helpers (blocking) -----------------------------------------------------------

def _mount_tmpfs(path: str, size: int | None, mode: int = 0o777) -> None:
    os.makedirs(path, exist_ok=True)
    if os.path.ismount(path):
        return
    opts = f"mode={mode:04o}" if size is None else f"mode={mode:04o},size={size}"
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", path],
                         capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise VolumeError(f"mount tmpfs at {path}: {res.stderr.strip()}")


def _makedirs_mode(path: str, mode: int) -> None:
    """makedirs where every directory it creates gets `mode` (the daemon's umask is 077)."""
    missing: list[str] = []
    p = os.path.abspath(path)
    while not os.path.exists(p):
        missing.append(p)
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    os.makedirs(path, exist_ok=True)
    for d in missing:
        os.chmod(d, mode)


def _check_host_path(path: str, htype: str) -> None:
    if htype in ("", None):
        return
    if htype == "DirectoryOrCreate":
        if not os.path.exists(path):
            _makedirs_mode(path, 0o755)   # as kubelet, whatever the daemon's umask
            return
        htype = "Directory"
    if htype == "FileOrCreate":
        if not os.path.exists(path):
            _makedirs_mode(os.path.dirname(path) or "/", 0o755)
            with open(path, "a", encoding="utf-8"):
                pass
            os.chmod(path, 0o644)
            return
        htype = "File"
    checks = {
        "Directory": (stat.S_ISDIR, "directory"),
        "File": (stat.S_ISREG, "file"),
        "Socket": (stat.S_ISSOCK, "socket"),
        "CharDevice": (stat.S_ISCHR, "character device"),
        "BlockDevice": (stat.S_ISBLK, "block device"),
    }
    if htype not in checks:
        raise VolumeError(f"unsupported hostPath type {htype!r}")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VolumeError(f"hostPath type check failed: {path} is not a {checks[htype][1]}") from None
    if not checks[htype][0](st.st_mode):
        raise VolumeError(f"hostPath type check failed: {path} is not a {checks[htype][1]}")


def _ensure_dir(path: str, mode: int = 0o777) -> None:
    if not os.path.isdir(path):
        os.makedirs(path, exist_ok=True)
        os.chmod(path, mode)


def _teardown_dir(pod_dir: str) -> None:
    if not os.path.isdir(pod_dir):
        return
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        points = [line.split()[4] for line in f]
    for point in sorted((p for p in points if p.startswith(pod_dir + "/")), reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    shutil.rmtree(pod_dir, ignore_errors=True)


def _subpath(base: str, sub: str, create: bool) -> str:
    parts = [p for p in sub.split("/") if p not in ("", ".")]
    if sub.startswith("/") or ".." in parts:
        raise VolumeError(f"subPath {sub!r} must be a relative path without '..'")
    path = os.path.join(base, *parts) if parts else base
    if create and not os.path.lexists(path):
        os.makedirs(path, mode=0o777, exist_ok=True)
        p = path
        while p != base and p.startswith(base + "/"):   # the daemon's umask took bits away
            os.chmod(p, 0o777)
            p = os.path.dirname(p)
    return path


def container_mounts(container: Mapping[str, Any], volume_paths: Mapping[str, tuple[str, bool]],
                     env: Mapping[str, str]) -> list[MountSpec]:
    """volumeMounts → CRI mounts. `volume_paths`: volume name → (host path, read-only source).
    subPath directories are created as kubelet does. Blocking (mkdir)."""
    out: list[MountSpec] = []
    for vm in container.get("volumeMounts") or []:
        name = str(vm.get("name", ""))
        if name not in volume_paths:
            raise VolumeError(f"volume {name!r} referenced by container {container.get('name')} is not defined")
        host, ro_source = volume_paths[name]
        sub = str(vm.get("subPath") or "")
        if vm.get("subPathExpr"):
            sub = expand(str(vm["subPathExpr"]), env)
        if sub:
            host = _subpath(host, sub, create=not ro_source)
        out.append(MountSpec(str(vm.get("mountPath", "")), host,
                             bool(vm.get("readOnly")) or ro_source,
                             str(vm.get("mountPropagation") or "")))
    return out


# ---- manager ------------------------------------------------------------------------------------

class VolumeManager:
    """Sets up and tears down the volumes of pods on this node."""

    def __init__(self, pods_dir: str, client: Client, clock: Callable[[], float] = time.time) -> None:
        self.pods_dir = pods_dir
        self.client = client
        self.clock = clock
        # (pod uid, volume, path) → (token, refresh at): bound tokens are reused until 80% of their life.
        self._tokens: dict[tuple[str, str, str], tuple[bytes, float]] = {}

    def next_refresh(self, uid: str) -> float | None:
        """When this pod's projected tokens must be renewed (the worker schedules a sync then)."""
        times = [at for (u, _, _), (_, at) in self._tokens.items() if u == uid]
        return min(times) if times else None

    async def _service_account_tokens(self, pod: Obj, volume: str, source: Mapping[str, Any]) -> dict[str, bytes]:
        m, spec = pod["metadata"], pod.get("spec") or {}
        out: dict[str, bytes] = {}
        for s in source.get("sources") or []:
            ref = s.get("serviceAccountToken")
            if ref is None:
                continue
            path = _safe_rel(str(ref.get("path", "token")))
            key = (m["uid"], volume, path)
            cached = self._tokens.get(key)
            if cached is not None and cached[1] > self.clock():
                out[path] = cached[0]
                continue
            seconds = int(ref.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS)
            req: Obj = {"expirationSeconds": seconds,
                        "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": m["name"], "uid": m["uid"]}}
            if ref.get("audience"):
                req["audiences"] = [ref["audience"]]
            try:
                tr = await self.client.create_token(m["namespace"], spec.get("serviceAccountName") or "default", req)
            except ClientError as e:
                raise VolumeError(f"failed to fetch token: {e.message}") from None
            token = str((tr.get("status") or {}).get("token", "")).encode()
            self._tokens[key] = (token, self.clock() + seconds * TOKEN_REFRESH_FRACTION)
            out[path] = token
        return out

    def pod_dir(self, uid: str) -> str:
        return os.path.join(self.pods_dir, uid)

    def volume_dir(self, uid: str, plugin: str, name: str) -> str:
        return os.path.join(self.pods_dir, uid, "volumes", plugin, name)

    async def _fetch(self, resource: str, ns: str, names: set[str]) -> dict[str, Obj | None]:
        out: dict[str, Obj | None] = {}
        for n in sorted(names):
            try:
                out[n] = await self.client.get(resource, ns, n)
            except ClientError as e:
                raise VolumeError(f"{resource} {n!r}: {e.message}") from None
        return out

    async def setup(self, pod: Obj, pod_ip: str, host_ip: str,
                    node_allocatable: Mapping[str, str]) -> dict[str, tuple[str, bool]]:
        """Create/refresh every volume; returns volume name → (host path, read-only source).
        Idempotent; configMap/secret content is rewritten only when it changed."""
        m = pod["metadata"]
        uid, ns = m["uid"], m["namespace"]
        cm_names, secret_names = referenced_objects(pod)
        configmaps = await self._fetch("configmaps", ns, cm_names)
        secrets = await self._fetch("secrets", ns, secret_names)
        out: dict[str, tuple[str, bool]] = {}
        work: list[tuple[str, Mapping[str, FileSpec], bool]] = []   # (dir, payload, tmpfs)
        owner = pod_ownership(pod)
        await asyncio.to_thread(self._private_parents, uid)
        for v in (pod.get("spec") or {}).get("volumes") or []:
            name = str(v.get("name", ""))
            if v.get("emptyDir") is not None:
                d = self.volume_dir(uid, _PLUGINS["emptyDir"], name)
                ed = v["emptyDir"]
                if ed.get("medium") == "Memory":
                    size = None
                    if ed.get("sizeLimit") is not None:
                        q = Quantity.of(str(ed["sizeLimit"]))
                        size = q.int_value() if q is not None else None
                    await asyncio.to_thread(_mount_tmpfs, d, size)
                else:
                    await asyncio.to_thread(_ensure_dir, d)
                out[name] = (d, False)
            elif v.get("hostPath") is not None:
                hp = v["hostPath"]
                path = str(hp.get("path", ""))
                try:
                    await asyncio.to_thread(_check_host_path, path, str(hp.get("type") or ""))
                except OSError as e:
                    raise VolumeError(f"hostPath {path}: {e}") from None
                out[name] = (path, False)
            elif v.get("configMap") is not None:
                src = v["configMap"]
                d = self.volume_dir(uid, _PLUGINS["configMap"], name)
                work.append((d, configmap_payload(configmaps.get(str(src.get("name", ""))), src), False))
                out[name] = (d, True)
            elif v.get("secret") is not None:
                src = v["secret"]
                d = self.volume_dir(uid, _PLUGINS["secret"], name)
                work.append((d, secret_payload(secrets.get(str(src.get("secretName", ""))), src), True))
                out[name] = (d, True)
            elif v.get("downwardAPI") is not None:
                src = v["downwardAPI"]
                d = self.volume_dir(uid, _PLUGINS["downwardAPI"], name)
                work.append((d, downward_payload(pod, src.get("items") or [], _mode(src.get("defaultMode"), DEFAULT_MODE),
                                                 pod_ip, host_ip, node_allocatable), False))
                out[name] = (d, True)
            elif v.get("projected") is not None:
                d = self.volume_dir(uid, _PLUGINS["projected"], name)
                tokens = await self._service_account_tokens(pod, name, v["projected"])
                work.append((d, projected_payload(pod, v["projected"], configmaps, secrets, pod_ip, host_ip,
                                                  node_allocatable, tokens,
                                                  -1 if owner.run_as_user is None else owner.run_as_user), True))
                out[name] = (d, True)
            elif v.get("persistentVolumeClaim") is not None:
                out[name] = await self._pvc_path(ns, v["persistentVolumeClaim"])
            else:
                kinds = [k for k in v if k != "name"]
                raise VolumeError(f"volume {name!r}: unsupported volume type {', '.join(kinds) or '(none)'}")
        for d, payload, tmpfs in work:
            await asyncio.to_thread(self._write, d, payload, tmpfs, owner.fs_group)
        return out

    def _private_parents(self, uid: str) -> None:
        """The pod's directory and its volumes/<plugin> directories are root-only: a local user
        cannot reach a pod's Secret or token files (the container reaches them through its
        bind mounts, which do not depend on the host path's permissions)."""
        pod_dir = self.pod_dir(uid)
        for d in (self.pods_dir, pod_dir, os.path.join(pod_dir, "volumes"),
                  *(os.path.join(pod_dir, "volumes", p) for p in _PLUGINS.values())):
            os.makedirs(d, mode=PRIVATE_DIR_MODE, exist_ok=True)
            os.chmod(d, PRIVATE_DIR_MODE)

    @staticmethod
    def _write(d: str, payload: Mapping[str, FileSpec], tmpfs: bool, fs_group: int | None) -> None:
        if tmpfs:
            _mount_tmpfs(d, None, VOLUME_ROOT_MODE)
        else:
            os.makedirs(d, exist_ok=True)
        _own_dir(d, fs_group)
        write_atomic(d, payload, fs_group)

    async def _pvc_path(self, ns: str, src: Mapping[str, Any]) -> tuple[str, bool]:
        claim = str(src.get("claimName", ""))
        try:
            pvc = await self.client.get("persistentvolumeclaims", ns, claim)
            if pvc is None:
                raise VolumeError(f'persistentvolumeclaim "{claim}" not found')
            pv_name = (pvc.get("spec") or {}).get("volumeName")
            if not pv_name or (pvc.get("status") or {}).get("phase") not in (None, "Bound"):
                raise VolumeError(f'persistentvolumeclaim "{claim}" is not bound')
            pv = await self.client.get("persistentvolumes", "", str(pv_name))
        except ClientError as e:
            raise VolumeError(f"persistentvolumeclaim {claim!r}: {e.message}") from None
        if pv is None:
            raise VolumeError(f'persistentvolume "{pv_name}" of claim "{claim}" not found')
        pspec = pv.get("spec") or {}
        path = (pspec.get("hostPath") or {}).get("path") or (pspec.get("local") or {}).get("path")
        if not path:
            raise VolumeError(f'persistentvolume "{pv_name}" has no hostPath or local path (unsupported source)')
        if pspec.get("hostPath") is not None:
            await asyncio.to_thread(_check_host_path, str(path), "DirectoryOrCreate")
        return str(path), bool(src.get("readOnly"))

    async def mounts(self, container: Mapping[str, Any], volume_paths: Mapping[str, tuple[str, bool]],
                     env: Mapping[str, str]) -> list[MountSpec]:
        return await asyncio.to_thread(container_mounts, container, volume_paths, env)

    async def teardown(self, uid: str) -> None:
        """Unmount tmpfs volumes and delete the pod's volume directory. Safe to repeat."""
        for key in [k for k in self._tokens if k[0] == uid]:
            del self._tokens[key]
        await asyncio.to_thread(_teardown_dir, self.pod_dir(uid))

    def known_uids(self) -> list[str]:
        try:
            return [n for n in os.listdir(self.pods_dir) if "_" not in n]
        except FileNotFoundError:
            return []
