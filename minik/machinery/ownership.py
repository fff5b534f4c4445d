"""Claiming objects by controllerRef: Kubernetes's ControllerRefManager.

`claim(owner, selector, candidates)` is pure and decides, for every candidate in the owner's
namespace:
- owned by this owner (controllerRef uid) and still matching → kept; no longer matching →
  released (unless the owner is being deleted: then it keeps what it has, as kube does);
- owned by another controller → never touched;
- an orphan matching the selector → adopted, unless the owner or the orphan is being deleted.
`adopt()` and `release()` do the writes with a merge patch carrying the object's
resourceVersion, so a concurrent change makes the write fail with 409 (the sync is retried on
fresher caches); an object already gone counts as done.
Neighbours: the ReplicaSet controller claims pods, the Deployment controller ReplicaSets, the
workload controllers (Job, StatefulSet, DaemonSet) do the same; `minik.machinery.controller`
has the ownerReference helpers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from minik.apis.selectors import LabelSelector
from minik.client import Client, ClientError, Obj
from minik.machinery.controller import controller_ref, owner_reference


@dataclass(frozen=True, slots=True)
class Claim:
    owned: tuple[Obj, ...]     # ours and still matching
    adopt: tuple[Obj, ...]     # orphans matching the selector
    release: tuple[Obj, ...]   # ours but no longer matching


def _meta(obj: Obj) -> Obj:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


def _labels(obj: Obj) -> dict[str, str]:
    labels = _meta(obj).get("labels")
    return labels if isinstance(labels, dict) else {}


def owner_refs(obj: Obj) -> list[Obj]:
    """The object's ownerReferences, ignoring malformed entries (a stored object may hold garbage)."""
    refs = _meta(obj).get("ownerReferences")
    return [r for r in refs if isinstance(r, dict)] if isinstance(refs, list) else []


def claim(owner: Obj, selector: LabelSelector, candidates: Iterable[Obj]) -> Claim:
    uid = _meta(owner).get("uid")
    deleting = bool(_meta(owner).get("deletionTimestamp"))
    owned: list[Obj] = []
    adopt: list[Obj] = []
    release: list[Obj] = []
    for obj in candidates:
        ref = controller_ref(obj) if isinstance(_meta(obj).get("ownerReferences"), list) else None
        matches = selector.matches(_labels(obj))
        if ref is not None:
            if ref.get("uid") != uid:
                continue
            if matches or deleting:
                owned.append(obj)
            else:
                release.append(obj)
        elif matches and not deleting and not _meta(obj).get("deletionTimestamp"):
            adopt.append(obj)
    return Claim(tuple(owned), tuple(adopt), tuple(release))


async def adopt(client: Client, resource: str, owner: Obj, api_version: str, kind: str, obj: Obj,
                field_manager: str) -> Obj | None:
    """Add `owner` as the controller of `obj`; None when `obj` is gone."""
    ref = owner_reference(owner, api_version, kind)
    m = _meta(obj)
    refs = [r for r in owner_refs(obj) if r.get("uid") != ref["uid"]] + [ref]
    try:
        return await client.patch(resource, m.get("namespace", ""), m["name"],
                                  {"metadata": {"ownerReferences": refs, "resourceVersion": m.get("resourceVersion")}},
                                  field_manager=field_manager)
    except ClientError as e:
        if e.not_found:
            return None
        raise


async def release(client: Client, resource: str, owner: Obj, obj: Obj, field_manager: str) -> Obj | None:
    """Remove `owner`'s reference from `obj`; None when `obj` is gone."""
    uid = _meta(owner).get("uid")
    m = _meta(obj)
    refs = [r for r in owner_refs(obj) if r.get("uid") != uid]
    try:
        return await client.patch(resource, m.get("namespace", ""), m["name"],
                                  {"metadata": {"ownerReferences": refs or None, "resourceVersion": m.get("resourceVersion")}},
                                  field_manager=field_manager)
    except ClientError as e:
        if e.not_found:
            return None
        raise


async def claim_and_write(client: Client, resource: str, owner: Obj, api_version: str, kind: str,
                          selector: LabelSelector, candidates: Iterable[Obj], field_manager: str) -> list[Obj]:
    """Claim, adopt the orphans, release what stopped matching; returns what the owner now owns."""
    c = claim(owner, selector, candidates)
    out = list(c.owned)
    for obj in c.adopt:
        got = await adopt(client, resource, owner, api_version, kind, obj, field_manager)
        if got is not None:
            out.append(got)
    for obj in c.release:
        await release(client, resource, owner, obj, field_manager)
    return out
