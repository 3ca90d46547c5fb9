"""Loading a JSON Schema: draft detection, meta-schema check, local ``$ref`` inlining, notes.

The generator works from ``resolved`` (every local ``$ref`` inlined, so it never chases references),
while records are validated against ``raw`` with jsonschema, so anything the generator does not
enforce is still checked and is reported up front as a ``SchemaNote``.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import referencing
import referencing.jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from aod_core.canvas.formats import FORMATS
from aod_core.data import dialects
from aod_core.data.allof import merge_allof
from aod_core.data.dialects import ANNOTATION_KEYWORDS
from aod_core.data.limits import UnreadableValue, check_file_size, not_utf8, strict_loads
from aod_core.data.patterns import UnsafePattern, compiled, linear
from aod_core.errors import InputError

# Where subschemas live; everything else (enum, const, default, examples, ...) is data and must
# never be walked, or a property named "$ref" or an example value would be taken for a schema.
_SUB_ONE = {
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
    "contentSchema",
}
_SUB_MAP = {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas", "dependencies"}
_DEFS = ("$defs", "definitions")
_SUB_LIST = {"allOf", "anyOf", "oneOf", "prefixItems", "items"}

_ANNOTATIONS = ANNOTATION_KEYWORDS | {"contentMediaType", "contentEncoding", "contentSchema"}
_SUPPORTED = _ANNOTATIONS | {
    "type",
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "items",
    "prefixItems",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "minItems",
    "maxItems",
    "anyOf",
    "oneOf",
    "dependentRequired",
    "dependentSchemas",
    "$schema",
    "$id",
    "$anchor",
    "$dynamicAnchor",
    "$defs",
    "definitions",
    "$ref",
    "$vocabulary",
}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class SchemaNote:
    """Something in the schema the generator does not enforce (reported, never silently ignored)."""

    path: str
    keyword: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.message}"


@dataclass
class LoadedSchema:
    raw: dict
    resolved: dict
    draft: str
    source: str
    notes: list[SchemaNote]
    _validator: Any = field(default=None, init=False, repr=False, compare=False)

    def _get_validator(self) -> Any:
        if self._validator is None:
            d = dialects.DIALECTS[self.draft]
            root = referencing.Resource.from_contents(self.raw, default_specification=d.spec)
            # No `retrieve`: a remote ref would raise instead of being fetched (they are rejected
            # at load time anyway; this is the belt to that pair of braces).
            base = self.raw.get("$id" if d.order > 4 else "id", "")
            registry = referencing.Registry().with_resource(base if isinstance(base, str) else "", root)
            self._validator = d.validator(self.raw, registry=registry, format_checker=d.validator.FORMAT_CHECKER)
        return self._validator

    def validate(self, record: object) -> list[tuple[str, str]]:
        """Every schema violation in ``record`` as (json_path, message), sorted by path."""
        errors = sorted(
            self._get_validator().iter_errors(record), key=lambda e: [(isinstance(p, str), p) for p in e.absolute_path]
        )
        return [(json_path(e.absolute_path), _short(e.message)) for e in errors]

    def is_valid(self, record: object) -> bool:
        return self._get_validator().is_valid(record)


def _short(message: str, limit: int = 300) -> str:
    """A message cut to about ``limit`` characters, both ends kept: jsonschema quotes the whole value,
    and a 10,000-character seed must not make a 10,000-character line (its end says what is wrong)."""
    if len(message) <= limit:
        return message
    half = limit // 2
    return f"{message[:half]} … ({len(message) - 2 * half} characters left out) … {message[-half:]}"


def json_path(parts: Iterable[str | int]) -> str:
    """("birds", 0, "species") -> "$.birds[0].species"; other keys are quoted: $["a b"]."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif _IDENT.match(p):
            out += f".{p}"
        else:
            out += f"[{json.dumps(p, ensure_ascii=False)}]"
    return out


def load_schema(path: str | os.PathLike) -> LoadedSchema:
    source = os.fspath(path)
    check_file_size(source)
    try:
        with open(source, encoding="utf-8-sig") as f:
            text = f.read()
    except OSError as e:
        raise InputError(f"cannot read schema file: {e.strerror or e}", where=source) from e
    except UnicodeDecodeError:
        raise InputError(not_utf8(source, "schema file"), where=source) from None
    return parse_schema(loads_json(text, source), source)


def loads_json(text: str, where: str) -> Any:
    """json.loads that reports line and column, and rejects NaN/Infinity (not JSON), duplicate keys,
    nesting past the depth limit, numbers beyond a float and lone surrogates (``limits.strict_loads``)."""
    if not text.strip():
        raise InputError("the file is empty", where=where)
    try:
        return strict_loads(text)
    except UnreadableValue as e:  # valid JSON, but a value nothing downstream can hold
        raise InputError(str(e), where=where) from None
    except json.JSONDecodeError as e:
        raise InputError(f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}", where=where) from e
    except ValueError as e:
        raise InputError(f"invalid JSON: {e}", where=where) from e


def parse_schema(obj: object, source: str = "<schema>") -> LoadedSchema:
    """Check a schema document and resolve it for the generator (see ``_parse_schema``); a document
    nested past what the checks can walk is bad input, not a RecursionError traceback."""
    try:
        return _parse_schema(obj, source)
    except RecursionError:
        raise InputError("schema is nested too deeply to check", where=source) from None


def _parse_schema(obj: object, source: str = "<schema>") -> LoadedSchema:
    """Check a schema document and resolve it for the generator.

    ``resolved`` is in draft 2020-12 spelling whatever the document's draft, with every local
    ``$ref`` inlined and ``allOf`` merged where it merges. A recursive reference cannot be inlined:
    it stays a ``$ref`` into ``resolved["$defs"]`` and the scaffold unrolls it as deep as the seeds go.
    """
    if not isinstance(obj, dict):
        raise InputError(f"schema must be a JSON object, got {json_type(obj)}", where=source)
    try:
        draft, draft_note = dialects.detect(obj)
    except ValueError as e:
        raise InputError(str(e), where=source) from None
    cls = dialects.DIALECTS[draft].validator
    try:
        cls.check_schema(obj)
    except SchemaError as e:
        raise InputError(
            f"not a valid {draft} JSON Schema at {_pointer(e.absolute_path) or '/'}: {_short(e.message)}", where=source
        ) from e
    check_patterns(obj, source)
    inliner = _Inliner(obj, draft, source)
    inliner.check_refs()
    resolved = inliner.inline(obj, "", "", ())
    if not _is_object_root(resolved):
        raise InputError(
            'the root schema must describe an object: it needs "type": "object" and "properties"', where=source
        )
    if inliner.recursive:
        resolved = {**resolved, "$defs": inliner.recursive}
    notes = ([SchemaNote("", "$schema", draft_note)] if draft_note else []) + inliner.notes
    _collect_notes(resolved, "", notes, None)
    return LoadedSchema(raw=obj, resolved=resolved, draft=draft, source=source, notes=notes)


def resolved_validator(resolved: dict) -> Any:
    """A 2020-12 validator over a ``resolved`` schema (its recursive ``$ref``s point into its own
    ``$defs``); ``.evolve(schema=sub)`` checks values against any subschema of it."""
    root = referencing.Resource.from_contents(resolved, default_specification=referencing.jsonschema.DRAFT202012)
    registry = referencing.Registry().with_resource("", root)
    return linear(Draft202012Validator)(resolved, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def check_patterns(root: object, source: str) -> None:
    """Every ``pattern`` and ``patternProperties`` key of the document, unused ``$defs`` included,
    must run on the linear-time engine (``patterns.py``): one that needs backtracking is refused
    here, naming where it is, rather than when a record first reaches it."""
    for ptr, node in _walk(root, ""):
        if not isinstance(node, dict):
            continue
        found = [(f"{ptr}/pattern", node["pattern"])] if isinstance(node.get("pattern"), str) else []
        if isinstance(node.get("patternProperties"), dict):
            found += [(f"{ptr}/patternProperties", p) for p in node["patternProperties"]]
        for where, pattern in found:
            try:
                compiled(pattern)
            except UnsafePattern as e:
                raise InputError(f"{where}: {e}", where=source) from None


def _is_object_root(schema: object) -> bool:
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return False
    t = schema.get("type")
    return t == "object" or (isinstance(t, list) and "object" in t)


class _Inliner:
    """Inlines local refs of one schema document; refs are checked for locality first."""

    def __init__(self, root: dict, draft: str, source: str) -> None:
        self.root, self.draft, self.source = root, draft, source
        self.notes: list[SchemaNote] = []
        self.recursive: dict[str, Any] = {}  # $defs of resolved: targets of recursive refs

    def check_refs(self) -> None:
        # Checked over the whole document, unused $defs included: a remote ref anywhere is an
        # error even if nothing reaches it, so a schema never half-works.
        for ptr, node in _walk(self.root, ""):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if isinstance(ref, str):
                self.target(ref, ptr)

    def target(self, ref: str, at: str) -> tuple[str, object]:
        """(pointer, subschema) that a local ``ref`` found at pointer ``at`` points to."""
        if not ref.startswith("#"):
            raise InputError(
                f"$ref {json.dumps(ref)} at {at or '/'} is not local: remote references are never fetched (inline it or move it into $defs)",
                where=self.source,
            )
        frag = unquote(ref[1:])
        if frag == "" or frag.startswith("/"):
            node: object = self.root
            for raw_part in frag.split("/")[1:]:
                part = raw_part.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and part in node:
                    node = node[part]
                elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                    node = node[int(part)]
                else:
                    raise InputError(
                        f"unresolvable $ref {json.dumps(ref)} at {at or '/'}: nothing at {frag}", where=self.source
                    )
            return frag, node
        for ptr, node in _walk(self.root, ""):
            if isinstance(node, dict) and (
                frag in (node.get("$anchor"), node.get("$dynamicAnchor"))
                or node.get("$id") == ref
                or node.get("id") == ref
            ):
                return ptr, node
        raise InputError(f"unresolvable $ref {json.dumps(ref)} at {at or '/'}: no anchor {frag!r}", where=self.source)

    def inline(self, node: object, ptr: str, at: str, stack: tuple[str, ...]) -> Any:
        """Copy of ``node`` (found at ``ptr`` in raw, landing at ``at`` in resolved), refs inlined,
        in 2020-12 spelling, ``allOf`` merged."""
        if not isinstance(node, dict):
            return node
        node = dialects.to_2020_12(node, self.draft)
        ref = node.get("$ref")
        if not isinstance(ref, str):
            out = _map_children(node, lambda c, rel: self.inline(c, ptr + rel, at + rel, stack))
            return merge_allof(out)
        target_ptr, target = self.target(ref, ptr)
        siblings = {k: v for k, v in node.items() if k not in ("$ref", "$defs", "definitions")}
        if dialects.DIALECTS[self.draft].ref_siblings_ignored:
            # Up to draft-07, siblings of $ref are ignored, by the validator too; say so, since
            # the schema author probably meant them.
            for k in sorted(siblings.keys() - _ANNOTATIONS - {"$id", "$schema", "id"}):
                self.notes.append(
                    SchemaNote(at, k, f"keyword '{k}' next to $ref is ignored in {self.draft} (by the validator too)")
                )
            siblings = {}
        if target_ptr in stack:
            return self._recursive(target_ptr, target, siblings, ptr, at, stack)
        resolved = self.inline(target, target_ptr, at, stack + (target_ptr,))
        if not siblings:
            return resolved
        own = _map_children(siblings, lambda c, rel: self.inline(c, ptr + rel, at + rel, stack))
        if not own or resolved is True:
            return own or resolved
        if resolved is False:
            return False
        merged = {**resolved}
        clash = {}
        for k, v in own.items():
            if k in merged and k not in _ANNOTATIONS and merged[k] != v:
                clash[k] = v
            else:
                merged[k] = v
        if clash:
            # Both values must hold: merged where they merge (bounds, properties), the rest goes
            # into an allOf, which the validator enforces and the notes report.
            merged = merge_allof({**merged, "allOf": [*merged.get("allOf", []), clash]})
        return merged

    def _recursive(
        self, target_ptr: str, target: object, siblings: dict, ptr: str, at: str, stack: tuple[str, ...]
    ) -> dict:
        """A reference back into its own ancestry: kept as a ``$ref`` into resolved's ``$defs``."""
        key = target_ptr or "/"
        if key not in self.recursive:
            self.recursive[key] = {}  # claimed first: the target refers to itself
            body = self.inline(target, target_ptr, f"/$defs/{_esc(key)}", (target_ptr,))
            if isinstance(body, dict) and set(body) == {"$ref"}:
                raise InputError(
                    f"$ref {json.dumps(body['$ref'])} at {ptr or '/'} refers to itself through references only, never reaching a schema",
                    where=self.source,
                )
            self.recursive[key] = body
        own = _map_children(siblings, lambda c, rel: self.inline(c, ptr + rel, at + rel, stack))
        return {"$ref": f"#/$defs/{_esc(key)}", **own}


def _map_children(node: dict, fn: Callable[[object, str], object]) -> dict:
    """Copy of ``node`` without $ref/$defs/definitions; ``fn(subschema, relative_pointer)`` maps
    each subschema."""
    out: dict = {}
    for k, v in node.items():
        if k in ("$ref", "$defs", "definitions"):
            continue
        kp = f"/{_esc(k)}"
        if k in _SUB_ONE and isinstance(v, (dict, bool)):
            out[k] = fn(v, kp)
        elif k in _SUB_MAP and isinstance(v, dict):
            out[k] = {
                n: fn(s, f"{kp}/{_esc(n)}") if isinstance(s, (dict, bool)) else copy.deepcopy(s) for n, s in v.items()
            }
        elif k in _SUB_LIST and isinstance(v, list):
            out[k] = [fn(s, f"{kp}/{i}") for i, s in enumerate(v)]
        else:
            out[k] = copy.deepcopy(v)
    return out


def _children(node: dict, ptr: str) -> Iterator[tuple[str, str, object]]:
    """(keyword, pointer, subschema) for each direct subschema of ``node``."""
    for k, v in node.items():
        kp = f"{ptr}/{_esc(k)}"
        if k in _SUB_ONE and isinstance(v, (dict, bool)):
            yield k, kp, v
        elif k in _SUB_MAP and isinstance(v, dict):
            yield from ((k, f"{kp}/{_esc(n)}", s) for n, s in v.items() if isinstance(s, (dict, bool)))
        elif k in _SUB_LIST and isinstance(v, list):
            yield from ((k, f"{kp}/{i}", s) for i, s in enumerate(v))


def _walk(node: object, ptr: str) -> Iterator[tuple[str, object]]:
    yield ptr, node
    if isinstance(node, dict):
        for _, p, child in _children(node, ptr):
            yield from _walk(child, p)


def _collect_notes(node: object, ptr: str, notes: list[SchemaNote], role: str | None) -> None:
    """Notes for ``node`` and everything below it; ``role`` is "property"/"items" for value slots."""
    shaped = isinstance(node, dict) and any(k in node for k in _SHAPING)
    if node is True or (isinstance(node, dict) and not shaped):
        if role:
            what = f"property '{_unesc(ptr.rsplit('/', 1)[-1])}'" if role == "property" else "array items"
            notes.append(
                SchemaNote(ptr, "type", f"{what} has no 'type' (nor enum/const); the scaffold infers it from the seeds")
            )
    if not isinstance(node, dict):
        return
    for k, v in node.items():
        if k not in _SUPPORTED and k != "allOf":
            notes.append(
                SchemaNote(
                    ptr, k, f"keyword '{k}' is not enforced by the scaffold; records are still validated against it"
                )
            )
        elif k == "allOf":
            notes.append(
                SchemaNote(
                    ptr,
                    k,
                    "the parts of allOf that do not merge into one schema are not enforced by the scaffold; records are still validated against them",
                )
            )
        elif k == "format" and isinstance(v, str) and v not in FORMATS and v in _CHECKED_FORMATS:
            notes.append(
                SchemaNote(
                    ptr,
                    k,
                    f"format {json.dumps(v)} is checked by the validator; the scaffold draws such values from the seeds",
                )
            )
    for k, p, child in _children(node, ptr):
        child_role = (
            "property"
            if k in ("properties", "patternProperties")
            else "items"
            if k in ("items", "prefixItems")
            else None
        )
        _collect_notes(child, p, notes, child_role)


# A node with one of these says what kind of value it holds (directly or through its parts).
_SHAPING = {
    "type",
    "enum",
    "const",
    "anyOf",
    "oneOf",
    "allOf",
    "$ref",
    "properties",
    "items",
    "prefixItems",
    "format",
    "pattern",
}
_CHECKED_FORMATS = set(Draft202012Validator.FORMAT_CHECKER.checkers)


def _esc(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _unesc(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def _pointer(parts: Iterable[str | int]) -> str:
    return "".join(f"/{_esc(str(p))}" for p in parts)


def json_type(value: object) -> str:
    """JSON name of a Python value's type, with its article ("an array", "a string")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
