"""Bounded JSON/YAML decoding: every hostile body is a 400 StatusError, quickly."""

from __future__ import annotations

import time
from typing import Any, Callable

import pytest

from minik.api import status as st
from minik.api.decode import MAX_DEPTH, decode_json, decode_yaml

BOMB = (b'a: &a ["l","l","l","l","l","l","l","l","l"]\n'
        + b"".join(b"%s: &%s [%s]\n" % (bytes([c]), bytes([c]), b",".join([b"*" + bytes([c - 1])] * 9)) for c in range(ord("b"), ord("j"))))


def refused(fn: Callable[[bytes], Any], raw: bytes) -> str:
    t0 = time.monotonic()
    with pytest.raises(st.StatusError) as err:
        fn(raw)
    assert time.monotonic() - t0 < 2.0
    assert err.value.code == 400
    return err.value.message


@pytest.mark.parametrize("raw", [
    b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b'{"a": 1e999}', b'{"a": -1e400}',
    b'{"a": 1, "a": 2}', b'{"a": "\\ud800"}', b'{"\\udfff": 1}', b'{"a": "\xff"}', b'{"a": ',
    b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 300 + b"1" + b"}" * 300,
])
def test_json_refused(raw: bytes) -> None:
    refused(decode_json, raw)


def test_json_depth_limit_is_exact_and_ignores_brackets_in_strings() -> None:
    ok = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert decode_json(ok) is not None
    assert "nested too deeply" in refused(decode_json, b"[" + ok + b"]")
    noisy = b'{"s": "' + b"[" * 500 + b'", "t": "\\"{{{{"}'
    assert decode_json(noisy)["s"] == "[" * 500


def test_json_keeps_valid_text() -> None:
    assert decode_json('{"a": "\\ud83d\\ude00 ä", "n": 1.5e3}'.encode()) == {"a": "\U0001F600 ä", "n": 1500.0}


@pytest.mark.parametrize(("raw", "why"), [
    (BOMB, "excessive aliasing"),
    (b"a: !!float abc", "could not convert"),
    (b"a: !!binary aGVsbG8=", "unsupported tag"),
    (b"a: !!python/object/apply:os.system [id]", "unsupported tag"),
    (b"a: !custom x", "unsupported tag"),
    (b"a: !!set {x}", "unsupported tag"),
    (b"a: .inf", "finite"),
    (b"a: .nan", "finite"),
    (b'a: "\\ud800"', ""),
    (b"a: \xff", ""),
    (b"a: 1\n---\nb: 2", "single document"),
    (b"- " * 300 + b"x", ""),
    (b"[" * 100_000, ""),
])
def test_yaml_refused(raw: bytes, why: str) -> None:
    assert why in refused(decode_yaml, raw)


def test_yaml_is_converted_like_json() -> None:
    doc = b"d: 2024-01-01\nt: 2001-12-14t21:59:43.10-05:00\n1: one\ntrue: yes\nbase: &b {x: 1}\nm:\n  <<: *b\n  y: 2\n"
    assert decode_yaml(doc) == {"d": "2024-01-01", "t": "2001-12-14t21:59:43.10-05:00", "1": "one", "true": True,
                                "base": {"x": 1}, "m": {"x": 1, "y": 2}}
    # A few aliases are fine (kube allows them too).
    assert decode_yaml(b"a: &a [1, 2]\nb: *a\nc: *a\n") == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    assert decode_yaml(b"") is None


def test_values_from_other_decoders_are_bounded_too() -> None:
    from minik.api.decode import check_decoded
    deep: Any = []
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(st.StatusError):
        check_decoded({"a": deep})
    with pytest.raises(st.StatusError):
        check_decoded({"a": float("nan")})
    assert check_decoded({"a": [1, "b"]}) == {"a": [1, "b"]}
