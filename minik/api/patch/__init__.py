"""PATCH machinery: the four Kubernetes patch types and managedFields bookkeeping.

* `json_patch` — RFC 6902 (`application/json-patch+json`), module `jsonpatch`;
* `json_merge_patch` — RFC 7386 (`application/merge-patch+json`), module `merge`;
* `strategic_merge_patch` — Kubernetes strategic merge (`application/strategic-merge-patch+json`),
  module `strategic`;
* `server_side_apply` — server-side apply (`application/apply-patch+yaml`), module `apply`;
* `update_managed_fields` — ownership tracking for ordinary writes, module `managedfields`.

All functions return new objects and never mutate their inputs (except `update_managed_fields`,
whose job is to fill in `new["metadata"]["managedFields"]`). Schema questions go through
`typeinfo`; field paths and sets live in `fieldpath`. Neighbours: `minik.api.service` calls
these; errors are `minik.apis.errors` types mapped to a Status by `minik.api.status`.
"""

from minik.api.patch.apply import server_side_apply
from minik.api.patch.jsonpatch import JsonPatchFailed, json_patch
from minik.api.patch.managedfields import update_managed_fields
from minik.api.patch.merge import json_merge_patch
from minik.api.patch.strategic import strategic_merge_patch

__all__ = [
    "JsonPatchFailed",
    "json_merge_patch",
    "json_patch",
    "server_side_apply",
    "strategic_merge_patch",
    "update_managed_fields",
]
