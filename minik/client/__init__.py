"""One async client interface for controllers and the node agent; in-process and remote transports.

`Client` (this module) is what callers depend on; `minik.client.local.LocalClient` serves it from
the in-process resource service, so the local agent and a remote agent run the same code.
"""

from __future__ import annotations

import builtins

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


@dataclass(frozen=True, slots=True)
class ResourceInfo:
    """One served resource type, as discovery describes it (preferred version of its group)."""
    resource: str       # store key: "pods", "apps/deployments"
    group: str
    version: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def deletable(self) -> bool:
        return "delete" in self.verbs and "list" in self.verbs


@dataclass(frozen=True, slots=True)
class ResourceEvent:
    """A change to an object of any resource type (`Client.watch_all`); `object` carries only
    apiVersion, kind and metadata (a PartialObjectMetadata), which is all ownership needs."""
    resource: str
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
                     precondition_uid: str = "", propagation_policy: str = "Background") -> Obj | None:
        """None when the object is already gone (a NotFound while deleting counts as done)."""
        ...

    async def resources(self) -> builtins.list[ResourceInfo]:
        """Discovery: every stored resource type once (its preferred version)."""
        ...

    def watch_all(self, resource_version: str) -> AsyncIterator[ResourceEvent]:
        """Metadata of every change to any resource after `resource_version` (the garbage
        collector's graph); 410 Expired when that revision is compacted."""
        ...

    async def create_token(self, namespace: str, service_account: str, spec: Obj) -> Obj:
        """serviceaccounts/{name}/token: a TokenRequest (spec: audiences, expirationSeconds,
        boundObjectRef) answered with status.token and status.expirationTimestamp."""
        ...
