"""The ingress controller: keeps the proxy's route table, the TLS certificates and the Ingresses'
status in step with the cluster.

It reads only the daemon's shared informers (Ingresses, IngressClasses, Services,
EndpointSlices, Secrets); every change marks the table dirty and one loop rebuilds it at most
every `debounce` seconds (routes follow a change well within a second), so a burst of endpoint
updates costs one rebuild. The rebuild is `routes.build` (pure); its result is swapped into the
proxy in one assignment, so requests in flight keep the backend they were routed to and tunnels
(WebSocket) are untouched. Problems (conflicts, resource backends, bad annotations, unusable
Secrets) become Warning events on the Ingress, once per distinct problem. Served Ingresses get
`status.loadBalancer.ingress` = this node's addresses.
Listeners: HTTP and HTTPS on the configured ports, plus the sweep task for timeouts.
Neighbours: `minik.ingress.routes`, `minik.ingress.proxy`, `minik.ingress.tls`;
started by `minik.daemon` (`_start_ingress`), which also bootstraps the `minik` IngressClass.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass

from minik.client import Client, ClientError, Obj
from minik.ingress import routes
from minik.ingress.proxy import Proxy, ProxySettings
from minik.ingress.tls import DEFAULT_CERT_DNS, DEFAULT_CERT_NAME, TlsStore
from minik.machinery.events import EventRecorder
from minik.machinery.informers import InformerFactory
from minik.pki.nodekey import self_signed

log = logging.getLogger("minik.ingress")

INGRESSES = "networking.k8s.io/ingresses"
CLASSES = "networking.k8s.io/ingressclasses"
SLICES = "discovery.k8s.io/endpointslices"


@dataclass(frozen=True, slots=True)
class IngressSettings:
    bind_address: str = "0.0.0.0"
    http_port: int = 80
    https_port: int = 443
    addresses: tuple[str, ...] = ()       # this node's addresses, written to the Ingresses' status
    debounce: float = 0.05
    proxy: ProxySettings = ProxySettings()


def class_object() -> Obj:
    """The IngressClass this controller serves, marked default (as k3s marks traefik's)."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": routes.CLASS_NAME, "annotations": {routes.DEFAULT_CLASS_ANNOTATION: "true"}},
            "spec": {"controller": routes.CONTROLLER}}


async def ensure_class(client: Client) -> None:
    if await client.get(CLASSES, "", routes.CLASS_NAME) is not None:
        return
    try:
        await client.create(CLASSES, "", class_object(), field_manager="minik-ingress")
    except ClientError as e:
        if e.code != 409:
            raise


def load_balancer_status(addresses: tuple[str, ...]) -> list[Obj]:
    out: list[Obj] = []
    for a in addresses:
        try:
            ipaddress.ip_address(a)
            out.append({"ip": a})
        except ValueError:
            out.append({"hostname": a})
    return out


class IngressController:
    def __init__(self, client: Client, informers: InformerFactory, settings: IngressSettings,
                 recorder: EventRecorder | None = None) -> None:
        self.client, self.settings = client, settings
        self.recorder = recorder or EventRecorder(client, "minik-ingress")
        self.ingresses = informers.informer(INGRESSES)
        self.classes = informers.informer(CLASSES)
        self.services = informers.informer("services")
        self.slices = informers.informer(SLICES)
        self.secrets = informers.informer("secrets")
        self.proxy = Proxy(settings.proxy, https_port=settings.https_port)
        self.tls: TlsStore | None = None
        self._dirty = asyncio.Event()
        self._reported: set[tuple[str, str, str, str]] = set()
        self.builds = 0
        self._served: tuple[tuple[str, str], ...] = ()
        for inf in (self.ingresses, self.classes, self.services, self.slices):
            inf.add_handler(self._changed)
        self.secrets.add_handler(self._secret_changed)

    def _changed(self, old: Obj | None, new: Obj | None) -> None:
        self._dirty.set()

    def _secret_changed(self, old: Obj | None, new: Obj | None) -> None:
        obj = new or old or {}
        if obj.get("type") in ("kubernetes.io/tls", "Opaque", None):
            self._dirty.set()

    def metrics(self) -> list[str]:
        return [*self.proxy.counters.lines(), f"minik_ingress_route_builds_total {self.builds}"]

    async def run(self) -> None:
        s = self.settings
        if self.tls is None:
            # The default certificate from a child process: a joined agent runs this proxy too,
            # and loading cryptography for one certificate would cost it ~10 MB for good.
            pem = await self_signed(DEFAULT_CERT_NAME, DEFAULT_CERT_DNS)
            self.tls = await asyncio.to_thread(TlsStore, pem)
        tls = self.tls
        await asyncio.gather(*(inf.wait_synced() for inf in (self.ingresses, self.classes, self.services, self.slices, self.secrets)))
        self.rebuild_now()
        helpers = [asyncio.create_task(self.proxy.sweep(), name="ingress-sweep"),
                   asyncio.create_task(self.recorder.run(), name="ingress-events")]
        try:
            await self.proxy.listen(s.bind_address, s.http_port, "http")
            await self.proxy.listen(s.bind_address, s.https_port, "https", ssl=tls.context)
            log.info("ingress listening on %s: http %d, https %d", s.bind_address, s.http_port, s.https_port)
            await self._write_status()
            while True:
                await self._dirty.wait()
                await asyncio.sleep(s.debounce)
                self.rebuild_now()
                await self._write_status()
        finally:
            for t in helpers:
                t.cancel()
            await self.proxy.close()

    def rebuild_now(self) -> routes.Build:
        self._dirty.clear()
        snap = routes.snapshot(self.ingresses.list(), self.classes.list(), self.services.list(), self.slices.list())
        built = routes.build(snap)
        self.proxy.table = built.table
        self.builds += 1
        problems = list(built.problems)
        if self.tls is not None:
            for p in self.tls.update(built.table, self.secrets.get):
                ns, _, name = p.ingress.partition("/")
                problems.append(routes.Problem(ns, name, "TLSSecret", p.message))
        self._served = built.served
        self._report(problems)
        return built

    def _report(self, problems: list[routes.Problem]) -> None:
        current = {(p.namespace, p.name, p.reason, p.message) for p in problems}
        for key in current - self._reported:
            ing = self.ingresses.get(key[0], key[1])
            if ing is not None:
                log.warning("ingress %s/%s: %s", key[0], key[1], key[3])
                self.recorder.record(_ref(ing), "Warning", key[2], key[3])
        self._reported = current

    async def _write_status(self) -> None:
        if not self.settings.addresses:
            return  # a joined agent's proxy: the server's node owns the Ingresses' status
        want = load_balancer_status(self.settings.addresses)
        for ns, name in self._served:
            ing = self.ingresses.get(ns, name)
            if ing is None:
                continue
            have = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            if have == want:
                continue
            try:
                await self.client.patch(INGRESSES, ns, name, {"status": {"loadBalancer": {"ingress": want}}},
                                        subresource="status", field_manager="minik-ingress")
            except ClientError as e:
                if e.code not in (404, 409):
                    log.warning("ingress %s/%s: status not written: %s", ns, name, e.message)


def _ref(ing: Obj) -> Obj:
    m = ing.get("metadata") or {}
    return {"kind": "Ingress", "apiVersion": "networking.k8s.io/v1", "namespace": m.get("namespace", ""),
            "name": m.get("name", ""), "uid": m.get("uid", ""), "resourceVersion": m.get("resourceVersion", "")}
