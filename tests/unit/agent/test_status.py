"""compute_status(): phase, container states, conditions — kubelet's rules on small tables."""

from __future__ import annotations

from typing import Any

import pytest

from minik.agent.plan import ContainerObs, Hints, Observed, SandboxObs
from minik.agent.status import StatusInput, compute_status, rfc3339

NOW = 1_700_000_000.0
SB = SandboxObs("sb1", 0, True, "10.0.0.9")


def make_pod(policy: str = "Always", containers: tuple[str, ...] = ("main",), inits: tuple[str, ...] = (),
             status: dict[str, Any] | None = None, **c_extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "d", "uid": "u"},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": n, "image": "img", **c_extra} for n in containers],
                     "initContainers": [{"name": n, "image": "img"} for n in inits]},
            "status": status or {"phase": "Pending", "qosClass": "BestEffort",
                                 "conditions": [{"type": "PodScheduled", "status": "True"}]}}


def c(name: str, state: str, attempt: int = 0, exit_code: int = 0, reason: str = "") -> ContainerObs:
    return ContainerObs(id=f"{name}{attempt}", name=name, attempt=attempt, state=state, sandbox_id="sb1",
                        created_at=NOW - 10, started_at=NOW - 9, finished_at=NOW - 1 if state == "exited" else 0,
                        exit_code=exit_code, reason=reason, image_ref="sha256:abc")


def status(pod: dict[str, Any], obs: Observed, waiting: dict[str, tuple[str, str]] | None = None,
           hints: Hints = Hints()) -> dict[str, Any]:
    return compute_status(pod, obs, StatusInput("192.168.0.1", NOW, waiting or {}, hints))


def conds(st: dict[str, Any]) -> dict[str, str]:
    return {x["type"]: x["status"] for x in st["conditions"]}


@pytest.mark.parametrize("policy,obs,phase", [
    ("Always", Observed(), "Pending"),
    ("Always", Observed((SB,)), "Pending"),
    ("Always", Observed((SB,), (c("main", "running"),)), "Running"),
    ("Always", Observed((SB,), (c("main", "exited", exit_code=1),)), "Running"),   # restarting
    ("OnFailure", Observed((SB,), (c("main", "exited"),)), "Succeeded"),
    ("OnFailure", Observed((SB,), (c("main", "exited", exit_code=1),)), "Running"),
    ("Never", Observed((SB,), (c("main", "exited", exit_code=1),)), "Failed"),
    ("Never", Observed((SB,), (c("main", "exited"),)), "Succeeded"),
])
def test_phase(policy: str, obs: Observed, phase: str) -> None:
    assert status(make_pod(policy), obs)["phase"] == phase


def test_running_container_status_and_conditions() -> None:
    st = status(make_pod(), Observed((SB,), (c("main", "running"),)))
    cs = st["containerStatuses"][0]
    assert cs["state"] == {"running": {"startedAt": rfc3339(NOW - 9)}}
    assert cs["ready"] and cs["started"] and cs["restartCount"] == 0
    assert cs["containerID"] == "containerd://main0" and cs["imageID"] == "sha256:abc"
    assert st["podIP"] == "10.0.0.9" and st["podIPs"] == [{"ip": "10.0.0.9"}]
    assert st["hostIP"] == "192.168.0.1" and st["startTime"] == rfc3339(NOW)
    assert conds(st) == {"PodScheduled": "True", "PodReadyToStartContainers": "True", "Initialized": "True",
                         "ContainersReady": "True", "Ready": "True"}
    assert st["qosClass"] == "BestEffort"


def test_readiness_probe_gates_ready() -> None:
    pod = make_pod(readinessProbe={"exec": {"command": ["true"]}})
    obs = Observed((SB,), (c("main", "running"),))
    assert conds(status(pod, obs))["Ready"] == "False"
    assert conds(status(pod, obs, hints=Hints(ready=frozenset({"main0"}))))["Ready"] == "True"


def test_crash_loop_shows_waiting_and_last_state() -> None:
    obs = Observed((SB,), (c("main", "exited", attempt=3, exit_code=137, reason="OOMKilled"),
                           c("main", "exited", attempt=2, exit_code=1)))
    st = status(make_pod(), obs, {"main": ("CrashLoopBackOff", "back-off 40s")})
    cs = st["containerStatuses"][0]
    assert cs["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}
    assert cs["lastState"]["terminated"]["reason"] == "OOMKilled"
    assert cs["lastState"]["terminated"]["exitCode"] == 137
    assert cs["restartCount"] == 3


def test_terminated_reason_defaults_and_completed_pod() -> None:
    st = status(make_pod("Never"), Observed((SB,), (c("main", "exited", exit_code=2),)))
    assert st["containerStatuses"][0]["state"]["terminated"]["reason"] == "Error"
    assert conds(st)["Ready"] == "False"
    assert next(x for x in st["conditions"] if x["type"] == "Ready")["reason"] == "PodCompleted"


def test_init_containers_pending_then_initialized() -> None:
    pod = make_pod(inits=("i1",))
    st = status(pod, Observed((SB,), (c("i1", "running"),)))
    assert st["phase"] == "Pending"
    assert conds(st)["Initialized"] == "False"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    st = status(pod, Observed((SB,), (c("i1", "exited"), c("main", "running"))))
    assert st["phase"] == "Running" and conds(st)["Initialized"] == "True"


def test_image_pull_waiting_reason() -> None:
    st = status(make_pod(), Observed((SB,)), {"main": ("ImagePullBackOff", 'Back-off pulling image "img"')})
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ImagePullBackOff"
    assert st["phase"] == "Pending"


def test_unchanged_pod_computes_identical_status() -> None:
    pod = make_pod()
    obs = Observed((SB,), (c("main", "running"),))
    first = status(pod, obs)
    pod["status"] = first
    later = compute_status(pod, obs, StatusInput("192.168.0.1", NOW + 100, {}, Hints()))
    assert later == first


def test_terminal_phase_is_kept() -> None:
    pod = make_pod("Never", status={"phase": "Succeeded"})
    assert status(pod, Observed())["phase"] == "Succeeded"
