"""Validation of custom objects against a CRD version's structural openAPIV3Schema.

Follows what kube-apiserver's apiextensions validation reports: one `Cause` per failing field,
with the reasons and message phrasing of `k8s.io/apimachinery/pkg/util/validation/field`
(`Required value`, `Unsupported value: …`, `Invalid value: …: <path> in body must be of type …`).
Type errors carry the observed JSON type as the value, as kube does. Also a few structural checks
of the schema itself for CRD creation. Neighbours: the API layer calls `validate` after
`minik.apis.fields.prune`; CEL rules (`x-kubernetes-validations`) are not evaluated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from minik.apis.errors import Cause

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
TYPE_INVALID = "FieldValueTypeInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"

# At the root, TypeMeta and metadata are validated by the API machinery, not by the CRD schema.
_ROOT_MANAGED = frozenset(("apiVersion", "kind", "metadata"))
_TYPES = ("string", "integer", "number", "boolean", "object", "array")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
# RFC 3339 as Kubernetes' strfmt accepts it (fractional seconds and offset optional parts).
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?$")


def validate(schema: Mapping[str, Any], obj: Any, path: str = "") -> list[Cause]:
    """Every violation of `schema` in `obj`; `path` is the field path of `obj` itself ("" = root)."""
    out: list[Cause] = []
    _validate(schema, obj, path, out)
    return out


def validate_crd_schema(crd_version_schema: Mapping[str, Any], path: str = "openAPIV3Schema") -> list[Cause]:
    """Minimal structural checks of a CRD version's schema (`{"openAPIV3Schema": …}` or the schema)."""
    schema = crd_version_schema.get("openAPIV3Schema", crd_version_schema)
    out: list[Cause] = []
    if not isinstance(schema, dict):
        return [Cause(REQUIRED, "Required value: schema is required", path)]
    root_type = schema.get("type")
    if not root_type:
        out.append(Cause(REQUIRED, "Required value: must not be empty at the root", f"{path}.type"))
    elif root_type != "object":
        out.append(Cause(INVALID, f"Invalid value: {_quote(root_type)}: must be object at the root", f"{path}.type"))
    _check_structural(schema, path, out, root=True)
    return out


# --- values -----------------------------------------------------------------------------------


def _validate(schema: Mapping[str, Any], value: Any, path: str, out: list[Cause]) -> None:
    if value is None:
        if schema.get("nullable") is True or not _declared_type(schema):
            return
        out.append(_type_error(path, _declared_type(schema), "null"))
        return
    if schema.get("x-kubernetes-int-or-string") is True:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            out.append(_type_error(path, "integer,string", _json_type(value)))
            return
    else:
        want = schema.get("type")
        if want in _TYPES and not _is_type(value, want):
            out.append(_type_error(path, want, _json_type(value)))
            return
    before = len(out)
    _check_format(schema, value, path, out)
    if len(out) > before:
        return
    enum = schema.get("enum")
    if isinstance(enum, list) and not any(_json_equal(value, e) for e in enum):
        supported = ", ".join(_quote(e if isinstance(e, str) else json.dumps(e)) for e in enum)
        out.append(Cause(NOT_SUPPORTED, f"Unsupported value: {_show(value)}: supported values: {supported}", path))
    if isinstance(value, str):
        _check_string(schema, value, path, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _check_number(schema, value, path, out)
    elif isinstance(value, list):
        _check_array(schema, value, path, out)
    elif isinstance(value, dict):
        _validate_object(schema, value, path, out)
    _check_combinators(schema, value, path, out)


def _validate_object(schema: Mapping[str, Any], value: dict[str, Any], path: str, out: list[Cause]) -> None:
    for name in schema.get("required") or ():
        if value.get(name) is None and name not in value:
            out.append(Cause(REQUIRED, "Required value", _join(path, name)))
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if not path and key in _ROOT_MANAGED:
            continue
        sub = props.get(key) if isinstance(props, dict) else None
        if isinstance(sub, dict):
            _validate(sub, item, _join(path, key), out)
        elif isinstance(extra, dict):
            _validate(extra, item, _join(path, key), out)
    count = len(value)
    if _int(schema.get("maxProperties")) is not None and count > int(schema["maxProperties"]):
        out.append(Cause(TOO_MANY, f"Too many: {count}: must have at most {schema['maxProperties']} items", path))
    if _int(schema.get("minProperties")) is not None and count < int(schema["minProperties"]):
        out.append(_invalid(path, value, f"should have at least {schema['minProperties']} properties"))


def _check_string(schema: Mapping[str, Any], value: str, path: str, out: list[Cause]) -> None:
    # Kubernetes counts characters (runes) for min/maxLength.
    max_len = _int(schema.get("maxLength"))
    if max_len is not None and len(value) > max_len:
        unit = "byte" if max_len == 1 else "bytes"
        out.append(Cause(TOO_LONG, f"Too long: may not be more than {max_len} {unit}", path))
    min_len = _int(schema.get("minLength"))
    if min_len is not None and len(value) < min_len:
        out.append(_invalid(path, value, f"should be at least {min_len} chars long"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            matched = re.search(pattern, value) is not None
        except re.error:
            matched = True  # an unusable pattern is rejected at CRD creation, not per object
        if not matched:
            out.append(_invalid(path, value, f"should match '{pattern}'"))


def _check_number(schema: Mapping[str, Any], value: float, path: str, out: list[Cause]) -> None:
    maximum = schema.get("maximum")
    if isinstance(maximum, (int, float)):
        if schema.get("exclusiveMaximum") is True and value >= maximum:
            out.append(_invalid(path, value, f"should be less than {_num(maximum)}"))
        elif value > maximum:
            out.append(_invalid(path, value, f"should be less than or equal to {_num(maximum)}"))
    minimum = schema.get("minimum")
    if isinstance(minimum, (int, float)):
        if schema.get("exclusiveMinimum") is True and value <= minimum:
            out.append(_invalid(path, value, f"should be greater than {_num(minimum)}"))
        elif value < minimum:
            out.append(_invalid(path, value, f"should be greater than or equal to {_num(minimum)}"))
    multiple = schema.get("multipleOf")
    if isinstance(multiple, (int, float)) and multiple > 0 and (value / multiple) % 1 != 0:
        out.append(_invalid(path, value, f"should be a multiple of {_num(multiple)}"))


def _check_array(schema: Mapping[str, Any], value: list[Any], path: str, out: list[Cause]) -> None:
    max_items = _int(schema.get("maxItems"))
    if max_items is not None and len(value) > max_items:
        out.append(Cause(TOO_MANY, f"Too many: {len(value)}: must have at most {max_items} items", path))
    min_items = _int(schema.get("minItems"))
    if min_items is not None and len(value) < min_items:
        out.append(_invalid(path, value, f"should have at least {min_items} items"))
    if schema.get("uniqueItems") is True:
        seen: list[str] = []
        for i, item in enumerate(value):
            key = json.dumps(item, sort_keys=True)
            if key in seen:
                out.append(Cause(DUPLICATE, f"Duplicate value: {_show(item)}", f"{path}[{i}]"))
            seen.append(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(items, item, f"{path}[{i}]", out)


def _check_format(schema: Mapping[str, Any], value: Any, path: str, out: list[Cause]) -> None:
    fmt = schema.get("format")
    if fmt in ("int32", "int64") and isinstance(value, int) and not isinstance(value, bool):
        low, high = _INT32 if fmt == "int32" else _INT64
        if not low <= value <= high:
            out.append(_type_error(path, fmt, str(value)))
    elif fmt == "date-time" and isinstance(value, str):
        if not _DATE_TIME.match(value) or not _parses_as_datetime(value):
            out.append(_type_error(path, fmt, value))
    elif fmt == "date" and isinstance(value, str):
        try:
            date.fromisoformat(value)
        except ValueError:
            out.append(_type_error(path, fmt, value))


def _check_combinators(schema: Mapping[str, Any], value: Any, path: str, out: list[Cause]) -> None:
    for sub in schema.get("allOf") or ():
        if isinstance(sub, dict):
            _validate(sub, value, path, out)
    any_of = [s for s in schema.get("anyOf") or () if isinstance(s, dict)]
    if any_of and not any(_valid(s, value, path) for s in any_of):
        out.append(_invalid(path, value, "must validate at least one schema (anyOf)"))
    one_of = [s for s in schema.get("oneOf") or () if isinstance(s, dict)]
    if one_of and sum(1 for s in one_of if _valid(s, value, path)) != 1:
        out.append(_invalid(path, value, "must validate one and only one schema (oneOf)"))
    negated = schema.get("not")
    if isinstance(negated, dict) and _valid(negated, value, path):
        out.append(_invalid(path, value, "must not validate the schema (not)"))


def _valid(schema: Mapping[str, Any], value: Any, path: str) -> bool:
    return not validate(schema, value, path)


# --- the schema itself ------------------------------------------------------------------------


def _check_structural(schema: Mapping[str, Any], path: str, out: list[Cause], root: bool = False) -> None:
    if "$ref" in schema:
        out.append(Cause(FORBIDDEN, "Forbidden: $ref is not supported", f"{path}.$ref"))
    if schema.get("uniqueItems") is True:
        out.append(Cause(FORBIDDEN, "Forbidden: uniqueItems cannot be set to true since the runtime complexity "
                                    "becomes quadratic", f"{path}.uniqueItems"))
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            re.compile(pattern)
        except re.error as e:
            out.append(Cause(INVALID, f"Invalid value: {_quote(pattern)}: must be a valid regular expression, "
                                      f"but isn't: {e}", f"{path}.pattern"))
    type_ = schema.get("type")
    if type_ is not None and type_ not in _TYPES:
        out.append(Cause(NOT_SUPPORTED, f"Unsupported value: {_show(type_)}: supported values: "
                                        + ", ".join(_quote(t) for t in _TYPES), f"{path}.type"))
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if isinstance(props, dict) and isinstance(extra, dict):
        out.append(Cause(FORBIDDEN, "Forbidden: additionalProperties and properties are mutual exclusive",
                         f"{path}.additionalProperties"))
    if isinstance(props, dict):
        for name, sub in props.items():
            sub_path = f"{path}.properties[{name}]"
            if not isinstance(sub, dict):
                out.append(Cause(INVALID, "Invalid value: must be a schema object", sub_path))
                continue
            _require_type(sub, sub_path, out, "must not be empty for specified object fields")
            _check_structural(sub, sub_path, out)
    items = schema.get("items")
    if isinstance(items, list):
        out.append(Cause(FORBIDDEN, "Forbidden: items must be a schema object and not an array", f"{path}.items"))
    elif isinstance(items, dict):
        _require_type(items, f"{path}.items", out, "must not be empty for specified array items")
        _check_structural(items, f"{path}.items", out)
    elif type_ == "array":
        out.append(Cause(REQUIRED, "Required value: must be specified", f"{path}.items"))
    if isinstance(extra, dict):
        _require_type(extra, f"{path}.additionalProperties", out, "must not be empty for specified object fields")
        _check_structural(extra, f"{path}.additionalProperties", out)


def _require_type(schema: Mapping[str, Any], path: str, out: list[Cause], message: str) -> None:
    untyped_ok = (schema.get("x-kubernetes-int-or-string") is True
                  or schema.get("x-kubernetes-preserve-unknown-fields") is True)
    if not schema.get("type") and not untyped_ok:
        out.append(Cause(REQUIRED, f"Required value: {message}", f"{path}.type"))


# --- helpers ----------------------------------------------------------------------------------


def _declared_type(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string") is True:
        return "integer,string"
    t = schema.get("type")
    return t if isinstance(t, str) else ""


def _is_type(value: Any, want: str) -> bool:
    if want == "string":
        return isinstance(value, str)
    if want == "boolean":
        return isinstance(value, bool)
    if want == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if want == "object":
        return isinstance(value, dict)
    return isinstance(value, list)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return bool(a == b)


def _type_error(path: str, want: str, got: str) -> Cause:
    # kube passes the observed type as the bad value: `Invalid value: "string": … "string"`.
    return Cause(TYPE_INVALID, f"Invalid value: {_quote(got)}: {path or '<root>'} in body must be of type {want}: {_quote(got)}", path)


def _invalid(path: str, value: Any, detail: str) -> Cause:
    return Cause(INVALID, f"Invalid value: {_show(value)}: {path or '<root>'} in body {detail}", path)


def _show(value: Any) -> str:
    """A bad value the way field.Error prints it: strings quoted, numbers bare, others as JSON."""
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _num(value)
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _quote(value: Any) -> str:
    return json.dumps(str(value))


def _num(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parses_as_datetime(value: str) -> bool:
    text = value.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True
