import json
from pathlib import Path

import pytest

from aod_core.agents.judge import Judge, batch_facts, check_batch
from aod_core.agents.optimizer import PromptOptimizer, apply_edit, prompt_summary, proposal_schema
from aod_core.agents.reward import RewardWeights, evaluate
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.data.schema import load_schema
from aod_core.errors import InputError
from aod_core.records import Candidate

PENGUINS = Path(__file__).resolve().parent.parent / "assets" / "penguins"
SCHEMA = load_schema(PENGUINS / "schema.json")
SEEDS = [json.loads(x) for x in (PENGUINS / "seeds.jsonl").read_text().splitlines()[:50]]


def rec(**kw):
    base = {
        "species": "Adelie",
        "island": "Dream",
        "bill_length_mm": 40.1,
        "bill_depth_mm": 18.0,
        "flipper_length_mm": 190,
        "body_mass_g": 3700,
        "sex": "male",
        "year": 2008,
    }
    return {**base, **kw}


def cand(r):
    return Candidate(text=json.dumps(r), record=r)


BATCH = [
    cand(rec()),
    cand(rec()),  # duplicate
    Candidate(text="{oops", error="not valid JSON"),
    cand(rec(year=3000)),  # schema error
    cand(SEEDS[0]),  # seed copy
    cand(rec(bill_length_mm=45.5, island="Biscoe")),
]


def test_exact_checks():
    checks = check_batch(BATCH, SCHEMA, SEEDS)
    assert [c.passed for c in checks] == [True, False, False, False, False, True]
    assert checks[1].duplicate and not checks[2].parses and checks[4].seed_copy
    assert checks[3].schema_errors and "$.year" in checks[3].schema_errors[0]
    assert checks[4].field_overlap == 1.0 and 0 <= checks[0].field_overlap < 1
    prior = {json.dumps(rec(bill_length_mm=45.5, island="Biscoe"), sort_keys=True, separators=(",", ":"))}
    assert check_batch(BATCH, SCHEMA, SEEDS, prior)[5].duplicate  # accepted earlier in the run


def test_judge_asks_the_llm_only_about_records_that_pass_the_checks():
    chat = ScriptedChatModel(
        lambda m: (
            {"feedback": "ok"}
            if "review a batch" in m[0]["content"]
            else {"verdict": "accept", "score": 0.7, "reasons": ["fine"]}
        )
    )
    j = Judge(chat, SCHEMA, SEEDS).judge(BATCH)
    judged = [c for c in chat.conversations if "data-quality judge" in c[0]["content"]]
    assert len(judged) == 2  # the two records that passed
    assert [v.source for v in j.verdicts] == ["llm", "checks", "checks", "checks", "checks", "llm"]
    assert j.verdicts[0].accept and j.verdicts[0].score == 0.7
    assert not j.verdicts[4].accept and "exact copy of a seed record" in j.verdicts[4].reasons
    assert j.summary == "ok" and "Judge: ok" in j.feedback


def test_unusable_judge_answers_are_failures_not_inventions():
    chat = ScriptedChatModel(lambda m: "not json at all")
    j = Judge(chat, SCHEMA, SEEDS).judge(BATCH[:1])
    v = j.verdicts[0]
    assert v.source == "failed" and not v.accept and v.score is None
    assert "no usable answer" in v.reasons[0]
    assert j.summary == "" and j.summary_error
    m = evaluate(BATCH[:1], j, SEEDS, RewardWeights())
    assert m["judge_failures"] == 1 and m["task_success_rate"] == 0.0


def test_batch_facts_are_exact():
    drift = [cand(rec(island="Torgersen", species="Gentoo")) for _ in range(6)]
    checks = check_batch(drift, SCHEMA, SEEDS)
    facts = batch_facts(drift, checks, SEEDS)
    assert any("repeat another record" in f for f in facts)
    assert any("$.island" in f and "of the batch" in f for f in facts)
    assert any("never occurs in the seeds" in f and "Gentoo" in f and "Torgersen" in f for f in facts)


def test_reward_is_the_documented_mix():
    chat = ScriptedChatModel(
        lambda m: (
            {"feedback": "x"}
            if "review a batch" in m[0]["content"]
            else {"verdict": "accept", "score": 1.0, "reasons": []}
        )
    )
    j = Judge(chat, SCHEMA, SEEDS).judge(BATCH)
    m = evaluate(BATCH, j, SEEDS, RewardWeights(tsr=1, judge=0, novelty=0, diversity=0))
    assert m["task_success_rate"] == pytest.approx(2 / 6) and m["reward"] == pytest.approx(2 / 6)
    m = evaluate(BATCH, j, SEEDS, RewardWeights(tsr=0, judge=1, novelty=0, diversity=0))
    assert m["reward"] == pytest.approx(2 / 6)  # checks-rejected count as 0
    m = evaluate(BATCH, j, SEEDS, RewardWeights())
    assert 0 <= m["reward"] <= 1 and m["schema_valid_rate"] == pytest.approx(4 / 6)
    assert m["valid_json_rate"] == pytest.approx(5 / 6) and m["duplicate_rate"] == pytest.approx(1 / 6)


def test_reward_weights_parse():
    assert RewardWeights.parse("tsr=1,judge=0").tsr == 1.0
    with pytest.raises(InputError, match="unknown reward weight"):
        RewardWeights.parse("speed=1")
    with pytest.raises(InputError, match="positive sum"):
        RewardWeights.parse("tsr=0,judge=0,novelty=0,diversity=0")


def test_apply_edit_each_op():
    p = Prompt()
    assert apply_edit(p, {"op": "temperature", "amount": 9}).sampling.temperature == 2.0
    b = apply_edit(p, {"op": "bias", "path": "$.island", "value": "Dream", "amount": 1.5})
    assert b.bias == {"$.island": {'"Dream"': 1.5}}
    f = apply_edit(p, {"op": "forbid", "path": "$.island", "value": "Dream"})
    assert f.forbid == {"$.island": ["Dream"]}
    assert apply_edit(f, {"op": "allow", "path": "$.island", "value": "Dream"}).forbid == {}
    r = apply_edit(p, {"op": "range", "path": "$.body_mass_g", "lo": 3000, "hi": 4000})
    assert r.ranges == {"$.body_mass_g": [3000.0, 4000.0]}
    assert apply_edit(r, {"op": "unrange", "path": "$.body_mass_g"}).ranges == {}
    assert apply_edit(p, {"op": "text", "value": "more Chinstraps"}).text == "more Chinstraps"
    assert p == Prompt()  # never edited in place
    for bad in (
        {"op": "forbid", "path": "", "value": "x"},
        {"op": "allow", "path": "$.island", "value": "Dream"},
        {"op": "range", "path": "$.year", "lo": 5, "hi": 1},
        {"op": "text", "value": " "},
    ):
        with pytest.raises(InputError):
            apply_edit(p, bad)


def test_optimizer_proposals_are_checked_and_deduplicated():
    scaffold = Scaffold.build(SCHEMA.resolved, SEEDS)
    schema = proposal_schema(scaffold)
    shapes = {(b["properties"]["op"]["const"], b["properties"]["path"]["const"]) for b in schema["anyOf"]}
    assert {("bias", "$.island"), ("forbid", "$.island"), ("temperature", ""), ("text", "")} <= shapes
    assert not any(op in ("allow", "unrange") for op, _ in shapes)  # nothing is forbidden or ranged yet
    forbid = next(
        b
        for b in schema["anyOf"]
        if b["properties"]["op"]["const"] == "forbid" and b["properties"]["path"]["const"] == "$.island"
    )
    assert sorted(forbid["properties"]["value"]["enum"]) == ["Biscoe", "Dream", "Torgersen"]
    after = proposal_schema(scaffold, Prompt(forbid={"$.island": ["Dream"]}))
    shapes = {(b["properties"]["op"]["const"], b["properties"]["path"]["const"]) for b in after["anyOf"]}
    assert ("allow", "$.island") in shapes and ("forbid", "$.island") not in shapes  # keeps two islands
    answers = iter(
        [
            {"rationale": "a", "op": "forbid", "path": "$.island", "value": "Torgersen", "amount": 0, "lo": 0, "hi": 0},
            {"rationale": "b", "op": "forbid", "path": "$.island", "value": "Torgersen", "amount": 0, "lo": 0, "hi": 0},
            {"rationale": "c", "op": "range", "path": "$.year", "value": "", "amount": 0, "lo": 2009, "hi": 2007},
            "garbage",
            "garbage",
            "garbage",
        ]
    )
    chat = ScriptedChatModel(lambda m: next(answers))
    from aod_core.canvas.constraints import CanvasConstraint

    opt = PromptOptimizer(chat, scaffold)
    props = opt.propose(Prompt(), "too many Torgersen", [("{}", 0.4)], 4, check=lambda p: CanvasConstraint(scaffold, p))
    assert props[0].prompt is not None and props[0].prompt.forbid == {"$.island": ["Torgersen"]}
    assert props[1].prompt is None and "same as an earlier" in props[1].error
    assert props[2].prompt is None and "empty" in props[2].error  # the grammar allows it; the edit is refused
    assert props[3].prompt is None and "no usable answer" in props[3].error
    sent = chat.conversations[0][1]["content"]
    assert "too many Torgersen" in sent and "reward 0.400" in sent


def test_prompt_summary_shows_only_edits():
    assert prompt_summary(Prompt()) == "{}"
    assert json.loads(prompt_summary(Prompt(pins={"$.a": 1}))) == {"pins": {"$.a": 1}}


def test_judge_shows_worked_examples_including_an_implausible_one():
    from aod_core.agents.judge import implausible_example

    bad, why = implausible_example(SEEDS)
    pairs = {(s["species"], s["island"]) for s in SEEDS}
    assert (bad["species"], bad["island"]) not in pairs and SCHEMA.is_valid(bad) and "never occurs" in why
    chat = ScriptedChatModel(
        lambda m: (
            {"feedback": "ok"}
            if "review a batch" in m[0]["content"]
            else {"verdict": "accept", "score": 0.7, "reasons": []}
        )
    )
    Judge(chat, SCHEMA, SEEDS, demonstrations=True).judge(BATCH[:1])
    conv = chat.conversations[0]
    answers = [json.loads(m["content"]) for m in conv if m["role"] == "assistant"]
    assert [a["verdict"] for a in answers] == ["accept", "reject", "accept"]
    assert conv[-1]["role"] == "user" and json.dumps(BATCH[0].record) in conv[-1]["content"]
    assert implausible_example([{"a": "x"}, {"a": "y"}]) is None  # needs two categorical fields
    Judge(chat, SCHEMA, SEEDS).judge(BATCH[:1])  # off by default: system prompt and the record only
    assert [m["role"] for m in chat.conversations[-2]] == ["system", "user"]
