"""SQL tables of the store: the append-only revision log and a tiny key/value meta table.

Role: table definitions only (SQLAlchemy Core). `minik.store.db` runs the statements against them;
nothing else touches SQL. The design follows kine: one row per change, keyed by the global
revision, so the current state of a key is its newest row that is not a delete.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, MetaData, Table, Text

metadata = MetaData()

# One row per change. `revision` is an INTEGER PRIMARY KEY, i.e. SQLite's rowid: appends go to the
# end of the b-tree and lookups by revision are free.
log = Table(
    "log",
    metadata,
    Column("revision", Integer, primary_key=True, autoincrement=False),
    Column("resource", Text, nullable=False),
    Column("namespace", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("created", Integer, nullable=False, default=0),
    Column("deleted", Integer, nullable=False, default=0),
    Column("prev_revision", Integer, nullable=False, default=0),
    Column("value", Text, nullable=False),
    # Serves both "newest row per key" (start-up load) and "is this row superseded" (compaction).
    Index("log_key_revision", "resource", "namespace", "name", "revision"),
)

# Keys: META_COMPACT (revision compacted up to) and META_FLOOR (the revision counter starts at
# least here, so it never goes backwards across restarts even when the newest rows were volatile
# or compacted away).
meta = Table(
    "meta",
    metadata,
    Column("key", Text, primary_key=True),
    Column("value", Integer, nullable=False),
)

META_COMPACT = "compact_revision"
META_FLOOR = "revision_floor"
