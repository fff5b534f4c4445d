"""Unknown-field detection for `fieldValidation=Strict|Warn`, and pruning of custom objects.

Built-in kinds are checked against the v1.32 definitions in `minik.apis.schema.Schemas`: each
definition is compiled once into a small shape tree (struct / list / map / leaf) cached on the
Schemas instance, so a check is one walk over the object. Custom objects are checked, or pruned
as kube-apiserver prunes them, against the CRD's structural openAPIV3Schema.

Paths are reported the way kube-apiserver's strict decoder spells them:
`spec.template.spec.containers[0].imagee`, map entries as `.key`.
Neighbours: the API layer's create/update/patch handlers call these; `minik.apis.crdschema`
validates values of custom objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Union

from minik.apis.schema import Schemas

_INDEX_KEY = "fields.shapes"
# Every object carries these at the root whatever its schema says (TypeMeta).
_TYPE_META = frozenset(("apiVersion", "kind"))
_EMBEDDED = frozenset(("apiVersion", "kind", "metadata"))


@dataclass(frozen=True, slots=True)
class _Struct:
    props: Mapping[str, _Shape]


@dataclass(frozen=True, slots=True)
class _ListOf:
    item: _Shape


@dataclass(frozen=True, slots=True)
class _MapOf:
    value: _Shape


@dataclass(frozen=True, slots=True)
class _Ref:
    name: str


@dataclass(frozen=True, slots=True)
class _Leaf:
    """Scalars, int-or-string, and free-form objects (RawExtension, FieldsV1): nothing to check."""


_LEAF = _Leaf()
_Shape = Union[_Struct, _ListOf, _MapOf, _Ref, _Leaf]


def unknown_fields(schemas: Schemas, schema_name: str, obj: Any) -> list[str]:
    """Dotted paths of fields in `obj` that the definition `schema_name` does not declare."""
    shapes: dict[str, _Shape] = schemas.derived(_INDEX_KEY, dict)
    out: list[str] = []
    if isinstance(obj, dict):
        root = _shape_of(schemas, shapes, schema_name)
        if isinstance(root, _Struct):
            _walk_struct(schemas, shapes, root, obj, "", out, skip=_TYPE_META)
        else:
            _walk(schemas, shapes, root, obj, "", out)
    return _dedupe(out)


def unknown_fields_in_schema(schema: Mapping[str, Any], obj: Any) -> list[str]:
    """Paths in a custom object that its CRD's openAPIV3Schema would prune."""
    out: list[str] = []
    _crd_walk(schema, obj, "", out, prune=False, root=True)
    return _dedupe(out)


def prune(schema: Mapping[str, Any], obj: Any) -> list[str]:
    """Remove, in place, the fields kube-apiserver prunes from a custom object; return their paths."""
    out: list[str] = []
    _crd_walk(schema, obj, "", out, prune=True, root=True)
    return _dedupe(out)


# --- built-in kinds ---------------------------------------------------------------------------


def _shape_of(schemas: Schemas, shapes: dict[str, _Shape], name: str) -> _Shape:
    shape = shapes.get(name)
    if shape is None:
        definition = schemas.definition(name)
        shape = shapes[name] = _compile(definition) if definition is not None else _LEAF
    return shape


def _compile(schema: Mapping[str, Any]) -> _Shape:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return _Ref(Schemas.ref_name(ref))
    if schema.get("x-kubernetes-preserve-unknown-fields") is True:
        return _LEAF
    props = schema.get("properties")
    if isinstance(props, dict):
        return _Struct({k: _compile(v) for k, v in props.items()})
    items = schema.get("items")
    if isinstance(items, dict):
        return _ListOf(_compile(items))
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return _MapOf(_compile(extra))
    return _LEAF


def _walk(schemas: Schemas, shapes: dict[str, _Shape], shape: _Shape, value: Any, path: str, out: list[str]) -> None:
    while isinstance(shape, _Ref):
        shape = _shape_of(schemas, shapes, shape.name)
    if isinstance(shape, _Struct):
        if isinstance(value, dict):
            _walk_struct(schemas, shapes, shape, value, path, out)
    elif isinstance(shape, _ListOf):
        if isinstance(value, list) and not isinstance(shape.item, _Leaf):
            for i, item in enumerate(value):
                _walk(schemas, shapes, shape.item, item, f"{path}[{i}]", out)
    elif isinstance(shape, _MapOf):
        if isinstance(value, dict) and not isinstance(shape.value, _Leaf):
            for key, item in value.items():
                _walk(schemas, shapes, shape.value, item, _join(path, key), out)


def _walk_struct(schemas: Schemas, shapes: dict[str, _Shape], shape: _Struct, value: dict[str, Any], path: str,
                 out: list[str], skip: frozenset[str] = frozenset()) -> None:
    props = shape.props
    for key, item in value.items():
        child = props.get(key)
        if child is None:
            if key not in skip:
                out.append(_join(path, key))
        elif not isinstance(child, _Leaf) and item is not None:
            _walk(schemas, shapes, child, item, _join(path, key), out)


# --- custom resources (structural schemas) ----------------------------------------------------


def _crd_walk(schema: Mapping[str, Any], value: Any, path: str, out: list[str], *, prune: bool, root: bool = False) -> None:
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if schema.get("type") != "object" and props is None and extra is None:
            return  # a type error for crdschema.validate to report, not something to prune
        preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
        # Root and embedded resources always keep TypeMeta and metadata; metadata is ObjectMeta
        # and checked as such by the caller, not pruned by the CRD schema.
        skip = _EMBEDDED if root or schema.get("x-kubernetes-embedded-resource") is True else frozenset()
        if isinstance(extra, dict) and not isinstance(props, dict):
            for key, item in value.items():
                _crd_walk(extra, item, _join(path, key), out, prune=prune)
            return
        props = props if isinstance(props, dict) else {}
        free = preserve or extra is True
        for key in list(value):
            sub = props.get(key)
            if sub is None:
                if key in skip or free:
                    continue
                out.append(_join(path, key))
                if prune:
                    del value[key]
            elif isinstance(sub, dict):
                _crd_walk(sub, value[key], _join(path, key), out, prune=prune)
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _crd_walk(items, item, f"{path}[{i}]", out, prune=prune)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _dedupe(paths: list[str]) -> list[str]:
    return list(dict.fromkeys(paths))
