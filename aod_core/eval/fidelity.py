"""Fidelity: how closely the generated records' fields follow the real ones, field by field and pair by pair.

The audit's statistical comparison of a batch with the seeds (or a holdout): records as columns of
leaf fields, each field's kind, the marginal distances (KS, TVD) and the pair gaps (Pearson,
contingency). Kept apart from the audit's bookkeeping so that each definition below has one home;
``distance.py`` reuses the columns and kinds for its distance space.

*Fields.* ``flatten`` maps a record to leaf paths (``records.walk`` spelled ``$.a.b``) with array
items pooled under ``path[*]`` (``$.birds[*].sex`` holds every bird's sex), and each array also gives
its length as a numeric field ``path[#]``. An empty object is a leaf (``{}``); an empty array
contributes only its length 0. A field is *pooled* when its path contains ``[*]`` (a record may hold
several values there); only non-pooled fields take part in pairwise statistics. A field's kind comes
from the seeds (from holdout, then records, when the seeds have no non-null value there): *numeric*
when every non-null value is a finite JSON number (booleans are not numbers), else *categorical*.
Categorical values are compared by canonical JSON, and ``null`` is a category of its own; numeric
fields ignore nulls, and a non-number in a numeric field counts as ``mismatched`` in ``per_field``
(left out of the statistics, "missing" in the distance space). An all-null field is categorical with
the single category ``null``. A categorical field is *high-cardinality* (ids, dates, free text) when
that same set holds more than max(20, half its values) distinct values there: its TVD is still in
``per_field``, but it is left out of ``tvd_mean``, the contingency gaps and the distance space
(one-hot over unique values says nothing but "different"), with a note.

*Marginals.* KS = ``scipy.stats.ks_2samp(...).statistic`` = sup |F_gen - F_ref| over all values of
the field; TVD = 1/2 sum_c |p_gen(c) - p_ref(c)| over the union of categories. ``None`` when either
side has no value. *Pairs.* Pearson correlations over records where both fields are present
(pairwise complete); a pair whose correlation is undefined on either side (constant column, fewer
than 2 common records) has gap ``None`` and is left out of the mean. Contingency gap = TVD of the
joint (a, b) distributions over records where both are present (TabSyn's ContingencyScore); mixed
numeric x categorical pairs are not scored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import ks_2samp

from aod_core.records import canonical_json, render_path, walk

HIGH_CARDINALITY_MIN = 20


def flatten(record: Any) -> dict[str, list[Any]]:
    """Leaf path -> values of one record (see the module docstring). Non-pooled paths hold exactly
    one value.

    >>> flatten({"a": 1, "b": [{"c": "x"}, {"c": "y"}]})
    {'$.a': [1], '$.b[#]': [2], '$.b[*].c': ['x', 'y']}
    """
    out: dict[str, list[Any]] = {}
    for path, v in walk(record, lengths=True):
        out.setdefault(render_path(path, items="*"), []).append(v)
    return out


def _is_num(v: Any) -> bool:
    if type(v) is int:
        return -1e300 < v < 1e300  # compared exactly: no float overflow for huge ints
    return type(v) is float and math.isfinite(v)


class Columns:
    """One set of records as columns: path -> (values, owning record index)."""

    def __init__(self, records: Sequence[Any]):
        self.n = len(records)
        vals: dict[str, list[Any]] = {}
        owners: dict[str, list[int]] = {}
        for i, r in enumerate(records):
            for path, vs in flatten(r).items():
                vals.setdefault(path, []).extend(vs)
                owners.setdefault(path, []).extend([i] * len(vs) if len(vs) > 1 else (i,))
        self.vals = vals
        self.owners = {p: np.asarray(o, dtype=np.int64) for p, o in owners.items()}
        self._num: dict[str, tuple[np.ndarray, np.ndarray, int, int]] = {}
        self._keys: dict[str, list[str]] = {}

    def numeric(self, path: str) -> tuple[np.ndarray, np.ndarray, int, int]:
        """(values, owners, nulls, mismatched) of a numeric field."""
        if path not in self._num:
            vs = self.vals.get(path, [])
            ok = np.fromiter((_is_num(v) for v in vs), dtype=bool, count=len(vs))
            x = np.fromiter((float(v) for v, k in zip(vs, ok) if k), dtype=float, count=int(ok.sum()))
            nulls = sum(v is None for v in vs)
            own = self.owners[path][ok] if vs else np.zeros(0, dtype=np.int64)
            self._num[path] = (x, own, nulls, len(vs) - int(ok.sum()) - nulls)
        return self._num[path]

    def keys(self, path: str) -> list[str]:
        """Canonical JSON of each value of a categorical field (``null`` included)."""
        if path not in self._keys:
            self._keys[path] = [canonical_json(v) for v in self.vals.get(path, [])]
        return self._keys[path]


def field_kinds(sets: Sequence[Columns]) -> dict[str, str]:
    """Field kind from the first set (seeds, holdout, records) with a non-null value there."""
    paths: dict[str, None] = {}
    for s in sets:
        paths.update(dict.fromkeys(s.vals))
    kinds = {}
    for p in paths:
        kind = "categorical"
        for s in sets:
            nn = [v for v in s.vals.get(p, ()) if v is not None]
            if nn:
                kind = "numeric" if all(_is_num(v) for v in nn) else "categorical"
                break
        kinds[p] = kind
    return kinds


def high_cardinality(sets: Sequence[Columns], kinds: dict[str, str]) -> set[str]:
    """Categorical fields with more than max(HIGH_CARDINALITY_MIN, half their values) distinct values
    in the first set (seeds, holdout, records) that has values there: ids, dates, free text."""
    out = set()
    for p, kind in kinds.items():
        if kind != "categorical":
            continue
        for s in sets:
            if s.vals.get(p):
                if len(set(s.keys(p))) > max(HIGH_CARDINALITY_MIN, len(s.vals[p]) / 2):
                    out.add(p)
                break
    return out


@dataclass
class FieldSets:
    """The generated records, the seeds and the holdout (when given) as columns, with the field
    kinds and the high-cardinality fields the three define together."""

    records: Columns
    seeds: Columns
    holdout: Columns | None
    kinds: dict[str, str]
    high: set[str]

    @classmethod
    def of(cls, records: Sequence[Any], seeds: Sequence[Any], holdout: Sequence[Any] | None) -> FieldSets:
        gc, sc = Columns(records), Columns(seeds)
        hc = Columns(holdout) if holdout is not None else None
        sets = [s for s in (sc, hc, gc) if s is not None]
        kinds = field_kinds(sets)
        return cls(gc, sc, hc, kinds, high_cardinality(sets, kinds))

    @property
    def others(self) -> list[Columns]:
        """The sets other than the seeds: records, then holdout."""
        return [s for s in (self.records, self.holdout) if s is not None]


def _codes(*lists: Sequence[str]) -> list[np.ndarray]:
    """Shared integer codes for several lists of category keys."""
    allk = pd.factorize(pd.Series([k for lst in lists for k in lst], dtype=object))[0]
    out, at = [], 0
    for lst in lists:
        out.append(allk[at : at + len(lst)].astype(np.int64))
        at += len(lst)
    return out


def _tvd_codes(a: np.ndarray, b: np.ndarray) -> float | None:
    """1/2 sum |p_a - p_b| of two samples of integer codes; None when either is empty."""
    if len(a) == 0 or len(b) == 0:
        return None
    u, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    w = np.concatenate([np.full(len(a), 1.0 / len(a)), np.full(len(b), -1.0 / len(b))])
    d = 0.5 * float(np.abs(np.bincount(inv.ravel(), weights=w, minlength=len(u))).sum())
    return _unit(d)


def _unit(x: float) -> float:
    """Clamp round-off into [0, 1]."""
    return 0.0 if x < 1e-12 else 1.0 if x > 1 else x


def tvd(a: Sequence[Any], b: Sequence[Any]) -> float | None:
    """Total variation distance between the empirical distributions of two samples of JSON values
    (compared by canonical JSON): 1/2 sum_c |p_a(c) - p_b(c)|. None when either is empty."""
    ca, cb = _codes([canonical_json(v) for v in a], [canonical_json(v) for v in b])
    return _tvd_codes(ca, cb)


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|; None when either is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():  # only the statistic is used, not the p-value
        warnings.simplefilter("ignore")
        return _unit(float(ks_2samp(a, b, method="asymp").statistic))


def field_report(
    kinds: dict[str, str], high: set[str], records: Columns, refs: Sequence[tuple[str, Columns]]
) -> dict[str, dict[str, Any]]:
    """``per_field``: for every field its kind, counts (values, nulls, mismatched) per set, and its
    KS (numeric) or TVD (categorical) against each named reference set."""
    per_field: dict[str, dict[str, Any]] = {}
    for p, kind in kinds.items():
        entry: dict[str, Any] = {"kind": kind, "pooled": "[*]" in p}
        if kind == "numeric":
            gx, _, gnull, gbad = records.numeric(p)
            entry["n"] = {"records": len(gx)}
            entry["null"] = {"records": gnull}
            entry["mismatched"] = {"records": gbad}
            for name, ref in refs:
                rx, _, rnull, rbad = ref.numeric(p)
                entry["n"][name], entry["null"][name], entry["mismatched"][name] = len(rx), rnull, rbad
                entry[f"ks_{name}"] = ks_statistic(gx, rx) if len(gx) else None
        else:
            keys = [records.keys(p)] + [ref.keys(p) for _, ref in refs]
            codes = _codes(*keys)
            entry["n"] = {"records": len(keys[0])}
            entry["null"] = {"records": keys[0].count("null")}
            entry["high_cardinality"] = p in high
            for (name, _), k, c in zip(refs, keys[1:], codes[1:]):
                entry["n"][name], entry["null"][name] = len(k), k.count("null")
                entry[f"tvd_{name}"] = _tvd_codes(codes[0], c)
        per_field[p] = entry
    return per_field


def pearson_gaps(fields: Sequence[str], records: Columns, ref: Columns) -> dict[tuple[str, str], float | None]:
    """|Pearson_records - Pearson_ref| for every pair of the (non-pooled, numeric) ``fields``; None
    where a correlation is undefined."""
    gaps: dict[tuple[str, str], float | None] = {}
    if len(fields) < 2:
        return gaps
    cg, cr = (_frame(cols, fields).corr(method="pearson", min_periods=2).to_numpy() for cols in (records, ref))
    for i in range(len(fields)):
        for j in range(i + 1, len(fields)):
            a, b = cg[i, j], cr[i, j]
            gaps[fields[i], fields[j]] = float(abs(a - b)) if np.isfinite(a) and np.isfinite(b) else None
    return gaps


def contingency_gaps(fields: Sequence[str], records: Columns, ref: Columns) -> dict[tuple[str, str], float | None]:
    """TVD of the joint distributions of every pair of the (non-pooled, categorical) ``fields``."""
    gaps: dict[tuple[str, str], float | None] = {}
    if len(fields) < 2:
        return gaps
    coded = {p: _record_codes(p, records, ref) for p in fields}
    for i in range(len(fields)):
        for j in range(i + 1, len(fields)):
            (ga, ra, _), (gb, rb, kb) = coded[fields[i]], coded[fields[j]]
            mg, mr = (ga >= 0) & (gb >= 0), (ra >= 0) & (rb >= 0)
            gaps[fields[i], fields[j]] = _tvd_codes(ga[mg] * kb + gb[mg], ra[mr] * kb + rb[mr])
    return gaps


def _frame(cols: Columns, paths: Sequence[str]) -> pd.DataFrame:
    """Non-pooled numeric fields as a float frame (NaN where missing)."""
    data = {}
    for p in paths:
        col = np.full(cols.n, np.nan)
        if p in cols.vals:
            x, own, _, _ = cols.numeric(p)
            col[own] = x
        data[p] = col
    return pd.DataFrame(data, columns=list(paths))


def _record_codes(path: str, g: Columns, r: Columns) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-record category codes (-1 where absent) of a non-pooled categorical field in both sets,
    and the number of codes."""
    gk, rk = g.keys(path), r.keys(path)
    cg, cr = _codes(gk, rk)
    out = []
    for cols, c in ((g, cg), (r, cr)):
        a = np.full(cols.n, -1, dtype=np.int64)
        if path in cols.vals:
            a[cols.owners[path]] = c
        out.append(a)
    k = int(max(cg.max(initial=-1), cr.max(initial=-1))) + 1
    return out[0], out[1], max(k, 1)
