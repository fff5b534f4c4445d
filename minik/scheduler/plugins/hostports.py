"""A hostPort (with protocol and hostIP) can be used by one pod per node."""

from __future__ import annotations

from minik.scheduler.state import ClusterState, Obj


def _ports(pod: Obj) -> set[tuple[str, int, str]]:
    out = set()
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("hostPort"):
                out.add((p.get("protocol", "TCP"), int(p["hostPort"]), p.get("hostIP", "0.0.0.0")))
    return out


def filter(pod: Obj, node: Obj, state: ClusterState) -> str | None:
    want = _ports(pod)
    if not want:
        return None
    for other in state.pods_by_node.get(node["metadata"]["name"], []):
        for proto, port, ip in _ports(other):
            for wp, wport, wip in want:
                if wp == proto and wport == port and (ip == wip or "0.0.0.0" in (ip, wip)):
                    return "node(s) didn't have free ports for the requested pod ports"
    return None
