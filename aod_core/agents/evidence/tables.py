"""Records as tables of rows, and the kind of each column: what every evidence rule reads.

A record is split into *tables* of rows: the root object is one row of the table ``$`` (its scalar
leaves, nested objects flattened, plus ``path[#]``, the length of each array), and every array adds
one row per item to the table ``path[*]`` (an object item's scalar leaves, or a scalar item's value),
carrying its parent row's fields as context. So ``birds[*].body_mass_g`` is judged per bird, given
that bird's species and the group's island.

A column's kind comes from the seeds: ``number``; ``date`` (ISO dates or date-times, compared as
days, with the month as a derived category); ``category`` (booleans, nulls, and strings with few
distinct values: at most max(12, 40% of the values)); ``text`` (other strings). Integers with at most
12 distinct values are numbers that can also condition other fields (cylinders, year).

The helpers that word a finding (``show``, ``fmt``, ``label``) live here too, next to the column
names they read.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np

ABSENT = object()  # a key the row does not have (an optional property left out)
MAX_CONDITION_CATEGORIES = 30
SMALL_INT = 12
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if key.isidentifier() else f"{path}[{json.dumps(key)}]"


def record_tables(record: Any) -> dict[str, list[dict[str, Any]]]:
    """Rows of every table of one record (see the module docstring)."""
    out: dict[str, list[dict[str, Any]]] = {}

    def visit(value: Any, path: str, table: str, context: dict[str, Any]) -> None:
        own: dict[str, Any] = {}
        arrays: list[tuple[list, str]] = []

        def walk(v: Any, p: str) -> None:
            if isinstance(v, dict) and v:
                for k, x in v.items():
                    walk(x, _child(p, k))
            elif isinstance(v, list):
                own[f"{p}[#]"] = len(v)
                arrays.append((v, f"{p}[*]"))
            else:
                own[p] = "{}" if isinstance(v, dict) else v

        walk(value, path)
        row = {**context, **own}
        out.setdefault(table, []).append(row)
        for items, item_path in arrays:
            for item in items:
                if isinstance(item, (dict, list)):
                    visit(item, item_path, item_path, row)
                else:
                    out.setdefault(item_path, []).append({**row, item_path: item})

    visit(record, "$", "$", {})
    return out


def key_of(v: Any) -> str:
    """A value as a category: canonical JSON, ``<absent>`` for a missing key."""
    if v is ABSENT:
        return "<absent>"
    return json.dumps(v, sort_keys=True, ensure_ascii=False)


def show(v: Any, limit: int = 40) -> str:
    """A value as a reader sees it: strings bare (shortened), the rest as JSON."""
    if v is ABSENT:
        return "(absent)"
    if isinstance(v, str):
        return v if len(v) <= limit else v[: limit - 1] + "…"
    if isinstance(v, float):
        return fmt(v)
    return json.dumps(v, ensure_ascii=False)


def fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "—"
    if float(x).is_integer() and abs(x) < 1e15:
        return str(int(x))
    return f"{x:.4g}" if abs(x) >= 1 else f"{x:.3g}"


def label(col: str) -> str:
    """``$.birds[*].sex`` -> ``birds[*].sex``; ``$.birds[#]`` -> ``the number of birds``."""
    if col.endswith("[#]"):
        return f"the number of {col[2:-3] or 'items'}"
    for suffix, words_ in (("#len", "the length of "), ("#days", ""), ("#month", "the month of ")):
        if col.endswith(suffix):
            return words_ + label(col[: -len(suffix)])
    return col[2:] if col.startswith("$.") else col


def _as_days(v: Any) -> float:
    try:
        if isinstance(v, str) and _DATE.match(v):
            return float(date.fromisoformat(v).toordinal())
        if isinstance(v, str) and _DATETIME.match(v):
            d = datetime.fromisoformat(v.replace("Z", "+00:00"))
            return d.toordinal() + (d.hour * 3600 + d.minute * 60 + d.second) / 86400
    except ValueError:
        pass
    return math.nan


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))


class Columns:
    """One table's rows as columns; ``record`` maps each row to its record's index."""

    def __init__(self, rows: Sequence[dict[str, Any]], record: Sequence[int]):
        self.rows = list(rows)
        self.record = np.asarray(record, dtype=int)
        self.n = len(self.rows)
        self._num: dict[str, np.ndarray] = {}
        self._keys: dict[str, list[str]] = {}

    def values(self, col: str) -> list[Any]:
        return [r.get(col, ABSENT) for r in self.rows]

    def num(self, col: str) -> np.ndarray:
        """Numbers (dates as days, ``#len`` as string length); NaN where there is none."""
        if col not in self._num:
            if col.endswith("#days"):
                vals = [_as_days(v) for v in self.values(col[:-5])]
            elif col.endswith("#len"):
                vals = [float(len(v)) if isinstance(v, str) else math.nan for v in self.values(col[:-4])]
            else:
                vals = [float(v) if _is_num(v) else math.nan for v in self.values(col)]
            self._num[col] = np.asarray(vals, dtype=float)
        return self._num[col]

    def keys(self, col: str) -> list[str]:
        """Category keys; ``#month`` gives the month of a date column."""
        if col not in self._keys:
            if col.endswith("#month"):
                days = self.num(col[:-6] + "#days")
                self._keys[col] = [str(date.fromordinal(int(d)).month) if math.isfinite(d) else "<none>" for d in days]
            else:
                self._keys[col] = [key_of(v) for v in self.values(col)]
        return self._keys[col]

    def texts(self, col: str) -> list[str | None]:
        return [v if isinstance(v, str) else None for v in self.values(col)]

    def subset(self, mask: np.ndarray) -> Columns:
        idx = np.flatnonzero(mask)
        return Columns([self.rows[i] for i in idx], self.record[idx])


def build_tables(records: Sequence[Any]) -> dict[str, Columns]:
    rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    owner: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(records):
        for table, trows in record_tables(r).items():
            rows[table] += trows
            owner[table] += [i] * len(trows)
    return {t: Columns(rows[t], owner[t]) for t in rows}


def group_keys(cols: Columns, fields: Sequence[str]) -> list[str]:
    """One key per row for the combination of several category columns."""
    parts = [cols.keys(f) for f in fields]
    return ["\x1f".join(p) for p in zip(*parts)] if len(parts) > 1 else parts[0]


@dataclass
class ColumnInfo:
    name: str
    kind: str  # number | date | category | text
    own: bool  # belongs to this table (not context from a parent row)
    condition: bool = False  # usable as a category that other fields depend on
    distinct: int = 0


def column_kinds(cols: Columns, table: str) -> list[ColumnInfo]:
    names: list[str] = []
    for r in cols.rows:
        for k in r:
            if k not in names:
                names.append(k)
    out = []
    most = max(MAX_CONDITION_CATEGORIES, cols.n // 4)  # a category conditions numbers when its groups have rows
    for name in names:
        own = table == "$" or name.startswith(table)
        present = [v for v in cols.values(name) if v is not ABSENT and v is not None]
        distinct = len({key_of(v) for v in cols.values(name)})
        if present and all(_is_num(v) for v in present):
            small = all(float(v).is_integer() for v in present) and 2 <= len(set(present)) <= SMALL_INT
            out.append(ColumnInfo(name, "number", own, condition=small, distinct=distinct))
        elif (
            present
            and all(isinstance(v, str) for v in present)
            and all(_DATE.match(v) or _DATETIME.match(v) for v in present)
        ):
            out.append(ColumnInfo(name, "date", own, distinct=distinct))
            months = {v[5:7] for v in present}
            if len(months) > 1:
                out.append(ColumnInfo(name + "#month", "category", own, condition=True, distinct=len(months)))
        elif (
            present
            and all(isinstance(v, str) for v in present)
            and len(set(present)) > max(SMALL_INT, 0.4 * len(present))
        ):
            out.append(ColumnInfo(name, "text", own, distinct=distinct))
        else:
            out.append(ColumnInfo(name, "category", own, condition=2 <= distinct <= most, distinct=distinct))
    return out
