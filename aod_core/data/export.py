"""Exporting accepted records: JSONL (as generated), CSV and Parquet (flattened by leaf path).

CSV cells that a spreadsheet would run as a formula (text starting with = + - @, or a tab or
carriage return) are prefixed with a single quote, header cells (schema keys) as well; numbers are
left as numbers. Arrays inside a
record become one JSON-text column, so nothing is lost in the flat formats.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from aod_core.errors import InputError
from aod_core.files import atomic_write_bytes
from aod_core.records import render_path, walk

FORMATS = ("jsonl", "csv", "parquet")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text that starts like a spreadsheet formula, made inert."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _leaf_columns(record: dict) -> dict[str, Any]:
    """Leaf path (``a.b``) -> value of one record, arrays kept whole (``records.walk`` not entering
    them), empty objects left out; the top level's own values come first, then the nested objects'
    leaves (the column order ``pandas.json_normalize`` gave)."""
    top: dict[str, Any] = {}
    nested: dict[str, Any] = {}
    for path, v in walk(record, arrays=False):
        if not isinstance(v, dict):
            (top if len(path) == 1 else nested)[render_path(path, root="")] = v
    return {**top, **nested}


def flatten(records: Sequence[dict]) -> pd.DataFrame:
    """One column per leaf path of nested objects (``birds`` arrays as JSON text)."""
    rows = []
    for r in records:
        # read back from a one-row frame, as before: a record whose leaves are all numbers, one a
        # float, has its integers as floats there (so files keep the types they always had)
        flat = pd.DataFrame([_leaf_columns(r)]).iloc[0].to_dict() if r else {}
        rows.append(
            {k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in flat.items()}
        )
    df = pd.DataFrame(rows)
    for col in df.columns:  # a column mixing kinds (1 and "x", true and 2) is kept as JSON text
        kinds = {type(v) for v in df[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            df[col] = [
                None
                if v is None or (isinstance(v, float) and math.isnan(v))
                else v
                if isinstance(v, str)
                else json.dumps(v)
                for v in df[col]
            ]
    return df


MIME_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def render(records: Sequence[dict], fmt: str) -> bytes:
    """``records`` as the bytes of a ``fmt`` file (what a download button or ``export_records`` writes)."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    df = flatten(records)
    if fmt == "csv":
        # the header row is cells too: a schema key like '=HYPERLINK(...)' runs as well as a value
        return df.map(neutralise).rename(columns=neutralise).to_csv(index=False).encode("utf-8")
    buf = io.BytesIO()
    try:
        df.to_parquet(buf, index=False)
    except (ValueError, TypeError, ImportError) as e:  # pyarrow's errors derive from these
        raise InputError(f"cannot write Parquet: {str(e).splitlines()[0]}") from None
    return buf.getvalue()


def export_records(records: Sequence[dict], fmt: str, out: str | os.PathLike) -> int:
    """Write ``records`` to ``out`` in ``fmt``; atomic. Returns the number written."""
    data = render(records, fmt)
    out = Path(out)
    if out.is_dir():
        raise InputError("is a folder; give a file path", where=str(out))
    if not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist", where=str(out))
    atomic_write_bytes(out, data)
    return len(records)
