"""How large an object is once encoded, and how large one may be.

Kubernetes objects live under etcd's request limit (1.5 MiB), counted on the whole encoded
object: keys, values and metadata. The store enforces it exactly on the text it writes; the API
checks early, right after decoding or patching, so an oversized object (a ConfigMap with 150,000
empty keys) is refused before defaulting, validation and managedFields spend seconds on it.
Neighbours: `minik.store.store` (exact check), `minik.api.service` (early check),
`minik.api.patch.jsonpatch` (bounding what `copy` operations produce).
"""

from __future__ import annotations

from typing import Any

MAX_OBJECT_BYTES = 1536 * 1024


def encoded_size(value: Any, limit: int) -> int:
    """About the JSON-encoded size of `value`, never more than the exact size for the common
    cases (strings without escapes, compact separators, small numbers count 1 byte); counting
    stops once past `limit`, so a huge value costs no more than the limit to measure."""
    total = 0
    stack: list[Any] = [value]
    while stack and total <= limit:
        cur = stack.pop()
        if isinstance(cur, str):
            total += len(cur) + 2
        elif isinstance(cur, dict):
            total += 2
            for k, v in cur.items():
                total += len(k) + 3 if isinstance(k, str) else 4
                stack.append(v)
        elif isinstance(cur, list):
            total += 2
            stack.extend(cur)
        else:
            total += 1
    return total


def over_limit(value: Any, limit: int = MAX_OBJECT_BYTES) -> int:
    """A lower bound of the encoded size when that is already over `limit`, else 0."""
    size = encoded_size(value, limit)
    return size if size > limit else 0
