"""In-process transport of `minik.client.Client`: calls the resource service directly (no HTTP),
watches the store's hub. Objects handed out are deep copies: the store's cache is shared and
read-only, and a caller mutating it would corrupt every reader (and turn its own update into a no-op).
`copy_reads=False` hands out the store's own objects from list and watch instead: only for the
shared informers (`minik.machinery.informers`), whose caches are read-only by contract too, so the
daemon keeps one copy of each object rather than two (see docs/flow.md, "Memory").

Neighbours: built by `minik.daemon` for controllers and the local node agent.
"""

from __future__ import annotations

import builtins

import copy
from typing import Any, AsyncIterator, Callable

from minik.api import status as st
from minik.api.service import DeleteOptions, ResourceService, WriteOptions
from minik.apis.registry import ResourceType
from minik.apis.selectors import parse_field_selector, parse_label_selector
from minik.client import ClientError, Obj, ResourceEvent, ResourceInfo, WatchEvent
from minik.store import errors as store_errors


TokenIssuer = Callable[[Obj, Obj, "Obj | None"], Obj]   # (serviceaccount, TokenRequest body, bound pod) → TokenRequest


def _shared(x: Any) -> Any:
    return x


class LocalClient:
    def __init__(self, service: ResourceService, default_manager: str = "minik",
                 token_issuer: TokenIssuer | None = None, copy_reads: bool = True) -> None:
        self.service, self.default_manager, self.token_issuer = service, default_manager, token_issuer
        self._copy: Callable[[Any], Any] = copy.deepcopy if copy_reads else _shared

    def _rt(self, resource: str) -> ResourceType:
        for t in self.service.registry.types:
            if t.store_key == resource and (not t.group or t.version == self.service.registry.preferred_version(t.group)):
                return t
        raise ClientError(404, "NotFound", f"the server could not find the requested resource ({resource})")

    async def _call(self, coro: Any) -> Any:
        try:
            return await coro
        except Exception as e:   # what the HTTP path answers as a Status, the same code here
            status = st.from_exception(e)
            if status is None:
                raise
            raise ClientError(status.code, status.reason, status.message) from None

    async def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        try:
            return copy.deepcopy(self.service.get(self._rt(resource), namespace, name))
        except st.StatusError as e:
            if e.code == 404:
                return None
            raise ClientError(e.code, e.reason, e.message) from None

    async def list(self, resource: str, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "") -> tuple[list[Obj], str]:
        try:
            page = self.service.list(self._rt(resource), namespace,
                                     parse_label_selector(label_selector) if label_selector else None,
                                     parse_field_selector(field_selector) if field_selector else None)
        except st.StatusError as e:
            raise ClientError(e.code, e.reason, e.message) from None
        return self._copy(page.items), str(page.resource_version)

    async def watch(self, resource: str, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "") -> AsyncIterator[WatchEvent]:
        rt = self._rt(resource)
        labels = parse_label_selector(label_selector) if label_selector else None
        fields = parse_field_selector(field_selector) if field_selector else None
        store = self.service.store
        if resource_version in ("", "0"):
            page = self.service.list(rt, namespace, labels, fields)
            since = page.resource_version
            for obj in page.items:
                yield WatchEvent("ADDED", self._copy(obj))
        else:
            since = int(resource_version)
        try:
            w = store.watch(rt.store_key, namespace, since)
        except store_errors.Expired as e:
            raise ClientError(410, "Expired", str(e)) from None
        try:
            async for ev in w:
                now = ev.object
                def ok(o: Obj | None) -> bool:
                    if o is None:
                        return False
                    if labels is not None and not labels.matches((o.get("metadata") or {}).get("labels") or {}):
                        return False
                    return fields is None or fields.matches(o)
                if labels is None and fields is None:
                    yield WatchEvent(ev.type, self._copy(self.service.with_type(rt, now)))
                    continue
                a, b = ok(now), ok(ev.prev_object)
                if ev.type == "DELETED":
                    if a or b:
                        yield WatchEvent("DELETED", self._copy(self.service.with_type(rt, now)))
                elif a:
                    yield WatchEvent("MODIFIED" if (b and ev.type == "MODIFIED") else "ADDED",
                                     self._copy(self.service.with_type(rt, now)))
                elif b:
                    yield WatchEvent("DELETED", self._copy(self.service.with_type(rt, now)))
        except store_errors.Expired as e:
            raise ClientError(410, "Expired", str(e)) from None
        finally:
            w.close()

    async def create(self, resource: str, namespace: str, obj: Obj, field_manager: str = "") -> Obj:
        res = await self._call(self.service.create(self._rt(resource), namespace, obj,
                                                   WriteOptions(field_manager or self.default_manager, "Ignore")))
        return res.object  # type: ignore[no-any-return]

    async def update(self, resource: str, namespace: str, name: str, obj: Obj, subresource: str = "",
                     field_manager: str = "") -> Obj:
        res = await self._call(self.service.update(self._rt(resource), namespace, name, obj,
                                                   WriteOptions(field_manager or self.default_manager, "Ignore", False, subresource)))
        return res.object  # type: ignore[no-any-return]

    async def patch(self, resource: str, namespace: str, name: str, body: Any,
                    patch_type: str = "application/merge-patch+json", subresource: str = "",
                    field_manager: str = "") -> Obj:
        rt = self._rt(resource)
        if subresource == "binding":
            return await self._call(self.service.bind(rt, namespace, name, body["target"]["name"]))  # type: ignore[no-any-return]
        res = await self._call(self.service.patch(rt, namespace, name, patch_type, body,
                                                  WriteOptions(field_manager or self.default_manager, "Ignore", False, subresource)))
        return res.object  # type: ignore[no-any-return]

    async def delete(self, resource: str, namespace: str, name: str, grace_period_seconds: int | None = None,
                     precondition_uid: str = "", propagation_policy: str = "Background") -> Obj | None:
        try:
            res = await self.service.delete(self._rt(resource), namespace, name,
                                            DeleteOptions(propagation_policy, grace_period_seconds, precondition_uid))
        except st.StatusError as e:
            if e.code == 404:
                return None
            raise ClientError(e.code, e.reason, e.message) from None
        return res.object

    async def resources(self) -> builtins.list[ResourceInfo]:
        out: dict[str, ResourceInfo] = {}
        for t in self.service.registry.types:
            if t.virtual or t.computed or t.store_key in out:
                continue
            if t.group and t.version != self.service.registry.preferred_version(t.group):
                continue
            out[t.store_key] = ResourceInfo(t.store_key, t.group, t.version, t.kind, t.namespaced, tuple(t.verbs))
        return list(out.values())

    async def watch_all(self, resource_version: str) -> AsyncIterator[ResourceEvent]:
        types: dict[str, ResourceType] = {}
        try:
            w = self.service.store.watch(None, None, int(resource_version) if resource_version else None)
        except store_errors.Expired as e:
            raise ClientError(410, "Expired", str(e)) from None
        try:
            async for ev in w:
                rt = types.get(ev.resource)
                if rt is None:
                    try:
                        rt = types[ev.resource] = self._rt(ev.resource)
                    except ClientError:
                        rt = None
                m = ev.object.get("metadata")
                yield ResourceEvent(ev.resource, ev.type,
                                    {"apiVersion": rt.api_version if rt else ev.object.get("apiVersion", ""),
                                     "kind": rt.kind if rt else ev.object.get("kind", ""),
                                     "metadata": copy.deepcopy(m) if isinstance(m, dict) else {}})
        except store_errors.Expired as e:
            raise ClientError(410, "Expired", str(e)) from None
        finally:
            w.close()

    async def create_token(self, namespace: str, service_account: str, spec: Obj) -> Obj:
        if self.token_issuer is None:
            raise ClientError(405, "MethodNotAllowed", "no token issuer is configured")
        sa = await self.get("serviceaccounts", namespace, service_account)
        if sa is None:
            raise ClientError(404, "NotFound", f'serviceaccounts "{service_account}" not found')
        ref = spec.get("boundObjectRef") or {}
        pod = None
        if ref.get("kind") == "Pod":
            pod = await self.get("pods", namespace, str(ref.get("name", "")))
            if pod is None or (ref.get("uid") and pod["metadata"].get("uid") != ref.get("uid")):
                raise ClientError(404, "NotFound", f'pods "{ref.get("name")}" not found')
        try:
            return self.token_issuer(sa, {"spec": spec}, pod)
        except st.StatusError as e:
            raise ClientError(e.code, e.reason, e.message) from None
