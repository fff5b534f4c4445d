"""Bounded decoding of request bodies: JSON and YAML that cannot exhaust the process.

kube-apiserver's decoders stop at a fixed nesting depth, refuse YAML whose aliases expand far
beyond the document (go-yaml's alias-ratio check) and turn YAML into JSON, so tags, timestamps
and non-string keys never survive decoding. minik decodes with the standard library and PyYAML,
and bounds them here:

- nesting depth at most `MAX_DEPTH` (checked before the recursive C decoder runs, so no
  RecursionError anywhere downstream: deepcopy, patches, validation and the encoder all recurse);
- YAML is composed first, its node graph measured (aliases counted as expanded) against
  `MAX_ALIAS_EXPANSION`, tags limited to YAML's core schema (timestamps stay strings, `!!binary`
  and custom tags are refused), non-string keys become strings as in sigs.k8s.io/yaml;
- `NaN`, `Infinity` and numbers that overflow to infinity are refused;
- text must be valid UTF-8 without lone surrogates (a `\\ud800` escape would later fail every
  encoder that touches the object).

Every failure is a `StatusError` 400 naming what was wrong. Neighbours: `minik.api.request`
calls `decode_json`/`decode_yaml`; the patch engines (`minik.api.patch`) bound what a patch
produces; the store bounds the encoded object size.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from minik.api import status as st

# Real objects nest ~20 levels (a CRD's openAPIV3Schema a few dozen more); Python's recursion
# limit (1000 frames) must hold the deepest walk over a decoded body with room to spare.
MAX_DEPTH = 200
# Nodes that YAML aliases may add beyond the document's own nodes.
MAX_ALIAS_EXPANSION = 100_000

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[{]}")


def decode_json(raw: bytes) -> Any:
    _check_json_depth(raw)
    try:
        value = json.loads(raw, object_pairs_hook=_no_duplicates, parse_constant=_no_constant, parse_float=_finite_float)
    except st.StatusError:
        raise
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError) as e:
        raise st.bad_request(f"error decoding request body as JSON: {e}") from None
    if _SURROGATE_ESCAPE.search(raw):
        _check_values(value, check_depth=False)
    return value


def decode_yaml(raw: bytes) -> Any:
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        value = loader.construct_document(node)
    except st.StatusError:
        raise
    except RecursionError:
        raise _too_deep() from None
    except yaml.YAMLError as e:
        raise st.bad_request(f"error decoding request body as YAML: {e}") from None
    except (ValueError, TypeError, OverflowError, UnicodeError) as e:
        # e.g. `!!float abc`, `!!int x`: the constructor's own ValueError.
        raise st.bad_request(f"error decoding request body as YAML: {type(e).__name__}: {e}") from None
    finally:
        loader.dispose()
    return _check_values(value, check_depth=False)


# ---- JSON ------------------------------------------------------------------------------------

def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for k, _ in pairs:
            if k in seen:
                raise st.bad_request(f'json: duplicate field "{k}"')
            seen.add(k)
    return out


def _no_constant(name: str) -> Any:
    raise st.bad_request(f"error decoding request body as JSON: invalid character '{name[:1]}': {name} is not a JSON value")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise st.bad_request(f"error decoding request body as JSON: number {text[:40]} is out of range")
    return value


def _too_deep() -> st.StatusError:
    return st.bad_request(f"error decoding request body: the object is nested too deeply (limit {MAX_DEPTH} levels)")


def _check_json_depth(raw: bytes) -> None:
    """Refuse bodies nested deeper than MAX_DEPTH, before the recursive decoder sees them.

    Cheap for ordinary bodies: fewer brackets than the limit cannot nest beyond it. Otherwise
    strings are cut out (their brackets are text) and the running depth is summed in C."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return
    skeleton = _STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKETS)
    # Each pass removes the innermost pairs everywhere (C speed); more passes than the limit
    # means deeper nesting. Unbalanced leftovers are the JSON decoder's to report.
    too_deep = b"[" * (MAX_DEPTH + 1)
    for _ in range(MAX_DEPTH):
        if too_deep in skeleton:
            raise _too_deep()
        shorter = skeleton.replace(b"[]", b"")
        if len(shorter) == len(skeleton):
            return
        skeleton = shorter
    if b"[]" in skeleton:
        raise _too_deep()


# ---- YAML ------------------------------------------------------------------------------------

_CORE = "tag:yaml.org,2002:"
_ALLOWED_TAGS = frozenset(_CORE + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "merge"))

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader, composing first so the graph can be measured before construction."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        # JSON object keys are strings: `1: a`, `true: b` and `null: c` become "1", "true", "null".
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != _CORE + "merge":
                key_node.tag = _CORE + "str"
        return super().construct_mapping(node, deep=deep)



def _check_graph(root: Any) -> None:
    """Depth, alias expansion and tags of the composed node graph (iteratively: no recursion)."""
    expanded: dict[int, int] = {}     # node id → its size with aliases expanded
    distinct = 0
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if done:
            size = 1
            for child in _children(node):
                size += expanded.get(id(child), 1)
            expanded[key] = size
            if size > distinct + MAX_ALIAS_EXPANSION:
                raise st.bad_request("error decoding request body as YAML: document contains excessive aliasing "
                                     f"(more than {MAX_ALIAS_EXPANSION} nodes added by aliases)")
            continue
        if key in expanded:
            continue   # an alias to a node already measured
        if depth > MAX_DEPTH:
            raise _too_deep()
        distinct += 1
        tag = node.tag
        if isinstance(node, yaml.ScalarNode) and tag == _CORE + "timestamp":
            node.tag = tag = _CORE + "str"   # dates stay text, as after sigs.k8s.io/yaml's JSON conversion
        if tag not in _ALLOWED_TAGS:
            raise st.bad_request(f"error decoding request body as YAML: unsupported tag {tag!r} "
                                 f"(line {node.start_mark.line + 1})")
        stack.append((node, depth, True))
        for child in _children(node):
            if id(child) not in expanded:
                stack.append((child, depth + 1, False))


def _children(node: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


# ---- decoded values --------------------------------------------------------------------------

def check_decoded(value: Any) -> Any:
    """The same bounds for a value another decoder produced (kubectl's protobuf envelope, whose
    RawExtensions carry JSON): depth, surrogates, finite numbers."""
    return _check_values(value, check_depth=True)


def _check_values(value: Any, *, check_depth: bool) -> Any:
    """Refuse lone surrogates and non-finite numbers (and, if asked, deep nesting) anywhere in a
    decoded value; iterative, so the check itself cannot recurse too deeply."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        cur, depth = stack.pop()
        if isinstance(cur, str):
            _utf8(cur)
        elif isinstance(cur, float):
            if not math.isfinite(cur):
                raise st.bad_request(f"error decoding request body: {cur!r} is not a finite number")
        elif isinstance(cur, (dict, list)):
            if check_depth and depth > MAX_DEPTH:
                raise _too_deep()
            if isinstance(cur, dict):
                for k, v in cur.items():
                    if isinstance(k, str):
                        _utf8(k)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in cur)
    return value


def _utf8(s: str) -> None:
    if s.isascii():
        return
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise st.bad_request("error decoding request body: invalid UTF-8 (a lone surrogate)") from None
