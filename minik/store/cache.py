"""The committed state of every key, in memory: what `Store.get` and `Store.list` read.

Role: a plain index resource → namespace → name → object, plus sorted-list snapshots rebuilt
lazily after a change. Only `minik.store.store` writes to it, and only with committed changes,
so readers never see a write that could still fail.
"""

from __future__ import annotations

from minik.store.types import Obj


class ObjectCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Obj]]] = {}
        # (resource, namespace or None for all) → items sorted by (namespace, name); dropped on
        # every change to that resource/namespace so a hot list is sorted once per change.
        self._sorted: dict[tuple[str, str | None], list[Obj]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        by_ns = self._objects.get(resource)
        if by_ns is None:
            return None
        names = by_ns.get(namespace)
        return None if names is None else names.get(name)

    def put(self, resource: str, namespace: str, name: str, obj: Obj) -> None:
        names = self._objects.setdefault(resource, {}).setdefault(namespace, {})
        if name not in names:
            self._count += 1
        names[name] = obj
        self._invalidate(resource, namespace)

    def remove(self, resource: str, namespace: str, name: str) -> None:
        by_ns = self._objects.get(resource)
        names = None if by_ns is None else by_ns.get(namespace)
        if by_ns is None or names is None or names.pop(name, None) is None:
            return
        self._count -= 1
        # Empty containers are dropped so `resources()` lists only keys that hold objects.
        if not names:
            del by_ns[namespace]
            if not by_ns:
                del self._objects[resource]
        self._invalidate(resource, namespace)

    def resources(self) -> list[str]:
        return sorted(self._objects)

    def list(self, resource: str, namespace: str | None) -> list[Obj]:
        """Items sorted by (namespace, name); a fresh list the caller may keep."""
        key = (resource, namespace)
        items = self._sorted.get(key)
        if items is None:
            by_ns = self._objects.get(resource, {})
            if namespace is None:
                items = [
                    by_ns[ns][name] for ns in sorted(by_ns) for name in sorted(by_ns[ns])
                ]
            else:
                names = by_ns.get(namespace, {})
                items = [names[name] for name in sorted(names)]
            self._sorted[key] = items
        return list(items)

    def _invalidate(self, resource: str, namespace: str) -> None:
        self._sorted.pop((resource, namespace), None)
        self._sorted.pop((resource, None), None)
