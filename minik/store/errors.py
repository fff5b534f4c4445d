"""Errors of the store. The API layer maps each to a Status once (`minik.api.status`)."""

from __future__ import annotations


class StoreError(Exception):
    """Base class."""


class NotFound(StoreError):
    def __init__(self, resource: str, namespace: str, name: str) -> None:
        super().__init__(f"{resource} {namespace}/{name} not found")
        self.resource, self.namespace, self.name = resource, namespace, name


class AlreadyExists(StoreError):
    def __init__(self, resource: str, namespace: str, name: str) -> None:
        super().__init__(f"{resource} {namespace}/{name} already exists")
        self.resource, self.namespace, self.name = resource, namespace, name


class Conflict(StoreError):
    """The object's resourceVersion is not the one the caller expected (optimistic concurrency)."""

    def __init__(self, resource: str, namespace: str, name: str) -> None:
        super().__init__(f"{resource} {namespace}/{name} was modified")
        self.resource, self.namespace, self.name = resource, namespace, name


class Expired(StoreError):
    """The requested revision was compacted away (watch resume too old) → 410."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(f"too old resource version: {requested} ({oldest})")
        self.requested, self.oldest = requested, oldest


class Unavailable(StoreError):
    """The store could not commit (disk full, closed); nothing was acknowledged."""


class TooLarge(StoreError):
    """The encoded object (keys, values and metadata) is over the store's object size limit."""

    def __init__(self, resource: str, namespace: str, name: str, size: int, limit: int) -> None:
        super().__init__(f"{resource} {namespace}/{name} is {size} bytes encoded, over the limit of {limit} bytes")
        self.resource, self.namespace, self.name, self.size, self.limit = resource, namespace, name, size, limit
