"""Reading the RFC 3339 timestamps controllers find in object status (lenient: None when absent or bad)."""

from __future__ import annotations

import datetime as dt
from typing import Any


def parse_time(s: Any) -> dt.datetime | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
