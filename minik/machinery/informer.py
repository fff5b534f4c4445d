"""Informer: list + watch of one resource through `minik.client.Client` into an in-memory cache,
with event handlers called on every change.

`run()` lists, replaces the cache (calling handlers for the differences, so a relist after a
dropped watch still tells controllers what changed), then watches from the list's
resourceVersion. A watch that ends is resumed from the last seen resourceVersion; 410 Expired
means the history is gone and forces a relist; other errors relist after a capped back-off.
Handlers are synchronous and must only enqueue keys (STYLE: handlers compute a key, workers sync);
any number of consumers may register handlers on one informer.
Indexers (`add_indexer(name, fn)`, client-go's Indexer) keep `index value → keys` up to date on
every change, so `by_index("nodeName", node)` costs the size of the answer, not of the cache; an
index function that raises on a malformed object files it under no value (it is logged once per
change, never stops the informer). "namespace" is built in (the cache is bucketed by namespace).
Cached objects are shared between handlers and syncs: treat them as read-only.
Neighbours: `minik.machinery.informers.InformerFactory` builds and runs one informer per resource;
`minik.machinery.controller.Controller` waits for their caches; controllers in `minik.controllers`
read `get`/`list`/`by_index` during `sync(key)`.
"""

from __future__ import annotations

import builtins

import asyncio
import logging
from typing import Callable

from minik.client import Client, ClientError, Obj
from minik.machinery import keysets

log = logging.getLogger("minik.informer")

# (old, new): old is None for an add, new is None for a delete.
Handler = Callable[[Obj | None, Obj | None], None]
# An object's values under one index (e.g. the node a pod is bound to); [] files it nowhere.
IndexFunc = Callable[[Obj], "list[str]"]
NAMESPACE_INDEX = "namespace"


def object_key(obj: Obj) -> str:
    """The queue key of an object: "namespace/name" ("name" when cluster-scoped)."""
    m = obj.get("metadata") or {}
    ns = m.get("namespace") or ""
    return f"{ns}/{m.get('name', '')}" if ns else str(m.get("name", ""))


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


class Informer:
    def __init__(self, client: Client, resource: str, namespace: str | None = None, label_selector: str = "",
                 max_backoff: float = 10.0, field_selector: str = "") -> None:
        self.client, self.resource = client, resource
        self.namespace, self.label_selector, self.field_selector = namespace, label_selector, field_selector
        self.max_backoff = max_backoff
        self._items: dict[str, dict[str, Obj]] = {}   # namespace → name → object
        self._handlers: list[Handler] = []
        self._indexers: dict[str, IndexFunc] = {}
        # index → value → object keys: one key as a plain str, a set from the second on (keysets).
        self._indices: dict[str, dict[str, str | set[str]]] = {}
        self._synced = asyncio.Event()
        self.resource_version = ""

    # ---- cache reads ---------------------------------------------------------------------------
    def get(self, namespace: str, name: str) -> Obj | None:
        return self._items.get(namespace, {}).get(name)

    def get_by_key(self, key: str) -> Obj | None:
        return self.get(*split_key(key))

    def list(self, namespace: str | None = None) -> list[Obj]:
        if namespace is not None:
            return list(self._items.get(namespace, {}).values())
        return [o for objs in self._items.values() for o in objs.values()]

    @property
    def synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def __len__(self) -> int:
        return sum(len(objs) for objs in self._items.values())

    # ---- indexers ------------------------------------------------------------------------------
    def add_indexer(self, name: str, fn: IndexFunc) -> None:
        """Register an index (idempotent per name: consumers sharing the informer may all ask)."""
        if name == NAMESPACE_INDEX or name in self._indexers:
            return
        self._indexers[name] = fn
        index: dict[str, str | set[str]] = {}
        self._indices[name] = index
        for obj in self.list():
            for v in self._values(name, fn, obj):
                keysets.add(index, v, object_key(obj))

    def by_index(self, name: str, value: str) -> builtins.list[Obj]:
        """Objects whose index `name` has `value` (KeyError for an index never added)."""
        if name == NAMESPACE_INDEX:
            return self.list(value)
        out = []
        for key in keysets.members(self._indices[name], value):
            obj = self.get_by_key(key)
            if obj is not None:
                out.append(obj)
        return out

    def index_values(self, name: str) -> builtins.list[str]:
        if name == NAMESPACE_INDEX:
            return list(self._items)
        return list(self._indices[name])

    def _values(self, name: str, fn: IndexFunc, obj: Obj) -> builtins.list[str]:
        try:
            return [v for v in fn(obj) if isinstance(v, str)]
        except Exception:  # a malformed stored object must not stop the informer
            log.warning("informer %s: index %s of %s failed; not indexed", self.resource, name, object_key(obj), exc_info=True)
            return []

    def _reindex(self, old: Obj | None, new: Obj | None) -> None:
        if not self._indexers:
            return
        for name, fn in self._indexers.items():
            index = self._indices[name]
            if old is not None:
                key = object_key(old)
                for v in self._values(name, fn, old):
                    keysets.discard(index, v, key)
            if new is not None:
                key = object_key(new)
                for v in self._values(name, fn, new):
                    keysets.add(index, v, key)

    # ---- list + watch --------------------------------------------------------------------------
    async def run(self) -> None:
        delay = 0.2
        while True:
            try:
                await self._relist()
                delay = 0.2
                while await self._watch():
                    # The stream ended cleanly: resume from the last resourceVersion (briefly
                    # paused so a server that keeps closing streams cannot make us spin).
                    await asyncio.sleep(0.05)
            except ClientError as e:
                if e.code != 410:
                    log.warning("informer %s: %s (relisting in %.1fs)", self.resource, e.message, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.max_backoff)
                else:
                    log.info("informer %s: watch expired, relisting", self.resource)

    async def _relist(self) -> None:
        items, rv = await self.client.list(self.resource, self.namespace, label_selector=self.label_selector,
                                           field_selector=self.field_selector)
        fresh: dict[str, dict[str, Obj]] = {}
        for obj in items:
            m = obj.get("metadata") or {}
            fresh.setdefault(m.get("namespace") or "", {})[m.get("name", "")] = obj
        old_items, self._items = self._items, fresh
        if self._indexers:
            for name in self._indices:
                self._indices[name] = {}
            for objs in fresh.values():
                for obj in objs.values():
                    self._reindex(None, obj)
        for ns, objs in fresh.items():
            for name, obj in objs.items():
                before = old_items.get(ns, {}).get(name)
                if before is None or before.get("metadata", {}).get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                    self._dispatch(before, obj)
        for ns, objs in old_items.items():
            for name, obj in objs.items():
                if name not in fresh.get(ns, {}):
                    self._dispatch(obj, None)
        self.resource_version = rv
        self._synced.set()

    async def _watch(self) -> bool:
        """Apply watch events until the stream ends (True: resume) ; raises ClientError on failure."""
        stream = self.client.watch(self.resource, self.namespace, resource_version=self.resource_version,
                                   label_selector=self.label_selector, field_selector=self.field_selector)
        async for ev in stream:
            obj = ev.object
            m = obj.get("metadata") or {}
            ns, name = m.get("namespace") or "", m.get("name", "")
            rv = m.get("resourceVersion")
            if rv:
                self.resource_version = str(rv)
            bucket = self._items.setdefault(ns, {})
            before = bucket.get(name)
            if ev.type == "DELETED":
                bucket.pop(name, None)
                if not bucket:
                    del self._items[ns]
                self._reindex(before, None)
                self._dispatch(before if before is not None else obj, None)
            else:
                bucket[name] = obj
                self._reindex(before, obj)
                self._dispatch(before, obj)
        return True

    def _dispatch(self, old: Obj | None, new: Obj | None) -> None:
        for h in self._handlers:
            try:
                h(old, new)
            except Exception:
                log.exception("informer %s: handler failed", self.resource)
