"""Server-side printing: build `meta.k8s.io/v1` Tables for `kubectl get`.

Neighbours: called by `minik.api.handlers` (get/list with the Table Accept header) and
`minik.api.watch` (one-row Tables per watch event, headers only in the first). The column
definitions and cell rules per kind live in `.core` (core/v1), `.workloads` (apps, batch) and
`.cluster` (everything else); `.format` holds the shared formatting (ages, selectors). Custom
resources print the CRD version's `additionalPrinterColumns`, evaluated here.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from typing import Any

from minik.api.tables import cluster, core, workloads
from minik.api.tables.format import parse_time, since
from minik.api.tables.printer import AGE, NAME, Obj, Printer
from minik.apis.registry import ResourceType

__all__ = ["columns", "cells", "table"]

_PRINTERS: dict[tuple[str, str], Printer] = {**core.PRINTERS, **workloads.PRINTERS, **cluster.PRINTERS}


def _name_age_cells(obj: Obj, now: datetime) -> list[Any]:
    meta = obj.get("metadata") or {}
    return [meta.get("name", ""), since(meta.get("creationTimestamp"), now)]


_DEFAULT = Printer((NAME, AGE), _name_age_cells)

# The column a CRD gets when it declares no additionalPrinterColumns.
_CR_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp",
           "description": AGE.description, "priority": 0, "format": ""}

_TOKEN = re.compile(r"""\.([^.\[\]]+)|\['([^']*)'\]|\["([^"]*)"\]|\[(\*|-?\d+)\]|\[\?\(@((?:\.[^.=!\s)]+)+)\s*(==|!=)\s*(?:'([^']*)'|"([^"]*)"|([^)\s]+))\)\]""")


def _jsonpath(expr: str, obj: Any) -> list[Any]:
    """Evaluate the JSONPath subset CRD printer columns use (`.a.b`, `['a.b']`, `[0]`, `[*]`,
    `[?(@.type=="Ready")]`); returns every match, in order."""
    expr = expr.strip()
    if expr.startswith("{") and expr.endswith("}"):
        expr = expr[1:-1]
    if expr.startswith("$"):
        expr = expr[1:]
    current = [obj]
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            return []
        pos = m.end()
        key = m.group(1) or m.group(2) or m.group(3)
        nxt: list[Any] = []
        if key is not None:
            nxt = [c[key] for c in current if isinstance(c, dict) and key in c]
        elif m.group(4) is not None:
            for c in current:
                if isinstance(c, list):
                    if m.group(4) == "*":
                        nxt.extend(c)
                    else:
                        i = int(m.group(4))
                        if -len(c) <= i < len(c):
                            nxt.append(c[i])
                elif isinstance(c, dict) and m.group(4) == "*":
                    nxt.extend(c.values())
        else:
            path = m.group(5)[1:].split(".")
            op = m.group(6)
            want = next(g for g in (m.group(7), m.group(8), m.group(9)) if g is not None)
            for c in current:
                for item in c if isinstance(c, list) else []:
                    got = _jsonpath("." + ".".join(path), item)
                    text = _plain(got[0]) if got else None
                    if (text == want) == (op == "=="):
                        nxt.append(item)
        current = nxt
    return current


def _plain(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return json.dumps(v, separators=(",", ":"))


def _custom_cell(col: dict[str, Any], obj: Obj, now: datetime) -> Any:
    found = _jsonpath(str(col.get("jsonPath", "")), obj)
    if not found or found[0] is None:
        return None
    v = found[0]
    typ = col.get("type", "string")
    if typ == "string":
        return _plain(v)
    if typ == "integer":
        return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if typ == "number":
        return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    if typ == "boolean":
        return v if isinstance(v, bool) else None
    if typ == "date":
        if not isinstance(v, str):
            return None
        return since(v, now) if parse_time(v) else "<invalid>"
    return None


def _custom_defs(custom_columns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    defs = [NAME.as_dict()]
    for c in custom_columns:
        defs.append({"name": c.get("name", ""), "type": c.get("type", "string"), "format": c.get("format", ""),
                     "description": c.get("description", ""), "priority": int(c.get("priority", 0) or 0)})
    return defs


def _use_custom(rt: ResourceType, custom_columns: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """The printer columns to evaluate for this type, or None for a built-in printer."""
    if custom_columns:
        return custom_columns
    if rt.custom:
        return [_CR_AGE]
    return None


def _printer(rt: ResourceType) -> Printer:
    return _PRINTERS.get((rt.group, rt.kind), _DEFAULT)


def columns(rt: ResourceType, custom_columns: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The Table columnDefinitions kube-apiserver sends for this resource type."""
    custom = _use_custom(rt, custom_columns)
    if custom is not None:
        return _custom_defs(custom)
    return [c.as_dict() for c in _printer(rt).columns]


def _now(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=timezone.utc)


def _cells(rt: ResourceType, printer: Printer, custom: list[dict[str, Any]] | None, obj: Obj,
           now: datetime) -> list[Any]:
    if custom is not None:
        name = (obj.get("metadata") or {}).get("name", "")
        return [name] + [_custom_cell(c, obj, now) for c in custom]
    try:
        return printer.cells(obj, now)
    except (TypeError, ValueError, AttributeError, KeyError):
        # A malformed stored object must not break a whole `kubectl get`: print what is certain.
        name = (obj.get("metadata") or {}).get("name", "") if isinstance(obj.get("metadata"), dict) else ""
        first_is_name = printer.columns[0].format == "name"
        row: list[Any] = ["<unknown>"] * len(printer.columns)
        if first_is_name:
            row[0] = name
        return row


def cells(rt: ResourceType, obj: dict[str, Any], now: datetime,
          custom_columns: list[dict[str, Any]] | None = None) -> list[Any]:
    """One Table row's cells for `obj`, formatted as kube-apiserver formats them."""
    return _cells(rt, _printer(rt), _use_custom(rt, custom_columns), obj, _now(now))


def table(rt: ResourceType, objs: list[dict[str, Any]], now: datetime, *, include_object: str = "Metadata",
          with_headers: bool = True, resource_version: str = "",
          custom_columns: list[dict[str, Any]] | None = None, continue_token: str = "") -> dict[str, Any]:
    """A full `meta.k8s.io/v1` Table. `row.object` is a PartialObjectMetadata sharing the
    object's metadata dict (not a copy: the result is serialized right away), the whole object
    for includeObject=Object, and absent for None."""
    now = _now(now)
    printer = _printer(rt)
    custom = _use_custom(rt, custom_columns)
    defs: list[dict[str, Any]] = []
    if with_headers:
        defs = _custom_defs(custom) if custom is not None else [c.as_dict() for c in printer.columns]
    rows: list[dict[str, Any]] = []
    for obj in objs:
        row: dict[str, Any] = {"cells": _cells(rt, printer, custom, obj, now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata") or {}}
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": defs,
            "rows": rows}

