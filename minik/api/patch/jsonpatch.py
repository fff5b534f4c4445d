"""JSON patch (RFC 6902) with JSON pointers (RFC 6901), `application/json-patch+json`.

Used by `kubectl patch --type=json` and clients that send operation lists. Kubernetes splits
failures in two, and so does this module: a patch that cannot be decoded as operations is a 400
`BadRequest`; a well-formed operation that does not apply to the object (missing path, failed
`test`, index out of range) is a 422 `Invalid` whose message starts with kube-apiserver's
"the server rejected our request due to an error in our request" followed by what failed.
Neighbours: `minik.api.service` picks the patch type; errors map to a Status in `minik.api.status`.
"""

from __future__ import annotations

from dataclasses import dataclass

from minik.api.patch.values import JSON, deep_copy, json_type
from minik.apis import errors
from minik.apis.size import encoded_size

_OPS = ("add", "remove", "replace", "move", "copy", "test")
# kube-apiserver refuses longer operation lists (maxJSONPatchOperations); the same bound keeps a
# single request from pinning the event loop.
MAX_OPERATIONS = 10000
# Bytes that `copy` operations may produce in one patch, all together (kube-apiserver sets the
# same kind of accumulated-copy limit): 20 copies of a path onto itself double the object 20
# times, from a 3 KB body.
MAX_COPY_BYTES = 3 * 1024 * 1024


class JsonPatchFailed(errors.ApiError):
    """A decoded operation did not apply (kube-apiserver answers 422 Invalid)."""

    code = 422
    reason = "Invalid"

    def __init__(self, detail: str) -> None:
        super().__init__(f"the server rejected our request due to an error in our request: {detail}")
        self.detail = detail


@dataclass(frozen=True, slots=True)
class _Op:
    op: str
    path: tuple[str, ...]
    raw_path: str
    value: JSON = None
    from_path: tuple[str, ...] = ()
    raw_from: str = ""


def json_patch(target: JSON, ops: JSON) -> JSON:
    """Apply the operations in order to a copy of `target` and return it."""
    decoded = _decode(ops)
    doc = deep_copy(target)
    copied = 0
    for op in decoded:
        if op.op == "copy":
            copied += encoded_size(_get(doc, op.from_path, op), MAX_COPY_BYTES - copied + 1)
            if copied > MAX_COPY_BYTES:
                raise errors.RequestEntityTooLarge(
                    f"Unable to apply the JSON patch: copy operations would exceed the maximum accumulated size of {MAX_COPY_BYTES} bytes")
        doc = _apply(doc, op)
    return doc



# ---- decoding (400) --------------------------------------------------------------------------

def parse_pointer(pointer: JSON) -> tuple[str, ...]:
    """RFC 6901: "" is the whole document, "/a~1b/~0c" is ("a/b", "~c")."""
    if not isinstance(pointer, str):
        raise errors.BadRequest(f"json patch path must be a string, got {json_type(pointer)}")
    if pointer == "":
        return ()
    if not pointer.startswith("/"):
        raise errors.BadRequest(f"json patch path {pointer!r} must start with '/'")
    tokens = pointer[1:].split("/")
    for token in tokens:
        # "~" must be followed by 0 or 1; anything else is not a valid pointer.
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise errors.BadRequest(f"json patch path {pointer!r} has an invalid '~' escape")
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in tokens)


def _decode(ops: JSON) -> list[_Op]:
    if not isinstance(ops, list):
        raise errors.BadRequest(f"json patch must be an array of operations, got {json_type(ops)}")
    if len(ops) > MAX_OPERATIONS:
        raise errors.RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(ops)}")
    out: list[_Op] = []
    for i, raw in enumerate(ops):
        if not isinstance(raw, dict):
            raise errors.BadRequest(f"json patch operation {i} must be an object, got {json_type(raw)}")
        name = raw.get("op")
        if name not in _OPS:
            raise errors.BadRequest(f"json patch operation {i}: unsupported op {name!r} (want one of {', '.join(_OPS)})")
        if "path" not in raw:
            raise errors.BadRequest(f"json patch operation {i} ({name}): missing \"path\"")
        path = parse_pointer(raw["path"])
        if name in ("add", "replace", "test") and "value" not in raw:
            raise errors.BadRequest(f"json patch operation {i} ({name} {raw['path']}): missing \"value\"")
        from_path: tuple[str, ...] = ()
        raw_from = ""
        if name in ("move", "copy"):
            if "from" not in raw:
                raise errors.BadRequest(f"json patch operation {i} ({name} {raw['path']}): missing \"from\"")
            from_path = parse_pointer(raw["from"])
            raw_from = raw["from"]
        out.append(_Op(name, path, raw["path"], raw.get("value"), from_path, raw_from))
    return out


# ---- applying (422) --------------------------------------------------------------------------

def _apply(doc: JSON, op: _Op) -> JSON:
    if op.op == "add":
        return _add(doc, op.path, deep_copy(op.value), op)
    if op.op == "remove":
        _remove(doc, op.path, op)
        return doc
    if op.op == "replace":
        if not op.path:
            return deep_copy(op.value)
        parent, key = _parent(doc, op.path, op)
        if isinstance(parent, dict):
            if key not in parent:
                raise JsonPatchFailed(f"replace operation does not apply: doc is missing key: {op.raw_path}")
            parent[key] = deep_copy(op.value)
        else:
            parent[_index(parent, key, op, allow_end=False)] = deep_copy(op.value)
        return doc
    if op.op == "test":
        current = _get(doc, op.path, op)
        if not _equal(current, op.value):
            raise JsonPatchFailed(f"testing value {op.raw_path} failed: test failed")
        return doc
    if op.op == "move":
        if op.path[:len(op.from_path)] == op.from_path and op.path != op.from_path:
            raise JsonPatchFailed(f"move operation does not apply: cannot move {op.raw_from} into its own child {op.raw_path}")
        value = _get(doc, op.from_path, op)
        if op.path == op.from_path:
            return doc
        if not op.from_path:
            return value
        _remove(doc, op.from_path, op)
        return _add(doc, op.path, value, op)
    # copy
    value = deep_copy(_get(doc, op.from_path, op))
    return _add(doc, op.path, value, op)


def _equal(a: JSON, b: JSON) -> bool:
    # Python says True == 1 and 1 == 1.0; JSON says booleans are not numbers.
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    if type(a) is not type(b) and not (isinstance(a, (int, float)) and isinstance(b, (int, float))):
        return False
    return bool(a == b)


def _index(container: list[JSON], token: str, op: _Op, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    # RFC 6901 array indexes are decimal without sign or leading zeros.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise JsonPatchFailed(f"{op.op} operation does not apply: invalid array index {token!r} in {op.raw_path}")
    index = int(token)
    limit = len(container) if allow_end else len(container) - 1
    if index > limit:
        raise JsonPatchFailed(f"{op.op} operation does not apply: index {index} out of range in {op.raw_path}")
    return index


def _walk(doc: JSON, tokens: tuple[str, ...], op: _Op, pointer: str) -> JSON:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise JsonPatchFailed(f"{op.op} operation does not apply: doc is missing path: {pointer}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, op, allow_end=False)]
        else:
            raise JsonPatchFailed(f"{op.op} operation does not apply: doc is missing path: {pointer}")
    return node


def _parent(doc: JSON, path: tuple[str, ...], op: _Op) -> tuple[JSON, str]:
    parent = _walk(doc, path[:-1], op, op.raw_path)
    if not isinstance(parent, (dict, list)):
        raise JsonPatchFailed(f"{op.op} operation does not apply: doc is missing path: {op.raw_path}")
    return parent, path[-1]


def _get(doc: JSON, path: tuple[str, ...], op: _Op) -> JSON:
    pointer = op.raw_from if op.op in ("move", "copy") else op.raw_path
    return _walk(doc, path, op, pointer)


def _add(doc: JSON, path: tuple[str, ...], value: JSON, op: _Op) -> JSON:
    if not path:
        return value
    parent, key = _parent(doc, path, op)
    if isinstance(parent, dict):
        parent[key] = value
    else:
        parent.insert(_index(parent, key, op, allow_end=True), value)
    return doc


def _remove(doc: JSON, path: tuple[str, ...], op: _Op) -> None:
    pointer = op.raw_from if op.op == "move" else op.raw_path
    if not path:
        raise JsonPatchFailed(f"{op.op} operation does not apply: cannot remove the whole document")
    parent = _walk(doc, path[:-1], op, pointer)
    key = path[-1]
    if isinstance(parent, dict):
        if key not in parent:
            raise JsonPatchFailed(f"{op.op} operation does not apply: doc is missing path: {pointer}")
        del parent[key]
    elif isinstance(parent, list):
        del parent[_index(parent, key, op, allow_end=False)]
    else:
        raise JsonPatchFailed(f"{op.op} operation does not apply: doc is missing path: {pointer}")
