"""The controller loop: informers feed a work queue; N workers call `sync(key)`.

`Controller.run()` waits until every informer's cache has synced, then runs workers
(`<controller>-worker-<i>`). Informers normally come shared from
`minik.machinery.informers.InformerFactory`, which runs them; with `run_informers=True` (a
controller built without a factory, as in small tests) it starts them itself as tasks named
`<controller>-informer-<resource>`. A sync returns
`None` when done, or a delay in seconds to look at the key again (minReadySeconds, progress
deadlines); an exception requeues the key with the queue's exponential back-off (conflicts from
stale caches are expected and logged quietly). A failed informer task fails `run()`, which the
daemon's `Supervisor` restarts.
`Expectations` is client-go's ControllerExpectations: after creating or deleting children, a
controller skips acting on a key until its informer has seen those changes, so a sync running on
a stale cache cannot create the same pods twice.
Neighbours: `minik.machinery.informer`, `minik.machinery.workqueue`; used by `minik.controllers`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Sequence

from minik.client import ClientError, Obj
from minik.machinery.informer import Informer
from minik.machinery.workqueue import ShutDown, WorkQueue

log = logging.getLogger("minik.controller")

Sync = Callable[[str], Awaitable[float | None]]
# Told about a sync that raised something other than a ClientError (a bug, or a malformed stored
# object): typically records a Warning Event on the object; it must not raise.
Failed = Callable[[str, Exception], Awaitable[None]]


class Controller:
    def __init__(self, name: str, queue: WorkQueue, sync: Sync, informers: Sequence[Informer], workers: int = 2,
                 run_informers: bool = True, failed: Failed | None = None) -> None:
        self.name, self.queue, self.sync = name, queue, sync
        self.informers, self.workers = list(informers), workers
        self.run_informers, self.failed = run_informers, failed

    async def run(self) -> None:
        tasks: list[asyncio.Future[Any]] = [asyncio.create_task(inf.run(), name=f"{self.name}-informer-{inf.resource}")
                                            for inf in self.informers] if self.run_informers else []
        try:
            synced: asyncio.Future[Any] = asyncio.gather(*(inf.wait_synced() for inf in self.informers))
            done, _ = await asyncio.wait([synced, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if synced not in done:
                synced.cancel()
                for t in done:
                    t.result()  # raises the informer's failure
                raise RuntimeError(f"{self.name}: an informer stopped before syncing")
            log.debug("%s: caches synced", self.name)
            tasks += [asyncio.create_task(self._worker(), name=f"{self.name}-worker-{i}") for i in range(self.workers)]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                t.result()
            raise RuntimeError(f"{self.name}: a task returned")
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                again = await self.sync(key)
            except asyncio.CancelledError:
                self.queue.done(key)
                raise
            except ClientError as e:
                # 409 means our cache was stale; the next sync sees the newer object.
                level = logging.DEBUG if e.code in (404, 409) and self.queue.failures(key) < 5 else logging.WARNING
                log.log(level, "%s: sync %s: %s (retrying in %.2fs)", self.name, key, e.message, self.queue.backoff(key))
                self.queue.add_rate_limited(key)
            except Exception as e:
                # One object that cannot be reconciled is retried with back-off; the others go on.
                log.exception("%s: sync %s failed (retrying in %.2fs)", self.name, key, self.queue.backoff(key))
                self.queue.add_rate_limited(key)
                if self.failed is not None:
                    try:
                        await self.failed(key, e)
                    except Exception:
                        log.exception("%s: reporting the failure of %s", self.name, key)
            else:
                self.queue.forget(key)
                if again is not None:
                    self.queue.add_after(key, again)
            finally:
                self.queue.done(key)


@dataclass(slots=True)
class _Expect:
    adds: int
    deletes: set[str]
    at: float


class Expectations:
    """Pending creations (a count) and deletions (pod names) per controller key, with a TTL so a
    lost watch event cannot wedge a controller forever (Kubernetes uses 5 minutes)."""

    def __init__(self, ttl: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.clock = ttl, clock
        self._by_key: dict[str, _Expect] = {}

    def expect(self, key: str, adds: int = 0, deletes: Sequence[str] = ()) -> None:
        self._by_key[key] = _Expect(adds, set(deletes), self.clock())

    def creation_observed(self, key: str) -> None:
        e = self._by_key.get(key)
        if e is not None and e.adds > 0:
            e.adds -= 1

    def deletion_observed(self, key: str, name: str) -> None:
        e = self._by_key.get(key)
        if e is not None:
            e.deletes.discard(name)

    def lower(self, key: str, adds: int = 0, deletes: Sequence[str] = ()) -> None:
        """Forget expectations for actions that failed (they will never be observed)."""
        e = self._by_key.get(key)
        if e is not None:
            e.adds = max(0, e.adds - adds)
            e.deletes.difference_update(deletes)

    def satisfied(self, key: str) -> bool:
        e = self._by_key.get(key)
        if e is None:
            return True
        if (e.adds <= 0 and not e.deletes) or self.clock() - e.at > self.ttl:
            del self._by_key[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._by_key.pop(key, None)


def controller_ref(obj: Obj) -> Obj | None:
    """The ownerReference with `controller: true`, if any (malformed stored references read as none)."""
    m = obj.get("metadata")
    refs = m.get("ownerReferences") if isinstance(m, dict) else None
    for r in refs if isinstance(refs, list) else []:
        if isinstance(r, dict) and r.get("controller"):
            return r
    return None


def owner_key(obj: Obj, kind: str, api_group: str | None = None) -> str | None:
    """The work-queue key ("namespace/name") of the `kind` controller that owns `obj`, if any
    (`api_group`: also require the reference's apiVersion to be of that group)."""
    ref = controller_ref(obj)
    if ref is None or ref.get("kind") != kind:
        return None
    if api_group is not None and not str(ref.get("apiVersion", "")).startswith(api_group + "/"):
        return None
    m = obj.get("metadata")
    namespace = m.get("namespace", "") if isinstance(m, dict) else ""
    return f"{namespace}/{ref.get('name', '')}"


Record = Callable[[Obj, str, str, str], Awaitable[None]]


def report_failures(objects: Informer, record: Record) -> Failed:
    """A `Failed` that records a Warning `ReconcileError` Event on the object whose sync raised."""
    async def failed(key: str, e: Exception) -> None:
        obj = objects.get_by_key(key)
        if obj is not None:
            await record(obj, "Warning", "ReconcileError", f"{type(e).__name__}: {e}")
    return failed


def owner_reference(owner: Obj, api_version: str, kind: str) -> Obj:
    """A controller ownerReference to `owner`; blockOwnerDeletion lets foreground deletion wait for it."""
    meta = owner["metadata"]
    return {"apiVersion": api_version, "kind": kind, "name": meta.get("name", ""), "uid": meta.get("uid", ""),
            "controller": True, "blockOwnerDeletion": True}
