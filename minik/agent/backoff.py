"""Per-key exponential back-off with kubelet's semantics (crash loops, image pulls).

Role: remember, per key (pod uid + container name + spec hash, or pod uid + image), how long the
next restart/pull must wait. Kubelet's rules: the first retry waits `initial` (10 s), each later one
doubles up to `maximum` (5 min); an entry untouched for `reset_after` (10 min; a container that ran
that long) starts again at `initial`. Time is passed in, never read, so tests need no clock.
Neighbours: `minik.agent.plan` asks `in_backoff()` through `BackoffView`; `minik.agent.worker`
calls `next()` when it actually restarts or pulls.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Backoff", "BackoffPolicy"]


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    initial: float = 10.0
    maximum: float = 300.0
    reset_after: float = 600.0


@dataclass(frozen=True, slots=True)
class _Entry:
    delay: float
    last_update: float


class Backoff:
    """Mutable table of back-off entries; every method takes `now` (seconds, any epoch)."""

    def __init__(self, policy: BackoffPolicy = BackoffPolicy()) -> None:
        self.policy = policy
        self._entries: dict[str, _Entry] = {}

    def delay(self, key: str) -> float:
        """The current back-off for `key` (0 when none is recorded)."""
        e = self._entries.get(key)
        return 0.0 if e is None else e.delay

    def next(self, key: str, now: float) -> float:
        """Record one more attempt at `now`; returns the delay the attempt after it must wait."""
        e = self._entries.get(key)
        if e is None or now - e.last_update > self.policy.reset_after:
            delay = self.policy.initial
        else:
            delay = min(e.delay * 2, self.policy.maximum)
        self._entries[key] = _Entry(delay, now)
        return delay

    def in_backoff(self, key: str, since: float, now: float) -> bool:
        """Whether an attempt at `now` is too early, counting from the event at `since`
        (kubelet counts from the container's finishedAt, not from the last restart)."""
        e = self._entries.get(key)
        if e is None or now - e.last_update > self.policy.reset_after:
            return False
        return now - since < e.delay

    def remaining(self, key: str, since: float, now: float) -> float:
        e = self._entries.get(key)
        if e is None:
            return 0.0
        return max(0.0, since + e.delay - now)

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def forget_prefix(self, prefix: str) -> None:
        """Drop every entry of one pod (its uid is the key prefix) when the pod goes away."""
        for k in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[k]
