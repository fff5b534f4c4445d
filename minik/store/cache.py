"""The committed state of every key, in memory: what `Store.get` and `Store.list` read.

Role: a plain index resource → namespace → name → object, plus sorted lists built on the first
LIST and then kept sorted on every change (a binary search and one list insert, not a re-sort:
with 10,000 Services, sorting again after each create cost more than the create). Only `minik.store.store` writes to it, and only with committed changes,
so readers never see a write that could still fail.
"""

from __future__ import annotations

from bisect import bisect_left

from minik.store.types import Obj


def _order(obj: Obj) -> tuple[str, str]:
    m = obj.get("metadata")
    if not isinstance(m, dict):
        return ("", "")
    return (str(m.get("namespace") or ""), str(m.get("name") or ""))


class ObjectCache:
    def __init__(self) -> None:
        self._objects: dict[str, dict[str, dict[str, Obj]]] = {}
        # (resource, namespace or None for all) → items sorted by (namespace, name), built by the
        # first `list` and kept in order by `put`/`remove`.
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
        new = name not in names
        if new:
            self._count += 1
        names[name] = obj
        self._resort(resource, namespace, name, obj if new else None, obj)

    def remove(self, resource: str, namespace: str, name: str) -> None:
        by_ns = self._objects.get(resource)
        names = None if by_ns is None else by_ns.get(namespace)
        if by_ns is None or names is None or names.pop(name, None) is None:
            return
        self._count -= 1
        self._resort(resource, namespace, name, None, None)
        # Empty containers are dropped so `resources()` lists only keys that hold objects.
        if not names:
            del by_ns[namespace]
            if not by_ns:
                del self._objects[resource]

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

    def _resort(self, resource: str, namespace: str, name: str, added: Obj | None, replaced: Obj | None) -> None:
        """Keep the cached sorted lists in order: insert `added`, put `replaced` in place of the
        object of the same name, or (both None) take that name out. A list whose order does not
        hold where it should (an object whose metadata disagrees with its key) is dropped and
        sorted afresh by the next `list`."""
        want = (namespace, name)
        for key in ((resource, namespace), (resource, None)):
            items = self._sorted.get(key)
            if items is None:
                continue
            i = bisect_left(items, want, key=_order)
            found = i < len(items) and _order(items[i]) == want
            if added is not None and not found:
                items.insert(i, added)
            elif replaced is not None and found:
                items[i] = replaced
            elif added is None and replaced is None and found:
                del items[i]
            else:
                del self._sorted[key]
