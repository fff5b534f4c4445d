"""What the runtime holds for one pod, as `minik.agent.plan.Observed`.

Role: list the pod's sandboxes and containers by the io.kubernetes.pod.uid label and turn CRI
messages into plain values. Container details that never change once seen (an exited
container's exit code, times and termination message, a running container's start time) are
cached per (container id, state), so a resync costs two list calls instead of one status call
per container. An exited container's termination message is read here, once, from the host
file mounted at its terminationMessagePath (found among the status's mounts).
Neighbours: `minik.agent.worker` (caller), `minik.agent.cri` (source), `minik.agent.plan` (types),
`minik.agent.termination` (reading the message).
"""

from __future__ import annotations

import asyncio

from minik.agent.containers import ANNOTATION_HASH, ANNOTATION_TERMINATION_PATH, ANNOTATION_TERMINATION_POLICY
from minik.agent.cri import CriClient, CriNotFoundError, pb
from minik.agent.plan import CREATED, EXITED, RUNNING, UNKNOWN, ContainerObs, Observed, SandboxObs
from minik.agent.sandbox import LABEL_POD_UID
from minik.agent.termination import DEFAULT_MESSAGE_PATH, read_message

__all__ = ["Observer", "state_name"]

_NS = 1e9


def state_name(state: int) -> str:
    names: dict[int, str] = {pb.CONTAINER_RUNNING: RUNNING, pb.CONTAINER_EXITED: EXITED,
                             pb.CONTAINER_CREATED: CREATED}
    return names.get(state, UNKNOWN)


async def _message(st: pb.ContainerStatus) -> str:
    """Kubelet's termination message: the runtime's own message (if any) joined with the one
    the container left in its terminationMessagePath (or its log tail, per policy)."""
    if st.state != pb.CONTAINER_EXITED:
        return st.message
    path = st.annotations.get(ANNOTATION_TERMINATION_PATH) or DEFAULT_MESSAGE_PATH
    host_file = next((m.host_path for m in st.mounts if m.container_path == path), "")
    fallback = st.annotations.get(ANNOTATION_TERMINATION_POLICY) == "FallbackToLogsOnError"
    text = await asyncio.to_thread(read_message, host_file, st.log_path,
                                   fallback_to_logs=fallback, failed=st.exit_code != 0)
    if st.message and text:
        return f"{st.message}: {text}"
    return text or st.message


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
                    message=await _message(st),
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
