"""The API side of pod streaming: kubectl's protocols for logs, exec, attach and port-forward.

Role: `StreamFront` (front.py) is what `minik.api.handlers` calls for the pods/{name}/log, exec,
attach and portforward subresources; it speaks `websocket` (the channel protocol), SPDY/3.1
(`minik.client.spdy`) over `transport` (our side of an HTTP upgrade, bytes in a websocket),
`remotecommand` (exec/attach) and `portforward`, and reaches the node only through
`minik.client.streams.PodStreams`.
"""

from minik.api.streams.front import StreamFront

__all__ = ["StreamFront"]
