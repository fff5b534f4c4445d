"""Server-side apply (`application/apply-patch+yaml`): merge by ownership, prune, detect conflicts.

Follows Kubernetes' structured-merge-diff "Apply" for one manager:

1. merge the applied configuration into the live object by schema (`x-kubernetes-list-type`:
   associative lists by their map keys, sets by value, atomic lists/maps replaced; granular maps
   and objects field by field);
2. the manager's Apply entry becomes exactly the fields it sent (`fieldpath.applied_fields`);
3. prune: fields this manager applied last time, omits now, and nobody else owns are removed;
4. conflicts: a field the result changes that another manager owns is a conflict
   (`PatchConflict`, one `FieldManagerConflict` cause per field) unless `force`, which moves
   ownership to the applier; fields the result removes leave every other set.

An object without managedFields that is applied to for the first time gets its existing fields
owned by "before-first-apply", as in Kubernetes, so nothing is silently pruned or overwritten.
Neighbours: `minik.api.patch.fieldpath` (paths, walks), `minik.api.patch.managedfields`
(entries), `minik.api.service` (creates the object when `live` is None).
"""

from __future__ import annotations

import json
from typing import AbstractSet, Hashable

from minik.api.patch.fieldpath import (Path, applied_fields, compare, item_element, path_string,
                                       to_fields_v1, without_managed_fields)
from minik.api.patch.managedfields import (APPLY, BEFORE_FIRST_APPLY, UPDATE, ManagedEntry,
                                           decode_entries, identity, store_entries)
from minik.api.patch.typeinfo import Schema, TypeInfo
from minik.api.patch.values import JSON, deep_copy, json_type
from minik.apis import errors
from minik.apis.schema import Schemas

KUBECTL = "kubectl"   # the field manager of `kubectl apply --server-side`
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# encoding/json escapes these even inside strings; only strings can contain them, so replacing
# them in the encoded text is safe.
_GO_JSON_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                    ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))
# Metadata the server owns; an applied configuration cannot set these (copied from `kubectl get`
# output they would otherwise overwrite live bookkeeping).
_SERVER_OWNED_METADATA = ("resourceVersion", "uid", "creationTimestamp", "generation", "managedFields",
                          "selfLink", "deletionTimestamp", "deletionGracePeriodSeconds")


def server_side_apply(live: dict[str, JSON] | None, applied: dict[str, JSON], manager: str, force: bool,
                      schemas: Schemas, schema_name: str | None, now: str) -> dict[str, JSON]:
    """Return the object after `manager` applies `applied` to `live` (None: the object is new)."""
    if not isinstance(applied, dict):
        raise errors.BadRequest(f"apply configuration must be an object, got {json_type(applied)}")
    if not manager:
        raise errors.BadRequest("PATCH requests must specify a fieldManager for server-side apply")
    types = TypeInfo(schemas)
    schema = types.root(schema_name)
    config = _clean_config(applied)
    live_view = without_managed_fields(live) if live is not None else {}
    api_version = str(applied.get("apiVersion") or (live or {}).get("apiVersion") or "")

    entries = decode_entries(((live or {}).get("metadata") or {}).get("managedFields"))
    if live is not None and not entries:
        existing, _, _ = compare(types, {}, live_view, schema)
        if existing:
            entries = [ManagedEntry(BEFORE_FIRST_APPLY, UPDATE, str(live.get("apiVersion") or api_version),
                                    now, "", to_fields_v1(existing))]

    me = identity(manager, APPLY, api_version, "")
    previous: ManagedEntry | None = None
    others: list[ManagedEntry] = []
    for entry in entries:
        if entry.identity == me and previous is None:
            previous = entry
        else:
            others.append(entry)

    merged = _merge(types, deep_copy(live_view), config, schema)
    if not isinstance(merged, dict):
        merged = {}
    owned_now = applied_fields(types, config, schema)

    other_fields = [entry.fields() for entry in others]
    if previous is not None:
        everyone = set(owned_now)
        for fields in other_fields:
            everyone |= fields
        stale = previous.fields() - everyone
        if stale:
            _prune(types, merged, schema, (), stale, _prefixes(stale), _prefixes(everyone), ())

    added, modified, removed = compare(types, live_view, merged, schema)
    changed = added | modified
    conflicts = [(entry, sorted(fields & changed)) for entry, fields in zip(others, other_fields)
                 if not fields.isdisjoint(changed)]
    if conflicts and not force and manager == KUBECTL and live is not None:
        # Kubernetes' upgrade path from client-side apply: `kubectl apply --server-side` may take
        # fields it had set before via last-applied, as long as the live values still match.
        allowed = _allowed_by_last_applied(types, live_view, schema)
        conflicts = [(entry, [p for p in paths if p not in allowed]) for entry, paths in conflicts]
        conflicts = [(entry, paths) for entry, paths in conflicts if paths]
        force = not conflicts
    if conflicts and not force:
        causes = [errors.Cause(reason="FieldManagerConflict", message=f"conflict with {_describe(entry)}",
                               field=path_string(path))
                  for entry, paths in sorted(conflicts, key=lambda c: c[0].manager) for path in paths]
        raise errors.PatchConflict(causes)

    kept: list[ManagedEntry] = []
    for entry in others:
        # With force, conflicting fields change hands; removed fields leave everyone.
        kept.append(entry.without(changed | removed if force else removed))
    time = now if (added or modified or removed or previous is None) else previous.time
    kept.append(ManagedEntry(manager, APPLY, api_version, time, "", to_fields_v1(owned_now)))
    store_entries(merged, kept)
    if manager == KUBECTL:
        _sync_last_applied(merged, applied)
    return merged


def _last_applied(obj: JSON) -> JSON:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    text = annotations.get(LAST_APPLIED) if isinstance(annotations, dict) else None
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _allowed_by_last_applied(types: TypeInfo, live: JSON, schema: Schema | None) -> set[Path]:
    """Fields named in live's last-applied annotation whose live values still equal it."""
    last = _last_applied(live)
    if not isinstance(last, dict):
        return set()
    last = _clean_config(last)
    added, modified, removed = compare(types, last, live, schema)
    return applied_fields(types, last, schema) - added - modified - removed


def _sync_last_applied(merged: dict[str, JSON], applied: dict[str, JSON]) -> None:
    """Keep an existing last-applied annotation equal to what `kubectl` just applied.

    Kubernetes does this so that client-side apply keeps working after a server-side one, and
    so kubectl's follow-up PATCH (manager kubectl-last-applied) is a no-op instead of a conflict.
    The text matches kubectl's encoding: Go's sorted, compact JSON with HTML escaping and a
    trailing newline.
    """
    meta = merged.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(annotations, dict) or LAST_APPLIED not in annotations:
        return
    config = deep_copy(applied)
    config_annotations = (config.get("metadata") or {}).get("annotations")
    if isinstance(config_annotations, dict):
        config_annotations.pop(LAST_APPLIED, None)
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in _GO_JSON_ESCAPES:
        text = text.replace(char, escaped)
    annotations[LAST_APPLIED] = text + "\n"


def _describe(entry: ManagedEntry) -> str:
    """Kubernetes' wording for a manager in conflict messages."""
    text = f'"{entry.manager}"'
    if entry.subresource:
        text += f' with subresource "{entry.subresource}"'
    if entry.operation == UPDATE:
        text += f" using {entry.api_version}"
    return text


def _clean_config(applied: dict[str, JSON]) -> dict[str, JSON]:
    config: dict[str, JSON] = deep_copy(applied)
    meta = config.get("metadata")
    if isinstance(meta, dict):
        for key in _SERVER_OWNED_METADATA:
            meta.pop(key, None)
    return config


def _merge(types: TypeInfo, live: JSON, config: JSON, schema: Schema | None) -> JSON:
    """Merge `config` into `live` (owned by the caller, edited in place where possible)."""
    if isinstance(config, dict) and isinstance(live, dict) and not types.atomic_map(schema):
        for key, value in config.items():
            if value is None:
                # An applied null means "this field is not set".
                live.pop(key, None)
            elif key in live:
                live[key] = _merge(types, live[key], value, types.field(schema, key))
            else:
                live[key] = _merge(types, None, value, types.field(schema, key))
        return live
    if isinstance(config, dict) and not types.atomic_map(schema):
        return _merge(types, {}, config, schema)
    if isinstance(config, list) and isinstance(live, list):
        shape = types.list_shape(schema)
        if shape.kind != "atomic":
            return _merge_list(types, live, config, schema)
    return deep_copy(config)


def _merge_list(types: TypeInfo, live: list[JSON], config: list[JSON], schema: Schema | None) -> list[JSON]:
    """Associative merge keeping live order for live-only items and config order for the rest."""
    shape = types.list_shape(schema)
    item_schema = types.item(schema)
    live_keys = [item_element(v, shape, i) for i, v in enumerate(live)]
    config_keys = [item_element(v, shape, i) for i, v in enumerate(config)]
    live_by_key: dict[Hashable, JSON] = {}
    for k, v in zip(live_keys, live):
        live_by_key.setdefault(k, v)
    config_pos: dict[Hashable, int] = {}
    for i, k in enumerate(config_keys):
        config_pos.setdefault(k, i)
    out: list[JSON] = []
    emitted: set[Hashable] = set()
    next_config = 0

    def emit_config_through(stop: int) -> None:
        nonlocal next_config
        while next_config <= stop:
            k = config_keys[next_config]
            if k not in emitted:
                emitted.add(k)
                base = live_by_key.get(k)
                out.append(_merge(types, base, config[next_config], item_schema) if shape.kind == "map"
                           else deep_copy(config[next_config]))
            next_config += 1

    for k, v in zip(live_keys, live):
        if k in emitted:
            continue
        at = config_pos.get(k)
        if at is None:
            emitted.add(k)
            out.append(v)
        else:
            emit_config_through(at)
    emit_config_through(len(config) - 1)
    return out


def _prefixes(paths: AbstractSet[Path]) -> set[Path]:
    out: set[Path] = set()
    for path in paths:
        for n in range(1, len(path) + 1):
            out.add(path[:n])
    return out


def _prune(types: TypeInfo, value: JSON, schema: Schema | None, path: Path, stale: AbstractSet[Path],
           stale_prefixes: set[Path], owned_prefixes: set[Path], protected: tuple[str, ...]) -> JSON:
    """Drop stale paths from `value` in place; keep nodes that still lead to an owned field."""
    if isinstance(value, dict) and not types.atomic_map(schema):
        for key in list(value):
            if key in protected:
                continue
            child = path + ("f:" + key,)
            if child in stale and child not in owned_prefixes:
                del value[key]
            elif child in stale_prefixes:
                value[key] = _prune(types, value[key], types.field(schema, key), child,
                                    stale, stale_prefixes, owned_prefixes, ())
        return value
    if isinstance(value, list):
        shape = types.list_shape(schema)
        if shape.kind == "atomic":
            return value
        item_schema = types.item(schema)
        kept: list[JSON] = []
        for i, item in enumerate(value):
            child = path + (item_element(item, shape, i),)
            if child in stale and child not in owned_prefixes:
                continue
            if child in stale_prefixes:
                # A surviving list-map item keeps its key fields, or it could not be identified.
                item = _prune(types, item, item_schema, child, stale, stale_prefixes, owned_prefixes, shape.keys)
            kept.append(item)
        return kept
    return value
