"""A small in-memory `Client` for controller unit tests: objects by (resource, namespace, name),
deletes that honour finalizers/propagation as the API does, and a log of writes."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

from minik.client import ClientError, Obj, ResourceEvent, ResourceInfo, WatchEvent

RESOURCES = (ResourceInfo("configmaps", "", "v1", "ConfigMap", True, ("list", "delete")),
             ResourceInfo("pods", "", "v1", "Pod", True, ("list", "delete")),
             ResourceInfo("namespaces", "", "v1", "Namespace", False, ("list", "delete")),
             ResourceInfo("apps/replicasets", "apps", "v1", "ReplicaSet", True, ("list", "delete")))


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Obj] = {}
        self.writes: list[tuple[str, str, str, str]] = []   # (verb, resource, namespace, name)
        self.fail_delete: dict[str, Exception] = {}          # name → error raised by delete

    def put(self, resource: str, obj: Obj) -> Obj:
        m = obj["metadata"]
        m.setdefault("uid", str(uuid.uuid4()))
        self.objects[(resource, m.get("namespace", ""), m["name"])] = obj
        return obj

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        o = self.objects.get((resource, namespace, name))
        return copy.deepcopy(o) if o is not None else None

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        return [copy.deepcopy(o) for (r, ns, _), o in self.objects.items()
                if r == resource and (namespace is None or ns == namespace)], "1"

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj:
        key = (resource, namespace, obj["metadata"]["name"])
        if key in self.objects:
            raise ClientError(409, "AlreadyExists", "exists")
        obj = copy.deepcopy(obj)
        obj["metadata"]["namespace"] = namespace
        self.writes.append(("create", *key))
        return self.put(resource, obj)

    async def update(self, resource: str, namespace: str, name: str, obj: Obj, subresource: str = "",
                     field_manager: str = "") -> Obj:
        key = (resource, namespace, name)
        if key not in self.objects:
            raise ClientError(404, "NotFound", "gone")
        self.writes.append((f"update{'/' + subresource if subresource else ''}", *key))
        self.objects[key] = copy.deepcopy(obj)
        return obj

    async def patch(self, resource: str, namespace: str, name: str, body: Any,
                    patch_type: str = "application/merge-patch+json", subresource: str = "",
                    field_manager: str = "") -> Obj:
        key = (resource, namespace, name)
        cur = self.objects.get(key)
        if cur is None:
            raise ClientError(404, "NotFound", "gone")
        self.writes.append(("patch", *key))
        for k, v in (body.get("metadata") or {}).items():
            if v is None:
                cur["metadata"].pop(k, None)
            else:
                cur["metadata"][k] = v
        if cur["metadata"].get("deletionTimestamp") and not cur["metadata"].get("finalizers"):
            del self.objects[key]
        return cur

    async def delete(self, resource: str, namespace: str, name: str, grace_period_seconds: int | None = None,
                     precondition_uid: str = "", propagation_policy: str = "Background") -> Obj | None:
        if name in self.fail_delete:
            raise self.fail_delete[name]
        key = (resource, namespace, name)
        cur = self.objects.get(key)
        if cur is None:
            return None
        if precondition_uid and cur["metadata"].get("uid") != precondition_uid:
            raise ClientError(409, "Conflict", "uid")
        self.writes.append((f"delete/{propagation_policy}", *key))
        fin = {"Foreground": "foregroundDeletion", "Orphan": "orphan"}.get(propagation_policy)
        if fin or cur["metadata"].get("finalizers"):
            cur["metadata"]["deletionTimestamp"] = "2025-01-01T00:00:00Z"
            if fin:
                cur["metadata"].setdefault("finalizers", []).append(fin)
            return cur
        del self.objects[key]
        return cur

    async def resources(self) -> list[ResourceInfo]:
        return list(RESOURCES)

    def watch(self, *a: Any, **k: Any) -> AsyncIterator[WatchEvent]:
        raise NotImplementedError

    def watch_all(self, resource_version: str) -> AsyncIterator[ResourceEvent]:
        raise NotImplementedError
