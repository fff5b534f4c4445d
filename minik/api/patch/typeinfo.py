"""Structural questions about a Kubernetes OpenAPI schema node, asked while walking data.

Every walker in this package (strategic merge, server-side apply, managedFields) walks the data
and the schema side by side: for a dict key it asks for the property's schema, for a list it asks
how the list merges. The answers come from the `x-kubernetes-*` extensions of the v1.32
definitions in `minik.apis.schema.Schemas`. Extensions may sit on the property next to a `$ref`
(``strategy: {$ref: DeploymentStrategy, x-kubernetes-patch-strategy: retainKeys}``) or on the
referenced definition (``LabelSelector: x-kubernetes-map-type: atomic``), so both are consulted.

A missing schema (`None`) means "unknown": maps are granular, lists are atomic and replaced,
which is also what Kubernetes does for fields it has no structure for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from minik.apis.schema import Schemas

Schema = Mapping[str, Any]

# Resolving `$ref` chains deeper than this means a broken schema, not a real type.
_MAX_REF_DEPTH = 8


@dataclass(frozen=True, slots=True)
class ListShape:
    """How server-side apply identifies list elements: `x-kubernetes-list-type` semantics."""

    kind: str                      # "atomic" | "set" | "map"
    keys: tuple[str, ...] = ()     # x-kubernetes-list-map-keys when kind == "map"


@dataclass(frozen=True, slots=True)
class PatchMeta:
    """How strategic merge patch treats a field: x-kubernetes-patch-strategy / -merge-key."""

    strategies: frozenset[str]     # subset of {"merge", "replace", "retainKeys"}
    merge_key: str | None

    @property
    def merge(self) -> bool:
        return "merge" in self.strategies


ATOMIC = ListShape("atomic")
NO_PATCH_META = PatchMeta(frozenset(), None)


class TypeInfo:
    """Schema lookups for one walk. Cheap to build; holds no state beyond the shared `Schemas`."""

    __slots__ = ("_schemas",)

    def __init__(self, schemas: Schemas | None) -> None:
        self._schemas = schemas

    def root(self, name: str | None) -> Schema | None:
        if self._schemas is None or not name:
            return None
        return self._schemas.definition(name)

    def resolve(self, schema: Schema | None) -> Schema | None:
        """Follow `$ref` (and a lone `allOf: [{$ref}]`) to the definition."""
        depth = 0
        while schema is not None and depth < _MAX_REF_DEPTH:
            ref = schema.get("$ref")
            if isinstance(ref, str) and self._schemas is not None:
                schema = self._schemas.definition(self._schemas.ref_name(ref))
            else:
                all_of = schema.get("allOf")
                if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], Mapping):
                    schema = all_of[0]
                else:
                    return schema
            depth += 1
        return schema

    def _ext(self, schema: Schema | None, name: str) -> Any:
        """An extension from the property itself, else from the definition it refers to."""
        if schema is None:
            return None
        value = schema.get(name)
        if value is None and ("$ref" in schema or "allOf" in schema):
            resolved = self.resolve(schema)
            if resolved is not None:
                value = resolved.get(name)
        return value

    def field(self, schema: Schema | None, key: str) -> Schema | None:
        """Schema of `key` inside an object schema (named property, else additionalProperties)."""
        resolved = self.resolve(schema)
        if resolved is None:
            return None
        props = resolved.get("properties")
        if props is not None:
            child = props.get(key)
            if child is not None:
                return child  # type: ignore[no-any-return]
        extra = resolved.get("additionalProperties")
        if isinstance(extra, Mapping):
            return extra
        return None

    def item(self, schema: Schema | None) -> Schema | None:
        resolved = self.resolve(schema)
        if resolved is None:
            return None
        items = resolved.get("items")
        return items if isinstance(items, Mapping) else None

    def is_struct(self, schema: Schema | None) -> bool:
        """An object type with named properties (a Go struct), as opposed to a string-keyed map."""
        resolved = self.resolve(schema)
        return resolved is not None and bool(resolved.get("properties")) and not resolved.get("additionalProperties")

    def atomic_map(self, schema: Schema | None) -> bool:
        return bool(self._ext(schema, "x-kubernetes-map-type") == "atomic")

    def list_shape(self, schema: Schema | None) -> ListShape:
        """List semantics for apply/managedFields.

        `x-kubernetes-list-type` wins; without it, a merge patch strategy implies the same
        association (merge key → map, no key → set), as Kubernetes' schema conversion does.
        """
        if schema is None:
            return ATOMIC
        list_type = self._ext(schema, "x-kubernetes-list-type")
        if list_type == "map":
            keys = self._ext(schema, "x-kubernetes-list-map-keys") or [self._ext(schema, "x-kubernetes-patch-merge-key")]
            keys = tuple(k for k in keys if isinstance(k, str))
            return ListShape("map", keys) if keys else ATOMIC
        if list_type == "set":
            return ListShape("set")
        if list_type == "atomic":
            return ATOMIC
        meta = self.patch_meta(schema)
        if meta.merge:
            return ListShape("map", (meta.merge_key,)) if meta.merge_key else ListShape("set")
        return ATOMIC

    def patch_meta(self, schema: Schema | None) -> PatchMeta:
        if schema is None:
            return NO_PATCH_META
        strategy = self._ext(schema, "x-kubernetes-patch-strategy")
        key = self._ext(schema, "x-kubernetes-patch-merge-key")
        if not isinstance(strategy, str) and not isinstance(key, str):
            return NO_PATCH_META
        strategies = frozenset(s.strip() for s in strategy.split(",")) if isinstance(strategy, str) else frozenset()
        return PatchMeta(strategies, key if isinstance(key, str) else None)
