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


@dataclass(frozen=True, slots=True)
class _Node:
    """Everything the walkers ask about one schema node, computed once."""

    properties: Mapping[str, Schema]
    extra: Schema | None            # additionalProperties
    item: Schema | None
    struct: bool
    atomic_map: bool
    shape: ListShape
    patch: PatchMeta


_EMPTY: Mapping[str, Schema] = {}
# Key under which the compiled nodes live in `Schemas.derived`, shared by every walk.
_CACHE_KEY = "minik.api.patch.typeinfo.nodes"


class TypeInfo:
    """Schema lookups for one walk, memoised per schema node in the shared `Schemas`.

    Nodes are keyed by the identity of the schema dict; the definitions are loaded once and
    never released, so identities are stable. Property names are looked up in the node's own
    `properties`, so arbitrary data keys (labels, ConfigMap data) never grow the cache.
    """

    __slots__ = ("_schemas", "_nodes")

    def __init__(self, schemas: Schemas | None) -> None:
        self._schemas = schemas
        self._nodes: dict[int, tuple[Schema, _Node]] = (
            schemas.derived(_CACHE_KEY, dict) if schemas is not None else {})

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

    def _node(self, schema: Schema) -> _Node:
        cached = self._nodes.get(id(schema))
        if cached is not None and cached[0] is schema:
            return cached[1]
        node = self._compile(schema)
        # The schema itself is kept alongside so its id cannot be reused by another dict.
        self._nodes[id(schema)] = (schema, node)
        return node

    def _compile(self, schema: Schema) -> _Node:
        resolved = self.resolve(schema) or {}
        props = resolved.get("properties")
        extra = resolved.get("additionalProperties")
        items = resolved.get("items")
        return _Node(
            properties=props if isinstance(props, Mapping) else _EMPTY,
            extra=extra if isinstance(extra, Mapping) else None,
            item=items if isinstance(items, Mapping) else None,
            struct=bool(props) and not extra,
            atomic_map=self._ext(schema, "x-kubernetes-map-type") == "atomic",
            shape=self._list_shape(schema),
            patch=self._patch_meta(schema),
        )

    def _ext(self, schema: Schema, name: str) -> Any:
        """An extension from the property itself, else from the definition it refers to."""
        value = schema.get(name)
        if value is None and ("$ref" in schema or "allOf" in schema):
            resolved = self.resolve(schema)
            if resolved is not None:
                value = resolved.get(name)
        return value

    def field(self, schema: Schema | None, key: str) -> Schema | None:
        """Schema of `key` inside an object schema (named property, else additionalProperties)."""
        if schema is None:
            return None
        node = self._node(schema)
        child = node.properties.get(key)
        return child if child is not None else node.extra

    def item(self, schema: Schema | None) -> Schema | None:
        return self._node(schema).item if schema is not None else None

    def is_struct(self, schema: Schema | None) -> bool:
        """An object type with named properties (a Go struct), as opposed to a string-keyed map."""
        return schema is not None and self._node(schema).struct

    def atomic_map(self, schema: Schema | None) -> bool:
        return schema is not None and self._node(schema).atomic_map

    def list_shape(self, schema: Schema | None) -> ListShape:
        return self._node(schema).shape if schema is not None else ATOMIC

    def patch_meta(self, schema: Schema | None) -> PatchMeta:
        return self._node(schema).patch if schema is not None else NO_PATCH_META

    def _list_shape(self, schema: Schema) -> ListShape:
        """List semantics for apply/managedFields.

        `x-kubernetes-list-type` wins; without it, a merge patch strategy implies the same
        association (merge key → map, no key → set), as Kubernetes' schema conversion does.
        """
        list_type = self._ext(schema, "x-kubernetes-list-type")
        if list_type == "map":
            keys = self._ext(schema, "x-kubernetes-list-map-keys") or [self._ext(schema, "x-kubernetes-patch-merge-key")]
            keys = tuple(k for k in keys if isinstance(k, str))
            return ListShape("map", keys) if keys else ATOMIC
        if list_type == "set":
            return ListShape("set")
        if list_type == "atomic":
            return ATOMIC
        meta = self._patch_meta(schema)
        if meta.merge:
            return ListShape("map", (meta.merge_key,)) if meta.merge_key else ListShape("set")
        return ATOMIC

    def _patch_meta(self, schema: Schema) -> PatchMeta:
        strategy = self._ext(schema, "x-kubernetes-patch-strategy")
        key = self._ext(schema, "x-kubernetes-patch-merge-key")
        if not isinstance(strategy, str) and not isinstance(key, str):
            return NO_PATCH_META
        strategies = frozenset(s.strip() for s in strategy.split(",")) if isinstance(strategy, str) else frozenset()
        return PatchMeta(strategies, key if isinstance(key, str) else None)
