"""The embedded generator end to end, on tiny models fitted on 40 seeds of the demo datasets."""

import json
import time

import pytest
import torch

from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.errors import InputError
from aod_core.eval.metrics import schema_valid
from aod_core.generators import load_generator
from aod_core.records import Candidate

pytestmark = pytest.mark.slow  # every test here fits (or loads) a model

N_SEEDS = 40


def make(get_demo, tiny, name, cache_dir, **kw):
    ds = get_demo(name)
    scaffold = kw.pop("scaffold", True)
    kw.setdefault("train_steps", 60)
    gen = load_generator(
        "embedded",
        ds.schema,
        ds.seeds.records[:N_SEEDS],
        device="cpu",
        cache_dir=cache_dir,
        scaffold=scaffold,
        config=tiny(**kw),
    )
    return ds, gen


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def penguins(get_demo, tiny, cache):
    ds, gen = make(get_demo, tiny, "penguins", cache)
    seen = []
    t0 = time.perf_counter()
    report = gen.fit(on_progress=seen.append)
    return ds, gen, report, time.perf_counter() - t0, seen


@pytest.fixture(scope="module")
def groups(get_demo, tiny, cache):
    ds, gen = make(get_demo, tiny, "penguin-groups", cache)
    gen.fit()
    return ds, gen


def records(cands: list[Candidate]) -> list:
    assert all(c.parsed for c in cands), [c.error for c in cands if not c.parsed][:3]
    return [c.record for c in cands]


def test_fit_report_and_progress(penguins):
    ds, gen, report, _, seen = penguins
    assert report["cached"] is False and report["steps"] == 60
    # 22 positions of values and choices, plus a bin symbol for each of the four measurements
    assert report["canvas_length"] == gen.scaffold.length == 22 + 4
    assert report["params"] == sum(p.numel() for p in gen.net.parameters())
    assert isinstance(report["final_loss"], float) and report["final_loss"] > 0
    assert seen and all(p.stage == "fit" for p in seen)
    assert seen[-1].done == seen[-1].total == 60
    assert [p.done for p in seen] == sorted(p.done for p in seen)
    assert gen.cache_path().is_file() and gen.cache_path().parent == gen.cache_dir


@pytest.mark.parametrize("name", ["penguins", "groups"])
def test_samples_are_all_schema_valid(request, name):
    ds, gen = request.getfixturevalue(name)[:2]
    cands = gen.sample(Prompt(), 50, seed=0)
    assert len(cands) == 50
    assert all(schema_valid(cands, ds.schema))


def test_samples_valid_with_other_sampling_settings(groups):
    ds, gen = groups
    for s in (
        Sampling(remasking="low_confidence", num_blocks=3),
        Sampling(threshold=0.8, remasking="low_confidence"),
        Sampling(steps=10, temperature=0.7),
    ):
        cands = gen.sample(Prompt(sampling=s), 12, seed=1)
        assert len(cands) == 12 and all(schema_valid(cands, ds.schema)), s


def test_pins_and_forbids_are_honoured(penguins):
    ds, gen = penguins[:2]
    prompt = Prompt(
        pins={"$.island": "Dream", "$.bill_depth_mm": 18.5, "$.year": 2008},
        forbid={"$.species": ["Adelie"], "$.sex": [None]},
    )
    recs = records(gen.sample(prompt, 50, seed=3))
    assert all(ds.schema.is_valid(r) for r in recs)
    assert {r["island"] for r in recs} == {"Dream"}
    assert {r["bill_depth_mm"] for r in recs} == {18.5} and {r["year"] for r in recs} == {2008}
    assert all(r["species"] != "Adelie" and r["sex"] is not None for r in recs)


def test_pins_and_forbids_in_nested_records(groups):
    ds, gen = groups
    prompt = Prompt(
        pins={"$.island": "Biscoe", "$.birds[0].body_mass_g": 4000},
        forbid={"$.birds[*].species": ["Adelie", "Chinstrap"]},
    )
    recs = records(gen.sample(prompt, 50, seed=4))
    assert all(ds.schema.is_valid(r) for r in recs)
    assert all(r["island"] == "Biscoe" and r["birds"][0]["body_mass_g"] == 4000 for r in recs)
    assert {b["species"] for r in recs for b in r["birds"]} == {"Gentoo"}
    assert len({len(r["birds"]) for r in recs}) > 1  # the count still varies


def test_bad_prompt_is_an_input_error(penguins):
    gen = penguins[1]
    with pytest.raises(InputError, match="nope"):
        gen.sample(Prompt(pins={"$.nope": 1}), 2)
    with pytest.raises(InputError, match="steps"):
        gen.sample(Prompt(sampling=Sampling(steps=0)), 2)


def test_second_fit_hits_the_disk_cache(penguins, get_demo, tiny, cache):
    _, first, report, fit_seconds, _ = penguins
    _, again = make(get_demo, tiny, "penguins", cache)
    assert again.cache_path() == first.cache_path()
    t0 = time.perf_counter()
    second = again.fit()
    load_seconds = time.perf_counter() - t0
    assert second["cached"] is True
    assert {k: v for k, v in second.items() if k != "cached"} == {k: v for k, v in report.items() if k != "cached"}
    assert load_seconds < fit_seconds / 3
    for a, b in zip(first.net.state_dict().values(), again.net.state_dict().values()):
        assert torch.equal(a, b)
    # same weights, same seed: the very same records
    assert records(again.sample(Prompt(), 10, seed=9)) == records(first.sample(Prompt(), 10, seed=9))


def test_cache_key_depends_on_data_and_config(penguins, get_demo, tiny, cache):
    gen = penguins[1]
    ds = get_demo("penguins")
    other_seeds = load_generator("embedded", ds.schema, ds.seeds.records[: N_SEEDS + 1], cache_dir=cache, config=tiny())
    other_cfg = load_generator("embedded", ds.schema, ds.seeds.records[:N_SEEDS], cache_dir=cache, config=tiny(seed=1))
    keys = {gen.cache_key(), other_seeds.cache_key(), other_cfg.cache_key()}
    assert len(keys) == 3


def test_seeds(penguins):
    gen = penguins[1]
    a = [json.dumps(r, sort_keys=True) for r in records(gen.sample(Prompt(), 20, seed=11))]
    b = [json.dumps(r, sort_keys=True) for r in records(gen.sample(Prompt(), 20, seed=11))]
    c = [json.dumps(r, sort_keys=True) for r in records(gen.sample(Prompt(), 20, seed=12))]
    assert a == b
    assert a != c and len(set(a) ^ set(c)) > 10


def test_sample_batches_are_stitched(penguins, monkeypatch):
    # sample_batch smaller than n: several generate() calls, still n candidates, all valid
    ds, gen = penguins[:2]
    monkeypatch.setattr(gen.config, "sample_batch", 7)
    cands = gen.sample(Prompt(), 17, seed=0)
    assert len(cands) == 17 and all(schema_valid(cands, ds.schema))


def test_no_scaffold_mode_returns_candidates(get_demo, tiny, cache):
    ds, gen = make(get_demo, tiny, "penguins", cache, scaffold=False, train_steps=30)
    assert gen.scaffold is None
    report = gen.fit()
    assert report["cached"] is False
    cands = gen.sample(Prompt(sampling=Sampling(steps=8)), 10, seed=0)
    assert len(cands) == 10
    ok = [c for c in cands if c.parsed]
    bad = [c for c in cands if not c.parsed]
    assert len(ok) + len(bad) == 10
    for c in cands:
        assert isinstance(c.text, str) and "<mask>" not in c.text
    for c in bad:
        assert isinstance(c.error, str) and c.error and c.record is None
    for c in ok:
        assert c.error is None and json.loads(c.text) == c.record


def test_load_generator_leaves_the_callers_config_alone(get_demo, tiny, cache):
    ds = get_demo("penguins")
    cfg = tiny()
    first = load_generator("embedded", ds.schema, ds.seeds.records[:N_SEEDS], cache_dir=cache, config=cfg)
    key = first.cache_key()
    load_generator("embedded", ds.schema, ds.seeds.records[:N_SEEDS], cache_dir=cache, config=cfg, scaffold=False)
    assert cfg.scaffold is True
    assert first.cache_key() == key


def test_damaged_cache_entry_is_refitted(get_demo, tiny, tmp_path):
    ds, gen = make(get_demo, tiny, "penguins", tmp_path, train_steps=5)
    gen.cache_path().parent.mkdir(parents=True, exist_ok=True)
    gen.cache_path().write_bytes(b"\x00" * 100)
    assert gen.fit()["cached"] is False


@pytest.mark.parametrize("name, data", [("empty", b""), ("text", b"hello world")])
def test_unreadable_cache_entry_is_refitted(get_demo, tiny, tmp_path, name, data):
    ds, gen = make(get_demo, tiny, "penguins", tmp_path, train_steps=5)
    gen.cache_path().parent.mkdir(parents=True, exist_ok=True)
    gen.cache_path().write_bytes(data)
    assert gen.fit()["cached"] is False
    assert gen.cache_path().stat().st_size > 1000  # replaced by the fresh weights


def test_generator_specs(get_demo):
    ds = get_demo("penguins")
    with pytest.raises(InputError, match="not found locally"):
        load_generator("hf:some/model", ds.schema, ds.seeds.records)
    with pytest.raises(InputError, match="unknown generator spec 'gpt'"):
        load_generator("gpt", ds.schema, ds.seeds.records)
