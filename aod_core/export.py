"""Exporting accepted records: JSONL (as generated), CSV and Parquet (flattened by leaf path).

CSV cells that a spreadsheet would run as a formula (text starting with = + - @, or a tab or
carriage return) are prefixed with a single quote; numbers are left as numbers. Arrays inside a
record become one JSON-text column, so nothing is lost in the flat formats.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from .errors import InputError
from .files import atomic_write_text

FORMATS = ("jsonl", "csv", "parquet")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    """Text that starts like a spreadsheet formula, made inert."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def flatten(records: Sequence[dict]) -> pd.DataFrame:
    """One column per leaf path of nested objects (``birds`` arrays as JSON text)."""
    rows = []
    for r in records:
        flat = pd.json_normalize(r, sep=".").iloc[0].to_dict() if r else {}
        rows.append({k: json.dumps(v, ensure_ascii=False) if isinstance(v, (list, dict)) else v for k, v in flat.items()})
    return pd.DataFrame(rows)


def export_records(records: Sequence[dict], fmt: str, out: str | os.PathLike) -> int:
    """Write ``records`` to ``out`` in ``fmt``; atomic. Returns the number written."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
    out = Path(out)
    if out.is_dir():
        raise InputError("is a folder; give a file path", where=str(out))
    if not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist", where=str(out))
    if fmt == "jsonl":
        atomic_write_text(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        return len(records)
    df = flatten(records)
    if fmt == "csv":
        buf = io.StringIO()
        df.map(neutralise).to_csv(buf, index=False)
        atomic_write_text(out, buf.getvalue())
    else:
        tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
        try:
            df.to_parquet(tmp, index=False)
            os.replace(tmp, out)
        finally:
            tmp.unlink(missing_ok=True)
    return len(records)
