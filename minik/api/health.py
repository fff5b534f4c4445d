"""Health endpoints as kube-apiserver answers them: /healthz, /livez and /readyz.

Each endpoint runs a list of named checks. Plain requests get `ok` (200) or a report of what
failed (500). `?verbose` lists every check as `[+]name ok` or `[-]name failed`. `?exclude=name`
skips a check. `/livez/<check>` runs one check. Scripts written for k3s ask for `/readyz/etcd`,
so the store's check keeps that name.
Neighbours: `minik.api.app` routes the paths here; `minik.daemon` supplies the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: Callable[[], bool]


@dataclass(frozen=True, slots=True)
class HealthReport:
    code: int
    text: str


def evaluate(endpoint: str, checks: Sequence[Check], sub: str, query: Mapping[str, str],
             excluded: Sequence[str] = ()) -> HealthReport:
    """Answer GET /<endpoint>[/<sub>] (endpoint: healthz | livez | readyz)."""
    by_name = {c.name: c for c in checks}
    if sub:
        check = by_name.get(sub)
        if check is None:
            return HealthReport(404, "404 page not found\n")
        if check.ok():
            return HealthReport(200, "ok")
        return HealthReport(500, f"internal server error: {sub} check failed\n")
    unknown = [n for n in excluded if n not in by_name]
    lines: list[str] = []
    failed = False
    for c in checks:
        if c.name in excluded:
            lines.append(f"[+]{c.name} excluded: ok")
            continue
        if c.ok():
            lines.append(f"[+]{c.name} ok")
        else:
            failed = True
            lines.append(f"[-]{c.name} failed: reason withheld")
    for n in unknown:
        lines.append(f"warn: some health checks cannot be excluded: no matches for \"{n}\"")
    verbose = "verbose" in query
    if failed:
        return HealthReport(500, "\n".join(lines) + f"\n{endpoint} check failed\n")
    if verbose:
        return HealthReport(200, "\n".join(lines) + f"\n{endpoint} check passed\n")
    return HealthReport(200, "ok")
