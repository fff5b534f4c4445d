"""The value types of the Table printers: a column definition and a printer (columns + cells).

Neighbours: built by the per-group modules (`core`, `workloads`, `cluster`) and looked up by
`minik.api.tables` (the public interface).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

Obj = dict[str, Any]
Cells = Callable[[Obj, datetime], list[Any]]


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str = "string"
    format: str = ""
    description: str = ""
    priority: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "format": self.format,
                "description": self.description, "priority": self.priority}


@dataclass(frozen=True, slots=True)
class Printer:
    columns: tuple[Column, ...]
    cells: Cells


NAME = Column("Name", format="name", description="Name must be unique within a namespace; see metadata.name.")
AGE = Column("Age", description="Time since the object was created (metadata.creationTimestamp).")
CREATED_AT = Column("Created At", description="When the object was created (metadata.creationTimestamp).")


def wide(name: str, description: str, type_: str = "string") -> Column:
    """A column shown only by `kubectl get -o wide`."""
    return Column(name, type_, description=description, priority=1)


def col(name: str, description: str, type_: str = "string") -> Column:
    return Column(name, type_, description=description)
