"""One pod worker per pod UID: observe → plan → act → report, in order, one pod at a time.

Role: the doing half of the agent. A worker wakes on pod updates, runtime changes (the agent's
relist), probe results, ConfigMap/Secret edits and its own timers (back-offs); each sync observes
the runtime (`Observer`), sets up volumes, asks `plan()` what to do, carries the actions out with
thin CRI calls (image pulls with back-off and credentials, env and mounts, create/start, hooks,
probes, graceful kills), then computes the status and patches it only when it changed. Deletion
(deletionTimestamp, or the pod vanished from the API) stops everything gracefully — preStop,
SIGTERM, grace, kill — removes sandboxes and volumes and, for a pod still in the API, finishes the
deletion with grace 0.
Neighbours: `minik.agent.agent.NodeAgent` creates workers and routes events; pure helpers in
`plan`, `status`, `sandbox`, `containers`, `env`, `volumes`; side effects through `CriClient`,
`Client`, `EventRecorder`.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from minik.agent.backoff import Backoff
from minik.agent.containers import MountSpec, container_config, non_root_violation
from minik.agent.cri import CriClient, CriError, CriNotFoundError, pb
from minik.agent.etchosts import ETC_HOSTS, ensure_hosts_file, hosts_content, mounts_etc_hosts
from minik.agent.env import MASTER_NAMESPACE, EnvError, EnvSources, referenced_objects, resolve_env, service_link_env
from minik.agent.events import EventRecorder, pod_ref
from minik.agent.observe import Observer
from minik.agent.plan import (
    RUNNING,
    Action,
    ContainerObs,
    CreateSandbox,
    Hints,
    KillContainer,
    KillPod,
    Observed,
    RemoveContainer,
    SandboxObs,
    RemoveSandbox,
    StartContainer,
    StopSandbox,
    Wait,
    container_hash,
    is_sidecar,
    plan,
)
from minik.agent.probes import ContainerProber, ProbeTarget, run_handler
from minik.agent.registries import Registries, auth_server_address, image_registry_host
from minik.agent.sandbox import SandboxContext, log_directory, sandbox_config
from minik.agent.status import StatusInput, compute_status
from minik.agent.termination import DEFAULT_MESSAGE_PATH, new_message_file
from minik.agent.volumes import VolumeError, VolumeManager
from minik.client import Client, ClientError

__all__ = ["PodWorker", "WorkerContext"]

log = logging.getLogger(__name__)

Obj = dict[str, Any]

RESYNC = 30.0          # a quiet pod is still re-checked this often
RETRY = 2.0            # after an error (volume, API, runtime)
MAX_ROUNDS = 12        # plan/act rounds per sync (one pod start takes ~3)


@dataclass
class WorkerContext:
    """Everything workers share (one per agent)."""

    client: Client
    cri: CriClient
    node_name: str
    node_ip: str
    sandbox: SandboxContext
    volumes: VolumeManager
    events: EventRecorder
    observer: Observer
    registries: Registries = field(default_factory=Registries)
    crash_backoff: Backoff = field(default_factory=Backoff)
    image_backoff: Backoff = field(default_factory=Backoff)
    node_allocatable: Mapping[str, str] = field(default_factory=dict)
    service_env: Mapping[str, str] = field(default_factory=dict)
    now: Callable[[], float] = time.time
    pull_timeout: float = 600.0


async def _services_for(client: Client, namespace: str) -> list[Obj]:
    own, _ = await client.list("services", namespace)
    if namespace == MASTER_NAMESPACE:
        return own
    master, _ = await client.list("services", MASTER_NAMESPACE, field_selector="metadata.name=kubernetes")
    return master + own


class _StartFailed(Exception):
    """A container could not be started; its waiting reason is recorded."""


def _rv(pod: Obj | None) -> int:
    try:
        return int(((pod or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _find_container(pod: Obj, name: str) -> tuple[Obj | None, bool]:
    spec = pod.get("spec") or {}
    for c in spec.get("containers") or []:
        if c.get("name") == name:
            return c, False
    for c in spec.get("initContainers") or []:
        if c.get("name") == name:
            return c, True
    for c in spec.get("ephemeralContainers") or []:
        if c.get("name") == name:
            return c, False
    return None, False


def _container_ref(pod: Obj, name: str, init: bool, kind: str) -> Obj:
    """The event's involvedObject; kubelet names ephemeral containers spec.ephemeralContainers{name}."""
    ref = pod_ref(pod, name, init)
    if kind == "ephemeral":
        ref["fieldPath"] = f"spec.ephemeralContainers{{{name}}}"
    return ref


def _docker_auth(secret: Obj, host: str) -> pb.AuthConfig | None:
    data = secret.get("data") or {}
    try:
        if ".dockerconfigjson" in data:
            auths = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        elif ".dockercfg" in data:
            auths = json.loads(base64.b64decode(data[".dockercfg"]))
        else:
            return None
    except (ValueError, TypeError):
        return None
    for key, entry in auths.items():
        k = str(key).split("://", 1)[-1].split("/", 1)[0]
        if k in ("index.docker.io", "registry-1.docker.io"):
            k = "docker.io"
        if k != host or not isinstance(entry, dict):
            continue
        user, password = str(entry.get("username", "")), str(entry.get("password", ""))
        if not user and entry.get("auth"):
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
        return pb.AuthConfig(username=user, password=password,
                             server_address=auth_server_address(host),
                             identity_token=str(entry.get("identitytoken", "")),
                             registry_token=str(entry.get("registrytoken", "")))
    return None


class PodWorker:
    def __init__(self, ctx: WorkerContext, uid: str, pod: Obj | None) -> None:
        self.ctx = ctx
        self.uid = uid
        self.pod = pod
        self._wake = asyncio.Event()
        self._wake.set()
        self.task: asyncio.Task[None] | None = None
        self.done = False
        self._next_wake: float | None = None
        # Probe results by container id.
        self._started: set[str] = set()
        self._ready: set[str] = set()
        self._unhealthy: dict[str, str] = {}
        self._probers: dict[str, asyncio.Task[None]] = {}
        self._killed: set[str] = set()
        self._waiting: dict[str, tuple[str, str]] = {}
        self._sticky_waiting: dict[str, tuple[str, str]] = {}
        self._volume_paths: dict[str, tuple[str, bool]] = {}
        self._last_status: Obj | None = None
        self._announced: set[str] = set()     # container ids whose Started event was recorded
        self._names: dict[str, tuple[str, bool]] = {}   # container id → (name, init) for probe events
        self._image_failed: dict[str, float] = {}       # image back-off key → time of last failure
        self._sandboxes: tuple[SandboxObs, ...] = ()    # last seen, for hooks during termination
        self._last_rv = 0

    # ---- wiring ------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.create_task(self.run(), name=f"pod-worker-{self.uid[:8]}")

    def update(self, pod: Obj | None) -> None:
        if pod is None or self.pod is None or _rv(pod) >= _rv(self.pod):
            self.pod = pod
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop the worker and its probers (containers keep running)."""
        for t in self._probers.values():
            t.cancel()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    async def run(self) -> None:
        try:
            while not self.done:
                timeout = RESYNC
                if self._next_wake is not None:
                    timeout = max(0.0, min(timeout, self._next_wake - self.ctx.now()))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
                self._wake.clear()
                self._next_wake = None
                try:
                    await self.sync()
                except asyncio.CancelledError:
                    raise
                except (CriError, ClientError) as e:
                    log.warning("pod %s: sync failed: %s", self._label(), e)
                    self._schedule(self.ctx.now() + RETRY)
                except Exception as e:  # noqa: BLE001 - a worker must survive a bug in one sync, and it logs
                    log.exception("pod %s: sync failed", self._label())
                    try:
                        # Repeats aggregate into one Event with a count (the recorder's correlator).
                        if self.pod is not None:
                            self.ctx.events.warning(pod_ref(self.pod), "FailedSync",
                                                    f"error syncing pod: {type(e).__name__}: {e}"[:1024])
                    except Exception:  # noqa: BLE001 - reporting a malformed pod must not end its worker
                        log.debug("pod %s: no FailedSync event", self._label(), exc_info=True)
                    self._schedule(self.ctx.now() + RETRY)
        finally:
            for t in self._probers.values():
                t.cancel()

    def _label(self) -> str:
        m = (self.pod or {}).get("metadata") or {}
        return f"{m.get('namespace', '?')}/{m.get('name', '?')} ({self.uid[:8]})"

    def _schedule(self, at: float) -> None:
        if self._next_wake is None or at < self._next_wake:
            self._next_wake = at

    # ---- sync --------------------------------------------------------------------------------

    async def sync(self) -> None:
        pod = self.pod
        obs = await self.ctx.observer.observe(self.uid)
        self._sandboxes = obs.sandboxes
        if pod is None or (pod.get("metadata") or {}).get("deletionTimestamp"):
            await self._terminate(pod, obs)
            return
        phase = (pod.get("status") or {}).get("phase")
        self._waiting = {}
        try:
            self._volume_paths = await self.ctx.volumes.setup(
                pod, self._pod_ip(pod, obs), self.ctx.node_ip, self.ctx.node_allocatable)
            refresh = self.ctx.volumes.next_refresh(self.uid)
            if refresh is not None:
                self._schedule(refresh)   # projected ServiceAccount tokens are renewed before they expire
        except VolumeError as e:
            self.ctx.events.warning(pod_ref(pod), "FailedMount", f"MountVolume.SetUp failed: {e}")
            for c in (pod.get("spec") or {}).get("containers") or []:
                if obs.latest(c["name"]) is None:
                    self._waiting[c["name"]] = ("ContainerCreating", "")
            await self._report(pod, obs)
            self._schedule(self.ctx.now() + RETRY)
            return
        attempted: set[str] = set()
        for _ in range(MAX_ROUNDS):
            actions: list[Action]
            if phase in ("Succeeded", "Failed"):
                actions = [a for a in plan(pod, obs, self.ctx.now(), self._hints(pod, obs))
                           if isinstance(a, (StopSandbox, KillContainer, RemoveContainer))]
            else:
                actions = plan(pod, obs, self.ctx.now(), self._hints(pod, obs))
            progressed = False
            for a in actions:
                if isinstance(a, Wait):
                    self._waiting[a.name] = (a.reason, a.message)
                    # Kubelet records this Warning on every sync that finds the container
                    # backing off (aggregated into one Event with a growing count).
                    meta = pod.get("metadata") or {}
                    self.ctx.events.warning(
                        pod_ref(pod, a.name, _find_container(pod, a.name)[1]), "BackOff",
                        f"Back-off restarting failed container {a.name} in pod "
                        f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})")
                    self._schedule(a.retry_at)
                    continue
                if isinstance(a, StartContainer):
                    if a.name in attempted:
                        continue
                    attempted.add(a.name)
                progressed = await self._act(pod, obs, a) or progressed
            if not progressed:
                break
            obs = await self.ctx.observer.observe(self.uid)
        self._reconcile_probers(pod, obs)
        await self._report(pod, obs)

    def _hints(self, pod: Obj, obs: Observed) -> Hints:
        delays: dict[str, float] = {}
        for c in list((pod.get("spec") or {}).get("containers") or []) + list(
                (pod.get("spec") or {}).get("initContainers") or []):
            key = self._crash_key(c)
            latest = obs.latest(c["name"])
            since = latest.finished_at if latest is not None else 0.0
            if self.ctx.crash_backoff.in_backoff(key, since, self.ctx.now()):
                delays[c["name"]] = self.ctx.crash_backoff.delay(key)
        return Hints(unhealthy={k: v for k, v in self._unhealthy.items() if k not in self._killed},
                     started=frozenset(self._started), ready=frozenset(self._ready), delays=delays)

    def _crash_key(self, c: Mapping[str, Any]) -> str:
        return f"{self.uid}/{c['name']}/{container_hash(c)}"

    async def _service_env(self, pod: Obj) -> Mapping[str, str]:
        """Service variables from the Services that exist now (the agent's start-time copy of the
        `kubernetes` ones when the API cannot be read)."""
        try:
            services = await _services_for(self.ctx.client, pod["metadata"]["namespace"])
        except ClientError as e:
            log.warning("service environment of %s: %s", pod["metadata"].get("name"), e)
            return self.ctx.service_env
        links = (pod.get("spec") or {}).get("enableServiceLinks")
        return service_link_env(services, pod["metadata"]["namespace"], links is not False) or self.ctx.service_env

    def _pod_ip(self, pod: Obj, obs: Observed) -> str:
        if (pod.get("spec") or {}).get("hostNetwork"):
            return self.ctx.node_ip
        sb = obs.sandbox
        return sb.ip if sb is not None else ""

    # ---- actions -----------------------------------------------------------------------------

    async def _act(self, pod: Obj, obs: Observed, a: Action) -> bool:
        """Carry out one action; True when it changed the runtime."""
        cri = self.ctx.cri
        if isinstance(a, CreateSandbox):
            return await self._create_sandbox(pod, a.attempt)
        if isinstance(a, StartContainer):
            try:
                await self._start_container(pod, obs, a)
                return True
            except _StartFailed:
                return False
        if isinstance(a, KillContainer):
            c, init = _find_container(pod, a.name)
            ref = pod_ref(pod, a.name, init)
            if a.reason == "Unhealthy":
                self.ctx.events.normal(ref, "Killing", f"Container {a.name} {a.message}, will be restarted")
            else:
                self.ctx.events.normal(ref, "Killing", f"Stopping container {a.name}")
            self._killed.add(a.id)
            cur = next((x for x in obs.containers if x.id == a.id), None)
            await self._kill(pod, c, cur, self._grace(pod, c))
            return True
        if isinstance(a, RemoveContainer):
            with contextlib.suppress(CriNotFoundError):
                await cri.remove_container(a.id)
            self._forget({a.id})
            return True
        if isinstance(a, StopSandbox):
            with contextlib.suppress(CriNotFoundError):
                await cri.stop_pod_sandbox(a.id)
            self.ctx.observer.forget({a.id})
            return True
        if isinstance(a, RemoveSandbox):
            with contextlib.suppress(CriNotFoundError):
                await cri.stop_pod_sandbox(a.id)
                await cri.remove_pod_sandbox(a.id)
            self.ctx.observer.forget({a.id})
            return True
        if isinstance(a, KillPod):
            await self._terminate(pod, obs)
            return False
        return False

    def _forget(self, ids: set[str]) -> None:
        for cid in ids:
            t = self._probers.pop(cid, None)
            if t is not None:
                t.cancel()
            self._started.discard(cid)
            self._ready.discard(cid)
            self._unhealthy.pop(cid, None)
            self._killed.discard(cid)
            self._announced.discard(cid)
            self._names.pop(cid, None)
        self.ctx.observer.forget(ids)

    async def _create_sandbox(self, pod: Obj, attempt: int) -> bool:
        cfg = sandbox_config(pod, attempt, self.ctx.sandbox)
        await asyncio.to_thread(os.makedirs, log_directory(self.ctx.sandbox.pods_dir, pod), 0o755, True)
        try:
            await self.ctx.cri.run_pod_sandbox(cfg)
        except CriError as e:
            self.ctx.events.warning(pod_ref(pod), "FailedCreatePodSandBox",
                                    f"Failed to create pod sandbox: {e.details or e}")
            # A failed RunPodSandbox can leave a NOTREADY sandbox behind (runtime notes, pitfall 2).
            for sb in await self.ctx.cri.list_pod_sandbox(pb.PodSandboxFilter(
                    label_selector={"io.kubernetes.pod.uid": self.uid})):
                if sb.state != pb.SANDBOX_READY and sb.metadata.attempt == attempt:
                    with contextlib.suppress(CriError):
                        await self.ctx.cri.remove_pod_sandbox(sb.id)
            self._schedule(self.ctx.now() + RETRY)
            return False
        return True

    async def _with_etc_hosts(self, pod: Obj, c: Obj, mounts: list[MountSpec], pod_ip: str) -> list[MountSpec]:
        """Kubelet's managed /etc/hosts, unless the container mounts its own or the pod has no IP yet."""
        if not pod_ip or mounts_etc_hosts(c) or any(mt.container_path == ETC_HOSTS for mt in mounts):
            return mounts
        node_hosts = ""
        if (pod.get("spec") or {}).get("hostNetwork"):
            node_hosts = await asyncio.to_thread(_read_text, ETC_HOSTS)
        content = hosts_content(pod, [pod_ip], self.ctx.sandbox.cluster_domain, node_hosts)
        try:
            path = await asyncio.to_thread(ensure_hosts_file, self.ctx.volumes.pod_dir(self.uid), content)
        except OSError as e:
            raise VolumeError(f"hosts file: {e}") from None
        return [*mounts, MountSpec(ETC_HOSTS, path)]

    def _set_waiting(self, name: str, reason: str, message: str) -> None:
        self._waiting[name] = (reason, message)

    async def _start_container(self, pod: Obj, obs: Observed, a: StartContainer) -> None:
        c, init = _find_container(pod, a.name)
        sb = obs.sandbox
        if c is None or sb is None:
            raise _StartFailed()
        ref = _container_ref(pod, a.name, init, a.kind)
        target_id = ""
        target = str(c.get("targetContainerName") or "") if a.kind == "ephemeral" else ""
        if target:
            # Kubelet's getTargetID: the newest container of that name (its PID namespace is joined).
            tgt = obs.current(target) or obs.latest(target)
            if tgt is None:
                msg = f"unable to find target container {target}"
                self._set_waiting(a.name, "CreateContainerConfigError", msg)
                self.ctx.events.warning(ref, "Failed", f"Error: {msg}")
                self._schedule(self.ctx.now() + RETRY)
                raise _StartFailed()
            target_id = tgt.id
        image_ref, image = await self._ensure_image(pod, c, ref)
        pod_ip = self._pod_ip(pod, obs)
        try:
            cm_names, secret_names = referenced_objects(c)
            ns = pod["metadata"]["namespace"]
            cms = {n: await self.ctx.client.get("configmaps", ns, n) for n in cm_names}
            secs = {n: await self.ctx.client.get("secrets", ns, n) for n in secret_names}
            env = resolve_env(pod, c, EnvSources(cms, secs, pod_ip, self.ctx.node_ip,
                                                 self.ctx.node_allocatable, await self._service_env(pod)))
            violation = non_root_violation(pod, c, image.uid.value if image is not None and image.HasField("uid") else None,
                                           image.username if image is not None else "")
            if violation:
                raise EnvError(violation)
            mounts = await self.ctx.volumes.mounts(c, self._volume_paths, dict(env))
            # Kubelet's terminationMessagePath: a fresh host file per container instance,
            # read back by the observer once the container has exited.
            msg_path = str(c.get("terminationMessagePath") or DEFAULT_MESSAGE_PATH)
            if not any(mt.container_path == msg_path for mt in mounts):
                try:
                    msg_file = await asyncio.to_thread(new_message_file,
                                                       self.ctx.volumes.pod_dir(self.uid), a.name)
                except OSError as e:
                    raise VolumeError(f"termination message file: {e}") from None
                mounts = [*mounts, MountSpec(msg_path, msg_file)]
            mounts = await self._with_etc_hosts(pod, c, mounts, pod_ip)
        except (EnvError, VolumeError) as e:
            self._set_waiting(a.name, "CreateContainerConfigError", str(e))
            self.ctx.events.warning(ref, "Failed", f"Error: {e}")
            self._schedule(self.ctx.now() + RETRY)
            raise _StartFailed() from None
        cfg = container_config(pod, c, kind=a.kind, attempt=a.attempt, env=env, mounts=mounts, target_id=target_id)
        sb_cfg = sandbox_config(pod, sb.attempt, self.ctx.sandbox)
        prev = obs.latest(a.name)
        try:
            cid = await self.ctx.cri.create_container(sb.id, cfg, sb_cfg)
        except CriError as e:
            self._set_waiting(a.name, "CreateContainerError", e.details or str(e))
            self.ctx.events.warning(ref, "Failed", f"Error: {e.details or e}")
            self._schedule(self.ctx.now() + RETRY)
            raise _StartFailed() from None
        self.ctx.events.normal(ref, "Created", f"Created container {a.name}")
        if prev is not None and a.kind != "ephemeral":
            # Kubelet's crash-loop back-off: every restart lengthens the wait before the next.
            self.ctx.crash_backoff.next(self._crash_key(c), self.ctx.now())
        try:
            await self.ctx.cri.start_container(cid)
        except CriError as e:
            self._set_waiting(a.name, "RunContainerError", e.details or str(e))
            self.ctx.events.warning(ref, "Failed", f"Error: {e.details or e}")
            self._schedule(self.ctx.now() + RETRY)
            raise _StartFailed() from None
        self.ctx.events.normal(ref, "Started", f"Started container {a.name}")
        self._announced.add(cid)
        del image_ref
        hook = (c.get("lifecycle") or {}).get("postStart")
        if hook:
            res = await run_handler(hook, self._target(pod, obs, cid, c), self.ctx.cri,
                                    float(self._grace(pod, c) or 30))
            if not res.ok:
                self.ctx.events.warning(ref, "FailedPostStartHook", res.message)
                self.ctx.events.normal(ref, "Killing", f"FailedPostStartHook: {res.message}")
                self._killed.add(cid)
                with contextlib.suppress(CriError):
                    await self.ctx.cri.stop_container(cid, 0)

    async def _ensure_image(self, pod: Obj, c: Obj, ref: Obj) -> tuple[str, pb.Image | None]:
        image = str(c.get("image") or "")
        name = str(c["name"])
        policy = c.get("imagePullPolicy") or (
            "Always" if image.rsplit("/", 1)[-1].find(":") < 0 or image.endswith(":latest") else "IfNotPresent")
        present = await self.ctx.cri.image_status(image)
        if policy == "Never" or (policy == "IfNotPresent" and present is not None):
            if present is None:
                msg = f'Container image "{image}" is not present with pull policy of Never'
                self._set_waiting(name, "ErrImageNeverPull", msg)
                self.ctx.events.warning(ref, "ErrImageNeverPull", msg)
                self._schedule(self.ctx.now() + RETRY * 5)
                raise _StartFailed()
            self.ctx.events.normal(ref, "Pulled", f'Container image "{image}" already present on machine')
            return present.id, present
        key = f"{self.uid}/image/{image}"
        bo = self.ctx.image_backoff
        last = self._sticky_waiting.get(name)
        if last is not None and bo.delay(key) > 0:
            since = self._image_failed.get(key, 0.0)
            if bo.in_backoff(key, since, self.ctx.now()):
                msg = f'Back-off pulling image "{image}"'
                self._set_waiting(name, "ImagePullBackOff", msg)
                self.ctx.events.normal(ref, "BackOff", msg)
                self._schedule(since + bo.delay(key))
                raise _StartFailed()
        self.ctx.events.normal(ref, "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            image_ref = await self.ctx.cri.pull_image(image, await self._auth(pod, image),
                                                      timeout=self.ctx.pull_timeout)
        except CriError as e:
            now = self.ctx.now()
            bo.next(key, now)
            self._image_failed[key] = now
            msg = f'Failed to pull image "{image}": {e.details or e}'
            self._set_waiting(name, "ErrImagePull", msg)
            self._sticky_waiting[name] = ("ErrImagePull", msg)
            self.ctx.events.warning(ref, "Failed", msg)
            self.ctx.events.warning(ref, "Failed", "Error: ErrImagePull")
            self._schedule(now + bo.delay(key))
            raise _StartFailed() from None
        bo.reset(key)
        self._sticky_waiting.pop(name, None)
        took = time.monotonic() - started
        self.ctx.events.normal(ref, "Pulled", f'Successfully pulled image "{image}" in {took:.3f}s')
        return image_ref, await self.ctx.cri.image_status(image)

    async def _auth(self, pod: Obj, image: str) -> pb.AuthConfig | None:
        host = image_registry_host(image)
        ns = pod["metadata"]["namespace"]
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            try:
                secret = await self.ctx.client.get("secrets", ns, str(ref.get("name", "")))
            except ClientError:
                continue
            if secret is not None:
                auth = _docker_auth(secret, host)
                if auth is not None:
                    return auth
        return self.ctx.registries.auth_for_image(image)

    # ---- probes ------------------------------------------------------------------------------

    def _target(self, pod: Obj, obs: Observed, cid: str, c: Mapping[str, Any]) -> ProbeTarget:
        ports = {str(p["name"]): int(p["containerPort"]) for p in c.get("ports") or [] if p.get("name")}
        return ProbeTarget(cid, self._pod_ip(pod, obs), bool((pod.get("spec") or {}).get("hostNetwork")), ports)

    def _reconcile_probers(self, pod: Obj, obs: Observed) -> None:
        running = {x.id: x for x in obs.containers if x.state == RUNNING}
        for cid in [k for k in self._probers if k not in running]:
            self._forget({cid})
        for cid, x in running.items():
            c, init = _find_container(pod, x.name)
            self._names[cid] = (x.name, init)
            if c is None or cid in self._probers or cid in self._killed:
                continue
            has_probe = any(c.get(k) for k in ("startupProbe", "livenessProbe", "readinessProbe"))
            if not has_probe:
                self._started.add(cid)
                self._ready.add(cid)
                continue
            if not c.get("startupProbe"):
                self._started.add(cid)
            if not c.get("readinessProbe"):
                self._ready.add(cid)
            prober = ContainerProber(c, self._target(pod, obs, cid, c), self.ctx.cri, self._on_probe,
                                     started_at=x.started_at or self.ctx.now(), now=self.ctx.now)
            self._probers[cid] = asyncio.create_task(prober.run(), name=f"prober-{cid[:12]}")

    def _on_probe(self, kind: str, cid: str, ok: bool, message: str) -> None:
        pod = self.pod
        changed = False
        if kind == "startup":
            if ok and cid not in self._started:
                self._started.add(cid)
                changed = True
            elif not ok:
                self._unhealthy[cid] = f"failed startup probe: {message}"
                changed = True
        elif kind == "liveness":
            if not ok and cid not in self._unhealthy:
                self._unhealthy[cid] = "failed liveness probe"
                changed = True
        elif kind == "readiness":
            if ok and cid not in self._ready:
                self._ready.add(cid)
                changed = True
            elif not ok and cid in self._ready:
                self._ready.discard(cid)
                changed = True
        if not ok and pod is not None:
            name, init = self._names.get(cid, ("", False))
            self.ctx.events.warning(pod_ref(pod, name, init), "Unhealthy",
                                    f"{kind.capitalize()} probe failed: {message}")
        if changed:
            self.wake()

    # ---- stopping ----------------------------------------------------------------------------

    def _grace(self, pod: Obj | None, c: Mapping[str, Any] | None) -> int:
        spec = (pod or {}).get("spec") or {}
        meta = (pod or {}).get("metadata") or {}
        if meta.get("deletionGracePeriodSeconds") is not None:
            return int(meta["deletionGracePeriodSeconds"])
        g = spec.get("terminationGracePeriodSeconds")
        return 30 if g is None else int(g)

    async def _kill(self, pod: Obj | None, c: Mapping[str, Any] | None, x: ContainerObs | None,
                    grace: int) -> None:
        """preStop (bounded by the grace period), then StopContainer with what is left."""
        if x is None or x.state != RUNNING:
            return
        started = time.monotonic()
        hook = ((c or {}).get("lifecycle") or {}).get("preStop")
        if hook and pod is not None and grace > 0:
            obs = Observed(self._sandboxes, ())
            target = self._target(pod, obs, x.id, c or {})
            try:
                res = await asyncio.wait_for(run_handler(hook, target, self.ctx.cri, float(grace)), grace)
                if not res.ok:
                    self.ctx.events.warning(pod_ref(pod, x.name), "FailedPreStopHook", res.message)
            except asyncio.TimeoutError:
                pass
        remaining = max(0, grace - int(time.monotonic() - started))
        if grace > 0:
            # Kubelet leaves at least 2 s after preStop for SIGTERM to be handled.
            remaining = max(remaining, 2) if hook else remaining
        with contextlib.suppress(CriNotFoundError):
            await self.ctx.cri.stop_container(x.id, remaining)

    async def _terminate(self, pod: Obj | None, obs: Observed) -> None:
        self._sandboxes = obs.sandboxes
        grace = self._grace(pod, None)
        running = [x for x in obs.containers if x.state == RUNNING]
        if pod is not None and running:
            regular: list[tuple[Obj | None, ContainerObs, bool]] = []
            sidecars: list[tuple[Obj | None, ContainerObs, bool]] = []
            for x in running:
                c, init = _find_container(pod, x.name)
                (sidecars if (init and c is not None and is_sidecar(c)) else regular).append((c, x, init))
            for group in (regular, sidecars):
                for c, x, init in group:
                    self.ctx.events.normal(pod_ref(pod, x.name, init), "Killing", f"Stopping container {x.name}")
                await asyncio.gather(*(self._kill(pod, c, x, grace) for c, x, _ in group),
                                     return_exceptions=True)
        elif running:
            await asyncio.gather(*(self.ctx.cri.stop_container(x.id, 0) for x in running),
                                 return_exceptions=True)
        for sb in obs.sandboxes:
            with contextlib.suppress(CriNotFoundError):
                await self.ctx.cri.stop_pod_sandbox(sb.id)
                await self.ctx.cri.remove_pod_sandbox(sb.id)
        for x in obs.containers:
            with contextlib.suppress(CriNotFoundError):
                await self.ctx.cri.remove_container(x.id)
        self._forget({x.id for x in obs.containers})
        self.ctx.observer.forget({sb.id for sb in obs.sandboxes})
        await self.ctx.volumes.teardown(self.uid)
        self.ctx.crash_backoff.forget_prefix(self.uid + "/")
        self.ctx.image_backoff.forget_prefix(self.uid + "/")
        if pod is not None:
            m = pod["metadata"]
            try:
                await self.ctx.client.delete("pods", m["namespace"], m["name"], grace_period_seconds=0,
                                             precondition_uid=self.uid)
            except ClientError as e:
                if e.code not in (404, 409):
                    raise
        if self.ctx.sandbox.pods_dir:
            logs = log_directory(self.ctx.sandbox.pods_dir, pod) if pod is not None else ""
            if logs:
                await asyncio.to_thread(_rmtree, logs)
        self.done = True

    # ---- status ------------------------------------------------------------------------------

    async def _report(self, pod: Obj, obs: Observed) -> None:
        waiting = dict(self._waiting)
        for name, w in self._sticky_waiting.items():
            waiting.setdefault(name, w)
        base = pod
        if self._last_status is not None and _rv(pod) <= self._last_rv:
            base = dict(pod)
            base["status"] = self._last_status
        new = compute_status(base, obs, StatusInput(self.ctx.node_ip, self.ctx.now(), waiting,
                                                    self._hints(pod, obs)))
        old = base.get("status") or {}
        if new == old:
            return
        patch: Obj = dict(new)
        for k in old:
            if k not in new:
                patch[k] = None
        m = pod["metadata"]
        try:
            updated = await self.ctx.client.patch("pods", m["namespace"], m["name"], {"status": patch},
                                                  subresource="status")
        except ClientError as e:
            if e.not_found:
                return
            raise
        if updated["metadata"].get("uid") != self.uid:
            return
        self._last_status = updated.get("status") or new
        self._last_rv = _rv(updated)
        if _rv(updated) >= _rv(self.pod):
            self.pod = updated


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _rmtree(path: str) -> None:
    import shutil
    shutil.rmtree(path, ignore_errors=True)
