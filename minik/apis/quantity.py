"""Kubernetes resource quantities ("100m", "1Gi", "1.5", "1e3"): exact values, order, canonical form.

Follows `k8s.io/apimachinery/pkg/api/resource`: the suffix decides the format (BinarySI for
Ki..Ei, DecimalExponent for e/E<n>, DecimalSI otherwise), values are kept to nano precision
(rounded away from zero on parse), and `canonical()` prints what kube-apiserver stores and
returns (`0.5` → `500m`, `1024Mi` → `1Gi`, `1.5Ki` → `1536`). Values are exact `Fraction`s.
Neighbours: `minik.apis.defaults` canonicalizes resource lists with it, `minik.apis.validation`
checks requests ≤ limits, the scheduler and agent sum requests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import total_ordering
from typing import Any

FORMAT_WRONG = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
SUFFIX_WRONG = "unable to parse quantity's suffix"

DECIMAL_SI = "DecimalSI"
BINARY_SI = "BinarySI"
DECIMAL_EXPONENT = "DecimalExponent"

_BIN_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DEC_BY_EXP = {v: k for k, v in _DEC_SUFFIXES.items()}
_BIN_BY_EXP = {v // 10: k for k, v in _BIN_SUFFIXES.items()}
_NANO = Fraction(1, 10**9)
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; `str()` is kube's message."""


def _round_away(v: Fraction, unit: Fraction) -> Fraction:
    """Round `v` to a multiple of `unit`, away from zero (inf.RoundUp on the magnitude)."""
    steps = v / unit
    if steps.denominator == 1:
        return v
    mag = math.ceil(abs(steps))
    return unit * (mag if v > 0 else -mag)


def _split(s: str) -> tuple[bool, str, str, str]:
    """parseQuantityString: (positive, integer digits, fraction digits, suffix)."""
    pos, end = 0, len(s)
    positive = True
    if pos < end and s[0] in "+-":
        positive = s[0] == "+"
        pos += 1
    while pos < end and s[pos] == "0":
        pos += 1
    if pos >= end:
        return positive, "0", "", ""
    start = pos
    while pos < end and s[pos].isdigit() and s[pos].isascii():
        pos += 1
    num = s[start:pos] or "0"
    denom = ""
    if pos < end and s[pos] == ".":
        pos += 1
        start = pos
        while pos < end and s[pos].isdigit() and s[pos].isascii():
            pos += 1
        denom = s[start:pos]
    suffix_start = pos
    while pos < end and s[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and s[pos] in "+-":
        pos += 1
    while pos < end and s[pos].isdigit() and s[pos].isascii():
        pos += 1
    if pos < end:
        raise QuantityError(FORMAT_WRONG)
    return positive, num, denom, s[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int, str]:
    """suffix → (base, exponent, format)."""
    if suffix in _DEC_SUFFIXES:
        return 10, _DEC_SUFFIXES[suffix], DECIMAL_SI
    if suffix in _BIN_SUFFIXES:
        return 2, _BIN_SUFFIXES[suffix], BINARY_SI
    if len(suffix) > 1 and suffix[0] in "eE":
        try:
            return 10, int(suffix[1:]), DECIMAL_EXPONENT
        except ValueError:
            pass
    raise QuantityError(SUFFIX_WRONG)


@total_ordering
@dataclass(frozen=True, slots=True, eq=False)
class Quantity:
    """An exact quantity; compares and hashes by value only, as `Quantity.Cmp` does."""

    value: Fraction
    format: str = DECIMAL_SI

    @classmethod
    def parse(cls, raw: str | int | float) -> Quantity:
        if isinstance(raw, bool):
            raise QuantityError(FORMAT_WRONG)
        if isinstance(raw, int):
            return cls(Fraction(raw), DECIMAL_SI)
        if isinstance(raw, float):
            raw = repr(raw)  # JSON numbers arrive as floats; their shortest repr is what the user wrote
        if not isinstance(raw, str):
            raise QuantityError(FORMAT_WRONG)
        s = raw.strip()
        if not s:
            raise QuantityError(FORMAT_WRONG)
        positive, num, denom, suffix = _split(s)
        base, exponent, fmt = _interpret(suffix)
        v = Fraction(int(num + denom), 10 ** len(denom))
        v *= Fraction(base) ** exponent
        if not positive:
            v = -v
        v = _round_away(v, _NANO)
        if fmt == BINARY_SI and 0 < abs(v) < 1:
            fmt = DECIMAL_SI
        return cls(v, fmt)

    @classmethod
    def of(cls, raw: Any) -> Quantity | None:
        """Parse, or None when `raw` is not a quantity (for callers that report errors themselves)."""
        try:
            return cls.parse(raw)
        except (QuantityError, TypeError):
            return None

    # ---- arithmetic and comparison -------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def is_zero(self) -> bool:
        return self.value == 0

    def int_value(self) -> int:
        """`Value()`: rounded up to an integer (away from zero)."""
        return int(_round_away(self.value, Fraction(1)))

    def milli_value(self) -> int:
        """`MilliValue()`: thousandths, rounded up."""
        return int(_round_away(self.value * 1000, Fraction(1)))

    def round_up(self, scale: int) -> Quantity:
        """`RoundUp(scale)`: to a multiple of 10**scale, away from zero (defaults use scale -3)."""
        return Quantity(_round_away(self.value, Fraction(10) ** scale), self.format)

    # ---- formatting ------------------------------------------------------------------------------
    def canonical(self) -> str:
        v = self.value
        if v == 0:
            return "0"
        fmt = self.format
        if fmt == BINARY_SI and (-1024 < v < 1024 or v.denominator != 1):
            # Small or fractional binary values print as decimal to avoid rounding (kube does the same).
            fmt = DECIMAL_SI
        if fmt == BINARY_SI:
            amount, exp = int(v), 0
            while exp < 6 and amount % 1024 == 0:
                amount //= 1024
                exp += 1
            return f"{amount}{_BIN_BY_EXP.get(exp, '')}"
        # Decimal: integer mantissa, exponent a multiple of 3, as large as possible.
        exp = -9
        mant = v * 10**9
        amount = mant.numerator // mant.denominator  # exact: values are kept to nano precision
        while amount % 10 == 0:
            amount //= 10
            exp += 1
        r = exp % 3
        if r:
            amount *= 10**r
            exp -= r
        if fmt == DECIMAL_EXPONENT:
            return f"{amount}" if exp == 0 else f"{amount}e{exp}"
        suffix = _DEC_BY_EXP.get(exp)
        return f"{amount}{suffix}" if suffix is not None else f"{amount}e{exp}"

    def __str__(self) -> str:
        return self.canonical()


def canonicalize(raw: Any, milli: bool = False) -> Any:
    """The canonical string for `raw`, or `raw` unchanged when it does not parse (validation
    reports it). `milli`: round up to thousandths first, as SetDefaults_ResourceList does."""
    q = Quantity.of(raw)
    if q is None:
        return raw
    if milli:
        q = q.round_up(-3)
    return q.canonical()
