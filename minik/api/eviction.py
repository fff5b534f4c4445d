"""The `pods/eviction` subresource (policy/v1 Eviction): a delete that honours PodDisruptionBudgets.

kube-apiserver's EvictionREST, in order:
- the Eviction's name must be the pod's; the pod must exist (404);
- a pod that is terminating, finished or still Pending is deleted without asking a budget;
- the budgets of the pod's namespace whose selector matches it: none → delete; more than one →
  500 ("This pod has more than one PodDisruptionBudget, which the eviction subresource does not
  support.");
- a pod that is not Ready is deleted when the budget's `unhealthyPodEvictionPolicy` is
  AlwaysAllow, or (IfHealthyBudget, the default) when the budget is met
  (currentHealthy >= desiredHealthy > 0);
- a budget whose status is older than its spec (observedGeneration) or with no disruption
  allowed → 429 TooManyRequests "Cannot evict pod as it would violate the pod's disruption
  budget." with a `DisruptionBudget` cause saying why (kubectl drain retries on it);
- otherwise the budget's `disruptionsAllowed` is decremented and the pod recorded in
  `status.disruptedPods` by a compare-and-swap status write (so concurrent evictions cannot both
  spend the last disruption), then the pod gets the `DisruptionTarget` condition and is deleted
  with the Eviction's deleteOptions.
Answer: 201 with a Success Status.
Neighbours: `minik.api.handlers` routes POST …/pods/<name>/eviction here; the disruption
controller (`minik.controllers.disruption`) keeps the budgets' status current.
"""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from minik.api import status as st
from minik.api.meta import Obj, rfc3339
from minik.api.service import DeleteOptions, ResourceService, WriteOptions
from minik.apis.registry import ResourceType
from minik.apis.selectors import LabelSelector

MESSAGE = "Cannot evict pod as it would violate the pod's disruption budget."
MAX_DISRUPTED_PODS = 2000
RETRIES = 8


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _ready(pod: Obj) -> bool:
    return any(_d(c).get("type") == "Ready" and _d(c).get("status") == "True"
               for c in _d(pod.get("status")).get("conditions") or [])


def can_ignore_budget(pod: Obj) -> bool:
    return bool(_d(pod.get("metadata")).get("deletionTimestamp")) or \
        _d(pod.get("status")).get("phase") in ("Succeeded", "Failed", "Pending")


def matching_budgets(pod: Obj, pdbs: list[Obj]) -> list[Obj]:
    labels = _d(_d(pod.get("metadata")).get("labels"))
    out = []
    for pdb in pdbs:
        sel = _d(pdb.get("spec")).get("selector")
        try:
            if LabelSelector.from_api(sel if isinstance(sel, dict) else None).matches(labels):
                out.append(pdb)
        except Exception:  # a malformed stored selector selects nothing
            continue
    return out


def too_many(message: str) -> st.StatusError:
    return st.StatusError(429, "TooManyRequests", MESSAGE, {"causes": [{"reason": "DisruptionBudget", "message": message}]})


def _delete_options(body: Obj) -> DeleteOptions:
    opts = _d(body.get("deleteOptions"))
    pre = _d(opts.get("preconditions"))
    grace = opts.get("gracePeriodSeconds")
    return DeleteOptions(str(opts.get("propagationPolicy") or ""), grace if isinstance(grace, int) else None,
                         str(pre.get("uid") or ""), str(pre.get("resourceVersion") or ""), bool(opts.get("dryRun")))


async def evict(service: ResourceService, pod_rt: ResourceType, namespace: str, name: str, body: Any,
                now: dt.datetime | None = None) -> Obj:
    if not isinstance(body, dict):
        raise st.bad_request("the request body must be an Eviction object")
    body_name = _d(body.get("metadata")).get("name")
    if body_name and body_name != name:
        raise st.bad_request("name in URL does not match name in Eviction object")
    pdb_rt = service.registry.lookup("policy", "v1", "poddisruptionbudgets")
    assert pdb_rt is not None
    options = _delete_options(body)
    contended = ""
    for _ in range(RETRIES):
        pod = service.get(pod_rt, namespace, name)
        if not can_ignore_budget(pod):
            budgets = matching_budgets(pod, service.store.list(pdb_rt.store_key, namespace).items)
            if len(budgets) > 1:
                raise st.StatusError(500, "InternalError",
                                     "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
            if budgets and not await _spend(service, pdb_rt, budgets[0], pod, now or dt.datetime.now(dt.timezone.utc), options.dry_run):
                contended = str(budgets[0]["metadata"].get("name", ""))
                continue   # lost a race on the budget's status: read it again
        if not options.dry_run:
            await _mark_disruption_target(service, pod_rt, pod, now or dt.datetime.now(dt.timezone.utc))
        await service.delete(pod_rt, namespace, name, options)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
    raise too_many(f"The disruption budget {contended} is being updated by too many evictions at once")


async def _mark_disruption_target(service: ResourceService, pod_rt: ResourceType, pod: Obj, now: dt.datetime) -> None:
    """The `DisruptionTarget` condition (reason EvictionByEvictionAPI) kube-apiserver adds before
    deleting an evicted pod, so a Job's podFailurePolicy can tell an eviction from a failure.
    Skipped for pods already finished or terminating, as kube does."""
    m = _d(pod.get("metadata"))
    if m.get("deletionTimestamp") or _d(pod.get("status")).get("phase") in ("Succeeded", "Failed"):
        return
    conds = [c for c in _d(pod.get("status")).get("conditions") or [] if _d(c).get("type") != "DisruptionTarget"]
    conds.append({"type": "DisruptionTarget", "status": "True", "lastProbeTime": None, "lastTransitionTime": rfc3339(now),
                  "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"})
    new = copy.deepcopy(pod)
    new.setdefault("status", {})["conditions"] = conds
    try:
        await service.update(pod_rt, str(m.get("namespace", "")), str(m.get("name", "")), new,
                             WriteOptions("minik-eviction", "Ignore", False, "status"))
    except st.StatusError as e:
        if e.code not in (404, 409):
            raise   # gone, or changed meanwhile: the delete below still evicts it


async def _spend(service: ResourceService, pdb_rt: ResourceType, pdb: Obj, pod: Obj, now: dt.datetime, dry_run: bool) -> bool:
    """True when the pod may go (the budget's status updated); False when the status write lost a
    race; raises 429/403 when the budget forbids it."""
    spec, status, m = _d(pdb.get("spec")), _d(pdb.get("status")), _d(pdb.get("metadata"))
    pdb_name = str(m.get("name", ""))
    if not _ready(pod):
        if spec.get("unhealthyPodEvictionPolicy") == "AlwaysAllow":
            return True
        desired, healthy = int(status.get("desiredHealthy") or 0), int(status.get("currentHealthy") or 0)
        if healthy >= desired and desired > 0:
            return True
    if int(status.get("observedGeneration") or 0) < int(m.get("generation") or 0):
        raise too_many(f"The disruption budget {pdb_name} is still being processed by the server.")
    allowed = int(status.get("disruptionsAllowed") or 0)
    if allowed < 0:
        raise st.forbidden("pdb disruptions allowed is negative")
    disrupted = dict(_d(status.get("disruptedPods")))
    if len(disrupted) > MAX_DISRUPTED_PODS:
        raise st.forbidden("DisruptedPods map too big - too many evictions not confirmed by PDB controller")
    if allowed == 0:
        raise too_many(f"The disruption budget {pdb_name} needs {int(status.get('desiredHealthy') or 0)} healthy pods "
                       f"and has {int(status.get('currentHealthy') or 0)} currently")
    if dry_run:
        return True
    new = copy.deepcopy(pdb)
    ns = new.setdefault("status", {})
    ns["disruptionsAllowed"] = allowed - 1
    disrupted[str(_d(pod.get("metadata")).get("name", ""))] = rfc3339(now)
    ns["disruptedPods"] = disrupted
    try:
        await service.update(pdb_rt, str(m.get("namespace", "")), pdb_name, new, WriteOptions("minik-eviction", "Ignore", False, "status"))
    except st.StatusError as e:
        if e.code == 409:
            return False
        raise
    return True
