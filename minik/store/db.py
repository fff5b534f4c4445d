"""The store's only SQL adapter: a sync SQLAlchemy engine driven from one dedicated thread.

Role: open/create the SQLite file (WAL, synchronous=FULL), load the current state at start-up,
append batches of log rows in one transaction (the group commit), compact and checkpoint.
Neighbours: `minik.store.schema` (tables), `minik.store.writer` (calls `append` once per batch),
`minik.store.store` (calls `open`, `compact`, `close`).

Why one thread and a sync engine: reads never touch SQL (they are served from memory), so the
only SQL traffic is the writer. A single-worker executor keeps every statement on one
connection in one thread, which serialises commits and compaction without any locking and
avoids the per-call thread hop an async driver pays.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

from sqlalchemy import Connection, Engine, bindparam, create_engine, delete, event, exists, func, or_, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import NullPool

from minik.store.codec import decode
from minik.store.encryption import EncryptionError, Transformer, key_name_of, row_context
from minik.store.schema import META_COMPACT, META_FLOOR, log, meta, metadata
from minik.store.types import Obj

logger = logging.getLogger("minik.store")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class LogRow:
    """One change as written to the `log` table."""

    revision: int
    resource: str
    namespace: str
    name: str
    created: bool
    deleted: bool
    prev_revision: int
    value: str  # JSON of the object (for a delete: the last state)


@dataclass(frozen=True, slots=True)
class LiveObject:
    """The newest, non-deleted state of one key, as loaded at start-up."""

    resource: str
    namespace: str
    name: str
    revision: int
    object: Obj


@dataclass(frozen=True, slots=True)
class Loaded:
    objects: list[LiveObject]
    revision: int          # max(newest row, persisted floor): the counter starts here
    compact_revision: int
    total_rows: int
    newest_row: int = 0    # the highest revision written as a row (the floor may be above it)


@dataclass(frozen=True, slots=True)
class ReencryptResult:
    rewritten: int          # rows now sealed with the write key (or plaintext when encryption is off)
    undecryptable: int      # rows no key in the key file opens (left as they are)
    keys: dict[str, int]    # key name (or "identity") → rows of encrypted resources, after the run


@dataclass(frozen=True, slots=True)
class CompactResult:
    deleted_rows: int
    remaining_rows: int


# SQLite's page cache per connection, KiB (see `_set_pragmas`).
SQLITE_CACHE_KIB = 256


def _set_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # auto_vacuum only takes effect before the first table exists, so it goes first; it lets
        # compaction give freed pages back to the file system (incremental_vacuum).
        cursor.execute("PRAGMA auto_vacuum=INCREMENTAL")
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before it returns, so an acknowledged write survives kill -9
        # and power loss.
        cursor.execute("PRAGMA synchronous=FULL")
        # After a checkpoint, keep the WAL file no bigger than this instead of its high-water mark.
        cursor.execute("PRAGMA journal_size_limit=4194304")
        # Reads are served from the watch cache in memory, so SQLite's own page cache only ever
        # holds pages the writer touched recently; at the default 2 MiB it filled with them and
        # stayed resident (about 2 MB of a daemon's idle RSS once 1,000 Services were written).
        # The OS page cache keeps the file warm; 256 KiB measured the same creates/s.
        cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    finally:
        cursor.close()


class Database:
    """Sync SQL work behind async methods; every call runs on the same single worker thread."""

    def __init__(self, path: str, transformer: Transformer | None = None) -> None:
        self._path = path
        # Seals/opens the rows of encrypted resources; touched only on the SQL thread.
        self._transformer = transformer
        self._executor: ThreadPoolExecutor | None = None
        self._engine: Engine | None = None
        self._conn: Connection | None = None

    @property
    def path(self) -> str:
        return self._path

    def size_on_disk(self) -> int:
        """Bytes of the database file plus its WAL (for tests and stats)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.path.getsize(self._path + suffix)
            except FileNotFoundError:
                pass
        return total

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def open(self) -> Loaded:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minik-store-sql")
        return await self._run(self._open_sync)

    async def append(self, rows: Sequence[LogRow], floor: int | None) -> None:
        """Write `rows` (and raise the revision floor to `floor`) in one durable transaction."""
        await self._run(self._append_sync, rows, floor)

    async def compact(self, compact_revision: int, floor: int) -> CompactResult:
        return await self._run(self._compact_sync, compact_revision, floor)

    async def checkpoint(self) -> None:
        await self._run(self._checkpoint_sync)

    async def reencrypt(self, transformer: Transformer) -> ReencryptResult:
        """Switch to `transformer` and rewrite every stored row of its resources that it would
        write differently (plaintext, or another key), history rows included. Runs on the SQL
        thread between commits, so no write is sealed with the previous transformer after it."""
        return await self._run(self._reencrypt_sync, transformer)

    async def key_usage(self) -> dict[str, int]:
        return await self._run(self._key_usage_sync)

    async def close(self) -> None:
        if self._executor is None:
            return
        try:
            await self._run(self._close_sync)
        finally:
            self._executor.shutdown(wait=False)
            self._executor = None

    # ---- the sync side (worker thread only) -------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            raise RuntimeError("database is not open")
        return self._conn

    def _open_sync(self) -> Loaded:
        directory = os.path.dirname(os.path.abspath(self._path))
        os.makedirs(directory, exist_ok=True)
        # NullPool: we hold exactly one connection for the life of the store; closing it must
        # really close the file.
        engine = create_engine(f"sqlite:///{self._path}", poolclass=NullPool)
        event.listen(engine, "connect", _set_pragmas)
        self._engine = engine
        conn = engine.connect()
        self._conn = conn
        with conn.begin():
            metadata.create_all(conn)
        metas = {key: value for key, value in conn.execute(select(meta.c.key, meta.c.value))}
        max_revision, total = conn.execute(
            select(func.coalesce(func.max(log.c.revision), 0), func.count())
        ).one()
        newest = (
            select(func.max(log.c.revision).label("revision"))
            .group_by(log.c.resource, log.c.namespace, log.c.name)
            .subquery()
        )
        live = conn.execute(
            select(log.c.resource, log.c.namespace, log.c.name, log.c.revision, log.c.value)
            .join(newest, log.c.revision == newest.c.revision)
            .where(log.c.deleted == 0)
        ).all()
        conn.commit()
        t = self._transformer
        if t is not None and t.enabled:
            # Plaintext left from before encryption was on (or from an interrupted rotation)
            # is sealed with the current key before anything is served.
            result = self._reencrypt_sync(t)
            if result.rewritten:
                logger.info("encrypted %d stored rows of %s with key %s", result.rewritten,
                            ", ".join(sorted(t.resources)), t.write_key)
        objects = []
        for resource, namespace, name, revision, value in live:
            if t is not None and t.applies(resource):
                try:
                    value = t.open(value, row_context(resource, namespace, name))
                except EncryptionError as e:
                    # One unreadable object must not keep the cluster from starting.
                    logger.error("cannot load %s %s/%s: %s", resource, namespace, name, e)
                    continue
            obj = decode(value)
            obj.setdefault("metadata", {})["resourceVersion"] = str(revision)
            objects.append(LiveObject(resource, namespace, name, revision, obj))
        floor = int(metas.get(META_FLOOR, 0))
        return Loaded(
            objects=objects,
            revision=max(int(max_revision), floor),
            compact_revision=int(metas.get(META_COMPACT, 0)),
            total_rows=int(total),
            newest_row=int(max_revision),
        )

    def _upsert_meta_max(self, conn: Connection, key: str, value: int) -> None:
        stmt = sqlite_insert(meta).values(key=key, value=value)
        # max(): the floor and compact revision only ever move forwards.
        stmt = stmt.on_conflict_do_update(
            index_elements=[meta.c.key],
            set_={"value": func.max(meta.c.value, stmt.excluded.value)},
        )
        conn.execute(stmt)

    def _append_sync(self, rows: Sequence[LogRow], floor: int | None) -> None:
        conn = self._connection()
        with conn.begin():
            if rows:
                conn.execute(
                    log.insert(),
                    [
                        {
                            "revision": r.revision,
                            "resource": r.resource,
                            "namespace": r.namespace,
                            "name": r.name,
                            "created": int(r.created),
                            "deleted": int(r.deleted),
                            "prev_revision": r.prev_revision,
                            "value": self._seal(r),
                        }
                        for r in rows
                    ],
                )
            if floor is not None:
                self._upsert_meta_max(conn, META_FLOOR, floor)

    def _seal(self, r: LogRow) -> str:
        t = self._transformer
        if t is None or not t.applies(r.resource):
            return r.value
        return t.seal(r.value, row_context(r.resource, r.namespace, r.name))

    def _reencrypt_sync(self, transformer: Transformer) -> ReencryptResult:
        conn = self._connection()
        self._transformer = transformer
        resources = sorted(transformer.resources)
        rows = conn.execute(
            select(log.c.revision, log.c.resource, log.c.namespace, log.c.name, log.c.value)
            .where(log.c.resource.in_(resources))
        ).all()
        conn.commit()
        changes: list[dict[str, object]] = []
        undecryptable = 0
        for revision, resource, namespace, name, value in rows:
            if transformer.current(value):
                continue
            context = row_context(resource, namespace, name)
            try:
                plain = transformer.open(value, context)
            except EncryptionError as e:
                undecryptable += 1
                logger.error("cannot re-encrypt %s %s/%s at revision %d: %s", resource, namespace, name, revision, e)
                continue
            changes.append({"rev": revision, "val": transformer.seal(plain, context)})
        if changes:
            driver = conn.connection.driver_connection
            assert driver is not None
            # secure_delete: the old cell contents (plaintext or the old key's ciphertext) are
            # zeroed on the page instead of lingering in free space.
            driver.execute("PRAGMA secure_delete=ON")
            try:
                with conn.begin():
                    conn.execute(
                        update(log).where(log.c.revision == bindparam("rev")).values(value=bindparam("val")),
                        changes,
                    )
                driver.executescript("PRAGMA incremental_vacuum;")
            finally:
                driver.execute("PRAGMA secure_delete=OFF")
            # Fold the WAL (which holds the new pages) into the file and cut it to zero bytes,
            # so the overwritten pages are the only copy.
            self._checkpoint_sync()
        return ReencryptResult(rewritten=len(changes), undecryptable=undecryptable, keys=self._key_usage_sync())

    def _key_usage_sync(self) -> dict[str, int]:
        conn = self._connection()
        t = self._transformer
        resources = sorted(t.resources) if t is not None else []
        usage: dict[str, int] = {}
        # Only the prefix names the key: no need to read whole values.
        head = func.substr(log.c.value, 1, 160)
        for (value,) in conn.execute(select(head).where(log.c.resource.in_(resources))):
            name = key_name_of(value)
            usage[name] = usage.get(name, 0) + 1
        conn.commit()
        return usage

    def _compact_sync(self, compact_revision: int, floor: int) -> CompactResult:
        conn = self._connection()
        newer = log.alias("newer")
        superseded = exists(
            select(1).where(
                newer.c.resource == log.c.resource,
                newer.c.namespace == log.c.namespace,
                newer.c.name == log.c.name,
                newer.c.revision > log.c.revision,
            )
        )
        with conn.begin():
            # Rows at or below the compact revision go when a newer row exists for their key, and
            # tombstones go outright: nothing serves history from SQL (watch history lives in
            # memory), so the log only has to reproduce the current state on the next start.
            result = conn.execute(
                delete(log).where(
                    log.c.revision <= compact_revision, or_(log.c.deleted == 1, superseded)
                )
            )
            deleted_rows = int(result.rowcount)
            self._upsert_meta_max(conn, META_COMPACT, compact_revision)
            # Tombstones just deleted may have held the newest revision; the floor keeps the
            # counter from going back to an older row's revision on the next start.
            self._upsert_meta_max(conn, META_FLOOR, floor)
            remaining = int(conn.execute(select(func.count()).select_from(log)).scalar_one())
        if deleted_rows:
            # Give the freed pages back to the file system. executescript runs the pragma to
            # completion (a plain execute steps it once, freeing a single page); it runs in its
            # own transaction, after the deletes committed.
            driver = conn.connection.driver_connection
            assert driver is not None
            driver.executescript("PRAGMA incremental_vacuum;")
        self._checkpoint_sync()
        return CompactResult(deleted_rows=deleted_rows, remaining_rows=remaining)

    def _checkpoint_sync(self) -> None:
        conn = self._connection()
        # TRUNCATE: copy the WAL into the database file and cut the WAL to zero bytes.
        row = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        conn.commit()
        if row[0]:
            logger.warning("WAL checkpoint was blocked (busy=%s, log=%s, done=%s)", *row)

    def _close_sync(self) -> None:
        try:
            if self._conn is not None:
                self._checkpoint_sync()
                self._conn.close()
        finally:
            self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
