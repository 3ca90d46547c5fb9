"""Plotly figures of a run: metric curves, judge score histogram, seed-vs-generated projection.

Pure functions from rows of the run store (``RunStore.metrics()``, ``.candidates()``, records) to
``go.Figure``; the app shows them with ``st.plotly_chart`` and ``report.py`` embeds them in HTML.
No streamlit here. Empty or degenerate input gives a figure with an annotation saying so, never an
exception or a NaN. Iterations are shown 1-based, as the CLI prints them.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from aod_core.records import canonical_json, render_path, walk

# key in metrics.jsonl / bench results.json -> (label, higher is better)
SERIES = {
    "reward": ("reward", True),
    "task_success_rate": ("task success rate", True),
    "schema_valid_rate": ("schema-valid rate", True),
    "field_overlap": ("field overlap with seeds", False),
    "duplicate_rate": ("duplicate rate", False),
    "distinct_2": ("distinct-2", True),
    "dcr_median": ("median distance to closest seed", True),
    "seconds": ("wall time (s)", False),
}
# the curves per iteration (every one a fraction in [0, 1]) and the ``aod bench`` bar panels
CURVES = ("reward", "task_success_rate", "schema_valid_rate", "field_overlap", "duplicate_rate", "distinct_2")
BENCH_BARS = ("task_success_rate", "schema_valid_rate", "field_overlap", "distinct_2", "dcr_median", "seconds")
VERDICT_COLOURS = {"accept": "#2ca02c", "reject": "#d62728", "reject (failed checks)": "#ff9896"}
GROUP_COLOURS = ["#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
TOP_VALUES = 20  # categorical values kept per field in the projection; the rest become "other"


def _number(v: Any) -> float | None:
    """A finite float, or None for missing / None / bool / NaN (a bool is not a rate)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        v = float(v)
    except OverflowError:  # an integer too large for a float
        return None
    return v if math.isfinite(v) else None


def _titles(keys: Sequence[str]) -> list[str]:
    return [f"{SERIES[k][0]} ({'higher' if SERIES[k][1] else 'lower'} is better)" for k in keys]


def _message(text: str, title: str | None = None) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 15})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title=title, height=300, template="plotly_white")
    return fig


# -- metric curves -------------------------------------------------------------------------------


def metric_curves(metrics: list[dict]) -> go.Figure:
    """Per-iteration curves of the six batch metrics in a 2x3 grid, y in [0, 1].

    Rows are ``metrics.jsonl`` lines; a key missing or None in a row is left out of that curve."""
    rows = [m for m in metrics if isinstance(m, dict) and _number(m.get("iteration")) is not None]
    if not rows:
        return _message("No finished iteration yet", "Metrics per iteration")
    fig = make_subplots(rows=2, cols=3, subplot_titles=_titles(CURVES), horizontal_spacing=0.07, vertical_spacing=0.18)
    for i, key in enumerate(CURVES):
        label = SERIES[key][0]
        points = [(int(m["iteration"]) + 1, _number(m.get(key))) for m in rows]
        points = [(x, y) for x, y in points if y is not None]
        fig.add_trace(
            go.Scatter(
                x=[x for x, _ in points],
                y=[y for _, y in points],
                name=label,
                mode="lines+markers",
                cliponaxis=False,
                showlegend=False,
                hovertemplate=f"{label}<br>iteration %{{x}}: %{{y:.3f}}<extra></extra>",
            ),
            row=i // 3 + 1,
            col=i % 3 + 1,
        )
    fig.update_yaxes(range=[0, 1])
    fig.update_xaxes(dtick=1 if len(rows) <= 20 else None)
    fig.update_xaxes(title_text="iteration", row=2)
    fig.update_annotations(font_size=12)
    fig.update_layout(title="Metrics per iteration", height=520, template="plotly_white", margin={"t": 90})
    return fig


# -- judge scores --------------------------------------------------------------------------------


def score_histogram(candidates: list[dict]) -> go.Figure:
    """Judge scores (0-1) stacked by verdict. Records rejected by the exact checks get score 0 without
    an LLM verdict, so they form their own group; candidates without a score are counted in the title."""
    groups: dict[str, list[float]] = {}
    unscored = 0
    for c in candidates:
        score = _number(c.get("score"))
        if score is None:
            unscored += 1
            continue
        verdict = str(c.get("verdict") or "no verdict")
        if verdict == "reject" and c.get("judged_by") == "checks":
            verdict = "reject (failed checks)"
        groups.setdefault(verdict, []).append(score)
    title = "Judge scores"
    if unscored:
        title += f" ({unscored} candidate{'s' if unscored != 1 else ''} without a score not shown)"
    if not groups:
        return _message("No judged candidates yet", title)
    fig = go.Figure()
    for verdict in [v for v in VERDICT_COLOURS if v in groups] + sorted(set(groups) - set(VERDICT_COLOURS)):
        fig.add_trace(
            go.Histogram(
                x=groups[verdict],
                name=f"{verdict} ({len(groups[verdict])})",
                legendgroup=verdict,
                marker_color=VERDICT_COLOURS.get(verdict, "#7f7f7f"),
                xbins={"start": 0, "end": 1.0001, "size": 0.05},
            )
        )
    fig.update_layout(
        title=title,
        barmode="stack",
        height=360,
        template="plotly_white",
        xaxis={"title": "judge score", "range": [0, 1.0001]},
        yaxis={"title": "candidates"},
    )
    return fig


def rejection_chart(rows: list[dict], top: int = 8) -> go.Figure:
    """Stacked bars: per iteration, how many records each of the most frequent rejection reasons
    covers (``runview.rejection_reasons`` rows); the rest are summed as "other reasons"."""
    if not rows:
        return _message("No rejected records yet", "Why records were rejected")
    totals: dict[str, int] = {}
    for r in rows:
        totals[r["reason"]] = totals.get(r["reason"], 0) + r["records"]
    keep = sorted(totals, key=lambda k: -totals[k])[:top]
    iterations = sorted({r["iteration"] for r in rows})
    fig = go.Figure()
    for reason in keep + (["other reasons"] if len(totals) > top else []):
        ys = []
        for it in iterations:
            ys.append(
                sum(
                    r["records"]
                    for r in rows
                    if r["iteration"] == it
                    and (r["reason"] == reason or (reason == "other reasons" and r["reason"] not in keep))
                )
            )
        label = reason if len(reason) <= 60 else reason[:59] + "…"
        fig.add_trace(go.Bar(x=iterations, y=ys, name=label))
    fig.update_layout(
        title="Why records were rejected",
        barmode="stack",
        height=360,
        template="plotly_white",
        xaxis={"title": "iteration", "dtick": 1},
        yaxis={"title": "records"},
        legend={"font": {"size": 10}},
    )
    return fig


# -- projection ----------------------------------------------------------------------------------


def _features(record: Any) -> tuple[dict[str, list[float]], dict[str, list[str]]]:
    """The leaves of one JSON value (``records.walk``) as numbers and categories by path: ``a.b``; an
    array adds its length as ``path[#]`` and its items' leaves under ``path[]`` (so all items of an
    array pool into the same features); an empty object adds nothing."""
    nums: dict[str, list[float]] = {}
    cats: dict[str, list[str]] = {}
    for path, value in walk(record, lengths=True):
        if isinstance(value, dict):
            continue
        key = render_path(path, root="", items="") or "$"
        if _number(value) is not None:
            nums.setdefault(key, []).append(_number(value))
        else:  # strings, booleans, null (and NaN/inf, which JSON cannot hold anyway) are categories
            cats.setdefault(key, []).append(canonical_json(value))
    return nums, cats


def featurise(records: Sequence[Any]) -> tuple[np.ndarray, list[str]]:
    """A float matrix (records x features) and the feature names, for PCA.

    * numbers: per path the mean over the record's values (one, or one per array item), z-scored
      with the pooled mean and std of all records given; missing -> 0, plus a ``path?missing``
      0/1 column when some record lacks the path;
    * strings / booleans / null: one column per value (the ``TOP_VALUES`` most frequent per path,
      the rest pooled as ``other``) holding the share of the record's values at that path, i.e.
      one-hot for a plain field and a distribution for the items of an array;
    * array lengths: a number at ``path[#]``.
    Columns that are constant over all records carry no information and are dropped."""
    per_record = []
    for r in records:
        nums, cats = _features(r)
        per_record.append(({k: float(np.mean(v)) for k, v in nums.items()}, {k: Counter(v) for k, v in cats.items()}))
    n = len(per_record)
    columns: list[np.ndarray] = []
    names: list[str] = []
    for path in sorted({p for nums, _ in per_record for p in nums}):
        x = np.array([nums.get(path, np.nan) for nums, _ in per_record], dtype=float)
        present = ~np.isnan(x)
        x = x / max(np.abs(x[present]).max(), 1e-300)  # z-scores do not change; 1e308 no longer overflows
        mean, std = x[present].mean(), x[present].std()
        z = np.where(present, (x - mean) / std if std > 0 else 0.0, 0.0)
        columns.append(z)
        names.append(path)
        if not present.all():
            columns.append((~present).astype(float))
            names.append(f"{path}?missing")
    for path in sorted({p for _, cats in per_record for p in cats}):
        total = Counter()
        for _, cats in per_record:
            total.update(cats.get(path, {}))
        top = [v for v, _ in total.most_common(TOP_VALUES)]
        keep = set(top)
        # values are JSON text ('"Dream"', 'true', 'null'), so the bare word other never clashes
        for value in top + (["other"] if len(total) > len(top) else []):
            col = np.zeros(n)
            for i, (_, cats) in enumerate(per_record):
                counts = cats.get(path)
                if counts:
                    hit = (
                        sum(c for v, c in counts.items() if v not in keep) if value == "other" else counts.get(value, 0)
                    )
                    col[i] = hit / sum(counts.values())
            columns.append(col)
            names.append(f"{path}={value}")
    if not columns:
        return np.zeros((n, 0)), []
    matrix = np.column_stack(columns)
    varying = matrix.std(axis=0) > 1e-12
    return matrix[:, varying], [name for name, keep_it in zip(names, varying) if keep_it]


def _hover(record: Any, limit: int = 300) -> str:
    text = json.dumps(record, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def projection(
    seeds: list[dict], generated: list[dict], *, labels: list[str] | None = None, max_points: int = 2000, seed: int = 0
) -> tuple[go.Figure, str]:
    """2-D PCA of seed and generated records (features: ``featurise``), coloured by group.

    ``labels`` (one per generated record, e.g. "accepted"/"rejected") name the generated groups;
    without them they are all "generated". Above ``max_points`` records a uniform random subset is
    drawn with ``seed`` (the same inputs give the same picture). Returns the figure and a one-line
    caption: what was projected, the features, the explained variance, the subsampling."""
    if labels is not None and len(labels) != len(generated):
        raise ValueError(f"labels has {len(labels)} entries for {len(generated)} generated records")
    records = list(seeds) + list(generated)
    groups = ["seed"] * len(seeds) + (
        [str(x) for x in labels] if labels is not None else ["generated"] * len(generated)
    )
    total = len(records)
    order = list(dict.fromkeys(groups))  # legend and colours follow the input, not the subsample
    sub = ""
    if total > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        records, groups = [records[i] for i in keep], [groups[i] for i in keep]
        sub = f"; a random {max_points} of {total} records shown (seed {seed})"
    counts = Counter(groups)
    what = ", ".join(f"{counts[g]} {g}" for g in order if counts[g]) or "no records"
    title = "Seed vs generated records (PCA)"
    if len(records) < 2:
        return _message("Need at least 2 records to project", title), f"Nothing projected: {what}."
    x, names = featurise(records)
    if x.shape[1] == 0:
        return _message(
            "All records are identical in every feature: nothing to project", title
        ), f"Nothing projected: {what}, no feature varies{sub}."
    x = x - x.mean(axis=0)  # PCA = SVD of the centred matrix
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    var = s**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    coords = np.zeros((len(records), 2))
    k = min(2, len(s))
    coords[:, :k] = u[:, :k] * s[:k]
    evr = [float(ratio[i]) if i < len(ratio) else 0.0 for i in range(2)]
    fig = go.Figure()
    for j, group in enumerate(order):
        if not counts[group]:
            continue
        idx = [i for i, g in enumerate(groups) if g == group]
        colour = "#ff7f0e" if group == "seed" else GROUP_COLOURS[j % len(GROUP_COLOURS)]
        marker = {
            "size": 7 if group == "seed" else 6,
            "color": colour,
            "opacity": 0.75,
            "symbol": "diamond" if group == "seed" else "circle",
        }
        _points(fig, coords[idx], f"{group} ({len(idx)})", marker, [_hover(records[i]) for i in idx])
    _pca_axes(fig, title, evr, "variance")
    caption = (
        f"PCA of {what} over {len(names)} feature{'s' if len(names) != 1 else ''} (numbers z-scored, other values one-hot); "
        f"PC1 explains {evr[0]:.0%} and PC2 {evr[1]:.0%} of the variance{sub}."
    )
    return fig, caption


# -- DiffLM latent space ---------------------------------------------------------------------------


def latent_projection(
    seed_latents: Any,
    sampled_latents: Any,
    *,
    seed_records: Sequence[Any] | None = None,
    labels: Sequence[str] | None = None,
) -> tuple[go.Figure, str]:
    """2-D PCA of DiffLM latents: the seeds' encoder means and latents drawn by the latent diffusion.

    The axes are the seeds' principal directions (PCA fitted on the seed latents only), so a sampled
    latent far from every seed shows up far from them. ``seed_records`` (one per seed latent) are the
    seeds' hover texts; ``labels`` (one per sampled latent, e.g. "valid"/"invalid") split the sampled
    points into groups. Returns the figure and a one-line caption."""
    title = "DiffLM latent space (PCA of the seeds' latents)"
    s = np.asarray(seed_latents, dtype=float).reshape(len(seed_latents), -1) if len(seed_latents) else np.zeros((0, 0))
    g = (
        np.asarray(sampled_latents, dtype=float).reshape(len(sampled_latents), -1)
        if len(sampled_latents)
        else np.zeros((0, s.shape[1] if s.size else 0))
    )
    if labels is not None and len(labels) != len(g):
        raise ValueError(f"labels has {len(labels)} entries for {len(g)} sampled latents")
    if len(s) < 2:
        return _message("Need at least 2 seed latents to project", title), "Nothing projected: fewer than 2 seeds."
    if len(g) and g.shape[1] != s.shape[1]:
        raise ValueError(f"sampled latents have {g.shape[1]} dimensions, seed latents {s.shape[1]}")
    finite = np.isfinite(s).all() and np.isfinite(g).all()
    if not finite:
        return _message(
            "Latents contain NaN or infinity: nothing to project", title
        ), "Nothing projected: non-finite latents."
    mean = s.mean(axis=0)
    _, sv, vt = np.linalg.svd(s - mean, full_matrices=False)
    var = sv**2
    ratio = var / var.sum() if var.sum() > 0 else np.zeros_like(var)
    k = min(2, vt.shape[0])
    basis = np.zeros((2, s.shape[1]))
    basis[:k] = vt[:k]
    ps, pg = (s - mean) @ basis.T, (g - mean) @ basis.T if len(g) else np.zeros((0, 2))
    evr = [float(ratio[i]) if i < len(ratio) else 0.0 for i in range(2)]
    fig = go.Figure()
    hover = (
        [_hover(r) for r in seed_records]
        if seed_records is not None and len(seed_records) == len(s)
        else [f"seed {i + 1}" for i in range(len(s))]
    )
    fig.add_trace(
        go.Scatter(
            x=ps[:, 0],
            y=ps[:, 1],
            mode="markers",
            name=f"seed latents ({len(s)})",
            marker={"size": 7, "color": "#ff7f0e", "opacity": 0.75, "symbol": "diamond"},
            text=hover,
            hovertemplate="%{text}",
        )
    )
    groups = [str(x) for x in labels] if labels is not None else ["sampled"] * len(g)
    for j, group in enumerate(dict.fromkeys(groups)):
        idx = [i for i, x in enumerate(groups) if x == group]
        marker = {"size": 6, "color": GROUP_COLOURS[j % len(GROUP_COLOURS)], "opacity": 0.7}
        _points(fig, pg[idx], f"{group} latents ({len(idx)})", marker, [f"sampled latent {i + 1}" for i in idx])
    _pca_axes(fig, title, evr, "seed variance")
    caption = (
        f"PCA of {len(s)} seed latents (encoder means, {s.shape[1]} dimensions) with {len(g)} latents drawn "
        f"by the latent diffusion model projected on the same axes; PC1 explains {evr[0]:.0%} and PC2 "
        f"{evr[1]:.0%} of the seeds' latent variance."
    )
    return fig, caption


# -- aod bench -----------------------------------------------------------------------------------


def bench_figures(results: dict[str, Any]) -> list[go.Figure]:
    """``aod bench`` charts: one bar panel per headline metric (methods side by side), then the
    per-iteration curves of every AoD method."""
    methods = results.get("methods") or {}
    if not methods:
        return [_message("No method finished yet", "aod bench")]
    names = list(methods)
    fig = make_subplots(
        rows=2, cols=3, subplot_titles=_titles(BENCH_BARS), horizontal_spacing=0.07, vertical_spacing=0.22
    )
    for i, key in enumerate(BENCH_BARS):
        label = SERIES[key][0]
        ys = [_number(methods[n].get(key)) for n in names]
        fig.add_trace(
            go.Bar(
                x=names,
                y=[0 if y is None else y for y in ys],
                name=label,
                showlegend=False,
                marker_color=[GROUP_COLOURS[j % len(GROUP_COLOURS)] for j in range(len(names))],
                text=["n/a" if y is None else f"{y:.3g}" for y in ys],
                textposition="outside",
                cliponaxis=False,
            ),
            row=i // 3 + 1,
            col=i % 3 + 1,
        )
    fig.update_annotations(font_size=12)
    fig.update_layout(
        title=f"aod bench: {len(names)} methods, {results.get('budget')} records each",
        height=560,
        template="plotly_white",
        margin={"t": 90},
    )
    out = [fig]
    for name, curve in (results.get("curves") or {}).items():
        f = metric_curves(curve)
        f.update_layout(title=f"{name}: metrics per iteration")
        out.append(f)
    return out


def _pca_axes(fig: Any, title: str, evr: Any, of: str) -> None:
    """The layout of a two-component PCA scatter: each axis says the share of ``of`` it explains."""
    fig.update_layout(
        title=title,
        height=480,
        template="plotly_white",
        xaxis={"title": f"PC1 ({evr[0]:.0%} of {of})", "zeroline": False},
        yaxis={"title": f"PC2 ({evr[1]:.0%} of {of})", "zeroline": False},
    )


def _points(fig: Any, xy: Any, name: str, marker: dict, text: list[str]) -> None:
    """One group of a 2-D projection as a marker trace, its hover text per point."""
    fig.add_trace(
        go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", name=name, marker=marker, text=text, hovertemplate="%{text}")
    )
