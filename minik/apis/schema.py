"""Kubernetes v1.32 type knowledge (schemas, descriptions, patch strategies) from `kubernetes-validate`.

The package ships the published v1.32 OpenAPI definitions as JSON Schema; minik reads them
lazily, once, and keeps one shared index. Neighbours: `minik.api.openapi` (serves them),
`minik.apis.fields` (unknown-field detection), `minik.api.patch.strategic` (merge keys).
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

_T = TypeVar("_T")

KUBE_SCHEMA_VERSION = "v1.32.0-local"
REF_PREFIX = "#/$defs/"


def _package_dir(package: str) -> Path:
    """Where an installed package's files are, found without importing it: importing
    kubernetes_validate loads jsonschema, referencing and rpds (~1.5 MB RSS), none of which
    minik uses; only its data files are read."""
    spec = importlib.util.find_spec(package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed", name=package)
    return Path(locations[0])


class Schemas:
    """Index of definitions by name (e.g. ``io.k8s.api.apps.v1.Deployment``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, frozenset[str]] = {}
        self._derived: dict[str, Any] = {}

    @cached_property
    def definitions(self) -> dict[str, Any]:
        with self._lock:
            root = _package_dir("kubernetes_validate") / "kubernetes-json-schema" / KUBE_SCHEMA_VERSION / "_definitions.json"
            # Bytes straight into the decoder: no intermediate 1.3 MB str copy.
            defs: dict[str, Any] = json.loads(root.read_bytes())["$defs"]
            return defs

    def definition(self, name: str) -> dict[str, Any] | None:
        return self.definitions.get(name)

    @staticmethod
    def ref_name(ref: str) -> str:
        """'#/$defs/io.k8s.api.core.v1.PodSpec' or '/api/_definitions.json#/$defs/…' → definition name."""
        return ref.rsplit("/", 1)[-1]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow a `$ref` (one level) to its definition; return the schema itself otherwise."""
        ref = schema.get("$ref")
        if isinstance(ref, str):
            found: dict[str, Any] = self.definitions.get(self.ref_name(ref), {})
            return found
        return schema

    # --- extensions (added for minik.api.openapi and minik.apis.fields) ---------------------------

    def references(self, name: str) -> frozenset[str]:
        """Names of the definitions that `name` refers to directly (cached per definition)."""
        found = self._refs.get(name)
        if found is None:
            out: set[str] = set()
            _collect_refs(self.definitions.get(name, {}), out)
            found = self._refs[name] = frozenset(out)
        return found

    def closure(self, roots: Iterable[str]) -> list[str]:
        """`roots` plus every definition they reach through `$ref`, sorted; unknown names are dropped."""
        seen: set[str] = set()
        todo = [r for r in roots if r in self.definitions]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(r for r in self.references(name) if r not in seen and r in self.definitions)
        return sorted(seen)

    def by_gvk(self, group: str, version: str, kind: str) -> str | None:
        """Definition name whose `x-kubernetes-group-version-kind` lists exactly this GVK."""
        return self.derived("schema.gvk-index", self._gvk_index).get((group, version, kind))

    def derived(self, key: str, factory: Callable[[], _T]) -> _T:
        """Memo for indices that neighbours derive from the definitions (built once per instance).

        It lets `fields` and the patch code share caches through the one Schemas object they are
        given instead of module globals.
        """
        try:
            value: _T = self._derived[key]
        except KeyError:
            value = self._derived[key] = factory()
        return value

    def _gvk_index(self) -> dict[tuple[str, str, str], str]:
        index: dict[tuple[str, str, str], str] = {}
        for name, schema in self.definitions.items():
            gvks = schema.get("x-kubernetes-group-version-kind") or []
            # Shared meta kinds (DeleteOptions, WatchEvent) list every group; a kind's own
            # definition lists one GVK, so it wins over them.
            for gvk in gvks:
                key = (gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", ""))
                if len(gvks) == 1 or key not in index:
                    index[key] = name
        return index


def _collect_refs(schema: Any, out: set[str]) -> None:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                out.add(Schemas.ref_name(value))
            elif key == "properties" and isinstance(value, dict):
                # Property names are data, not keywords: JSONSchemaProps has a property literally
                # named "x-kubernetes-validations" whose schema must be followed.
                for prop in value.values():
                    _collect_refs(prop, out)
            elif not key.startswith("x-") and key not in ("enum", "default", "description"):
                _collect_refs(value, out)
    elif isinstance(schema, list):
        for item in schema:
            _collect_refs(item, out)
