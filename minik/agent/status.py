"""Pod status from spec + runtime observation + worker knowledge. Pure.

Role: kubelet's generateAPIPodStatus/getPhase: container statuses (state, lastState, ready,
started, restartCount, image, imageID, containerID) for regular, init and ephemeral containers
(the last never ready and outside phase and conditions), phase, the conditions
PodReadyToStartContainers/Initialized/ContainersReady/Ready (PodScheduled and anything else kept),
pod/host IPs and startTime. Transition times are carried over from the previous status when a
condition's status did not change, so an unchanged pod computes an identical status and the worker
writes nothing.
Neighbours: `minik.agent.plan` (Observed, Hints, pod_done); `minik.agent.worker` patches the result.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from minik.agent.plan import (
    EXITED,
    RUNNING,
    ContainerObs,
    Hints,
    Observed,
    is_sidecar,
    pod_done,
)

__all__ = ["StatusInput", "compute_status", "rfc3339", "status_changed"]

Obj = dict[str, Any]

RUNTIME_PREFIX = "containerd://"


def rfc3339(ts: float) -> str:
    """Kubernetes' second-precision UTC timestamp."""
    return dt.datetime.fromtimestamp(int(ts), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class StatusInput:
    host_ip: str
    now: float
    # Why a container is not running (ErrImagePull, ImagePullBackOff, CrashLoopBackOff,
    # CreateContainerConfigError, …): container name → (reason, message).
    waiting: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    hints: Hints = Hints()


def _terminated(c: ContainerObs) -> Obj:
    reason = c.reason or ("Completed" if c.exit_code == 0 else "Error")
    t: Obj = {
        "exitCode": c.exit_code,
        "reason": reason,
        "startedAt": rfc3339(c.started_at) if c.started_at else None,
        "finishedAt": rfc3339(c.finished_at) if c.finished_at else None,
        "containerID": RUNTIME_PREFIX + c.id,
    }
    if c.message:
        t["message"] = c.message
    return t


def _container_status(spec_c: Mapping[str, Any], obs: Observed, inp: StatusInput,
                      default_wait: str, restarting: bool) -> Obj:
    name = spec_c["name"]
    hist = obs.history(name)
    latest = hist[0] if hist else None
    previous = hist[1] if len(hist) > 1 else None
    out: Obj = {"name": name, "image": spec_c.get("image", ""), "imageID": "",
                "restartCount": 0, "ready": False, "started": False,
                "state": {}, "lastState": {}}
    waiting = inp.waiting.get(name)
    if latest is None:
        reason, message = waiting or (default_wait, "")
        out["state"] = {"waiting": _waiting(reason, message)}
        return out
    out["restartCount"] = latest.attempt
    out["imageID"] = latest.image_ref
    out["containerID"] = RUNTIME_PREFIX + latest.id
    if latest.state == RUNNING:
        out["state"] = {"running": {"startedAt": rfc3339(latest.started_at or latest.created_at)}}
        if previous is not None and previous.state == EXITED:
            out["lastState"] = {"terminated": _terminated(previous)}
        probes_ok = not spec_c.get("startupProbe") or latest.id in inp.hints.started
        out["started"] = probes_ok
        out["ready"] = probes_ok and (not spec_c.get("readinessProbe") or latest.id in inp.hints.ready)
        return out
    if latest.state == EXITED and (waiting is not None or restarting):
        reason, message = waiting or ("CrashLoopBackOff" if restarting else "ContainerCreating", "")
        out["state"] = {"waiting": _waiting(reason, message)}
        out["lastState"] = {"terminated": _terminated(latest)}
        return out
    if latest.state == EXITED:
        out["state"] = {"terminated": _terminated(latest)}
        if previous is not None and previous.state == EXITED:
            out["lastState"] = {"terminated": _terminated(previous)}
        return out
    # created/unknown: about to start.
    reason, message = waiting or ("ContainerCreating", "")
    out["state"] = {"waiting": _waiting(reason, message)}
    if previous is not None and previous.state == EXITED:
        out["lastState"] = {"terminated": _terminated(previous)}
    return out


def _ephemeral_status(spec_c: Mapping[str, Any], obs: Observed, inp: StatusInput, default_wait: str) -> Obj:
    """Like a container status, but an ephemeral container is never ready, never restarted and has
    no probes (kubelet reports no `started` for it); it counts for neither phase nor readiness."""
    out = _container_status(spec_c, obs, inp, default_wait, restarting=False)
    out.pop("started", None)
    out["ready"] = False
    out["restartCount"] = 0
    return out


def _waiting(reason: str, message: str) -> Obj:
    w: Obj = {"reason": reason}
    if message:
        w["message"] = message
    return w


def _condition(old: Sequence[Obj], ctype: str, status: bool, now: float, reason: str = "",
               message: str = "") -> Obj:
    value = "True" if status else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    cond: Obj = {"type": ctype, "status": value, "lastProbeTime": None,
                 "lastTransitionTime": rfc3339(now)}
    if prev is not None and prev.get("status") == value and prev.get("lastTransitionTime"):
        cond["lastTransitionTime"] = prev["lastTransitionTime"]
    if not status and reason:
        cond["reason"] = reason
        if message:
            cond["message"] = message
    return cond


def _phase(spec: Obj, inits: list[Obj], regulars: list[Obj], done: bool) -> str:
    policy = spec.get("restartPolicy") or "Always"
    init_specs = {c["name"]: c for c in spec.get("initContainers") or []}
    pending_init = failed_init = 0
    for st in inits:
        state = st["state"]
        if is_sidecar(init_specs.get(st["name"], {})):
            if "running" not in state and not regulars_started(regulars):
                pending_init += 1
            continue
        term = state.get("terminated")
        last = st["lastState"].get("terminated")
        if term is not None:
            if term["exitCode"] == 0:
                continue
            failed_init += 1
        elif "waiting" in state and last is not None and last["exitCode"] != 0:
            failed_init += 1
        elif regulars_started(regulars):
            continue
        else:
            pending_init += 1
    if failed_init and policy == "Never":
        return "Failed"
    if pending_init or failed_init:
        return "Pending"
    running = waiting = stopped = succeeded = 0
    for st in regulars:
        state = st["state"]
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            succeeded += state["terminated"]["exitCode"] == 0
        elif st["lastState"].get("terminated") is not None:
            stopped += 1
            succeeded += st["lastState"]["terminated"]["exitCode"] == 0
        else:
            waiting += 1
    if waiting:
        return "Pending"
    if running:
        return "Running"
    if not stopped:
        return "Pending"
    if policy == "Always":
        return "Running"
    if policy == "OnFailure":
        return "Succeeded" if succeeded == stopped else "Running"
    if not done:
        return "Running"
    return "Succeeded" if succeeded == stopped else "Failed"


def regulars_started(regulars: list[Obj]) -> bool:
    return any(st.get("containerID") for st in regulars)


def compute_status(pod: Obj, obs: Observed, inp: StatusInput) -> Obj:
    """The pod's new `.status` (a fresh dict; the pod is not modified)."""
    spec = pod.get("spec") or {}
    old: Obj = pod.get("status") or {}
    policy = spec.get("restartPolicy") or "Always"
    done = pod_done(pod, obs)
    init_specs = list(spec.get("initContainers") or [])
    reg_specs = list(spec.get("containers") or [])

    def restarting(c: Mapping[str, Any], init: bool) -> bool:
        latest = obs.latest(c["name"])
        if latest is None or latest.state != EXITED or done:
            return False
        if init and not is_sidecar(c):
            return latest.exit_code != 0 and policy != "Never"
        if is_sidecar(c):
            return True
        return policy == "Always" or (policy == "OnFailure" and latest.exit_code != 0)

    regulars = [_container_status(c, obs, inp, "PodInitializing" if init_specs else "ContainerCreating",
                                  restarting(c, False)) for c in reg_specs]
    inits = [_container_status(c, obs, inp, "PodInitializing", restarting(c, True)) for c in init_specs]
    status: Obj = copy.deepcopy(old)
    ephemerals = [_ephemeral_status(c, obs, inp, "PodInitializing" if init_specs else "ContainerCreating")
                  for c in spec.get("ephemeralContainers") or []]
    if ephemerals:
        status["ephemeralContainerStatuses"] = ephemerals
    else:
        status.pop("ephemeralContainerStatuses", None)
    phase = _phase(spec, inits, regulars, done)
    if old.get("phase") in ("Succeeded", "Failed"):
        phase = old["phase"]  # terminal phases never go back
    status["phase"] = phase
    status["containerStatuses"] = regulars
    if inits:
        status["initContainerStatuses"] = inits
    else:
        status.pop("initContainerStatuses", None)

    sandbox = obs.sandbox
    host_network = bool(spec.get("hostNetwork"))
    pod_ip = inp.host_ip if host_network and sandbox is not None else (sandbox.ip if sandbox else "")
    if pod_ip:
        status["podIP"] = pod_ip
        status["podIPs"] = [{"ip": pod_ip}]
    if inp.host_ip:
        status["hostIP"] = inp.host_ip
        status["hostIPs"] = [{"ip": inp.host_ip}]
    if not status.get("startTime"):
        status["startTime"] = rfc3339(inp.now)

    old_conds: list[Obj] = list(old.get("conditions") or [])
    now = inp.now
    ready_to_start = sandbox is not None and sandbox.ready
    incomplete_init = [st["name"] for st, c in zip(inits, init_specs) if not _init_ok(st, c)]
    initialized = not incomplete_init or regulars_started(regulars)
    unready = [st["name"] for st in regulars if not st["ready"]]
    terminal = phase in ("Succeeded", "Failed")
    new_conds = [
        _condition(old_conds, "PodReadyToStartContainers", ready_to_start or terminal and bool(sandbox), now),
        _condition(old_conds, "Initialized", initialized, now, "ContainersNotInitialized",
                   f"containers with incomplete status: [{' '.join(incomplete_init)}]"),
    ]
    if terminal:
        new_conds.append(_condition(old_conds, "ContainersReady", False, now, "PodCompleted"))
        new_conds.append(_condition(old_conds, "Ready", False, now, "PodCompleted"))
    else:
        new_conds.append(_condition(old_conds, "ContainersReady", not unready, now, "ContainersNotReady",
                                    f"containers with unready status: [{' '.join(unready)}]"))
        gates = [g.get("conditionType") for g in spec.get("readinessGates") or []]
        missing = [g for g in gates if not any(
            c.get("type") == g and c.get("status") == "True" for c in old_conds)]
        if unready:
            new_conds.append(_condition(old_conds, "Ready", False, now, "ContainersNotReady",
                                        f"containers with unready status: [{' '.join(unready)}]"))
        elif missing:
            new_conds.append(_condition(old_conds, "Ready", False, now, "ReadinessGatesNotReady",
                                        f"corresponding condition of pod readiness gate \"{missing[0]}\" does not exist."))
        else:
            new_conds.append(_condition(old_conds, "Ready", True, now))
    mine = {c["type"] for c in new_conds}
    kept = [c for c in old_conds if c.get("type") not in mine]
    status["conditions"] = kept + new_conds
    return status


def _init_ok(st: Obj, c: Mapping[str, Any]) -> bool:
    if is_sidecar(c):
        return bool(st["started"])
    term = st["state"].get("terminated")
    return term is not None and term["exitCode"] == 0


def status_changed(old: Obj, new: Obj) -> bool:
    return old != new
