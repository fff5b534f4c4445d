"""Container environment: env / envFrom resolution, downward API fields, $(VAR) expansion. Pure.

Role: kubelet's makeEnvironmentVariables: envFrom sources first (prefix, invalid keys skipped),
then env entries in order (value with $(VAR) expansion against what is already defined,
configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef; optional refs), and the same field and
resource lookups the downward API volume uses. ConfigMaps and Secrets arrive pre-fetched in
`EnvSources` (None = does not exist), so this module does no I/O.
`service_link_env` is kubelet's getServiceEnvVarMap: the `<SVC>_SERVICE_HOST/_PORT` and docker-link
variables of the Services that exist when the container starts.
Neighbours: `minik.agent.worker` fetches the sources named by `referenced_objects` and the Services;
`minik.agent.volumes` reuses `field_value`/`resource_value` for downwardAPI files;
`minik.agent.containers` expands command/args with `expand`.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from minik.apis.quantity import Quantity, QuantityError

__all__ = [
    "EnvError",
    "EnvSources",
    "expand",
    "field_value",
    "referenced_objects",
    "resolve_env",
    "resource_value",
    "service_link_env",
]

Obj = dict[str, Any]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_SUBSCRIPT = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


class EnvError(Exception):
    """A required ConfigMap/Secret/key is missing or a field path is unsupported
    (the container waits with reason CreateContainerConfigError)."""


@dataclass(frozen=True, slots=True)
class EnvSources:
    configmaps: Mapping[str, Obj | None] = field(default_factory=dict)
    secrets: Mapping[str, Obj | None] = field(default_factory=dict)
    pod_ip: str = ""
    host_ip: str = ""
    # Node allocatable: what resourceFieldRef reports for an unset limit (kubelet does the same).
    node_allocatable: Mapping[str, str] = field(default_factory=dict)
    # Extra variables every container gets first (KUBERNETES_SERVICE_HOST & co).
    service_env: Mapping[str, str] = field(default_factory=dict)


def referenced_objects(container: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """(configmap names, secret names) the container's env/envFrom read."""
    cms: set[str] = set()
    secrets: set[str] = set()
    for src in container.get("envFrom") or []:
        if src.get("configMapRef"):
            cms.add(src["configMapRef"].get("name", ""))
        if src.get("secretRef"):
            secrets.add(src["secretRef"].get("name", ""))
    for e in container.get("env") or []:
        vf = e.get("valueFrom") or {}
        if vf.get("configMapKeyRef"):
            cms.add(vf["configMapKeyRef"].get("name", ""))
        if vf.get("secretKeyRef"):
            secrets.add(vf["secretKeyRef"].get("name", ""))
    return cms, secrets


def expand(text: str, lookup: Mapping[str, str]) -> str:
    """Kubernetes $(VAR) expansion: `$(X)` → value of X if defined (else left as is),
    `$$` → `$` (so `$$(X)` stays literal)."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    if name in lookup:
                        out.append(lookup[name])
                    else:
                        out.append(text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def _secret_data(secret: Obj) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[k] = base64.b64decode(v).decode("utf-8", "replace")
        except (ValueError, TypeError):
            out[k] = ""
    for k, v in (secret.get("stringData") or {}).items():
        out[k] = str(v)
    return out


def _configmap_data(cm: Obj) -> dict[str, str]:
    out = {k: str(v) for k, v in (cm.get("data") or {}).items()}
    for k, v in (cm.get("binaryData") or {}).items():
        try:
            out.setdefault(k, base64.b64decode(v).decode("utf-8", "replace"))
        except (ValueError, TypeError):
            pass
    return out


def field_value(pod: Obj, path: str, pod_ip: str, host_ip: str) -> str:
    """A downward API fieldRef value (env or volume)."""
    m = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    sub = _SUBSCRIPT.match(path)
    if sub:
        return str((m.get(sub.group(1)) or {}).get(sub.group(2), ""))
    if path in ("metadata.labels", "metadata.annotations"):
        items = m.get(path.split(".", 1)[1]) or {}
        return "\n".join(f'{k}="{_quote(str(v))}"' for k, v in sorted(items.items()))
    simple = {
        "metadata.name": m.get("name", ""),
        "metadata.namespace": m.get("namespace", ""),
        "metadata.uid": m.get("uid", ""),
        "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
    }
    if path not in simple:
        raise EnvError(f"unsupported fieldRef fieldPath {path!r}")
    return str(simple[path] or "")


def _quote(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def resource_value(pod: Obj, container_name: str, resource: str, divisor: Any,
                   node_allocatable: Mapping[str, str]) -> str:
    """A resourceFieldRef value: the container's limit or request, divided and rounded up
    (an unset limit reports node allocatable, as kubelet does)."""
    containers = list((pod.get("spec") or {}).get("containers") or []) + list(
        (pod.get("spec") or {}).get("initContainers") or [])
    c = next((c for c in containers if c.get("name") == container_name), None)
    if c is None:
        raise EnvError(f"resourceFieldRef: container {container_name!r} not found")
    kind, _, res = resource.partition(".")
    if kind not in ("limits", "requests") or not res:
        raise EnvError(f"unsupported resourceFieldRef resource {resource!r}")
    raw = ((c.get("resources") or {}).get(kind) or {}).get(res)
    if raw is None and kind == "limits":
        raw = node_allocatable.get(res)
    if raw is None:
        return "0"
    try:
        value = Quantity.parse(str(raw))
        div = Quantity.parse(str(divisor)) if divisor not in (None, "", 0, "0") else Quantity.parse("1")
    except QuantityError as e:
        raise EnvError(f"resourceFieldRef {resource}: {e}") from None
    if res == "cpu" or res.endswith(".cpu"):
        ratio = value.milli_value() / max(div.milli_value(), 1)
    else:
        ratio = value.int_value() / max(div.int_value(), 1)
    return str(math.ceil(ratio))


def resolve_env(pod: Obj, container: Mapping[str, Any], src: EnvSources) -> list[tuple[str, str]]:
    """The container's environment, in kubelet's order. Raises EnvError for missing required
    references."""
    env: dict[str, str] = dict(src.service_env)
    for ef in container.get("envFrom") or []:
        prefix = str(ef.get("prefix") or "")
        if ef.get("configMapRef"):
            ref = ef["configMapRef"]
            cm = src.configmaps.get(ref.get("name", ""))
            if cm is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'configmap "{ref.get("name", "")}" not found')
            data = _configmap_data(cm)
        elif ef.get("secretRef"):
            ref = ef["secretRef"]
            sec = src.secrets.get(ref.get("name", ""))
            if sec is None:
                if ref.get("optional"):
                    continue
                raise EnvError(f'secret "{ref.get("name", "")}" not found')
            data = _secret_data(sec)
        else:
            continue
        for k, v in data.items():
            key = prefix + k
            if _ENV_NAME.match(key):
                env[key] = v
    for e in container.get("env") or []:
        name = str(e.get("name", ""))
        vf = e.get("valueFrom")
        if not vf:
            env[name] = expand(str(e.get("value") or ""), env)
            continue
        if vf.get("configMapKeyRef"):
            ref = vf["configMapKeyRef"]
            cm = src.configmaps.get(ref.get("name", ""))
            found = None if cm is None else _configmap_data(cm)
            if found is None or ref.get("key") not in found:
                if ref.get("optional"):
                    continue
                what = f'configmap "{ref.get("name", "")}"' if found is None else \
                    f'key "{ref.get("key")}" in configmap "{ref.get("name", "")}"'
                raise EnvError(f"couldn't find {what}")
            env[name] = found[ref["key"]]
        elif vf.get("secretKeyRef"):
            ref = vf["secretKeyRef"]
            sec = src.secrets.get(ref.get("name", ""))
            found = None if sec is None else _secret_data(sec)
            if found is None or ref.get("key") not in found:
                if ref.get("optional"):
                    continue
                what = f'secret "{ref.get("name", "")}"' if found is None else \
                    f'key "{ref.get("key")}" in secret "{ref.get("name", "")}"'
                raise EnvError(f"couldn't find {what}")
            env[name] = found[ref["key"]]
        elif vf.get("fieldRef"):
            env[name] = field_value(pod, str(vf["fieldRef"].get("fieldPath", "")), src.pod_ip, src.host_ip)
        elif vf.get("resourceFieldRef"):
            ref = vf["resourceFieldRef"]
            env[name] = resource_value(pod, str(ref.get("containerName") or container.get("name", "")),
                                       str(ref.get("resource", "")), ref.get("divisor"),
                                       src.node_allocatable)
    return list(env.items())


MASTER_NAMESPACE = "default"
MASTER_SERVICES = ("kubernetes",)


def _service_vars(svc: Obj) -> list[tuple[str, str]]:
    """One Service's variables, in kubelet's order (FromServices)."""
    spec = svc.get("spec") or {}
    ip = str(spec.get("clusterIP") or "")
    ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
    if not ports:
        return []
    name = str(svc["metadata"]["name"]).upper().replace("-", "_")
    first = ports[0]
    out = [(f"{name}_SERVICE_HOST", ip), (f"{name}_SERVICE_PORT", str(first.get("port", "")))]
    for p in ports:
        if p.get("name"):
            out.append((f"{name}_SERVICE_PORT_{str(p['name']).upper().replace('-', '_')}", str(p.get("port", ""))))
    proto = str(first.get("protocol") or "TCP").lower()
    out.append((f"{name}_PORT", f"{proto}://{ip}:{first.get('port', '')}"))
    for p in ports:
        proto = str(p.get("protocol") or "TCP")
        prefix = f"{name}_PORT_{p.get('port', '')}_{proto.upper()}"
        out += [(prefix, f"{proto.lower()}://{ip}:{p.get('port', '')}"), (f"{prefix}_PROTO", proto.lower()),
                (f"{prefix}_PORT", str(p.get("port", ""))), (f"{prefix}_ADDR", ip)]
    return out


def service_link_env(services: list[Obj], namespace: str, enable_service_links: bool) -> dict[str, str]:
    """The Service variables of a pod in `namespace`: the API server's Services from `default`
    always, every Service of the pod's namespace with a cluster IP when `enableServiceLinks`
    (kubelet's default: true); a namespace Service wins over a master one of the same name.
    Headless and ExternalName Services have no IP and give no variables."""
    chosen: dict[str, Obj] = {}
    for svc in sorted(services, key=lambda s: (s["metadata"].get("namespace", ""), s["metadata"]["name"])):
        m, spec = svc["metadata"], svc.get("spec") or {}
        if spec.get("clusterIP") in (None, "", "None"):
            continue
        ns, name = m.get("namespace", ""), m["name"]
        if ns == MASTER_NAMESPACE and name in MASTER_SERVICES:
            chosen.setdefault(name, svc)
        if ns == namespace and enable_service_links:
            chosen[name] = svc
    env: dict[str, str] = {}
    for name in sorted(chosen):
        env.update(_service_vars(chosen[name]))
    return env
