"""Plain JSON values (dict/list/str/number/bool/None) as every patch algorithm sees them.

Holds the one deep copy the patch package uses: the algorithms promise never to mutate their
inputs, so each starts from a private copy and then edits it in place. `copy.deepcopy` is several
times slower on JSON trees (memo dict, reduce protocol), which matters on every write.
Neighbours: used by `merge`, `jsonpatch`, `strategic`, `apply`.
"""

from __future__ import annotations

from typing import Any

JSON = Any  # a decoded JSON document; precise recursive aliases make mypy slower, not safer


def deep_copy(value: JSON) -> JSON:
    """Copy a JSON tree: new dicts and lists, shared immutable leaves."""
    if isinstance(value, dict):
        return {k: deep_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deep_copy(v) for v in value]
    return value


def json_type(value: JSON) -> str:
    """The JSON type name, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
