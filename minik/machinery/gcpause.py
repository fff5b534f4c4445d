"""Keeping the cyclic garbage collector's pauses short in a daemon that holds many objects.

Why: every object the daemon keeps (informer caches, the store's objects, schemas, modules) is
scanned by each full (generation-2) collection, and a full collection runs on the event loop in
whatever callback happened to allocate: tens of ms in a heap of a few hundred thousand objects,
during which no DNS query, API request or watch is served. Objects that were alive at start-up
or after a big sync mostly stay alive, so `settle` collects once and then freezes everything
that survived (`gc.freeze`: moved to a permanent generation the collector no longer scans);
later automatic collections only walk what was allocated since.
Memory: a frozen object is still freed when its reference count drops to zero (most of ours:
plain dicts and lists); only frozen objects that die inside a reference cycle wait. `settle`
therefore unfreezes first, so each settle collects the cycles among what the previous one froze:
such garbage lives at most until the next settle (start-up, then each memory trim after a burst).
Neighbours: called by `minik.daemon.release_memory` (after start-up) and
`minik.machinery.memory.trim` (after a burst, when the memory trimmer runs).
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect everything (frozen objects included), then freeze the survivors. Returns the
    number of objects collected."""
    gc.unfreeze()
    found = gc.collect()
    gc.freeze()
    return found
