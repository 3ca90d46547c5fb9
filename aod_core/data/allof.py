"""``allOf`` merging: the conjunction of several subschemas as one schema the scaffold can lay out.

Schemas in the wild compose records from parts (``allOf: [{"$ref": base}, {"properties": ...}]``).
The scaffold needs one node per value, so the parts are merged keyword by keyword where the
conjunction has a plain spelling: properties and required sets are united, numeric and length
bounds tightened, types and enums intersected. Whatever has no such spelling (two different
patterns, two ``oneOf`` lists, ...) stays behind in ``allOf``; the validator still enforces it and
the schema notes report it.
"""

from __future__ import annotations

import json
from typing import Any

from aod_core.data.dialects import ANNOTATION_KEYWORDS

_ANNOTATIONS = ANNOTATION_KEYWORDS | {"$id", "$schema", "$anchor", "$dynamicAnchor"}
_LOWER = {"minimum", "minLength", "minItems", "minProperties", "exclusiveMinimum"}
_UPPER = {"maximum", "maxLength", "maxItems", "maxProperties", "exclusiveMaximum"}


def merge_allof(node: dict) -> dict:
    """``node`` with each member of its ``allOf`` merged in; members (or parts of them) that cannot
    be merged stay in ``allOf``."""
    members = node.get("allOf")
    if not isinstance(members, list):
        return node
    out = {k: v for k, v in node.items() if k != "allOf"}
    rest: list[Any] = []
    for member in members:
        if member is True or member == {}:
            continue
        if not isinstance(member, dict) or "$ref" in member:
            rest.append(member)  # false, or a recursive reference: only the validator can say
            continue
        member = merge_allof(member)
        out, left = merge(out, member)
        if left:
            rest.append(left)
    if rest:
        out["allOf"] = rest
    return out


def merge(a: dict, b: dict) -> tuple[dict, dict]:
    """(a ∧ b as far as it merges, what of b did not merge)."""
    out = dict(a)
    left: dict = {}
    for k, v in b.items():
        if k not in out:
            out[k] = v
        elif k in _ANNOTATIONS or out[k] == v:
            continue
        elif k == "properties" and isinstance(v, dict) and isinstance(out[k], dict):
            props = dict(out[k])
            for name, sub in v.items():
                if name not in props:
                    props[name] = sub
                elif isinstance(props[name], dict) and isinstance(sub, dict):
                    merged, rest = merge(props[name], sub)
                    if rest:
                        merged = {**merged, "allOf": [*merged.get("allOf", []), rest]}
                    props[name] = merged
                elif sub is False or props[name] is False:
                    props[name] = False
            out[k] = props
        elif k == "required" and isinstance(v, list) and isinstance(out[k], list):
            out[k] = out[k] + [r for r in v if r not in out[k]]
        elif k == "type":
            t = _type_meet(out[k], v)
            if t is None:
                left[k] = v
            else:
                out[k] = t
        elif k == "enum" and isinstance(v, list) and isinstance(out[k], list):
            keep = {_key(x) for x in v}
            out[k] = [x for x in out[k] if _key(x) in keep]
        elif k in _LOWER and _is_num(v) and _is_num(out[k]):
            out[k] = max(out[k], v)
        elif k in _UPPER and _is_num(v) and _is_num(out[k]):
            out[k] = min(out[k], v)
        elif k in ("items", "additionalProperties") and isinstance(v, dict) and isinstance(out[k], dict):
            merged, rest = merge(out[k], v)
            out[k] = {**merged, "allOf": [*merged.get("allOf", []), rest]} if rest else merged
        elif k in ("additionalProperties", "uniqueItems") and isinstance(v, bool) and isinstance(out[k], bool):
            out[k] = (out[k] and v) if k == "additionalProperties" else (out[k] or v)
        else:
            left[k] = v
    if "const" in out and isinstance(out.get("enum"), list):
        if _key(out["const"]) in {_key(x) for x in out["enum"]}:
            del out["enum"]
    return out, left


def _type_meet(a: Any, b: Any) -> Any:
    ta = [a] if isinstance(a, str) else list(a)
    tb = [b] if isinstance(b, str) else list(b)
    meet = [t for t in ta if t in tb]
    if "integer" in ta and "number" in tb and "integer" not in meet:
        meet.append("integer")
    if "number" in ta and "integer" in tb and "integer" not in meet:
        meet.append("integer")
    if not meet:
        return None
    return meet[0] if len(meet) == 1 else meet


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _key(v: Any) -> str:
    return json.dumps(v, sort_keys=True)
