"""Garbage collector: ownerReferences cascading deletion (Background, Foreground, Orphan).

- An object whose owners are all gone (deleted, or never existed) is deleted (Background).
- An owner with the `foregroundDeletion` finalizer → its dependents are deleted first (Foreground),
  then the finalizer is removed (which lets the API server remove the owner).
- An owner with the `orphan` finalizer → its ownerReferences are stripped from dependents, then the
  finalizer is removed.
The graph (owner uid → dependents, the uids alive) is built from one list of every resource and
then `Client.watch_all` (metadata only, like Kubernetes's metadata informers); stream handlers only
update the graph and enqueue keys (`<resource>|<namespace>|<name>`); workers of a
`machinery.Controller` sync one object at a time, reading it fresh through the client. A failed
sync (a conflict, a malformed stored object) is requeued with the queue's back-off, so one bad
object never stops collection of the others.
Neighbours: `minik.client.Client` (discovery, list, watch_all, delete/patch/update),
`minik.machinery.controller.Controller`, `minik.machinery.ownership.owner_refs`.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from minik.client import Client, ClientError, Obj, ResourceEvent
from minik.machinery import keysets
from minik.machinery.controller import Controller
from minik.machinery.events import EventRecorder
from minik.machinery.ownership import owner_refs
from minik.machinery.workqueue import WorkQueue

log = logging.getLogger("minik.controllers.gc")

COMPONENT = "garbage-collector"
Key = tuple[str, str, str]  # resource (store key), namespace, name
# While a foreground deletion waits for dependents, look again this often (besides the watch).
FOREGROUND_RECHECK = 1.0


def owner_uids(obj: Obj) -> list[str]:
    return [str(r["uid"]) for r in owner_refs(obj) if r.get("uid")]


def finalizers(obj: Obj) -> list[str]:
    f = (obj.get("metadata") or {}).get("finalizers")
    return [x for x in f if isinstance(x, str)] if isinstance(f, list) else []


def encode(key: Key) -> str:
    return "|".join(key)


def decode(key: str) -> Key:
    res, ns, name = key.split("|", 2)
    return res, ns, name


class GarbageCollector:
    def __init__(self, client: Client, workers: int = 2, recorder: EventRecorder | None = None) -> None:
        self.client = client
        self.recorder = recorder or EventRecorder(client, COMPONENT)
        self.queue = WorkQueue(base_delay=0.05)
        self.controller = Controller(COMPONENT, self.queue, self.sync, [], workers, run_informers=False)
        self._reset()

    def _reset(self) -> None:
        # owner uid → dependents: one Key, or a set of them from the second on (keysets).
        self.dependents: dict[str, Key | set[Key]] = {}
        self.owners_of: dict[Key, tuple[str, ...]] = {}
        self.live_uids: dict[str, Key] = {}

    # ---- the graph ----------------------------------------------------------------------------
    def _index(self, key: Key, obj: Obj | None) -> None:
        for uid in self.owners_of.pop(key, ()):
            keysets.discard(self.dependents, uid, key)
        if obj is None:
            return
        uids = owner_uids(obj)
        if uids:
            self.owners_of[key] = tuple(uids)
            for uid in uids:
                keysets.add(self.dependents, uid, key)

    def _observe(self, resource: str, obj: Obj) -> Key:
        m = obj.get("metadata") or {}
        key = (resource, str(m.get("namespace") or ""), str(m.get("name", "")))
        uid = str(m.get("uid", ""))
        if uid:
            self.live_uids[uid] = key
        self._index(key, obj)
        return key

    def _dangling(self, obj: Obj) -> bool:
        uids = owner_uids(obj)
        return bool(uids) and all(u not in self.live_uids for u in uids)

    def _wants_finalizing(self, obj: Obj) -> bool:
        fins = finalizers(obj)
        return bool((obj.get("metadata") or {}).get("deletionTimestamp")) and ("orphan" in fins or "foregroundDeletion" in fins)

    def handle(self, ev: ResourceEvent) -> None:
        """Update the graph and enqueue what may need work (synchronous: handlers only enqueue)."""
        m = ev.object.get("metadata") or {}
        key = (ev.resource, str(m.get("namespace") or ""), str(m.get("name", "")))
        uid = str(m.get("uid", ""))
        if ev.type == "DELETED":
            owners = self.owners_of.get(key, ())
            self._index(key, None)
            if self.live_uids.get(uid) == key:
                del self.live_uids[uid]
            for dep in keysets.members(self.dependents, uid):
                self.queue.add(encode(dep))
            for owner in owners:   # an owner waiting in foreground deletion may be done now
                okey = self.live_uids.get(owner)
                if okey is not None:
                    self.queue.add(encode(okey))
            return
        self._observe(ev.resource, ev.object)
        if self._dangling(ev.object) or self._wants_finalizing(ev.object):
            self.queue.add(encode(key))

    # ---- run ----------------------------------------------------------------------------------
    async def run(self) -> None:
        self._reset()
        rv = ""
        objects: list[tuple[str, Obj]] = []
        for info in await self.client.resources():
            if "list" not in info.verbs:
                continue
            try:
                items, list_rv = await self.client.list(info.resource)
            except ClientError as e:
                log.debug("gc: listing %s: %s", info.resource, e.message)
                continue
            rv = rv or list_rv
            for obj in items:
                objects.append((info.resource, {"metadata": obj.get("metadata") or {}}))
        for res, obj in objects:
            self._observe(res, obj)
        for res, obj in objects:
            if self._dangling(obj) or self._wants_finalizing(obj):
                self.queue.add(encode(self._observe(res, obj)))
        del objects
        tasks = [asyncio.create_task(self._pump(rv), name=f"{COMPONENT}-watch"),
                 asyncio.create_task(self.controller.run(), name=f"{COMPONENT}-workers")]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise RuntimeError("garbage collector: a task returned")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _pump(self, rv: str) -> None:
        async for ev in self.client.watch_all(rv):
            try:
                self.handle(ev)
            except Exception:  # a malformed object must not stop the graph
                log.exception("gc: handling %s %s", ev.type, ev.resource)

    # ---- sync ---------------------------------------------------------------------------------
    async def sync(self, skey: str) -> float | None:
        res, ns, name = decode(skey)
        obj = await self.client.get(res, ns, name)
        if obj is None:
            return None
        try:
            if self._wants_finalizing(obj):
                return await self._finalize(res, obj)
            if self._dangling(obj):
                await self._delete((res, ns, name), "Background", str(obj["metadata"].get("uid", "")))
            return None
        except ClientError:
            raise
        except Exception as e:
            await self.recorder.event(obj, "Warning", "GarbageCollectionFailed", f"{type(e).__name__}: {e}")
            raise

    async def _finalize(self, res: str, obj: Obj) -> float | None:
        m = obj["metadata"]
        uid = str(m.get("uid", ""))
        fins = finalizers(obj)
        if "orphan" in fins:
            for dep in keysets.members(self.dependents, uid):
                await self._orphan(dep, uid)
            await self._drop_finalizer(res, obj, "orphan")
            return None
        pending = list(keysets.members(self.dependents, uid))
        for dep in pending:
            await self._delete(dep, "Foreground")
        if uid in self.dependents:
            return FOREGROUND_RECHECK   # the dependents' DELETED events requeue us sooner
        await self._drop_finalizer(res, obj, "foregroundDeletion")
        return None

    async def _drop_finalizer(self, res: str, obj: Obj, fin: str) -> None:
        m = obj["metadata"]
        rest = [f for f in finalizers(obj) if f != fin]
        try:
            await self.client.patch(res, m.get("namespace", ""), m["name"],
                                    {"metadata": {"finalizers": rest or None}}, field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise

    async def _orphan(self, key: Key, owner_uid: str) -> None:
        obj = await self.client.get(*key)
        if obj is None:
            return
        refs = [r for r in owner_refs(obj) if r.get("uid") != owner_uid]
        new: dict[str, Any] = copy.deepcopy(obj)
        if refs:
            new["metadata"]["ownerReferences"] = refs
        else:
            new["metadata"].pop("ownerReferences", None)
        try:
            await self.client.update(key[0], key[1], key[2], new, field_manager=COMPONENT)
        except ClientError as e:
            if not e.not_found:
                raise

    async def _delete(self, key: Key, policy: str, uid: str = "") -> None:
        # A NotFound is done; a 409 (a racing writer, a changed uid) is raised and the key retried.
        await self.client.delete(key[0], key[1], key[2], precondition_uid=uid, propagation_policy=policy)
