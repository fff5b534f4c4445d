"""Watch streams: newline-delimited JSON events over a chunked response, as kubectl expects.

Semantics (kubectl-protocol §6): resourceVersion absent/"0" → synthetic ADDED for the current
state, then live events; N → events after N (410 Expired as an ERROR event when compacted);
selectors turn objects entering/leaving the selection into ADDED/DELETED; bookmarks only when
asked and only when everything up to that revision was sent; Table watches carry the column
definitions in the first event only. Neighbours: `minik.api.handlers` calls `serve_watch`;
events come from `minik.store` through a pump task so waiting never cancels the store iterator.
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
from minik.api.meta import Obj, utcnow
from minik.api.service import ResourceService
from minik.apis.registry import ResourceType
from minik.apis.selectors import FieldSelector, LabelSelector
from minik.store import errors as store_errors

log = logging.getLogger("minik.api.watch")

BOOKMARK_INTERVAL = 30.0
DISCONNECT_POLL = 5.0   # a closed client is noticed within this (and on the next write)
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


async def serve_watch(request: web.Request, service: ResourceService, rt: ResourceType, p: WatchParams,
                      content_type: str) -> web.StreamResponse:
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
    encode = _Encoder(service, rt, p)
    try:
        watcher = store.watch(rt.store_key, p.namespace, since)
    except store_errors.Expired as e:
        resp = await _start(request, content_type)
        await resp.write(_line("ERROR", st.StatusError(410, "Expired", str(e)).body()))
        await resp.write_eof()
        return resp
    queue: asyncio.Queue[Any] = asyncio.Queue()
    done = object()

    async def pump() -> None:
        try:
            async for ev in watcher:
                queue.put_nowait(ev)
        except store_errors.Expired as e:
            queue.put_nowait(e)
        except Exception as e:  # the store closed the watch (slow consumer, shutdown): client relists
            queue.put_nowait(e)
        finally:
            queue.put_nowait(done)

    pump_task = asyncio.create_task(pump(), name=f"watch-pump-{rt.plural}")
    resp = await _start(request, content_type)
    deadline = time.monotonic() + (p.timeout if p.timeout > 0 else DEFAULT_TIMEOUT)
    last_bookmark = time.monotonic()
    try:
        for obj in initial:
            await resp.write(_line("ADDED", encode(obj)))
        if p.send_initial and p.bookmarks:
            await resp.write(_line("BOOKMARK", _bookmark(rt, since, initial_end=True)))
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            transport = request.transport
            if transport is None or transport.is_closing():
                break
            wait = min(DISCONNECT_POLL, deadline - now)
            try:
                ev = await asyncio.wait_for(queue.get(), wait)
            except asyncio.TimeoutError:
                if p.bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL and queue.empty():
                    await resp.write(_line("BOOKMARK", _bookmark(rt, store.revision)))
                    last_bookmark = time.monotonic()
                continue
            if ev is done:
                break
            if isinstance(ev, store_errors.Expired):
                await resp.write(_line("ERROR", st.StatusError(410, "Expired", str(ev)).body()))
                break
            if isinstance(ev, Exception):
                await resp.write(_line("ERROR", st.StatusError(410, "Expired", f"watch closed: {ev}; please relist").body()))
                break
            etype = _classify(p, ev.type, ev.object, ev.prev_object)
            if etype:
                await resp.write(_line(etype, encode(ev.object)))
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        pass
    finally:
        pump_task.cancel()
        with contextlib.suppress(Exception):
            watcher.close()
        with contextlib.suppress(BaseException):
            await pump_task
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
