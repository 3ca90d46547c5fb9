"""Figure builders in aod_core/charts.py: the data that reaches the traces, titles, degenerate input."""

import json
import math

import numpy as np
import plotly.graph_objects as go
import pytest

from aod_core.runs.charts import featurise, metric_curves, projection, score_histogram


def _no_nan(fig: go.Figure) -> None:
    """Neither the data nor the layout holds a NaN (plotly would serialise it as null or break)."""
    text = fig.layout.to_plotly_json()
    assert "NaN" not in json.dumps(text) and "Infinity" not in json.dumps(text)
    for trace in fig.data:
        for axis in ("x", "y"):
            values = getattr(trace, axis, None)
            if values is not None:
                assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


def _trace(fig: go.Figure, name: str):
    return next(t for t in fig.data if t.name == name)


# -- metric curves -------------------------------------------------------------------------------


def test_metric_curves_plot_each_metric_per_iteration():
    rows = [
        {
            "iteration": 0,
            "reward": 0.2,
            "task_success_rate": 0.5,
            "schema_valid_rate": 0.9,
            "field_overlap": 0.4,
            "duplicate_rate": 0.1,
            "distinct_2": 0.7,
        },
        {
            "iteration": 1,
            "reward": 0.3,
            "task_success_rate": None,
            "schema_valid_rate": 1.0,
            "field_overlap": 0.3,
            "duplicate_rate": 0.0,
        },  # TSR None, distinct_2 missing: left out of those curves
        {
            "iteration": 2,
            "reward": 0.45,
            "task_success_rate": 0.75,
            "schema_valid_rate": 1.0,
            "field_overlap": 0.2,
            "duplicate_rate": 0.05,
            "distinct_2": 0.8,
        },
    ]
    fig = metric_curves(rows)
    assert len(fig.data) == 6
    reward = _trace(fig, "reward")
    assert list(reward.x) == [1, 2, 3] and list(reward.y) == [0.2, 0.3, 0.45]  # iterations shown 1-based
    tsr = _trace(fig, "task success rate")
    assert list(tsr.x) == [1, 3] and list(tsr.y) == [0.5, 0.75]
    d2 = _trace(fig, "distinct-2")
    assert list(d2.x) == [1, 3] and list(d2.y) == [0.7, 0.8]
    assert list(_trace(fig, "duplicate rate").y) == [0.1, 0.0, 0.05]
    _no_nan(fig)


def test_metric_curves_titles_say_direction_and_rates_span_0_to_1():
    fig = metric_curves([{"iteration": 0, "reward": 0.5}])
    titles = [a.text for a in fig.layout.annotations]
    assert "field overlap with seeds (lower is better)" in titles
    assert "duplicate rate (lower is better)" in titles
    for higher in ("reward", "task success rate", "schema-valid rate", "distinct-2"):
        assert f"{higher} (higher is better)" in titles
    assert sum("lower is better" in t for t in titles) == 2
    ranges = [fig.layout[k].range for k in fig.layout if k.startswith("yaxis")]
    assert len(ranges) == 6 and all(tuple(r) == (0, 1) for r in ranges)
    # metrics with no value anywhere give empty curves, not an error
    assert list(_trace(fig, "distinct-2").y) == []


def test_metric_curves_empty_and_malformed_rows():
    fig = metric_curves([])
    assert [a.text for a in fig.layout.annotations] == ["No finished iteration yet"]
    assert len(fig.data) == 0
    # a row without an iteration, or a NaN / bool value, never reaches a trace
    fig = metric_curves([{"reward": 0.1}, {"iteration": 0, "reward": float("nan"), "duplicate_rate": True}])
    assert list(_trace(fig, "reward").y) == [] and list(_trace(fig, "duplicate rate").y) == []
    _no_nan(fig)


# -- score histogram -----------------------------------------------------------------------------


def _cand(score, verdict, judged_by="llm"):
    return {
        "text": "{}",
        "record": {},
        "checks": {},
        "verdict": verdict,
        "score": score,
        "reasons": [],
        "judged_by": judged_by,
        "index": 0,
        "phase": "main",
        "iteration": 0,
        "accepted": verdict == "accept",
    }


def test_score_histogram_splits_by_verdict():
    cands = [
        _cand(0.9, "accept"),
        _cand(0.8, "accept"),
        _cand(0.2, "reject"),
        _cand(0.0, "reject", "checks"),
        _cand(None, "reject", "failed"),
    ]
    fig = score_histogram(cands)
    by_name = {t.name: list(t.x) for t in fig.data}
    assert by_name == {"accept (2)": [0.9, 0.8], "reject (1)": [0.2], "reject (failed checks) (1)": [0.0]}
    assert all(isinstance(t, go.Histogram) for t in fig.data)
    assert fig.layout.barmode == "stack"
    assert "1 candidate without a score" in fig.layout.title.text
    _no_nan(fig)


def test_score_histogram_without_scores():
    for cands in ([], [_cand(None, "reject", "failed")]):
        fig = score_histogram(cands)
        assert len(fig.data) == 0
        assert fig.layout.annotations[0].text == "No judged candidates yet"


# -- projection ----------------------------------------------------------------------------------


def test_featurise_documented_encoding():
    records = [
        {"a": 1.0, "s": "x", "arr": [{"v": 1}, {"v": 3}], "o": {"b": True}},
        {"a": 3.0, "s": "y", "arr": [], "o": {"b": False}},
        {"s": "x", "arr": [{"v": 5}], "o": {"b": None}},
    ]
    x, names = featurise(records)
    col = {n: x[:, i] for i, n in enumerate(names)}
    np.testing.assert_allclose(col["a"], [-1, 1, 0])  # z-scored on present values, missing -> 0
    np.testing.assert_allclose(col["a?missing"], [0, 0, 1])
    np.testing.assert_allclose(col["arr[#]"], (np.array([2, 0, 1]) - 1) / np.std([2, 0, 1]))
    np.testing.assert_allclose(col["arr[].v"], [-1, 0, 1])  # item mean 2 vs 5, z-scored; empty array -> missing
    np.testing.assert_allclose(col['s="x"'], [1, 0, 1])
    np.testing.assert_allclose(col["o.b=true"], [1, 0, 0])
    np.testing.assert_allclose(col["o.b=null"], [0, 0, 1])
    assert not np.isnan(x).any()


def test_featurise_caps_categories_and_shares_array_items():
    records = [{"c": f"v{i}"} for i in range(30)] + [{"c": "v0"}]
    x, names = featurise(records)
    assert len([n for n in names if n.startswith("c=")]) == 21 and "c=other" in names
    other = x[:, names.index("c=other")]
    assert other.sum() == 10  # 30 distinct values, the top 20 kept
    x, names = featurise([{"t": ["a", "a", "b", "c"]}, {"t": ["b"]}])
    np.testing.assert_allclose(x[:, names.index('t[]="a"')], [0.5, 0])


def _cluster(rng, centre, n, colour):
    return [
        {
            "x": float(centre + rng.normal(0, 0.1)),
            "y": float(-centre + rng.normal(0, 0.1)),
            "colour": colour,
            "tags": ["t"] * int(rng.integers(1, 3)),
        }
        for _ in range(n)
    ]


def test_projection_separates_two_clusters():
    rng = np.random.default_rng(1)
    seeds = _cluster(rng, 0.0, 40, "red")
    generated = _cluster(rng, 10.0, 30, "blue")
    fig, caption = projection(seeds, generated, labels=["accepted"] * 20 + ["rejected"] * 10)
    names = [t.name for t in fig.data]
    assert names == ["seed (40)", "accepted (20)", "rejected (10)"]
    seed_x = np.array(fig.data[0].x)
    gen_x = np.concatenate([np.array(fig.data[1].x), np.array(fig.data[2].x)])
    gap = abs(seed_x.mean() - gen_x.mean())
    assert gap > 5 * max(seed_x.std(), gen_x.std())  # PC1 alone tells the clusters apart
    assert (seed_x.max() < gen_x.min()) or (gen_x.max() < seed_x.min())
    assert "40 seed, 20 accepted, 10 rejected" in caption and "PC1 explains" in caption and "features" in caption
    assert "random" not in caption
    assert json.loads(fig.data[0].text[0])["colour"] == "red"  # hover shows the record
    _no_nan(fig)


def test_projection_subsamples_deterministically():
    rng = np.random.default_rng(2)
    seeds, generated = _cluster(rng, 0, 60, "r"), _cluster(rng, 5, 60, "b")
    fig1, cap1 = projection(seeds, generated, max_points=50, seed=7)
    fig2, cap2 = projection(seeds, generated, max_points=50, seed=7)
    assert sum(len(t.x) for t in fig1.data) == 50
    assert "a random 50 of 120 records shown (seed 7)" in cap1 and cap1 == cap2
    assert fig1.to_json() == fig2.to_json()
    assert projection(seeds, generated, max_points=50, seed=8)[0].to_json() != fig1.to_json()
    labels = ["accepted"] + ["rejected"] * 59
    names = [t.name.split(" ")[0] for t in projection(seeds, generated, labels=labels, max_points=50, seed=7)[0].data]
    assert names == ["seed", "accepted", "rejected"] or names == ["seed", "rejected"]  # input order, not sample order
    fig, cap = projection(seeds, generated, max_points=120)
    assert sum(len(t.x) for t in fig.data) == 120 and "random" not in cap


@pytest.mark.parametrize(
    "seeds,generated",
    [
        ([], []),
        ([{"a": 1}], []),
        ([], [{"a": 1}]),
        ([{"a": 1, "b": "x"}] * 5, [{"a": 1, "b": "x"}] * 3),  # every feature constant
        ([{}, {}], [{}]),  # no leaves at all
        ([{"a": [1]}, {"a": [1]}], [{"a": [1]}]),
    ],
)
def test_projection_degenerate_inputs_annotate(seeds, generated):
    fig, caption = projection(seeds, generated)
    assert len(fig.data) == 0 and fig.layout.annotations and caption.startswith("Nothing projected")
    _no_nan(fig)


def test_projection_one_varying_feature_and_odd_values():
    # one informative feature: PC2 is 0, not NaN
    fig, caption = projection([{"a": 1, "b": "k"}, {"a": 2, "b": "k"}], [{"a": 3, "b": "k"}])
    assert "over 1 feature " in caption and "PC1 explains 100% and PC2 0%" in caption
    assert all(v == 0 for t in fig.data for v in t.y) and len({v for t in fig.data for v in t.x}) == 3
    _no_nan(fig)
    # records that failed to decode (None), NaN, huge numbers, unicode: no crash, no NaN
    fig, caption = projection([{"a": 1}, {"a": 1e308}], [None, {"a": float("nan")}, {"a": "ünï", "z": [[1, 2], []]}])
    assert "PC1 explains" in caption
    _no_nan(fig)


def test_projection_checks_labels_length():
    with pytest.raises(ValueError, match="labels"):
        projection([{"a": 1}], [{"a": 2}], labels=["x", "y"])


def test_rejection_chart_stacks_the_most_frequent_reasons():
    from aod_core.runs.charts import rejection_chart

    rows = [
        {"iteration": 1, "reason": "a", "records": 3, "of": 8},
        {"iteration": 1, "reason": "b", "records": 1, "of": 8},
        {"iteration": 2, "reason": "a", "records": 2, "of": 8},
        {"iteration": 2, "reason": "c", "records": 5, "of": 8},
    ]
    fig = rejection_chart(rows, top=2)
    names = [t.name for t in fig.data]
    assert names == ["a", "c", "other reasons"]
    assert list(fig.data[0].y) == [3, 2] and list(fig.data[2].y) == [1, 0]
    assert "No rejected records" in rejection_chart([]).layout.annotations[0].text
