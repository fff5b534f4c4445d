"""Waiting helpers shared by the end-to-end tests."""

from __future__ import annotations

import time
import urllib.request
from typing import Callable


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()  # type: ignore[no-any-return]


def eventually(fn: Callable[[], object], timeout: float = 20.0, interval: float = 0.2) -> object:
    """Call `fn` until it returns a truthy value without raising (the last error is reported)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = fn()
            if value:
                return value
            err: BaseException | None = None
        except (AssertionError, OSError) as e:
            err = e
        if time.monotonic() > deadline:
            raise AssertionError(f"not met in {timeout}s (last error: {err!r})")
        time.sleep(interval)
