"""The node's side of pod streaming: CRI exec/attach/port-forward sessions and container logs.

Role: `CriPodStreams` (cri.py) implements `minik.client.streams.PodStreams` on the local CRI
runtime: `dial` upgrades to the runtime's streaming server, SPDY/3.1 framing is
`minik.client.spdy`, `logs` reads the CRI log files. kubectl's protocols live in
the API server's `api/streams` package; nothing here touches an HTTP request.
"""

from minik.agent.streams.cri import CriPodStreams

__all__ = ["CriPodStreams"]
