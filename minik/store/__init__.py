"""The revisioned object store: SQLite (WAL, group commit) behind an in-memory cache and watch hub.

Neighbours: used by `minik.api` (handlers) and in-process clients; depends only on `minik.apis`
for nothing but types. See `minik/store/store.py` for the interface.
"""
