"""InformerFactory: one shared, read-only informer (cache + watch) per resource for the whole process.

Every controller, the scheduler and later the proxier, DNS and ingress take the factory in their
constructor and ask `informer("pods")`; all of them get the same `Informer`, so the daemon keeps one
deep-copied cache of each resource however many consumers read it (client-go's
SharedInformerFactory). A consumer registers its handlers and indexers on the shared informer and
never mutates what it reads. Filtered informers (a field or label selector, e.g. one ConfigMap name)
are shared per (resource, selectors).
The factory runs each informer as a supervised task named `informer-<resource>`: `start()` spawns
the informers asked for so far, and an informer asked for after `start()` is spawned at once.
`wait_synced(*resources)` waits until those caches are filled.
Built-in indexes: pods by node (`NODE_INDEX`, `spec.nodeName`, "" while unscheduled), every
resource by controller owner uid (`CONTROLLER_INDEX`), and EndpointSlices by their Service's
"namespace/name" (`SERVICE_INDEX`, from the `kubernetes.io/service-name` label; registered by the
endpoints controller, the proxier and DNS alike, so the index exists once).
Neighbours: `minik.machinery.informer` (the cache), `minik.machinery.tasks.Supervisor` (the
tasks); built once by `minik.daemon` and passed to `minik.controllers` and `minik.scheduler`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from minik.client import Client, Obj
from minik.machinery.informer import Informer
from minik.machinery.tasks import Supervisor

NODE_INDEX = "nodeName"
CONTROLLER_INDEX = "controllerUID"
SERVICE_INDEX = "serviceName"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


def pod_node(pod: Obj) -> list[str]:
    spec = pod.get("spec")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return [node if isinstance(node, str) else ""]


def controller_uid(obj: Obj) -> list[str]:
    refs = (obj.get("metadata") or {}).get("ownerReferences")
    if not isinstance(refs, list):
        return []
    for r in refs:
        if isinstance(r, dict) and r.get("controller") is True and isinstance(r.get("uid"), str):
            return [r["uid"]]
    return []


def slice_service(obj: Obj) -> list[str]:
    """Index function: the "namespace/name" of the Service an EndpointSlice belongs to."""
    m = obj.get("metadata") or {}
    labels = m.get("labels") if isinstance(m, dict) else None
    svc = labels.get(SERVICE_NAME_LABEL) if isinstance(labels, dict) else None
    return [f"{m.get('namespace') or ''}/{svc}"] if isinstance(svc, str) and svc else []


@dataclass(frozen=True, slots=True)
class InformerKey:
    resource: str
    field_selector: str = ""
    label_selector: str = ""

    @property
    def task_name(self) -> str:
        name = f"informer-{self.resource}"
        if self.field_selector or self.label_selector:
            name += f"[{self.field_selector};{self.label_selector}]"
        return name


class InformerFactory:
    def __init__(self, client: Client, supervisor: Supervisor | None = None) -> None:
        self.client = client
        self.supervisor = supervisor if supervisor is not None else Supervisor(max_backoff=10.0)
        self._informers: dict[InformerKey, Informer] = {}
        self._started = False

    def informer(self, resource: str, field_selector: str = "", label_selector: str = "") -> Informer:
        """The shared informer of `resource` (created on first ask; the same object afterwards)."""
        key = InformerKey(resource, field_selector, label_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, resource, label_selector=label_selector, field_selector=field_selector)
            inf.add_indexer(CONTROLLER_INDEX, controller_uid)
            if resource == "pods":
                inf.add_indexer(NODE_INDEX, pod_node)
            self._informers[key] = inf
            if self._started:
                self.supervisor.spawn(key.task_name, inf.run)
        return inf

    def informers(self) -> dict[InformerKey, Informer]:
        """Every informer built so far (tests and metrics count caches per resource)."""
        return dict(self._informers)

    def count(self, resource: str) -> int:
        return sum(1 for k in self._informers if k.resource == resource)

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        for key, inf in self._informers.items():
            self.supervisor.spawn(key.task_name, inf.run)

    async def stop(self) -> None:
        """Stop the informers (only meaningful when the factory owns its supervisor)."""
        await self.supervisor.stop()

    async def wait_synced(self, *resources: str) -> None:
        """Wait until the named informers (all when none named) have filled their caches."""
        wanted = [inf for k, inf in self._informers.items() if not resources or k.resource in resources]
        await asyncio.gather(*(inf.wait_synced() for inf in wanted))
