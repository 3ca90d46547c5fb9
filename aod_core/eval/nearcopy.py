"""Near duplicates and near copies: records that differ from an earlier one, or a seed, by a few words.

Exact copies (``metrics.py``) miss a record that changed one word of a seed; this module finds
those, for the audit's ``near_duplicate_rate`` / ``near_copy_rate``, the judge's live near-copy
check and the bulk run's deduplication, with one definition:

A record's serialized form (canonical JSON) is split into tokens (keys and values: a number is one
token with its sign, ``\\w+`` words otherwise; punctuation dropped) and shingled into runs of 3
tokens (a record with fewer tokens is one shingle). ``datasketch`` MinHash (128 permutations, its
default seed) + ``MinHashLSH`` (threshold 0.8) propose candidate pairs; a pair counts when the
*exact* Jaccard similarity of the shingle sets is >= 0.8 (LSH can miss a pair: a false negative,
never a false positive), or when the records are equal. One changed word changes at most 3 of a
record's s shingles, so the pair keeps Jaccard >= (s - 3) / (s + 3), >= 0.8 from s = 27 (29 tokens):
a long text with one typo is a near duplicate, a 10-field record with one new value usually is not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from aod_core.records import canonical_json

NEAR_DUP_THRESHOLD = 0.8
SHINGLE_TOKENS = 3
NUM_PERM = 128

_TOKEN = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\w+")  # a number is one token


def shingles(record: Any, k: int = SHINGLE_TOKENS) -> frozenset[str]:
    """Runs of ``k`` tokens of the record's canonical JSON (one run when it has fewer); tokens are
    numbers (sign, decimals and exponent included) and ``\\w+`` words, punctuation dropped."""
    return text_shingles(canonical_json(record), k)


def text_shingles(text: str, k: int = SHINGLE_TOKENS) -> frozenset[str]:
    """The shingles of a canonical JSON text (``shingles`` for a text already canonical)."""
    toks = _TOKEN.findall(text)
    if len(toks) <= k:
        return frozenset([" ".join(toks)]) if toks else frozenset()
    return frozenset(" ".join(toks[i : i + k]) for i in range(len(toks) - k + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if (a or b) else 0.0


def near_duplicates(
    records: Sequence[Any], seeds: Sequence[Any] = (), *, threshold: float = NEAR_DUP_THRESHOLD
) -> tuple[list[bool], list[bool]]:
    """(near-duplicate of an earlier record, near-copy of a seed) for each record: equal canonical
    JSON, or exact shingle Jaccard >= ``threshold`` for a pair proposed by MinHash LSH."""
    from datasketch import MinHash, MinHashLSH

    recs = list(records)
    canon = [canonical_json(r) for r in recs]
    sh = [text_shingles(c) for c in canon]
    enc = [[s.encode("utf-8") for s in x] for x in sh]
    hashes = MinHash.bulk(enc, num_perm=NUM_PERM) if recs else []
    lsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
    first: dict[str, int] = {}
    dup = []
    for i, (c, s, h) in enumerate(zip(canon, sh, hashes)):
        hit = c in first
        if not hit and s:
            hit = any(jaccard(s, sh[j]) >= threshold for j in lsh.query(h))
        dup.append(hit)
        if c not in first:  # equal records are found by canonical JSON: index each form once
            first[c] = i
            if s:
                lsh.insert(i, h, check_duplication=False)
    seeds = list(seeds)
    copy = [False] * len(recs)
    if seeds and recs:
        ssh = [shingles(s) for s in seeds]
        scanon = {canonical_json(s) for s in seeds}
        slsh = MinHashLSH(threshold=threshold, num_perm=NUM_PERM)
        seen: set[frozenset] = set()
        for j, h in enumerate(MinHash.bulk([[x.encode("utf-8") for x in s] for s in ssh], num_perm=NUM_PERM)):
            if ssh[j] and ssh[j] not in seen:
                seen.add(ssh[j])
                slsh.insert(j, h, check_duplication=False)
        for i, (c, s, h) in enumerate(zip(canon, sh, hashes)):
            copy[i] = c in scanon or (bool(s) and any(jaccard(s, ssh[j]) >= threshold for j in slsh.query(h)))
    return dup, copy


class NearCopyIndex:
    """Near copies, live: ``best(record)`` is the largest exact shingle Jaccard similarity (>=
    ``threshold``) of a record to one indexed so far, among the candidates MinHash LSH proposes,
    or None. Same definition as ``near_duplicates``; records can be added one at a time."""

    def __init__(self, records: Sequence[Any] = (), *, threshold: float = NEAR_DUP_THRESHOLD):
        from datasketch import MinHashLSH

        self.threshold = threshold
        self.lsh = MinHashLSH(threshold=min(max(threshold, 0.01), 1.0), num_perm=NUM_PERM)
        self.shingles: list[frozenset] = []
        self._seen: set[frozenset] = set()
        for r in records:
            self.add(r)

    @staticmethod
    def _hash(sh: frozenset):
        from datasketch import MinHash

        return MinHash.bulk([[x.encode("utf-8") for x in sh]], num_perm=NUM_PERM)[0]

    def add(self, record: Any) -> None:
        sh = shingles(record)
        if not sh or sh in self._seen:
            return
        self._seen.add(sh)
        self.lsh.insert(len(self.shingles), self._hash(sh), check_duplication=False)
        self.shingles.append(sh)

    def best(self, record: Any) -> float | None:
        if self.threshold > 1.0 or not self.shingles:
            return None
        sh = shingles(record)
        if not sh:
            return None
        sims = [jaccard(sh, self.shingles[j]) for j in self.lsh.query(self._hash(sh))]
        top = max(sims, default=0.0)
        return top if top >= self.threshold else None
