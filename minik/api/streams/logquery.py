"""pods/{name}/log query string → `LogOptions`, validated with the apiserver's messages.

Neighbours: `minik.api.streams.front` calls `parse_log_query`; the options travel to the node
through `minik.client.streams.PodStreams.logs`.
"""

from __future__ import annotations

from collections.abc import Mapping

from minik.client.streams import LogOptions, parse_timestamp

__all__ = ["LogQueryError", "parse_log_query"]

_NS = 1_000_000_000


class LogQueryError(ValueError):
    """A log query parameter is malformed (the API answers 400 with this message)."""


def _bool(query: Mapping[str, str], key: str) -> bool:
    value = query.get(key, "")
    if value in ("", "false", "False", "0"):
        return False
    if value in ("true", "True", "1"):
        return True
    raise LogQueryError(f"invalid value for {key}: {value!r}")


def _int(query: Mapping[str, str], key: str) -> int | None:
    value = query.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise LogQueryError(f"invalid value for {key}: {value!r}") from None


def parse_log_query(query: Mapping[str, str], now_ns: int) -> LogOptions:
    """PodLogOptions from the query string; validation follows the apiserver's messages."""
    tail = _int(query, "tailLines")
    if tail is not None and tail < 0:
        raise LogQueryError("tailLines: Invalid value: must be greater than or equal to 0")
    limit = _int(query, "limitBytes")
    if limit is not None and limit < 1:
        raise LogQueryError("limitBytes: Invalid value: must be greater than 0")
    since_seconds = _int(query, "sinceSeconds")
    since_time = query.get("sinceTime") or None
    if since_seconds is not None and since_time is not None:
        raise LogQueryError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    since_ns: int | None = None
    if since_seconds is not None:
        if since_seconds < 1:
            raise LogQueryError("sinceSeconds: Invalid value: must be greater than 0")
        since_ns = now_ns - since_seconds * _NS
    elif since_time is not None:
        try:
            since_ns = parse_timestamp(since_time)
        except ValueError as err:
            raise LogQueryError(f"sinceTime: {err}") from None
    return LogOptions(
        follow=_bool(query, "follow"),
        tail_lines=tail,
        since_ns=since_ns,
        timestamps=_bool(query, "timestamps"),
        limit_bytes=limit,
        previous=_bool(query, "previous"),
    )
