"""Repairs: edits read off a judgement's findings, proposed beside the chat model's (agents/repairs.py)."""

import json
from pathlib import Path

import numpy as np

from aod_core.agents.judge.checks import Checks
from aod_core.agents.judge.verdicts import Judgement, Verdict
from aod_core.agents.optimizer import PromptOptimizer
from aod_core.agents.repairs import HIGHEST, LOWEST, STEP, TAIL, repairs
from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.data.schema import load_schema

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = load_schema(ROOT / "assets" / "penguins" / "schema.json")
SEEDS = [json.loads(line) for line in (ROOT / "assets" / "penguins" / "seeds.jsonl").read_text().splitlines()[:120]]
SCAFFOLD = Scaffold.build(SCHEMA.resolved, SEEDS)


def _checks(**kw) -> Checks:
    base = dict(parses=True, schema_errors=[], duplicate=False, seed_copy=False, field_overlap=0.5)
    return Checks(**{**base, **kw})


def _finding(kind: str, field: str, key: str) -> dict:
    return {"rule": f"{kind} {field}", "kind": kind, "fields": [field], "key": key, "text": key}


def _rejected(*findings: dict) -> Verdict:
    return Verdict(False, 0.01, [f["text"] for f in findings], "plausibility", {"findings": list(findings)})


def _accepted() -> Verdict:
    return Verdict(True, 0.6, [], "plausibility", {"findings": []})


def _judgement(checks, verdicts) -> Judgement:
    return Judgement(checks=checks, verdicts=verdicts, facts=[], summary="")


def test_implausible_records_ask_for_typical_sampling_and_the_flagged_number_in_its_usual_range():
    low = _finding("range", "$.body_mass_g", "body_mass_g unusually low")
    sparse = _finding("density", "$.body_mass_g", "body_mass_g in a sparse range")
    flipper = _finding("density", "$.flipper_length_mm", "flipper_length_mm in a sparse range")
    other = _finding("conditional", "$.bill_length_mm", "bill_length_mm above every seed with species = Adelie")
    verdicts = [_rejected(low, sparse), _rejected(low), _rejected(flipper), _rejected(other)] + [_accepted()] * 4
    got = repairs(Prompt(), _judgement([_checks()] * 8, verdicts), SEEDS, SCAFFOLD)
    assert [r.edit["op"] for r in got] == ["temperature", "range"]
    t = Sampling().temperature
    assert (
        got[0].edit["amount"] == round(t - STEP, 2) and "4/8 records were rejected as implausible" in got[0].rationale
    )
    # body mass is flagged in 2 records (once each, whatever its number of findings), flippers in 1
    rng = got[1].edit
    assert rng["path"] == "$.body_mass_g" and "2/8 records" in got[1].rationale
    masses = [s["body_mass_g"] for s in SEEDS if s.get("body_mass_g") is not None]
    lo, hi = np.quantile(masses, [TAIL, 1 - TAIL])
    assert rng["lo"] == np.floor(lo) and rng["hi"] == np.ceil(hi)  # an integer field: rounded outwards
    assert rng["lo"] > min(masses) and rng["hi"] < max(masses)
    # the range is already there: the next most flagged number gets it
    ranged = Prompt(ranges={"$.body_mass_g": [3000.0, 5000.0]})
    again = repairs(ranged, _judgement([_checks()] * 8, verdicts), SEEDS, SCAFFOLD)
    assert again[1].edit["path"] == "$.flipper_length_mm"
    # the temperature is already as low as it goes: no temperature repair
    cold = Prompt(sampling=Sampling(temperature=LOWEST + STEP / 2))
    assert [r.edit["op"] for r in repairs(cold, _judgement([_checks()] * 8, verdicts), SEEDS, SCAFFOLD)] == ["range"]
    assert len(repairs(Prompt(), _judgement([_checks()] * 8, verdicts), SEEDS, SCAFFOLD, limit=1)) == 1
    assert repairs(Prompt(), _judgement([_checks()] * 8, verdicts), SEEDS, SCAFFOLD, limit=0) == []


def test_repeats_ask_for_varied_sampling_and_a_clean_batch_asks_for_nothing():
    checks = [_checks(duplicate=True), _checks(seed_copy=True), _checks(near_copy=True)] + [_checks()] * 5
    verdicts = [_accepted()] * 3 + [_rejected(_finding("range", "$.body_mass_g", "x"))] + [_accepted()] * 4
    got = repairs(Prompt(), _judgement(checks, verdicts), SEEDS, SCAFFOLD)
    assert got[0].edit == {"op": "temperature", "amount": round(Sampling().temperature + STEP, 2)}
    assert "3/8 records repeat" in got[0].rationale
    hot = Prompt(sampling=Sampling(temperature=HIGHEST))
    assert all(r.edit["op"] != "temperature" for r in repairs(hot, _judgement(checks, verdicts), SEEDS, SCAFFOLD))
    clean = _judgement([_checks()] * 8, [_accepted()] * 8)
    assert repairs(Prompt(), clean, SEEDS, SCAFFOLD) == []
    assert repairs(Prompt(), None, SEEDS, SCAFFOLD) == []  # no findings to read (the scalar-feedback ablation)
    # an LLM judge's rejection carries no findings: nothing to read off it
    llm = _judgement([_checks()] * 2, [Verdict(False, 0.1, ["odd"], "llm"), _accepted()])
    assert repairs(Prompt(), llm, SEEDS, SCAFFOLD) == []


def test_the_optimizer_proposes_repairs_first_and_never_the_same_prompt_twice():
    verdicts = [_rejected(_finding("range", "$.body_mass_g", "body_mass_g unusually low"))] + [_accepted()] * 3
    judgement = _judgement([_checks()] * 4, verdicts)
    t = round(Sampling().temperature - STEP, 2)
    answers = iter(
        [
            # the chat model proposes what a repair already did, then something new
            {"rationale": "a", "op": "temperature", "path": "", "value": "", "amount": t, "lo": 0, "hi": 0},
            {"rationale": "b", "op": "forbid", "path": "$.island", "value": "Dream", "amount": 0, "lo": 0, "hi": 0},
        ]
    )
    chat = ScriptedChatModel(lambda m: next(answers))
    opt = PromptOptimizer(chat, SCAFFOLD)
    props = opt.propose(
        Prompt(),
        "feedback",
        [],
        2,
        check=lambda p: CanvasConstraint(SCAFFOLD, p),
        judgement=judgement,
        seeds=SEEDS,
        repairs=2,
    )
    assert [p.source for p in props] == ["repair", "repair", "model", "model"]
    assert props[0].prompt.sampling.temperature == t and props[1].prompt.ranges.keys() == {"$.body_mass_g"}
    assert props[2].prompt is None and "same as an earlier proposal" in props[2].error
    assert props[3].prompt.forbid == {"$.island": ["Dream"]}
    # repairs=0: the chat model's proposals only
    chat2 = ScriptedChatModel(
        [{"rationale": "b", "op": "forbid", "path": "$.island", "value": "Dream", "amount": 0, "lo": 0, "hi": 0}]
    )
    only = PromptOptimizer(chat2, SCAFFOLD).propose(Prompt(), "f", [], 1, judgement=judgement, seeds=SEEDS)
    assert [p.source for p in only] == ["model"]


class _Replay:
    """A generator that replays seed-like records (ignoring the prompt) plus two impossible ones."""

    spec = "replay"

    def __init__(self, records):
        self.records, self.calls = records, 0

    def fit(self, on_progress=None):
        return {}

    def check_prompt(self, prompt):
        return None

    def sample(self, prompt, n, *, seed=0, on_step=None):
        from aod_core.records import Candidate

        self.calls += 1
        out = [dict(r, year=2007 + (self.calls + i) % 3) for i, r in enumerate(self.records[: n - 2])]
        out += [dict(self.records[0], body_mass_g=6400, flipper_length_mm=172), dict(self.records[1], body_mass_g=2550)]
        return [Candidate(text=json.dumps(r), record=r) for r in out]


def test_the_loop_probes_repairs_only_when_the_optimizer_reads_feedback(tmp_path):
    from aod_core.agents.judge import Judge, JudgeSettings
    from aod_core.runs.loop import AoDLoop, LoopSettings
    from aod_core.runs.store import RunStore

    judge = Judge.build("embedded", None, SCHEMA, SEEDS, JudgeSettings(semantic=False), cache_dir=tmp_path / "c")
    holdout = [json.loads(line) for line in (ROOT / "assets" / "penguins" / "holdout.jsonl").read_text().splitlines()]
    for verbal, expect in ((True, True), (False, False)):
        store = RunStore.create(tmp_path / f"run-{verbal}", {"generator": "replay", "judge": "embedded"})
        opt = PromptOptimizer(ScriptedChatModel([]), SCAFFOLD)
        settings = LoopSettings(iterations=2, batch=10, probe=10, proposals=0, repairs=2, verbal_feedback=verbal)
        assert AoDLoop(store, _Replay(holdout), judge, opt, settings).run() == "finished"
        probed = [p for p in store.prompts() if p.get("role") == "proposal"]
        assert bool(probed) is expect
        assert all(p["source"] == "repair" and p["reward"] is not None for p in probed)
        if expect:  # the impossible masses were flagged on their own: typical sampling, and body mass kept usual
            assert {p["edit"]["op"] for p in probed} == {"temperature", "range"}


def test_a_tie_between_implausible_and_repeated_records_asks_for_typical_sampling():
    checks = [_checks(seed_copy=True)] + [_checks()] * 3
    verdicts = [_accepted(), _rejected(_finding("range", "$.body_mass_g", "x")), _accepted(), _accepted()]
    got = repairs(Prompt(), _judgement(checks, verdicts), SEEDS, SCAFFOLD)
    assert got[0].edit == {"op": "temperature", "amount": round(Sampling().temperature - STEP, 2)}


class _Lucky(_Replay):
    """The default prompt gives half real, half impossible records; any other prompt gives real ones
    on the first probe's seed only (a lucky batch) and impossible ones on every other seed."""

    def __init__(self, records, lucky_seed):
        super().__init__(records)
        self.lucky_seed, self.drawn = lucky_seed, 0

    def sample(self, prompt, n, *, seed=0, on_step=None):
        from aod_core.records import Candidate

        real = [self.records[(self.drawn + i) % len(self.records)] for i in range(n)]
        self.drawn += n
        bad = [dict(r, body_mass_g=6400, flipper_length_mm=172) for r in real]
        if prompt == Prompt():
            out = real[: n // 2] + bad[n // 2 :]
        else:
            out = real if seed == self.lucky_seed else bad
        return [Candidate(text=json.dumps(r), record=r) for r in out]


def test_a_lucky_probe_winner_must_win_again_on_a_second_probe(tmp_path):
    from aod_core.agents.judge import Judge, JudgeSettings
    from aod_core.runs.loop import AoDLoop, LoopSettings
    from aod_core.runs.store import RunStore

    judge = Judge.build("embedded", None, SCHEMA, SEEDS, JudgeSettings(semantic=False), cache_dir=tmp_path / "c")
    holdout = [json.loads(line) for line in (ROOT / "assets" / "penguins" / "holdout.jsonl").read_text().splitlines()]
    outcome = {}
    for confirm in (True, False):
        store = RunStore.create(tmp_path / f"run-{confirm}", {"generator": "lucky", "judge": "embedded"})
        settings = LoopSettings(iterations=2, batch=8, probe=8, proposals=0, repairs=1, confirm=confirm)
        loop = AoDLoop(store, None, judge, PromptOptimizer(ScriptedChatModel([]), SCAFFOLD), settings)
        loop.gen = _Lucky(holdout, lucky_seed=loop._seed(0, 2))
        assert loop.run() == "finished"
        rows = [p for p in store.prompts() if p.get("iteration") == 0]
        probe = {p["role"]: p["reward"] for p in rows if p["role"] in ("incumbent_probe", "proposal")}
        assert probe["proposal"] > probe["incumbent_probe"]  # the repair won the (lucky) probe
        nxt = next(p for p in rows if p["role"] == "next")
        outcome[confirm] = nxt["prompt"] != Prompt().to_dict()
        second = {p["role"]: p["reward"] for p in rows if p["role"].endswith("_confirm")}
        if confirm:
            assert second["proposal_confirm"] < second["incumbent_confirm"]  # and lost the second one
        else:
            assert not second
    assert outcome == {True: False, False: True}


def test_the_run_page_table_names_repairs_and_shows_the_second_probe():
    from aod_core.studio.runview import proposal_table

    used = Prompt().to_dict()
    cooler = Prompt(sampling=Sampling(temperature=0.5)).to_dict()
    rows = [
        {"role": "incumbent_probe", "prompt": used, "reward": 0.70},
        {"role": "proposal", "prompt": cooler, "reward": 0.74, "source": "repair", "edit": {"op": "temperature"}},
        {"role": "proposal", "prompt": None, "reward": None, "source": "model", "error": "unchanged"},
    ]
    confirm = {
        "incumbent_confirm": {"role": "incumbent_confirm", "prompt": used, "reward": 0.71},
        "proposal_confirm": {"role": "proposal_confirm", "prompt": cooler, "reward": 0.73},
    }
    table = proposal_table(rows, used, cooler, confirm)
    assert [r["candidate"] for r in table] == ["incumbent", "repair", "proposal"]
    assert [r["second probe"] for r in table] == [0.71, 0.73, None]
    assert [r["chosen"] for r in table] == [False, True, False]
