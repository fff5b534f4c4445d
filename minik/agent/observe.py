"""What the runtime holds for one pod, as `minik.agent.plan.Observed`.

Role: list the pod's sandboxes and containers by the io.kubernetes.pod.uid label and turn CRI
messages into plain values. Container details that never change once seen (an exited
container's exit code and times, a running container's start time) are cached per
(container id, state), so a resync costs two list calls instead of one status call per container.
Neighbours: `minik.agent.worker` (caller), `minik.agent.cri` (source), `minik.agent.plan` (types).
"""

from __future__ import annotations

from minik.agent.containers import ANNOTATION_HASH
from minik.agent.cri import CriClient, CriNotFoundError, pb
from minik.agent.plan import CREATED, EXITED, RUNNING, UNKNOWN, ContainerObs, Observed, SandboxObs
from minik.agent.sandbox import LABEL_POD_UID

__all__ = ["Observer", "state_name"]

_NS = 1e9


def state_name(state: int) -> str:
    names: dict[int, str] = {pb.CONTAINER_RUNNING: RUNNING, pb.CONTAINER_EXITED: EXITED,
                             pb.CONTAINER_CREATED: CREATED}
    return names.get(state, UNKNOWN)


class Observer:
    def __init__(self, cri: CriClient) -> None:
        self.cri = cri
        self._cache: dict[tuple[str, int], ContainerObs] = {}
        self._sandbox_ips: dict[str, str] = {}

    def forget(self, ids: set[str]) -> None:
        for key in [k for k in self._cache if k[0] in ids]:
            del self._cache[key]
        for sid in ids:
            self._sandbox_ips.pop(sid, None)

    async def observe(self, uid: str) -> Observed:
        sel = {LABEL_POD_UID: uid}
        sandboxes = await self.cri.list_pod_sandbox(pb.PodSandboxFilter(label_selector=sel))
        sbs: list[SandboxObs] = []
        for s in sandboxes:
            ready = s.state == pb.SANDBOX_READY
            ip = self._sandbox_ips.get(s.id, "") if ready else ""
            if ready and not ip:
                try:
                    st = await self.cri.pod_sandbox_status(s.id)
                    ip = st.status.network.ip
                    self._sandbox_ips[s.id] = ip
                except CriNotFoundError:
                    continue
            sbs.append(SandboxObs(s.id, s.metadata.attempt, ready, ip, s.created_at / _NS))
        sbs.sort(key=lambda s: (s.attempt, s.created_at), reverse=True)
        containers = await self.cri.list_containers(pb.ContainerFilter(label_selector=sel))
        obs: list[ContainerObs] = []
        live: set[tuple[str, int]] = set()
        for c in containers:
            key = (c.id, int(c.state))
            live.add(key)
            cached = self._cache.get(key)
            if cached is None:
                try:
                    st = (await self.cri.container_status(c.id)).status
                except CriNotFoundError:
                    continue
                cached = ContainerObs(
                    id=c.id,
                    name=c.metadata.name,
                    attempt=c.metadata.attempt,
                    state=state_name(st.state),
                    sandbox_id=c.pod_sandbox_id,
                    created_at=st.created_at / _NS,
                    started_at=st.started_at / _NS,
                    finished_at=st.finished_at / _NS,
                    exit_code=st.exit_code,
                    reason=st.reason,
                    message=st.message,
                    image=st.image.image,
                    image_ref=st.image_ref,
                    hash=c.annotations.get(ANNOTATION_HASH, ""),
                )
                # A state change between list and status: cache under what status said.
                key = (c.id, int(st.state))
                live.add(key)
                if cached.state in (RUNNING, EXITED):
                    self._cache[key] = cached
            obs.append(cached)
        for key in [k for k in self._cache if k[0] in {c.id for c in containers} and k not in live]:
            del self._cache[key]
        return Observed(tuple(sbs), tuple(obs))
