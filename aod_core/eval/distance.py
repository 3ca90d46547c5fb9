"""The distance space of records, and what is measured in it: distance to closest record, k-NN support.

Privacy (how close a generated record comes to a real one: DCR) and coverage (k-NN precision /
recall) both need one distance between heterogeneous JSON records; it is defined here, over the
fields and kinds of ``fidelity.py``.

*Distance space.* Built from the seeds' fields (high-cardinality ones left out). Numeric field:
min-max scaled by the seed range, ``(x - min) / (max - min)`` (not clipped; a constant seed column
gives 0 for the constant and 1 for anything else); a pooled numeric field uses the mean of the
record's items; a missing value takes the scaled seed median, and a 0/1 "missing" coordinate is
added when any record of any set misses the field. Categorical field: one-hot over the seeds'
categories plus ``<other>`` (a value no seed has) and ``<absent>``, scaled by 1/sqrt(2) so that two
different categories are at distance 1 (pooled: each category's share of the record's items). With
F the number of seed fields, ``d(a, b) = ||phi(a) - phi(b)||_2 / sqrt(F)``: the root mean square of
per-field distances, in [0, 1] for values inside the seed ranges (out-of-range numbers and missing
coordinates can go above 1). Distances below 1e-6 are reported as 0 (round-off of exact copies).
DCR(x) = min over seeds d(x, s). Percentiles use numpy's linear interpolation.

*k-NN precision / recall* (Kynkäänniemi et al., 2019): the support-based estimate that stands in for
α-precision / β-recall (Alaa et al., 2022) with α = β = 1 — no learned embedding, no α sweep.
Each reference point's ball has the radius of its k-th nearest other reference point (k = 3);
precision = share of generated records inside at least one reference ball; recall = the same with
the roles swapped (balls around generated records, radii among generated records). ``None`` when a
side has k or fewer points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from aod_core.eval.fidelity import Columns, FieldSets
from aod_core.records import Candidate

KNN_K = 3
_ZERO = 1e-12  # squared distances below this are round-off: 0


class FeatureSpace:
    """Records -> vectors whose scaled L2 distance is the DCR distance (see the module docstring).
    Fitted on the seeds' fields; ``kinds`` is the field-kind map shared with the fidelity metrics."""

    OTHER, ABSENT = "<other>", "<absent>"

    def __init__(
        self, seeds: Columns, kinds: dict[str, str], others: Sequence[Columns], exclude: set[str] = frozenset()
    ):
        self.fields: list[tuple[str, str, Any]] = []
        for p in seeds.vals:
            if p in exclude:
                continue
            x, own, _, _ = seeds.numeric(p) if kinds[p] == "numeric" else (np.zeros(0), None, 0, 0)
            if len(x):
                per = self._per_record(x, own, seeds.n)
                lo, hi = float(x.min()), float(x.max())
                med = float(np.nanmedian(per)) if np.isfinite(per).any() else lo
                missing = any(
                    not np.isfinite(self._per_record(*s.numeric(p)[:2], s.n)).all() for s in (seeds, *others) if s.n
                )
                self.fields.append((p, "numeric", (lo, hi, self._scale(np.array([med]), lo, hi)[0], missing)))
            else:
                vocab = list(dict.fromkeys(seeds.keys(p)))
                self.fields.append((p, "categorical", {k: i for i, k in enumerate(vocab)}))
        self.n_fields = len(self.fields)

    @staticmethod
    def _per_record(x: np.ndarray, own: np.ndarray, n: int) -> np.ndarray:
        """Mean of each record's values (NaN when it has none)."""
        cnt = np.bincount(own, minlength=n).astype(float)
        tot = np.bincount(own, weights=x, minlength=n)
        return np.divide(tot, cnt, out=np.full(n, np.nan), where=cnt > 0)

    @staticmethod
    def _scale(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        if hi > lo:
            return (v - lo) / (hi - lo)
        return np.where(v == lo, 0.0, 1.0)

    def transform(self, cols: Columns) -> np.ndarray:
        n = cols.n
        blocks = []
        for p, kind, info in self.fields:
            if kind == "numeric":
                lo, hi, med, missing = info
                if p in cols.vals:
                    per = self._per_record(*cols.numeric(p)[:2], n)
                else:
                    per = np.full(n, np.nan)
                miss = ~np.isfinite(per)
                s = self._scale(np.where(miss, lo, per), lo, hi)
                s[miss] = med
                blocks.append(s[:, None])
                if missing:
                    blocks.append(miss.astype(float)[:, None])
            else:
                vocab = info
                other, absent = len(vocab), len(vocab) + 1
                mat = np.zeros((n, len(vocab) + 2))
                if p in cols.vals:
                    codes = np.fromiter((vocab.get(k, other) for k in cols.keys(p)), dtype=np.int64)
                    own = cols.owners[p]
                    np.add.at(mat, (own, codes), 1.0)
                    cnt = np.bincount(own, minlength=n).astype(float)
                    mat /= np.where(cnt > 0, cnt, 1.0)[:, None]
                    mat[cnt == 0, absent] = 1.0
                else:
                    mat[:, absent] = 1.0
                blocks.append(mat / math.sqrt(2.0))
        if not blocks:
            return np.zeros((n, 0))
        return np.hstack(blocks) / math.sqrt(max(self.n_fields, 1))


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    d[d < _ZERO] = 0.0
    return d


def _chunks(n: int, other: int, budget: int = 4_000_000):
    step = max(1, budget // max(other, 1))
    for i in range(0, n, step):
        yield slice(i, min(n, i + step))


def closest_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """For each row of ``a``: the distance to its closest row of ``b``."""
    out = np.empty(len(a))
    for sl in _chunks(len(a), len(b)):
        out[sl] = np.sqrt(_sqdist(a[sl], b).min(axis=1))
    return out


def knn_radii(x: np.ndarray, k: int = KNN_K) -> np.ndarray:
    """Distance of each row to its k-th nearest other row (requires more than k rows)."""
    out = np.empty(len(x))
    for sl in _chunks(len(x), len(x)):
        d = _sqdist(x[sl], x)
        d[np.arange(sl.stop - sl.start), np.arange(sl.start, sl.stop)] = np.inf
        out[sl] = np.sqrt(np.partition(d, k - 1, axis=1)[:, k - 1])
    return out


def covered(points: np.ndarray, centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """For each point: inside (<=) at least one ball (centre, radius)."""
    r2 = radii**2 * (1 + 1e-9) + _ZERO
    out = np.empty(len(points), dtype=bool)
    for sl in _chunks(len(points), len(centres)):
        out[sl] = (_sqdist(points[sl], centres) <= r2[None, :]).any(axis=1)
    return out


def dcr_distances(
    records: Sequence[Any], seeds: Sequence[Any], holdout: Sequence[Any] | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Every parsed record's distance to its closest seed, and every holdout record's (the real
    baseline), in the same distance space and with the same field kinds ``audit`` uses for
    ``dcr_median`` / ``dcr_p05`` — but whole arrays, never subsampled, for percentiles ``audit`` does
    not report. Empty arrays when there is nothing to compare."""
    recs = [c.record for c in map(Candidate.of, records) if c.parsed]
    seeds, hold = list(seeds), (list(holdout) if holdout is not None else None)
    f = FieldSets.of(recs, seeds, hold)
    space = FeatureSpace(f.seeds, f.kinds, f.others, f.high)
    if not recs or not seeds or not space.n_fields:
        return np.zeros(0), (np.zeros(0) if hold is not None else None)
    fs = space.transform(f.seeds)
    dcr = closest_distances(space.transform(f.records), fs)
    hd = closest_distances(space.transform(f.holdout), fs) if f.holdout is not None and f.holdout.n else None
    return dcr, hd
