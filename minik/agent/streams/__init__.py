"""Pod streaming for the node agent: logs, exec, attach and port-forward.

Role: `PodStreamsImpl` (server.py) is what `minik.api.handlers` calls for the pods/{name}/log,
exec, attach and portforward subresources. Inside: `logs` (CRI log files), `websocket` (the
channel protocol), `spdy` (SPDY/3.1 framing and sessions), `transport` (byte transports under
SPDY), `remotecommand` (exec/attach bridging to containerd's streaming server) and `portforward`.
"""

from minik.agent.streams.server import PodStreamsImpl

__all__ = ["PodStreamsImpl"]
