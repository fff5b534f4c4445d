"""What a joined node may do over its link: Kubernetes's Node authorizer and NodeRestriction, cut
to what minik's agent uses.

A node reads: every Node (its pod network needs the others' addresses), pods (Kubernetes's
system:node role lists them cluster-wide too; the network policy enforcer and DNS need their
labels and IPs), Services, Endpoints, EndpointSlices, Ingresses, IngressClasses, NetworkPolicies
and Namespaces (its Service rules, DNS, ingress, policy), and only by name the Secrets,
ConfigMaps, PVCs (and their bound PVs) and ServiceAccounts that a pod bound to it references.
A node writes: its own Node, its own Lease in kube-node-lease, the status of (and deletes) pods
bound to it, Events; it asks for ServiceAccount tokens bound to its own pods. Everything else is
refused with a reason (403 on the agent, a log line on the server).
`references(pod)` is pure; `NodeAuthorizer.check` reads the server's cache through `Client`.
Neighbours: `minik.cluster.link` asks it before every call and watch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from minik.client import Client, Obj

READ_ANY = frozenset({"services", "endpoints", "discovery.k8s.io/endpointslices", "networking.k8s.io/ingresses",
                      "networking.k8s.io/ingressclasses", "networking.k8s.io/networkpolicies", "namespaces",
                      "nodes", "pods"})
READ_VERBS = frozenset({"get", "list", "watch"})
LEASES = "coordination.k8s.io/leases"
LEASE_NAMESPACE = "kube-node-lease"


@dataclass(frozen=True, slots=True)
class Request:
    verb: str            # get | list | watch | create | update | patch | delete | create_token
    resource: str
    namespace: str
    name: str
    subresource: str = ""
    body: Any = None


@dataclass(frozen=True, slots=True)
class References:
    secrets: frozenset[str]
    configmaps: frozenset[str]
    pvcs: frozenset[str]
    service_account: str


def references(pod: Obj) -> References:
    """Names of what a pod needs from the API (volumes, env, envFrom, pull secrets, its SA)."""
    spec = pod.get("spec") or {}
    secrets: set[str] = set()
    cms: set[str] = set()
    pvcs: set[str] = set()
    for ps in spec.get("imagePullSecrets") or []:
        if isinstance(ps, dict) and ps.get("name"):
            secrets.add(str(ps["name"]))
    for v in spec.get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("secret"), dict) and v["secret"].get("secretName"):
            secrets.add(str(v["secret"]["secretName"]))
        if isinstance(v.get("configMap"), dict) and v["configMap"].get("name"):
            cms.add(str(v["configMap"]["name"]))
        if isinstance(v.get("persistentVolumeClaim"), dict) and v["persistentVolumeClaim"].get("claimName"):
            pvcs.add(str(v["persistentVolumeClaim"]["claimName"]))
        for src in (v.get("projected") or {}).get("sources") or [] if isinstance(v.get("projected"), dict) else []:
            if isinstance(src, dict):
                if isinstance(src.get("secret"), dict) and src["secret"].get("name"):
                    secrets.add(str(src["secret"]["name"]))
                if isinstance(src.get("configMap"), dict) and src["configMap"].get("name"):
                    cms.add(str(src["configMap"]["name"]))
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            for e in c.get("env") or []:
                vf = (e or {}).get("valueFrom") or {}
                if isinstance(vf.get("secretKeyRef"), dict) and vf["secretKeyRef"].get("name"):
                    secrets.add(str(vf["secretKeyRef"]["name"]))
                if isinstance(vf.get("configMapKeyRef"), dict) and vf["configMapKeyRef"].get("name"):
                    cms.add(str(vf["configMapKeyRef"]["name"]))
            for ef in c.get("envFrom") or []:
                if isinstance((ef or {}).get("secretRef"), dict) and ef["secretRef"].get("name"):
                    secrets.add(str(ef["secretRef"]["name"]))
                if isinstance((ef or {}).get("configMapRef"), dict) and ef["configMapRef"].get("name"):
                    cms.add(str(ef["configMapRef"]["name"]))
    sa = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "default")
    return References(frozenset(secrets), frozenset(cms), frozenset(pvcs), sa)


def _bound_to(pod: Obj | None, node: str) -> bool:
    return pod is not None and (pod.get("spec") or {}).get("nodeName") == node


class NodeAuthorizer:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def _pods(self, node: str, namespace: str) -> list[Obj]:
        items, _ = await self.client.list("pods", namespace, field_selector=f"spec.nodeName={node}")
        return items

    async def check(self, node: str, r: Request) -> str:
        """"" when allowed, else the reason it is not."""
        who = f'node "{node}"'
        res, verb = r.resource, r.verb
        if verb in READ_VERBS and res in READ_ANY:
            return ""
        if res == "nodes":
            if verb in ("create", "update", "patch") and r.name == node:
                return ""
            return f"{who} may only write its own Node object, not {r.name!r}"
        if res == LEASES:
            if r.namespace == LEASE_NAMESPACE and r.name == node and verb in ("get", "create", "update", "patch"):
                return ""
            return f"{who} may only use its own Lease {LEASE_NAMESPACE}/{node}"
        if res == "events":
            if verb in ("create", "patch", "update"):
                return ""
            return f"{who} may only write events"
        if res == "pods":
            if verb in ("update", "patch", "delete") and r.subresource in ("", "status"):
                if _bound_to(await self.client.get("pods", r.namespace, r.name), node):
                    return ""
                return f"{who} may only change pods bound to it; pod {r.namespace}/{r.name} is not"
            return f"{who} may not {verb} pods"
        if verb == "get" and res in ("secrets", "configmaps", "persistentvolumeclaims", "serviceaccounts"):
            for pod in await self._pods(node, r.namespace):
                refs = references(pod)
                names = {"secrets": refs.secrets, "configmaps": refs.configmaps,
                         "persistentvolumeclaims": refs.pvcs, "serviceaccounts": {refs.service_account}}[res]
                if r.name in names:
                    return ""
            if res == "secrets":
                # The node's ingress proxy terminates TLS with the Secrets Ingresses name.
                ings, _ = await self.client.list("networking.k8s.io/ingresses", r.namespace)
                for ing in ings:
                    if any(isinstance(t, dict) and t.get("secretName") == r.name for t in (ing.get("spec") or {}).get("tls") or []):
                        return ""
            return f"{who} may not get {res} {r.namespace}/{r.name}: no pod bound to it references it"
        if verb == "get" and res == "persistentvolumes":
            for pod in await self._pods(node, ""):
                for claim in references(pod).pvcs:
                    pvc = await self.client.get("persistentvolumeclaims", pod["metadata"].get("namespace", ""), claim)
                    if pvc is not None and (pvc.get("spec") or {}).get("volumeName") == r.name:
                        return ""
            return f"{who} may not get persistentvolume {r.name}: no claim of its pods is bound to it"
        if verb == "create_token" and res == "serviceaccounts":
            ref = (r.body or {}).get("boundObjectRef") or {} if isinstance(r.body, dict) else {}
            if ref.get("kind") == "Pod":
                owner = await self.client.get("pods", r.namespace, str(ref.get("name", "")))
                if owner is not None and _bound_to(owner, node) and references(owner).service_account == r.name:
                    return ""
            return f"{who} may only request tokens bound to its own pods' service accounts"
        return f"{who} may not {verb} {res}"
