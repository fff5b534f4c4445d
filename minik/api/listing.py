"""LIST bodies written as a stream of chunks instead of one document built in memory.

Why: a LIST used to become one dict, then one JSON string, then one bytes object, then the
TLS transport's buffer of it, per request; 200 concurrent LISTs of 1,000 objects held hundreds of
megabytes at once. Here the items are encoded one by one (through the shared per-revision
encodings of `minik.api.encoded`, so concurrent LISTs of the same objects encode each once) and
written in chunks of about `CHUNK` bytes; `StreamResponse.write` waits for the client to drain
the previous ones, so a LIST holds at most a chunk plus the socket buffer whatever its size.
Small lists go out as one ordinary response (with Content-Length).
The bytes are exactly what `json_response` would send. Neighbours: `minik.api.handlers._list`.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from minik.api.encoded import EncodedObjects, dumps
from minik.api.meta import Obj

CHUNK = 64 * 1024


async def respond_list(request: web.Request, encoded: EncodedObjects, api_version: str, list_kind: str,
                       kind: str, list_meta: Obj, items: Sequence[Obj], content_type: str) -> web.StreamResponse:
    head = (b'{"kind":' + dumps(list_kind) + b',"apiVersion":' + dumps(api_version)
            + b',"metadata":' + dumps(list_meta) + b',"items":[')
    tail = b"]}\n"
    parts: list[bytes] = [head]
    size = len(head)
    resp: web.StreamResponse | None = None
    for i, obj in enumerate(items):
        data = encoded.object(api_version, kind, obj)
        if i:
            parts.append(b",")
        parts.append(data)
        size += len(data) + 1
        if size >= CHUNK:
            if resp is None:
                resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
                resp.enable_chunked_encoding()
                await resp.prepare(request)
            await resp.write(b"".join(parts))
            parts, size = [], 0
    parts.append(tail)
    if resp is None:
        return web.Response(body=b"".join(parts), status=200, headers={"Content-Type": content_type})
    await resp.write(b"".join(parts))
    await resp.write_eof()
    return resp
