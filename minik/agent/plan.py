"""What a pod needs next, from its spec and what the runtime shows: `plan(pod, observed, now, hints)`.

Role: the pure heart of the pod worker (kubelet's computePodActions): sandbox (re)creation, init
containers one at a time in order (sidecar init containers, restartPolicy Always, are started and
kept running), regular containers, restarts under the pod's restartPolicy with crash-loop
back-off, liveness kills, spec-change restarts, pod completion, ephemeral containers (`kubectl
debug`: started once, never restarted or killed for a spec change), and garbage (only the newest
and the previous container of each name are kept, so `kubectl logs --previous` works).
No I/O and no clock: everything arrives as arguments; the result is a list of small actions the
worker carries out in order and then plans again.
Neighbours: `minik.agent.observe` builds `Observed` from CRI; `minik.agent.worker` executes the
actions; `minik.agent.status` reads the same `Observed` to report.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

__all__ = [
    "Action",
    "ContainerObs",
    "CreateSandbox",
    "Hints",
    "KillContainer",
    "KillPod",
    "Observed",
    "RemoveContainer",
    "RemoveSandbox",
    "SandboxObs",
    "StartContainer",
    "StopSandbox",
    "Wait",
    "container_hash",
    "is_sidecar",
    "plan",
    "pod_done",
]

Obj = dict[str, Any]

RUNNING, EXITED, CREATED, UNKNOWN = "running", "exited", "created", "unknown"


@dataclass(frozen=True, slots=True)
class ContainerObs:
    """One runtime container of the pod, as CRI reports it (times in seconds since the epoch)."""

    id: str
    name: str
    attempt: int
    state: str                    # running | exited | created | unknown
    sandbox_id: str = ""
    created_at: float = 0.0
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    reason: str = ""              # CRI: Completed | Error | OOMKilled | ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    hash: str = ""


@dataclass(frozen=True, slots=True)
class SandboxObs:
    id: str
    attempt: int
    ready: bool
    ip: str = ""
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Observed:
    sandboxes: tuple[SandboxObs, ...] = ()      # newest first
    containers: tuple[ContainerObs, ...] = ()

    @property
    def sandbox(self) -> SandboxObs | None:
        return self.sandboxes[0] if self.sandboxes else None

    def history(self, name: str) -> list[ContainerObs]:
        """Containers named `name`, newest attempt first."""
        return sorted((c for c in self.containers if c.name == name),
                      key=lambda c: (c.attempt, c.created_at), reverse=True)

    def latest(self, name: str) -> ContainerObs | None:
        h = self.history(name)
        return h[0] if h else None

    def current(self, name: str) -> ContainerObs | None:
        """The newest container named `name` in the newest sandbox."""
        sb = self.sandbox
        if sb is None:
            return None
        for c in self.history(name):
            if c.sandbox_id == sb.id:
                return c
        return None


@dataclass(frozen=True, slots=True)
class Hints:
    """Worker knowledge the runtime does not have: probe results and back-off delays."""

    unhealthy: Mapping[str, str] = field(default_factory=dict)   # container id → why (liveness/startup)
    started: frozenset[str] = frozenset()                       # ids whose startup probe passed
    ready: frozenset[str] = frozenset()                         # ids whose readiness probe passes
    delays: Mapping[str, float] = field(default_factory=dict)   # container name → crash back-off


@dataclass(frozen=True, slots=True)
class KillPod:
    """Stop every container (preStop, grace) and the sandbox; the pod is being deleted."""

    reason: str


@dataclass(frozen=True, slots=True)
class CreateSandbox:
    attempt: int


@dataclass(frozen=True, slots=True)
class StartContainer:
    name: str
    kind: str                     # init | sidecar | regular | ephemeral
    attempt: int


@dataclass(frozen=True, slots=True)
class KillContainer:
    id: str
    name: str
    reason: str                   # Unhealthy | SpecChanged | PodCompleted
    message: str = ""


@dataclass(frozen=True, slots=True)
class RemoveContainer:
    id: str


@dataclass(frozen=True, slots=True)
class StopSandbox:
    id: str


@dataclass(frozen=True, slots=True)
class RemoveSandbox:
    id: str


@dataclass(frozen=True, slots=True)
class Wait:
    """A container may not restart before `retry_at` (CrashLoopBackOff)."""

    name: str
    reason: str
    message: str
    retry_at: float


Action = Union[KillPod, CreateSandbox, StartContainer, KillContainer, RemoveContainer,
               StopSandbox, RemoveSandbox, Wait]


def container_hash(container: Mapping[str, Any]) -> str:
    """Stable hash of a container's spec; a change (e.g. a new image) restarts the container."""
    data = json.dumps(container, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode()).hexdigest()[:16]


def is_sidecar(container: Mapping[str, Any]) -> bool:
    return container.get("restartPolicy") == "Always"


def _restarts(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def _has_startup_probe(c: Mapping[str, Any]) -> bool:
    return bool(c.get("startupProbe"))


def pod_done(pod: Obj, obs: Observed) -> bool:
    """No container of the pod will run again: a failed init container under Never, or all
    regular containers exited and the policy restarts none of them."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    if policy == "Always":
        return False
    if policy == "Never":
        for c in spec.get("initContainers") or []:
            st = obs.current(c["name"])
            if not is_sidecar(c) and st is not None and st.state == EXITED and st.exit_code != 0:
                return True
    regular = spec.get("containers") or []
    if not regular:
        return False
    for c in regular:
        st = obs.latest(c["name"])
        if st is None or st.state != EXITED or _restarts(policy, st.exit_code):
            return False
    return True


def _next_attempt(obs: Observed, name: str) -> int:
    latest = obs.latest(name)
    return 0 if latest is None else latest.attempt + 1


def _restart_or_wait(out: list[Action], c: Mapping[str, Any], kind: str, st: ContainerObs,
                     obs: Observed, now: float, hints: Hints, pod_ref: str) -> None:
    delay = hints.delays.get(c["name"], 0.0)
    retry_at = st.finished_at + delay
    if delay > 0 and now < retry_at:
        out.append(Wait(c["name"], "CrashLoopBackOff",
                        f"back-off {delay:g}s restarting failed container={c['name']} pod={pod_ref}",
                        retry_at))
    else:
        out.append(StartContainer(c["name"], kind, _next_attempt(obs, c["name"])))


def plan(pod: Obj, obs: Observed, now: float, hints: Hints = Hints()) -> list[Action]:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    if meta.get("deletionTimestamp"):
        return [KillPod("deleted")]
    policy = spec.get("restartPolicy") or "Always"
    inits: Sequence[Mapping[str, Any]] = spec.get("initContainers") or []
    regulars: Sequence[Mapping[str, Any]] = spec.get("containers") or []
    pod_ref = f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"
    out: list[Action] = []
    sandbox = obs.sandbox
    done = pod_done(pod, obs)

    _collect_garbage(out, pod, obs)
    if done:
        # Kubelet stops sidecars and the sandbox of a finished pod but keeps the exited
        # containers so their logs stay readable.
        for c in inits:
            st = obs.current(c["name"])
            if is_sidecar(c) and st is not None and st.state == RUNNING:
                out.append(KillContainer(st.id, c["name"], "PodCompleted"))
        if sandbox is not None and sandbox.ready:
            out.append(StopSandbox(sandbox.id))
        return out

    if sandbox is None or not sandbox.ready:
        if sandbox is not None and policy == "Never" and any(
                c.sandbox_id == sandbox.id for c in obs.containers):
            # Containers already ran in a sandbox that died: Never means the pod is over.
            return out
        for x in obs.containers:
            if x.state == RUNNING:
                out.append(KillContainer(x.id, x.name, "SandboxChanged"))
        if sandbox is not None:
            out.append(StopSandbox(sandbox.id))
        out.append(CreateSandbox(0 if sandbox is None else sandbox.attempt + 1))
        return out

    # Kubelet's computePodActions: ephemeral containers may start before initialization is
    # complete, each exactly once (any container of that name, in any sandbox, counts as its one
    # run — never restarted, whatever the restartPolicy). One that was created but never started
    # (the agent stopped in between) has not run yet: it is replaced.
    for e in spec.get("ephemeralContainers") or []:
        st0 = obs.latest(e["name"])
        if st0 is None:
            out.append(StartContainer(e["name"], "ephemeral", 0))
        elif st0.state == CREATED and st0.sandbox_id == sandbox.id:
            out.append(RemoveContainer(st0.id))
            out.append(StartContainer(e["name"], "ephemeral", st0.attempt))

    initialized = any(obs.current(c["name"]) is not None for c in regulars)
    for c in inits:
        st = obs.current(c["name"])
        if is_sidecar(c):
            if st is None:
                out.append(StartContainer(c["name"], "sidecar", _next_attempt(obs, c["name"])))
                return out
            if st.state == RUNNING:
                if st.id in hints.unhealthy:
                    out.append(KillContainer(st.id, c["name"], "Unhealthy", hints.unhealthy[st.id]))
                    if not initialized:
                        return out
                    continue
                if _has_startup_probe(c) and st.id not in hints.started and not initialized:
                    return out
                continue
            if st.state == CREATED:
                out.append(RemoveContainer(st.id))
                out.append(StartContainer(c["name"], "sidecar", st.attempt))
                return out
            _restart_or_wait(out, c, "sidecar", st, obs, now, hints, pod_ref)
            if not initialized:
                return out
            continue
        if initialized:
            continue
        if st is None:
            out.append(StartContainer(c["name"], "init", _next_attempt(obs, c["name"])))
            return out
        if st.state == RUNNING:
            return out
        if st.state == CREATED:
            out.append(RemoveContainer(st.id))
            out.append(StartContainer(c["name"], "init", st.attempt))
            return out
        if st.exit_code == 0:
            continue
        if policy == "Never":
            return out
        _restart_or_wait(out, c, "init", st, obs, now, hints, pod_ref)
        return out

    for c in regulars:
        st2 = obs.current(c["name"])
        if st2 is None:
            prev = obs.latest(c["name"])
            if prev is not None and prev.state == EXITED and not _restarts(policy, prev.exit_code):
                continue
            out.append(StartContainer(c["name"], "regular", _next_attempt(obs, c["name"])))
            continue
        if st2.state == RUNNING:
            if st2.hash and st2.hash != container_hash(c):
                out.append(KillContainer(st2.id, c["name"], "SpecChanged",
                                         f"Container {c['name']} definition changed, will be restarted"))
            elif st2.id in hints.unhealthy:
                out.append(KillContainer(st2.id, c["name"], "Unhealthy", hints.unhealthy[st2.id]))
            continue
        if st2.state == CREATED:
            out.append(RemoveContainer(st2.id))
            out.append(StartContainer(c["name"], "regular", st2.attempt))
            continue
        if not _restarts(policy, st2.exit_code):
            continue
        _restart_or_wait(out, c, "regular", st2, obs, now, hints, pod_ref)
    return out


def _collect_garbage(out: list[Action], pod: Obj, obs: Observed) -> None:
    """Keep the newest and the previous container of each name; drop the rest, and old
    sandboxes that hold none of the kept ones."""
    spec = pod.get("spec") or {}
    names = {c["name"] for key in ("containers", "initContainers", "ephemeralContainers")
             for c in (spec.get(key) or [])}
    keep: set[str] = set()
    for name in {c.name for c in obs.containers}:
        hist = obs.history(name)
        kept = hist[:2] if name in names else []
        keep.update(c.id for c in kept)
        for c in hist:
            if c.id not in keep and c.state != RUNNING:
                out.append(RemoveContainer(c.id))
            elif c.id not in keep and c.state == RUNNING:
                # A container no longer in the spec (cannot happen for pods) or a stray twin.
                out.append(KillContainer(c.id, c.name, "Garbage"))
    current = obs.sandbox
    for sb in obs.sandboxes[1:]:
        if any(c.sandbox_id == sb.id and c.id in keep for c in obs.containers):
            if sb.ready:
                out.append(StopSandbox(sb.id))
            continue
        if current is not None:
            out.append(RemoveSandbox(sb.id))
