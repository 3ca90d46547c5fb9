"""The Data Auditor suite (aod_core/audit.py) against hand-computed values on tiny inputs."""

from __future__ import annotations

import json
import math

import pytest

from aod_core.eval import metrics
from aod_core.eval.audit import METRICS, audit
from aod_core.eval.diversity import lexical_embedding, self_cossim, vendi_score
from aod_core.eval.fidelity import flatten, ks_statistic, tvd
from aod_core.eval.nearcopy import near_duplicates
from aod_core.eval.registry import MetricInfo
from aod_core.records import Candidate

SECTIONS = {"notes", "embedder", "per_field", "per_pair", "subsampled", "settings", "dependencies"}


def strict_json(out: dict) -> dict:
    """The result must survive strict JSON (no NaN/inf) and hold every registered metric."""
    text = json.dumps(out, allow_nan=False)
    assert set(METRICS) | SECTIONS == set(out)
    for name in METRICS:
        assert out[name] is None or isinstance(out[name], (int, float))
    return json.loads(text)


def test_registry_declares_direction_and_range():
    for name, info in METRICS.items():
        assert isinstance(info, MetricInfo)
        assert info.direction in ("higher", "lower", "neutral"), name
        lo, hi = info.range
        assert hi is None or lo <= hi
        assert info.description


def test_flatten_pools_array_items_and_lengths():
    rec = {"a": 1, "b": [{"c": "x"}, {"c": "y", "d": [1, 2]}], "e": [], "f": {}}
    assert flatten(rec) == {
        "$.a": [1],
        "$.b[#]": [2],
        "$.b[*].c": ["x", "y"],
        "$.b[*].d[#]": [2],
        "$.b[*].d[*]": [1, 2],
        "$.e[#]": [0],
        "$.f": [{}],
    }


SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {"x": {"type": "integer", "minimum": 0}, "c": {"type": "string"}},
    "required": ["x", "c"],
}


def test_validity_copy_duplicate_and_task_success_rates():
    seeds = [{"x": 1, "c": "a"}, {"x": 2, "c": "b"}]
    records = [
        {"x": 5, "c": "a"},  # valid, accepted -> success
        {"x": 5, "c": "a"},  # duplicate of the first
        {"x": -1, "c": "a"},  # schema-invalid
        Candidate.from_text("{x:"),  # does not parse
        {"c": "b", "x": 2},  # exact seed copy (key order does not matter)
        {"x": 7, "c": "z"},  # valid but rejected by the judge
    ]
    verdicts = [True, True, True, False, "accept", "reject"]
    out = strict_json(audit(records, seeds, schema=SCHEMA, verdicts=verdicts))
    assert out["n_candidates"] == 6 and out["n_records"] == 5 and out["n_seeds"] == 2
    assert out["valid_json_rate"] == pytest.approx(5 / 6)
    assert out["schema_valid_rate"] == pytest.approx(4 / 6)
    assert out["exact_copy_rate"] == pytest.approx(1 / 6)
    assert out["duplicate_rate"] == pytest.approx(1 / 6)
    assert out["task_success_rate"] == pytest.approx(1 / 6)
    # The near-duplicate rate includes exact duplicates; the seed copy is a near copy.
    assert out["near_duplicate_rate"] == pytest.approx(1 / 6)
    assert out["near_copy_rate"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError):
        audit(records, seeds, verdicts=[True])


def test_field_overlap_distinct_and_entropy():
    seeds = [{"a": 1, "b": "y"}]
    records = [{"a": 1, "b": "x"}, {"a": 1, "b": "x"}, {"a": 2, "b": "x"}]
    out = strict_json(audit(records, seeds))
    # Overlaps: 1/2, 1/2, 0 (field a equals the seed's in the first two records).
    assert out["field_overlap"] == pytest.approx(1 / 3)
    assert out["field_overlap"] == pytest.approx(metrics.field_overlap(records, seeds))
    # Unigrams 1,"x",1,"x",2,"x": 3 unique of 6; bigrams (1,"x")x2, (2,"x"): 2 of 3.
    assert out["distinct_1"] == pytest.approx(0.5)
    assert out["distinct_2"] == pytest.approx(2 / 3)
    h1 = -(0.5 * math.log2(0.5) + 1 / 3 * math.log2(1 / 3) + 1 / 6 * math.log2(1 / 6))
    h2 = -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))
    assert out["entropy_1"] == pytest.approx(h1)
    assert out["entropy_2"] == pytest.approx(h2)
    assert metrics.ngram_entropy([], 2) == 0.0


def fixed_embedder(texts):
    table = {'{"k":1}': [1.0, 0.0], '{"k":2}': [0.0, 3.0], '{"k":3}': [2.0, 0.0]}
    return [table[t] for t in texts]


def test_self_cossim_and_vendi_with_a_given_embedder():
    out = strict_json(audit([{"k": 1}, {"k": 2}, {"k": 3}], [{"k": 1}], embedder=fixed_embedder))
    # Unit rows e1, e2, e1: cosines 0, 1, 0 over the three pairs.
    assert out["self_cossim"] == pytest.approx(1 / 3)
    # K/n has eigenvalues 2/3, 1/3, 0.
    assert out["vendi_score"] == pytest.approx(math.exp(-(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3))))
    assert out["embedder"]["name"] == "fixed_embedder" and out["embedder"]["dim"] == 2


def test_lexical_embedding_identical_and_disjoint_records():
    same = lexical_embedding([{"s": "red fox"}] * 4)
    assert self_cossim(same) == pytest.approx(1.0)
    assert vendi_score(same) == pytest.approx(1.0)
    x = lexical_embedding([{"a": "alpha"}, {"b": "beta"}])
    assert x.shape == (2, 1024)
    assert self_cossim(x) == pytest.approx(0.0, abs=1e-12)  # no shared token, no bucket collision here
    assert vendi_score(x) == pytest.approx(2.0)
    out = strict_json(audit([{"s": "red fox"}, {"s": "blue fox"}], [{"s": "red fox"}], embedder="lexical"))
    assert out["embedder"]["name"] == "lexical-hashed-tfidf" and out["embedder"]["semantic"] is False


def test_default_embedder_is_the_offline_sentence_model_when_installed(monkeypatch):
    from aod_core.eval import embedder

    recs = [{"s": "a red fox in the forest"}, {"s": "a crimson fox among trees"}, {"s": "quarterly tax figures"}]
    out = strict_json(audit(recs, recs[:1]))
    if embedder.available():
        assert out["embedder"]["name"] == "all-MiniLM-L6-v2" and out["embedder"]["semantic"] is True
        assert out["embedder"]["dim"] == 384
        # semantic: the two fox sentences are closer to each other than to the tax one
        e = embedder.load().encode([json.dumps(r) for r in recs])
        assert e[0] @ e[1] > e[0] @ e[2]
    # without the model the audit says so and falls back to the lexical embedding
    monkeypatch.setattr(embedder, "load", lambda device=None: None)
    out = strict_json(audit(recs, recs[:1]))
    assert out["embedder"]["semantic"] is False and any("lexical fallback" in n for n in out["notes"])


LONG = (
    "the quick brown fox jumps over the lazy dog while seven wizards quietly brew strange potions "
    "under a pale moon and the river keeps running past old mills towards a distant harbour where "
    "ships wait for the morning tide to carry grain and wool to faraway markets"
)


def test_near_duplicates_one_character_apart():
    a = {"id": 1, "text": LONG}
    b = {"id": 1, "text": LONG.replace("wizards", "wizardz")}
    c = {"id": 2, "text": "an entirely different short note"}
    dup, copy = near_duplicates([a, b, c], [c])
    assert dup == [False, True, False]
    assert copy == [False, False, True]
    out = strict_json(audit([a, b, c], [{"id": 1, "text": LONG + " today"}]))
    assert out["duplicate_rate"] == 0.0 and out["exact_copy_rate"] == 0.0
    assert out["near_duplicate_rate"] == pytest.approx(1 / 3)
    assert out["near_copy_rate"] == pytest.approx(2 / 3)  # a and b: all but a few shingles shared


def test_dcr_hand_computed_with_holdout_baseline():
    seeds = [{"x": 0, "c": "a"}, {"x": 10, "c": "b"}]
    records = [{"x": 0, "c": "a"}, {"x": 5, "c": "a"}]
    holdout = [{"x": 10, "c": "a"}]
    out = strict_json(audit(records, seeds, holdout=holdout))
    # Record 2: scaled x 0.5; to seed 1: sqrt((0.5^2 + 0) / 2), to seed 2: sqrt((0.5^2 + 1) / 2).
    d2 = math.sqrt(0.25 / 2)
    assert out["dcr_median"] == pytest.approx(d2 / 2)
    assert out["dcr_p05"] == pytest.approx(0.05 * d2)
    assert out["dcr_holdout_median"] == pytest.approx(math.sqrt(0.5))
    assert out["dcr_holdout_p05"] == pytest.approx(math.sqrt(0.5))
    assert out["dcr_closer_than_holdout_p05"] == 1.0


def test_dcr_missing_number_gets_median_and_indicator():
    seeds = [{"x": 0, "c": "a"}, {"x": 10, "c": "b"}]
    out = strict_json(audit([{"c": "a"}], seeds))
    # x missing: scaled median 0.5 plus missing coordinate 1; category equal to seed 1.
    assert out["dcr_median"] == pytest.approx(math.sqrt((0.25 + 1) / 2))


def test_marginal_and_pairwise_fidelity():
    seeds = [
        {"x": 1, "y": 3, "c": "a", "d": "v"},
        {"x": 2, "y": 2, "c": "b", "d": "u"},
        {"x": 4, "y": 1, "c": "a", "d": "v"},
    ]
    records = [
        {"x": 1, "y": 1, "c": "a", "d": "u"},
        {"x": 2, "y": 2, "c": "a", "d": "u"},
        {"x": 3, "y": 3, "c": "b", "d": "v"},
    ]
    out = strict_json(audit(records, seeds, holdout=seeds))
    pf = out["per_field"]
    assert pf["$.x"]["kind"] == "numeric" and pf["$.c"]["kind"] == "categorical"
    assert pf["$.x"]["ks_seeds"] == pytest.approx(1 / 3)  # at 3: 1.0 vs 2/3
    assert pf["$.y"]["ks_seeds"] == pytest.approx(0.0)
    assert pf["$.c"]["tvd_seeds"] == pytest.approx(0.0)  # a 2/3, b 1/3 on both sides
    assert pf["$.d"]["tvd_seeds"] == pytest.approx(1 / 3)  # u 2/3 vs 1/3
    assert out["ks_mean"] == pytest.approx(1 / 6)
    assert out["tvd_mean"] == pytest.approx(1 / 6)
    # Pearson(x, y): records 1.0 (x=1,2,3; y=1,2,3), seeds -3/sqrt(42/9 * 2) (x=1,2,4; y=3,2,1).
    r_seed = -0.9819805060619657
    assert out["per_pair"]["$.x | $.y"]["seeds"] == pytest.approx(1 - r_seed)
    assert out["corr_gap_mean"] == pytest.approx(1 - r_seed)
    # Joint (c, d): records (a,u) 2/3, (b,v) 1/3; seeds (a,v) 2/3, (b,u) 1/3: disjoint -> 1.
    assert out["per_pair"]["$.c | $.d"]["seeds"] == pytest.approx(1.0)
    assert out["contingency_gap_mean"] == pytest.approx(1.0)
    assert out["ks_mean_holdout"] == out["ks_mean"]  # the holdout is the seeds here
    assert ks_statistic([1, 2, 3], [1, 2, 4]) == pytest.approx(1 / 3)
    assert tvd(["a", "a", "b"], ["a", "b"]) == pytest.approx(1 / 6)
    assert tvd([], ["a"]) is None


def test_knn_precision_and_recall_on_a_line():
    seeds = [{"x": v} for v in (0, 1, 2, 3, 10)]
    # Scaled by the seed range 0..10. Seed radii (3rd neighbour): .3 .2 .2 .3 .9.
    out = strict_json(audit([{"x": v} for v in (0, 1, 2, 3, 4)], seeds, holdout=seeds))
    assert out["knn_precision"] == 1.0
    assert out["knn_recall"] == pytest.approx(0.8)  # seed 10 is beyond every record's ball (max .4 + .3)
    assert out["knn_recall_holdout"] == pytest.approx(0.8)
    out = strict_json(audit([{"x": v} for v in (0, 1, 2, 3, 4, 20)], seeds))
    assert out["knn_precision"] == pytest.approx(5 / 6)  # 20 (scaled 2.0) is outside 1.0 +- .9
    assert out["knn_precision_holdout"] is None


def test_empty_records():
    out = strict_json(audit([], [{"x": 1}], schema=SCHEMA, verdicts=[]))
    for k in (
        "valid_json_rate",
        "schema_valid_rate",
        "task_success_rate",
        "exact_copy_rate",
        "duplicate_rate",
        "near_duplicate_rate",
        "field_overlap",
        "distinct_1",
        "entropy_2",
    ):
        assert out[k] == 0.0, k
    for k in ("self_cossim", "vendi_score", "dcr_median", "ks_mean", "tvd_mean", "knn_precision"):
        assert out[k] is None, k
    assert any("no parsed records" in n for n in out["notes"])


def test_empty_seeds_and_inputs():
    out = strict_json(audit([{"x": 1}, {"x": 2}], []))
    assert out["dcr_median"] is None and out["ks_mean"] is None and out["knn_precision"] is None
    assert out["exact_copy_rate"] == 0.0 and out["field_overlap"] == 0.0
    out = strict_json(audit([], []))
    assert out["n_candidates"] == 0


def test_one_record():
    out = strict_json(audit([{"x": 3, "c": "a"}], [{"x": 1, "c": "a"}, {"x": 5, "c": "b"}]))
    assert out["self_cossim"] is None
    assert out["vendi_score"] == 1.0
    assert out["corr_gap_mean"] is None
    assert out["knn_recall"] is None and out["knn_precision"] is None
    assert out["dcr_median"] == pytest.approx(math.sqrt(0.25 / 2))


def test_constant_column_and_all_null_field():
    seeds = [{"x": 5, "y": 1, "n": None}, {"x": 5, "y": 2, "n": None}, {"x": 5, "y": 3, "n": None}]
    records = [{"x": 5, "y": 1, "n": None}, {"x": 5, "y": 3, "n": None}, {"x": 7, "y": 2, "n": None}]
    out = strict_json(audit(records, seeds))
    pf = out["per_field"]
    assert pf["$.x"]["ks_seeds"] == pytest.approx(1 / 3)
    assert pf["$.n"]["kind"] == "categorical" and pf["$.n"]["tvd_seeds"] == 0.0
    assert pf["$.n"]["null"]["records"] == 3
    assert out["per_pair"]["$.x | $.y"]["seeds"] is None  # x is constant in the seeds
    assert out["corr_gap_mean"] is None
    assert any("corr_gap_mean" in n for n in out["notes"])
    # DCR: constant seed column x gives 0 for 5 and 1 for 7; y scaled by 1..3; n always equal.
    assert out["dcr_median"] == pytest.approx(0.0)
    assert out["dcr_p05"] == 0.0


def test_type_mismatch_in_numeric_field():
    out = strict_json(audit([{"x": "oops"}, {"x": 2}], [{"x": 1}, {"x": 3}]))
    assert out["per_field"]["$.x"]["kind"] == "numeric"
    assert out["per_field"]["$.x"]["mismatched"]["records"] == 1
    assert out["per_field"]["$.x"]["ks_seeds"] == pytest.approx(0.5)


def test_arrays_pooled_per_field():
    seeds = [{"b": [{"s": "m"}, {"s": "f"}]}, {"b": [{"s": "f"}]}]
    records = [{"b": [{"s": "m"}, {"s": "m"}, {"s": "m"}]}]
    out = strict_json(audit(records, seeds))
    pf = out["per_field"]
    assert pf["$.b[*].s"]["pooled"] and pf["$.b[*].s"]["tvd_seeds"] == pytest.approx(2 / 3)
    assert pf["$.b[#]"]["kind"] == "numeric" and pf["$.b[#]"]["ks_seeds"] == pytest.approx(1.0)


def test_subsampling_is_reported_and_deterministic():
    seeds = [{"x": i, "c": "ab"[i % 2]} for i in range(5)]
    records = [{"x": i / 3, "c": "ab"[i % 3 % 2]} for i in range(10)]
    a = strict_json(audit(records, seeds, max_pairs=20, seed=3))
    assert a["subsampled"]["dcr"] == {"subsampled_from": 10, "used": 4}
    assert a["subsampled"]["field_overlap"] == {"subsampled_from": 10, "used": 4}
    assert any(n.startswith("dcr: subsampled 4 of 10") for n in a["notes"])
    b = strict_json(audit(records, seeds, max_pairs=20, seed=3))
    assert a == b
    full = strict_json(audit(records, seeds, max_pairs=None))
    assert full["subsampled"] == {}
    assert strict_json(audit(records, seeds))["subsampled"] == {}


def test_demo_holdout_audits_like_real_data(get_demo):
    ds = get_demo("penguins")
    seeds, hold = ds.seeds.records, ds.holdout.records
    out = strict_json(audit(hold, seeds, schema=ds.schema, holdout=hold))
    assert out["schema_valid_rate"] == 1.0
    assert out["field_overlap"] == pytest.approx(metrics.field_overlap(hold, seeds))
    assert out["distinct_2"] == pytest.approx(metrics.distinct_n(hold, 2))
    assert out["dcr_closer_than_holdout_p05"] <= 0.1
    assert 0.0 <= out["ks_mean"] <= 1 and out["ks_mean_holdout"] == 0.0 and out["tvd_mean_holdout"] == 0.0
    assert out["knn_precision"] > 0.5 and out["knn_recall"] > 0.3


def test_high_cardinality_field_left_out_of_means_and_distances():
    seeds = [{"id": f"s{i}", "c": "ab"[i % 2], "x": i} for i in range(30)]
    records = [{"id": f"r{i}", "c": "ab"[i % 2], "x": i} for i in range(30)]
    out = strict_json(audit(records, seeds))
    assert out["per_field"]["$.id"]["high_cardinality"] and out["per_field"]["$.id"]["tvd_seeds"] == 1.0
    assert not out["per_field"]["$.c"]["high_cardinality"]
    assert out["tvd_mean"] == 0.0 and out["contingency_gap_mean"] is None  # only c is left
    assert out["dcr_median"] == 0.0  # equal apart from the id
    assert any("high-cardinality" in n and "$.id" in n for n in out["notes"])
