"""plan(): what a pod needs next, table-driven over small pods and runtime observations."""

from __future__ import annotations

from typing import Any

import pytest

from minik.agent.plan import (
    ContainerObs,
    CreateSandbox,
    Hints,
    KillContainer,
    KillPod,
    Observed,
    RemoveContainer,
    RemoveSandbox,
    SandboxObs,
    StartContainer,
    StopSandbox,
    Wait,
    container_hash,
    plan,
    pod_done,
)

NOW = 1000.0


def make_pod(containers: list[str] | None = None, inits: list[dict[str, Any]] | None = None,
             policy: str = "Always", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1", **meta},
        "spec": {"restartPolicy": policy,
                 "containers": [{"name": n, "image": "busybox"} for n in (containers or ["main"])],
                 "initContainers": inits or []},
    }


SB = SandboxObs("sb1", 0, True, "10.0.0.2")


def c(name: str, state: str, attempt: int = 0, exit_code: int = 0, finished: float = 0.0,
      sandbox: str = "sb1", cid: str = "", spec_hash: str = "") -> ContainerObs:
    return ContainerObs(id=cid or f"{name}-{attempt}", name=name, attempt=attempt, state=state,
                        sandbox_id=sandbox, created_at=attempt, exit_code=exit_code,
                        finished_at=finished, hash=spec_hash)


CASES: list[tuple[str, dict[str, Any], Observed, Hints, list[Any]]] = [
    ("no sandbox → create one", make_pod(), Observed(), Hints(), [CreateSandbox(0)]),
    ("sandbox died → kill and recreate with next attempt", make_pod(),
     Observed((SandboxObs("sb1", 0, False),), (c("main", "running"),)), Hints(),
     [KillContainer("main-0", "main", "SandboxChanged"), StopSandbox("sb1"), CreateSandbox(1)]),
    ("Never: dead sandbox with ran containers is final", make_pod(policy="Never"),
     Observed((SandboxObs("sb1", 0, False),), (c("main", "running"),)), Hints(), []),
    ("fresh sandbox → start regular containers", make_pod(["a", "b"]), Observed((SB,)), Hints(),
     [StartContainer("a", "regular", 0), StartContainer("b", "regular", 0)]),
    ("running → nothing", make_pod(), Observed((SB,), (c("main", "running"),)), Hints(), []),
    ("first init container first", make_pod(inits=[{"name": "i1"}, {"name": "i2"}]), Observed((SB,)), Hints(),
     [StartContainer("i1", "init", 0)]),
    ("init running → wait for it", make_pod(inits=[{"name": "i1"}]),
     Observed((SB,), (c("i1", "running"),)), Hints(), []),
    ("init done → next init", make_pod(inits=[{"name": "i1"}, {"name": "i2"}]),
     Observed((SB,), (c("i1", "exited"),)), Hints(), [StartContainer("i2", "init", 0)]),
    ("all inits done → regular", make_pod(inits=[{"name": "i1"}]),
     Observed((SB,), (c("i1", "exited"),)), Hints(), [StartContainer("main", "regular", 0)]),
    ("failed init restarts under Always", make_pod(inits=[{"name": "i1"}]),
     Observed((SB,), (c("i1", "exited", exit_code=1, finished=NOW - 100),)), Hints(),
     [StartContainer("i1", "init", 1)]),
    ("failed init is final under Never", make_pod(inits=[{"name": "i1"}], policy="Never"),
     Observed((SB,), (c("i1", "exited", exit_code=1),)), Hints(), [StopSandbox("sb1")]),
    ("sidecar started, then next init does not wait for exit",
     make_pod(inits=[{"name": "side", "restartPolicy": "Always"}, {"name": "i2"}]),
     Observed((SB,), (c("side", "running"),)), Hints(), [StartContainer("i2", "init", 0)]),
    ("sidecar with startup probe not started yet blocks",
     make_pod(inits=[{"name": "side", "restartPolicy": "Always", "startupProbe": {"exec": {}}}, {"name": "i2"}]),
     Observed((SB,), (c("side", "running"),)), Hints(), []),
    ("exited under Always restarts", make_pod(),
     Observed((SB,), (c("main", "exited", exit_code=0, finished=NOW - 50),)), Hints(),
     [StartContainer("main", "regular", 1)]),
    ("OnFailure: success is final → pod done", make_pod(policy="OnFailure"),
     Observed((SB,), (c("main", "exited", exit_code=0),)), Hints(), [StopSandbox("sb1")]),
    ("OnFailure: failure restarts", make_pod(policy="OnFailure"),
     Observed((SB,), (c("main", "exited", exit_code=2, finished=NOW - 50),)), Hints(),
     [StartContainer("main", "regular", 1)]),
    ("in back-off → Wait until finishedAt + delay", make_pod(),
     Observed((SB,), (c("main", "exited", attempt=2, exit_code=1, finished=NOW - 5),)),
     Hints(delays={"main": 20.0}),
     [Wait("main", "CrashLoopBackOff", "back-off 20s restarting failed container=main pod=p_default(u1)",
           NOW + 15)]),
    ("back-off elapsed → restart", make_pod(),
     Observed((SB,), (c("main", "exited", attempt=2, exit_code=1, finished=NOW - 25),)),
     Hints(delays={"main": 20.0}), [StartContainer("main", "regular", 3)]),
    ("liveness failure → kill", make_pod(),
     Observed((SB,), (c("main", "running"),)), Hints(unhealthy={"main-0": "failed liveness probe"}),
     [KillContainer("main-0", "main", "Unhealthy", "failed liveness probe")]),
    ("spec change → kill", make_pod(),
     Observed((SB,), (c("main", "running", spec_hash="old"),)), Hints(),
     [KillContainer("main-0", "main", "SpecChanged", "Container main definition changed, will be restarted")]),
    ("created but never started → remove and recreate", make_pod(),
     Observed((SB,), (c("main", "created"),)), Hints(),
     [RemoveContainer("main-0"), StartContainer("main", "regular", 0)]),
    ("deleting → kill pod", make_pod(deletionTimestamp="2024-01-01T00:00:00Z"),
     Observed((SB,), (c("main", "running"),)), Hints(), [KillPod("deleted")]),
    ("keeps newest and previous, removes older", make_pod(),
     Observed((SB,), (c("main", "running", attempt=3), c("main", "exited", attempt=2),
                      c("main", "exited", attempt=1), c("main", "exited", attempt=0))), Hints(),
     [RemoveContainer("main-1"), RemoveContainer("main-0")]),
    ("old sandbox without kept containers is removed", make_pod(),
     Observed((SandboxObs("sb2", 1, True), SandboxObs("sb1", 0, False)),
              (c("main", "running", attempt=1, sandbox="sb2"),)), Hints(), [RemoveSandbox("sb1")]),
]


@pytest.mark.parametrize("pod,obs,hints,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_plan(pod: dict[str, Any], obs: Observed, hints: Hints, expected: list[Any]) -> None:
    assert plan(pod, obs, NOW, hints) == expected


def test_spec_hash_matches_unchanged_container() -> None:
    pod = make_pod()
    h = container_hash(pod["spec"]["containers"][0])
    assert plan(pod, Observed((SB,), (c("main", "running", spec_hash=h),)), NOW) == []


@pytest.mark.parametrize("policy,exit_code,done", [
    ("Always", 0, False), ("OnFailure", 0, True), ("OnFailure", 1, False), ("Never", 1, True), ("Never", 0, True),
])
def test_pod_done(policy: str, exit_code: int, done: bool) -> None:
    obs = Observed((SB,), (c("main", "exited", exit_code=exit_code),))
    assert pod_done(make_pod(policy=policy), obs) is done
