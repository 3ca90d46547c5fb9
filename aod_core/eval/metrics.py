"""Exact batch metrics over generated candidates: validity, copies, duplicates, overlap, diversity.

These are the figures the loop, ``aod sample`` and the benchmarks report after every batch, and the
first ones the audit registers (docs/METRICS.md). Every rate is a fraction in [0, 1] over the
*candidates* passed in (not only the ones that parsed), so rates from different generators are
comparable; the rates are computed in one way, from the per-candidate ``Outcomes`` of the exact
checks, whoever ran the checks (``Outcomes.check`` here, or the judge for the loop's reward).
Records are compared by their canonical JSON (``records.canonical_json``), so key order never
makes two equal records look different.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from aod_core.data.schema import LoadedSchema
from aod_core.records import Candidate, canonical_json, leaves


def rate(k: int, n: int) -> float:
    """``k`` of ``n`` as a fraction; 0 for an empty batch."""
    return k / n if n else 0.0


def schema_valid(cands: Sequence[Candidate], schema: LoadedSchema) -> list[bool]:
    return [c.parsed and schema.is_valid(c.record) for c in cands]


def exact_copies(records: Iterable[Any], seeds: Iterable[Any]) -> list[bool]:
    known = {canonical_json(s) for s in seeds}
    return [canonical_json(r) in known for r in records]


def duplicates(records: Iterable[Any]) -> list[bool]:
    """True for every record equal to an earlier one in the same batch (first occurrence is kept)."""
    seen: set[str] = set()
    out = []
    for r in records:
        key = canonical_json(r)
        out.append(key in seen)
        seen.add(key)
    return out


def task_success(
    valid: Sequence[bool], duplicate: Sequence[bool], copy: Sequence[bool], judged_ok: Sequence[bool]
) -> list[bool]:
    """Per candidate: schema-valid, not a duplicate in the batch, not a seed copy, accepted by the judge."""
    return [v and not d and not c and j for v, d, c, j in zip(valid, duplicate, copy, judged_ok)]


@dataclass
class Outcomes:
    """What the exact checks found, one entry per candidate of a batch: it parsed, it is valid (it
    parsed and, when ``schema_checked``, validates), it repeats an earlier candidate, it equals a
    seed; and the judge's acceptance when there was a judge (``accepted``, else None)."""

    parsed: Sequence[bool]
    valid: Sequence[bool]
    duplicate: Sequence[bool]
    copy: Sequence[bool]
    accepted: Sequence[bool] | None = None
    schema_checked: bool = True

    @property
    def n(self) -> int:
        return len(self.parsed)

    @cached_property
    def success(self) -> list[bool] | None:
        """Per candidate: ``task_success`` (None without judge verdicts)."""
        if self.accepted is None:
            return None
        return task_success(self.valid, self.duplicate, self.copy, self.accepted)

    @classmethod
    def check(
        cls,
        cands: Sequence[Candidate],
        schema: LoadedSchema | None,
        seeds: Sequence[Any],
        accepted: Sequence[bool] | None = None,
    ) -> Outcomes:
        """The exact checks of a batch: parses, schema (validity is parsing when ``schema`` is None),
        duplicates within the batch and copies of ``seeds`` (an unparsed candidate is neither)."""
        parsed = [c.parsed for c in cands]
        recs = [c.record for c in cands if c.parsed]
        valid = schema_valid(cands, schema) if schema is not None else parsed

        def per_candidate(flags: list[bool]) -> list[bool]:
            it = iter(flags)
            return [next(it) if p else False for p in parsed]

        return cls(
            parsed,
            valid,
            per_candidate(duplicates(recs)),
            per_candidate(exact_copies(recs, seeds)),
            accepted,
            schema is not None,
        )


def valid_json_rate(o: Outcomes) -> float:
    """Share of candidates whose text parses as JSON. Higher is better."""
    return rate(sum(o.parsed), o.n)


def schema_valid_rate(o: Outcomes) -> float | None:
    """Share of candidates that parse and validate against the schema (None when none was checked).
    Higher is better."""
    return rate(sum(o.valid), o.n) if o.schema_checked else None


def exact_copy_rate(o: Outcomes) -> float:
    """Share of candidates equal to some seed record. Lower is better."""
    return rate(sum(o.copy), o.n)


def duplicate_rate(o: Outcomes) -> float:
    """Share of candidates that repeat an earlier candidate of the batch. Lower is better."""
    return rate(sum(o.duplicate), o.n)


def task_success_rate(o: Outcomes) -> float | None:
    """Share of candidates schema-valid, not a duplicate, not a seed copy and accepted by the judge
    (None without judge verdicts). Higher is better."""
    return rate(sum(o.success), o.n) if o.success is not None else None


def batch_summary(cands: Sequence[Candidate], schema: LoadedSchema, seeds: Sequence[Any]) -> dict[str, float | int]:
    """The structural figures ``aod sample`` and the benchmarks report."""
    o = Outcomes.check(cands, schema, seeds)
    return {
        "candidates": o.n,
        "valid_json_rate": valid_json_rate(o),
        "schema_valid_rate": schema_valid_rate(o),
        "exact_copy_rate": exact_copy_rate(o),
        "duplicate_rate": duplicate_rate(o),
    }


class FieldOverlapIndex:
    """The seeds indexed by (leaf path, value), built once, for ``field_overlaps`` batch after batch."""

    def __init__(self, seeds: Sequence[Any]):
        self.n = len(seeds)
        self.index: dict[tuple[str, str], list[int]] = {}
        for i, s in enumerate(seeds):
            for path, value in leaves(s):
                self.index.setdefault((path, canonical_json(value)), []).append(i)

    def overlaps(self, records: Sequence[Any]) -> list[float]:
        out = []
        for r in records:
            fields = leaves(r)
            counts = [0] * self.n
            for path, value in fields:
                for i in self.index.get((path, canonical_json(value)), ()):
                    counts[i] += 1
            out.append(max(counts, default=0) / len(fields) if fields else 0.0)
        return out


def field_overlaps(records: Sequence[Any], seeds: Sequence[Any] | FieldOverlapIndex) -> list[float]:
    """Per record: the largest fraction of its leaf fields (``records.leaves``, array items indexed)
    whose value equals the same field's value in one seed record. 1.0 is an exact copy's score;
    lower is less memorisation."""
    index = seeds if isinstance(seeds, FieldOverlapIndex) else FieldOverlapIndex(seeds)
    return index.overlaps(records)


def field_overlap(records: Sequence[Any], seeds: Sequence[Any]) -> float:
    """Mean of ``field_overlaps`` over the records (0 when there are none). Range [0, 1], lower is better."""
    per = field_overlaps(records, seeds)
    return sum(per) / len(per) if per else 0.0


def value_sequences(records: Sequence[Any]) -> list[list[str]]:
    """Each record as the sequence of its leaf values (as JSON text, in key order)."""
    return [[canonical_json(v) for _, v in leaves(r)] for r in records]


def ngrams_of(sequences: Sequence[Sequence[str]], n: int) -> list[tuple[str, ...]]:
    """Every n-gram of every sequence; n-grams never cross sequence (record) boundaries."""
    return [tuple(t[i : i + n]) for t in sequences for i in range(len(t) - n + 1)]


def value_ngrams(records: Sequence[Any], n: int) -> list[tuple[str, ...]]:
    """Every n-gram of serialized values across the batch (see ``value_sequences``)."""
    return ngrams_of(value_sequences(records), n)


def distinct_share(grams: Sequence[Any]) -> float:
    """Unique / total n-grams; 0 when there is none."""
    return len(set(grams)) / len(grams) if grams else 0.0


def entropy_bits(grams: Sequence[Any]) -> float:
    """Shannon entropy in bits, -sum p log2 p, of the n-grams' empirical distribution; 0 when empty."""
    counts = Counter(grams)
    total = len(grams)
    if not total:
        return 0.0
    return max(0.0, -sum(c / total * math.log2(c / total) for c in counts.values()))


def distinct_n(records: Sequence[Any], n: int = 2) -> float:
    """Distinct-n over serialized values: each record is the sequence of its leaf values (as JSON
    text, in key order); the share of n-grams across the batch that are unique. Range [0, 1],
    higher is more diverse; 0 when there is no n-gram."""
    return distinct_share(value_ngrams(records, n))


def ngram_entropy(records: Sequence[Any], n: int = 2) -> float:
    """Ent-n: Shannon entropy in bits of the batch's value n-gram distribution (the n-grams of
    ``distinct_n``). Range [0, log2(#n-grams)], higher is more diverse; 0 when there is no n-gram."""
    return entropy_bits(value_ngrams(records, n))
