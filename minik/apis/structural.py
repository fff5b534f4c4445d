"""Structural validation of built-in objects against the Kubernetes v1.32 OpenAPI definitions.

kube-apiserver decodes every write into Go structs before anything else looks at it, so an
integer field holding `"s"`, a list holding `1` or a timestamp that is not RFC 3339 never reaches
validation, the store or a controller. minik keeps objects as JSON dicts; this module is the
equivalent gate: each definition of `minik.apis.schema.Schemas` is compiled once (lazily, per
definition, cached on the Schemas instance) into a tree of small checkers, and one walk over an
object reports every value whose JSON type, format (int32/int64 range, date-time, byte),
int-or-string or quantity shape does not fit, plus non-finite numbers anywhere (JSON has none;
YAML's `.inf`/`.nan` and Python callers can produce them). `required` is not enforced by default,
as kube-apiserver does not enforce it when decoding: the definitions mark fields required that
defaulting fills in afterwards (a Job's `podFailurePolicy…onPodConditions[].status` defaults to
"True"), and an omitted struct is its zero value; the kind's validation (`minik.apis.validation`)
checks what must be present after defaulting. `required=True` enforces it on list elements.

Errors are `Cause`s worded as kube's structural schema validation words them, e.g.
`spec.priority: Invalid value: "string": spec.priority in body must be of type integer: "string"`.
The walk allocates nothing on the success path: a checker returns None, and only failures build
their field path on the way back up.

Null is accepted for properties (Go leaves the field unset; defaulting and validation treat it as
absent) but not as a list item or map value, where code reading the object would meet it.

Neighbours: `minik.api.service` calls `StructuralValidator.validate` on every create and on the
merged object of every update/patch/apply, before defaulting and the kind's own validation
(`minik.apis.validation`); custom resources are checked by `minik.apis.crdschema` against their
CRD, and here only for `metadata` and non-finite numbers.
"""

from __future__ import annotations

import binascii
import math
import re
from collections.abc import Callable
from typing import Any, Optional

from minik.apis.errors import Cause
from minik.apis.quantity import Quantity, QuantityError
from minik.apis.schema import Schemas

TYPE_INVALID = "FieldValueTypeInvalid"
INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"

OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
_CACHE_KEY = "structural.checkers"
# Stop collecting after this many failures: one bad request must not build a huge Status.
MAX_CAUSES = 50
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


class _Err:
    """One failure; `segs` grows (reversed) as the walk unwinds to the root."""

    __slots__ = ("segs", "want", "got", "detail", "reason")

    def __init__(self, reason: str, want: str = "", got: str = "", detail: str = "") -> None:
        self.segs: list[str] = []
        self.reason, self.want, self.got, self.detail = reason, want, got, detail

    def path(self) -> str:
        out = ""
        for seg in reversed(self.segs):
            if seg.startswith("["):
                out += seg
            else:
                out = f"{out}.{seg}" if out else seg
        return out

    def cause(self, prefix: str) -> Cause:
        path = self.path()
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        shown = path or "<root>"
        if self.reason == REQUIRED:
            return Cause(REQUIRED, "Required value", path)
        if self.reason == TYPE_INVALID:
            return Cause(TYPE_INVALID, f"Invalid value: {_q(self.got)}: {shown} in body must be of type {self.want}: {_q(self.got)}", path)
        return Cause(INVALID, f"Invalid value: {self.got}: {shown} in body {self.detail}", path)


Errs = Optional[list[_Err]]
Check = Callable[[Any], Errs]


def _q(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{out}"'


def json_type(value: Any) -> str:
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
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_err(want: str, value: Any) -> list[_Err]:
    return [_Err(TYPE_INVALID, want, json_type(value))]


def _non_finite(value: float) -> list[_Err]:
    return [_Err(INVALID, got=repr(value), detail="must be a finite number")]


# ---- leaf checkers ---------------------------------------------------------------------------

def _any(value: Any) -> Errs:
    """Free-form values (RawExtension, JSON, FieldsV1): only non-finite numbers are refused."""
    if isinstance(value, float):
        return None if math.isfinite(value) else _non_finite(value)
    if not isinstance(value, (dict, list)):
        return None
    # Iterative: free-form values have no schema to bound their depth.
    stack: list[tuple[Any, list[str]]] = [(value, [])]
    while stack:
        cur, segs = stack.pop()
        items = cur.items() if isinstance(cur, dict) else ((f"[{i}]", v) for i, v in enumerate(cur))
        for k, v in items:
            if isinstance(v, float) and not math.isfinite(v):
                err = _non_finite(v)[0]
                err.segs = [str(k)] + list(reversed(segs))
                return [err]
            if isinstance(v, (dict, list)):
                stack.append((v, segs + [str(k)]))
    return None


def _string(value: Any) -> Errs:
    return None if value is None or isinstance(value, str) else _type_err("string", value)


def _date_time(value: Any) -> Errs:
    if value is None:
        return None
    if not isinstance(value, str):
        return _type_err("string", value)
    if not _DATE_TIME.match(value):
        return [_Err(INVALID, got=_q(value), detail="must be a date-time (RFC 3339)")]
    return None


def _byte(value: Any) -> Errs:
    if value is None:
        return None
    if not isinstance(value, str):
        return _type_err("string", value)
    try:
        # Go's base64.StdEncoding ignores line breaks (`base64` wraps at 76 columns).
        binascii.a2b_base64(value.replace("\n", "").replace("\r", "").encode("ascii"), strict_mode=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return [_Err(INVALID, got=_q(value[:64]), detail="must be base64 encoded")]
    return None


def _integer(bounds: tuple[int, int], fmt: str) -> Check:
    low, high = bounds

    def check(value: Any) -> Errs:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            return _type_err("integer", value)
        if not low <= value <= high:
            return [_Err(INVALID, got=str(value), detail=f"must fit in {fmt}")]
        return None
    return check


def _number(value: Any) -> Errs:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _type_err("number", value)
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value)
    return None


def _boolean(value: Any) -> Errs:
    return None if value is None or isinstance(value, bool) else _type_err("boolean", value)


def _int_or_string(value: Any) -> Errs:
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return _type_err("integer,string", value)
    return None


def _quantity(value: Any) -> Errs:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return _type_err("string,number", value)
    if isinstance(value, float) and not math.isfinite(value):
        return _non_finite(value)
    try:
        Quantity.parse(value)
    except (QuantityError, ValueError, ArithmeticError):
        shown = _q(value) if isinstance(value, str) else repr(value)
        return [_Err(INVALID, got=shown[:80], detail="quantities must match the regular expression "
                     "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")]
    return None


# ---- composite checkers ----------------------------------------------------------------------

def _array(item: Check) -> Check:
    def check(value: Any) -> Errs:
        if value is None:
            return None
        if not isinstance(value, list):
            return _type_err("array", value)
        out: Errs = None
        for i, v in enumerate(value):
            errs = item(v) if v is not None else _null_item()
            if errs:
                for e in errs:
                    e.segs.append(f"[{i}]")
                out = (out or []) + errs
                if len(out) >= MAX_CAUSES:
                    break
        return out
    return check


def _null_item() -> list[_Err]:
    return [_Err(TYPE_INVALID, "non-null", "null")]


def _map(value_check: Check) -> Check:
    def check(value: Any) -> Errs:
        if value is None:
            return None
        if not isinstance(value, dict):
            return _type_err("object", value)
        out: Errs = None
        for k, v in value.items():
            errs = value_check(v) if v is not None else _null_item()
            if errs:
                for e in errs:
                    e.segs.append(str(k))
                out = (out or []) + errs
                if len(out) >= MAX_CAUSES:
                    break
        return out
    return check


def _struct(props: dict[str, Check], required: tuple[str, ...]) -> Check:
    def check(value: Any) -> Errs:
        if value is None:
            return None
        if not isinstance(value, dict):
            return _type_err("object", value)
        out: Errs = None
        for k, v in value.items():
            sub = props.get(k)
            if sub is None or v is None:
                continue   # unknown fields are minik.apis.fields' business
            errs = sub(v)
            if errs:
                for e in errs:
                    e.segs.append(k)
                out = (out or []) + errs
                if len(out) >= MAX_CAUSES:
                    return out
        for name in required:
            if value.get(name) is None:
                e = _Err(REQUIRED)
                e.segs.append(name)
                out = (out or []) + [e]
        return out
    return check


# ---- compilation -----------------------------------------------------------------------------

class StructuralValidator:
    """Checkers compiled from the definitions, one per definition name, built on first use."""

    def __init__(self, schemas: Schemas, *, required: bool = False) -> None:
        self.schemas, self.required = schemas, required
        self._checks: dict[str, Check] = schemas.derived(f"{_CACHE_KEY}.{required}", dict)
        # Status is written by controllers and agents with Go's zero-value habits (a field the
        # schema marks required may be omitted when zero), so `required` is only enforced
        # outside `status` (and there only on list elements, see `_compile`).
        self._status = self if not required else StructuralValidator(schemas, required=False)

    def validate(self, schema_name: str, obj: Any, *, skip: frozenset[str] = frozenset()) -> list[Cause]:
        """Causes for `obj` against the definition (empty when it fits or the name is unknown).

        `skip` names root properties left to another checker (e.g. `status` on a create, which
        the API drops anyway)."""
        if self.schemas.definition(schema_name) is None:
            return self.free_form(obj)
        status: Any = None
        if isinstance(obj, dict) and (skip or "status" in obj):
            status = None if "status" in skip else obj.get("status")
            obj = {k: v for k, v in obj.items() if k not in skip and k != "status"}
        errs = self.checker(schema_name)(obj)
        out = [e.cause("") for e in errs[:MAX_CAUSES]] if errs else []
        if status is not None:
            prop = ((self.schemas.definition(schema_name) or {}).get("properties") or {}).get("status")
            if isinstance(prop, dict):
                ref = prop.get("$ref")
                check = self._status.checker(Schemas.ref_name(ref)) if isinstance(ref, str) else self._status._compile(prop)
                serrs = check(status)
                out += [e.cause("status") for e in serrs[:MAX_CAUSES]] if serrs else []
        return out

    def validate_metadata(self, obj: Any) -> list[Cause]:
        """For custom resources: ObjectMeta structurally, and no non-finite number anywhere."""
        if not isinstance(obj, dict):
            return []
        out: list[Cause] = []
        md = obj.get("metadata")
        if md is not None:
            errs = self.checker(OBJECT_META)(md)
            out += [e.cause("metadata") for e in errs[:MAX_CAUSES]] if errs else []
        rest = {k: v for k, v in obj.items() if k != "metadata"}
        return out + self.free_form(rest)

    def free_form(self, obj: Any) -> list[Cause]:
        errs = _any(obj)
        return [e.cause("") for e in errs] if errs else []

    def checker(self, name: str, item: bool = False) -> Check:
        """The checker of a definition; `item`: as an element of a list (required enforced)."""
        key = f"{name}[]" if item and self.required else name
        found = self._checks.get(key)
        if found is None:
            # Recursive definitions (JSONSchemaProps refers to itself): register a trampoline first.
            slot: list[Check] = []

            def late(value: Any) -> Errs:
                return slot[0](value)
            self._checks[key] = late
            built = self._compile(self.schemas.definition(name) or {}, name, item=item)
            slot.append(built)
            self._checks[key] = found = built
        return found

    def _compile(self, schema: dict[str, Any], name: str = "", *, item: bool = False) -> Check:
        """`item`: the schema of a list element. Kubernetes does not enforce `required` when it
        decodes (an omitted struct is its zero value, and e.g. a NetworkPolicy without
        `podSelector` is valid); the required fields of list elements, though, are their
        identities and essentials (a container's name, an ownerReference's uid, a port number,
        a rule's verbs), which kube's validation always insists on, so they are checked here."""
        if name == _QUANTITY:
            return _quantity
        if name == _INT_OR_STRING:
            return _int_or_string
        ref = schema.get("$ref")
        if isinstance(ref, str):
            target = Schemas.ref_name(ref)
            if target == _QUANTITY:
                return _quantity
            if target == _INT_OR_STRING:
                return _int_or_string
            key = f"{target}[]" if item and self.required else target
            if key in self._checks:
                return self._checks[key]
            return _Deferred(self, target, item)
        if schema.get("x-kubernetes-int-or-string") is True:
            return _int_or_string
        types = schema.get("type")
        kinds = {types} if isinstance(types, str) else set(types or ())
        kinds.discard("null")
        if len(kinds) != 1:
            return _any
        kind = kinds.pop()
        fmt = schema.get("format")
        if kind == "string":
            return {"date-time": _date_time, "byte": _byte}.get(fmt or "", _string)
        if kind == "integer":
            return _integer(_INT32, "int32") if fmt == "int32" else _integer(_INT64, "int64")
        if kind == "number":
            return _number
        if kind == "boolean":
            return _boolean
        if kind == "array":
            items = schema.get("items")
            return _array(self._compile(items, item=True) if isinstance(items, dict) else _any)
        if kind == "object":
            props = schema.get("properties")
            extra = schema.get("additionalProperties")
            if isinstance(props, dict):
                compiled = {k: self._compile(v) for k, v in props.items() if isinstance(v, dict)}
                required = tuple(r for r in schema.get("required") or () if isinstance(r, str)) if self.required and item else ()
                return _struct(compiled, required)
            if isinstance(extra, dict):
                return _map(self._compile(extra))
            return _object_any
        return _any


def _object_any(value: Any) -> Errs:
    if value is None:
        return None
    if not isinstance(value, dict):
        return _type_err("object", value)
    return _any(value)


class _Deferred:
    """A reference compiled on first call (keeps compilation of one definition shallow)."""

    __slots__ = ("_owner", "_name", "_item", "_check")

    def __init__(self, owner: StructuralValidator, name: str, item: bool) -> None:
        self._owner, self._name, self._item = owner, name, item
        self._check: Check | None = None

    def __call__(self, value: Any) -> Errs:
        check = self._check
        if check is None:
            check = self._check = self._owner.checker(self._name, self._item)
        return check(value)
