"""core/v1 validation: pod specs (shared by every workload template), Pod, Service, ConfigMap,
Secret, Namespace, PersistentVolume(Claim), Node and friends, with kube's update rules.

Follows `k8s.io/kubernetes/pkg/apis/core/validation` for the checks minik users hit in practice;
checks for cloud volume plugins and alpha features are left out. Neighbours: dispatched from
`minik.apis.validation`; `apps`/`batch` call `validate_pod_template`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import ipaddress
import json
import re
from typing import Any

from minik.apis.errors import Cause
from minik.apis.names import (inclusive_range_error, is_c_identifier, is_config_map_key, is_dns1123_label,
                              is_dns1123_subdomain, is_dns1035_label, is_env_var_name, is_label_value,
                              is_qualified_name, is_valid_port_name, is_valid_port_num)
from minik.apis.quantity import Quantity, QuantityError
from minik.apis.validation.field import (GoRaw, as_dict, as_list, child, dicts, duplicate, forbidden, immutable,
                                         index, invalid, key, nonnegative, not_found, not_supported, required,
                                         semantic_equal, too_long)
from minik.apis.validation.meta import validate_annotations, validate_label_name, validate_label_selector, validate_labels

Obj = dict[str, Any]

MAX_SECRET_SIZE = 1024 * 1024
MAX_INT32 = 2**31 - 1
PROTOCOLS = ("SCTP", "TCP", "UDP")  # sets.List order
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
HOST_PATH_TYPES = ("", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate", "Socket")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")
STANDARD_CONTAINER_RESOURCES = ("cpu", "memory", "ephemeral-storage")
ENV_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
                   "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP",
                   "status.podIPs")
VOLUME_FIELD_PATHS = ("metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid")
POD_UPDATE_FORBIDDEN = ("pod updates may not change fields other than `spec.containers[*].image`,"
                        "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                        "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                        "(allow it to be set to 1 if it was previously negative)")
VOLUME_SOURCES = ("hostPath", "emptyDir", "gitRepo", "gcePersistentDisk", "awsElasticBlockStore", "secret", "nfs",
                  "iscsi", "glusterfs", "flocker", "persistentVolumeClaim", "rbd", "cinder", "cephfs", "quobyte",
                  "downwardAPI", "fc", "flexVolume", "configMap", "azureFile", "vsphereVolume",
                  "photonPersistentDisk", "portworxVolume", "azureDisk", "storageos", "projected", "scaleIO", "csi",
                  "ephemeral", "image")
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


# ---- small shared checks ---------------------------------------------------------------------------
def dns1123_label(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in is_dns1123_label(value)]


def dns1123_subdomain(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in is_dns1123_subdomain(value)]


def port_num_or_name(port: Any, path: str) -> list[Cause]:
    """ValidatePortNumOrName for an IntOrString port."""
    if isinstance(port, bool) or port is None:
        return [invalid(path, port, inclusive_range_error(1, 65535))]
    if isinstance(port, int):
        return [invalid(path, port, m) for m in is_valid_port_num(port)]
    return [invalid(path, str(port), m) for m in is_valid_port_name(str(port))]


def _int(v: Any) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def quantity(value: Any, path: str) -> tuple[Quantity | None, list[Cause]]:
    try:
        if value is None or isinstance(value, (dict, list)):
            raise QuantityError("quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        return Quantity.parse(value), []
    except QuantityError as e:
        return None, [invalid(path, value if isinstance(value, (str, int, float)) else str(value), str(e))]


def _resource_name(name: str, path: str, container: bool) -> list[Cause]:
    causes = [invalid(path, name, m) for m in is_qualified_name(name)]
    if causes:
        return causes
    if "/" not in name:
        if container and name not in STANDARD_CONTAINER_RESOURCES and not name.startswith("hugepages-"):
            return [invalid(path, name, "must be a standard resource for containers")]
    return []


def resource_requirements(res: Any, path: str) -> list[Cause]:
    """ValidateContainerResourceRequirements: names, non-negative values, requests ≤ limits."""
    res = as_dict(res)
    lim_path, req_path = child(path, "limits"), child(path, "requests")
    causes: list[Cause] = []
    limits: dict[str, Quantity] = {}
    for name, raw in sorted(as_dict(res.get("limits")).items()):
        p = key(lim_path, name)
        causes += _resource_name(name, p, True)
        q, errs = quantity(raw, p)
        causes += errs
        if q is not None:
            limits[name] = q
            if q.value < 0:
                causes.append(invalid(p, str(q), "must be greater than or equal to 0"))
            if "/" in name and "kubernetes.io/" not in name and q.milli_value() % 1000:
                causes.append(invalid(p, str(q), "must be an integer"))
    for name, raw in sorted(as_dict(res.get("requests")).items()):
        p = key(req_path, name)
        causes += _resource_name(name, p, True)
        q, errs = quantity(raw, p)
        causes += errs
        if q is None:
            continue
        if q.value < 0:
            causes.append(invalid(p, str(q), "must be greater than or equal to 0"))
        lim = limits.get(name)
        overcommit = ("/" not in name or "kubernetes.io/" in name) and not name.startswith("hugepages-")
        if lim is not None:
            if q != lim and not overcommit:
                causes.append(invalid(req_path, str(q), f"must be equal to {name} limit of {lim}"))
            elif q > lim:
                causes.append(invalid(req_path, str(q), f"must be less than or equal to {name} limit of {lim}"))
        elif not overcommit:
            causes.append(required(lim_path, "Limit must be set for non overcommitable resources"))
    return causes


# ---- pod spec ---------------------------------------------------------------------------------------
def _key_selector(sel: Any, path: str) -> list[Cause]:
    sel = as_dict(sel)
    causes = [invalid(child(path, "name"), sel.get("name", ""), m)
              for m in is_dns1123_subdomain(str(sel.get("name") or ""))] if sel.get("name") else []
    k = sel.get("key")
    if not k:
        causes.append(required(child(path, "key")))
    else:
        causes += [invalid(child(path, "key"), k, m) for m in is_config_map_key(str(k))]
    return causes


def _field_selector(ref: Any, allowed: tuple[str, ...], path: str) -> list[Cause]:
    ref = as_dict(ref)
    causes: list[Cause] = []
    if not ref.get("apiVersion"):
        causes.append(required(child(path, "apiVersion")))
        return causes
    fp = str(ref.get("fieldPath") or "")
    if not fp:
        causes.append(required(child(path, "fieldPath")))
        return causes
    m = _LABEL_REF.match(fp)
    if m:
        causes += [invalid(child(path, "fieldPath"), m.group(2), msg) for msg in is_qualified_name(m.group(2).lower())]
    elif fp not in allowed:
        causes.append(not_supported(child(path, "fieldPath"), fp, allowed))
    return causes


def _env(env: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, ev in enumerate(dicts(env)):
        p = index(path, i)
        name = ev.get("name")
        if not name:
            causes.append(required(child(p, "name")))
        else:
            causes += [invalid(child(p, "name"), name, m) for m in is_env_var_name(str(name))]
        vf = ev.get("valueFrom")
        if not isinstance(vf, dict):
            continue
        vp = child(p, "valueFrom")
        n = 0
        if vf.get("fieldRef") is not None:
            n += 1
            causes += _field_selector(vf["fieldRef"], ENV_FIELD_PATHS, child(vp, "fieldRef"))
        if vf.get("resourceFieldRef") is not None:
            n += 1
            if not as_dict(vf["resourceFieldRef"]).get("resource"):
                causes.append(required(child(vp, "resourceFieldRef", "resource")))
        for ref in ("configMapKeyRef", "secretKeyRef"):
            if vf.get(ref) is not None:
                n += 1
                causes += _key_selector(vf[ref], child(vp, ref))
        if n == 0:
            causes.append(invalid(vp, "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`"))
        elif ev.get("value"):
            causes.append(invalid(vp, "", "may not be specified when `value` is not empty"))
        elif n > 1:
            causes.append(invalid(vp, "", "may not have more than one field specified at a time"))
    return causes


def _env_from(env_from: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, ef in enumerate(dicts(env_from)):
        p = index(path, i)
        prefix = ef.get("prefix")
        if prefix:
            causes += [invalid(child(p, "prefix"), prefix, m) for m in is_env_var_name(str(prefix))]
        n = sum(1 for k in ("configMapRef", "secretRef") if ef.get(k) is not None)
        for k in ("configMapRef", "secretRef"):
            ref = ef.get(k)
            if isinstance(ref, dict):
                if not ref.get("name"):
                    causes.append(required(child(p, k, "name")))
                else:
                    causes += dns1123_subdomain(str(ref["name"]), child(p, k, "name"))
        if n == 0:
            causes.append(invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
        elif n > 1:
            causes.append(invalid(p, "", "may not have more than one field specified at a time"))
    return causes


def _ports(ports: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    names: set[str] = set()
    for i, port in enumerate(dicts(ports)):
        p = index(path, i)
        name = port.get("name")
        if name:
            msgs = is_valid_port_name(str(name))
            if msgs:
                causes += [invalid(child(p, "name"), name, m) for m in msgs]
            elif name in names:
                causes.append(duplicate(child(p, "name"), name))
            else:
                names.add(str(name))
        cp = port.get("containerPort")
        if not cp:
            causes.append(required(child(p, "containerPort")))
        elif _int(cp) is not None:
            causes += [invalid(child(p, "containerPort"), cp, m) for m in is_valid_port_num(cp)]
        hp = port.get("hostPort")
        if hp and _int(hp) is not None:
            causes += [invalid(child(p, "hostPort"), hp, m) for m in is_valid_port_num(hp)]
        proto = port.get("protocol")
        if not proto:
            causes.append(required(child(p, "protocol")))
        elif proto not in PROTOCOLS:
            causes.append(not_supported(child(p, "protocol"), proto, PROTOCOLS))
    return causes


def _volume_mounts(mounts: Any, volumes: dict[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, mnt in enumerate(dicts(mounts)):
        p = index(path, i)
        name = str(mnt.get("name") or "")
        if not name:
            causes.append(required(child(p, "name")))
        if name not in volumes:
            causes.append(not_found(child(p, "name"), name))
        mp = str(mnt.get("mountPath") or "")
        if not mp:
            causes.append(required(child(p, "mountPath")))
        if mp in seen:
            causes.append(invalid(child(p, "mountPath"), mp, "must be unique"))
        seen.add(mp)
        sub = mnt.get("subPath")
        if sub:
            causes += _local_descending_path(str(sub), child(path, "subPath"))
        mpr = mnt.get("mountPropagation")
        if mpr is not None and mpr not in ("None", "HostToContainer", "Bidirectional"):
            causes.append(not_supported(child(p, "mountPropagation"), mpr, ("Bidirectional", "HostToContainer", "None")))
    return causes


def _local_descending_path(target: str, path: str) -> list[Cause]:
    causes: list[Cause] = []
    if target.startswith("/"):
        causes.append(invalid(path, target, "must be a relative path"))
    if ".." in target.replace("\\", "/").split("/"):
        causes.append(invalid(path, target, "must not contain '..'"))
    return causes


def _handler(h: Obj, path: str, kinds: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    n = 0
    for k in kinds:
        action = h.get(k)
        if action is None:
            continue
        if n > 0:
            causes.append(forbidden(child(path, k), "may not specify more than 1 handler type"))
            continue
        n += 1
        a = as_dict(action)
        ap = child(path, k)
        if k == "exec":
            if not a.get("command"):
                causes.append(required(child(ap, "command")))
        elif k == "httpGet":
            if not a.get("path"):
                causes.append(required(child(ap, "path")))
            causes += port_num_or_name(a.get("port"), child(ap, "port"))
            scheme = a.get("scheme")
            if scheme not in ("HTTP", "HTTPS"):
                causes.append(not_supported(child(ap, "scheme"), scheme or "", ("HTTP", "HTTPS")))
        elif k == "tcpSocket":
            causes += port_num_or_name(a.get("port"), child(ap, "port"))
        elif k == "grpc":
            port = _int(a.get("port"))
            if port is not None:
                causes += [invalid(child(ap, "port"), port, m) for m in is_valid_port_num(port)]
        elif k == "sleep":
            secs = _int(a.get("seconds"))
            if secs is None or secs < 0:
                causes.append(invalid(child(ap, "seconds"), secs, "must be non-negative"))
    if n == 0:
        causes.append(required(path, "must specify a handler type"))
    return causes


def _probe(probe: Any, path: str) -> list[Cause]:
    if not isinstance(probe, dict):
        return []
    causes = _handler(probe, path, ("exec", "httpGet", "tcpSocket", "grpc"))
    for k in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        causes += nonnegative(child(path, k), probe.get(k))
    tgp = _int(probe.get("terminationGracePeriodSeconds"))
    if tgp is not None and tgp <= 0:
        causes.append(invalid(child(path, "terminationGracePeriodSeconds"), tgp, "must be greater than 0"))
    return causes


def _lifecycle(lc: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for hook in ("postStart", "preStop"):
        h = as_dict(lc).get(hook)
        if isinstance(h, dict):
            causes += _handler(h, child(path, hook), ("exec", "httpGet", "tcpSocket", "sleep"))
    return causes


def _container_common(c: Obj, volumes: dict[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    name = c.get("name")
    if not name:
        causes.append(required(child(path, "name")))
    else:
        causes += dns1123_label(str(name), child(path, "name"))
    if not c.get("image"):
        causes.append(required(child(path, "image")))
    tmp = c.get("terminationMessagePolicy")
    if not tmp:
        causes.append(required(child(path, "terminationMessagePolicy")))
    elif tmp not in ("File", "FallbackToLogsOnError"):
        causes.append(not_supported(child(path, "terminationMessagePolicy"), tmp, ("File", "FallbackToLogsOnError")))
    causes += _ports(c.get("ports"), child(path, "ports"))
    causes += _env(c.get("env"), child(path, "env"))
    causes += _env_from(c.get("envFrom"), child(path, "envFrom"))
    causes += _volume_mounts(c.get("volumeMounts"), volumes, child(path, "volumeMounts"))
    pp = c.get("imagePullPolicy")
    if not pp:
        causes.append(required(child(path, "imagePullPolicy")))
    elif pp not in PULL_POLICIES:
        causes.append(not_supported(child(path, "imagePullPolicy"), pp, PULL_POLICIES))
    causes += resource_requirements(c.get("resources"), child(path, "resources"))
    return causes


def _image_trimmed(c: Obj, p: str) -> list[Cause]:
    """Pods (not templates) reject an image name with surrounding whitespace."""
    img = str(c.get("image") or "")
    if img != img.strip():
        return [invalid(child(p, "image"), img, "must not have leading or trailing whitespace")]
    return []


def _containers(containers: Any, volumes: dict[str, Obj], path: str, is_pod: bool) -> list[Cause]:
    cs = dicts(containers)
    if not cs:
        return [required(path)]
    causes: list[Cause] = []
    names: set[str] = set()
    for i, c in enumerate(cs):
        p = index(path, i)
        causes += _container_common(c, volumes, p)
        if is_pod:
            causes += _image_trimmed(c, p)
        name = str(c.get("name") or "")
        if name in names:
            causes.append(duplicate(child(p, "name"), name))
        else:
            names.add(name)
        causes += _lifecycle(c.get("lifecycle"), child(p, "lifecycle"))
        causes += _probe(c.get("readinessProbe"), child(p, "readinessProbe"))
        causes += _probe(c.get("livenessProbe"), child(p, "livenessProbe"))
        causes += _probe(c.get("startupProbe"), child(p, "startupProbe"))
        for k in ("livenessProbe", "startupProbe"):
            pr = c.get(k)
            if isinstance(pr, dict) and pr.get("successThreshold") not in (None, 1):
                causes.append(invalid(child(p, k, "successThreshold"), pr.get("successThreshold"), "must be 1"))
    return causes


def _init_containers(inits: Any, regular: Any, volumes: dict[str, Obj], path: str) -> list[Cause]:
    causes: list[Cause] = []
    names = {str(c.get("name") or "") for c in dicts(regular)}
    for i, c in enumerate(dicts(inits)):
        p = index(path, i)
        causes += _container_common(c, volumes, p)
        name = str(c.get("name") or "")
        if name in names:
            causes.append(duplicate(child(p, "name"), name))
        elif name:
            names.add(name)
        rp = c.get("restartPolicy")
        if rp is not None and rp != "Always":
            causes.append(not_supported(child(p, "restartPolicy"), rp, ("Always",)))
        if rp != "Always":
            for k in ("lifecycle", "livenessProbe", "readinessProbe", "startupProbe"):
                if c.get(k) is not None:
                    causes.append(forbidden(child(p, k), "may not be set for init containers without restartPolicy=Always"))
    return causes


# validateEphemeralContainers: what an ephemeral container may not set (an allow-list in kube, so
# fields that matter for the pod's own services — ports, probes, lifecycle, resources — stay out).
EPHEMERAL_FORBIDDEN_FIELDS = ("ports", "resources", "resizePolicy", "lifecycle", "livenessProbe",
                              "readinessProbe", "startupProbe", "restartPolicy")
EPHEMERAL_FORBIDDEN_DETAIL = "cannot be set for an Ephemeral Container"


def _zero(v: Any) -> bool:
    """Go's zero value as the allow-list check sees it (a defaulted `resources: {}` is zero)."""
    if v is None or v == "":
        return True
    if isinstance(v, dict):
        return semantic_equal(v, {})
    if isinstance(v, list):
        return not v
    return False


def _ephemeral_containers(ephemerals: Any, regular: Any, inits: Any, volumes: dict[str, Obj],
                          path: str) -> list[Cause]:
    causes: list[Cause] = []
    others = {str(c.get("name") or "") for c in dicts(regular) + dicts(inits)}
    names = set(others)
    for i, c in enumerate(dicts(ephemerals)):
        p = index(path, i)
        causes += _container_common(c, volumes, p)
        causes += _image_trimmed(c, p)
        name = str(c.get("name") or "")
        if name in names:
            causes.append(duplicate(child(p, "name"), name))
        elif name:
            names.add(name)
        target = c.get("targetContainerName")
        if target and str(target) not in others:
            causes.append(not_found(child(p, "targetContainerName"), target))
        for k in EPHEMERAL_FORBIDDEN_FIELDS:
            if not _zero(c.get(k)):
                causes.append(forbidden(child(p, k), EPHEMERAL_FORBIDDEN_DETAIL))
        for j, vm in enumerate(dicts(c.get("volumeMounts"))):
            for k in ("subPath", "subPathExpr"):
                if vm.get(k):
                    causes.append(forbidden(child(index(child(p, "volumeMounts"), j), k), EPHEMERAL_FORBIDDEN_DETAIL))
    return causes


def _items(items: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, it in enumerate(dicts(items)):
        p = index(path, i)
        k = it.get("key")
        if not k:
            causes.append(required(child(p, "key")))
        else:
            causes += [invalid(child(p, "key"), k, m) for m in is_config_map_key(str(k))]
        target = str(it.get("path") or "")
        if not target:
            causes.append(required(child(p, "path")))
        else:
            causes += _local_descending_path(target, child(p, "path"))
        causes += _file_mode(it.get("mode"), child(p, "mode"))
    return causes


def _file_mode(mode: Any, path: str) -> list[Cause]:
    if _int(mode) is not None and not 0 <= mode <= 0o777:
        return [invalid(path, mode, "must be a number between 0 and 0777 (octal), both inclusive")]
    return []


def _volume_source(v: Obj, path: str) -> list[Cause]:
    causes: list[Cause] = []
    n = 0
    for src in VOLUME_SOURCES:
        s = v.get(src)
        if s is None:
            continue
        if n > 0:
            causes.append(forbidden(child(path, src), "may not specify more than 1 volume type"))
            continue
        n += 1
        s = as_dict(s)
        sp = child(path, src)
        if src == "hostPath":
            if not s.get("path"):
                causes.append(required(child(sp, "path")))
            t = s.get("type")
            if t is not None and t not in HOST_PATH_TYPES:
                causes.append(not_supported(child(sp, "type"), t, HOST_PATH_TYPES))
        elif src == "emptyDir":
            medium = s.get("medium")
            if medium not in (None, "", "Memory", "HugePages") and not str(medium).startswith("HugePages-"):
                causes.append(not_supported(child(sp, "medium"), medium, ("", "Memory", "HugePages")))
            if "sizeLimit" in s:
                q, errs = quantity(s["sizeLimit"], child(sp, "sizeLimit"))
                causes += errs
                if q is not None and q.value < 0:
                    causes.append(invalid(child(sp, "sizeLimit"), str(q), "must be greater than or equal to 0"))
        elif src == "secret":
            if not s.get("secretName"):
                causes.append(required(child(sp, "secretName")))
            causes += _file_mode(s.get("defaultMode"), child(sp, "defaultMode"))
            causes += _items(s.get("items"), child(sp, "items"))
        elif src == "configMap":
            if not s.get("name"):
                causes.append(required(child(sp, "name")))
            causes += _file_mode(s.get("defaultMode"), child(sp, "defaultMode"))
            causes += _items(s.get("items"), child(sp, "items"))
        elif src == "persistentVolumeClaim":
            if not s.get("claimName"):
                causes.append(required(child(sp, "claimName")))
        elif src == "nfs":
            if not s.get("server"):
                causes.append(required(child(sp, "server")))
            if not s.get("path"):
                causes.append(required(child(sp, "path")))
            elif not str(s["path"]).startswith("/"):
                causes.append(invalid(child(sp, "path"), s["path"], "must be an absolute path"))
        elif src == "downwardAPI":
            causes += _file_mode(s.get("defaultMode"), child(sp, "defaultMode"))
            for i, it in enumerate(dicts(s.get("items"))):
                ip = index(child(sp, "items"), i)
                if not it.get("path"):
                    causes.append(required(child(ip, "path")))
                if it.get("fieldRef") is not None:
                    causes += _field_selector(it["fieldRef"], VOLUME_FIELD_PATHS, child(ip, "fieldRef"))
        elif src == "projected":
            causes += _file_mode(s.get("defaultMode"), child(sp, "defaultMode"))
        elif src == "csi":
            if not s.get("driver"):
                causes.append(required(child(sp, "driver")))
        elif src == "image":
            if not s.get("reference"):
                causes.append(required(child(sp, "reference")))
    if n == 0:
        causes.append(required(path, "must specify a volume type"))
    return causes


def _volumes(volumes: Any, path: str) -> tuple[dict[str, Obj], list[Cause]]:
    causes: list[Cause] = []
    by_name: dict[str, Obj] = {}
    for i, v in enumerate(dicts(volumes)):
        p = index(path, i)
        errs = _volume_source(v, p)
        name = str(v.get("name") or "")
        if not name:
            errs.append(required(child(p, "name")))
        else:
            errs += dns1123_label(name, child(p, "name"))
        if name in by_name:
            errs.append(duplicate(child(p, "name"), name))
        if errs:
            causes += errs
        else:
            by_name[name] = v
    # Mounts that name a volume with an error are not reported again as "not found".
    for v in dicts(volumes):
        by_name.setdefault(str(v.get("name") or ""), v)
    by_name.pop("", None)
    return by_name, causes


def validate_tolerations(tols: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for i, t in enumerate(dicts(tols)):
        p = index(path, i)
        k = str(t.get("key") or "")
        op = t.get("operator") or ""
        if k:
            causes += validate_label_name(k, child(p, "key"))
        if not k and op != "Exists":
            causes.append(invalid(child(p, "operator"), op,
                                  "operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
        if t.get("tolerationSeconds") is not None and t.get("effect") != "NoExecute":
            causes.append(invalid(child(p, "effect"), t.get("effect") or "",
                                  "effect must be 'NoExecute' when `tolerationSeconds` is set"))
        if op in ("Equal", ""):
            msgs = is_label_value(str(t.get("value") or ""))
            if msgs:
                causes.append(invalid(child(p, "operator"), t.get("value") or "", ";".join(msgs)))
        elif op == "Exists":
            if t.get("value"):
                causes.append(invalid(child(p, "operator"), GoRaw("core.Toleration{...}"), "value must be empty when `operator` is 'Exists'"))
        else:
            causes.append(not_supported(child(p, "operator"), op, ("Equal", "Exists")))
        eff = t.get("effect")
        if eff and eff not in TAINT_EFFECTS:
            causes.append(not_supported(child(p, "effect"), eff, TAINT_EFFECTS))
    return causes


def validate_pod_spec(spec: Obj, path: str, is_pod: bool) -> list[Cause]:
    """ValidatePodSpec: volumes, containers, policies, names, tolerations."""
    causes: list[Cause] = []
    volumes, errs = _volumes(spec.get("volumes"), child(path, "volumes"))
    causes += errs
    causes += _containers(spec.get("containers"), volumes, child(path, "containers"), is_pod)
    causes += _init_containers(spec.get("initContainers"), spec.get("containers"), volumes, child(path, "initContainers"))
    causes += _ephemeral_containers(spec.get("ephemeralContainers"), spec.get("containers"), spec.get("initContainers"),
                                    volumes, child(path, "ephemeralContainers"))
    rp = spec.get("restartPolicy")
    if not rp:
        causes.append(required(child(path, "restartPolicy")))
    elif rp not in RESTART_POLICIES:
        causes.append(not_supported(child(path, "restartPolicy"), rp, RESTART_POLICIES))
    dp = spec.get("dnsPolicy")
    if not dp:
        causes.append(required(child(path, "dnsPolicy")))
    elif dp not in DNS_POLICIES:
        causes.append(not_supported(child(path, "dnsPolicy"), dp, DNS_POLICIES))
    elif dp == "None" and not as_dict(spec.get("dnsConfig")).get("nameservers"):
        causes.append(required(child(path, "dnsConfig", "nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None"))
    causes += validate_labels(spec.get("nodeSelector"), child(path, "nodeSelector"))
    sa = spec.get("serviceAccountName")
    if sa:
        causes += dns1123_subdomain(str(sa), child(path, "serviceAccountName"))
    node = spec.get("nodeName")
    if node:
        causes += dns1123_subdomain(str(node), child(path, "nodeName"))
    ads = _int(spec.get("activeDeadlineSeconds"))
    if ads is not None and not 1 <= ads <= MAX_INT32:
        causes.append(invalid(child(path, "activeDeadlineSeconds"), ads, inclusive_range_error(1, MAX_INT32)))
    for k in ("hostname", "subdomain"):
        if spec.get(k):
            causes += dns1123_label(str(spec[k]), child(path, k))
    causes += validate_tolerations(spec.get("tolerations"), child(path, "tolerations"))
    for i, s in enumerate(dicts(spec.get("imagePullSecrets"))):
        if not s.get("name"):
            causes.append(required(child(index(child(path, "imagePullSecrets"), i), "name")))
    pc = spec.get("priorityClassName")
    if pc:
        causes += dns1123_subdomain(str(pc), child(path, "priorityClassName"))
    causes += _scheduling_gates(spec.get("schedulingGates"), child(path, "schedulingGates"))
    return causes


def _scheduling_gates(gates: Any, path: str) -> list[Cause]:
    """validateSchedulingGates: each name a qualified name, no duplicates."""
    causes: list[Cause] = []
    seen: set[str] = set()
    for i, g in enumerate(dicts(gates)):
        name = str(g.get("name") or "")
        causes += [invalid(index(path, i), name, m) for m in is_qualified_name(name)]
        if name in seen:
            causes.append(duplicate(index(path, i), name))
        seen.add(name)
    return causes


def _only_deleted_gates(new: Any, old: Any, path: str) -> list[Cause]:
    """validateOnlyDeletedSchedulingGates: after create, scheduling gates can only be removed."""
    old_names = {str(g.get("name") or "") for g in dicts(old)}
    return [forbidden(child(index(path, i), "name"), f"only deletion is allowed, but found new scheduling gate '{name}'")
            for i, g in enumerate(dicts(new)) if (name := str(g.get("name") or "")) not in old_names]


def validate_pod_template(tmpl: Any, path: str) -> list[Cause]:
    """ValidatePodTemplateSpec: template labels/annotations and the pod spec."""
    t = as_dict(tmpl)
    m = as_dict(t.get("metadata"))
    causes = validate_labels(m.get("labels"), child(path, "labels"))
    causes += validate_annotations(m.get("annotations"), child(path, "annotations"))
    causes += validate_pod_spec(as_dict(t.get("spec")), child(path, "spec"), False)
    if dicts(as_dict(t.get("spec")).get("ephemeralContainers")):
        causes.append(forbidden(child(path, "spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
    return causes


# ---- Pod ----------------------------------------------------------------------------------------------
def validate_pod(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_pod_spec(spec, "spec", True)
    if old is None:
        # ValidatePodCreate: ephemeral containers only arrive through pods/ephemeralcontainers.
        if dicts(spec.get("ephemeralContainers")):
            causes.append(forbidden("spec.ephemeralContainers", "cannot be set on create"))
        return causes
    return causes + _pod_update(spec, as_dict(old.get("spec")))


def validate_pod_ephemeral_update(obj: Obj, old: Obj) -> list[Cause]:
    """ValidatePodEphemeralContainersUpdate (the pod half; ObjectMeta is checked by the caller):
    the whole spec is valid, and existing ephemeral containers are neither removed nor changed —
    they can only be added. Everything but spec.ephemeralContainers was already copied from `old`."""
    spec = as_dict(obj.get("spec"))
    causes = validate_pod_spec(spec, "spec", True)
    path = "spec.ephemeralContainers"
    new_by_name = {str(c.get("name") or ""): c for c in dicts(spec.get("ephemeralContainers"))}
    for oc in dicts(as_dict(old.get("spec")).get("ephemeralContainers")):
        name = str(oc.get("name") or "")
        nc = new_by_name.get(name)
        if nc is None:
            causes.append(forbidden(path, f'existing ephemeral containers "{name}" may not be removed\n'))
        elif not semantic_equal(oc, nc):
            causes.append(forbidden(path, f'existing ephemeral containers "{name}" may not be changed\n'))
    return causes


def _tol_key(t: Obj) -> tuple[Any, ...]:
    return (t.get("key") or "", t.get("operator") or "Equal", t.get("value") or "", t.get("effect") or "")


def _pod_update(spec: Obj, old: Obj) -> list[Cause]:
    causes: list[Cause] = []
    ads, old_ads = spec.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if ads is not None:
        if _int(ads) is not None and not 0 <= ads <= MAX_INT32:
            return causes + [invalid("spec.activeDeadlineSeconds", ads, inclusive_range_error(0, MAX_INT32))]
        if old_ads is not None and _int(ads) is not None and old_ads < ads:
            return causes + [invalid("spec.activeDeadlineSeconds", ads, "must be less than or equal to previous value")]
    elif old_ads is not None:
        causes.append(invalid("spec.activeDeadlineSeconds", None, "must not update from a positive integer to nil value"))
    old_tols = dicts(old.get("tolerations"))
    new_tols = dicts(spec.get("tolerations"))
    new_keys = [_tol_key(t) for t in new_tols]
    for t in old_tols:
        if _tol_key(t) not in new_keys:
            causes.append(forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
            break
    causes += _only_deleted_gates(spec.get("schedulingGates"), old.get("schedulingGates"), "spec.schedulingGates")
    # Everything else must be unchanged: copy the mutable fields over and compare.
    a, b = _mutable_stripped(spec), _mutable_stripped(old)
    if len(dicts(spec.get("containers"))) == len(dicts(old.get("containers"))) and not semantic_equal(a, b):
        causes.append(forbidden("spec", POD_UPDATE_FORBIDDEN))
    elif len(dicts(spec.get("containers"))) != len(dicts(old.get("containers"))):
        causes.append(forbidden("spec", POD_UPDATE_FORBIDDEN))
    return causes


def _mutable_stripped(spec: Obj) -> Obj:
    s = copy.deepcopy(spec)
    for k in ("containers", "initContainers"):
        for c in dicts(s.get(k)):
            c.pop("image", None)
    # spec.ephemeralContainers is not among them: it changes only through pods/ephemeralcontainers.
    for k in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds", "schedulingGates"):
        s.pop(k, None)
    # Binding (the scheduler) sets nodeName once; minik's binding goes through the same update path.
    if s.get("nodeName"):
        s.pop("nodeName")
    return dict(s)


# ---- Service ------------------------------------------------------------------------------------------
def _is_ip(v: str) -> bool:
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def validate_service(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    sp = "spec"
    causes: list[Cause] = []
    typ = spec.get("type")
    headless = spec.get("clusterIP") == "None"
    ports = dicts(spec.get("ports"))
    if not ports and not headless and typ != "ExternalName":
        causes.append(required(child(sp, "ports")))
    types = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")
    if typ not in types:
        causes.append(not_supported(child(sp, "type"), typ or "", types))
    if typ == "ExternalName":
        ext = spec.get("externalName")
        if not ext:
            causes.append(required(child(sp, "externalName")))
        else:
            name = str(ext).rstrip(".")
            msgs = is_dns1123_subdomain(name)
            if msgs:
                causes.append(invalid(child(sp, "externalName"), ext, ",".join(msgs)))
            elif len(name.split(".")) < 2:
                causes.append(invalid(child(sp, "externalName"), ext, "should be a domain with at least two segments separated by dots"))
        if spec.get("clusterIP") and not headless:
            causes.append(forbidden(child(sp, "clusterIPs"), "may not be set for ExternalName services"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = index(child(sp, "ports"), i)
        pname = port.get("name")
        if len(ports) > 1 and not pname:
            causes.append(required(child(p, "name")))
        elif pname:
            causes += dns1123_label(str(pname), child(p, "name"))
            if pname in names:
                causes.append(duplicate(child(p, "name"), pname))
            else:
                names.add(str(pname))
        pn = port.get("port")
        causes += [invalid(child(p, "port"), pn, m) for m in is_valid_port_num(_int(pn) or 0)]
        proto = port.get("protocol")
        if not proto:
            causes.append(required(child(p, "protocol")))
        elif proto not in PROTOCOLS:
            causes.append(not_supported(child(p, "protocol"), proto, PROTOCOLS))
        if port.get("targetPort") not in (None, 0, ""):
            causes += port_num_or_name(port.get("targetPort"), child(p, "targetPort"))
        ap = port.get("appProtocol")
        if ap:
            causes += [invalid(child(p, "appProtocol"), ap, m) for m in is_qualified_name(str(ap))]
        if port.get("nodePort") and typ == "ClusterIP":
            causes.append(forbidden(child(p, "nodePort"), "may not be used when `type` is 'ClusterIP'"))
        if port.get("nodePort") and _int(port.get("nodePort")) is not None:
            causes += [invalid(child(p, "nodePort"), port["nodePort"], m) for m in is_valid_port_num(port["nodePort"])]
    sa = spec.get("sessionAffinity")
    if sa not in ("ClientIP", "None"):
        causes.append(not_supported(child(sp, "sessionAffinity"), sa or "", ("ClientIP", "None")))
    for i, ip in enumerate(as_list(spec.get("clusterIPs"))):
        if ip != "None" and not _is_ip(str(ip)):
            causes.append(invalid(index(child(sp, "clusterIPs"), i), ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    cips = as_list(spec.get("clusterIPs"))
    if spec.get("clusterIP") and cips and cips[0] != spec.get("clusterIP"):
        causes.append(invalid(child(sp, "clusterIPs"), cips, "first value must match `clusterIP`"))
    ipp = spec.get("ipFamilyPolicy")
    if ipp is not None and ipp not in ("PreferDualStack", "RequireDualStack", "SingleStack"):
        causes.append(not_supported(child(sp, "ipFamilyPolicy"), ipp, ("PreferDualStack", "RequireDualStack", "SingleStack")))
    for i, fam in enumerate(as_list(spec.get("ipFamilies"))):
        if fam not in ("IPv4", "IPv6"):
            causes.append(not_supported(index(child(sp, "ipFamilies"), i), fam, ("IPv4", "IPv6")))
    etp = spec.get("externalTrafficPolicy")
    if etp:
        if typ not in ("NodePort", "LoadBalancer"):
            causes.append(invalid(child(sp, "externalTrafficPolicy"), etp, "may only be set when `type` is 'NodePort' or 'LoadBalancer'"))
        elif etp not in ("Cluster", "Local"):
            causes.append(not_supported(child(sp, "externalTrafficPolicy"), etp, ("Cluster", "Local")))
    itp = spec.get("internalTrafficPolicy")
    if itp is not None and itp not in ("Cluster", "Local"):
        causes.append(not_supported(child(sp, "internalTrafficPolicy"), itp, ("Cluster", "Local")))
    causes += validate_labels(spec.get("selector"), child(sp, "selector"))
    for i, ip in enumerate(as_list(spec.get("externalIPs"))):
        if not _is_ip(str(ip)):
            causes.append(invalid(index(child(sp, "externalIPs"), i), ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if old is not None:
        causes += _service_update(spec, as_dict(old.get("spec")))
    return causes


def _service_update(spec: Obj, old: Obj) -> list[Cause]:
    if "ExternalName" in (spec.get("type"), old.get("type")):
        return []
    if old.get("clusterIP") == "None" and spec.get("clusterIP") == "None":
        return []
    old_ips = [str(x) for x in as_list(old.get("clusterIPs"))] or ([str(old["clusterIP"])] if old.get("clusterIP") else [])
    new_ips = [str(x) for x in as_list(spec.get("clusterIPs"))] or ([str(spec["clusterIP"])] if spec.get("clusterIP") else [])
    if not old_ips:
        return []
    if not new_ips:
        return [invalid("spec.clusterIPs[0]", new_ips, "primary clusterIP can not be unset")]
    causes: list[Cause] = []
    for i, ip in enumerate(old_ips[:len(new_ips)]):
        if new_ips[i] != ip:
            causes.append(invalid(f"spec.clusterIPs[{i}]", new_ips, "may not change once set"))
    return causes


# ---- ConfigMap / Secret ---------------------------------------------------------------------------------
def validate_configmap(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    total = 0
    data, binary = as_dict(obj.get("data")), as_dict(obj.get("binaryData"))
    for k, v in data.items():
        causes += [invalid(key("data", k), k, m) for m in is_config_map_key(k)]
        if k in binary:
            causes.append(invalid(key("data", k), k, "duplicate of key present in binaryData"))
        total += len(str(v).encode())
    for k, v in binary.items():
        causes += [invalid(key("binaryData", k), k, m) for m in is_config_map_key(k)]
        total += len(_b64(v) or b"")
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("", MAX_SECRET_SIZE))
    if old is not None:
        causes = _immutable_data(obj, old, ("data", "binaryData")) + causes
    return causes


def _immutable_data(obj: Obj, old: Obj, fields: tuple[str, ...]) -> list[Cause]:
    causes: list[Cause] = []
    if old.get("immutable") is True:
        msg = "field is immutable when `immutable` is set"
        if obj.get("immutable") is not True:
            causes.append(forbidden("immutable", msg))
        for f in fields:
            if not semantic_equal(obj.get(f), old.get(f)):
                causes.append(forbidden(f, msg))
    return causes


def _b64(v: Any) -> bytes | None:
    try:
        return base64.b64decode(str(v), validate=True)
    except (binascii.Error, ValueError):
        return None


SECRET_TYPES_REQUIRED = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def validate_secret(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    data = as_dict(obj.get("data"))
    decoded: dict[str, bytes] = {}
    total = 0
    for k, v in data.items():
        causes += [invalid(key("data", k), k, m) for m in is_config_map_key(k)]
        raw = _b64(v) if v is not None else b""
        if raw is None:
            causes.append(invalid(key("data", k), "<secret contents redacted>", "illegal base64 data"))
            raw = b""
        decoded[k] = raw
        total += len(raw)
    if total > MAX_SECRET_SIZE:
        causes.append(too_long("data", MAX_SECRET_SIZE))
    typ = obj.get("type") or "Opaque"
    annotations = as_dict(as_dict(obj.get("metadata")).get("annotations"))
    if typ == "kubernetes.io/service-account-token":
        if not annotations.get("kubernetes.io/service-account.name"):
            causes.append(required(key("metadata.annotations", "kubernetes.io/service-account.name")))
    elif typ in ("kubernetes.io/dockercfg", "kubernetes.io/dockerconfigjson"):
        k = SECRET_TYPES_REQUIRED[typ][0]
        if k not in decoded:
            causes.append(required(key("data", k)))
        else:
            try:
                parsed = json.loads(decoded[k] or b"null")
                if not isinstance(parsed, dict):
                    raise ValueError("json: cannot unmarshal into Go value of type map[string]interface {}")
            except ValueError as e:
                causes.append(invalid(key("data", k), "<secret contents redacted>", str(e)))
    elif typ == "kubernetes.io/basic-auth":
        if "username" not in decoded and "password" not in decoded:
            causes.append(required(key("data", "username")))
            causes.append(required(key("data", "password")))
    elif typ == "kubernetes.io/ssh-auth":
        if not decoded.get("ssh-privatekey"):
            causes.append(required(key("data", "ssh-privatekey")))
    elif typ == "kubernetes.io/tls":
        if "tls.crt" not in decoded:
            causes.append(required(key("data", "tls.crt")))
        if "tls.key" not in decoded:
            causes.append(required(key("data", "tls.key")))
    if old is not None:
        causes = immutable("type", obj.get("type") or "Opaque", old.get("type") or "Opaque") \
            + _immutable_data(obj, old, ("data",)) + causes
    return causes


# ---- Namespace / ServiceAccount / Node -------------------------------------------------------------------
def validate_namespace(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, f in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
        p = index("spec.finalizers", i)
        msgs = is_qualified_name(str(f))
        causes += [invalid(p, f, m) for m in msgs]
        if not msgs and "/" not in str(f) and f != "kubernetes":
            causes.append(invalid(p, f, "name is neither a standard finalizer name nor is it fully qualified"))
    return causes


def validate_node(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    for i, t in enumerate(dicts(spec.get("taints"))):
        p = index("spec.taints", i)
        k = str(t.get("key") or "")
        if not k:
            causes.append(required(child(p, "key")))
        else:
            causes += validate_label_name(k, child(p, "key"))
        if t.get("value"):
            causes += [invalid(child(p, "value"), t["value"], m) for m in is_label_value(str(t["value"]))]
        eff = t.get("effect")
        if not eff:
            causes.append(required(child(p, "effect")))
        elif eff not in TAINT_EFFECTS:
            causes.append(not_supported(child(p, "effect"), eff, TAINT_EFFECTS))
    for i, cidr in enumerate(as_list(spec.get("podCIDRs"))):
        try:
            ipaddress.ip_network(str(cidr), strict=False)
        except ValueError:
            causes.append(invalid(index("spec.podCIDRs", i), cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
    return causes


# ---- storage ------------------------------------------------------------------------------------------
def _access_modes(modes: Any, path: str) -> list[Cause]:
    ms = as_list(modes)
    if not ms:
        return [required(path, "at least 1 access mode is required")]
    causes = [not_supported(path, m, ACCESS_MODES) for m in ms if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in ms and len(ms) > 1:
        causes.append(forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return causes


def validate_pvc_spec(spec: Obj, path: str) -> list[Cause]:
    causes = _access_modes(spec.get("accessModes"), child(path, "accessModes"))
    causes += validate_label_selector(spec.get("selector"), child(path, "selector"))
    reqs = as_dict(as_dict(spec.get("resources")).get("requests"))
    storage = reqs.get("storage")
    if storage is None and not spec.get("dataSourceRef"):
        causes.append(required(key(child(path, "resources"), "storage")))
    elif storage is not None:
        p = key(child(path, "resources", "requests"), "storage")
        q, errs = quantity(storage, p)
        causes += errs
        if q is not None and q.value <= 0:
            causes.append(invalid(p, str(q), "must be greater than zero"))
    vm = spec.get("volumeMode")
    if vm is not None and vm not in ("Block", "Filesystem"):
        causes.append(not_supported(child(path, "volumeMode"), vm, ("Block", "Filesystem")))
    sc = spec.get("storageClassName")
    if sc:
        causes += dns1123_subdomain(str(sc), child(path, "storageClassName"))
    return causes


def validate_pvc(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = validate_pvc_spec(spec, "spec")
    if old is not None:
        ospec = as_dict(old.get("spec"))
        a, b = copy.deepcopy(spec), copy.deepcopy(ospec)
        if not b.get("volumeName"):
            b["volumeName"] = a.get("volumeName")
        if b.get("storageClassName") is None:
            b["storageClassName"] = a.get("storageClassName")
        for s in (a, b):
            as_dict(s.get("resources")).pop("requests", None)
            s.pop("volumeAttributesClassName", None)
        if not semantic_equal(a, b):
            causes.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                            "volumeAttributesClassName for bound claims"))
        new_q = Quantity.of(as_dict(as_dict(spec.get("resources")).get("requests")).get("storage"))
        old_q = Quantity.of(as_dict(as_dict(ospec.get("resources")).get("requests")).get("storage"))
        if new_q is not None and old_q is not None and new_q < old_q:
            causes.append(forbidden("spec.resources.requests.storage", "field can not be less than previous value"))
    return causes


def validate_pv(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = _access_modes(spec.get("accessModes"), "spec.accessModes")
    cap = as_dict(spec.get("capacity"))
    if not cap:
        causes.append(required("spec.capacity"))
    elif "storage" not in cap or len(cap) > 1:
        causes.append(not_supported("spec.capacity", GoRaw("core.ResourceList{...}"), ("storage",)))
    else:
        q, errs = quantity(cap["storage"], key("spec.capacity", "storage"))
        causes += errs
    n = [s for s in VOLUME_SOURCES + ("local",) if spec.get(s) is not None]
    if not n:
        causes.append(required("spec", "must specify a volume type"))
    elif len(n) > 1:
        causes.append(forbidden(child("spec", n[1]), "may not specify more than 1 volume type"))
    rp = spec.get("persistentVolumeReclaimPolicy")
    if rp not in ("Delete", "Recycle", "Retain"):
        causes.append(not_supported("spec.persistentVolumeReclaimPolicy", rp or "", ("Delete", "Recycle", "Retain")))
    hp = as_dict(spec.get("hostPath"))
    if spec.get("hostPath") is not None and not hp.get("path"):
        causes.append(required("spec.hostPath.path"))
    if old is not None:
        ospec = as_dict(old.get("spec"))
        for f in ("volumeMode",):
            causes += immutable(child("spec", f), spec.get(f), ospec.get(f))
    return causes


def validate_replication_controller(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = nonnegative("spec.replicas", spec.get("replicas"))
    causes += nonnegative("spec.minReadySeconds", spec.get("minReadySeconds"))
    sel = as_dict(spec.get("selector"))
    if not sel:
        causes.append(required("spec.selector"))
    else:
        causes += validate_labels(sel, "spec.selector")
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        causes.append(required("spec.template"))
        return causes
    labels = as_dict(as_dict(tmpl.get("metadata")).get("labels"))
    if sel and not all(labels.get(k) == v for k, v in sel.items()):
        causes.append(invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`"))
    causes += validate_pod_template(tmpl, "spec.template")
    rp = as_dict(tmpl.get("spec")).get("restartPolicy")
    if rp != "Always":
        causes.append(not_supported("spec.template.spec.restartPolicy", rp or "", ("Always",)))
    return causes


def validate_service_account(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, s in enumerate(dicts(obj.get("secrets"))):
        if s.get("name"):
            causes += dns1123_subdomain(str(s["name"]), child(index("secrets", i), "name"))
    return causes


def validate_event(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    io = as_dict(obj.get("involvedObject"))
    ns = as_dict(obj.get("metadata")).get("namespace") or ""
    if io.get("namespace") and ns and io["namespace"] != ns and ns != "default":
        causes.append(invalid("involvedObject.namespace", io["namespace"], "does not match event.namespace"))
    for k in ("type",):
        t = obj.get(k)
        if t and t not in ("Normal", "Warning"):
            causes.append(not_supported(k, t, ("Normal", "Warning")))
    return causes


def validate_resource_list(rl: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    for name, raw in sorted(as_dict(rl).items()):
        p = key(path, name)
        causes += [invalid(p, name, m) for m in is_qualified_name(name)]
        q, errs = quantity(raw, p)
        causes += errs
        if q is not None and q.value < 0:
            causes.append(invalid(p, str(q), "must be greater than or equal to 0"))
    return causes


def validate_resource_quota(obj: Obj, old: Obj | None) -> list[Cause]:
    return validate_resource_list(as_dict(obj.get("spec")).get("hard"), "spec.hard")


def validate_limit_range(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, item in enumerate(dicts(as_dict(obj.get("spec")).get("limits"))):
        p = index("spec.limits", i)
        t = item.get("type")
        if t not in ("Container", "Pod", "PersistentVolumeClaim"):
            causes.append(not_supported(child(p, "type"), t or "", ("Container", "PersistentVolumeClaim", "Pod")))
        for k in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            causes += validate_resource_list(item.get(k), child(p, k))
    return causes


def validate_endpoints(obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    for i, ss in enumerate(dicts(obj.get("subsets"))):
        sp = index("subsets", i)
        for kind in ("addresses", "notReadyAddresses"):
            for j, a in enumerate(dicts(ss.get(kind))):
                if not _is_ip(str(a.get("ip") or "")):
                    causes.append(invalid(child(index(child(sp, kind), j), "ip"), a.get("ip") or "",
                                          "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        for j, port in enumerate(dicts(ss.get("ports"))):
            pp = index(child(sp, "ports"), j)
            causes += [invalid(child(pp, "port"), port.get("port"), m) for m in is_valid_port_num(_int(port.get("port")) or 0)]
            if port.get("protocol") not in PROTOCOLS:
                causes.append(not_supported(child(pp, "protocol"), port.get("protocol") or "", PROTOCOLS))
    return causes


def c_identifier(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in is_c_identifier(value)]


def dns1035_label(value: str, path: str) -> list[Cause]:
    return [invalid(path, value, m) for m in is_dns1035_label(value)]
