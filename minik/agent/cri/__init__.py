"""CRI v1: the generated messages (`api_pb2`, as `pb`) and the async client minik uses.

Neighbours: `minik.agent.containerd` starts the runtime this client talks to; the pod workers
in `minik.agent` build the request messages.
"""

from minik.agent.cri._generated import api_pb2 as pb
from minik.agent.cri.client import (
    CriClient,
    CriError,
    CriNotFoundError,
    CriTimeoutError,
    CriUnavailableError,
)

__all__ = [
    "CriClient",
    "CriError",
    "CriNotFoundError",
    "CriTimeoutError",
    "CriUnavailableError",
    "pb",
]
