"""Cell formatting shared by the Table printers: ages, label selectors, lists, quantities.

Neighbours: used by the per-group printer modules of `minik.api.tables`. The rules follow
Kubernetes' printers (`HumanDuration`, `labels.FormatLabels`, `LabelSelectorAsSelector`), so
`kubectl get` prints the same text against minik as against kube-apiserver.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

Obj = dict[str, Any]

NONE = "<none>"
UNKNOWN = "<unknown>"


def parse_time(value: Any) -> datetime | None:
    """RFC3339 (with Z or an offset, fractional seconds allowed) → aware datetime, else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=timezone.utc)


def human_duration(seconds_f: float) -> str:
    """Kubernetes' HumanDuration: "51s", "5m10s", "15m", "3h10m", "20h", "2d5h", "30d", "2y10d"."""
    seconds = int(seconds_f)
    if seconds < -1:
        return "<invalid>"
    if seconds < 0:
        return "0s"
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        s = seconds % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = seconds // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def since(value: Any, now: datetime) -> str:
    """Age of an RFC3339 timestamp (`translateTimestampSince`): "<unknown>" when unset."""
    t = parse_time(value)
    if t is None:
        return UNKNOWN
    return human_duration((now - t).total_seconds())


def between(start: Any, end: Any) -> str:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return ""
    return human_duration((b - a).total_seconds())


def rfc3339(value: Any) -> str:
    t = parse_time(value)
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if t else ""


def format_labels(labels: Any) -> str:
    """`labels.FormatLabels`: "a=1,b=2" sorted by key, "<none>" when empty."""
    if not isinstance(labels, dict) or not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def format_selector(sel: Any) -> str:
    """A metav1.LabelSelector as its selector string ("app=web,tier in (a,b),!gone")."""
    if not isinstance(sel, dict):
        return NONE
    reqs: list[tuple[str, str]] = []
    for k, v in (sel.get("matchLabels") or {}).items():
        reqs.append((k, f"{k}={v}"))
    for e in sel.get("matchExpressions") or []:
        key, op = e.get("key", ""), e.get("operator", "")
        values = ",".join(sorted(str(x) for x in e.get("values") or []))
        if op == "In":
            reqs.append((key, f"{key} in ({values})"))
        elif op == "NotIn":
            reqs.append((key, f"{key} notin ({values})"))
        elif op == "Exists":
            reqs.append((key, key))
        elif op == "DoesNotExist":
            reqs.append((key, f"!{key}"))
    if not reqs:
        return NONE
    reqs.sort(key=lambda r: r[0])
    return ",".join(r[1] for r in reqs)


def more(items: list[str], limit: int, total: int | None = None, sep: str = ",") -> str:
    """Join at most `limit` items and say how many were left out (" + 2 more...")."""
    total = len(items) if total is None else total
    shown = items[:limit]
    out = sep.join(shown)
    if total > limit:
        return f"{out} + {total - limit} more..."
    return out


def access_modes(modes: Any) -> str:
    """`GetAccessModesAsString`: fixed order RWO, ROX, RWX, RWOP."""
    have = set(modes or [])
    short = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"), ("ReadWriteOncePod", "RWOP"))
    return ",".join(s for full, s in short if full in have)


def intstr(value: Any) -> str:
    return str(value)


def bool_str(value: Any) -> str:
    return "True" if value else "False"


def containers_and_images(pod_spec: Any) -> tuple[str, str]:
    cs = (pod_spec or {}).get("containers") or [] if isinstance(pod_spec, dict) else []
    return ",".join(c.get("name", "") for c in cs), ",".join(c.get("image", "") for c in cs)


def get(obj: Any, *path: str) -> Any:
    """obj[path[0]][path[1]]… or None when any step is missing."""
    for p in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(p)
    return obj
