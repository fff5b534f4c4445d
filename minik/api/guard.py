"""The outermost middleware: whatever happens below, the client gets a Kubernetes `Status`.

`ApiServer._errors` (`minik.api.app`) maps the errors it knows; this guard sits outside it and
catches what would otherwise reach aiohttp's own plain-text error page: an `HTTPException` with
a status the inner middleware re-raises, a failure inside the error mapping itself (a message
that cannot be encoded, a malformed object quoted in an error), a RecursionError or MemoryError
from a pathological body. It logs the traceback once and answers 500 `InternalError` (or the
HTTPException's own code), always as JSON. Neighbours: installed first in
`ApiServer.build`'s middleware list; renders with `minik.api.status.status_body`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Awaitable, Callable

from aiohttp import web

from minik.api import status as st

log = logging.getLogger("minik.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 405: "MethodNotAllowed",
            406: "NotAcceptable", 408: "Timeout", 409: "Conflict", 410: "Gone", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 503: "ServiceUnavailable",
            504: "Timeout"}


def status_response(code: int, reason: str, message: str) -> web.Response:
    body = json.dumps(st.status_body(code, reason, message), separators=(",", ":"), ensure_ascii=True).encode() + b"\n"
    return web.Response(body=body, status=code, headers={"Content-Type": "application/json"})


@web.middleware
async def last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except asyncio.CancelledError:
        raise
    except web.HTTPException as e:
        if e.status < 400:
            raise   # redirects and the like are answers, not errors
        return status_response(e.status, _REASONS.get(e.status, "InternalError" if e.status >= 500 else "BadRequest"),
                               e.text or e.reason or "error")
    except Exception as e:
        log.exception("unhandled error serving %s %s", request.method, request.path)
        return status_response(500, "InternalError", f"Internal error occurred: {type(e).__name__}")
