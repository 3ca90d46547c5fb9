"""The judge's exact checks, computed in code before any model is asked: parses, schema errors
with paths, a broken dependency, duplicate in the batch or of a record accepted earlier, exact seed
copy, and near copy.

A **broken dependency** is a field the seeds fix by another (``data/dependencies.py``) holding
another value than the seeds' (Japan with Italy's ``iso_num``); the reason names both fields and the
seeds' value. A determinant the seeds do not know leaves its dependents unchecked: the record is
flagged (``unchecked``), not rejected. A **near copy** is a record whose token-shingle Jaccard
similarity to a seed or to a record accepted earlier is at least ``near_copy`` (default 0.8; MinHash
LSH candidates, the audit's definition of a near duplicate, see docs/METRICS.md), or a near copy of a
seed by its values: a seed's key with every number within ``near_numbers`` of the field's seed range
(``eval/copying.py``). A record that fails any check is rejected, source ``checks``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aod_core.data.dependencies import Dependencies, field_values
from aod_core.data.schema import LoadedSchema
from aod_core.eval.copying import ValueNearCopies
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
    near_copy_similarity: float | None = None  # shingle Jaccard; None for a near copy by values
    near_copy_shares: str | None = None  # a near copy by values: what it shares with the seed
    dependency_errors: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # dependents of a value the seeds do not know
    key_reused: bool = False  # a key some seed already has (counted in the feedback; not a rejection alone)

    @property
    def passed(self) -> bool:
        return (
            self.parses
            and not self.schema_errors
            and not self.dependency_errors
            and not self.duplicate
            and not self.seed_copy
            and not self.near_copy
        )

    def failures(self) -> list[str]:
        out = []
        if not self.parses:
            out.append("does not parse as JSON")
        out += [f"schema: {e}" for e in self.schema_errors[:3]]
        out += self.dependency_errors[:3]
        if self.duplicate:
            out.append("duplicate of an earlier record in the batch")
        if self.seed_copy:
            out.append("exact copy of a seed record")
        if self.near_copy and self.near_copy_shares:
            out.append(f"near copy of a seed: {self.near_copy_shares}, every number within a hair of the seed's")
        elif self.near_copy:
            out.append(
                f"near copy of {'a seed' if self.near_copy_of == 'seed' else 'a record accepted earlier'} (shingle Jaccard {self.near_copy_similarity:.2f})"
            )
        return out


def passed_checks(checks: dict[str, Any]) -> bool:
    """``Checks.passed`` for a stored row (candidates.jsonl)."""
    return bool(
        checks.get("parses")
        and not checks.get("schema_errors")
        and not checks.get("dependency_errors")
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
    dependencies: Dependencies | None = None,
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
        if dependencies is not None:
            ch.dependency_errors = dependency_errors(dependencies, r)
            ch.unchecked = [
                f"{det} = {canonical_json(v)} is new to the seeds: {', '.join(kids)} could not be checked"
                for det, v, kids in dependencies.unchecked(r)
            ]
        if near is not None and not ch.seed_copy and not d:
            hit = near.find(r)
            if hit is not None:
                ch.near_copy, ch.near_copy_of = True, hit[0]
                if isinstance(hit[1], str):
                    ch.near_copy_shares = hit[1]
                else:
                    ch.near_copy_similarity = round(hit[1], 4)
            if near.keys is not None:
                ch.key_reused = bool(dependencies and dependencies.reused_keys(r, near.keys))
        out.append(ch)
    return out


def dependency_errors(deps: Dependencies, record: Any) -> list[str]:
    """One reason per dependency the record breaks: both fields and the seeds' value."""
    out = []
    for d, got, want in deps.violations(record):
        n = d.support.get(canonical_json(field_values(record)[d.determinant]), 0)
        out.append(
            f"{d.dependent} = {canonical_json(got)} does not go with {d.determinant} = "
            f"{canonical_json(field_values(record)[d.determinant])}: the seeds give {canonical_json(want)}"
            f" ({n} seed{'s' if n != 1 else ''})"
        )
    return out


class NearCopies:
    """The near-copy index of a run: the seeds, plus every record accepted so far (added as the
    loop's ``prior`` set grows); with ``values``, also near copies of seeds by their values; with
    ``dependencies``, the seeds' keys, to tell which records reuse one."""

    def __init__(
        self,
        seeds: Sequence[Any],
        threshold: float = NEAR_DUP_THRESHOLD,
        *,
        values: ValueNearCopies | None = None,
        dependencies: Dependencies | None = None,
    ):
        self.threshold = threshold
        self.seeds = NearCopyIndex(seeds, threshold=threshold) if threshold <= 1.0 else None
        self.accepted = NearCopyIndex([], threshold=threshold) if threshold <= 1.0 else None
        self.values = values
        self.keys = dependencies.seed_keys(seeds) if dependencies and dependencies.keys else None
        self._known: set[str] = set()

    def sync(self, prior: set[str] | None) -> None:
        if self.accepted is None:
            return
        for key in (prior or set()) - self._known:
            self._known.add(key)
            self.accepted.add(json.loads(key))

    def find(self, record: Any) -> tuple[str, float | str] | None:
        """("seed" or "accepted record", the shingle similarity, or what a near copy by values
        shares with its seed), or None."""
        if self.values is not None:
            hit = self.values.find(record)
            if hit is not None:
                return "seed", hit[1]
        if self.seeds is None or self.accepted is None:
            return None
        best = self.seeds.best(record)
        if best is not None:
            return "seed", best
        best = self.accepted.best(record)
        return ("accepted record", best) if best is not None else None
