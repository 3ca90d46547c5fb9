"""Exact batch metrics over generated candidates (DESIGN.md §6).

Every rate is a fraction in [0, 1] over the *candidates* passed in (not only the ones that parsed),
so rates from different generators are comparable. Records are compared by their canonical JSON
(sorted keys, no whitespace), so key order never makes two equal records look different.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from .generators.base import Candidate
from .schema import LoadedSchema


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
