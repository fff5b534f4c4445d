"""Kubernetes v1.32 type knowledge (schemas, descriptions, patch strategies) from `kubernetes-validate`.

The package ships the published v1.32 OpenAPI definitions as JSON Schema; minik reads them
lazily, once, and keeps one shared index. Neighbours: `minik.api.openapi` (serves them),
`minik.apis.fields` (unknown-field detection), `minik.api.patch.strategic` (merge keys).
"""

from __future__ import annotations

import json
import threading
from functools import cached_property
from importlib import resources
from typing import Any

KUBE_SCHEMA_VERSION = "v1.32.0-local"
REF_PREFIX = "#/$defs/"


class Schemas:
    """Index of definitions by name (e.g. ``io.k8s.api.apps.v1.Deployment``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @cached_property
    def definitions(self) -> dict[str, Any]:
        with self._lock:
            root = resources.files("kubernetes_validate") / "kubernetes-json-schema" / KUBE_SCHEMA_VERSION / "_definitions.json"
            defs: dict[str, Any] = json.loads(root.read_text())["$defs"]
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
            return self.definitions.get(self.ref_name(ref), {})
        return schema
