"""The steps an audit's metrics share, each computed once: ``AuditSteps``.

Many metrics read the same intermediate results (the parsed records, the fields and their kinds,
the distance space, the embeddings, the near-duplicate pairs); ``AuditSteps`` holds one audit's
inputs and computes each step when a metric first asks for it, keeping the notes and subsampling
reports in one order. The metrics themselves, and ``audit()``, are in ``audit.py``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np

from aod_core.data.dependencies import Dependencies, DependencySettings, detect, schema_order
from aod_core.data.schema import LoadedSchema, parse_schema
from aod_core.eval import metrics as M
from aod_core.eval.copying import NEAR_NUMBERS, ValueNearCopies
from aod_core.eval.distance import KNN_K, FeatureSpace, _sqdist, closest_distances, covered, knn_radii
from aod_core.eval.diversity import Embedder, embed
from aod_core.eval.fidelity import HIGH_CARDINALITY_MIN, FieldSets, field_report
from aod_core.eval.nearcopy import near_duplicates
from aod_core.records import Candidate

MAX_PAIRS = 10_000_000


def _accepted(v: Any) -> bool:
    if isinstance(v, str):
        return v == "accept"
    if hasattr(v, "accept"):
        return bool(v.accept)
    return bool(v)


class AuditSteps:
    """One audit's inputs and the steps its metrics share, each computed once, when a metric first
    needs it (``evaluate`` asks family by family, so the notes keep one order)."""

    def __init__(
        self,
        records: Sequence[Any],
        seeds: Sequence[Any],
        *,
        schema: LoadedSchema | dict | None,
        holdout: Sequence[Any] | None,
        verdicts: Sequence[Any] | None,
        seed: int,
        max_pairs: int | None,
        embedder: Embedder,
        dependencies: DependencySettings | None = None,
        near_numbers: float = NEAR_NUMBERS,
    ):
        self.notes: list[str] = []
        self.dependency_settings, self.near_numbers = dependencies, near_numbers
        self.subsampled: dict[str, dict[str, int]] = {}
        self.per_pair: dict[str, dict[str, Any]] = {}
        self.embedder_info: dict[str, Any] = {}
        self._grams: dict[int, list[tuple[str, ...]]] = {}
        self.cands = [Candidate.of(r) for r in records]
        self.recs = [c.record for c in self.cands if c.parsed]
        self.seeds = list(seeds)
        self.hold = list(holdout) if holdout is not None else None
        self.n = len(self.cands)
        self.schema, self.verdicts, self.embedder = schema, verdicts, embedder
        self.seed, self.max_pairs = seed, max_pairs
        self.sq_cap = (1 << 31) if max_pairs is None else max(KNN_K + 1, math.isqrt(max_pairs))
        if not self.recs:
            self.notes.append("no parsed records: diversity, distance and fidelity metrics are None")
        if not self.seeds:
            self.notes.append("no seed records: metrics against seeds are None (copy rates and field_overlap 0)")
        if self.hold is None:
            self.notes.append("no holdout: holdout metrics are None")

    def sample(self, step: str, items: Sequence[Any] | np.ndarray, k: int) -> Any:
        """At most ``k`` of ``items``: a seeded subsample (recorded and noted) when there are more."""
        if len(items) <= k:
            return items
        rng = np.random.default_rng([self.seed, zlib.crc32(step.encode())])
        idx = np.sort(rng.choice(len(items), size=max(1, k), replace=False))
        self.subsampled[step] = {"subsampled_from": len(items), "used": int(len(idx))}
        self.notes.append(
            f"{step}: subsampled {len(idx)} of {len(items)} (max_pairs={self.max_pairs}, seed={self.seed})"
        )
        return items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]

    def cap(self, other: int) -> int:
        """How many items may be paired with ``other`` items within ``max_pairs``."""
        return 1 << 62 if self.max_pairs is None else max(1, self.max_pairs // max(other, 1))

    @cached_property
    def outcomes(self) -> M.Outcomes:
        schema = self.schema
        if schema is not None and not isinstance(schema, LoadedSchema):
            schema = parse_schema(schema, "<audit schema>")
        if schema is None:
            self.notes.append("no schema: schema_valid_rate is None")
        accepted = None
        if self.verdicts is not None:
            if len(self.verdicts) != self.n:
                raise ValueError(f"verdicts: {len(self.verdicts)} given for {self.n} records")
            accepted = [_accepted(v) for v in self.verdicts]
            if schema is None:
                self.notes.append("task_success_rate counts parsed records as valid (no schema)")
        else:
            self.notes.append("no verdicts: task_success_rate is None")
        return M.Outcomes.check(self.cands, schema, self.seeds, accepted)

    @cached_property
    def near(self) -> tuple[list[bool], list[bool]]:
        """(near duplicate of an earlier record, near copy of a seed) per record: MinHash shingles
        (``nearcopy.py``), and for seeds also near copies by values (``copying.py``)."""
        dup, copy = near_duplicates(self.recs, self.seeds)
        if self.seeds and self.near_numbers >= 0:
            by_values = ValueNearCopies(self.seeds, self.deps, self.near_numbers)
            copy = [c or by_values.find(r) is not None for c, r in zip(copy, self.recs)]
        return dup, copy

    @cached_property
    def deps(self) -> Dependencies:
        """The seeds' dependencies and keys (``data/dependencies.py``)."""
        schema = self.schema.resolved if isinstance(self.schema, LoadedSchema) else self.schema
        return detect(self.seeds, self.dependency_settings, schema_order(schema) if schema else ())

    def violations(self, records: Sequence[Any]) -> int:
        return sum(bool(self.deps.violations(r)) for r in records)

    def key_reuse(self, records: Sequence[Any]) -> float | None:
        if not self.deps.keys or not records:
            return None
        have = self.deps.seed_keys(self.seeds)
        return float(np.mean([bool(self.deps.reused_keys(r, have)) for r in records]))

    @cached_property
    def dcr_reference(self) -> np.ndarray | None:
        """The real records' distances to the seeds: the holdout's, or without one each seed's to
        its closest other seed (out of fold)."""
        if self.dcr_holdout is not None:
            return self.dcr_holdout
        if self.vectors is None or len(self.vectors[1]) < 2:
            return None
        self.notes.append("no holdout: the DCR reference is each seed's distance to its closest other seed")
        fs = self.sample("dcr_reference", self.vectors[1], self.sq_cap)
        d = np.sqrt(np.maximum(_sqdist(fs, fs), 0.0))
        np.fill_diagonal(d, np.inf)
        return d.min(1)

    @cached_property
    def value_sequences(self) -> list[list[str]]:
        return M.value_sequences(self.recs)

    def grams(self, n: int) -> list[tuple[str, ...]]:
        """The value n-grams of ``M.distinct_n`` / ``M.ngram_entropy``, values serialised once."""
        if n not in self._grams:
            self._grams[n] = M.ngrams_of(self.value_sequences, n)
        return self._grams[n]

    @cached_property
    def embedding(self) -> Any:
        x, self.embedder_info = embed(
            self.recs, self.embedder, seed=self.seed, notes=self.notes, subsampled=self.subsampled
        )
        return x

    @cached_property
    def fields(self) -> FieldSets:
        f = FieldSets.of(self.recs, self.seeds, self.hold)
        if f.high:
            self.notes.append(
                f"high-cardinality categorical field(s) (more than max({HIGH_CARDINALITY_MIN}, half the "
                "values) distinct: ids, dates, free text) left out of tvd_mean, contingency gaps and the "
                f"distance space: {', '.join(sorted(f.high))}"
            )
        return f

    @cached_property
    def refs(self) -> dict[str, Any]:
        """The reference sets by name: seeds, and holdout when given."""
        f = self.fields
        return {"seeds": f.seeds, **({"holdout": f.holdout} if f.holdout is not None else {})}

    @cached_property
    def per_field(self) -> dict[str, dict[str, Any]]:
        f = self.fields
        out = field_report(f.kinds, f.high, f.records, list(self.refs.items()))
        if self.recs and self.seeds:
            extra = [p for p in f.records.vals if p not in f.seeds.vals]
            if extra:
                self.notes.append(
                    f"{len(extra)} field(s) in records but not in seeds (no fidelity vs seeds, "
                    f"ignored by DCR): {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}"
                )
        return out

    def compared(self, ref: str) -> Any:
        """The reference set named ``ref`` when there are records and reference records to compare."""
        cols = self.refs.get(ref)
        return cols if self.recs and cols is not None and cols.n else None

    def plain_fields(self, kind: str) -> list[str]:
        """Non-pooled fields of ``kind`` (categorical ones without the high-cardinality fields)."""
        f = self.fields
        return [p for p, k in f.kinds.items() if k == kind and "[*]" not in p and p not in f.high]

    @cached_property
    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """Records, seeds and holdout (None when absent or empty) in the distance space; None when
        there is no distance to measure."""
        if not self.recs or not self.seeds:
            return None
        f = self.fields
        space = FeatureSpace(f.seeds, f.kinds, f.others, f.high)
        if not space.n_fields:
            self.notes.append("no seed field is usable for distances: DCR and k-NN metrics are None")
            return None
        fh = space.transform(f.holdout) if f.holdout is not None and f.holdout.n else None
        return space.transform(f.records), space.transform(f.seeds), fh

    @cached_property
    def dcr(self) -> np.ndarray | None:
        if self.vectors is None:
            return None
        fg, fs, _ = self.vectors
        return closest_distances(self.sample("dcr", fg, self.cap(len(fs))), fs)

    @cached_property
    def dcr_holdout(self) -> np.ndarray | None:
        if self.vectors is None or self.vectors[2] is None:
            return None
        _, fs, fh = self.vectors
        return closest_distances(self.sample("dcr_holdout", fh, self.cap(len(fs))), fs)

    @cached_property
    def knn(self) -> dict[str, float]:
        """k-NN precision and recall against each reference set (``knn_precision``, ``knn_recall``,
        and their ``_holdout`` forms); a value that needs more points is left out (noted)."""
        out: dict[str, float] = {}
        if self.vectors is None:
            return out
        fg, fs, fh = self.vectors
        fg_rec = self.sample("knn_recall_records", fg, self.sq_cap)
        g_radii = knn_radii(fg_rec) if len(fg_rec) > KNN_K else None
        for name, fr in (("seeds", fs), ("holdout", fh)):
            if fr is None:
                continue
            sfx = "" if name == "seeds" else "_holdout"
            fr = self.sample(f"knn_{name}", fr, self.sq_cap)
            if len(fr) > KNN_K:
                inside = covered(self.sample(f"knn_precision{sfx}", fg, self.cap(len(fr))), fr, knn_radii(fr))
                out[f"knn_precision{sfx}"] = float(inside.mean())
            else:
                self.notes.append(f"knn_precision{sfx}: needs more than {KNN_K} {name} records")
            if g_radii is not None:
                out[f"knn_recall{sfx}"] = float(covered(fr, fg_rec, g_radii).mean())
        if g_radii is None:
            self.notes.append(f"knn_recall: needs more than {KNN_K} records")
        return out
