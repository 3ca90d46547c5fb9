"""Datasets for the app: a demo from ``assets/`` or uploaded files, checked against the schema,
with every seed problem listed and the bad seeds fixable by hand; plus the headline figures,
problem rows and preview rows the Design page shows about what was loaded.

Every failure caused by input is an ``InputError`` with a one-line message that names the
uploaded file (never the temporary copy the reader works on); :class:`SeedsInvalid` additionally
carries every seed problem so a page can list them all. Table helpers return ``list[dict]`` rows
(one dict per row, same keys in every row) that any table widget, pandas or the CLI can show.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from aod_core.data.demos import demo_datasets
from aod_core.data.limits import check_size
from aod_core.data.schema import LoadedSchema, loads_json, parse_schema
from aod_core.data.seeds import Dataset, RecordIssue, RecordSet, check_records, load_dataset, load_records, read_records
from aod_core.errors import InputError
from aod_core.studio.cells import blank
from aod_core.studio.fields import leaf_paths

OnInvalid = Literal["stop", "drop"]

SEED_EXTENSIONS = (".jsonl", ".ndjson", ".json", ".csv")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class SeedsInvalid(InputError):
    """Seeds (or holdout records) that fail the schema while ``on_invalid`` is "stop" (or all fail).

    ``issues`` holds every problem found, not just the first one the message names.
    """

    def __init__(
        self,
        message: str,
        *,
        issues: Sequence[RecordIssue],
        records: int,
        fixable: tuple[LoadedSchema, list[dict], list[int]] | None = None,
    ) -> None:
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


def load_uploaded(
    schema_bytes: bytes, schema_name: str, seeds_bytes: bytes, seeds_name: str, on_invalid: OnInvalid = "stop"
) -> Dataset:
    """A dataset from uploaded files: a JSON Schema and seeds as JSONL, a JSON array or CSV.

    Messages name the uploaded files, never the temporary copy the reader works on.
    """
    on_invalid = _check_on_invalid(on_invalid)
    schema_label = _display_name(schema_name, "schema")
    seeds_label = _display_name(seeds_name, "seeds")
    schema = parse_uploaded_schema(schema_bytes, schema_label)
    ext = os.path.splitext(seeds_label)[1].lower()
    if ext not in SEED_EXTENSIONS:
        raise InputError(
            f"unsupported seeds file type {ext or '(none)'!r} (use .jsonl, .json or .csv)", where=seeds_label
        )
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
                raise SeedsInvalid(
                    msg,
                    issues=[_relabel_issue(i, seeds_label) for i in issues],
                    records=len(records),
                    fixable=(schema, records, lines),
                ) from None
            raise InputError(msg) from None
    seeds = RecordSet(
        seeds.records, seeds.lines, seeds_label, [_relabel_issue(i, seeds_label) for i in seeds.issues], seeds.dropped
    )
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
    seeds = next(
        (p for p in (os.path.join(folder, n) for n in ("seeds.jsonl", "seeds.json", "seeds.csv")) if os.path.isfile(p)),
        None,
    )
    for path in (seeds, os.path.join(folder, "holdout.jsonl")):  # the order load_dataset reads them
        if path is None or not os.path.isfile(path):
            continue
        issues, records, lines = _read_checked(path, schema)
        if issues:
            fixable = (schema, records, lines) if path == seeds else None
            raise SeedsInvalid(str(error), issues=issues, records=len(records), fixable=fixable) from None


# ---- fixing bad seeds by hand -----------------------------------------------------------------


def seed_fix_rows(e: SeedsInvalid) -> list[dict[str, Any]]:
    """The seeds that fail the schema as editable rows: line, problems, the record as JSON text."""
    if e.fixable is None:
        return []
    _, records, lines = e.fixable
    problems: dict[int, list[str]] = {}
    for i in e.issues:
        problems.setdefault(i.line, []).append(f"{i.path}: {i.message}")
    return [
        {"line": line, "problems": "; ".join(problems[line]), "record": json.dumps(rec, ensure_ascii=False)}
        for rec, line in zip(records, lines)
        if line in problems
    ]


def apply_seed_fixes(e: SeedsInvalid, rows: Iterable[Mapping[str, Any]], label: str = "seeds") -> Dataset:
    """The dataset with the user's fixes applied: each row's ``record`` text replaces the seed on
    its ``line`` (an empty text drops that seed). SeedsInvalid again if any record still fails."""
    if e.fixable is None:
        raise InputError("these records cannot be fixed here; fix the file")
    schema, records, lines = e.fixable
    fixes = {int(r["line"]): ("" if blank(r.get("record")) else str(r["record"])) for r in rows}
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
        raise SeedsInvalid(
            f"{len({i.line for i in issues})} record(s) still fail the schema",
            issues=issues,
            records=len(out_records),
            fixable=(schema, out_records, out_lines),
        )
    if not out_records:
        raise InputError("no seed records left", where=label)
    dropped = len(records) - len(out_records)
    return Dataset(
        folder="",
        schema=schema,
        seeds=RecordSet(out_records, out_lines, f"{label} (fixed here)", dropped=dropped),
        holdout=None,
    )


# ---- what was loaded, as rows -----------------------------------------------------------------


def records_preview(records: Sequence[Any], limit: int = 100) -> list[dict[str, Any]]:
    """The first ``limit`` records as flat table rows: top-level keys as columns, nested values as JSON."""
    rows = []
    for rec in records[:limit]:
        if not isinstance(rec, dict):
            rows.append({"value": json.dumps(rec, ensure_ascii=False)})
            continue
        rows.append(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v for k, v in rec.items()}
        )
    return rows


def seed_issue_rows(issues: RecordSet | SeedsInvalid | Iterable[RecordIssue]) -> list[dict[str, Any]]:
    """One row (line, path, message) per validation problem, in file order."""
    if isinstance(issues, (RecordSet, SeedsInvalid)):
        issues = issues.issues
    return [{"line": i.line, "path": i.path, "message": i.message} for i in issues]
