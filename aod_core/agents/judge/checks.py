"""The judge's exact checks, computed in code before any model is asked: parses, schema errors
with paths, duplicate in the batch or of a record accepted earlier, exact seed copy, and near copy.

A near copy is a record whose token-shingle Jaccard similarity to a seed or to a record accepted
earlier is at least ``near_copy`` (default 0.8; MinHash LSH candidates, the audit's definition of a
near duplicate, see docs/METRICS.md). A record that fails any check is rejected, source ``checks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aod_core.data.schema import LoadedSchema
from aod_core.eval.metrics import FieldOverlapIndex, duplicates, exact_copies, field_overlaps
from aod_core.eval.nearcopy import NEAR_DUP_THRESHOLD, NearCopyIndex
from aod_core.records import Candidate, canonical_json


@dataclass
class Checks:
    """Exact facts about one candidate."""

    parses: bool
    schema_errors: list[str]
    duplicate: bool
    seed_copy: bool
    field_overlap: float | None
    near_copy: bool = False
    near_copy_of: str | None = None  # "seed" or "accepted record"
    near_copy_similarity: float | None = None

    @property
    def passed(self) -> bool:
        return (
            self.parses and not self.schema_errors and not self.duplicate and not self.seed_copy and not self.near_copy
        )

    def failures(self) -> list[str]:
        out = []
        if not self.parses:
            out.append("does not parse as JSON")
        out += [f"schema: {e}" for e in self.schema_errors[:3]]
        if self.duplicate:
            out.append("duplicate of an earlier record in the batch")
        if self.seed_copy:
            out.append("exact copy of a seed record")
        if self.near_copy:
            out.append(
                f"near copy of {'a seed' if self.near_copy_of == 'seed' else 'a record accepted earlier'} (shingle Jaccard {self.near_copy_similarity:.2f})"
            )
        return out


def passed_checks(checks: dict[str, Any]) -> bool:
    """``Checks.passed`` for a stored row (candidates.jsonl)."""
    return bool(
        checks.get("parses")
        and not checks.get("schema_errors")
        and not checks.get("duplicate")
        and not checks.get("seed_copy")
        and not checks.get("near_copy")
    )


def check_batch(
    cands: Sequence[Candidate],
    schema: LoadedSchema,
    seeds: Sequence[Any],
    prior: set[str] | None = None,
    *,
    near: NearCopies | None = None,
    overlap_index: FieldOverlapIndex | None = None,
) -> list[Checks]:
    """Exact checks; ``prior`` holds canonical texts of records accepted earlier in the run, which
    count as duplicates too (a run never accepts the same record twice). ``near`` adds the near-copy
    check against the seeds and the records accepted earlier; ``overlap_index`` is the seeds indexed
    once for field overlap (built here when not given)."""
    records = [c.record if c.parsed else None for c in cands]
    parsed = [c.parsed for c in cands]
    errors = [[f"{p}: {m}" for p, m in schema.validate(r)] if ok else [] for r, ok in zip(records, parsed)]
    dup = iter(duplicates(r for r, ok in zip(records, parsed) if ok))
    copy = iter(exact_copies((r for r, ok in zip(records, parsed) if ok), seeds))
    overlap = iter(field_overlaps([r for r, ok in zip(records, parsed) if ok], overlap_index or seeds))
    prior = prior or set()
    out = []
    for r, ok, errs in zip(records, parsed, errors):
        if not ok:
            out.append(Checks(False, [], False, False, None))
            continue
        d = next(dup) or canonical_json(r) in prior
        ch = Checks(True, errs, d, next(copy), round(next(overlap), 4))
        if near is not None and not ch.seed_copy and not d:
            hit = near.find(r)
            if hit is not None:
                ch.near_copy, ch.near_copy_of, ch.near_copy_similarity = True, hit[0], round(hit[1], 4)
        out.append(ch)
    return out


class NearCopies:
    """The near-copy index of a run: the seeds, plus every record accepted so far (added as the
    loop's ``prior`` set grows)."""

    def __init__(self, seeds: Sequence[Any], threshold: float = NEAR_DUP_THRESHOLD):
        self.threshold = threshold
        self.seeds = NearCopyIndex(seeds, threshold=threshold)
        self.accepted = NearCopyIndex([], threshold=threshold)
        self._known: set[str] = set()

    def sync(self, prior: set[str] | None) -> None:
        for key in (prior or set()) - self._known:
            self._known.add(key)
            self.accepted.add(json.loads(key))

    def find(self, record: Any) -> tuple[str, float] | None:
        hit = self.seeds.best(record)
        if hit is not None:
            return "seed", hit
        hit = self.accepted.best(record)
        return ("accepted record", hit) if hit is not None else None
