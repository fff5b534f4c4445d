"""Errors raised while decoding, defaulting, validating or patching objects.

Neighbours: raised by `minik.apis.*` and `minik.api.patch`; mapped once to a Kubernetes
`Status` in `minik.api.status`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Cause:
    """One `details.causes[]` entry of a Status (reason as Kubernetes spells it)."""

    reason: str  # FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, FieldValueForbidden, FieldValueDuplicate, FieldValueTooLong
    message: str
    field: str


class ApiError(Exception):
    """Base of errors that become a Status. `code` and `reason` follow Kubernetes."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ApiError):
    code = 400
    reason = "BadRequest"


class UnsupportedMediaType(ApiError):
    code = 415
    reason = "UnsupportedMediaType"


class RequestEntityTooLarge(ApiError):
    code = 413
    reason = "RequestEntityTooLarge"


class MethodNotAllowed(ApiError):
    code = 405
    reason = "MethodNotAllowed"


class Forbidden(ApiError):
    code = 403
    reason = "Forbidden"


class Unauthorized(ApiError):
    code = 401
    reason = "Unauthorized"


class NotAcceptable(ApiError):
    code = 406
    reason = "NotAcceptable"


@dataclass
class Invalid(Exception):
    """422 Invalid: `<kind> "<name>" is invalid: <causes joined>`; the API layer formats it."""

    kind: str
    name: str
    causes: list[Cause] = field(default_factory=list)
    group: str = ""

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} is invalid: " + ", ".join(f"{c.field}: {c.message}" for c in self.causes)


@dataclass
class PatchConflict(Exception):
    """409 Conflict from server-side apply: fields owned by other managers."""

    causes: list[Cause] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.causes)
        head = "Apply failed with 1 conflict" if n == 1 else f"Apply failed with {n} conflicts"
        return head + ": " + "\n".join(f"{c.message}: {c.field}" for c in self.causes)
