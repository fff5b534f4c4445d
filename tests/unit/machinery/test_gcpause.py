"""settle(): survivors are frozen (not scanned by later collections); cycles among objects frozen
by an earlier settle are still collected by the next one."""

from __future__ import annotations

import gc
import weakref

from minik.machinery.gcpause import settle


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def test_settle_freezes_survivors_and_collects_frozen_cycles_next_time() -> None:
    try:
        a, b = Node(), Node()
        a.other, b.other = b, a   # a cycle: only the collector can free it
        ref = weakref.ref(a)
        settle()
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()
        assert ref() is not None   # frozen: a plain collection does not look at it
        settle()
        assert ref() is None       # the next settle unfreezes first, so the cycle goes
    finally:
        gc.unfreeze()
