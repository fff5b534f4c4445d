"""Kubelet's crash-loop/image back-off: 10 s doubling to 5 min, reset after 10 min."""

from __future__ import annotations

import pytest

from minik.agent.backoff import Backoff, BackoffPolicy


def test_doubles_to_maximum() -> None:
    b = Backoff()
    delays = [b.next("k", t) for t in (0, 1, 2, 3, 4, 5, 6, 7)]
    assert delays == [10, 20, 40, 80, 160, 300, 300, 300]


def test_resets_after_quiet_period() -> None:
    b = Backoff()
    b.next("k", 0)
    b.next("k", 10)
    assert b.delay("k") == 20
    assert b.next("k", 10 + 601) == 10


@pytest.mark.parametrize("since,now,expected", [
    (100.0, 105.0, True),     # 5 s after finishing, delay 10 s
    (100.0, 110.5, False),    # delay elapsed
    (100.0, 800.0, False),    # entry stale (reset_after)
])
def test_in_backoff(since: float, now: float, expected: bool) -> None:
    b = Backoff()
    b.next("k", 100.0)
    assert b.in_backoff("k", since, now) is expected


def test_unknown_key_never_in_backoff_and_forget_prefix() -> None:
    b = Backoff(BackoffPolicy(1, 4, 60))
    assert not b.in_backoff("x", 0, 0)
    b.next("uid1/a", 0)
    b.next("uid2/a", 0)
    b.forget_prefix("uid1/")
    assert b.delay("uid1/a") == 0 and b.delay("uid2/a") == 1
    assert b.remaining("uid2/a", 0, 0.25) == 0.75
