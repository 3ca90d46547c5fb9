"""The instruction compiler: words -> scaffold edits (rules, grounded chat-model answers, measured
shares), stored in the prompt with their authors, and what it refuses to guess."""

import json
import math
import random
from pathlib import Path

import pytest

from aod_core.agents.compiler import (
    CompiledInstruction,
    InstructionCompiler,
    calibrate,
    llm_schema,
    needs_calibration,
    should_compile,
    strip_compiled,
)
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.chat import ScriptedChatModel
from aod_core.errors import InputError
from aod_core.records import Candidate

ROOT = Path(__file__).resolve().parent.parent


def compiler(get_demo, name, chat=None, **kw):
    d = get_demo(name)
    return InstructionCompiler(
        Scaffold.build(d.schema.resolved, d.seeds.records), d.schema.resolved, d.seeds.records, chat, **kw
    )


def schema_paths(schema):
    out = set()
    for b in schema["anyOf"]:
        path = b["properties"].get("path", {})
        out |= {path["const"]} if "const" in path else set(path.get("enum", []))
    return out


def edits(c):
    return sorted(e.describe().split(" by ")[0] for e in c.edits)


@pytest.fixture(scope="module")
def penguins(get_demo):
    return compiler(get_demo, "penguins")


def test_values_named_as_people_write_them(get_demo, penguins):
    assert edits(penguins.compile("female Gentoos from Dream")) == [
        'pin island = "Dream"',
        'pin sex = "female"',
        'pin species = "Gentoo"',
    ]
    assert edits(penguins.compile("Adélie penguins only")) == ['pin species = "Adelie"']
    assert edits(penguins.compile("only Gentoo and Adelie")) == ['forbid species = "Chinstrap"']
    assert edits(penguins.compile("no Chinstrap penguins")) == ['forbid species = "Chinstrap"']
    cars = compiler(get_demo, "cars")
    assert edits(cars.compile("Japanese cars")) == ['pin origin = "Japan"']
    assert edits(cars.compile("no American cars")) == ['forbid origin = "USA"']
    weather = compiler(get_demo, "seattle-weather")
    assert edits(weather.compile("sunny days")) == ['pin weather = "sun"']
    airports = compiler(get_demo, "airports")
    assert edits(airports.compile("Californian airports")) == ['pin state = "CA"']
    assert edits(airports.compile("no airports in Texas")) == ['forbid state = "TX"']
    # a two-letter code that is also an English word counts only as written
    assert edits(airports.compile("airports in OR")) == ['pin state = "OR"']
    assert edits(airports.compile("airports or heliports")) == []


def test_numbers_with_units_become_ranges_in_the_fields_unit(get_demo, penguins):
    (e,) = penguins.compile("body mass above 4.5 kg").edits
    assert (e.op, e.path, e.lo, e.hi) == ("range", "$.body_mass_g", 4501, 6500)
    (e,) = penguins.compile("flippers between 19 and 21 cm").edits
    assert (e.path, e.lo, e.hi) == ("$.flipper_length_mm", 190, 210)
    (e,) = penguins.compile("length over 200 mm").edits  # the seeds' ranges say which length
    assert e.path == "$.flipper_length_mm"
    (e,) = compiler(get_demo, "seattle-weather").compile("max temperature above 77 °F").edits
    assert (e.path, e.lo) == ("$.temp_max", 25.1)
    (e,) = compiler(get_demo, "cars").compile("cars from the 70s").edits
    assert (e.path, e.lo, e.hi) == ("$.year", 1970, 1979)
    (e,) = penguins.compile("birds from 2009").edits
    assert (e.op, e.path, e.value) == ("pin", "$.year", 2009)
    c = penguins.compile("flipper length over 5 kg")
    assert not c.edits and "does not measure" in c.unmapped[0].reason


def test_relative_wishes_use_the_seeds_statistics(get_demo, penguins):
    d = get_demo("penguins")
    masses = sorted(r["body_mass_g"] for r in d.seeds.records if r["body_mass_g"] is not None)
    median = (masses[len(masses) // 2 - 1] + masses[len(masses) // 2]) / 2
    (e,) = penguins.compile("heavier penguins").edits
    assert (e.path, e.lo, e.hi) == ("$.body_mass_g", math.ceil(median), 6500)
    (e,) = penguins.compile("mostly Torgersen penguins").edits
    share = sum(r["island"] == "Torgersen" for r in d.seeds.records) / len(d.seeds.records)
    assert (e.op, e.value, e.share, e.direction) == ("bias", "Torgersen", 0.7, 1)
    assert e.amount == pytest.approx(math.log(0.7 / 0.3) - math.log(share / (1 - share)), abs=1e-3)
    (e,) = penguins.compile("fewer Adelie").edits
    assert e.direction == -1 and e.share < 0.45
    (e,) = penguins.compile("no nulls in sex").edits
    assert (e.op, e.path, e.value) == ("forbid", "$.sex", None)
    nulls = penguins.compile("no missing measurements").edits
    assert {e.path for e in nulls} == {"$.bill_length_mm", "$.bill_depth_mm", "$.flipper_length_mm", "$.body_mass_g"}
    (e,) = penguins.compile("more varied records").edits
    assert (e.op, e.amount) == ("temperature", 1.3)


def test_array_lengths(get_demo):
    groups = compiler(get_demo, "penguin-groups")
    assert edits(groups.compile("groups of 3 birds")) == ["pin birds.length = 3"]
    assert edits(groups.compile("at least 3 birds")) == ["forbid birds.length = 1", "forbid birds.length = 2"]
    assert edits(groups.compile("only Gentoo birds")) == ['pin birds[*].species = "Gentoo"']


def test_what_it_cannot_map_is_reported_never_guessed(get_demo, penguins):
    c = penguins.compile("Mostly Biscoe penguins, every measurement realistic")
    assert edits(c) == ['bias island = "Biscoe"']
    (u,) = c.unmapped
    assert u.phrase == "every measurement realistic" and u.reason.startswith("no field matches 'realistic'")
    c = penguins.compile("penguins with shiny feathers")
    assert not c.edits and c.unmapped[0].reason == "no field or value matches 'shiny feathers'"
    c = compiler(get_demo, "cars").compile("German cars")
    assert not c.edits and "origin has no value for 'German'" in c.unmapped[0].reason
    c = compiler(get_demo, "seattle-weather").compile("warmer days")
    assert not c.edits and "could mean temp_max or temp_min" in c.unmapped[0].reason
    c = compiler(get_demo, "airports").compile("mostly Florida airports")
    assert not c.edits and "free text" in c.unmapped[0].reason


def test_the_suite_with_the_rules_alone(get_demo):
    """The benchmark suite (benchmarks/instructions.json): >= 80% mapped exactly, <= 5% wrong edits."""
    from benchmarks.bench_compiler import load_suite, score

    rows = []
    for case in load_suite():
        comp = compiler(get_demo, case["dataset"])
        rows.append(score(case, comp.compile(case["text"]), comp.lexicon))
    assert len(rows) >= 30
    correct = sum(r["correct"] for r in rows) / len(rows)
    wrong = sum(len(r["wrong"]) for r in rows) / sum(r["edits"] for r in rows)
    assert correct >= 0.8 and wrong <= 0.05, (correct, wrong)


# ---- the chat model's part -----------------------------------------------------------------------


def test_chat_answers_are_grammar_shaped_and_grounded(get_demo):
    answers = []
    chat = ScriptedChatModel(lambda messages: answers.pop(0))
    comp = compiler(get_demo, "penguins", chat, semantic_grounding=False)
    # a field named with no wish the rules know: the grammar offers only that field
    (p,) = comp.resolver.resolve("penguins with a sumo body").pending
    schema = llm_schema(comp.lexicon, p)
    assert schema_paths(schema) == {"$.body_mass_g"}
    branch = next(b for b in schema["anyOf"] if "words" in b["properties"])
    assert set(branch["properties"]["words"]["items"]["enum"]) == set(p.words)
    answers[:] = [{"op": "above_median", "path": "$.body_mass_g", "words": ["body"]}]
    (e,) = comp.compile("penguins with a sumo body").edits
    assert (e.op, e.path, e.source, e.lo) == ("range", "$.body_mass_g", "scripted", 4000)

    # nothing named: every field is offered, but an edit must rest on a word that names its field
    (p,) = comp.resolver.resolve("penguins that look chonky").pending
    assert {"$.island", "$.species", "$.body_mass_g", "$.sex"} <= schema_paths(llm_schema(comp.lexicon, p))
    answers[:] = [{"op": "pin", "path": "$.island", "value": "Dream", "words": ["chonky"]}]
    c = comp.compile("penguins that look chonky")
    assert not c.edits and "not grounded in 'chonky'" in c.unmapped[0].reason

    # a refusal, and an answer outside the grammar (retried, then reported)
    answers[:] = [{"op": "none"}]
    c = comp.compile("penguins that look chonky")
    assert not c.edits and c.unmapped[0].reason == "no field or value matches 'look chonky'"
    answers[:] = [{"op": "pin", "path": "$.island", "value": "Atlantis", "words": ["chonky"]}] * 3
    c = comp.compile("penguins that look chonky")
    assert not c.edits and "no usable answer" in c.unmapped[0].reason


def test_semantic_grounding_with_the_offline_embedder(get_demo):
    from aod_core.eval import embedder

    if not embedder.available():
        pytest.skip("the offline sentence embedder is not installed")
    chat = ScriptedChatModel(lambda m: {"op": "above_median", "path": "$.body_mass_g", "words": ["weigh"]})
    c = compiler(get_demo, "penguins", chat).compile("penguins that weigh a lot")
    assert [e.path for e in c.edits] == ["$.body_mass_g"]
    chat = ScriptedChatModel(lambda m: {"op": "above_median", "path": "$.bill_depth_mm", "words": ["weigh"]})
    c = compiler(get_demo, "penguins", chat).compile("penguins that weigh a lot")
    assert not c.edits and "closest field: body_mass_g" in c.unmapped[0].reason


# ---- in the prompt -------------------------------------------------------------------------------


def test_compiled_edits_live_in_the_prompt_with_their_authors(penguins):
    hand = Prompt(text="", pins={"$.year": 2008}, forbid={"$.species": ["Gentoo"]})
    p = penguins.apply(hand, "mostly Torgersen penguins, no nulls in sex, heavier")
    assert p.pins == {"$.year": 2008} and p.forbid == {"$.species": ["Gentoo"], "$.sex": [None]}
    assert set(p.bias["$.island"]) == {'"Torgersen"'} and p.ranges["$.body_mass_g"] == [4000.0, 6500.0]
    assert p.compiled["text"] == "mostly Torgersen penguins, no nulls in sex, heavier"
    assert {e["author"] for e in p.compiled["edits"]} == {"compiler"}
    again = Prompt.from_dict(json.loads(p.to_json()))
    assert again.compiled == p.compiled
    # compiling other text replaces the compiled edits and keeps the hand-written ones
    q = penguins.apply(again, "only Dream")
    assert q.pins == {"$.year": 2008, "$.island": "Dream"} and not q.bias and not q.ranges
    assert q.forbid == {"$.species": ["Gentoo"]}
    assert strip_compiled(q).to_dict() == {**hand.to_dict(), "text": ""}
    # a prompt stored before compiling existed still reads
    old = Prompt.from_dict({"text": "x", "pins": {"$.island": "Dream"}})
    assert old.compiled == {} and strip_compiled(old).pins == {"$.island": "Dream"}


def test_edits_the_generator_refuses_are_listed(penguins):
    def difflm_check(prompt):
        if prompt.pins or prompt.forbid or prompt.ranges or prompt.bias:
            raise InputError("the difflm generator is steered by its latent space, not scaffold edits")

    p = penguins.apply(Prompt(), "only Dream, more varied", check=difflm_check)
    c = CompiledInstruction.from_dict(p.compiled)
    assert [e.op for e in c.edits] == ["temperature"] and p.sampling.temperature == 1.3 and not p.pins
    (r,) = c.refused
    assert r["edit"]["value"] == "Dream" and "latent space" in r["reason"]
    assert any("not applied: the difflm generator" in m for m in c.messages())


def test_should_compile():
    assert should_compile("auto", "embedded") and should_compile("auto", "difflm")
    assert not should_compile("auto", "hf:/models/llada") and should_compile("on", "hf:/models/llada")
    assert not should_compile("off", "embedded") and not should_compile("auto", "ar:embedded")
    with pytest.raises(InputError, match="compile mode"):
        should_compile("sometimes", "embedded")


def test_calibrate_raises_the_bias_until_the_share_is_reached(penguins):
    """A stand-in generator whose Torgersen share answers the bias at half strength (as when other
    fields are decided first): the measured bias must overshoot the seeds-marginal guess."""

    def sample(prompt, n, seed):
        b = prompt.bias.get("$.island", {}).get('"Torgersen"', 0.0)
        p = 1 / (1 + math.exp(-(math.log(0.16 / 0.84) + 0.5 * b)))
        rng = random.Random(seed)
        return [Candidate("", {"island": "Torgersen" if rng.random() < p else "Dream"}) for _ in range(n)]

    p = penguins.apply(Prompt(), "mostly Torgersen penguins")
    guess = p.bias["$.island"]['"Torgersen"']
    assert needs_calibration(p, "embedded")
    out = calibrate(p, sample, spec="embedded", n=400)
    (e,) = CompiledInstruction.from_dict(out.compiled).edits
    assert e.measured >= 0.7 and e.measured_with == "embedded" and e.amount > guess
    assert out.bias["$.island"]['"Torgersen"'] == e.amount and "measured" in e.why
    assert not needs_calibration(out, "embedded") and needs_calibration(out, "difflm")


def test_human_edits_of_compiled_rows(get_demo, penguins):
    from aod_core.studio import prompt_forms

    compiled = penguins.compile("mostly Torgersen penguins, heavier").to_dict()
    rows = prompt_forms.compiled_rows(compiled)
    assert [r["op"] for r in rows] == ["range", "bias"] or [r["op"] for r in rows] == ["bias", "range"]
    rng = next(r for r in rows if r["op"] == "range")
    rng["lo"] = 4500.0
    rows.append({"op": "forbid", "path": "sex", "value": "null"})
    edited = prompt_forms.compiled_from_rows(compiled, rows)
    authors = {(e["op"], e.get("author")) for e in edited["edits"]}
    assert authors == {("bias", "compiler"), ("range", "human"), ("forbid", "human")}
    p = prompt_forms.prompt_with_compiled(Prompt(text=compiled["text"]), edited)
    assert p.ranges["$.body_mass_g"] == [4500.0, 6500.0] and p.forbid == {"$.sex": [None]}
    with pytest.raises(InputError, match="row 1: op must be one of"):
        prompt_forms.compiled_from_rows(compiled, [{"op": "teleport", "path": "$.island"}])
    with pytest.raises(InputError, match="range needs numbers"):
        prompt_forms.compiled_from_rows(compiled, [{"op": "range", "path": "$.body_mass_g", "lo": "x", "hi": 3}])


# ---- wired into the optimizer and the loop --------------------------------------------------------


def test_optimizer_text_proposals_are_compiled_before_they_are_probed(get_demo, tiny, tmp_path, monkeypatch):
    from aod_core.agents.optimizer import PromptOptimizer
    from aod_core.generators import load_generator

    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path))
    d = get_demo("penguins")
    gen = load_generator("embedded", d.schema, d.seeds.records, config=tiny(train_steps=20))
    text = {"rationale": "r", "op": "text", "path": "", "amount": 0, "lo": 0, "hi": 0}
    chat = ScriptedChatModel([{**text, "value": "mostly Dream island"}, {**text, "value": "make them sparkle"}])
    opt = PromptOptimizer(
        chat, gen.scaffold, compiler=InstructionCompiler(gen.scaffold, d.schema.resolved, d.seeds.records)
    )
    good, dead = opt.propose(Prompt(), "too few Dream birds", [], 2, check=gen.check_prompt)
    assert good.prompt.text == "mostly Dream island" and set(good.prompt.bias["$.island"]) == {'"Dream"'}
    assert good.prompt.compiled["edits"][0]["author"] == "compiler"
    assert dead.prompt is None and dead.error.startswith("the text maps to no edit this generator takes")
    assert not (tmp_path / "embedded").exists()  # nothing was fitted to vet them


@pytest.mark.slow
def test_loop_history_shows_compiler_authored_edits(tmp_path):
    from tests.test_loop import _config, _start

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join((ROOT / "assets/penguins/seeds.jsonl").read_text().splitlines()[:60]) + "\n")
    store, handle = _start(tmp_path, seeds, _config(iterations=1, proposals=0))
    comp = InstructionCompiler(handle.loop.gen.scaffold, *_inputs(store))
    handle.loop.set_prompt(comp.apply(Prompt(), "mostly Dream island, no nulls in sex"))
    assert handle.loop.run() == "finished"
    rows = store.prompts()
    (compiled,) = [p for p in rows if p["role"] == "compiled"]
    assert compiled["author"] == "compiler" and compiled["for"] == "human"
    (used,) = [p for p in rows if p["role"] == "used"]
    assert used["author"] == "human"
    bias = next(e for e in used["prompt"]["compiled"]["edits"] if e["op"] == "bias")
    assert bias["measured_with"] == "embedded" and bias["measured"] is not None  # measured before use
    from aod_core.studio.runview import prompt_history

    (h,) = prompt_history(store)
    assert "[compiler]" in h["compiled edits"] and "mostly Dream island" in h["compiled edits"]


def _inputs(store):
    from aod_core.data.schema import load_schema
    from aod_core.studio.runview import run_seeds

    return load_schema(store.path / "inputs" / "schema.json").resolved, run_seeds(store)


def test_array_length_edits_reach_the_embedded_canvas(get_demo, tiny, tmp_path, monkeypatch):
    from aod_core.generators import load_generator

    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path))
    d = get_demo("penguin-groups")
    gen = load_generator("embedded", d.schema, d.seeds.records, config=tiny(train_steps=20))
    comp = InstructionCompiler(gen.scaffold, d.schema.resolved, d.seeds.records)
    for text, ok in (("groups of 3 birds", lambda n: n == 3), ("at least 3 birds", lambda n: n >= 3)):
        p = comp.apply(Prompt(), text, check=gen.check_prompt)
        assert p.compiled["edits"] and not p.compiled["refused"]
        cands = gen.sample(p, 12, seed=1)
        assert all(c.parsed and d.schema.is_valid(c.record) and ok(len(c.record["birds"])) for c in cands)
