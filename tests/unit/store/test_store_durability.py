"""kill -9 after an acknowledged write must not lose it (synchronous=FULL, commit before ack)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

from minik.store.store import Store

# The child prints a name only after create() returned, i.e. after the commit was acknowledged.
CHILD = r"""
import asyncio, sys
from minik.store.store import Store

async def main() -> None:
    store = Store(sys.argv[1])
    await store.start()

    async def writer(i: int) -> None:
        j = 0
        while True:
            name = f"p-{i}-{j}"
            await store.create("pods", {"metadata": {"name": name, "namespace": "default"},
                                        "spec": {"pad": "x" * 300}})
            sys.stdout.write(name + "\n")
            sys.stdout.flush()
            j += 1

    await asyncio.gather(*(writer(i) for i in range(8)))

asyncio.run(main())
"""


async def test_acknowledged_writes_survive_sigkill(db_path: str) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_path], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    try:
        for line in child.stdout:
            if line.endswith("\n"):
                acknowledged.append(line.strip())
            if len(acknowledged) >= 600:
                break
        os.kill(child.pid, signal.SIGKILL)
        # Lines the child wrote before it died are acknowledged too.
        rest = child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
    acknowledged += [line for line in rest.split("\n")[:-1] if line]
    assert child.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 600

    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()

    store = Store(db_path)
    await store.start()
    try:
        missing = [n for n in acknowledged if store.get("pods", "default", n) is None]
        assert missing == []
        assert store.revision >= len(acknowledged)
        # The reopened store keeps going from where the log ends.
        created = await store.create("pods", {"metadata": {"name": "after", "namespace": "default"}})
        assert int(created["metadata"]["resourceVersion"]) == store.revision
    finally:
        await store.close()
