"""Field paths and `Cause` builders worded like `k8s.io/apimachinery/pkg/util/validation/field`.

`Cause.message` carries what kube prints after `<field>: ` (`Required value`, `Invalid value:
"x": detail`, `Unsupported value: "x": supported values: "a", "b"`), with values rendered the way
Go's `%q`/`%v`/`%#v` render them (`map[string]string{"app":"x"}`, `[]string{"a"}`, `null`).
`GoRaw` passes a pre-rendered Go value through (e.g. a `v1.LabelSelector{…}` struct dump).
Neighbours: used by every `minik.apis.validation.*` module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from minik.apis.errors import Cause

REQUIRED = "FieldValueRequired"
INVALID = "FieldValueInvalid"
NOT_SUPPORTED = "FieldValueNotSupported"
DUPLICATE = "FieldValueDuplicate"
FORBIDDEN = "FieldValueForbidden"
TOO_LONG = "FieldValueTooLong"
TOO_MANY = "FieldValueTooMany"
NOT_FOUND = "FieldValueNotFound"

IMMUTABLE = "field is immutable"
NEGATIVE = "must be greater than or equal to 0"


@dataclass(frozen=True, slots=True)
class GoRaw:
    """A value already rendered as Go would print it."""

    text: str


def child(path: str, *names: str) -> str:
    out = path
    for n in names:
        out = f"{out}.{n}" if out else n
    return out


def index(path: str, i: int) -> str:
    return f"{path}[{i}]"


def key(path: str, k: str) -> str:
    return f"{path}[{k}]"


def go_quote(s: str) -> str:
    """Go's %q for the common cases (printable text, quotes, backslashes, control characters)."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_float(f: float) -> str:
    """Go's %v for float64: shortest digits, exponent form when exp < -4 or exp >= 21."""
    if f != f or f in (float("inf"), float("-inf")):
        return {"nan": "NaN", "inf": "+Inf", "-inf": "-Inf"}[repr(f)]
    r = repr(f)
    digits, exp = _shortest_digits(r)
    if not digits:
        return "0"
    sign = "-" if f < 0 else ""
    if exp < -4 or exp >= 21:
        body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{body}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp >= len(digits) - 1:
        return sign + digits + "0" * (exp - len(digits) + 1)
    if exp >= 0:
        return sign + digits[:exp + 1] + "." + digits[exp + 1:]
    return sign + "0." + "0" * (-exp - 1) + digits


def _shortest_digits(r: str) -> tuple[str, int]:
    """Significant digits and decimal exponent of Python's shortest float repr."""
    r = r.lstrip("-")
    mant, _, e = r.partition("e")
    exp = int(e) if e else 0
    whole, _, frac = mant.partition(".")
    digits = (whole + frac).lstrip("0")
    lead = len(whole.lstrip("0"))
    if lead:
        exp += lead - 1
    else:
        exp -= len(frac) - len(frac.lstrip("0")) + 1
    return digits.rstrip("0"), exp


def go_value(v: Any) -> str:
    """How field.Error prints a bad value: %q for strings, %v for numbers/bools, %#v otherwise."""
    if isinstance(v, GoRaw):
        return v.text
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return go_quote(v)
    if isinstance(v, Mapping):
        if all(isinstance(x, str) for x in v.values()):
            return "map[string]string{" + ", ".join(f"{go_quote(str(k))}:{go_quote(x)}" for k, x in sorted(v.items())) + "}"
        return "map[string]interface {}{" + ", ".join(f"{go_quote(str(k))}:{go_hash(x)}" for k, x in sorted(v.items())) + "}"
    if isinstance(v, Sequence):
        if all(isinstance(x, str) for x in v):
            return "[]string{" + ", ".join(go_quote(x) for x in v) + "}"
        return "[]interface {}{" + ", ".join(go_hash(x) for x in v) + "}"
    return str(v)


def go_hash(v: Any) -> str:
    """%#v inside composite values (numbers keep their plain form, strings are quoted)."""
    return go_value(v)


def go_string_map(m: Any) -> str:
    """%#v of a map[string]string field, `map[string]string(nil)` when unset."""
    if not m or not isinstance(m, Mapping):
        return "map[string]string(nil)" if m is None or not isinstance(m, Mapping) else "map[string]string{}"
    return go_value({str(k): str(v) for k, v in m.items()})


def go_label_selector(sel: Any) -> GoRaw:
    """%#v of a metav1.LabelSelector, as kube prints it in `field is immutable` errors."""
    if not isinstance(sel, Mapping):
        return GoRaw("null")
    exprs = sel.get("matchExpressions")
    if exprs is None:
        ex = "[]v1.LabelSelectorRequirement(nil)"
    else:
        parts = []
        for e in dicts(exprs):
            vals = e.get("values")
            vs = go_value([str(x) for x in vals]) if isinstance(vals, list) else "[]string(nil)"
            parts.append(f"v1.LabelSelectorRequirement{{Key:{go_quote(str(e.get('key', '')))}, "
                         f"Operator:{go_quote(str(e.get('operator', '')))}, Values:{vs}}}")
        ex = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    return GoRaw(f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels'))}, MatchExpressions:{ex}}}")


def go_int_or_string(v: Any) -> GoRaw:
    """%#v of an intstr.IntOrString."""
    if isinstance(v, int) and not isinstance(v, bool):
        return GoRaw(f"intstr.IntOrString{{Type:0, IntVal:{v}, StrVal:\"\"}}")
    return GoRaw(f"intstr.IntOrString{{Type:1, IntVal:0, StrVal:{go_quote(str(v))}}}")


def required(path: str, detail: str = "") -> Cause:
    return Cause(REQUIRED, "Required value" + (f": {detail}" if detail else ""), path)


def invalid(path: str, value: Any, detail: str = "") -> Cause:
    return Cause(INVALID, f"Invalid value: {go_value(value)}" + (f": {detail}" if detail else ""), path)


def not_supported(path: str, value: Any, supported: Sequence[str]) -> Cause:
    msg = f"Unsupported value: {go_value(value)}"
    if supported:
        msg += ": supported values: " + ", ".join(go_quote(s) for s in supported)
    return Cause(NOT_SUPPORTED, msg, path)


def duplicate(path: str, value: Any) -> Cause:
    return Cause(DUPLICATE, f"Duplicate value: {go_value(value)}", path)


def not_found(path: str, value: Any) -> Cause:
    return Cause(NOT_FOUND, f"Not found: {go_value(value)}", path)


def forbidden(path: str, detail: str) -> Cause:
    return Cause(FORBIDDEN, "Forbidden" + (f": {detail}" if detail else ""), path)


def too_long(path: str, max_bytes: int) -> Cause:
    unit = "byte" if max_bytes == 1 else "bytes"
    return Cause(TOO_LONG, f"Too long: may not be more than {max_bytes} {unit}", path)


def too_many(path: str, actual: int, max_items: int) -> Cause:
    return Cause(TOO_MANY, f"Too many: {actual}: must have at most {max_items} items", path)


def nonnegative(path: str, value: Any) -> list[Cause]:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, NEGATIVE)]
    return []


def immutable(path: str, new: Any, old: Any, rendered: Any = None) -> list[Cause]:
    """ValidateImmutableField (Semantic.DeepEqual: null and empty collections compare equal)."""
    if semantic_equal(new, old):
        return []
    return [invalid(path, rendered if rendered is not None else new, IMMUTABLE)]


def _norm(v: Any) -> Any:
    if isinstance(v, Mapping):
        return {k: _norm(x) for k, x in v.items() if not _empty(x)}
    if isinstance(v, list):
        return [_norm(x) for x in v]
    return v


def _empty(v: Any) -> bool:
    return v is None or (isinstance(v, (dict, list)) and not v)


def semantic_equal(a: Any, b: Any) -> bool:
    """Equality that ignores null-vs-empty differences, like apiequality.Semantic.DeepEqual."""
    if _empty(a) and _empty(b):
        return True
    return bool(_norm(a) == _norm(b))


def as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else []


def dicts(v: Any) -> list[dict[str, Any]]:
    return [x for x in v if isinstance(x, dict)] if isinstance(v, list) else []
