"""UI-free helpers behind the app's pages: loading datasets, building tables, running the generator.

The Streamlit pages hold layout and widgets only; everything they compute comes from here, so it can
be unit-tested without a browser and reused by later pages. Nothing here imports streamlit.

Table helpers return ``list[dict]`` rows (one dict per row, same keys in every row) that any table
widget, pandas or the CLI can show. Every failure caused by input is an ``InputError`` with a one-line
message; :class:`SeedsInvalid` additionally carries every seed problem so a page can list them all.
"""
from __future__ import annotations

import copy
import json
import math
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aod_core.agents.judge import DEFAULT_RUBRIC
from aod_core.data.demos import demo_datasets
from aod_core.errors import InputError
from aod_core.data.limits import check_size
from aod_core.generators import EmbeddedConfig, load_generator
from aod_core.generators.base import Candidate, Generator, Progress
from aod_core.generators.embedded import default_cache_dir
from aod_core.eval.metrics import batch_summary, duplicates, exact_copies
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.diffusion.sampler import StepInfo
from aod_core.canvas.scaffold import Scaffold
from aod_core.data.schema import LoadedSchema, loads_json, parse_schema
from aod_core.data.seeds import Dataset, RecordIssue, RecordSet, check_records, load_dataset, load_records, read_records

OnInvalid = Literal["stop", "drop"]

#: Session-state keys the pages share, with their initial values (``app.py`` sets them once).
SESSION_DEFAULTS: dict[str, Any] = {
    "dataset": None,  # the Dataset chosen on the Design page
    "dataset_label": None,  # how the Design page names it ("demo: penguins", "upload: a.json + b.csv")
    "dataset_signature": None,  # what was loaded (source, names, content hashes, on_invalid)
    "prompt_text": "",  # the task description, the text half of the prompt
    "sample_result": None,  # the Sample page's last SampleResult
    "rubric_text": DEFAULT_RUBRIC,  # the judge's rubric, editable on the Design page
    "run_dir": None,  # the run this session started or opened (Run, Curate, Export pages)
}

SEED_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class SeedsInvalid(InputError):
    """Seeds (or holdout records) that fail the schema while ``on_invalid`` is "stop" (or all fail).

    ``issues`` holds every problem found, not just the first one the message names.
    """

    def __init__(self, message: str, *, issues: Sequence[RecordIssue], records: int,
                 fixable: tuple[LoadedSchema, list[dict], list[int]] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues)
        self.records = records  # how many records the file held
        # (schema, every record as read, their lines) when the bad records are seeds that can be
        # fixed by hand (see seed_fix_rows / apply_seed_fixes); None for holdout files
        self.fixable = fixable

    @property
    def bad_records(self) -> int:
        return len({(i.source, i.line) for i in self.issues})


# ---- loading ----------------------------------------------------------------------------------


def load_demo(name: str, on_invalid: OnInvalid = "stop") -> Dataset:
    """A demo dataset shipped in ``assets/`` (see :func:`aod_core.data.demos.demo_datasets`)."""
    demos = demo_datasets()
    if name not in demos:
        known = ", ".join(demos) or "none installed"
        raise InputError(f"unknown demo dataset {name!r} (available: {known})")
    folder = demos[name]
    try:
        return load_dataset(folder, on_invalid=_check_on_invalid(on_invalid))
    except InputError as e:
        # load_dataset names only the first problem: collect them all for the page's table.
        _raise_with_issues(e, folder)
        raise


def load_uploaded(schema_bytes: bytes, schema_name: str, seeds_bytes: bytes, seeds_name: str,
                  on_invalid: OnInvalid = "stop") -> Dataset:
    """A dataset from uploaded files: a JSON Schema and seeds as JSONL, a JSON array or CSV.

    Messages name the uploaded files, never the temporary copy the reader works on.
    """
    on_invalid = _check_on_invalid(on_invalid)
    schema_label = _display_name(schema_name, "schema")
    seeds_label = _display_name(seeds_name, "seeds")
    schema = parse_uploaded_schema(schema_bytes, schema_label)
    ext = os.path.splitext(seeds_label)[1].lower()
    if ext not in SEED_EXTENSIONS:
        raise InputError(f"unsupported seeds file type {ext or '(none)'!r} (use .jsonl, .json or .csv)",
                         where=seeds_label)
    _check_size(seeds_bytes, seeds_label)
    with tempfile.TemporaryDirectory(prefix="aod-upload-") as tmp:
        path = os.path.join(tmp, f"seeds{ext}")
        Path(path).write_bytes(seeds_bytes)
        try:
            seeds = load_records(path, schema, on_invalid=on_invalid, what="seeds")
        except InputError as e:
            issues, records, lines = _read_checked(path, schema)
            msg = _relabel(str(e), path, seeds_label)
            if issues:
                raise SeedsInvalid(msg, issues=[_relabel_issue(i, seeds_label) for i in issues],
                                   records=len(records), fixable=(schema, records, lines)) from None
            raise InputError(msg) from None
    seeds = RecordSet(seeds.records, seeds.lines, seeds_label,
                      [_relabel_issue(i, seeds_label) for i in seeds.issues], seeds.dropped)
    return Dataset(folder="", schema=schema, seeds=seeds, holdout=None)


def parse_uploaded_schema(data: bytes, name: str = "schema.json") -> LoadedSchema:
    """A JSON Schema from uploaded bytes (UTF-8, BOM allowed)."""
    _check_size(data, name)
    if not data.strip():
        raise InputError("the schema file is empty", where=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(f"schema file is not UTF-8 text ({e.reason} at byte {e.start})", where=name) from None
    return parse_schema(loads_json(text, name), name)


def demo_names() -> list[str]:
    """Names of the demo datasets shipped in ``assets/``, sorted."""
    return list(demo_datasets())


def dataset_summary(dataset: Dataset) -> dict[str, int | None]:
    """Headline figures: seeds kept and dropped, holdout size, leaf fields in the schema."""
    return {
        "seeds": len(dataset.seeds.records),
        "dropped": dataset.seeds.dropped,
        "holdout": None if dataset.holdout is None else len(dataset.holdout.records),
        "fields": len(leaf_paths(dataset.schema)),
    }


def _check_on_invalid(on_invalid: str) -> OnInvalid:
    if on_invalid not in ("stop", "drop"):
        raise ValueError(f"on_invalid must be 'stop' or 'drop', not {on_invalid!r}")
    return on_invalid  # type: ignore[return-value]


def _check_size(data: bytes, name: str) -> None:
    check_size(len(data), name)  # AOD_MAX_INPUT_MB, default MAX_UPLOAD_BYTES (limits.py)


def _display_name(name: str, fallback: str) -> str:
    base = os.path.basename((name or "").replace("\\", "/")).strip()
    return " ".join(base.split()) or fallback


def _relabel(text: str, path: str, label: str) -> str:
    return text.replace(path, label)


def _relabel_issue(issue: RecordIssue, label: str) -> RecordIssue:
    return RecordIssue(label, issue.line, issue.path, issue.message)


def _all_issues(path: str, schema: LoadedSchema) -> tuple[list[RecordIssue], int]:
    """Every schema problem of a records file; ([], 0) when it cannot even be read."""
    issues, records, _ = _read_checked(path, schema)
    return issues, len(records)


def _read_checked(path: str, schema: LoadedSchema) -> tuple[list[RecordIssue], list[dict], list[int]]:
    try:
        records, lines = read_records(path, schema)
    except InputError:
        return [], [], []
    return check_records(records, lines, schema, os.fspath(path)), records, lines


def _raise_with_issues(error: InputError, folder: str | os.PathLike) -> None:
    """Re-raise ``error`` from a dataset folder as SeedsInvalid when its records fail the schema."""
    from aod_core.data.schema import load_schema

    try:
        schema = load_schema(os.path.join(folder, "schema.json"))
    except InputError:
        return
    seeds = next((p for p in (os.path.join(folder, n) for n in ("seeds.jsonl", "seeds.json", "seeds.csv"))
                  if os.path.isfile(p)), None)
    for path in (seeds, os.path.join(folder, "holdout.jsonl")):  # the order load_dataset reads them
        if path is None or not os.path.isfile(path):
            continue
        issues, records, lines = _read_checked(path, schema)
        if issues:
            fixable = (schema, records, lines) if path == seeds else None
            raise SeedsInvalid(str(error), issues=issues, records=len(records), fixable=fixable) from None


def seed_fix_rows(e: SeedsInvalid) -> list[dict[str, Any]]:
    """The seeds that fail the schema as editable rows: line, problems, the record as JSON text."""
    if e.fixable is None:
        return []
    _, records, lines = e.fixable
    problems: dict[int, list[str]] = {}
    for i in e.issues:
        problems.setdefault(i.line, []).append(f"{i.path}: {i.message}")
    return [{"line": line, "problems": "; ".join(problems[line]), "record": json.dumps(rec, ensure_ascii=False)}
            for rec, line in zip(records, lines) if line in problems]


def apply_seed_fixes(e: SeedsInvalid, rows: Iterable[Mapping[str, Any]], label: str = "seeds") -> Dataset:
    """The dataset with the user's fixes applied: each row's ``record`` text replaces the seed on
    its ``line`` (an empty text drops that seed). SeedsInvalid again if any record still fails."""
    if e.fixable is None:
        raise InputError("these records cannot be fixed here; fix the file")
    schema, records, lines = e.fixable
    fixes = {int(r["line"]): ("" if _blank(r.get("record")) else str(r["record"])) for r in rows}
    out_records, out_lines = [], []
    for rec, line in zip(records, lines):
        if line not in fixes:
            out_records.append(rec)
            out_lines.append(line)
            continue
        text = fixes[line].strip()
        if not text:
            continue  # the user dropped it
        try:
            value = json.loads(text)
        except ValueError as err:
            raise InputError(f"line {line}: the fixed record is not valid JSON ({err})", where=label) from None
        if not isinstance(value, dict):
            raise InputError(f"line {line}: the fixed record must be a JSON object", where=label)
        out_records.append(value)
        out_lines.append(line)
    issues = check_records(out_records, out_lines, schema, label)
    if issues:
        raise SeedsInvalid(f"{len({i.line for i in issues})} record(s) still fail the schema", issues=issues,
                           records=len(out_records), fixable=(schema, out_records, out_lines))
    if not out_records:
        raise InputError("no seed records left", where=label)
    dropped = len(records) - len(out_records)
    return Dataset(folder="", schema=schema, seeds=RecordSet(out_records, out_lines, f"{label} (fixed here)",
                                                             dropped=dropped), holdout=None)


# ---- schema fields ----------------------------------------------------------------------------


def child_path(parent: str, name: str) -> str:
    """JSON path of property ``name`` under ``parent``, spelled as the scaffold spells field keys."""
    return f"{parent}.{name}" if name.isidentifier() else f"{parent}[{json.dumps(name, ensure_ascii=False)}]"


def _types(node: Mapping[str, Any]) -> list[str]:
    t = node.get("type")
    if t is None:
        return []
    return [t] if isinstance(t, str) else [str(x) for x in t]


def _walk_schema(node: object, path: str, required: bool,
                 out: list[tuple[str, dict, bool]]) -> None:
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
    return bool(types) and all(t in ("object", "array", "null") for t in types) and any(
        t in ("object", "array") for t in types)


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
    for key, label in (("minimum", "min"), ("exclusiveMinimum", "min (exclusive)"), ("maximum", "max"),
                       ("exclusiveMaximum", "max (exclusive)"), ("multipleOf", "multiple of"),
                       ("minLength", "min length"), ("maxLength", "max length"),
                       ("minItems", "min items"), ("maxItems", "max items")):
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


def field_table(schema: LoadedSchema, scaffold_notes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """One readable row per field of ``schema.resolved``: objects and arrays too, nested paths with
    ``[*]`` for array items (``$.birds[*].species``).

    ``required`` is relative to the parent object (items of an array are always "required").
    ``notes`` lists what the scaffold does not enforce or approximates there (the schema's notes
    and ``scaffold_notes``, the "$.path: message" lines the CLI prints); notes about the whole
    record get a row ``$`` of their own.
    """
    notes: dict[str, list[str]] = {}
    for n in schema.notes:
        notes.setdefault(note_field(n.path), []).append(f"{n.keyword}: {n.message}")
    for text in scaffold_notes:
        where, _, message = text.partition(": ")
        notes.setdefault(note_field(where), []).append(message)
    rows = []
    if notes.get("$"):
        rows.append({"path": "$", "type": "object", "required": True, "nullable": False, "constraints": "",
                     "description": str(schema.resolved.get("description") or schema.resolved.get("title") or ""),
                     "notes": "; ".join(notes["$"])})
    for path, node, required in _fields(schema):
        types = _types(node)
        rows.append({
            "path": path,
            "type": _type_text(node),
            "required": required,
            "nullable": "null" in types or None in (node.get("enum") or []) or (
                "const" in node and node["const"] is None),
            "constraints": _constraints_text(node),
            "description": str(node.get("description") or node.get("title") or ""),
            "notes": "; ".join(notes.get(path, [])),
        })
    return rows


# ---- seeds ------------------------------------------------------------------------------------


def _collect(value: Any, node: object, path: str, out: dict[str, list[Any]], leaves: set[str]) -> None:
    if path in leaves:
        out[path].append(value)
        return
    if not isinstance(node, dict):
        return
    props = node.get("properties")
    if isinstance(value, dict) and isinstance(props, dict):
        for name, sub in props.items():
            if name in value:
                _collect(value[name], sub, child_path(path, name), out, leaves)
    items = node.get("items")
    if isinstance(value, list) and isinstance(items, (dict, bool)):
        for item in value:
            _collect(item, items, f"{path}[*]", out, leaves)


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
            "min": None, "max": None, "mean": None, "top": "",
        }
        if numeric:
            row["min"], row["max"] = float(min(present)), float(max(present))
            row["mean"] = round(sum(present) / len(present), 4)
        else:
            row["top"] = ", ".join(f"{_short_value(json.loads(k))} ({n})" for k, n in keys.most_common(top))
        rows.append(row)
    return rows


def records_preview(records: Sequence[Any], limit: int = 100) -> list[dict[str, Any]]:
    """The first ``limit`` records as flat table rows: top-level keys as columns, nested values as JSON."""
    rows = []
    for rec in records[:limit]:
        if not isinstance(rec, dict):
            rows.append({"value": json.dumps(rec, ensure_ascii=False)})
            continue
        rows.append({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v
                     for k, v in rec.items()})
    return rows


def seed_issue_rows(issues: RecordSet | SeedsInvalid | Iterable[RecordIssue]) -> list[dict[str, Any]]:
    """One row (line, path, message) per validation problem, in file order."""
    if isinstance(issues, (RecordSet, SeedsInvalid)):
        issues = issues.issues
    return [{"line": i.line, "path": i.path, "message": i.message} for i in issues]


# ---- scaffold ---------------------------------------------------------------------------------


@dataclass
class ScaffoldPreview:
    skeleton: str
    slots: list[dict[str, Any]]  # Scaffold.describe()
    notes: list[str]
    field_keys: list[str]  # leaf field keys a prompt may pin or forbid: $.island, $.birds[*].sex


def scaffold_preview(dataset: Dataset, string_modes: Mapping[str, str] | None = None) -> ScaffoldPreview:
    """The canvas the embedded generator fills for this dataset (with its default way of writing
    values, and the user's per-field ``string_modes``), for display and for the pin/forbid paths."""
    modes = dict(string_modes or {})
    key = content_hash([dataset.schema.resolved, dataset.seeds.records, sorted(modes.items())])
    if key not in _PREVIEWS:  # building it trains word pieces: seconds on text-heavy seeds, not every rerun
        options = EmbeddedConfig(string_modes=modes).canvas_options()
        sc = Scaffold.build(dataset.schema.resolved, dataset.seeds.records, options)
        while len(_PREVIEWS) >= 16:
            _PREVIEWS.pop(next(iter(_PREVIEWS)))
        _PREVIEWS[key] = ScaffoldPreview(sc.skeleton(), sc.describe(), list(sc.notes), scaffold_field_keys(sc))
    return copy.deepcopy(_PREVIEWS[key])


_PREVIEWS: dict[str, ScaffoldPreview] = {}  # content hash -> preview, oldest dropped first


def string_field_rows(dataset: Dataset, string_modes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per string field of the embedded generator's canvas: the seeds' values and distinct
    values, how the generator writes it by default and with the user's override ("" = default)."""
    overrides = dict(string_modes or {})
    values = field_values(dataset.seeds.records, dataset.schema)
    default = Scaffold.build(dataset.schema.resolved, dataset.seeds.records, EmbeddedConfig().canvas_options())
    chosen = Scaffold.build(dataset.schema.resolved, dataset.seeds.records,
                            EmbeddedConfig(string_modes=overrides).canvas_options()) if overrides else default

    def written(sc: Scaffold) -> dict[str, str]:
        out: dict[str, str] = {}
        for sl in sc.slots:
            if sl.mode and sl.key not in out:
                out[sl.key] = ("vocabulary" if sl.mode == "vocabulary" else
                               "word pieces" if sl.pieces is not None else "characters")
        return out

    before, now = written(default), written(chosen)
    rows = []
    for key, how in before.items():
        strs = [v for v in values.get(key, []) if isinstance(v, str)]
        rows.append({"field": key, "values": len(strs), "distinct": len(set(strs)), "default": how,
                     "override": overrides.get(key, ""), "written as": now.get(key, how)})
    return rows


def scaffold_field_keys(scaffold: Scaffold) -> list[str]:
    keys: list[str] = []
    for s in scaffold.leaf_slots():
        if s.key not in keys:
            keys.append(s.key)
    return keys


# ---- prompt -----------------------------------------------------------------------------------


def parse_cell_value(text: Any) -> Any:
    """A pin/forbid value typed in a table cell: JSON when it parses (``42``, ``null``, ``"x"``,
    ``true``), else the text itself as a string."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def parse_path_values(rows: Iterable[Mapping[str, Any]], what: str) -> list[tuple[str, Any]]:
    """(path, value) pairs from editor rows with ``path`` and ``value`` columns; blank rows skipped."""
    out = []
    for i, row in enumerate(rows, 1):
        path, raw = row.get("path"), row.get("value")
        if _blank(path) and _blank(raw):
            continue
        if _blank(path):
            raise InputError(f"{what} row {i}: choose a field path")
        path = str(path).strip()
        if not path.startswith("$"):
            path = f"$.{path}"
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and raw == ""):
            raise InputError(f"{what} {path}: no value (type null for JSON null)")
        out.append((path, parse_cell_value(raw.strip() if isinstance(raw, str) else raw)))
    return out


def build_prompt(text: str = "", *, sampling: Mapping[str, Any] | None = None,
                 pins: Iterable[Mapping[str, Any]] = (), forbids: Iterable[Mapping[str, Any]] = ()) -> Prompt:
    """A Prompt from the page's settings: instruction text, sampling settings and pin/forbid rows."""
    try:
        s = Sampling(**dict(sampling or {}))
    except TypeError as e:
        raise InputError(f"bad sampling settings: {e}") from None
    s.check()
    prompt = Prompt(text=text or "", sampling=s)
    for path, value in parse_path_values(pins, "pin"):
        if path in prompt.pins and prompt.pins[path] != value:
            raise InputError(f"pin {path}: pinned twice to different values")
        prompt.pins[path] = value
    for path, value in parse_path_values(forbids, "forbid"):
        prompt.forbid.setdefault(path, []).append(value)
    return prompt


def edit_prompt(base: Prompt, text: str, *, sampling: Mapping[str, Any], pins: Iterable[Mapping[str, Any]],
                forbids: Iterable[Mapping[str, Any]]) -> Prompt:
    """A human edit of ``base``: new text, sampling, pins and forbids; its ranges and biases (set
    by the optimizer, not shown in the editor) are kept."""
    from aod_core.agents.compiler import strip_compiled

    base = strip_compiled(base)  # compiled edits come back through prompt_with_compiled
    merged = {**base.sampling.__dict__, **dict(sampling)}
    prompt = build_prompt(text, sampling=merged, pins=pins, forbids=forbids)
    prompt.ranges, prompt.bias = dict(base.ranges), dict(base.bias)
    return prompt


def path_value_rows(mapping: Mapping[str, Any], *, many: bool = False) -> list[dict[str, str]]:
    """Pins (path -> value) or forbids (path -> [values]) as editor rows with JSON-text values."""
    rows = []
    for path, value in mapping.items():
        for v in (value if many else [value]):
            rows.append({"path": path, "value": json.dumps(v, ensure_ascii=False)})
    return rows


# ---- instruction text -> compiled scaffold edits ----------------------------------------------

#: The compiled-edit table's columns (Sample page, Run page editor), in order.
COMPILED_COLUMNS = ["op", "path", "value", "lo", "hi", "amount", "share", "phrase", "by"]
COMPILED_OPS = ("pin", "forbid", "range", "bias", "temperature")


def compile_instruction(dataset: Dataset, text: str, *, chat: Any = None, scaffold: Scaffold | None = None) -> dict[str, Any]:
    """The instruction compiler's output for ``text`` on this dataset (``Prompt.compiled`` form):
    edits, unmapped phrases; ``chat`` (a ChatModel or None) is asked about what the rules leave."""
    from aod_core.agents.compiler import compiler_for

    if not (text or "").strip():
        return {}
    compiler = compiler_for(scaffold, dataset.schema.resolved, dataset.seeds.records, chat)
    return compiler.compile(text).to_dict()


def content_hash(value: Any) -> str:
    """A short stable hash of a JSON value (keys page widgets by what they show)."""
    import hashlib

    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:10]


def structure_keys(dataset: Dataset) -> list[str]:
    """Array-length and optional-key paths a compiled edit may name (``$.birds.length``, ``$.note?``)."""
    sc = Scaffold.build(dataset.schema.resolved, dataset.seeds.records)
    return list(dict.fromkeys(s.key for s in sc.slots if s.role in ("count", "present")))


def compiled_result_rows(compiled: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The compiled edits a batch was sampled with: what each does, why, measured share, author."""
    from aod_core.agents.resolver import Edit

    return [{"edit": Edit.from_dict(e).describe(), "from the words": e.get("phrase", ""), "why": e.get("why", ""),
             "by": e.get("author", "compiler")} for e in compiled.get("edits") or []]


def compiled_rows(compiled: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The compiled edits as editable table rows (values as JSON text)."""
    rows = []
    for e in (compiled or {}).get("edits") or []:
        rows.append({"op": e.get("op"), "path": e.get("path", ""),
                     "value": "" if e.get("op") in ("range", "temperature") else json.dumps(e.get("value"), ensure_ascii=False),
                     "lo": e.get("lo"), "hi": e.get("hi"), "amount": e.get("amount"), "share": e.get("share"),
                     "phrase": e.get("phrase", ""), "by": e.get("author", "compiler")})
    return rows


def compiled_messages(compiled: Mapping[str, Any] | None) -> list[str]:
    """One warning line per phrase the compiler could not map and per edit the generator refused."""
    from aod_core.agents.compiler import CompiledInstruction

    c = CompiledInstruction.from_dict(dict(compiled or {}))
    return c.messages() if c else []


def compiled_from_rows(compiled: Mapping[str, Any] | None, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``compiled`` with its edits replaced by the (possibly hand-edited) table rows: a row equal to
    a compiled edit keeps it (author compiler); a changed or added row is authored by a human."""
    from aod_core.agents.resolver import Edit

    base = dict(compiled or {})
    old = {json.dumps(r, sort_keys=True, default=str): e for r, e in zip(compiled_rows(base), base.get("edits") or [])}
    edits = []
    for i, row in enumerate(rows, 1):
        row = {k: (None if _blank(v) else v) for k, v in dict(row).items()}
        if all(row.get(k) is None for k in COMPILED_COLUMNS if k not in ("by",)):
            continue
        key = json.dumps({k: row.get(k) for k in COMPILED_COLUMNS}, sort_keys=True, default=str)
        if key in old:
            edits.append(old[key])
            continue
        op = str(row.get("op") or "").strip()
        if op not in COMPILED_OPS:
            raise InputError(f"compiled edit row {i}: op must be one of {', '.join(COMPILED_OPS)}, got {op!r}")
        path = str(row.get("path") or "").strip()
        if op != "temperature" and not path:
            raise InputError(f"compiled edit row {i}: choose a field path")
        if path and not path.startswith("$"):
            path = f"$.{path}"
        e = Edit(op, path, phrase=str(row.get("phrase") or ""), author="human", source="human", why="edited by hand")
        try:
            if op in ("pin", "forbid", "bias"):
                if row.get("value") is None:
                    raise InputError(f"compiled edit row {i}: {op} {path} needs a value (type null for JSON null)")
                e.value = parse_cell_value(str(row["value"]).strip()) if isinstance(row["value"], str) else row["value"]
            if op == "range":
                e.lo, e.hi = float(row["lo"]), float(row["hi"])
                if e.lo > e.hi:
                    raise InputError(f"compiled edit row {i}: range [{e.lo}, {e.hi}] is empty")
            if op in ("bias", "temperature"):
                e.amount = float(row["amount"])
            if op == "bias" and row.get("share") is not None:
                e.share, e.direction = float(row["share"]), 1
        except (TypeError, ValueError, KeyError):
            raise InputError(f"compiled edit row {i}: {op} needs numbers in " +
                             {"range": "lo and hi", "bias": "amount", "temperature": "amount"}.get(op, "its columns")) from None
        edits.append(e.to_dict())
    base["edits"] = edits
    return base


def prompt_with_compiled(prompt: Prompt, compiled: Mapping[str, Any] | None, check: Callable[[Prompt], None] | None = None) -> Prompt:
    """``prompt`` with ``compiled``'s edits applied (the old compiled edits removed first); edits the
    generator refuses (``check``) are listed in the result's ``compiled["refused"]``."""
    from aod_core.agents.compiler import CompiledInstruction, strip_compiled, with_compiled

    c = CompiledInstruction.from_dict(dict(compiled or {}))
    if c is None:
        return strip_compiled(prompt)
    c.refused = []
    return with_compiled(prompt, c, check=check)


def check_prompt(gen: Generator, prompt: Prompt) -> None:
    """Raise InputError now (before any fitting) when the prompt's edits do not fit the generator."""
    gen.check_prompt(prompt)


# ---- generator --------------------------------------------------------------------------------


def generator_inputs(dataset: Dataset) -> tuple[str, str]:
    """(schema JSON text, seeds JSON text): hashable content that identifies a generator's inputs.

    Key order is kept, not sorted: property order is the scaffold's field order (and the raw-text
    ablation learns the seeds' text as written).
    """
    return (json.dumps(dataset.schema.raw, ensure_ascii=False),
            json.dumps(dataset.seeds.records, ensure_ascii=False))


def build_generator(schema_text: str, seeds_text: str, *, scaffold: bool = True,
                    train_steps: int | None = None, cache_dir: str | None = None,
                    string_modes: Mapping[str, str] | None = None) -> Generator:
    """The embedded generator (not fitted) for the texts :func:`generator_inputs` returns."""
    schema = parse_schema(json.loads(schema_text), "<schema>")
    seeds = json.loads(seeds_text)
    cfg = EmbeddedConfig(string_modes=dict(string_modes or {}))
    if train_steps is not None:
        if train_steps < 1:
            raise InputError(f"training steps must be >= 1, got {train_steps}")
        cfg.train_steps = int(train_steps)
    return load_generator("embedded", schema, seeds, scaffold=scaffold, config=cfg, cache_dir=cache_dir)


def default_train_steps(spec: str = "embedded") -> int:
    """The generator kind's own default number of training steps (embedded, or difflm's VAE)."""
    if is_difflm(spec):
        from aod_core.generators.difflm.generator import DiffLMConfig

        return DiffLMConfig().train_steps
    return EmbeddedConfig().train_steps


def is_difflm(spec: str | None) -> bool:
    """Whether a generator spec names DiffLM (``difflm`` or ``difflm:<causal LM>``)."""
    spec = (spec or "").strip()
    return spec == "difflm" or spec.startswith("difflm:")


def generator_kind(spec: str | None) -> str:
    """What the Sample page shows for a Models-page generator spec: embedded, difflm or hf (a
    pretrained DLM); anything else (``ar:``) is sampled as the embedded DLM there."""
    spec = (spec or "").strip()
    if is_difflm(spec):
        return "difflm"
    return "hf" if spec.startswith("hf:") else "embedded"


def build_spec_generator(schema_text: str, seeds_text: str, *, spec: str = "difflm", options: str = "",
                         train_steps: int | None = None, cache_dir: str | None = None) -> Generator:
    """The generator a spec names (not fitted) for the texts :func:`generator_inputs` returns;
    ``options`` is the Models page's "Generator options" text (KEY=VALUE, comma-separated) and
    ``train_steps`` applies to generators that train (DiffLM)."""
    from aod_core.generators import parse_options

    opts = parse_options(options or "")
    if train_steps is not None and is_difflm(spec):
        if train_steps < 1:
            raise InputError(f"training steps must be >= 1, got {train_steps}")
        opts["train_steps"] = int(train_steps)
    schema = parse_schema(json.loads(schema_text), "<schema>")
    return load_generator(spec, schema, json.loads(seeds_text), options=opts, cache_dir=cache_dir)


def latent_figure(gen: Generator, n: int, seed: int) -> tuple[Any, str]:
    """DiffLM's latent space for the Sample page: (plotly figure, caption) of the seeds' latents and
    the ``n`` latents a ``sample(..., n, seed=seed)`` call decodes first."""
    from aod_core.runs.charts import latent_projection

    view = gen.latent_view(n, seed)  # type: ignore[attr-defined]
    return latent_projection(view.seeds, view.sampled, seed_records=view.seed_records)


def model_cache_dir() -> str:
    """Where fitted embedded models are cached (``AOD_CACHE_DIR`` or ~/.cache/aod-studio)."""
    return str(default_cache_dir())


def fit_progress(p: Progress) -> tuple[float, str]:
    """(fraction in [0, 1], label) for a progress bar while fitting."""
    frac = min(1.0, p.done / p.total) if p.total else 1.0
    if p.info.get("cached"):
        return 1.0, "Model loaded from cache"
    if p.stage == "load":
        return frac, "Loading the generator model"
    loss = p.info.get("loss")
    extra = f" · loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
    part = f" ({p.info['stage']})" if p.info.get("stage") else ""  # e.g. difflm's VAE, then latent diffusion
    return frac, f"Fitting{part}: step {p.done}/{p.total}{extra}"


class SampleProgress:
    """Turns the sampler's per-step reports into one fraction over all of a request's batches."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.batches = max(1, math.ceil(n / max(1, batch_size)))
        self.batch = -1

    def __call__(self, s: StepInfo) -> tuple[float, str]:
        if s.step == 1 or self.batch < 0:
            self.batch += 1
        batch = min(self.batch, self.batches - 1)
        within = (s.total - s.masked) / s.total if s.total else 1.0
        frac = min(1.0, (batch + within) / self.batches)
        part = f" · batch {batch + 1}/{self.batches}" if self.batches > 1 else ""
        return frac, f"Sampling: step {s.step}{part}"


@dataclass
class SampleResult:
    """One "fit & sample" request and what it produced."""

    candidates: list[Candidate]
    prompt: Prompt
    n: int
    seed: int
    scaffold: bool
    fit_report: dict[str, Any]
    fit_seconds: float
    sample_seconds: float
    dataset_label: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    summary: SampleSummary | None = None  # filled by sample_summary() once, kept for reruns
    latent: tuple[Any, str] | None = None  # DiffLM only: latent_figure() of this request, kept for reruns


def fit_and_sample(gen: Generator, prompt: Prompt, n: int, *, seed: int = 0,
                   on_fit: Callable[[float, str], None] | None = None,
                   on_step: Callable[[float, str], None] | None = None) -> SampleResult:
    """Fit (or load) the model, then draw ``n`` candidates; progress goes to ``on_fit``/``on_step``
    as (fraction, label). Prompt problems are reported before the model is fitted."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"number of records must be >= 1, got {n}")
    check_prompt(gen, prompt)
    t0 = time.perf_counter()
    report = gen.fit(on_progress=(lambda p: on_fit(*fit_progress(p))) if on_fit else None)
    fit_seconds = time.perf_counter() - t0
    from aod_core.agents.compiler import calibrate, needs_calibration

    if needs_calibration(prompt, getattr(gen, "spec", "")):  # "mostly X": measure the bias on samples
        if on_step:
            on_step(0.0, "Measuring the compiled shares on samples")
        prompt = calibrate(prompt, lambda q, k, s: gen.sample(q, k, seed=s), spec=getattr(gen, "spec", ""), seed=seed)
    tracker = SampleProgress(n, getattr(getattr(gen, "config", None), "sample_batch", n))
    t1 = time.perf_counter()
    cands = gen.sample(prompt, n, seed=seed, on_step=(lambda s: on_step(*tracker(s))) if on_step else None)
    sample_seconds = time.perf_counter() - t1
    return SampleResult(candidates=cands, prompt=prompt, n=n, seed=seed,
                        scaffold=getattr(gen, "scaffold", None) is not None, fit_report=dict(report or {}),
                        fit_seconds=fit_seconds, sample_seconds=sample_seconds)


# ---- results ----------------------------------------------------------------------------------


@dataclass
class SampleSummary:
    rows: list[dict[str, Any]]  # one per candidate
    batch: dict[str, float | int]  # metrics.batch_summary


def sample_summary(candidates: Sequence[Candidate], schema: LoadedSchema, seeds: Sequence[Any]) -> SampleSummary:
    """Each candidate with its JSON text and exact checks, plus the batch figures.

    ``error`` is why a candidate failed: the decode/parse error, or its first schema error as
    ``path: message``. ``seed_copy`` and ``duplicate`` use :mod:`aod_core.eval.metrics` (canonical JSON);
    the first occurrence of a repeated record is not a duplicate.
    """
    parsed = [c for c in candidates if c.parsed]
    copies = iter(exact_copies((c.record for c in parsed), seeds))
    dupes = iter(duplicates(c.record for c in parsed))
    rows = []
    for i, c in enumerate(candidates, 1):
        errors = schema.validate(c.record) if c.parsed else []
        if c.parsed:
            copy, dup = next(copies), next(dupes)
        else:
            copy = dup = False
        if not c.parsed:
            error = c.error or "not parsed"
        elif errors:
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            error = f"{errors[0][0]}: {errors[0][1]}{more}"
        else:
            error = ""
        rows.append({
            "#": i,
            "json": c.text if c.text is not None else "",
            "parsed": c.parsed,
            "schema_valid": c.parsed and not errors,
            "seed_copy": copy,
            "duplicate": dup,
            "error": error,
        })
    return SampleSummary(rows, batch_summary(candidates, schema, seeds))


def records_jsonl(candidates: Iterable[Candidate], *, only_valid_for: LoadedSchema | None = None) -> str:
    """Parsed records, one JSON object per line (only schema-valid ones when a schema is given)."""
    lines = []
    for c in candidates:
        if not c.parsed or (only_valid_for is not None and not only_valid_for.is_valid(c.record)):
            continue
        lines.append(json.dumps(c.record, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


# ---- the judge's calibration on the seeds (Design page) -------------------------------------------


@dataclass
class JudgeCalibration:
    summary: dict[str, Any]  # the plausibility model's report (held-out accept rate, threshold, rules...)
    rules: list[dict[str, Any]]  # one row per evidence rule
    holdout_accept_rate: float | None  # share of the dataset's real holdout records accepted, when it has one
    holdout_rejections: list[dict[str, Any]]  # the holdout records it rejects, with why (a few)


def judge_calibration(dataset: Dataset, *, accept_share: float = 0.9,
                      on_progress: Callable[[int, int], None] | None = None) -> JudgeCalibration:
    """Fit (or read from the cache) the plausibility judge on the dataset's seeds and report how it
    calibrated; with a holdout file, also how many of those real records it accepts."""
    from aod_core.agents.plausibility import PlausibilitySettings, fit_cached

    model = fit_cached(dataset.seeds.records, PlausibilitySettings(accept_share=accept_share), on_progress=on_progress)
    hold = dataset.holdout.records if dataset.holdout else []
    rate, rejected = None, []
    if hold:
        got = model.assess(hold)
        rate = sum(a.accept for a in got) / len(got)
        for r, a in zip(hold, got):
            if not a.accept and len(rejected) < 10:
                rejected.append({"record": json.dumps(r, ensure_ascii=False), "score": round(a.score, 3),
                                 "why": "; ".join(a.reasons(2))})
    return JudgeCalibration(model.describe(), model.rule_rows(), rate, rejected)
