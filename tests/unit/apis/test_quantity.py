"""Quantities: parsing, ordering and the canonical form kube-apiserver stores."""

from __future__ import annotations

from fractions import Fraction

import pytest

from minik.apis.quantity import FORMAT_WRONG, SUFFIX_WRONG, Quantity, QuantityError, canonicalize


@pytest.mark.parametrize("raw, canonical", [
    ("100m", "100m"),
    ("0.5", "500m"),
    ("1.5", "1500m"),
    ("1", "1"),
    ("1000m", "1"),
    ("1.0", "1"),
    ("1000", "1k"),
    ("1500", "1500"),
    ("2k", "2k"),
    ("1e3", "1e3"),
    ("1E6", "1e6"),
    ("1.5e3", "1500"),
    ("1Gi", "1Gi"),
    ("1024Mi", "1Gi"),
    ("512Mi", "512Mi"),
    ("1536Mi", "1536Mi"),
    ("1.5Gi", "1536Mi"),
    ("0.5Gi", "512Mi"),
    ("1.5Ki", "1536"),
    ("2048Ki", "2Mi"),
    ("100Ki", "100Ki"),
    ("0.1Ki", "102400m"),
    ("500Mi", "500Mi"),
    ("128974848", "128974848"),
    ("129e6", "129e6"),
    ("129M", "129M"),
    ("123Mi", "123Mi"),
    ("0", "0"),
    ("0Gi", "0"),
    ("-1", "-1"),
    ("-100m", "-100m"),
    ("+5", "5"),
    ("0.000000001", "1n"),
    ("0.0000000001", "1n"),  # rounded up to nano precision
    ("1u", "1u"),
    ("1n", "1n"),
    ("1P", "1P"),
    ("1E", "1E"),
    (1, "1"),
    (0.5, "500m"),
    (2.0, "2"),
])
def test_canonical(raw: str | int | float, canonical: str) -> None:
    assert Quantity.parse(raw).canonical() == canonical
    assert str(Quantity.parse(raw)) == canonical


@pytest.mark.parametrize("raw, message", [
    ("", FORMAT_WRONG),
    ("abc", FORMAT_WRONG),
    ("1.2.3", FORMAT_WRONG),
    ("1 Gi", FORMAT_WRONG),
    ("1Gb", FORMAT_WRONG),
    ("1K", SUFFIX_WRONG),
    ("5e", SUFFIX_WRONG),
    ("1m5", SUFFIX_WRONG),
])
def test_invalid(raw: str, message: str) -> None:
    with pytest.raises(QuantityError) as e:
        Quantity.parse(raw)
    assert str(e.value) == message


def test_kube_message_text() -> None:
    assert FORMAT_WRONG == ("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


def test_exact_values_and_order() -> None:
    assert Quantity.parse("1Gi").value == 2**30
    assert Quantity.parse("100m").value == Fraction(1, 10)
    assert Quantity.parse("1") == Quantity.parse("1000m")
    assert Quantity.parse("1Gi") > Quantity.parse("1G")
    assert Quantity.parse("500m") < Quantity.parse("1")
    assert sorted([Quantity.parse(x) for x in ("2", "100m", "1Ki")]) == [
        Quantity.parse("100m"), Quantity.parse("2"), Quantity.parse("1Ki")]
    assert len({Quantity.parse("1"), Quantity.parse("1000m")}) == 1


def test_values_and_rounding() -> None:
    assert Quantity.parse("100m").milli_value() == 100
    assert Quantity.parse("1500m").int_value() == 2  # Value() rounds up
    assert Quantity.parse("1.0001m").round_up(-3).canonical() == "2m"
    assert (Quantity.parse("1") + Quantity.parse("500m")).canonical() == "1500m"


def test_canonicalize_leaves_garbage_for_validation() -> None:
    assert canonicalize("0.5") == "500m"
    assert canonicalize("abc") == "abc"
    assert canonicalize("0.0001", milli=True) == "1m"
