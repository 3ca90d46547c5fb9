"""A dataset's fields: the schema's field paths, one readable row per field, and per leaf field
the values the seeds give it.

Field paths are spelled as the scaffold spells its field keys (``$.birds[*].sex``, array items
under ``[*]``), so a row here, a pin's path and a scaffold note name the same field the same way.
This is what the Design page's *Fields* and *Seed statistics* tabs show and what the string-field
table counts.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aod_core.data.dependencies import Dependencies, key_name
from aod_core.data.schema import LoadedSchema
from aod_core.records import render_path, walk

# ---- schema fields ----------------------------------------------------------------------------


def child_path(parent: str, name: str) -> str:
    """JSON path of property ``name`` under ``parent``, spelled as the scaffold spells field keys."""
    return f"{parent}.{name}" if name.isidentifier() else f"{parent}[{json.dumps(name, ensure_ascii=False)}]"


def _types(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else [str(x) for x in t]


def _walk_schema(node: object, path: str, required: bool, out: list[tuple[str, dict, bool]]) -> None:
    """(path, subschema, required) for every property and items schema, depth first, schema order."""
    if not isinstance(node, dict):
        node = {} if node is True else {"not": {}}
    out.append((path, node, required))
    types = _types(node)
    props = node.get("properties")
    if isinstance(props, dict) and (not types or "object" in types):
        req = set(node.get("required") or [])
        for name, sub in props.items():
            _walk_schema(sub, child_path(path, name), name in req, out)
    items = node.get("items")
    if isinstance(items, (dict, bool)) and (not types or "array" in types):
        _walk_schema(items, f"{path}[*]", True, out)


def _fields(schema: LoadedSchema) -> list[tuple[str, dict, bool]]:
    out: list[tuple[str, dict, bool]] = []
    _walk_schema(schema.resolved, "$", True, out)
    return out[1:]  # the root object is not a field


def _is_container(node: Mapping[str, Any]) -> bool:
    types = _types(node)
    if "enum" in node or "const" in node:
        return False
    return (
        bool(types)
        and all(t in ("object", "array", "null") for t in types)
        and any(t in ("object", "array") for t in types)
    )


def leaf_paths(schema: LoadedSchema) -> list[str]:
    """Paths of the schema's leaf fields (not objects or arrays) in schema order: ``$.birds[*].sex``."""
    return [p for p, node, _ in _fields(schema) if not _is_container(node)]


def _type_text(node: Mapping[str, Any]) -> str:
    types = _types(node)
    if types:
        return " | ".join(types)
    if "const" in node:
        return "const"
    if "enum" in node:
        return "enum"
    return "any"


def _num(v: Any) -> str:
    return json.dumps(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def _constraints_text(node: Mapping[str, Any]) -> str:
    parts: list[str] = []
    if "const" in node:
        parts.append(f"const {json.dumps(node['const'], ensure_ascii=False)}")
    if isinstance(node.get("enum"), list):
        parts.append("one of " + " | ".join(json.dumps(v, ensure_ascii=False) for v in node["enum"]))
    for key, label in (
        ("minimum", "min"),
        ("exclusiveMinimum", "min (exclusive)"),
        ("maximum", "max"),
        ("exclusiveMaximum", "max (exclusive)"),
        ("multipleOf", "multiple of"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
    ):
        if key in node and not isinstance(node[key], bool):
            parts.append(f"{label} {_num(node[key])}")
    if "format" in node:
        parts.append(f"format {node['format']}")
    if "pattern" in node:
        parts.append(f"pattern {node['pattern']}")
    if node.get("uniqueItems") is True:
        parts.append("unique items")
    if node.get("additionalProperties") is False:
        parts.append("no other keys")
    for key in ("anyOf", "oneOf", "allOf", "not", "if"):
        if key in node:
            parts.append(f"{key} (validated)")
    return "; ".join(parts)


def note_field(where: str) -> str:
    """The field path (``$.birds[*].sex``) a schema note's pointer (``/properties/birds/items/...``)
    or a scaffold note's slot path (``$.birds[2].sex|variant``) is about."""
    if not where.startswith("$"):
        path, parts = "$", [_unesc_part(p) for p in where.split("/")[1:]]
        i = 0
        while i < len(parts):
            if parts[i] in ("properties", "patternProperties") and i + 1 < len(parts):
                path, i = child_path(path, parts[i + 1]), i + 2
            elif parts[i] in ("items", "additionalProperties"):
                path, i = (f"{path}[*]" if parts[i] == "items" else path), i + 1
            elif parts[i] == "prefixItems" and i + 1 < len(parts):
                path, i = f"{path}[*]", i + 2
            else:
                break  # inside allOf/anyOf/...: the note belongs to the field itself
        return path
    where = re.sub(r"\[\d+\]", "[*]", where.split("|")[0].rstrip("?"))
    return where[: -len(".length")] if where.endswith(".length") else where


def _unesc_part(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def field_table(
    schema: LoadedSchema, scaffold_notes: Iterable[str] = (), dependencies: Dependencies | None = None
) -> list[dict[str, Any]]:
    """One readable row per field of ``schema.resolved``: objects and arrays too, nested paths with
    ``[*]`` for array items (``$.birds[*].species``).

    ``required`` is relative to the parent object (items of an array are always "required").
    ``notes`` lists what the scaffold does not enforce or approximates there (the schema's notes
    and ``scaffold_notes``, the "$.path: message" lines the CLI prints); notes about the whole
    record get a row ``$`` of their own. ``dependencies`` (the seeds', ``data/dependencies.py``) fill
    the ``dependencies`` column: which field fixes this one, which it fixes, the keys it is part
    of, and whether it is an identifier.
    """
    ties = dependency_text(dependencies) if dependencies is not None else {}
    notes: dict[str, list[str]] = {}
    for n in schema.notes:
        notes.setdefault(note_field(n.path), []).append(f"{n.keyword}: {n.message}")
    for text in scaffold_notes:
        where, _, message = text.partition(": ")
        notes.setdefault(note_field(where), []).append(message)
    rows = []
    if notes.get("$"):
        rows.append(
            {
                "path": "$",
                "type": "object",
                "required": True,
                "nullable": False,
                "constraints": "",
                "description": str(schema.resolved.get("description") or schema.resolved.get("title") or ""),
                "notes": "; ".join(notes["$"]),
            }
        )
    for path, node, required in _fields(schema):
        types = _types(node)
        rows.append(
            {
                "path": path,
                "type": _type_text(node),
                "required": required,
                "nullable": "null" in types
                or None in (node.get("enum") or [])
                or ("const" in node and node["const"] is None),
                "constraints": _constraints_text(node),
                "description": str(node.get("description") or node.get("title") or ""),
                "dependencies": ties.get(path, ""),
                "notes": "; ".join(notes.get(path, [])),
            }
        )
    return rows


def dependency_text(deps: Dependencies) -> dict[str, str]:
    """Per field path: what the seeds' dependencies and keys say about it, in words."""
    out: dict[str, list[str]] = {}
    fixes: dict[str, list[str]] = {}
    for d in deps.fds:
        fixes.setdefault(d.determinant, []).append(d.dependent)
    for f in deps.fields:
        parts = []
        if f in deps.identifiers:
            parts.append("identifier")
        if f in deps.parents:
            parts.append(f"fixed by {deps.parents[f]}")
        kids = [c for c in fixes.get(f, []) if deps.parents.get(c) == f]
        if kids:
            parts.append(f"fixes {', '.join(kids)}")
        for k in deps.keys:
            if f in k:
                parts.append(f"key {key_name(k)}")
        if parts:
            out[f] = parts
    return {f: "; ".join(p) for f, p in out.items()}


# ---- values in the seeds ----------------------------------------------------------------------


def _collect(value: Any, node: object, path: str, out: dict[str, list[Any]], leaves: set[str]) -> None:
    """Append each value of ``value`` found at one of the schema's ``leaves`` (paths spelled as the
    scaffold spells field keys, array items pooled under ``[*]``) to ``out``; ``path`` is the root's
    spelling (``$``). ``node`` (the schema) is not needed: the leaf paths already hold its shape."""

    def spell(steps: tuple) -> str:
        return render_path(steps, root=path, items="*", quote=True)

    for steps, v in walk(value, stop=lambda steps: spell(steps) in leaves):
        key = spell(steps)
        if key in leaves:
            out[key].append(v)


def field_values(records: Iterable[Any], schema: LoadedSchema) -> dict[str, list[Any]]:
    """Every value each leaf field takes over ``records`` (array items pooled under ``[*]``)."""
    paths = leaf_paths(schema)
    out: dict[str, list[Any]] = {p: [] for p in paths}
    leaves = set(paths)
    for rec in records:
        _collect(rec, schema.resolved, "$", out, leaves)
    return out


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _short_value(v: Any, limit: int = 40) -> str:
    text = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def seed_stats(records: Sequence[Any], schema: LoadedSchema, *, top: int = 3) -> list[dict[str, Any]]:
    """Per leaf field: how often it appears (``count``), ``nulls``, ``distinct`` non-null values,
    ``min``/``max``/``mean`` when every non-null value is a number, else the ``top`` commonest values.
    """
    rows = []
    for path, values in field_values(records, schema).items():
        present = [v for v in values if v is not None]
        keys = Counter(json.dumps(v, sort_keys=True, ensure_ascii=False) for v in present)
        numeric = bool(present) and all(_is_number(v) for v in present)
        row: dict[str, Any] = {
            "path": path,
            "kind": "number" if numeric else "category" if present else "empty",
            "count": len(values),
            "nulls": len(values) - len(present),
            "distinct": len(keys),
            "min": None,
            "max": None,
            "mean": None,
            "top": "",
        }
        if numeric:
            row["min"], row["max"] = float(min(present)), float(max(present))
            row["mean"] = round(sum(present) / len(present), 4)
        else:
            row["top"] = ", ".join(f"{_short_value(json.loads(k))} ({n})" for k, n in keys.most_common(top))
        rows.append(row)
    return rows
