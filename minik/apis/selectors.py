"""Label and field selectors: parsing, matching and rendering as Kubernetes does.

Label selectors follow `k8s.io/apimachinery/pkg/labels` (lexer + recursive parser, requirements
sorted by key, kube's error texts such as `unable to parse requirement: …`); field selectors
follow `k8s.io/apimachinery/pkg/fields` (`=`, `==`, `!=`, backslash escapes) and the per-kind
field sets of kube's registries (`check_field_selector` rejects the rest with
`field label not supported: <x>`). Neighbours: the API handlers parse `labelSelector` /
`fieldSelector` query parameters with these; list, watch and controllers call `matches`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from minik.apis.errors import BadRequest
from minik.apis.names import is_label_value, is_qualified_name
from minik.apis.registry import ResourceType

# Operators as kube's selection package spells them.
IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS = "in", "notin", "=", "==", "!="
EXISTS, DOES_NOT_EXIST, GREATER_THAN, LESS_THAN = "exists", "!", "gt", "lt"
_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_API_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


class SelectorError(BadRequest):
    """A selector string or object that does not parse (HTTP 400)."""


def _go_str_slice(vals: tuple[str, ...] | list[str]) -> str:
    return "[]string{" + ", ".join(_go_quote(v) for v in vals) + "}"


def _go_quote(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    @classmethod
    def new(cls, key: str, op: str, values: list[str] | tuple[str, ...], path: str = "") -> Requirement:
        """labels.NewRequirement: validates key, operator arity and values with kube's messages."""
        errs: list[str] = []
        vals = list(values)
        kp = f"{path}.key" if path else "key"
        vp = f"{path}.values" if path else "values"
        key_errs = is_qualified_name(key)
        if key_errs:
            errs.append(f"{kp}: Invalid value: {_go_quote(key)}: " + "; ".join(key_errs))
        if op in (IN, NOT_IN):
            if not vals:
                errs.append(f"{vp}: Invalid value: []string{{}}: for 'in', 'notin' operators, values set can't be empty")
        elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
            if len(vals) != 1:
                errs.append(f"{vp}: Invalid value: {_go_str_slice(vals)}: exact-match compatibility requires one single value")
        elif op in (EXISTS, DOES_NOT_EXIST):
            if vals:
                errs.append(f"{vp}: Invalid value: {_go_str_slice(vals)}: values set must be empty for exists and does not exist")
        elif op in (GREATER_THAN, LESS_THAN):
            if len(vals) != 1:
                errs.append(f"{vp}: Invalid value: {_go_str_slice(vals)}: for 'Gt', 'Lt' operators, exactly one value is required")
            for i, v in enumerate(vals):
                try:
                    int(v, 10)
                except ValueError:
                    errs.append(f"{vp}[{i}]: Invalid value: {_go_quote(v)}: for 'Gt', 'Lt' operators, the value must be an integer")
        else:
            supported = ", ".join(_go_quote(o) for o in ("in", "notin", "=", "==", "!=", "exists", "!", "gt", "lt"))
            errs.append(f"{path + '.' if path else ''}operator: Unsupported value: {_go_quote(op)}: supported values: {supported}")
        for i, v in enumerate(vals):
            v_errs = is_label_value(v)
            if v_errs:
                errs.append(f"{vp}[{i}][{key}]: Invalid value: {_go_quote(v)}: " + "; ".join(v_errs))
        if errs:
            raise SelectorError(errs[0] if len(errs) == 1 else "[" + ", ".join(errs) + "]")
        return cls(key, op, tuple(vals))

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        if op in (IN, EQUALS, DOUBLE_EQUALS):
            return self.key in labels and isinstance(labels[self.key], str) and labels[self.key] in self.values
        if op in (NOT_IN, NOT_EQUALS):
            return self.key not in labels or not isinstance(labels[self.key], str) or labels[self.key] not in self.values
        if op == EXISTS:
            return self.key in labels
        if op == DOES_NOT_EXIST:
            return self.key not in labels
        if op in (GREATER_THAN, LESS_THAN):
            if self.key not in labels:
                return False
            try:
                have, want = int(labels[self.key], 10), int(self.values[0], 10)
            except (ValueError, TypeError):
                return False
            return have > want if op == GREATER_THAN else have < want
        return False

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        sym = {EQUALS: "=", DOUBLE_EQUALS: "==", NOT_EQUALS: "!=", IN: " in ", NOT_IN: " notin ",
               GREATER_THAN: ">", LESS_THAN: "<"}[op]
        vals = self.values[0] if len(self.values) == 1 else ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            vals = f"({vals})"
        return self.key + sym + vals


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A conjunction of requirements. `nothing` is the nil selector (matches no object)."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    @property
    def empty(self) -> bool:
        """True when the selector matches everything (kube's `Selector.Empty()`)."""
        return not self.requirements and not self.nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.nothing:
            return False
        # A malformed stored object (`labels: 1`) matches as if it had no labels: one poison
        # object must not fail every LIST and watch with a selector in its namespace.
        ls = labels if isinstance(labels, Mapping) else {}
        return all(r.matches(ls) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    @classmethod
    def everything(cls) -> LabelSelector:
        return cls(())

    @classmethod
    def from_api(cls, sel: Mapping[str, Any] | None) -> LabelSelector:
        """metav1.LabelSelectorAsSelector: None → nothing, {} → everything."""
        if sel is None:
            return cls((), nothing=True)
        match_labels = sel.get("matchLabels") or {}
        exprs = sel.get("matchExpressions") or []
        if not isinstance(match_labels, Mapping) or not isinstance(exprs, list):
            raise SelectorError("invalid label selector")
        if not match_labels and not exprs:
            return cls(())
        reqs: list[Requirement] = []
        for k in sorted(match_labels):
            reqs.append(Requirement.new(str(k), EQUALS, [str(match_labels[k])]))
        for e in exprs:
            if not isinstance(e, Mapping):
                raise SelectorError("invalid label selector")
            raw_vals = e.get("values") or []
            if not isinstance(raw_vals, list):
                raise SelectorError("invalid label selector")
            api_op = str(e.get("operator", ""))
            op = _API_OPERATORS.get(api_op)
            if op is None:
                raise SelectorError(f"{_go_quote(api_op)} is not a valid label selector operator")
            vals = [str(v) for v in raw_vals]
            reqs.append(Requirement.new(str(e.get("key", "")), op, vals))
        return cls(tuple(sorted(reqs, key=lambda r: r.key)))

    def to_api(self) -> dict[str, Any]:
        """The matchLabels/matchExpressions form (Exists/DoesNotExist/In/NotIn; = and != become In/NotIn)."""
        match_labels: dict[str, str] = {}
        exprs: list[dict[str, Any]] = []
        back = {IN: "In", NOT_IN: "NotIn", EXISTS: "Exists", DOES_NOT_EXIST: "DoesNotExist"}
        for r in self.requirements:
            if r.operator in (EQUALS, DOUBLE_EQUALS) and r.key not in match_labels:
                match_labels[r.key] = r.values[0]
            elif r.operator in (EQUALS, DOUBLE_EQUALS, IN):
                exprs.append({"key": r.key, "operator": "In", "values": list(r.values)})
            elif r.operator == NOT_EQUALS:
                exprs.append({"key": r.key, "operator": "NotIn", "values": list(r.values)})
            elif r.operator in back:
                e: dict[str, Any] = {"key": r.key, "operator": back[r.operator]}
                if r.values:
                    e["values"] = list(r.values)
                exprs.append(e)
            else:
                raise SelectorError(f"{r.operator!r} cannot be expressed in a LabelSelector")
        out: dict[str, Any] = {}
        if match_labels:
            out["matchLabels"] = match_labels
        if exprs:
            out["matchExpressions"] = exprs
        return out


# ---- label selector parser (labels.Parse) -------------------------------------------------------
_IDENT, _EOS, _COMMA, _OPEN, _CLOSE, _IN, _NOTIN = "ident", "eos", ",", "(", ")", "in", "notin"
_EQ, _DEQ, _NEQ, _BANG, _GT, _LT = "=", "==", "!=", "!", ">", "<"
_SPECIAL = frozenset("=!(),><")
_SYMBOLS = {"!": _BANG, "!=": _NEQ, "(": _OPEN, ")": _CLOSE, ",": _COMMA, "=": _EQ, "==": _DEQ, ">": _GT, "<": _LT}


def _lex(s: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in " \t\r\n":
            i += 1
        if i >= n:
            out.append((_EOS, ""))
            return out
        if s[i] in _SPECIAL:
            j = i + 1
            # Longest symbol that is still a known operator ("!=" over "!", "==" over "=").
            while j < n and s[j] in _SPECIAL and s[i:j + 1] in _SYMBOLS:
                j += 1
            lit = s[i:j]
            out.append((_SYMBOLS[lit], lit))
            i = j
            continue
        j = i
        while j < n and s[j] not in _SPECIAL and s[j] not in " \t\r\n":
            j += 1
        lit = s[i:j]
        out.append((_IN if lit == "in" else _NOTIN if lit == "notin" else _IDENT, lit))
        i = j


class _Parser:
    def __init__(self, s: str) -> None:
        self.toks = _lex(s)
        self.pos = 0

    def _peek(self, values: bool) -> tuple[str, str]:
        tok, lit = self.toks[self.pos]
        if values and tok in (_IN, _NOTIN):
            return _IDENT, lit  # "in"/"notin" are ordinary identifiers where values are expected
        return tok, lit

    def _next(self, values: bool) -> tuple[str, str]:
        t = self._peek(values)
        if self.pos < len(self.toks) - 1:
            self.pos += 1
        return t

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self._peek(True)
            if tok in (_IDENT, _BANG):
                try:
                    reqs.append(self._requirement())
                except SelectorError as e:
                    raise SelectorError(f"unable to parse requirement: {e.message}") from None
                t, lt = self._next(True)
                if t == _EOS:
                    return reqs
                if t == _COMMA:
                    t2, l2 = self._peek(True)
                    if t2 not in (_IDENT, _BANG):
                        raise SelectorError(f"found '{l2}', expected: identifier after ','")
                    continue
                raise SelectorError(f"found '{lt}', expected: ',' or 'end of string'")
            if tok == _EOS:
                return reqs
            raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> Requirement:
        op = ""
        tok, lit = self._next(True)
        if tok == _BANG:
            op = DOES_NOT_EXIST
            tok, lit = self._next(True)
        if tok != _IDENT:
            raise SelectorError(f"found '{lit}', expected: identifier")
        key = lit
        key_errs = is_qualified_name(key)
        if key_errs:
            # kube validates with a nil field path here, which prints as "<nil>".
            raise SelectorError(f"<nil>: Invalid value: {_go_quote(key)}: " + "; ".join(key_errs))
        t, _ = self._peek(True)
        if t in (_EOS, _COMMA):
            return Requirement.new(key, op or EXISTS, [])
        if op == DOES_NOT_EXIST:
            return Requirement.new(key, op, [])
        tok, lit = self._next(False)
        ops = {_IN: IN, _NOTIN: NOT_IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _NEQ: NOT_EQUALS, _GT: GREATER_THAN, _LT: LESS_THAN}
        if tok not in ops:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        op = ops[tok]
        values = self._set_values() if op in (IN, NOT_IN) else self._exact_value()
        return Requirement.new(key, op, sorted(values))

    def _set_values(self) -> set[str]:
        tok, lit = self._next(True)
        if tok != _OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek(True)
        if tok in (_IDENT, _COMMA):
            vals = self._identifiers()
            t, _ = self._next(True)
            if t != _CLOSE:
                raise SelectorError(f"found '{lit}', expected: ')'")
            return vals
        if tok == _CLOSE:
            self._next(True)
            return {""}
        raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")

    def _identifiers(self) -> set[str]:
        vals: set[str] = set()
        while True:
            tok, lit = self._next(True)
            if tok == _IDENT:
                vals.add(lit)
                t2, l2 = self._peek(True)
                if t2 == _COMMA:
                    continue
                if t2 == _CLOSE:
                    return vals
                raise SelectorError(f"found '{l2}', expected: ',' or ')'")
            if tok == _COMMA:
                if not vals:
                    vals.add("")
                t2, _ = self._peek(True)
                if t2 == _CLOSE:
                    vals.add("")
                    return vals
                if t2 == _COMMA:
                    self._next(True)
                    vals.add("")
                continue
            raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        tok, _ = self._peek(True)
        if tok in (_EOS, _COMMA):
            return {""}
        tok, lit = self._next(True)
        if tok == _IDENT:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse_label_selector(s: str) -> LabelSelector:
    """labels.Parse: `a=b,c!=d,e in (f,g),!h,i`; raises SelectorError (400) with kube's text."""
    reqs = _Parser(s).parse()
    return LabelSelector(tuple(sorted(reqs, key=lambda r: r.key)))


# ---- field selectors ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FieldTerm:
    field: str
    value: str
    negated: bool = False

    def __str__(self) -> str:
        return f"{self.field}{'!=' if self.negated else '='}{escape_field_value(self.value)}"


def escape_field_value(v: str) -> str:
    return v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape(v: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(v):
        ch = v[i]
        if ch == "\\":
            if i + 1 >= len(v) or v[i + 1] not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: {v[i:i + 2]}")
            out.append(v[i + 1])
            i += 2
            continue
        if ch in ",=":
            raise SelectorError(f"invalid field selector: unescaped character {ch}")
        out.append(ch)
        i += 1
    return "".join(out)


def _split_terms(s: str) -> list[str]:
    terms: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\" and i + 1 < len(s):
            cur.append(s[i:i + 2])
            i += 2
            continue
        if ch == ",":
            terms.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    terms.append("".join(cur))
    return terms


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, obj: Mapping[str, Any]) -> bool:
        fs = field_set(obj)
        for t in self.terms:
            have = fs.get(t.field, "")
            if (have == t.value) == t.negated:
                return False
        return True

    def requires_exact(self, field: str) -> str | None:
        """The value `field=value` pins, if any (lets the API layer narrow a list to one name)."""
        for t in self.terms:
            if t.field == field and not t.negated:
                return t.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def parse_field_selector(s: str) -> FieldSelector:
    """fields.ParseSelector: comma-separated `f=v`, `f==v`, `f!=v`; terms sorted as kube sorts them."""
    terms: list[FieldTerm] = []
    for part in sorted(_split_terms(s)):
        if not part:
            continue
        for i in range(len(part)):
            rest = part[i:]
            op = next((o for o in ("!=", "==", "=") if rest.startswith(o)), None)
            if op is not None:
                lhs, rhs = part[:i], part[i + len(op):]
                terms.append(FieldTerm(lhs, _unescape(rhs), op == "!="))
                break
        else:
            raise SelectorError(f"invalid selector: '{s}'; can't understand '{part}'")
    return FieldSelector(tuple(terms))


# Fields each kind supports beyond metadata.name / metadata.namespace (kube's GetAttrs / field label
# conversion funcs), keyed by (group, kind).
_EXTRA_FIELDS: dict[tuple[str, str], frozenset[str]] = {
    ("", "Pod"): frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                            "spec.hostNetwork", "status.phase", "status.podIP",
                            "status.nominatedNodeName"}),
    ("", "Event"): frozenset({"involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                              "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                              "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"}),
    ("", "Secret"): frozenset({"type"}),
    ("", "Node"): frozenset({"spec.unschedulable"}),
    ("", "Namespace"): frozenset({"status.phase"}),
    ("", "ReplicationController"): frozenset({"status.replicas"}),
    ("", "Service"): frozenset({"spec.clusterIP", "spec.type"}),
    ("apps", "ReplicaSet"): frozenset({"status.replicas"}),
    ("batch", "Job"): frozenset({"status.successful"}),
    ("certificates.k8s.io", "CertificateSigningRequest"): frozenset({"spec.signerName"}),
}
_META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})


def supported_fields(rt: ResourceType) -> frozenset[str]:
    if rt.custom:
        return _META_FIELDS
    return _META_FIELDS | _EXTRA_FIELDS.get((rt.group, rt.kind), frozenset())


def check_field_selector(rt: ResourceType, sel: FieldSelector) -> None:
    """Raise BadRequest `field label not supported: <x>` for fields `rt` cannot be selected by."""
    ok = supported_fields(rt)
    for t in sel.terms:
        if t.field not in ok:
            raise SelectorError(f"field label not supported: {t.field}")


def _s(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def field_set(obj: Mapping[str, Any]) -> dict[str, str]:
    """The selectable fields of `obj` as strings (kind taken from the object itself)."""
    m = obj.get("metadata") or {}
    out = {"metadata.name": _s(m.get("name")), "metadata.namespace": _s(m.get("namespace"))}
    kind = obj.get("kind")
    api_version = str(obj.get("apiVersion") or "")
    group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    if not isinstance(spec, dict):
        spec = {}
    if not isinstance(status, dict):
        status = {}
    if kind == "Pod" and not group:
        ips = status.get("podIPs") or []
        pod_ip = _s(ips[0].get("ip")) if ips and isinstance(ips[0], dict) else _s(status.get("podIP"))
        out.update({
            "spec.nodeName": _s(spec.get("nodeName")), "spec.restartPolicy": _s(spec.get("restartPolicy")),
            "spec.schedulerName": _s(spec.get("schedulerName")),
            "spec.serviceAccountName": _s(spec.get("serviceAccountName")),
            "spec.hostNetwork": _s(bool(spec.get("hostNetwork"))), "status.phase": _s(status.get("phase")),
            "status.podIP": pod_ip,
            "status.nominatedNodeName": _s(status.get("nominatedNodeName")),
        })
    elif kind == "Event" and not group:
        io = obj.get("involvedObject") or {}
        src = (obj.get("source") or {}).get("component") or obj.get("reportingComponent") or ""
        out.update({f"involvedObject.{k}": _s(io.get(k)) for k in
                    ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")})
        out.update({"reason": _s(obj.get("reason")), "reportingComponent": _s(obj.get("reportingComponent")),
                    "source": _s(src), "type": _s(obj.get("type"))})
    elif kind == "Secret" and not group:
        out["type"] = _s(obj.get("type"))
    elif kind == "Node" and not group:
        out["spec.unschedulable"] = _s(bool(spec.get("unschedulable")))
    elif kind == "Namespace" and not group:
        out["status.phase"] = _s(status.get("phase"))
    elif kind == "Service" and not group:
        out["spec.clusterIP"] = _s(spec.get("clusterIP"))
        out["spec.type"] = _s(spec.get("type"))
    elif kind in ("ReplicaSet", "ReplicationController"):
        out["status.replicas"] = _s(status.get("replicas") or 0)
    elif kind == "Job" and group == "batch":
        out["status.successful"] = _s(status.get("succeeded") or 0)
    return out
