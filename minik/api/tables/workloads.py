"""Table printers for apps/v1 and batch/v1 kinds (kube-apiserver's columns and cell rules).

Neighbours: registered by `minik.api.tables`; cell helpers come from `.format`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from minik.api.tables.core import replica_columns
from minik.api.tables.format import (NONE, between, containers_and_images, format_labels, format_selector, get,
                                     since)
from minik.api.tables.printer import AGE, NAME, Obj, Printer, col, wide

CONTAINERS = wide("Containers", "Names of each container in the template.")
IMAGES = wide("Images", "Images referenced by each container in the template.")
SELECTOR = wide("Selector", "The label selector of the pods.")


def _n(v: Any) -> int:
    try:
        return int(v or 0)
    except (TypeError, ValueError):
        return 0


def deployment_cells(d: Obj, now: datetime) -> list[Any]:
    meta, spec, status = d.get("metadata") or {}, d.get("spec") or {}, d.get("status") or {}
    names, images = containers_and_images(get(spec, "template", "spec"))
    return [meta.get("name", ""), f"{_n(status.get('readyReplicas'))}/{_n(spec.get('replicas', 1))}",
            _n(status.get("updatedReplicas")), _n(status.get("availableReplicas")),
            since(meta.get("creationTimestamp"), now), names, images, format_selector(spec.get("selector"))]


DEPLOYMENT = Printer((
    NAME,
    col("Ready", "Number of ready pods out of the desired replicas."),
    col("Up-to-date", "Number of pods running the latest template."),
    col("Available", "Number of pods available to users (ready for at least minReadySeconds)."),
    AGE, CONTAINERS, IMAGES, SELECTOR,
), deployment_cells)


def replicaset_cells(rs: Obj, now: datetime) -> list[Any]:
    meta, spec, status = rs.get("metadata") or {}, rs.get("spec") or {}, rs.get("status") or {}
    names, images = containers_and_images(get(spec, "template", "spec"))
    return [meta.get("name", ""), _n(spec.get("replicas", 1)), _n(status.get("replicas")),
            _n(status.get("readyReplicas")), since(meta.get("creationTimestamp"), now), names, images,
            format_selector(spec.get("selector"))]


REPLICASET = Printer(replica_columns(), replicaset_cells)


def statefulset_cells(sts: Obj, now: datetime) -> list[Any]:
    meta, spec, status = sts.get("metadata") or {}, sts.get("spec") or {}, sts.get("status") or {}
    names, images = containers_and_images(get(spec, "template", "spec"))
    return [meta.get("name", ""), f"{_n(status.get('readyReplicas'))}/{_n(spec.get('replicas', 1))}",
            since(meta.get("creationTimestamp"), now), names, images]


STATEFULSET = Printer((
    NAME, col("Ready", "Number of ready pods out of the desired replicas."), AGE, CONTAINERS, IMAGES,
), statefulset_cells)


def daemonset_cells(ds: Obj, now: datetime) -> list[Any]:
    meta, spec, status = ds.get("metadata") or {}, ds.get("spec") or {}, ds.get("status") or {}
    pod_spec = get(spec, "template", "spec")
    names, images = containers_and_images(pod_spec)
    return [meta.get("name", ""), _n(status.get("desiredNumberScheduled")), _n(status.get("currentNumberScheduled")),
            _n(status.get("numberReady")), _n(status.get("updatedNumberScheduled")),
            _n(status.get("numberAvailable")), format_labels(get(pod_spec, "nodeSelector")),
            since(meta.get("creationTimestamp"), now), names, images, format_selector(spec.get("selector"))]


DAEMONSET = Printer((
    NAME,
    col("Desired", "Number of nodes that should run the daemon pod.", "integer"),
    col("Current", "Number of nodes running the daemon pod.", "integer"),
    col("Ready", "Number of nodes whose daemon pod is ready.", "integer"),
    col("Up-to-date", "Number of nodes running the latest template.", "integer"),
    col("Available", "Number of nodes whose daemon pod is available.", "integer"),
    col("Node Selector", "The node selector of the pod template."),
    AGE, CONTAINERS, IMAGES, SELECTOR,
), daemonset_cells)


def _job_condition(status: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True" for c in status.get("conditions") or [])


def job_cells(job: Obj, now: datetime) -> list[Any]:
    meta, spec, status = job.get("metadata") or {}, job.get("spec") or {}, job.get("status") or {}
    succeeded = _n(status.get("succeeded"))
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{_n(spec['completions'])}"
    elif spec.get("parallelism") is not None and _n(spec["parallelism"]) > 1:
        completions = f"{succeeded}/1 of {_n(spec['parallelism'])}"
    else:
        completions = f"{succeeded}/1"
    duration = ""
    if status.get("startTime"):
        if status.get("completionTime"):
            duration = between(status["startTime"], status["completionTime"])
        else:
            duration = since(status["startTime"], now)
    if _job_condition(status, "Complete"):
        state = "Complete"
    elif _job_condition(status, "Failed"):
        state = "Failed"
    elif meta.get("deletionTimestamp"):
        state = "Terminating"
    elif _job_condition(status, "Suspended"):
        state = "Suspended"
    elif _job_condition(status, "FailureTarget"):
        state = "FailureTarget"
    elif _job_condition(status, "SuccessCriteriaMet"):
        state = "SuccessCriteriaMet"
    else:
        state = "Running"
    names, images = containers_and_images(get(spec, "template", "spec"))
    return [meta.get("name", ""), state, completions, duration, since(meta.get("creationTimestamp"), now),
            names, images, format_selector(spec.get("selector"))]


JOB = Printer((
    NAME,
    col("Status", "Status of the job: Running, Complete, Failed, Suspended, Terminating, …"),
    col("Completions", "Succeeded pods out of the desired completions."),
    col("Duration", "Time the job took (or has been running)."),
    AGE, CONTAINERS, IMAGES, SELECTOR,
), job_cells)


def cronjob_cells(cj: Obj, now: datetime) -> list[Any]:
    meta, spec, status = cj.get("metadata") or {}, cj.get("spec") or {}, cj.get("status") or {}
    suspend = spec.get("suspend")
    last = status.get("lastScheduleTime")
    job_spec = get(spec, "jobTemplate", "spec") or {}
    names, images = containers_and_images(get(job_spec, "template", "spec"))
    return [meta.get("name", ""), spec.get("schedule", ""), spec.get("timeZone") or NONE,
            "<unset>" if suspend is None else ("True" if suspend else "False"),
            len(status.get("active") or []), since(last, now) if last else NONE,
            since(meta.get("creationTimestamp"), now), names, images, format_selector(job_spec.get("selector"))]


CRONJOB = Printer((
    NAME,
    col("Schedule", "The cron schedule."),
    col("Timezone", "The time zone of the schedule."),
    col("Suspend", "Whether new runs are suspended.", "boolean"),
    col("Active", "Number of running jobs.", "integer"),
    col("Last Schedule", "Time since the job was last scheduled."),
    AGE, CONTAINERS, IMAGES, SELECTOR,
), cronjob_cells)


def controllerrevision_cells(cr: Obj, now: datetime) -> list[Any]:
    meta = cr.get("metadata") or {}
    controller = NONE
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = str(ref.get("apiVersion", ""))
            group = api_version.split("/", 1)[0] if "/" in api_version else ""
            kind = str(ref.get("kind", ""))
            gk = f"{kind}.{group}" if group else kind
            controller = f"{gk.lower()}/{ref.get('name', '')}"
            break
    return [meta.get("name", ""), controller, _n(cr.get("revision")), since(meta.get("creationTimestamp"), now)]


CONTROLLERREVISION = Printer((
    NAME,
    col("Controller", "The object that owns this revision."),
    col("Revision", "The revision number.", "integer"),
    AGE,
), controllerrevision_cells)

PRINTERS: dict[tuple[str, str], Printer] = {
    ("apps", "Deployment"): DEPLOYMENT, ("apps", "ReplicaSet"): REPLICASET, ("apps", "StatefulSet"): STATEFULSET,
    ("apps", "DaemonSet"): DAEMONSET, ("apps", "ControllerRevision"): CONTROLLERREVISION,
    ("batch", "Job"): JOB, ("batch", "CronJob"): CRONJOB,
}
