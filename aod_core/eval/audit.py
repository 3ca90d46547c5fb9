"""The Data Auditor suite: every registered metric over one batch of generated JSON records.

``audit(records, seeds, schema=..., holdout=..., verdicts=...)`` returns one JSON-serialisable dict:
every name of ``METRICS`` as a flat number (or ``None`` when it cannot be computed, with a line in
``notes`` saying why), plus the sections ``notes``, ``embedder``, ``per_field``, ``per_pair``,
``subsampled`` and ``settings``. It never contains NaN or infinity. ``METRICS`` is the registry:
each metric's direction, range, definition and the function computing it, in the result's order;
docs/METRICS.md lists them. This module holds the registry and the shared, computed-once steps its
functions read (``AuditSteps``); the definitions live where they are computed:

* ``metrics.py``: validity, exact copies, duplicates, task success, field overlap, distinct-n, entropy
  (the same functions the loop uses). Rates are over *candidates* (denominator: every item of
  ``records``, parsed or not); the other metrics over the parsed records;
* ``nearcopy.py``: near duplicates and near copies (MinHash LSH, exact Jaccard >= 0.8);
* ``diversity.py``: the record embeddings, Self-CosSim and the Vendi score;
* ``fidelity.py``: fields, field kinds, KS / TVD marginals, Pearson and contingency gaps;
* ``distance.py``: the distance space, DCR and k-NN precision / recall (k = 3).

Every metric "vs seeds" also exists as ``*_holdout`` against the holdout records, with the same
direction and range; the DCR of the holdout records is the real baseline, and the counts
``n_candidates``, ``n_records`` (parsed), ``n_seeds`` and ``n_holdout`` are neutral.

*Subsampling.* Pairwise steps (record x seed distances for DCR and field_overlap, reference x reference
and generated x generated k-NN radii) are limited to ``max_pairs`` distance pairs: the generated side
(or the reference side for k-NN radii) is subsampled without replacement with
``numpy.random.default_rng([seed, crc32(step)])``, and ``subsampled[step]`` says
``{"subsampled_from": n, "used": k}`` (with a note). ``max_pairs=None`` never subsamples.

*Degenerate inputs.* Empty ``records``: rates 0.0, distinct/entropy 0.0, field_overlap 0.0 (as in
metrics.py), every other metric None. One record: self_cossim None (no pair), vendi_score 1.0,
correlations None. No seeds: everything "vs seeds" is None, copy rates and field_overlap 0.0. No
holdout: every holdout metric None. No schema: schema_valid_rate None and task_success_rate uses
"parses" as validity (noted). No verdicts: task_success_rate None. Constant columns: KS/TVD defined,
correlation gaps None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np

from aod_core.data.dependencies import DependencySettings
from aod_core.data.schema import LoadedSchema
from aod_core.eval import metrics as M
from aod_core.eval.audit_steps import MAX_PAIRS, AuditSteps
from aod_core.eval.copying import NEAR_NUMBERS
from aod_core.eval.distance import KNN_K
from aod_core.eval.diversity import Embedder, self_cossim, vendi_score
from aod_core.eval.fidelity import contingency_gaps, pearson_gaps
from aod_core.eval.nearcopy import NEAR_DUP_THRESHOLD, NUM_PERM, SHINGLE_TOKENS
from aod_core.eval.registry import MetricInfo, evaluate, metric, registry


def _mean(xs: Sequence[float | None]) -> float | None:
    xs = [x for x in xs if x is not None]
    return float(sum(xs) / len(xs)) if xs else None


# ---------------------------------------------------------------------------------------------
# The metric functions (each reads the shared steps of one ``AuditSteps``)


def _near_rate(a: AuditSteps, which: int) -> float:
    return M.rate(sum(a.near[which]), a.n)


def _field_overlap(a: AuditSteps) -> float:
    recs = a.sample("field_overlap", a.recs, a.cap(len(a.seeds))) if a.seeds else a.recs
    return M.field_overlap(recs, a.seeds)


def _self_cossim(a: AuditSteps) -> float | None:
    value = self_cossim(a.embedding)
    if a.recs and value is None:
        a.notes.append("self_cossim: fewer than 2 records, no pair")
    return value


def _marginal_mean(a: AuditSteps, ref: str, stat: str) -> float | None:
    """Mean over fields of ``ks_<ref>`` (numeric fields) or ``tvd_<ref>`` (categorical, not
    high-cardinality). Every field's report comes first, compared or not: ``ks_mean`` starts the
    fidelity family, so ``per_field`` and its notes are always there, in one place among the notes."""
    per_field = a.per_field
    if a.compared(ref) is None:
        return None
    kind = "numeric" if stat == "ks" else "categorical"
    return _mean(
        [e.get(f"{stat}_{ref}") for e in per_field.values() if e["kind"] == kind and not e.get("high_cardinality")]
    )


def _pair_gap_mean(a: AuditSteps, ref: str, kind: str) -> float | None:
    """Mean Pearson gap (``kind`` "pearson") or contingency gap over the non-pooled field pairs;
    each pair's gap goes to ``per_pair``."""
    cols = a.compared(ref)
    if cols is None:
        return None
    f = a.fields
    if kind == "pearson":
        gaps = pearson_gaps(a.plain_fields("numeric"), f.records, cols)
    else:
        gaps = contingency_gaps(a.plain_fields("categorical"), f.records, cols)
    for (p, q), g in gaps.items():
        a.per_pair.setdefault(f"{p} | {q}", {"kind": kind})[ref] = g
    values = list(gaps.values())
    if kind == "pearson" and None in values:
        name = "corr_gap_mean" + ("" if ref == "seeds" else "_holdout")
        a.notes.append(
            f"{name}: {values.count(None)} of {len(values)} numeric pairs skipped (correlation undefined: constant column or fewer than 2 common records)"
        )
    return _mean(values)


def _median(d: np.ndarray | None) -> float | None:
    return None if d is None else float(np.median(d))


def _p05(d: np.ndarray | None) -> float | None:
    return None if d is None else float(np.percentile(d, 5))


def _closer_than_holdout(a: AuditSteps) -> float | None:
    if a.dcr is None or a.dcr_holdout is None:
        return None
    return float(np.mean(a.dcr < _p05(a.dcr_holdout)))


def _closer_than_reference(a: AuditSteps) -> float | None:
    if a.dcr is None or a.dcr_reference is None:
        return None
    return float(np.mean(a.dcr < _p05(a.dcr_reference)))


def _dcr_ratio(a: AuditSteps) -> float | None:
    if a.dcr is None or a.dcr_reference is None or not np.median(a.dcr_reference) > 0:
        return None
    return float(np.median(a.dcr) / np.median(a.dcr_reference))


# The fidelity metrics, each against the seeds and (``_holdout``) the holdout:
# (name, high end of the range, what is averaged, function of the audit and the reference's name)
_FIDELITY = (
    ("ks_mean", 1, "mean KS statistic over numeric fields", partial(_marginal_mean, stat="ks")),
    (
        "tvd_mean",
        1,
        "mean total variation distance over categorical fields (not high-cardinality)",
        partial(_marginal_mean, stat="tvd"),
    ),
    ("corr_gap_mean", 2, "mean |Pearson gap| over numeric field pairs", partial(_pair_gap_mean, kind="pearson")),
    (
        "contingency_gap_mean",
        1,
        "mean joint-distribution TVD over categorical field pairs",
        partial(_pair_gap_mean, kind="contingency"),
    ),
)


def _fidelity(ref: str) -> list[MetricInfo]:
    sfx = "" if ref == "seeds" else "_holdout"
    return [
        metric(name + sfx, "lower", 0, hi, "fidelity", f"{what}, vs {ref}", partial(fn, ref=ref))
        for name, hi, what, fn in _FIDELITY
    ]


def _knn(sfx: str, precision: str, recall: str) -> list[MetricInfo]:
    return [
        metric(
            f"knn_precision{sfx}", "higher", 0, 1, "distance", precision, lambda a: a.knn.get(f"knn_precision{sfx}")
        ),
        metric(f"knn_recall{sfx}", "higher", 0, 1, "distance", recall, lambda a: a.knn.get(f"knn_recall{sfx}")),
    ]


METRICS: dict[str, MetricInfo] = registry(
    metric("n_candidates", "neutral", 0, None, "counts", "items audited (parsed or not)", lambda a: a.n),
    metric("n_records", "neutral", 0, None, "counts", "parsed records", lambda a: len(a.recs)),
    metric("n_seeds", "neutral", 0, None, "counts", "seed records", lambda a: len(a.seeds)),
    metric(
        "n_holdout",
        "neutral",
        0,
        None,
        "counts",
        "holdout records (0 when none was given)",
        lambda a: len(a.hold or ()),
    ),
    metric(
        "valid_json_rate",
        "higher",
        0,
        1,
        "validity",
        "share of candidates that parse as JSON (ValidJSONRate)",
        lambda a: M.valid_json_rate(a.outcomes),
    ),
    metric(
        "schema_valid_rate",
        "higher",
        0,
        1,
        "validity",
        "share of candidates that parse and validate (CorrectnessRate)",
        lambda a: M.schema_valid_rate(a.outcomes),
    ),
    metric(
        "task_success_rate",
        "higher",
        0,
        1,
        "validity",
        "share of candidates schema-valid, not a batch duplicate, not a seed copy and accepted by the judge",
        lambda a: M.task_success_rate(a.outcomes),
    ),
    metric(
        "exact_copy_rate",
        "lower",
        0,
        1,
        "novelty",
        "share of candidates equal to a seed record",
        lambda a: M.exact_copy_rate(a.outcomes),
    ),
    metric(
        "near_copy_rate",
        "lower",
        0,
        1,
        "novelty",
        "share of candidates with token-shingle Jaccard >= 0.8 to a seed, or a seed's key (else every value "
        "that is not a number) with every number within 1% of the field's seed range",
        partial(_near_rate, which=1),
    ),
    metric(
        "key_reuse_rate",
        "lower",
        0,
        1,
        "novelty",
        "share of records whose key (a code, or fields such as (country, year) no two seeds share) a seed "
        "has (compare key_reuse_rate_holdout)",
        lambda a: a.key_reuse(a.recs),
    ),
    metric(
        "key_reuse_rate_holdout",
        "neutral",
        0,
        1,
        "novelty",
        "the same share for the holdout records (real baseline)",
        lambda a: a.key_reuse(a.hold) if a.hold else None,
    ),
    metric(
        "dependency_violation_rate",
        "lower",
        0,
        1,
        "validity",
        "share of candidates breaking a dependency the seeds show (a field another field fixes holding "
        "another value than the seeds')",
        lambda a: M.rate(a.violations(a.recs), a.n),
    ),
    metric(
        "dependency_violation_rate_holdout",
        "neutral",
        0,
        1,
        "validity",
        "the same share for the holdout records (real baseline)",
        lambda a: M.rate(a.violations(a.hold), len(a.hold)) if a.hold else None,
    ),
    metric(
        "duplicate_rate",
        "lower",
        0,
        1,
        "novelty",
        "share of candidates equal to an earlier one",
        lambda a: M.duplicate_rate(a.outcomes),
    ),
    metric(
        "near_duplicate_rate",
        "lower",
        0,
        1,
        "novelty",
        "share of candidates equal or Jaccard >= 0.8 to an earlier one",
        partial(_near_rate, which=0),
    ),
    metric(
        "field_overlap",
        "lower",
        0,
        1,
        "novelty",
        "mean largest share of a record's leaf fields equal to one seed's",
        _field_overlap,
    ),
    metric(
        "distinct_1",
        "higher",
        0,
        1,
        "diversity",
        "unique / total value unigrams",
        lambda a: M.distinct_share(a.grams(1)),
    ),
    metric(
        "distinct_2",
        "higher",
        0,
        1,
        "diversity",
        "unique / total value bigrams",
        lambda a: M.distinct_share(a.grams(2)),
    ),
    metric(
        "entropy_1",
        "higher",
        0,
        None,
        "diversity",
        "entropy (bits) of value unigrams, at most log2(#unigrams)",
        lambda a: M.entropy_bits(a.grams(1)),
    ),
    metric(
        "entropy_2",
        "higher",
        0,
        None,
        "diversity",
        "entropy (bits) of value bigrams, at most log2(#bigrams)",
        lambda a: M.entropy_bits(a.grams(2)),
    ),
    metric(
        "self_cossim",
        "lower",
        -1,
        1,
        "diversity",
        "mean pairwise cosine similarity of record embeddings (i != j)",
        _self_cossim,
    ),
    metric(
        "vendi_score",
        "higher",
        1,
        None,
        "diversity",
        "Vendi score: exp(entropy of eigenvalues of K/n), at most min(n, dim)",
        lambda a: vendi_score(a.embedding),
    ),
    metric(
        "dcr_median",
        "higher",
        0,
        None,
        "distance",
        "median distance to the closest seed (compare dcr_holdout_median)",
        lambda a: _median(a.dcr),
    ),
    metric(
        "dcr_p05",
        "higher",
        0,
        None,
        "distance",
        "5th percentile distance to the closest seed (compare dcr_holdout_p05)",
        lambda a: _p05(a.dcr),
    ),
    metric(
        "dcr_holdout_median",
        "neutral",
        0,
        None,
        "distance",
        "median holdout -> closest seed distance (real baseline)",
        lambda a: _median(a.dcr_holdout),
    ),
    metric(
        "dcr_holdout_p05",
        "neutral",
        0,
        None,
        "distance",
        "5th percentile holdout -> closest seed distance (real baseline)",
        lambda a: _p05(a.dcr_holdout),
    ),
    metric(
        "dcr_closer_than_holdout_p05",
        "lower",
        0,
        1,
        "distance",
        "share of records closer to a seed than the holdout's 5th percentile (about 0.05 for real-like data)",
        _closer_than_holdout,
    ),
    metric(
        "dcr_closer_than_reference_p05",
        "lower",
        0,
        1,
        "distance",
        "share of records closer to a seed than the 5th percentile of real distances: the holdout's, or "
        "without one each seed's to its closest other seed (about 0.05 for real-like data)",
        _closer_than_reference,
    ),
    metric(
        "dcr_median_ratio",
        "higher",
        0,
        None,
        "distance",
        "median distance to the closest seed over the real records' median (the holdout's, or the seeds' "
        "out of fold); about 1 for real-like data, near 0 for perturbed seeds",
        _dcr_ratio,
    ),
    *_fidelity("seeds"),
    *_knn(
        "",
        "share of records inside the seeds' 3-NN balls (precision, Kynkäänniemi et al.; stands in for alpha-precision)",
        "share of seeds inside the records' 3-NN balls (recall, Kynkäänniemi et al.; stands in for beta-recall)",
    ),
    *_fidelity("holdout"),
    *_knn(
        "_holdout",
        "share of records inside the holdout's 3-NN balls",
        "share of holdout records inside the records' 3-NN balls",
    ),
)


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


def audit(
    records: Sequence[Any],
    seeds: Sequence[Any],
    *,
    schema: LoadedSchema | dict | None = None,
    holdout: Sequence[Any] | None = None,
    verdicts: Sequence[Any] | None = None,
    seed: int = 0,
    max_pairs: int | None = MAX_PAIRS,
    embedder: Embedder = "auto",
    dependencies: DependencySettings | None = None,
) -> dict[str, Any]:
    """Run the whole Data Auditor suite (definitions in the module docstring and docs/METRICS.md).

    ``records``: generated items, each a parsed JSON value or a ``Candidate`` (an unparsed candidate
    counts in the rates' denominators). ``seeds`` / ``holdout``: real records. ``schema``: a
    ``LoadedSchema`` or a raw JSON Schema dict. ``verdicts``: one judge verdict per item of
    ``records`` (bool, "accept"/"reject", or an object with ``.accept``). ``seed`` fixes every
    subsample; ``max_pairs`` caps each pairwise step (None: no cap). ``embedder``: "auto" (the
    sentence model when installed, else lexical), "lexical", or a callable ``texts -> (n, d) array``.
    Returns a JSON-serialisable dict with every ``METRICS`` name plus ``notes``, ``embedder``,
    ``per_field``, ``per_pair``, ``subsampled``, ``settings``.
    """
    a = AuditSteps(
        records,
        seeds,
        schema=schema,
        holdout=holdout,
        verdicts=verdicts,
        seed=seed,
        max_pairs=max_pairs,
        embedder=embedder,
        dependencies=dependencies,
    )
    result: dict[str, Any] = evaluate(METRICS, a)
    result["dependencies"] = [r["rule"] for r in a.deps.rows()] if a.seeds else []
    result["notes"] = a.notes
    result["embedder"] = a.embedder_info
    result["per_field"] = a.per_field
    result["per_pair"] = a.per_pair
    result["subsampled"] = a.subsampled
    result["settings"] = {
        "seed": seed,
        "max_pairs": max_pairs,
        "near_duplicate_threshold": NEAR_DUP_THRESHOLD,
        "shingle_tokens": SHINGLE_TOKENS,
        "minhash_num_perm": NUM_PERM,
        "knn_k": KNN_K,
        "near_numbers": NEAR_NUMBERS,
    }
    bad: list[str] = []
    result = _clean(result, bad)
    if bad:
        result["notes"].append(f"non-finite values replaced by None: {', '.join(bad)}")
    return result
