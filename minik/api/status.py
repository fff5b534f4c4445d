"""Kubernetes `Status` objects: every error the API returns, mapped once, here.

Neighbours: raised as `StatusError` by `minik.api.service` and the handlers; `minik.api.app`'s
middleware turns any `StatusError`, `minik.apis.errors` or `minik.store.errors` exception into a
Status response.
"""

from __future__ import annotations

from typing import Any

from minik.apis.errors import ApiError, Invalid, PatchConflict
from minik.apis.registry import ResourceType
from minik.store import errors as store_errors


class StatusError(Exception):
    """An error with its Kubernetes reason and HTTP code, ready to render."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.reason, self.message, self.details)


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    # Keys in the order of the Go structs (metav1.Status, then StatusDetails): kube-apiserver's
    # JSON follows field order, and clients do compare Status text byte for byte (the Python
    # client's utils.FailToCreateError carries the raw body).
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": message, "reason": reason}
    if details:
        out["details"] = details
    out["code"] = code
    return out


def success(rt: ResourceType, name: str, uid: str = "") -> dict[str, Any]:
    details = _details(rt, name)
    if uid:
        details["uid"] = uid
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    # StatusDetails field order: name, group, kind, uid, causes.
    d: dict[str, Any] = {"name": name}
    if rt.group:
        d["group"] = rt.group
    d["kind"] = rt.plural
    return d


def not_found(rt: ResourceType, name: str) -> StatusError:
    return StatusError(404, "NotFound", f'{rt.group_resource} "{name}" not found', _details(rt, name))


def already_exists(rt: ResourceType, name: str) -> StatusError:
    return StatusError(409, "AlreadyExists", f'{rt.group_resource} "{name}" already exists', _details(rt, name))


def conflict(rt: ResourceType, name: str, why: str = "the object has been modified; please apply your changes to the latest version and try again") -> StatusError:
    return StatusError(409, "Conflict", f'Operation cannot be fulfilled on {rt.group_resource} "{name}": {why}', _details(rt, name))


def bad_request(message: str) -> StatusError:
    return StatusError(400, "BadRequest", message)


def forbidden(message: str, rt: ResourceType | None = None, name: str = "") -> StatusError:
    return StatusError(403, "Forbidden", message, _details(rt, name) if rt else None)


def method_not_allowed(message: str = "the server does not allow this method on the requested resource") -> StatusError:
    return StatusError(405, "MethodNotAllowed", message)


def invalid(rt: ResourceType, name: str, causes: list[dict[str, str]], message: str) -> StatusError:
    d = _details(rt, name)
    d["kind"] = rt.kind
    d["causes"] = causes
    return StatusError(422, "Invalid", message, d)


def from_invalid(rt: ResourceType, exc: Invalid) -> StatusError:
    causes = [{"reason": c.reason, "message": c.message, "field": c.field} for c in exc.causes]
    text = ", ".join(f"{c.field}: {c.message}" if c.field else c.message for c in exc.causes)
    if len(exc.causes) > 1:
        text = "[" + text + "]"
    message = f'{rt.kind}{"." + rt.group if rt.group else ""} "{exc.name}" is invalid: {text}'
    return invalid(rt, exc.name, causes, message)


def from_exception(exc: BaseException, rt: ResourceType | None = None, name: str = "") -> StatusError | None:
    """Map a known exception to a StatusError; None for unknown ones (→ 500, logged by the caller)."""
    if isinstance(exc, StatusError):
        return exc
    if isinstance(exc, Invalid):
        if rt is None:
            return StatusError(422, "Invalid", str(exc))
        return from_invalid(rt, exc)
    if isinstance(exc, PatchConflict):
        causes = [{"reason": c.reason, "message": c.message, "field": c.field} for c in exc.causes]
        d: dict[str, Any] = _details(rt, name) if rt else {}
        d["causes"] = causes
        return StatusError(409, "Conflict", str(exc), d)
    if isinstance(exc, ApiError):
        return StatusError(exc.code, exc.reason, exc.message)
    if rt is not None:
        if isinstance(exc, store_errors.NotFound):
            return not_found(rt, exc.name)
        if isinstance(exc, store_errors.AlreadyExists):
            return already_exists(rt, exc.name)
        if isinstance(exc, store_errors.Conflict):
            return conflict(rt, exc.name)
    if isinstance(exc, store_errors.TooLarge):
        return StatusError(413, "RequestEntityTooLarge", f"Request entity too large: the object is at least {exc.size} bytes encoded, "
                           f"limit is {exc.limit}")
    if isinstance(exc, store_errors.Expired):
        return StatusError(410, "Expired", str(exc))
    if isinstance(exc, store_errors.Unavailable):
        return StatusError(503, "ServiceUnavailable", f"storage unavailable: {exc}")
    return None
