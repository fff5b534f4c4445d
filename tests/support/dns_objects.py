"""Builders of the objects cluster DNS reads: Services and EndpointSlices (keyword overrides,
fresh dicts; STYLE: builders over fixtures)."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def svc_port(port: int, name: str = "", protocol: str = "TCP", target: int | str | None = None) -> Obj:
    p: Obj = {"port": port, "protocol": protocol, "targetPort": target if target is not None else port}
    if name:
        p["name"] = name
    return p


def make_service(name: str = "web", namespace: str = "default", *, cluster_ip: str = "10.43.0.20",
                 ports: list[Obj] | None = None, external_name: str = "", selector: dict[str, str] | None = None,
                 publish_not_ready: bool = False, **spec: Any) -> Obj:
    s: Obj = {"ports": ports if ports is not None else [svc_port(80, "http")], **spec}
    if external_name:
        s = {"type": "ExternalName", "externalName": external_name, **spec}
    else:
        s["clusterIP"] = cluster_ip
        if cluster_ip != "None":
            s["clusterIPs"] = [cluster_ip]
        if selector is not None:
            s["selector"] = dict(selector)
        if publish_not_ready:
            s["publishNotReadyAddresses"] = True
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace}, "spec": s}


def endpoint(ip: str, *, ready: bool | None = True, hostname: str = "", node: str = "") -> Obj:
    ep: Obj = {"addresses": [ip]}
    if ready is not None:
        ep["conditions"] = {"ready": ready, "serving": ready, "terminating": False}
    if hostname:
        ep["hostname"] = hostname
    if node:
        ep["nodeName"] = node
    return ep


def make_slice(service: str, endpoints: list[Obj], *, namespace: str = "default", name: str = "",
               ports: list[Obj] | None = None, address_type: str = "IPv4") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": name or f"{service}-abcde", "namespace": namespace,
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": address_type, "endpoints": endpoints,
            "ports": ports if ports is not None else [{"name": "http", "port": 8080, "protocol": "TCP"}]}
