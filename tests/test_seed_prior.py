"""The seeds' coarse conditional (generators/seed_prior.py): which positions it covers, what it says
given a committed plan, that the prompt's biases win over it, and its effect on a fitted model."""

from __future__ import annotations

import random

import pytest
import torch

from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import END, MASK
from aod_core.canvas.values import CanvasOptions
from aod_core.data.schema import parse_schema
from aod_core.errors import InputError
from aod_core.generators import check_options, load_generator, seed_prior
from aod_core.generators.seed_prior import SeedPrior, TextPrior, coarse_positions

SCHEMA = parse_schema(
    {
        "type": "object",
        "properties": {
            "species": {"enum": ["small", "large"]},
            "mass": {"type": "integer", "minimum": 0, "maximum": 9999},
            "legs": {"type": "integer", "minimum": 0, "maximum": 8},
            "seen": {"type": "string", "format": "date"},
            "note": {"type": "string", "maxLength": 20},
        },
        "required": ["species", "mass", "legs", "seen", "note"],
    }
)


WORDS = "seen at dawn by the lake near road in rain on a hill under old oak tree late".split()


def seeds(n=120, seed=0):
    """Small animals weigh 1000-1999 g, large ones 7000-7999 g: a fact only the pair shows."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        sp = rng.choice(["small", "large"])
        out.append(
            {
                "species": sp,
                "mass": rng.randint(1000, 1999) if sp == "small" else rng.randint(7000, 7999),
                "legs": rng.choice([2, 4]),
                "seen": f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "note": " ".join(rng.sample(WORDS, 3)),
            }
        )
    return out


def build(data):
    sc = Scaffold.build(SCHEMA.resolved, data, CanvasOptions.realistic())
    tokens = torch.tensor([sc.encode(r) for r in data])
    return sc, tokens


def slot(sc, path):
    return next(s for s in sc.slots if s.path == path)


def test_coarse_positions_are_choices_bin_marks_short_integers_year_month_and_first_pieces():
    data = seeds()
    sc, _ = build(data)
    got = set(coarse_positions(sc))
    species, mass, legs, seen, note = (slot(sc, f"$.{f}") for f in ("species", "mass", "legs", "seen", "note"))
    assert species.start in got
    assert mass.bins and mass.start in got
    assert mass.start + 1 not in got  # the digits inside a bin stay the model's
    assert all(p in got for p in legs.positions)
    assert [p for p in seen.positions if p in got] == list(range(seen.start, seen.start + 7))  # YYYY-MM
    assert note.pieces is not None and note.start in got  # a text's first word piece is coarse, the rest not
    assert not any(p in got for p in note.positions[1:])


def test_nothing_committed_adds_nothing_and_a_committed_category_pulls_its_bins():
    data = seeds()
    sc, tokens = build(data)
    prior = SeedPrior(sc, tokens, weight=2.0, bandwidth=0.25)
    species, mass = slot(sc, "$.species"), slot(sc, "$.mass")
    blank = torch.full((1, sc.length), MASK)
    assert prior.log_ratio(blank).abs().max() < 1e-5
    j = prior.positions.tolist().index(mass.start)
    small = sc.vocab.choice_ids[("$.species", '"small"')]
    x = blank.clone()
    x[0, species.start] = small
    ratio = prior.log_ratio(x)[0, j]
    ids = sc.vocab.piece_ids
    small_bins = {ids[m] for lo, hi, m in mass.bins if 1000 <= lo and hi <= 2000}  # bins that hold seeds
    large_bins = {ids[m] for lo, hi, m in mass.bins if 7000 <= lo and hi <= 8000}
    assert small_bins and large_bins
    assert min(ratio[t] for t in small_bins) > 0.3 > -2.0 > max(ratio[t] for t in large_bins)
    # and back: a committed heavy bin makes the species large
    y = blank.clone()
    y[0, mass.start] = next(iter(large_bins))
    k = prior.positions.tolist().index(species.start)
    large = sc.vocab.choice_ids[("$.species", '"large"')]
    assert prior.log_ratio(y)[0, k, large] > 0.3 > -1.0 > prior.log_ratio(y)[0, k, small]


def test_the_wrapped_logits_change_only_open_coarse_positions_the_prompt_leaves_alone():
    data = seeds()
    sc, tokens = build(data)
    prior = SeedPrior(sc, tokens)
    species, mass, legs = slot(sc, "$.species"), slot(sc, "$.mass"), slot(sc, "$.legs")
    x = torch.full((2, sc.length), MASK)
    x[:, species.start] = sc.vocab.choice_ids[("$.species", '"small"')]
    base = torch.zeros(2, sc.length, len(sc.vocab))
    out = prior.wrap(lambda _x: base)(x)
    changed = (out != 0).any(-1).any(0).nonzero().squeeze(1).tolist()
    assert mass.start in changed and species.start not in changed  # committed: left alone
    assert set(changed) <= set(prior.positions.tolist())
    skip = torch.zeros(sc.length, dtype=torch.bool)
    skip[mass.start] = True  # e.g. a compiled "mostly heavy" bias on mass
    out = prior.wrap(lambda _x: base, skip=skip)(x)
    assert not bool((out[:, mass.start] != 0).any()) and bool((out[:, legs.start] != 0).any())
    assert SeedPrior(sc, tokens, weight=0.0).wrap(lambda _x: base) is not None
    assert not SeedPrior(sc, tokens, weight=0.0).active


def test_text_bigrams_favour_the_pieces_the_seeds_put_together(monkeypatch):
    towns = ["Lakewood", "Pinehurst", "Oakridge", "Stonebridge", "Millbrook", "Foxhollow", "Redwater", "Elmdale"]
    schema = parse_schema(
        {"type": "object", "properties": {"town": {"type": "string", "maxLength": 30}}, "required": ["town"]}
    )
    rng = random.Random(1)
    data = [{"town": " ".join(rng.sample(towns, 3))} for _ in range(80)]
    sc = Scaffold.build(schema.resolved, data, CanvasOptions.realistic())
    town = slot(sc, "$.town")
    assert town.pieces is not None
    tokens = torch.tensor([sc.encode(r) for r in data])
    text = TextPrior(sc, tokens, weight=1.0)
    assert text.active
    first = data[0]["town"]
    seq = tokens[0, town.start : town.start + town.width]
    n = int((seq != END).sum())
    assert n >= 2, first
    # the seed's own second piece, after its first: more likely than the field's average piece
    x = torch.full((1, sc.length), MASK)
    x[0, town.start] = seq[0]
    out = text.add_to(torch.zeros(1, sc.length, len(sc.vocab)), x)
    assert out[0, town.start + 1, seq[1]] > 0.5
    assert out[0, town.start, :].abs().max() == 0  # committed: untouched
    assert out[0, town.start + 3, :].abs().max() == 0  # no committed neighbour: untouched
    # from the right: the piece before the seed's second piece
    y = torch.full((1, sc.length), MASK)
    y[0, town.start + 1] = seq[1]
    back = text.add_to(torch.zeros(1, sc.length, len(sc.vocab)), y)
    assert back[0, town.start, seq[0]] > 0.5
    assert TextPrior(sc, tokens, weight=0.0).active is False
    # an END that would complete a seed's value exactly costs COPY_PENALTY more; a new value's does not
    z = torch.full((2, sc.length), MASK)
    z[0, town.start : town.start + n] = seq[:n]  # a seed's whole value, END still open
    z[1, town.start : town.start + n] = seq[:n]
    z[1, town.start + n - 1] = seq[0]  # the same prefix with another last piece: a new value
    got = text.add_to(torch.zeros(2, sc.length, len(sc.vocab)), z)[:, town.start + n, END]
    monkeypatch.setattr(seed_prior, "COPY_PENALTY", 0.0)
    plain = text.add_to(torch.zeros(2, sc.length, len(sc.vocab)), z)[:, town.start + n, END]
    assert torch.allclose(plain - got, torch.tensor([3.0, 0.0]))


def test_sampling_settings_leave_the_cache_key_alone_and_bad_ones_are_refused(tmp_path):
    data = seeds(40)
    keys = {
        load_generator("embedded", SCHEMA, data, options=o, cache_dir=tmp_path).cache_key()
        for o in ({}, {"seed_prior": 0}, {"text_prior": 0}, {"prior_bandwidth": 1.5}, {"sample_batch": 7})
    }
    assert len(keys) == 1
    for bad, words in (
        ({"seed_prior": -1}, "seed_prior must be a number >= 0"),
        ({"text_prior": "x"}, "text_prior must be a finite number"),
        ({"prior_bandwidth": -0.5}, "prior_bandwidth must be a number >= 0"),
    ):
        with pytest.raises(InputError, match=words):
            check_options("embedded", bad)


@pytest.mark.slow
def test_a_barely_fitted_model_keeps_the_cross_field_fact_with_the_prior(tmp_path):
    data = seeds(160)
    opts = {"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 40}
    consistent = {}
    for weight in (0.0, 2.0):
        gen = load_generator("embedded", SCHEMA, data, options={**opts, "seed_prior": weight}, cache_dir=tmp_path)
        assert gen.fit()["cached"] == (weight > 0)  # sampling settings reuse the fit
        recs = [c.record for c in gen.sample(Prompt(), 100, seed=0)]
        assert all(SCHEMA.is_valid(r) for r in recs)
        ok = [(r["species"] == "small") == (r["mass"] < 5000) for r in recs]
        consistent[weight] = sum(ok) / len(ok)
    assert consistent[2.0] >= 0.9 and consistent[2.0] > consistent[0.0], consistent
    # pins condition it: a pinned large species gets heavy masses
    gen = load_generator("embedded", SCHEMA, data, options=opts, cache_dir=tmp_path)
    pinned = [c.record for c in gen.sample(Prompt(pins={"$.species": "large"}), 40, seed=1)]
    assert sum(r["mass"] >= 7000 for r in pinned) >= 36


def test_the_relevance_of_each_field_to_each_other_is_fitted_on_the_seeds():
    """Positions 0-2 follow a hidden kind, 3-5 are noise: the fitted relevance of one kind position to
    another is high, of noise to anything low, and a key's fields are held apart."""
    from aod_core.generators.seed_prior import fit_relevance

    g = torch.Generator().manual_seed(0)
    kind = torch.randint(0, 4, (200, 1), generator=g)
    tokens = torch.cat([kind + 10, kind + 20, kind + 30, torch.randint(40, 44, (200, 3), generator=g)], 1)
    rel = fit_relevance(tokens, torch.arange(6))
    assert rel[0, 1] > 1.0 and rel[0, 2] > 1.0 and rel[1, 0] > 1.0
    assert rel[0, 3:].max() < rel[0, 1] / 2 and rel[4, :3].max() < rel[0, 1] / 2
    assert torch.all(rel.diagonal() == 0)
    apart = torch.zeros(6, 6, dtype=torch.bool)
    apart[0, 1] = apart[1, 0] = True
    held = fit_relevance(tokens, torch.arange(6), apart)
    assert held[0, 1] == 0 and held[1, 0] == 0 and held[0, 2] > 1.0
    sc = Scaffold.build(SCHEMA.resolved, seeds(60), CanvasOptions.realistic())
    toks = torch.tensor([sc.encode(r) for r in seeds(60)])
    fixed = SeedPrior(sc, toks, bandwidth=0.5)
    assert torch.allclose(fixed.relevance, (1 - torch.eye(len(fixed.positions))) * 2.0)
