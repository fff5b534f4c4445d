"""Ephemeral containers (`kubectl debug`) in the agent's pure parts: plan() starts each one once and
never restarts or kills it, status reports them apart from phase and readiness, and the CRI
config of one with a target joins the target's PID namespace."""

from __future__ import annotations

from typing import Any

import pytest

from minik.agent.containers import container_config
from minik.agent.cri import pb
from minik.agent.plan import (
    ContainerObs,
    CreateSandbox,
    Hints,
    KillContainer,
    Observed,
    RemoveContainer,
    SandboxObs,
    StartContainer,
    StopSandbox,
    container_hash,
    plan,
    pod_done,
)
from minik.agent.status import StatusInput, compute_status

NOW = 1000.0
SB = SandboxObs("sb1", 0, True, "10.0.0.2")


def make_pod(policy: str = "Always", ephemerals: tuple[str, ...] = ("dbg",), inits: tuple[str, ...] = (),
             target: str = "main", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "default", "uid": "u1"},
        "spec": {"restartPolicy": policy,
                 "containers": [{"name": "main", "image": "busybox"}],
                 "initContainers": [{"name": n, "image": "busybox"} for n in inits],
                 "ephemeralContainers": [{"name": n, "image": "busybox", "targetContainerName": target}
                                         for n in ephemerals],
                 **spec},
    }


def c(name: str, state: str, attempt: int = 0, exit_code: int = 0, sandbox: str = "sb1",
      spec_hash: str = "") -> ContainerObs:
    return ContainerObs(id=f"{name}-{attempt}-{sandbox}", name=name, attempt=attempt, state=state,
                        sandbox_id=sandbox, created_at=float(attempt), started_at=NOW - 10,
                        finished_at=NOW - 5 if state == "exited" else 0.0, exit_code=exit_code,
                        image="docker.io/library/busybox:latest", image_ref="sha256:bb", hash=spec_hash)


MAIN = c("main", "running")   # no recorded spec hash: never a spec-change kill

CASES: list[tuple[str, dict[str, Any], Observed, list[Any]]] = [
    ("no sandbox → sandbox first, nothing ephemeral yet", make_pod(), Observed(), [CreateSandbox(0)]),
    ("not yet run → started once", make_pod(), Observed((SB,), (MAIN,)),
     [StartContainer("dbg", "ephemeral", 0)]),
    ("several → each started", make_pod(ephemerals=("a", "b")), Observed((SB,), (MAIN,)),
     [StartContainer("a", "ephemeral", 0), StartContainer("b", "ephemeral", 0)]),
    ("running → nothing", make_pod(), Observed((SB,), (MAIN, c("dbg", "running"))), []),
    ("exited 0 under Always → never restarted", make_pod(),
     Observed((SB,), (MAIN, c("dbg", "exited"))), []),
    ("exited 1 under OnFailure → never restarted", make_pod(policy="OnFailure"),
     Observed((SB,), (MAIN, c("dbg", "exited", exit_code=1))), []),
    ("ran in an earlier sandbox → not started again", make_pod(),
     Observed((SandboxObs("sb2", 1, True), SandboxObs("sb1", 0, False)),
              (c("main", "running", attempt=1, sandbox="sb2"), c("dbg", "exited"))), []),
    ("created but never started → replaced", make_pod(),
     Observed((SB,), (MAIN, c("dbg", "created"))),
     [RemoveContainer("dbg-0-sb1"), StartContainer("dbg", "ephemeral", 0)]),
    ("started before initialization completes", make_pod(inits=("i1",)), Observed((SB,), (c("i1", "running"),)),
     [StartContainer("dbg", "ephemeral", 0)]),
    ("spec-hash mismatch does not kill it", make_pod(),
     Observed((SB,), (MAIN, c("dbg", "running", spec_hash="stale"))), []),
    ("pod done → not started, sandbox stopped", make_pod(policy="Never"),
     Observed((SB,), (c("main", "exited"),)), [StopSandbox("sb1")]),
    ("sandbox died → killed like every running container", make_pod(),
     Observed((SandboxObs("sb1", 0, False),), (MAIN, c("dbg", "running"))),
     [KillContainer("main-0-sb1", "main", "SandboxChanged"), KillContainer("dbg-0-sb1", "dbg", "SandboxChanged"),
      StopSandbox("sb1"), CreateSandbox(1)]),
]


@pytest.mark.parametrize("pod,obs,expected", [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_plan_ephemeral(pod: dict[str, Any], obs: Observed, expected: list[Any]) -> None:
    assert plan(pod, obs, NOW, Hints()) == expected


def test_garbage_collection_keeps_ephemeral_containers() -> None:
    # Not in containers/initContainers, but in ephemeralContainers: kept, running or not.
    pod = make_pod(ephemerals=("dbg", "old"))
    obs = Observed((SB,), (c("main", "running", spec_hash=container_hash(pod["spec"]["containers"][0])),
                           c("dbg", "running"), c("old", "exited")))
    assert plan(pod, obs, NOW) == []


def test_ephemeral_containers_do_not_decide_pod_done() -> None:
    pod = make_pod(policy="Never")
    assert not pod_done(pod, Observed((SB,), (MAIN, c("dbg", "exited", exit_code=1))))
    assert pod_done(pod, Observed((SB,), (c("main", "exited"), c("dbg", "running"))))


def _status(pod: dict[str, Any], obs: Observed, waiting: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:
    return compute_status(pod, obs, StatusInput("192.168.1.5", NOW, waiting or {}))


def test_status_running_ephemeral_is_never_ready_and_not_counted() -> None:
    st = _status(make_pod(), Observed((SB,), (MAIN, c("dbg", "running"))))
    (eph,) = st["ephemeralContainerStatuses"]
    assert eph == {"name": "dbg", "image": "busybox", "imageID": "sha256:bb", "restartCount": 0, "ready": False,
                   "state": {"running": {"startedAt": "1970-01-01T00:16:30Z"}}, "lastState": {},
                   "containerID": "containerd://dbg-0-sb1"}
    assert st["phase"] == "Running"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"


def test_status_waiting_exited_and_removed() -> None:
    pod = make_pod()
    waiting = _status(pod, Observed((SB,), (MAIN,)), {"dbg": ("ErrImagePull", "no such image")})
    assert waiting["ephemeralContainerStatuses"][0]["state"] == {
        "waiting": {"reason": "ErrImagePull", "message": "no such image"}}
    assert _status(pod, Observed((SB,), (MAIN,)))["ephemeralContainerStatuses"][0]["state"] == {
        "waiting": {"reason": "ContainerCreating"}}
    exited = _status(pod, Observed((SB,), (MAIN, c("dbg", "exited", exit_code=3))))
    term = exited["ephemeralContainerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (3, "Error")
    assert exited["phase"] == "Running"
    none = make_pod(ephemerals=())
    none["status"] = exited
    assert "ephemeralContainerStatuses" not in _status(none, Observed((SB,), (MAIN,)))


def _config(pod: dict[str, Any], target_id: str) -> pb.ContainerConfig:
    return container_config(pod, pod["spec"]["ephemeralContainers"][0], kind="ephemeral", attempt=0,
                            env=[], mounts=[], target_id=target_id)


def test_config_with_target_joins_its_pid_namespace() -> None:
    pod = make_pod()
    pod["metadata"]["namespace"] = "default"
    ns = _config(pod, "cid-main").linux.security_context.namespace_options
    assert (ns.pid, ns.target_id, ns.network, ns.ipc) == (pb.TARGET, "cid-main", pb.POD, pb.POD)
    assert _config(pod, "").linux.security_context.namespace_options.pid == pb.CONTAINER
    assert _config(pod, "cid").annotations["io.minik.container.kind"] == "ephemeral"


def test_config_target_is_moot_with_shared_or_host_pid() -> None:
    shared = make_pod(shareProcessNamespace=True)
    assert _config(shared, "cid").linux.security_context.namespace_options.pid == pb.POD
    host = make_pod(hostPID=True)
    assert _config(host, "cid").linux.security_context.namespace_options.pid == pb.NODE
