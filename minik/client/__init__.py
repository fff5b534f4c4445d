"""One async client interface for controllers and the node agent; in-process and remote transports.

`Client` (this module) is what callers depend on; `minik.client.local.LocalClient` serves it from
the in-process resource service, so the local agent and a remote agent run the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, AsyncIterator, Protocol

Obj = dict[str, Any]


class ClientError(Exception):
    """A failed API call, with the Kubernetes Status code and reason (404 NotFound, 409 Conflict, …)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    @property
    def not_found(self) -> bool:
        return self.code == 404

    @property
    def conflict(self) -> bool:
        return self.code == 409


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: str           # ADDED | MODIFIED | DELETED
    object: Obj


class Client(Protocol):
    """Resources are named by store key: "pods", "nodes", "events", "apps/deployments", "coordination.k8s.io/leases"."""

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None: ...

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]: ...

    def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
              label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]: ...

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj: ...

    async def update(self, resource: str, namespace: str, name: str, obj: Obj, subresource: str = "",
                     field_manager: str = "") -> Obj: ...

    async def patch(self, resource: str, namespace: str, name: str, body: Any,
                    patch_type: str = "application/merge-patch+json", subresource: str = "",
                    field_manager: str = "") -> Obj: ...

    async def delete(self, resource: str, namespace: str, name: str, grace_period_seconds: int | None = None,
                     precondition_uid: str = "") -> Obj | None: ...

    async def create_token(self, namespace: str, service_account: str, spec: Obj) -> Obj:
        """serviceaccounts/{name}/token: a TokenRequest (spec: audiences, expirationSeconds,
        boundObjectRef) answered with status.token and status.expirationTimestamp."""
        ...
