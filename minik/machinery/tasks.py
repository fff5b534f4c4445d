"""Supervised background tasks: every long-running task is named, logged when it fails, and
restarted with capped exponential back-off until the supervisor stops.

Neighbours: `minik.daemon` owns one `Supervisor`; controllers and the agent register their loops here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("minik.tasks")


class Supervisor:
    def __init__(self, max_backoff: float = 30.0) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self.max_backoff = max_backoff

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]], restart: bool = True) -> None:
        """Run `fn()` as task `name`; when it raises (or returns, if restart) run it again after a back-off."""

        async def guard() -> None:
            delay = 0.5
            while not self._stopping:
                try:
                    await fn()
                    if not restart:
                        return
                    log.warning("task %s returned; restarting", name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("task %s failed; restarting in %.1fs", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

        self._tasks[name] = asyncio.create_task(guard(), name=name)

    async def stop(self, timeout: float = 10.0) -> None:
        """Cancel in reverse start order, waiting for each up to `timeout`."""
        self._stopping = True
        for name, task in reversed(list(self._tasks.items())):
            task.cancel()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except (asyncio.CancelledError, asyncio.TimeoutError):
                pass
            except Exception:
                log.exception("task %s failed while stopping", name)
        self._tasks.clear()

    def names(self) -> list[str]:
        return list(self._tasks)
