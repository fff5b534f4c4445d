"""Pod helpers every workload controller shares: activity, readiness, availability, and the pod a
controller creates from its template (Kubernetes's controller_utils, in small).

Pure functions on API objects (dicts), tolerant of malformed stored objects: a value of the wrong
type reads as absent rather than raising.
Neighbours: `minik.machinery.ownership` (claiming pods), `minik.controllers.replicaset`,
`minik.controllers.endpoints` and the workload controllers.
"""

from __future__ import annotations

import copy
import datetime as dt

from minik.client import Obj
from minik.machinery.controller import owner_reference
from minik.machinery.timestamps import parse_time


def _status(pod: Obj) -> Obj:
    s = pod.get("status")
    return s if isinstance(s, dict) else {}


def is_active(pod: Obj) -> bool:
    """Counts towards replicas: not terminating and not finished (controller.IsPodActive)."""
    return (not (pod.get("metadata") or {}).get("deletionTimestamp")
            and _status(pod).get("phase") not in ("Succeeded", "Failed"))


def ready_condition(pod: Obj) -> Obj | None:
    conds = _status(pod).get("conditions")
    for c in conds if isinstance(conds, list) else []:
        if isinstance(c, dict) and c.get("type") == "Ready":
            return c
    return None


def pod_ready(pod: Obj) -> bool:
    """The Ready condition is True (podutil.IsPodReady)."""
    c = ready_condition(pod)
    return c is not None and c.get("status") == "True"


def available_in(pod: Obj, min_ready_seconds: int, now: dt.datetime) -> float | None:
    """Seconds until a ready pod counts as available (0: available now); None when not ready."""
    c = ready_condition(pod)
    if c is None or c.get("status") != "True":
        return None
    if min_ready_seconds <= 0:
        return 0.0
    since = parse_time(c.get("lastTransitionTime"))
    if since is None:
        return 0.0
    return max(0.0, (since + dt.timedelta(seconds=min_ready_seconds) - now).total_seconds())


def pod_from_template(owner: Obj, api_version: str, kind: str, name_prefix: str = "") -> Obj:
    """A pod from `owner.spec.template` with generateName `<owner>-` and a controller reference
    (controller.GetPodFromTemplate)."""
    m = owner["metadata"]
    tmpl = (owner.get("spec") or {}).get("template") or {}
    tm = tmpl.get("metadata") or {}
    meta: Obj = {"generateName": name_prefix or f"{m['name']}-", "namespace": m.get("namespace", ""),
                 "labels": dict(tm.get("labels") or {}),
                 "ownerReferences": [owner_reference(owner, api_version, kind)]}
    if tm.get("annotations"):
        meta["annotations"] = dict(tm["annotations"])
    if tm.get("finalizers"):
        meta["finalizers"] = list(tm["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": copy.deepcopy(tmpl.get("spec") or {})}
