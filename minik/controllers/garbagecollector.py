"""Garbage collector: ownerReferences cascading deletion (Background, Foreground, Orphan).

- An owner gone from the store → its dependents are deleted (Background propagation).
- An owner with the `foregroundDeletion` finalizer → dependents deleted first, then the finalizer
  is removed (which lets the service remove the owner).
- An owner with the `orphan` finalizer → its ownerReferences are stripped from dependents, then the
  finalizer is removed.
Neighbours: watches every resource in `minik.store`; acts through `minik.api.service`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections import defaultdict

from minik.api import status as st
from minik.api.service import DeleteOptions, ResourceService, WriteOptions
from minik.apis.registry import Registry, ResourceType
from minik.store.types import Event, Obj

log = logging.getLogger("minik.controllers.gc")

Key = tuple[str, str, str]  # store key, namespace, name


def owner_uids(obj: Obj) -> list[str]:
    return [r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or [] if r.get("uid")]


class GarbageCollector:
    def __init__(self, service: ResourceService, registry: Registry) -> None:
        self.service, self.registry = service, registry
        self.dependents: dict[str, set[Key]] = defaultdict(set)
        self.owners_of: dict[Key, list[str]] = {}
        self.live_uids: dict[str, Key] = {}

    def _rt(self, store_key: str) -> ResourceType | None:
        for t in self.registry.types:
            if t.store_key == store_key:
                return t
        return None

    def _index(self, key: Key, obj: Obj | None) -> None:
        for uid in self.owners_of.pop(key, []):
            self.dependents[uid].discard(key)
            if not self.dependents[uid]:
                del self.dependents[uid]
        if obj is None:
            return
        uids = owner_uids(obj)
        if uids:
            self.owners_of[key] = uids
            for uid in uids:
                self.dependents[uid].add(key)

    async def run(self) -> None:
        store = self.service.store
        watch = store.watch(None, None, store.revision)
        try:
            for res in store.resources():
                for obj in store.list(res).items:
                    m = obj["metadata"]
                    key = (res, m.get("namespace", ""), m["name"])
                    self.live_uids[m.get("uid", "")] = key
                    self._index(key, obj)
            for uid in [u for u in list(self.dependents) if u not in self.live_uids]:
                await self._delete_dependents(uid)
            for res in store.resources():
                for obj in store.list(res).items:
                    await self._finalize(res, obj)
            async for ev in watch:
                await self.handle(ev)
        finally:
            watch.close()

    async def handle(self, ev: Event) -> None:
        key = (ev.resource, ev.namespace, ev.name)
        uid = (ev.object.get("metadata") or {}).get("uid", "")
        if ev.type == "DELETED":
            self._index(key, None)
            self.live_uids.pop(uid, None)
            if uid in self.dependents:
                await self._delete_dependents(uid)
            return
        self.live_uids[uid] = key
        self._index(key, ev.object)
        # A dependent whose owners are all gone (created after its owner died) is collected too.
        uids = owner_uids(ev.object)
        if uids and all(u not in self.live_uids for u in uids) and ev.type == "ADDED":
            await self._delete(key)
        await self._finalize(ev.resource, ev.object)

    async def _finalize(self, res: str, obj: Obj) -> None:
        m = obj.get("metadata") or {}
        fins = m.get("finalizers") or []
        if not m.get("deletionTimestamp") or not ("foregroundDeletion" in fins or "orphan" in fins):
            return
        uid = m.get("uid", "")
        if "orphan" in fins:
            for dep in list(self.dependents.get(uid, ())):
                await self._orphan(dep, uid)
            await self._drop_finalizer(res, obj, "orphan")
        elif "foregroundDeletion" in fins:
            pending = list(self.dependents.get(uid, ()))
            for dep in pending:
                await self._delete(dep, "Foreground")
            if not self.dependents.get(uid):
                await self._drop_finalizer(res, obj, "foregroundDeletion")
            else:
                asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(self._recheck(res, m.get("namespace", ""), m["name"])))

    async def _recheck(self, res: str, ns: str, name: str) -> None:
        obj = self.service.store.get(res, ns, name)
        if obj is not None:
            try:
                await self._finalize(res, obj)
            except Exception:
                log.exception("gc recheck of %s %s/%s failed", res, ns, name)

    async def _drop_finalizer(self, res: str, obj: Obj, fin: str) -> None:
        rt = self._rt(res)
        if rt is None:
            return
        m = obj["metadata"]
        rest = [f for f in m.get("finalizers") or [] if f != fin]
        try:
            await self.service.patch(rt, m.get("namespace", ""), m["name"], "application/merge-patch+json",
                                     {"metadata": {"finalizers": rest or None}}, WriteOptions("garbage-collector", "Ignore"))
        except st.StatusError as e:
            if e.code != 404:
                log.warning("gc: removing finalizer %s from %s %s: %s", fin, res, m["name"], e.message)

    async def _orphan(self, key: Key, owner_uid: str) -> None:
        rt = self._rt(key[0])
        obj = self.service.store.get(*key)
        if rt is None or obj is None:
            return
        refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("uid") != owner_uid]
        new = copy.deepcopy(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        try:
            await self.service.update(rt, key[1], key[2], new, WriteOptions("garbage-collector", "Ignore"))
        except st.StatusError as e:
            if e.code != 404:
                log.warning("gc: orphaning %s: %s", key, e.message)

    async def _delete_dependents(self, uid: str) -> None:
        for dep in list(self.dependents.get(uid, ())):
            obj = self.service.store.get(*dep)
            if obj is None:
                continue
            # Only collect when no other owner is still alive.
            if any(u in self.live_uids for u in owner_uids(obj) if u != uid):
                continue
            await self._delete(dep)

    async def _delete(self, key: Key, policy: str = "Background") -> None:
        rt = self._rt(key[0])
        if rt is None:
            return
        try:
            await self.service.delete(rt, key[1], key[2], DeleteOptions(policy))
        except st.StatusError as e:
            if e.code == 409:
                # Lost a race with another writer of the dependent: try again shortly.
                asyncio.get_running_loop().call_later(1.0, lambda: asyncio.ensure_future(self._delete(key, policy)))
            elif e.code != 404:
                log.warning("gc: deleting %s: %s", key, e.message)
