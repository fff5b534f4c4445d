"""Watch streams: newline-delimited JSON events over a chunked response, as kubectl expects.

Semantics (kubectl-protocol §6): resourceVersion absent/"0" → synthetic ADDED for the current
state, then live events; N → events after N (410 Expired as an ERROR event when compacted);
selectors turn objects entering/leaving the selection into ADDED/DELETED; bookmarks only when
asked and only when everything up to that revision was sent; Table watches carry the column
definitions in the first event only. Neighbours: `minik.api.handlers` calls `serve_watch`;
events come from the store's `Watch` (`next` with a timeout: no extra task or queue per
watcher); JSON lines are shared between watchers through `minik.api.encoded`, and events
already waiting go out in one write.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable

from aiohttp import web

from minik.api import status as st
from minik.api.encoded import EncodedObjects
from minik.api.meta import Obj, utcnow
from minik.api.service import ResourceService
from minik.apis.registry import ResourceType
from minik.apis.selectors import FieldSelector, LabelSelector
from minik.store import errors as store_errors

log = logging.getLogger("minik.api.watch")

BOOKMARK_INTERVAL = 30.0
DISCONNECT_POLL = 1.0   # a closed client is noticed within this (and on the next write)
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True, slots=True)
class WatchParams:
    namespace: str | None
    labels: LabelSelector | None
    fields: FieldSelector | None
    resource_version: str
    timeout: float
    bookmarks: bool
    send_initial: bool
    table: bool
    custom_columns: list[dict[str, Any]] | None = None


def _line(event_type: str, obj: Obj) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


class _Encoder:
    def __init__(self, service: ResourceService, rt: ResourceType, p: WatchParams) -> None:
        self.service, self.rt, self.p = service, rt, p
        self.headers_sent = False

    def __call__(self, obj: Obj) -> Obj:
        obj = self.service.with_type(self.rt, obj)
        if not self.p.table:
            return obj
        from minik.api.tables import table
        t = table(self.rt, [obj], utcnow(), with_headers=not self.headers_sent,
                  resource_version=obj.get("metadata", {}).get("resourceVersion", ""), custom_columns=self.p.custom_columns)
        self.headers_sent = True
        return t


def _matches(p: WatchParams, obj: Obj | None) -> bool:
    if obj is None:
        return False
    if p.labels is not None and not p.labels.matches((obj.get("metadata") or {}).get("labels") or {}):
        return False
    if p.fields is not None and not p.fields.matches(obj):
        return False
    return True


def _classify(p: WatchParams, etype: str, obj: Obj, prev: Obj | None) -> str:
    """The event type this watcher sees, given selectors ("" = nothing to send)."""
    if p.labels is None and p.fields is None:
        return etype
    now, before = _matches(p, obj), _matches(p, prev)
    if etype == "ADDED":
        return "ADDED" if now else ""
    if etype == "DELETED":
        return "DELETED" if (before or now) else ""
    if now and before:
        return "MODIFIED"
    if now:
        return "ADDED"
    if before:
        return "DELETED"
    return ""


FLUSH_BYTES = 64 * 1024   # events already waiting are sent together, up to this much per write


async def serve_watch(request: web.Request, service: ResourceService, rt: ResourceType, p: WatchParams,
                      content_type: str, encoded: EncodedObjects | None = None) -> web.StreamResponse:
    store = service.store
    rv = p.resource_version
    initial: list[Obj] = []
    if rv in ("", "0") or p.send_initial:
        page = service.list(rt, p.namespace, p.labels, p.fields)
        initial, since = page.items, page.resource_version
        if rv not in ("", "0") and p.send_initial:
            since = store.revision
    else:
        try:
            since = int(rv)
        except ValueError:
            raise st.bad_request(f"invalid resourceVersion: {rv!r}") from None
    table_encoder = _Encoder(service, rt, p) if p.table else None
    shared = encoded if encoded is not None else EncodedObjects(budget=0)

    def line(etype: str, obj: Obj) -> bytes:
        # JSON watches share one encoded line per (object revision, type, kind) across every
        # watcher; Table rows depend on the watcher (headers once), so they are encoded here.
        if table_encoder is not None:
            return _line(etype, table_encoder(obj))
        return shared.event(etype, rt.api_version, rt.kind, obj)

    try:
        watcher = store.watch(rt.store_key, p.namespace, since)
    except store_errors.Expired as e:
        resp = await _start(request, content_type)
        await resp.write(_line("ERROR", st.StatusError(410, "Expired", str(e)).body()))
        await resp.write_eof()
        return resp
    deadline = time.monotonic() + (p.timeout if p.timeout > 0 else DEFAULT_TIMEOUT)
    last_bookmark = time.monotonic()
    try:
        resp = await _start(request, content_type)
    except BaseException:
        watcher.close()
        raise
    try:
        chunk: list[bytes] = []
        size = 0
        for obj in initial:
            data = line("ADDED", obj)
            chunk.append(data)
            size += len(data)
            if size >= FLUSH_BYTES:
                await resp.write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            await resp.write(b"".join(chunk))
        del initial, chunk
        if p.send_initial and p.bookmarks:
            await resp.write(_line("BOOKMARK", _bookmark(rt, since, initial_end=True)))
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            try:
                ev = await watcher.next(min(DISCONNECT_POLL, deadline - now))
                if ev is None:
                    if p.bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL:
                        await resp.write(_line("BOOKMARK", _bookmark(rt, store.revision)))
                        last_bookmark = time.monotonic()
                    continue
                out: list[bytes] = []
                size = 0
                while ev is not None:
                    etype = _classify(p, ev.type, ev.object, ev.prev_object)
                    if etype:
                        data = line(etype, ev.object)
                        out.append(data)
                        size += len(data)
                    if size >= FLUSH_BYTES:
                        break
                    ev = watcher.next_nowait()
            except StopAsyncIteration:
                break
            except store_errors.Expired as e:   # compacted, or this watcher fell too far behind
                await resp.write(_line("ERROR", st.StatusError(410, "Expired", str(e)).body()))
                break
            if out:
                await resp.write(b"".join(out) if len(out) > 1 else out[0])
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        # Closing here (not when a later write fails) keeps the store's watcher count exact.
        watcher.close()
    with contextlib.suppress(Exception):
        await resp.write_eof()
    return resp


def _bookmark(rt: ResourceType, revision: int, initial_end: bool = False) -> Obj:
    m: Obj = {"resourceVersion": str(revision)}
    if initial_end:
        m["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.api_version, "metadata": m}


async def _start(request: web.Request, content_type: str) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    return resp


WatchFactory = Callable[..., Any]
