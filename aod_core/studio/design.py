"""What the Design page shows of the models before anything is sampled: the scaffold (the canvas the
embedded generator fills), how each string field is written and the user's per-field override,
and the plausibility judge calibrated on the seeds.

Each of these fits or builds something on the seeds (word pieces, the judge's cross-validation),
so results are cached by content: a page rerun on the same dataset costs nothing.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aod_core.canvas.scaffold import Scaffold
from aod_core.data.dependencies import Dependencies, DependencySettings, detect, key_name, parse_spec, schema_order
from aod_core.data.seeds import Dataset
from aod_core.generators import EmbeddedConfig
from aod_core.studio.cells import content_hash
from aod_core.studio.fields import field_values

# ---- scaffold ---------------------------------------------------------------------------------


@dataclass
class ScaffoldPreview:
    skeleton: str
    slots: list[dict[str, Any]]  # Scaffold.describe()
    notes: list[str]
    field_keys: list[str]  # leaf field keys a prompt may pin or forbid: $.island, $.birds[*].sex


def scaffold_preview(dataset: Dataset, string_modes: Mapping[str, str] | None = None) -> ScaffoldPreview:
    """The canvas the embedded generator fills for this dataset (with its default way of writing
    values, and the user's per-field ``string_modes``), for display and for the pin/forbid paths."""
    modes = dict(string_modes or {})
    key = content_hash([dataset.schema.resolved, dataset.seeds.records, sorted(modes.items())])
    if key not in _PREVIEWS:  # building it trains word pieces: seconds on text-heavy seeds, not every rerun
        options = EmbeddedConfig(string_modes=modes).canvas_options()
        sc = Scaffold.build(dataset.schema.resolved, dataset.seeds.records, options)
        while len(_PREVIEWS) >= 16:
            _PREVIEWS.pop(next(iter(_PREVIEWS)))
        _PREVIEWS[key] = ScaffoldPreview(sc.skeleton(), sc.describe(), list(sc.notes), scaffold_field_keys(sc))
    return copy.deepcopy(_PREVIEWS[key])


_PREVIEWS: dict[str, ScaffoldPreview] = {}  # content hash -> preview, oldest dropped first


def string_field_rows(dataset: Dataset, string_modes: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """One row per string field of the embedded generator's canvas: the seeds' values and distinct
    values, how the generator writes it by default and with the user's override ("" = default)."""
    overrides = dict(string_modes or {})
    values = field_values(dataset.seeds.records, dataset.schema)
    default = Scaffold.build(dataset.schema.resolved, dataset.seeds.records, EmbeddedConfig().canvas_options())
    chosen = (
        Scaffold.build(
            dataset.schema.resolved, dataset.seeds.records, EmbeddedConfig(string_modes=overrides).canvas_options()
        )
        if overrides
        else default
    )

    def written(sc: Scaffold) -> dict[str, str]:
        out: dict[str, str] = {}
        for sl in sc.slots:
            if sl.mode and sl.key not in out:
                out[sl.key] = (
                    "vocabulary"
                    if sl.mode == "vocabulary"
                    else "word pieces"
                    if sl.pieces is not None
                    else "characters"
                )
        return out

    before, now = written(default), written(chosen)
    rows = []
    for key, how in before.items():
        strs = [v for v in values.get(key, []) if isinstance(v, str)]
        rows.append(
            {
                "field": key,
                "values": len(strs),
                "distinct": len(set(strs)),
                "default": how,
                "override": overrides.get(key, ""),
                "written as": now.get(key, how),
            }
        )
    return rows


def scaffold_field_keys(scaffold: Scaffold) -> list[str]:
    keys: list[str] = []
    for s in scaffold.leaf_slots():
        if s.key not in keys:
            keys.append(s.key)
    return keys


# ---- dependencies and keys ---------------------------------------------------------------------


def dataset_dependencies(dataset: Dataset, settings: Mapping[str, Any] | None = None) -> Dependencies:
    """The seeds' dependencies and keys with the user's ``settings`` (``DependencySettings`` as a
    dict; InputError for one that does not fit the seeds)."""
    s = DependencySettings.from_dict(dict(settings or {}))
    return detect(dataset.seeds.records, s, schema_order(dataset.schema.resolved))


def dependency_rows(dataset: Dataset, settings: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per dependency and key the seeds show (whether the user keeps it or not) and per one
    the user added: ``use`` is the user's choice (kept while the mode is ``auto``), ``holdout`` how
    many of the dataset's real holdout records break it (a check of the detection on records it
    never saw)."""
    s = DependencySettings.from_dict(dict(settings or {}))
    found = detect(dataset.seeds.records, DependencySettings(add=s.add), schema_order(dataset.schema.resolved))
    hold = dataset.holdout.records if dataset.holdout else []
    ignored = {_spec_text(x) for x in s.ignore}
    rows = []
    for r in found.rows():
        name = r["rule"]
        broken = None
        if hold and r["kind"] == "dependency":
            d = next(d for d in found.fds if d.name == name)
            broken = sum(1 for h in hold if d in [v[0] for v in found.violations(h)])
        rows.append(
            {
                "use": name not in ignored,
                "kind": r["kind"],
                "rule": name,
                "source": r["source"],
                "evidence": r["evidence"],
                "holdout breaking it": "—" if broken is None else f"{broken}/{len(hold)}",
            }
        )
    return rows


def dependency_settings_from(rows: list[Mapping[str, Any]], mode: str, add: list[str]) -> dict[str, Any]:
    """The settings a Design page's choices mean: the rows unticked are ignored."""
    ignore = [r["rule"] for r in rows if not r.get("use") and r.get("source") != "added"]
    s = DependencySettings(mode=mode, ignore=ignore, add=[a for a in add if a.strip()])
    s.check()
    return s.to_dict()


def _spec_text(item: str) -> str:
    kind, parts = parse_spec(item)
    return key_name(parts) if kind == "key" else f"{parts[0]} -> {parts[1]}"


# ---- the judge's calibration on the seeds -----------------------------------------------------


@dataclass
class JudgeCalibration:
    summary: dict[str, Any]  # the plausibility model's report (held-out accept rate, threshold, rules...)
    rules: list[dict[str, Any]]  # one row per evidence rule
    holdout_accept_rate: float | None  # share of the dataset's real holdout records accepted, when it has one
    holdout_rejections: list[dict[str, Any]]  # the holdout records it rejects, with why (a few)


def judge_calibration(
    dataset: Dataset, *, accept_share: float = 0.9, on_progress: Callable[[int, int], None] | None = None
) -> JudgeCalibration:
    """Fit (or read from the cache) the plausibility judge on the dataset's seeds and report how it
    calibrated; with a holdout file, also how many of those real records it accepts."""
    from aod_core.agents.plausibility import PlausibilitySettings, fit_cached

    model = fit_cached(dataset.seeds.records, PlausibilitySettings(accept_share=accept_share), on_progress=on_progress)
    hold = dataset.holdout.records if dataset.holdout else []
    rate, rejected = None, []
    if hold:
        got = model.assess(hold)
        rate = sum(a.accept for a in got) / len(got)
        for r, a in zip(hold, got):
            if not a.accept and len(rejected) < 10:
                rejected.append(
                    {
                        "record": json.dumps(r, ensure_ascii=False),
                        "score": round(a.score, 3),
                        "why": "; ".join(a.reasons(2)),
                    }
                )
    return JudgeCalibration(model.describe(), model.rule_rows(), rate, rejected)
