"""Start-up audit of what the store holds: objects that could never pass today's API are reported.

An old or damaged database (or one written by hand) may hold objects with wrongly typed fields
(`spec.priority: "s"`, `metadata.ownerReferences: 1`). They are loaded and served as they are;
every reader (controllers, scheduler, agent) is written to survive them. This pass makes them
visible: one log line and one Warning Event (`MalformedObject`) per object, naming the fields,
so an operator can fix or delete them (DELETE always works on such objects).
Neighbours: reads the store's cache, checks with `ResourceService.structural_causes`
(`minik.apis.structural`), records through `minik.machinery.events.EventRecorder`; started once
by `minik.daemon.Server._start_poison_audit` after the controllers.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from minik.api.meta import Obj
from minik.api.service import ResourceService
from minik.apis.errors import Cause
from minik.apis.registry import ResourceType
from minik.machinery.events import EventRecorder

log = logging.getLogger("minik.api.audit")

REASON = "MalformedObject"
# Yield to the event loop every this many objects: a large store must not stall requests.
_BATCH = 200


@dataclass(frozen=True, slots=True)
class Malformed:
    rt: ResourceType
    object: Obj
    causes: tuple[Cause, ...]

    @property
    def message(self) -> str:
        shown = "; ".join(f"{c.field}: {c.message}" if c.field else c.message for c in self.causes[:5])
        more = f" (and {len(self.causes) - 5} more)" if len(self.causes) > 5 else ""
        return f"stored object does not match the {self.rt.kind} schema: {shown}{more}"


def resource_types(service: ResourceService) -> list[ResourceType]:
    """One served type per stored resource (the preferred version where several share a key)."""
    seen: dict[str, ResourceType] = {}
    for rt in service.registry.types:
        if rt.virtual:
            continue
        cur = seen.get(rt.store_key)
        if cur is None or (cur.version != service.registry.preferred_version(cur.group)
                           and rt.version == service.registry.preferred_version(rt.group)):
            seen[rt.store_key] = rt
    return list(seen.values())


async def find_malformed(service: ResourceService) -> list[Malformed]:
    out: list[Malformed] = []
    checked = 0
    for rt in resource_types(service):
        for obj in service.store.list(rt.store_key, None).items:
            causes = service.structural_causes(rt, obj)
            if causes:
                out.append(Malformed(rt, obj, tuple(causes)))
            checked += 1
            if checked % _BATCH == 0:
                await asyncio.sleep(0)
    return out


async def report(service: ResourceService, recorder: EventRecorder) -> int:
    """Log and record an Event for every malformed stored object; return how many there were."""
    found = await find_malformed(service)
    for bad in found:
        m = bad.object.get("metadata")
        m = m if isinstance(m, dict) else {}
        where = f"{m.get('namespace')}/" if bad.rt.namespaced else ""
        log.warning("malformed %s %s%s in the store: %s", bad.rt.plural, where, m.get("name"), bad.message)
        ref = service.with_type(bad.rt, bad.object)
        await recorder.event(ref, "Warning", REASON, bad.message)
    if found:
        log.warning("%d malformed object(s) in the store; see the %s events", len(found), REASON)
    return len(found)
