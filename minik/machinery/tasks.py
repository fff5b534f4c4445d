"""Supervised background tasks: every long-running task is named, logged when it fails, and
restarted with capped exponential back-off until the supervisor stops.

This is the one task guard of the code base: `minik.daemon` owns the top-level `Supervisor`
(controllers, scheduler, informers, agent); components with loops of their own (the node agent's
watches and heartbeat) hold a child `Supervisor` and `join()` it, so every task is named and a
failure is logged and retried in one way.
Neighbours: `minik.daemon`, `minik.machinery.informers`, `minik.agent.agent`.
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

    def spawn(self, name: str, fn: Callable[[], Awaitable[None]], restart: bool = True,
              quiet_return: bool = False) -> asyncio.Task[None]:
        """Run `fn()` as task `name`; when it raises (or returns, if restart) run it again after a
        back-off. `quiet_return`: a loop that returns normally (a watch that ended) is restarted
        without a warning and with the back-off reset."""
        if name in self._tasks and not self._tasks[name].done():
            raise ValueError(f"task {name} is already running")

        async def guard() -> None:
            delay = 0.5
            while not self._stopping:
                try:
                    await fn()
                    if not restart:
                        return
                    if quiet_return:
                        delay = 0.5
                    else:
                        log.warning("task %s returned; restarting", name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("task %s failed; restarting in %.1fs", name, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

        task = asyncio.create_task(guard(), name=name)
        self._tasks[name] = task
        return task

    async def join(self) -> None:
        """Wait until every task has finished (supervised tasks only finish when stopped)."""
        while True:
            pending = [t for t in self._tasks.values() if not t.done()]
            if not pending:
                return
            await asyncio.wait(pending)

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
        self._stopping = False   # reusable: a component restarted by its parent spawns again

    def names(self) -> list[str]:
        return list(self._tasks)
