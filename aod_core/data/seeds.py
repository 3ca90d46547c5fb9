"""Reading seed/holdout records (JSONL, JSON array, CSV) and checking them against the schema.

Every record keeps its source line so a problem can be reported as ``file:line: $.path: message``.
CSV cells are coerced to the schema's top-level property types; a cell that cannot be coerced is
kept as text so the validator, not the reader, reports it (with its line and path).
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from aod_core.data.limits import (
    UnreadableValue,
    check_cell,
    check_file_size,
    max_cell_bytes,
    max_cell_mb,
    not_utf8,
    strict_loads,
)
from aod_core.data.schema import LoadedSchema, json_type, load_schema, loads_json
from aod_core.errors import InputError
from aod_core.records import Candidate

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\Z")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
_SEED_FILES = ("seeds.jsonl", "seeds.json", "seeds.csv")


@dataclass(frozen=True)
class RecordIssue:
    source: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}:{self.line}: {self.path}: {self.message}"


@dataclass
class RecordSet:
    records: list[dict]
    lines: list[int]
    source: str
    issues: list[RecordIssue] = field(default_factory=list)
    dropped: int = 0


@dataclass
class Dataset:
    folder: str
    schema: LoadedSchema
    seeds: RecordSet
    holdout: RecordSet | None


def read_records(path: str | os.PathLike, schema: LoadedSchema) -> tuple[list[dict], list[int]]:
    """Records and their source lines; raises InputError for anything that is not a list of objects."""
    source = os.fspath(path)
    ext = os.path.splitext(source)[1].lower()
    if ext not in (".jsonl", ".ndjson", ".json", ".csv"):
        raise InputError(
            f"unsupported records file type {ext or '(none)'!r} (use .jsonl, .ndjson, .json or .csv)", where=source
        )
    check_file_size(source)
    try:
        with open(source, encoding="utf-8-sig", newline="") as f:
            if ext == ".csv":
                records, lines = _read_csv(f, schema, source)
            else:
                text = f.read()
                records, lines = _read_json(text, source) if ext == ".json" else _read_jsonl(text, source)
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", where=source) from e
    except UnicodeDecodeError:
        raise InputError(not_utf8(source), where=source) from None
    if not records:
        raise InputError("no records", where=source)
    return records, lines


def _read_jsonl(text: str, source: str) -> tuple[list[dict], list[int]]:
    records, lines = [], []
    # split("\n"), not splitlines(): JSON strings may hold a raw U+2028, which is not a line end.
    for n, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        check_cell(len(line), f"line {n}", source)
        try:
            rec = strict_loads(line)
        except UnreadableValue as e:  # valid JSON, but a value nothing downstream can hold
            raise InputError(str(e), where=f"{source}:{n}") from None
        except ValueError as e:
            raise InputError(f"line {n} is not valid JSON: {_json_problem(e)}", where=source) from e
        if not isinstance(rec, dict):
            raise InputError(f"line {n} is {json_type(rec)}, not a JSON object", where=source)
        records.append(rec)
        lines.append(n)
    return records, lines


def _json_problem(e: ValueError) -> str:
    return f"{e.msg} at column {e.colno}" if isinstance(e, json.JSONDecodeError) else str(e)


def read_candidates(path: str | os.PathLike, schema: LoadedSchema) -> list[Candidate]:
    """Records to judge or audit, in file order, read with the seeds' strict JSON reader.

    In a JSONL file each line is one record as produced, so a line the strict reader refuses (not
    JSON, NaN, a key twice, nested too deep, a number beyond a float, a lone surrogate) is a record
    that failed to parse, counted and judged as such rather than refused; a .json or .csv file is
    read whole (``read_records``). What stops the reading is refused: a missing, unreadable, non-UTF-8
    or oversized file, a line over the cell limit, no records.
    """
    source = os.fspath(path)
    ext = os.path.splitext(source)[1].lower()
    if not os.path.isfile(source):
        raise InputError("records file not found", where=source)
    if ext in (".json", ".csv"):
        records, _lines = read_records(source, schema)
        return [Candidate(text=json.dumps(r, ensure_ascii=False), record=r) for r in records]
    if ext not in (".jsonl", ".ndjson"):
        raise InputError(
            f"unsupported records file type {ext or '(none)'!r} (use .jsonl, .ndjson, .json or .csv)", where=source
        )
    check_file_size(source)
    try:
        with open(source, encoding="utf-8-sig", newline="") as f:  # -sig: a BOM is not part of line 1
            text = f.read()
    except OSError as e:
        raise InputError(f"cannot read file: {e.strerror or e}", where=source) from None
    except UnicodeDecodeError:
        raise InputError(not_utf8(source), where=source) from None
    cands = []
    for n, line in enumerate(text.split("\n"), 1):  # not splitlines(): see _read_jsonl
        if not line.strip():
            continue
        check_cell(len(line), f"line {n}", source)
        try:
            cands.append(Candidate(text=line, record=strict_loads(line)))
        except ValueError as e:
            cands.append(Candidate(text=line, error=f"not valid JSON: {_json_problem(e)}"))
    if not cands:
        raise InputError("no records", where=source)
    return cands


def _read_json(text: str, source: str) -> tuple[list[dict], list[int]]:
    if not text.strip():
        raise InputError("no records", where=source)
    data = loads_json(text, source)
    if not isinstance(data, list):
        raise InputError(f"expected an array of records, found {json_type(data)}", where=source)
    for i, rec in enumerate(data, 1):
        if not isinstance(rec, dict):
            raise InputError(f"item {i} is {json_type(rec)}, not a JSON object", where=source)
    return data, list(range(1, len(data) + 1))


def _read_csv(f: Any, schema: LoadedSchema, source: str) -> tuple[list[dict], list[int]]:
    # A cell over the limit stops the reader (csv.Error) instead of filling memory.
    csv.field_size_limit(max_cell_bytes())
    reader = csv.DictReader(f)
    try:
        return _read_csv_rows(reader, schema, source)
    except csv.Error as e:
        detail = str(e)
        if "field larger than field limit" in detail:
            detail = f"a cell is larger than the limit of {max_cell_mb():g} MB (set AOD_MAX_CELL_MB to change it)"
        raise InputError(f"line {reader.line_num} is not valid CSV: {detail}", where=source) from None


def _read_csv_rows(reader: Any, schema: LoadedSchema, source: str) -> tuple[list[dict], list[int]]:
    if reader.fieldnames is None:
        raise InputError("no records", where=source)
    columns = [c.strip() for c in reader.fieldnames]
    reader.fieldnames = columns
    props: dict = schema.resolved.get("properties", {})
    dupes = sorted({c for c in columns if columns.count(c) > 1})
    if dupes:
        raise InputError(f"duplicate columns: {', '.join(dupes)}", where=source)
    missing = [r for r in schema.resolved.get("required", []) if r not in columns]
    if missing:
        raise InputError(f"missing columns for required properties: {', '.join(missing)}", where=source)
    extra = [c or '""' for c in columns if c not in props]
    if extra and schema.resolved.get("additionalProperties") is False:
        raise InputError(f"columns not in the schema (additionalProperties is false): {', '.join(extra)}", where=source)
    records, lines = [], []
    for row in reader:
        if None in row:
            raise InputError(f"line {reader.line_num} has more cells than the header has columns", where=source)
        rec: dict = {}
        for col, cell in row.items():
            if cell is None:  # short row: the cell is absent, not empty
                continue
            value = coerce_cell(cell, props.get(col))
            if value is not _OMIT:
                rec[col] = value
        records.append(rec)
        lines.append(reader.line_num)  # last physical line of the row (quoted cells may span lines)
    return records, lines


class _Omit:
    def __repr__(self) -> str:
        return "<omit>"


_OMIT: Any = _Omit()


def coerce_cell(cell: str, prop: object) -> Any:
    """Typed value of a CSV cell for property schema ``prop``; ``_OMIT`` when the key should be left out.

    An empty cell is null where null is allowed and otherwise absent, so ``required`` reports it
    rather than a confusing type error on "".
    """
    prop = prop if isinstance(prop, dict) else {}
    t = prop.get("type", [])
    types = [t] if isinstance(t, str) else list(t)
    members = list(prop.get("enum", [])) + ([prop["const"]] if "const" in prop else [])
    if cell == "":
        if "null" in types or (not types and None in members):
            return None
        return "" if "" in members else _OMIT
    for m in members:  # exact text first, so enum ["1", 1] keeps the string for "1"
        if isinstance(m, str) and m == cell:
            return m
    for m in members:
        if not isinstance(m, str) and cell.strip() in (str(m), json.dumps(m)):
            return m
    text = cell.strip()
    for kind in ("integer", "number", "boolean", "object", "array"):
        if kind not in types:
            continue
        if kind in ("integer", "number") and _NUMBER.match(text):
            x = float(text)
            if math.isfinite(x) and (x.is_integer() or kind == "number"):
                if x.is_integer() and "integer" in types:
                    return int(text) if re.fullmatch(r"[+-]?\d+", text) else int(x)
                return x
        elif kind == "boolean" and text.lower() in _BOOLEANS:
            return _BOOLEANS[text.lower()]
        elif kind in ("object", "array"):
            try:
                value = json.loads(text, parse_constant=_no_constant)
            except ValueError:
                continue
            if isinstance(value, dict if kind == "object" else list):
                return value
    return cell


def check_records(records: list[dict], lines: list[int], schema: LoadedSchema, source: str) -> list[RecordIssue]:
    return [
        RecordIssue(source, line, path, message)
        for rec, line in zip(records, lines)
        for path, message in schema.validate(rec)
    ]


def load_records(
    path: str | os.PathLike, schema: LoadedSchema, *, on_invalid: Literal["stop", "drop"] = "stop", what: str = "seeds"
) -> RecordSet:
    """Read and validate records; ``on_invalid`` says whether a bad record stops or is dropped."""
    source = os.fspath(path)
    records, lines = read_records(source, schema)
    issues = check_records(records, lines, schema, source)
    if not issues:
        return RecordSet(records, lines, source)
    bad_lines = {i.line for i in issues}
    if on_invalid == "stop":
        first, more = issues[0], len(issues) - 1
        suffix = ""
        if more:
            suffix = f" (and {more} more problem{'s' * (more > 1)} in {len(bad_lines)} record{'s' * (len(bad_lines) > 1)}; drop invalid records to continue)"
        raise InputError(f"{first.path}: {first.message}{suffix}", where=f"{source}:{first.line}")
    if on_invalid != "drop":
        raise ValueError(f"on_invalid must be 'stop' or 'drop', not {on_invalid!r}")
    kept = [(r, n) for r, n in zip(records, lines) if n not in bad_lines]
    if not kept:
        raise InputError(
            f"no valid {what} in {source} ({len(records)} invalid; first problem: {issues[0].line}: {issues[0].path}: {issues[0].message})"
        )
    return RecordSet([r for r, _ in kept], [n for _, n in kept], source, issues, dropped=len(records) - len(kept))


def load_dataset(folder: str | os.PathLike, *, on_invalid: Literal["stop", "drop"] = "stop") -> Dataset:
    """A dataset folder: schema.json, one seeds file (.jsonl > .json > .csv), optional holdout.jsonl."""
    root = os.fspath(folder)
    if not os.path.isdir(root):
        raise InputError("dataset folder not found", where=root)
    schema_path = os.path.join(root, "schema.json")
    seeds_path = next((p for p in (os.path.join(root, n) for n in _SEED_FILES) if os.path.isfile(p)), None)
    missing = ([] if os.path.isfile(schema_path) else ["schema.json"]) + (
        [] if seeds_path else ["a seeds file (seeds.jsonl, seeds.json or seeds.csv)"]
    )
    if missing:
        raise InputError(f"dataset folder is missing {' and '.join(missing)}", where=root)
    schema = load_schema(schema_path)
    seeds = load_records(seeds_path, schema, on_invalid=on_invalid, what="seeds")
    holdout_path = os.path.join(root, "holdout.jsonl")
    holdout = (
        load_records(holdout_path, schema, on_invalid=on_invalid, what="holdout records")
        if os.path.isfile(holdout_path)
        else None
    )
    return Dataset(root, schema, seeds, holdout)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
