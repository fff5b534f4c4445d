"""ControllerRevisions: the template history of StatefulSets and DaemonSets (Kubernetes's
`controller/history` package, in small).

A revision stores, in `data`, the patch that restores its owner's pod template
(`{"spec": {"template": {..., "$patch": "replace"}}}`), which is what `kubectl rollout undo`
applies as a strategic-merge patch. Its name is `<owner>-<hash>`, the hash being FNV-1a 32 of
the canonical JSON of `data` (plus the owner's collisionCount) in Kubernetes's safe alphabet; it
carries the owner's template labels plus `controller.kubernetes.io/hash`, a controller
ownerReference and a `revision` number that only grows (re-applying an old template bumps the
number of the equal revision instead of creating a new one, as kube does).
Pure functions; the StatefulSet and DaemonSet controllers do the writes.
Neighbours: `minik.controllers.statefulset`, `minik.controllers.daemonset`.
"""

from __future__ import annotations

import copy
import json
from typing import Any, Iterable

from minik.client import Obj
from minik.machinery.controller import controller_ref, owner_reference

HASH_LABEL = "controller.kubernetes.io/hash"
POD_REVISION_LABEL = "controller-revision-hash"
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h ^= b
        h = (h * 0x01000193) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in s)


def template_patch(owner: Obj) -> Obj:
    """The revision data of `owner`: its pod template, replacing whatever a rollback finds."""
    tmpl = copy.deepcopy((owner.get("spec") or {}).get("template") or {})
    tmpl["$patch"] = "replace"
    return {"spec": {"template": tmpl}}


def revision_hash(data: Any, collision_count: int = 0) -> str:
    raw = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        raw += str(collision_count).encode()
    return safe_encode(str(fnv32a(raw)))


def revision_number(cr: Obj) -> int:
    r = cr.get("revision")
    return r if isinstance(r, int) and not isinstance(r, bool) else 0


def sort_revisions(revs: Iterable[Obj]) -> list[Obj]:
    """Oldest first (by revision, then creation time, then name), as history.SortControllerRevisions."""
    return sorted(revs, key=lambda r: (revision_number(r), (r.get("metadata") or {}).get("creationTimestamp") or "",
                                       (r.get("metadata") or {}).get("name", "")))


def next_revision(revs: Iterable[Obj]) -> int:
    return max((revision_number(r) for r in revs), default=0) + 1


def new_revision(owner: Obj, api_version: str, kind: str, revision: int, collision_count: int = 0) -> Obj:
    """The ControllerRevision for `owner`'s current template."""
    m = owner["metadata"]
    data = template_patch(owner)
    h = revision_hash(data, collision_count)
    labels = dict((((owner.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {})
    labels[HASH_LABEL] = h
    return {"apiVersion": "apps/v1", "kind": "ControllerRevision",
            "metadata": {"name": f"{m['name']}-{h}", "namespace": m.get("namespace", ""), "labels": labels,
                         "ownerReferences": [owner_reference(owner, api_version, kind)]},
            "data": data, "revision": revision}


def _strip(v: Any) -> Any:
    """Template data compared without nulls/empties, which a round trip through the API may drop."""
    if isinstance(v, dict):
        out = {k: _strip(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if x not in (None, {}, [])}
    if isinstance(v, list):
        return [_strip(x) for x in v]
    return v


def equal_revision(a: Obj, b: Obj) -> bool:
    return bool(_strip(a.get("data")) == _strip(b.get("data")))


def find_equal(revs: Iterable[Obj], want: Obj) -> list[Obj]:
    return [r for r in revs if equal_revision(r, want)]


def owned_by(revs: Iterable[Obj], owner: Obj) -> list[Obj]:
    uid = (owner.get("metadata") or {}).get("uid")
    return [r for r in revs if (controller_ref(r) or {}).get("uid") == uid]


def history_to_delete(revs: list[Obj], live: set[str], limit: int) -> list[Obj]:
    """The oldest revisions beyond `limit` that no live pod or status names (truncateHistory)."""
    candidates = [r for r in sort_revisions(revs) if (r.get("metadata") or {}).get("name") not in live]
    extra = len(candidates) - max(0, limit)
    return candidates[:extra] if extra > 0 else []


def template_of(cr: Obj) -> Obj:
    """The pod template a revision restores (without the patch directive)."""
    tmpl = copy.deepcopy(((cr.get("data") or {}).get("spec") or {}).get("template") or {})
    tmpl.pop("$patch", None)
    return tmpl


def apply_revision(owner: Obj, cr: Obj) -> Obj:
    """A copy of `owner` whose template is the one `cr` records (ApplyRevision)."""
    out = copy.deepcopy(owner)
    out.setdefault("spec", {})["template"] = template_of(cr)
    return out
