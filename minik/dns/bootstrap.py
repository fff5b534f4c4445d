"""The `kube-dns` Service of kube-system, as kubeadm and k3s clusters have it (tools look for the
`k8s-app: kube-dns` label): ClusterIP = the cluster DNS IP, ports dns/53 UDP, dns-tcp/53 TCP and
metrics/9153 TCP. It has no selector (no DNS pods: the daemon answers on the DNS IP itself), so
its Endpoints and EndpointSlice are written here and point at the DNS IP. Reconciled at every
start: nothing is written when all three are already as wanted (an idle restart writes nothing).
Neighbours: called from `minik.daemon` (`_start_dns`) through `minik.client`.
"""

from __future__ import annotations

import ipaddress
import logging
from typing import Any

from minik.client import Client, ClientError

log = logging.getLogger("minik.dns.bootstrap")

Obj = dict[str, Any]
NAMESPACE = "kube-system"
NAME = "kube-dns"
SLICE_NAME = "kube-dns-node"
FIELD_MANAGER = "minik-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true", "kubernetes.io/name": "CoreDNS"}
PORTS = [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
         {"name": "metrics", "port": 9153, "protocol": "TCP"}]


def service(dns_ip: str) -> Obj:
    family = "IPv6" if ipaddress.ip_address(dns_ip).version == 6 else "IPv4"
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS),
                         "annotations": {"prometheus.io/port": "9153", "prometheus.io/scrape": "true"}},
            "spec": {"clusterIP": dns_ip, "clusterIPs": [dns_ip], "ipFamilies": [family], "ipFamilyPolicy": "SingleStack",
                     "ports": [{**p, "targetPort": p["port"]} for p in PORTS]}}


def endpoints(dns_ip: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE,
                         "labels": {**LABELS, "endpointslice.kubernetes.io/skip-mirror": "true"}},
            "subsets": [{"addresses": [{"ip": dns_ip}], "ports": [dict(p) for p in PORTS]}]}


def endpoint_slice(dns_ip: str) -> Obj:
    family = "IPv6" if ipaddress.ip_address(dns_ip).version == 6 else "IPv4"
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": SLICE_NAME, "namespace": NAMESPACE,
                         "labels": {**LABELS, "kubernetes.io/service-name": NAME,
                                    "endpointslice.kubernetes.io/managed-by": "minik-dns"}},
            "addressType": family,
            "endpoints": [{"addresses": [dns_ip], "conditions": {"ready": True, "serving": True, "terminating": False}}],
            "ports": [dict(p) for p in PORTS]}


def _same(cur: Obj, want: Obj, fields: tuple[str, ...]) -> bool:
    labels = (cur.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (want["metadata"].get("labels") or {}).items()):
        return False
    return all(_subset(want.get(f), cur.get(f)) for f in fields)


def _subset(want: Any, cur: Any) -> bool:
    """Every field of `want` is in `cur` with the same value (defaults the API added are fine)."""
    if isinstance(want, dict):
        return isinstance(cur, dict) and all(_subset(v, cur.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(cur, list) and len(want) == len(cur) and all(_subset(w, c) for w, c in zip(want, cur))
    return bool(want == cur)


async def _ensure(client: Client, resource: str, want: Obj, fields: tuple[str, ...]) -> None:
    name = want["metadata"]["name"]
    cur = await client.get(resource, NAMESPACE, name)
    if cur is None:
        await client.create(resource, NAMESPACE, want, field_manager=FIELD_MANAGER)
        return
    if _same(cur, want, fields):
        return
    if resource == "services" and (cur.get("spec") or {}).get("clusterIP") != want["spec"]["clusterIP"]:
        # The ClusterIP is immutable: a changed --cluster-dns means a new Service.
        await client.delete(resource, NAMESPACE, name)
        await client.create(resource, NAMESPACE, want, field_manager=FIELD_MANAGER)
        return
    upd = dict(cur)
    upd["metadata"] = {**cur["metadata"], "labels": {**(cur["metadata"].get("labels") or {}), **want["metadata"]["labels"]}}
    for f in fields:
        upd[f] = want[f] if f != "spec" else {**(cur.get("spec") or {}), **want["spec"]}
    await client.update(resource, NAMESPACE, name, upd, field_manager=FIELD_MANAGER)


async def ensure_kube_dns(client: Client, dns_ip: str) -> None:
    for resource, want, fields in (("services", service(dns_ip), ("spec",)),
                                   ("endpoints", endpoints(dns_ip), ("subsets",)),
                                   ("discovery.k8s.io/endpointslices", endpoint_slice(dns_ip), ("addressType", "endpoints", "ports"))):
        try:
            await _ensure(client, resource, want, fields)
        except ClientError as e:
            log.warning("kube-dns %s: %s", resource, e.message)
