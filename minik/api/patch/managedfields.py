"""`metadata.managedFields` bookkeeping: who owns which field, updated on every write.

Follows Kubernetes' field manager for ordinary writes (create/update/patch, operation
"Update"): the fields that changed between the old and the new object become owned by the
writing manager, are taken away from every other manager, and removed fields disappear from
everyone's sets. The writer's entry is found by (manager, operation, apiVersion, subresource) —
Kubernetes' manager identity — and its timestamp only moves when it took something. Entries with
empty sets are dropped; entries are sorted the way Kubernetes sorts them (Apply before Update,
then by time, manager, apiVersion, subresource).

Cost: the compare walk skips equal subtrees with one C-level `==`, and entries are edited in
their FieldsV1 form, copying only the branches a write touches, so a small write against a large
object costs tens of microseconds. Neighbours: `minik.api.patch.fieldpath` (sets, walks, wire form),
`minik.api.patch.apply` (the Apply operation), `minik.api.service` (calls this on each write).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import AbstractSet, Any

from minik.api.patch.fieldpath import (FieldSet, Path, compare, from_fields_v1, to_fields_v1, tree_with,
                                       tree_without,
                                       without_managed_fields)
from minik.api.patch.typeinfo import TypeInfo
from minik.api.patch.values import JSON
from minik.apis.schema import Schemas

APPLY = "Apply"
UPDATE = "Update"
# Kubernetes' name for the owner of everything an object held before its first server-side apply.
BEFORE_FIRST_APPLY = "before-first-apply"


@dataclass(frozen=True, slots=True)
class ManagedEntry:
    """One decoded managedFields entry; its field set stays in FieldsV1 form (`tree`)."""

    manager: str
    operation: str
    api_version: str
    time: str | None
    subresource: str
    tree: dict[str, Any]

    @property
    def identity(self) -> tuple[str, str, str, str]:
        return identity(self.manager, self.operation, self.api_version, self.subresource)

    @property
    def empty(self) -> bool:
        return not self.tree

    def fields(self) -> FieldSet:
        return from_fields_v1(self.tree)

    def without(self, paths: AbstractSet[Path]) -> ManagedEntry:
        tree = tree_without(self.tree, paths)
        return self if tree is self.tree else replace(self, tree=tree)


def identity(manager: str, operation: str, api_version: str, subresource: str) -> tuple[str, str, str, str]:
    """Kubernetes' manager identity: appliers keep one entry across API versions, updaters one per version."""
    return (manager, operation, subresource, "" if operation == APPLY else api_version)


def decode_entries(raw: JSON) -> list[ManagedEntry]:
    """Decode metadata.managedFields; entries without a manager (the `[{}]` reset) are dropped."""
    out: list[ManagedEntry] = []
    if not isinstance(raw, list):
        return out
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("manager"), str) or not item["manager"]:
            continue
        tree = item.get("fieldsV1")
        if not isinstance(tree, dict) or not tree:
            continue
        time = item.get("time")
        out.append(ManagedEntry(
            manager=item["manager"],
            operation=str(item.get("operation") or UPDATE),
            api_version=str(item.get("apiVersion") or ""),
            time=time if isinstance(time, str) else None,
            subresource=str(item.get("subresource") or ""),
            tree=tree,
        ))
    return out


def encode_entries(entries: list[ManagedEntry]) -> list[dict[str, JSON]]:
    ordered = sorted((e for e in entries if not e.empty),
                     key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    out: list[dict[str, JSON]] = []
    for e in ordered:
        item: dict[str, JSON] = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version}
        if e.time is not None:
            item["time"] = e.time
        item["fieldsType"] = "FieldsV1"
        item["fieldsV1"] = e.tree
        if e.subresource:
            item["subresource"] = e.subresource
        out.append(item)
    return out


def entries_for_write(old: JSON, new: JSON) -> list[ManagedEntry]:
    """The entries a write starts from: the new object's, unless it carries none (then the old).

    Kubernetes ignores an absent or empty list (so clients unaware of the field never wipe it)
    and resets tracking when given entries without a manager.
    """
    meta = new.get("metadata") if isinstance(new, dict) else None
    raw = meta.get("managedFields") if isinstance(meta, dict) else None
    if not raw and isinstance(old, dict):
        old_meta = old.get("metadata")
        raw = old_meta.get("managedFields") if isinstance(old_meta, dict) else None
    return decode_entries(raw)


def store_entries(obj: dict[str, JSON], entries: list[ManagedEntry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = encode_entries(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


def update_managed_fields(old: dict[str, JSON] | None, new: dict[str, JSON], manager: str,
                          operation: str, api_version: str, now: str, subresource: str = "", *,
                          schemas: Schemas | None = None, schema_name: str | None = None) -> None:
    """Record in `new["metadata"]["managedFields"]` that `manager` wrote the old → new changes.

    Pass `schemas`/`schema_name` so list items are tracked by key (`k:{"name":"nginx"}`);
    without them lists are owned as a whole (what Kubernetes does for untyped data).
    """
    meta = new.get("metadata")
    if not isinstance(meta, dict):
        return
    types = TypeInfo(schemas)
    added, modified, removed = compare(types, without_managed_fields(old) if old is not None else {},
                                       without_managed_fields(new), types.root(schema_name))
    if not (added or modified or removed):
        if not meta.get("managedFields") and isinstance(old, dict):
            previous = (old.get("metadata") or {}).get("managedFields")
            if previous:
                meta["managedFields"] = previous
        return
    changed = added | modified
    touched = changed | removed
    me = identity(manager, operation, api_version, subresource)
    entries: list[ManagedEntry] = []
    mine: ManagedEntry | None = None
    for entry in entries_for_write(old, new):
        if entry.identity == me and mine is None:
            mine = entry
        else:
            entries.append(entry.without(touched))
    if changed:
        previous = tree_without(mine.tree, removed) if mine is not None else {}
        # Building from scratch is cheaper than inserting path by path (the create case).
        tree = tree_with(previous, changed) if previous else to_fields_v1(changed)
        mine = ManagedEntry(manager, operation, api_version, now, subresource, tree)
    elif mine is not None:
        mine = mine.without(removed)
    if mine is not None:
        entries.append(mine)
    store_entries(new, entries)
