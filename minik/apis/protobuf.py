"""Decode Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) to JSON dicts.

kubectl's typed clients (`kubectl create namespace|configmap|secret|deployment|service|job|…`,
`create token`, `auth can-i`) send protobuf and never retry with JSON after a 415, so the API
layer (`minik.api`) calls `decode_k8s_protobuf` for that content type and then handles the
result exactly like a JSON body.

A body is the magic `k8s\\x00` followed by a `runtime.Unknown` message
{1: typeMeta{1: apiVersion, 2: kind}, 2: raw, 3: contentEncoding, 4: contentType}; `raw` is the
typed message. This module holds the generic wire-format reader and the schema-driven
decoder; the per-message field tables live in `minik.apis.protobuf_schema`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from minik.apis.errors import BadRequest, UnsupportedMediaType
from minik.apis.protobuf_schema import MESSAGES, TOP_LEVEL, Field, Kind

MAGIC = b"k8s\x00"

WIRE_VARINT = 0
WIRE_FIXED64 = 1
WIRE_LEN = 2
WIRE_FIXED32 = 5

# A wire value: an int for varint/fixed wire types, a memoryview for length-delimited ones.
Wire = int | memoryview


# Kinds whose zero value a non-pointer field drops (Go's `omitempty`); messages stay as `{}`.
_OMIT_ZERO = frozenset({Kind.STR, Kind.INT, Kind.BOOL, Kind.BYTES, Kind.INTSTR})


class ProtobufError(BadRequest):
    """The body is not well-formed protobuf."""


def read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    """Return (value, next position) of the base-128 varint at `pos`."""
    result = 0
    shift = 0
    end = len(buf)
    while True:
        if pos >= end:
            raise ProtobufError("protobuf: truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ProtobufError("protobuf: varint too long")


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, Wire]]:
    """Yield (field number, wire type, value) for every field of one message, in order."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("protobuf: field number 0")
        value: Wire
        if wire == WIRE_VARINT:
            value, pos = read_varint(buf, pos)
        elif wire == WIRE_LEN:
            size, pos = read_varint(buf, pos)
            if pos + size > end:
                raise ProtobufError("protobuf: truncated length-delimited field")
            value = buf[pos:pos + size]
            pos += size
        elif wire == WIRE_FIXED64:
            if pos + 8 > end:
                raise ProtobufError("protobuf: truncated 64-bit field")
            value = int.from_bytes(buf[pos:pos + 8], "little")
            pos += 8
        elif wire == WIRE_FIXED32:
            if pos + 4 > end:
                raise ProtobufError("protobuf: truncated 32-bit field")
            value = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        else:
            raise ProtobufError(f"protobuf: unsupported wire type {wire}")
        yield number, wire, value


def _signed(v: int) -> int:
    # int32/int64 negatives are sent as 64-bit two's complement varints.
    return v - (1 << 64) if v >= 1 << 63 else v


def _text(v: Wire) -> str:
    if isinstance(v, int):
        raise ProtobufError("protobuf: expected a length-delimited field, got a number")
    return bytes(v).decode("utf-8", errors="replace")


def _blob(v: Wire) -> memoryview:
    if isinstance(v, int):
        raise ProtobufError("protobuf: expected a length-delimited field, got a number")
    return v


def _rfc3339(seconds: int, nanos: int, micro: bool) -> str:
    t = datetime.fromtimestamp(seconds, tz=timezone.utc)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Decoder:
    """Schema-driven message → dict conversion with the proto2 → JSON zero-value rules."""

    def message(self, name: str, buf: memoryview) -> dict[str, Any]:
        fields = MESSAGES[name]
        out: dict[str, Any] = {}
        for number, wire, raw in iter_fields(buf):
            f = fields.get(number)
            if f is None:
                continue  # not in our table: dropped, like an unknown JSON field under Ignore
            if f.kind is Kind.INLINE:
                out.update(self.message(f.msg, _blob(raw)))
            elif f.kind is Kind.MAP:
                key, val = self._map_entry(f, _blob(raw))
                out.setdefault(f.json, {})[key] = val
            elif f.repeated:
                out.setdefault(f.json, []).extend(self._repeated(f, wire, raw))
            else:
                value = self._single(f, raw)
                if value is None or (not f.ptr and f.kind in _OMIT_ZERO and not value):
                    # Go always encodes non-pointer scalars; JSON would omit their zero value.
                    out.pop(f.json, None)
                    continue
                out[f.json] = value
        return out

    def _repeated(self, f: Field, wire: int, raw: Wire) -> list[Any]:
        if f.kind is Kind.INT and wire == WIRE_LEN:
            # Packed encoding: accepted although gogo's proto2 output is unpacked.
            buf, pos, vals = _blob(raw), 0, []
            while pos < len(buf):
                v, pos = read_varint(buf, pos)
                vals.append(_signed(v))
            return vals
        # Repeated elements keep zero values: `apiGroups: [""]` means the core group.
        value = self._single(f, raw)
        return [value if value is not None else {}]

    def _map_entry(self, f: Field, buf: memoryview) -> tuple[str, Any]:
        key = ""
        val: Any = None
        for number, _, raw in iter_fields(buf):
            if number == 1:
                key = _text(raw)
            elif number == 2:
                val = self._scalar(f.value, f.msg, raw)
        if val is None:
            val = {Kind.STR: "", Kind.BYTES: "", Kind.QUANTITY: "0"}.get(f.value, {})
        return key, val

    def _single(self, f: Field, raw: Wire) -> Any:
        return self._scalar(f.kind, f.msg, raw)

    def _scalar(self, kind: Kind, msg: str, raw: Wire) -> Any:
        if kind is Kind.STR:
            return _text(raw)
        if kind is Kind.INT:
            if not isinstance(raw, int):
                raise ProtobufError("protobuf: expected a number")
            return _signed(raw)
        if kind is Kind.BOOL:
            if not isinstance(raw, int):
                raise ProtobufError("protobuf: expected a bool")
            return bool(raw)
        if kind is Kind.BYTES:
            return base64.b64encode(bytes(_blob(raw))).decode("ascii")
        if kind is Kind.MSG:
            return self.message(msg, _blob(raw))
        if kind is Kind.QUANTITY:
            return self._quantity(_blob(raw))
        if kind is Kind.INTSTR:
            return self._intstr(_blob(raw))
        if kind in (Kind.TIME, Kind.MICROTIME):
            return self._time(_blob(raw), kind is Kind.MICROTIME)
        if kind is Kind.RAWJSON:
            return self._rawjson(_blob(raw))
        raise ProtobufError(f"protobuf: cannot decode {kind.value}")  # pragma: no cover

    @staticmethod
    def _quantity(buf: memoryview) -> str:
        value = "0"
        for number, _, raw in iter_fields(buf):
            if number == 1:
                value = _text(raw)
        return value

    @staticmethod
    def _intstr(buf: memoryview) -> int | str:
        typ, ival, sval = 0, 0, ""
        for number, _, raw in iter_fields(buf):
            if number == 1 and isinstance(raw, int):
                typ = raw
            elif number == 2 and isinstance(raw, int):
                ival = _signed(raw)
            elif number == 3:
                sval = _text(raw)
        return sval if typ == 1 else ival

    @staticmethod
    def _time(buf: memoryview, micro: bool) -> str | None:
        seconds = nanos = 0
        for number, _, raw in iter_fields(buf):
            if number == 1 and isinstance(raw, int):
                seconds = _signed(raw)
            elif number == 2 and isinstance(raw, int):
                nanos = _signed(raw)
        if seconds == 0 and nanos == 0:
            return None  # the zero time: JSON says null, and the server fills it in anyway
        return _rfc3339(seconds, nanos, micro)

    @staticmethod
    def _rawjson(buf: memoryview) -> Any:
        for number, _, raw in iter_fields(buf):
            if number == 1:
                data = bytes(_blob(raw))
                if not data:
                    return None
                try:
                    return json.loads(data)
                except ValueError as e:
                    raise ProtobufError(f"protobuf: embedded JSON is invalid: {e}") from e
        return None


def split_unknown(body: bytes) -> tuple[str, str, memoryview]:
    """Unwrap the `k8s\\x00` + runtime.Unknown envelope: (apiVersion, kind, raw message bytes)."""
    if not body.startswith(MAGIC):
        raise ProtobufError("protobuf: body does not start with the k8s\\x00 magic prefix")
    api_version = kind = ""
    raw = memoryview(b"")
    encoding = ""
    for number, _, value in iter_fields(memoryview(body)[len(MAGIC):]):
        if number == 1:
            for n2, _, v2 in iter_fields(_blob(value)):
                if n2 == 1:
                    api_version = _text(v2)
                elif n2 == 2:
                    kind = _text(v2)
        elif number == 2:
            raw = _blob(value)
        elif number == 3:
            encoding = _text(value)
    if encoding:
        raise UnsupportedMediaType(f"protobuf: content encoding {encoding!r} is not supported")
    return api_version, kind, raw


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body into the dict its JSON form would be.

    Raises UnsupportedMediaType for kinds minik has no field table for, and BadRequest for
    malformed bodies. `status` is never decoded (the server owns it).
    """
    api_version, kind, raw = split_unknown(body)
    name = TOP_LEVEL.get((api_version, kind))
    if name is None:
        raise UnsupportedMediaType(
            f"the protobuf body for {kind or '<no kind>'} ({api_version or '<no apiVersion>'}) is not supported; "
            "send application/json")
    out: dict[str, Any] = {"kind": kind, "apiVersion": api_version}
    out.update(_Decoder().message(name, raw))
    return out
