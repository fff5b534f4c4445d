"""Responses always encode: lone surrogates and non-finite numbers in what the store holds
(from before decoding refused them) never make a response, or the error response, fail."""

from __future__ import annotations

import json

from minik.api.handlers import dumps, header_text, json_response


def test_surrogates_and_non_finite_numbers_encode() -> None:
    out = dumps({"a": ["\ud800", float("inf"), float("nan"), 1.5], "b": "ä"})
    assert json.loads(out) == {"a": ["\ud800", None, None, 1.5], "b": "ä"}


def test_warning_headers_cannot_be_split() -> None:
    resp = json_response({}, warnings=['unknown field "a\r\nX-Evil: 1 ä"'])
    value = resp.headers["Warning"]
    assert "\r" not in value and "\n" not in value and value.isascii()
    assert header_text("plain") == "plain"
