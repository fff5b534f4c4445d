"""batch/v1 validation: Job and CronJob, including cron schedule syntax.

Follows `k8s.io/kubernetes/pkg/apis/batch/validation`; schedules are checked the way
`robfig/cron/v3`'s standard parser checks them (5 fields, names, ranges, steps, descriptors such
as `@hourly`) with the same error texts. Neighbours: dispatched from `minik.apis.validation`;
the CronJob controller can reuse `parse_schedule` to compute run times.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from typing import Any

from minik.apis.errors import Cause
from minik.apis.selectors import LabelSelector, SelectorError
from minik.apis.validation.apps import template_labels_match
from minik.apis.validation.core import validate_pod_template
from minik.apis.validation.field import (GoRaw, as_dict, go_label_selector, immutable, invalid, nonnegative,
                                         not_supported, required, semantic_equal)
from minik.apis.validation.meta import validate_annotations, validate_label_selector, validate_labels

Obj = dict[str, Any]

CRONJOB_NAME_MAX = 52  # 63 minus the 11-character suffix the CronJob controller appends
JOB_RESTART_POLICIES = ("OnFailure", "Never")


# ---- cron ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Bounds:
    lo: int
    hi: int
    names: tuple[tuple[str, int], ...] = ()


MINUTES = Bounds(0, 59)
HOURS = Bounds(0, 23)
DOM = Bounds(1, 31)
MONTHS = Bounds(1, 12, tuple((m, i + 1) for i, m in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))))
DOW = Bounds(0, 6, tuple((d, i) for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))))

DESCRIPTORS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
_DURATION = re.compile(r"^([0-9]*(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+$")


class CronError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Schedule:
    """The sets of minutes, hours, days of month, months and weekdays a schedule fires on."""

    minutes: frozenset[int]
    hours: frozenset[int]
    dom: frozenset[int]
    months: frozenset[int]
    dow: frozenset[int]
    dom_star: bool
    dow_star: bool
    every_seconds: float = 0.0  # "@every <duration>"


def _atoi(expr: str) -> int:
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": invalid syntax')
    n = int(expr)
    if n < 0:
        raise CronError(f"negative number ({n}) not allowed: {expr}")
    return n


def _int_or_name(expr: str, b: Bounds) -> int:
    for name, v in b.names:
        if expr.lower() == name:
            return v
    return _atoi(expr)


def _range(expr: str, b: Bounds) -> tuple[set[int], bool]:
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        start, end, star = b.lo, b.hi, True
    else:
        start = _int_or_name(low_high[0], b)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], b)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_high) == 1:
            end = b.hi  # "N/step" means "N-max/step"
        if step > 1:
            star = False
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < b.lo:
        raise CronError(f"beginning of range ({start}) below minimum ({b.lo}): {expr}")
    if end > b.hi:
        raise CronError(f"end of range ({end}) above maximum ({b.hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    return set(range(start, end + 1, step)), star


def _field(expr: str, b: Bounds) -> tuple[frozenset[int], bool]:
    out: set[int] = set()
    star = False
    for part in expr.split(","):
        vals, s = _range(part, b)
        out |= vals
        star = star or s
    return frozenset(out), star


def parse_schedule(spec: str) -> Schedule:
    """cron.ParseStandard; raises CronError with robfig/cron's messages."""
    if not spec:
        raise CronError("empty spec string")
    if spec.startswith("TZ=") or spec.startswith("CRON_TZ="):
        i = spec.find(" ")
        eq = spec.find("=")
        loc = spec[eq + 1:i] if i >= 0 else spec[eq + 1:]
        try:
            zoneinfo.ZoneInfo(loc)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise CronError(f"provided bad location {loc}: unknown time zone {loc}") from None
        spec = spec[i:].strip() if i >= 0 else ""
    if spec.startswith("@"):
        if spec.startswith("@every "):
            dur = spec[len("@every "):].strip()
            if not _DURATION.match(dur) or dur in ("", "."):
                raise CronError(f'failed to parse duration {spec}: time: invalid duration "{dur}"')
            return Schedule(frozenset(), frozenset(), frozenset(), frozenset(), frozenset(), True, True, 1.0)
        if spec not in DESCRIPTORS:
            raise CronError(f"unrecognized descriptor: {spec}")
        spec = DESCRIPTORS[spec]
    fields = spec.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    minutes, _ = _field(fields[0], MINUTES)
    hours, _ = _field(fields[1], HOURS)
    dom, dom_star = _field(fields[2], DOM)
    months, _ = _field(fields[3], MONTHS)
    dow, dow_star = _field(fields[4], DOW)
    return Schedule(minutes, hours, dom, months, dow, dom_star, dow_star)


def _schedule(schedule: str, allow_tz: bool, time_zone: Any, path: str) -> list[Cause]:
    causes: list[Cause] = []
    try:
        parse_schedule(schedule)
    except CronError as e:
        causes.append(invalid(path, schedule, str(e)))
    if allow_tz and "TZ" in schedule and time_zone is not None:
        causes.append(invalid(path, schedule, "cannot use both timeZone field and TZ or CRON_TZ in schedule"))
    elif not allow_tz and "TZ" in schedule:
        causes.append(invalid(path, schedule, "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
    return causes


def _time_zone(tz: Any, path: str) -> list[Cause]:
    if tz is None:
        return []
    s = str(tz)
    if s.lower() == "local":
        return [invalid(path, s, "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones")]
    try:
        zoneinfo.ZoneInfo(s)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return [invalid(path, s, f"unknown time zone {s}")]
    return []


# ---- Job -------------------------------------------------------------------------------------------
def _job_spec(spec: Obj, path: str, is_template: bool) -> list[Cause]:
    causes: list[Cause] = []
    for k in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished", "activeDeadlineSeconds"):
        causes += nonnegative(f"{path}.{k}", spec.get(k))
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and not isinstance(ads, bool) and ads == 0:
        causes.append(invalid(f"{path}.activeDeadlineSeconds", ads, "must be greater than 0"))
    mode = spec.get("completionMode")
    if mode is not None and mode not in ("NonIndexed", "Indexed"):
        causes.append(not_supported(f"{path}.completionMode", mode, ("NonIndexed", "Indexed")))
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(required(f"{path}.completions", "when completion mode is Indexed"))
    prp = spec.get("podReplacementPolicy")
    if prp is not None and prp not in ("TerminatingOrFailed", "Failed"):
        causes.append(not_supported(f"{path}.podReplacementPolicy", prp, ("Failed", "TerminatingOrFailed")))
    sel = spec.get("selector")
    tmpl = spec.get("template")
    if is_template:
        if sel is not None:
            causes.append(invalid(f"{path}.selector", go_label_selector(sel), "`selector` will be auto-generated"))
        if spec.get("manualSelector") is True:
            causes.append(not_supported(f"{path}.manualSelector", GoRaw("true"), ("nil", "false")))
    else:
        if not isinstance(sel, dict):
            causes.append(required(f"{path}.selector"))
        else:
            causes += validate_label_selector(sel, f"{path}.selector")
        try:
            selector = LabelSelector.from_api(sel if isinstance(sel, dict) else None)
            causes += template_labels_match(selector, tmpl, f"{path}.template")
        except SelectorError:
            pass
    causes += validate_pod_template(tmpl, f"{path}.template")
    rp = as_dict(as_dict(tmpl).get("spec")).get("restartPolicy")
    if rp not in JOB_RESTART_POLICIES:
        causes.append(not_supported(f"{path}.template.spec.restartPolicy", rp or "", JOB_RESTART_POLICIES))
    return causes


def validate_job(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes = _job_spec(spec, "spec", False)
    # The job-name label the controller adds must be a valid label value.
    name = str(as_dict(obj.get("metadata")).get("name") or "")
    if len(name) > 63 and spec.get("manualSelector") is not True:
        causes.append(invalid("spec.template.labels", name, "must be no more than 63 characters"))
    if old is None:
        return causes
    ospec = as_dict(old.get("spec"))
    causes += immutable("spec.completions", spec.get("completions"), ospec.get("completions"))
    if not semantic_equal(spec.get("selector"), ospec.get("selector")):
        causes.append(invalid("spec.selector", go_label_selector(spec.get("selector")), "field is immutable"))
    if not semantic_equal(spec.get("template"), ospec.get("template")):
        causes.append(invalid("spec.template", GoRaw("core.PodTemplateSpec{...}"), "field is immutable"))
    for k in ("completionMode", "podFailurePolicy", "backoffLimitPerIndex", "managedBy", "successPolicy"):
        if not semantic_equal(spec.get(k), ospec.get(k)):
            causes.append(invalid(f"spec.{k}", spec.get(k) if not isinstance(spec.get(k), dict) else GoRaw("{...}"),
                                  "field is immutable"))
    return causes


def validate_cronjob(obj: Obj, old: Obj | None) -> list[Cause]:
    spec = as_dict(obj.get("spec"))
    causes: list[Cause] = []
    name = str(as_dict(obj.get("metadata")).get("name") or "")
    if old is None and len(name) > CRONJOB_NAME_MAX:
        causes.append(invalid("metadata.name", name, f"must be no more than {CRONJOB_NAME_MAX} characters"))
    ospec = as_dict(old.get("spec")) if old is not None else None
    schedule = spec.get("schedule")
    if not schedule:
        causes.append(required("spec.schedule"))
    else:
        allow_tz = ospec is not None and "TZ" in str(ospec.get("schedule") or "")
        causes += _schedule(str(schedule), allow_tz, spec.get("timeZone"), "spec.schedule")
    causes += nonnegative("spec.startingDeadlineSeconds", spec.get("startingDeadlineSeconds"))
    if ospec is None or ospec.get("timeZone") != spec.get("timeZone"):
        causes += _time_zone(spec.get("timeZone"), "spec.timeZone")
    cp = spec.get("concurrencyPolicy")
    if not cp:
        causes.append(required("spec.concurrencyPolicy"))
    elif cp not in ("Allow", "Forbid", "Replace"):
        causes.append(not_supported("spec.concurrencyPolicy", cp, ("Allow", "Forbid", "Replace")))
    jt = as_dict(spec.get("jobTemplate"))
    jm = as_dict(jt.get("metadata"))
    causes += validate_labels(jm.get("labels"), "spec.jobTemplate.metadata.labels")
    causes += validate_annotations(jm.get("annotations"), "spec.jobTemplate.metadata.annotations")
    causes += _job_spec(as_dict(jt.get("spec")), "spec.jobTemplate.spec", True)
    causes += nonnegative("spec.successfulJobsHistoryLimit", spec.get("successfulJobsHistoryLimit"))
    causes += nonnegative("spec.failedJobsHistoryLimit", spec.get("failedJobsHistoryLimit"))
    return causes

