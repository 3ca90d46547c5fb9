"""JSON Schema dialects: which draft a schema is written in, and its keywords in 2020-12 spelling.

Records are always validated against the schema as written, by the ``jsonschema`` validator of its
own draft. The generator reads one vocabulary only, so every schema node is rewritten into draft
2020-12 terms before the scaffold sees it: where drafts differ in spelling or meaning
(``exclusiveMinimum`` as a boolean flag in draft-04, ``items`` as a list before 2020-12,
``dependencies`` before 2019-09, ``id`` in draft-04), the node is translated so the same schema
written in any draft lays out the same scaffold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import referencing.jsonschema
from jsonschema import Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator

from aod_core.data.patterns import linear

#: Keywords that describe a value without constraining it (every draft).
ANNOTATION_KEYWORDS = frozenset(
    {"title", "description", "examples", "default", "$comment", "deprecated", "readOnly", "writeOnly"}
)


@dataclass(frozen=True)
class Dialect:
    name: str
    validator: Any  # the jsonschema validator class, its regular expressions run on RE2 (patterns.py)
    spec: referencing.Specification
    ref_siblings_ignored: bool  # drafts up to 07: keywords next to $ref do not apply
    order: int


DIALECTS = {
    d.name: d
    for d in (
        Dialect("draft-04", linear(Draft4Validator), referencing.jsonschema.DRAFT4, True, 4),
        Dialect("draft-06", linear(Draft6Validator), referencing.jsonschema.DRAFT6, True, 6),
        Dialect("draft-07", linear(Draft7Validator), referencing.jsonschema.DRAFT7, True, 7),
        Dialect("2019-09", linear(Draft201909Validator), referencing.jsonschema.DRAFT201909, False, 2019),
        Dialect("2020-12", linear(Draft202012Validator), referencing.jsonschema.DRAFT202012, False, 2020),
    )
}
DEFAULT = "2020-12"
# "http://json-schema.org/schema#" names whichever draft is the latest.
_LATEST_URIS = {"http://json-schema.org/schema", "https://json-schema.org/schema"}


def detect(schema: dict) -> tuple[str, str | None]:
    """(draft name, note or None) for a schema document; ValueError for a draft no validator has.

    No ``$schema`` means 2020-12. A ``$schema`` that is not a json-schema.org meta-schema (a
    project's own meta-schema) is read as 2020-12 and the note says so.
    """
    uri = schema.get("$schema")
    if uri is None:
        return DEFAULT, None
    if not isinstance(uri, str):
        raise ValueError(f'"$schema" must be a string, got {json.dumps(uri)}')
    bare = uri.strip().rstrip("#")
    if bare in _LATEST_URIS:
        return DEFAULT, None
    if "json-schema.org" in bare:
        for name in DIALECTS:
            if name in bare:
                return name, None
        raise ValueError(f'unsupported "$schema" {json.dumps(uri)} (supported: {", ".join(DIALECTS)})')
    return DEFAULT, f'"$schema" {json.dumps(uri)} is not a json-schema.org draft; read as {DEFAULT}'


def to_2020_12(node: dict, draft: str) -> dict:
    """This node's own keywords in 2020-12 spelling (subschemas are left as they are: the caller
    translates each one as it walks into it)."""
    d = DIALECTS[draft]
    out = dict(node)
    if d.order == 4:
        if isinstance(out.get("id"), str) and "$id" not in out:
            out["$id"] = out.pop("id")
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(flag), bool):
                if out.pop(flag) and bound in out:
                    out[flag] = out.pop(bound)
    if d.order <= 2019 and isinstance(out.get("items"), list):
        out["prefixItems"] = out.pop("items")
        if "additionalItems" in out:
            out["items"] = out.pop("additionalItems")
    elif d.order <= 2019:
        out.pop("additionalItems", None)  # ignored unless items is a list
    if d.order <= 7 and isinstance(out.get("dependencies"), dict):
        deps = out.pop("dependencies")
        required = {k: v for k, v in deps.items() if isinstance(v, list)}
        schemas = {k: v for k, v in deps.items() if isinstance(v, (dict, bool))}
        if required:
            out["dependentRequired"] = {**required, **out.get("dependentRequired", {})}
        if schemas:
            out["dependentSchemas"] = {**schemas, **out.get("dependentSchemas", {})}
    if d.order == 2019:
        if isinstance(out.get("$recursiveRef"), str) and "$ref" not in out:
            out["$ref"] = out.pop("$recursiveRef")
        out.pop("$recursiveAnchor", None)
    if d.order == 2020 and isinstance(out.get("$dynamicRef"), str) and "$ref" not in out:
        out["$ref"] = out.pop("$dynamicRef")
    # The translation is 2020-12 and its references are resolved against the root: a dialect or a
    # base URI of its own would change how a validator reads the node.
    for k in ("$schema", "$id", "id" if d.order == 4 else "$id"):
        if isinstance(out.get(k), str):
            del out[k]
    return out
