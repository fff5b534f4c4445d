"""JSON merge patch (RFC 7386), `application/merge-patch+json`.

Used by `kubectl label`, `kubectl scale` (on /scale), `kubectl patch --type=merge`, and as the
strategic-merge fallback for objects without a schema. Objects merge key by key, `null` deletes,
everything else (lists included) replaces. Neighbours: `minik.api.service` picks the patch type.
"""

from __future__ import annotations

from minik.api.patch.values import JSON, deep_copy


def json_merge_patch(target: JSON, patch: JSON) -> JSON:
    """Return `target` with `patch` merged in; neither input is modified."""
    if not isinstance(patch, dict):
        return deep_copy(patch)
    result = deep_copy(target) if isinstance(target, dict) else {}
    _merge_into(result, patch)
    return result


def _merge_into(result: dict[str, JSON], patch: dict[str, JSON]) -> None:
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            if not isinstance(current, dict):
                # RFC 7386: a non-object target is replaced by {} before merging, which also
                # drops nulls nested inside newly added objects.
                current = {}
                result[key] = current
            _merge_into(current, value)
        else:
            result[key] = deep_copy(value)
