"""Exact batch metrics over generated candidates (DESIGN.md §6).

Every rate is a fraction in [0, 1] over the *candidates* passed in (not only the ones that parsed),
so rates from different generators are comparable. Records are compared by their canonical JSON
(sorted keys, no whitespace), so key order never makes two equal records look different.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from aod_core.generators.base import Candidate
from aod_core.data.schema import LoadedSchema


def canonical_record(record: Any) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _rate(k: int, n: int) -> float:
    return k / n if n else 0.0


def valid_json_rate(cands: Sequence[Candidate]) -> float:
    """Share of candidates whose text parses as JSON. Higher is better."""
    return _rate(sum(c.parsed for c in cands), len(cands))


def schema_valid(cands: Sequence[Candidate], schema: LoadedSchema) -> list[bool]:
    return [c.parsed and schema.is_valid(c.record) for c in cands]


def schema_valid_rate(cands: Sequence[Candidate], schema: LoadedSchema) -> float:
    """Share of candidates that parse and validate against the schema. Higher is better."""
    return _rate(sum(schema_valid(cands, schema)), len(cands))


def exact_copies(records: Iterable[Any], seeds: Iterable[Any]) -> list[bool]:
    known = {canonical_record(s) for s in seeds}
    return [canonical_record(r) in known for r in records]


def exact_copy_rate(cands: Sequence[Candidate], seeds: Sequence[Any]) -> float:
    """Share of candidates equal to some seed record. Lower is better."""
    return _rate(sum(exact_copies((c.record for c in cands if c.parsed), seeds)), len(cands))


def duplicates(records: Iterable[Any]) -> list[bool]:
    """True for every record equal to an earlier one in the same batch (first occurrence is kept)."""
    seen: set[str] = set()
    out = []
    for r in records:
        key = canonical_record(r)
        out.append(key in seen)
        seen.add(key)
    return out


def duplicate_rate(cands: Sequence[Candidate]) -> float:
    """Share of candidates that repeat an earlier candidate of the batch. Lower is better."""
    return _rate(sum(duplicates(c.record for c in cands if c.parsed)), len(cands))


def batch_summary(cands: Sequence[Candidate], schema: LoadedSchema, seeds: Sequence[Any]) -> dict[str, float | int]:
    """The structural figures ``aod sample`` and the benchmarks report."""
    return {
        "candidates": len(cands),
        "valid_json_rate": valid_json_rate(cands),
        "schema_valid_rate": schema_valid_rate(cands, schema),
        "exact_copy_rate": exact_copy_rate(cands, seeds),
        "duplicate_rate": duplicate_rate(cands),
    }


def leaves(record: Any, path: str = "$") -> list[tuple[str, Any]]:
    """(path, value) for every leaf of a JSON value; array items are indexed (``$.birds[0].sex``),
    an empty object or array is itself a leaf."""
    if isinstance(record, dict) and record:
        return [pair for k, v in record.items() for pair in leaves(v, f"{path}.{k}")]
    if isinstance(record, list) and record:
        return [pair for i, v in enumerate(record) for pair in leaves(v, f"{path}[{i}]")]
    return [(path, record)]


class FieldOverlapIndex:
    """The seeds indexed by (leaf path, value), built once, for ``field_overlaps`` batch after batch."""

    def __init__(self, seeds: Sequence[Any]):
        self.n = len(seeds)
        self.index: dict[tuple[str, str], list[int]] = {}
        for i, s in enumerate(seeds):
            for path, value in leaves(s):
                self.index.setdefault((path, canonical_record(value)), []).append(i)

    def overlaps(self, records: Sequence[Any]) -> list[float]:
        out = []
        for r in records:
            fields = leaves(r)
            counts = [0] * self.n
            for path, value in fields:
                for i in self.index.get((path, canonical_record(value)), ()):
                    counts[i] += 1
            out.append(max(counts, default=0) / len(fields) if fields else 0.0)
        return out


def field_overlaps(records: Sequence[Any], seeds: Sequence[Any] | FieldOverlapIndex) -> list[float]:
    """Per record: the largest fraction of its leaf fields whose value equals the same field's value
    in one seed record (DESIGN.md §6). 1.0 is an exact copy's score; lower is less memorisation."""
    index = seeds if isinstance(seeds, FieldOverlapIndex) else FieldOverlapIndex(seeds)
    return index.overlaps(records)


def field_overlap(records: Sequence[Any], seeds: Sequence[Any]) -> float:
    """Mean of ``field_overlaps`` over the records (0 when there are none). Range [0, 1], lower is better."""
    per = field_overlaps(records, seeds)
    return sum(per) / len(per) if per else 0.0


def value_sequences(records: Sequence[Any]) -> list[list[str]]:
    """Each record as the sequence of its leaf values (as JSON text, in key order)."""
    return [[canonical_record(v) for _, v in leaves(r)] for r in records]


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


def task_success(valid: Sequence[bool], duplicate: Sequence[bool], copy: Sequence[bool], judged_ok: Sequence[bool]) -> list[bool]:
    """Per candidate: schema-valid, not a duplicate in the batch, not a seed copy, accepted by the judge."""
    return [v and not d and not c and j for v, d, c, j in zip(valid, duplicate, copy, judged_ok)]
