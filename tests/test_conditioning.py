"""Steering by conditioning: a steered field is committed before every other position of its record,
dependents are written from the seeds' map once their determinant is decided (or restrict it when
they were decided first), and no record completes a seed's key. Random logits stand in for a model:
whatever it proposes, the order and the facts must hold."""

from __future__ import annotations

import json

import torch

from aod_core.canvas.conditioning import field_slots
from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import MASK
from aod_core.canvas.values import CanvasOptions
from aod_core.data.dependencies import detect, schema_order
from aod_core.diffusion.sampler import generate


def _setup(get_demo, name: str = "countries"):
    ds = get_demo(name)
    seeds = ds.seeds.records
    sc = Scaffold.build(ds.schema.resolved, seeds, CanvasOptions.realistic())
    deps = detect(seeds, order=schema_order(ds.schema.resolved))
    tokens = torch.tensor([sc.encode(r) for r in seeds])
    return ds, sc, deps, tokens


def _sample(sc, constraint, n=64, seed=0, settings=None, record=None):
    g = torch.Generator().manual_seed(seed)
    V = len(sc.vocab)

    def logits(x):
        if record is not None:
            record.append(x.clone())
        return torch.randn(x.shape[0], x.shape[1], V, generator=g) * 3

    out = generate(
        logits,
        constraint.initial_canvas(n),
        mask_id=MASK,
        settings=settings or Sampling(),
        constraint=constraint,
        generator=g,
    )
    return [sc.decode(row) for row in out.tolist()]


def test_a_biased_field_is_committed_before_every_other_position(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    prompt = Prompt(bias={"$.continent": {"Africa": 2.0}})
    c = CanvasConstraint(sc, prompt, dependencies=deps, seed_tokens=tokens)
    seen: list[torch.Tensor] = []
    _sample(sc, c, n=16, record=seen, settings=Sampling(steps=12))  # several commits per step
    steered = torch.tensor([p for s in field_slots(sc, "$.continent") for p in s.positions])
    others = torch.ones(sc.length, dtype=torch.bool)
    others[steered] = False
    for x in seen:
        open_steered = (x[:, steered] == MASK).any(1)
        others_done = (x[:, others] != MASK).any(1)
        assert not bool((open_steered & others_done).any()), "a position was committed before the steered field"


def test_a_ranged_number_is_decided_first_too(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    c = CanvasConstraint(sc, Prompt(ranges={"$.year": [1990, 2010]}), dependencies=deps, seed_tokens=tokens)
    seen: list[torch.Tensor] = []
    records = _sample(sc, c, n=8, record=seen)
    year = torch.tensor(list(sc.slots_for("$.year")[0].positions))
    for x in seen:
        assert not bool(((x[:, year] == MASK).any(1) & (x != MASK).sum(1).gt(0) & (x[:, year] == MASK).all(1)).any())
    assert all(1990 <= r["year"] <= 2010 for r in records)


def test_dependents_follow_their_determinant_whatever_the_model_proposes(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    records = _sample(sc, CanvasConstraint(sc, Prompt(), dependencies=deps, seed_tokens=tokens), n=96)
    assert sum(bool(deps.violations(r)) for r in records) == 0
    free = _sample(sc, CanvasConstraint(sc, Prompt()), n=96)  # the same sampler without them
    assert sum(bool(deps.violations(r)) for r in free) > 48


def test_a_pin_writes_its_dependents_and_a_steered_dependent_restricts_its_determinant(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    pinned = _sample(
        sc, CanvasConstraint(sc, Prompt(pins={"$.country": "Japan"}), dependencies=deps, seed_tokens=tokens)
    )
    assert {(r["continent"], r["iso_alpha"], r["iso_num"]) for r in pinned} == {("Asia", "JPN", 392)}
    steer = Prompt(bias={"$.continent": {"Africa": 6.0}})
    records = _sample(sc, CanvasConstraint(sc, steer, dependencies=deps, seed_tokens=tokens), n=96)
    african = {s["country"] for s in ds.seeds.records if s["continent"] == "Africa"}
    labelled = [r for r in records if r["continent"] == "Africa"]
    assert len(labelled) > 48 and all(r["country"] in african for r in labelled)


def test_no_record_completes_a_seeds_key(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    have = deps.seed_keys(ds.seeds.records)
    # The countries' seeds only: a model that proposes seeds' (country, year) pairs most of the time.
    country = sc.slots_for("$.country")[0]
    year = sc.slots_for("$.year")[0]
    seed_rows = tokens[:, list(country.positions) + list(year.positions)]
    g = torch.Generator().manual_seed(1)
    V = len(sc.vocab)

    def copying_logits(x):
        out = torch.randn(x.shape[0], x.shape[1], V, generator=g)
        pick = seed_rows[torch.randint(len(seed_rows), (x.shape[0],), generator=g)]
        cols = list(country.positions) + list(year.positions)
        out[torch.arange(x.shape[0]).unsqueeze(1), torch.tensor(cols), pick] += 30.0
        return out

    for settings in (Sampling(), Sampling(steps=4)):
        c = CanvasConstraint(sc, Prompt(), dependencies=deps, seed_tokens=tokens)
        out = generate(copying_logits, c.initial_canvas(64), mask_id=MASK, settings=settings, constraint=c, generator=g)
        records = [sc.decode(row) for row in out.tolist()]
        assert sum(bool(deps.reused_keys(r, have)) for r in records) == 0, settings
        c0 = CanvasConstraint(sc, Prompt())
        out = generate(
            copying_logits, c0.initial_canvas(64), mask_id=MASK, settings=settings, constraint=c0, generator=g
        )
        assert sum(bool(deps.reused_keys(sc.decode(r), have)) for r in out.tolist()) >= 10


def test_numbers_are_written_digit_by_digit_not_drawn_from_the_seeds(get_demo):
    ds, sc, deps, tokens = _setup(get_demo)
    for path in ("$.gdpPercap", "$.lifeExp", "$.pop"):
        slot = sc.slots_for(path)[0]
        assert slot.kind == "value" and slot.bins, path
    gdp = {json.dumps(s["gdpPercap"]) for s in ds.seeds.records}
    records = _sample(sc, CanvasConstraint(sc, Prompt(), dependencies=deps, seed_tokens=tokens), n=64)
    assert sum(json.dumps(r["gdpPercap"]) in gdp for r in records) <= 2
    assert all(ds.schema.validate(r) == [] for r in records)
