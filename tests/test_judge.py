"""The judge's composition rule (exact checks -> plausibility -> LLM), near copies, and ``aod judge``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aod_core.agents.judge import Judge, JudgeSettings, finding_facts, passed_checks
from aod_core.agents.plausibility import PlausibilityModel, PlausibilitySettings
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.cli import main
from aod_core.data.schema import load_schema, parse_schema
from aod_core.errors import InputError
from aod_core.records import Candidate

PENGUINS = Path(__file__).resolve().parent.parent / "assets" / "penguins"
SCHEMA = load_schema(PENGUINS / "schema.json")
SEEDS = [json.loads(x) for x in (PENGUINS / "seeds.jsonl").read_text().splitlines()]
HOLDOUT = [json.loads(x) for x in (PENGUINS / "holdout.jsonl").read_text().splitlines()]
REAL = {
    "species": "Adelie",
    "island": "Torgersen",
    "bill_length_mm": 39.1,
    "bill_depth_mm": 18.7,
    "flipper_length_mm": 181,
    "body_mass_g": 3750,
    "sex": "male",
    "year": 2007,
}
ABSURD = dict(REAL, body_mass_g=6400, flipper_length_mm=172, species="Gentoo")  # a tiny Gentoo on Torgersen


@pytest.fixture(scope="module")
def model():
    return PlausibilityModel.fit(SEEDS, PlausibilitySettings(semantic=False))


def cands(*records):
    return [Candidate(text=json.dumps(r), record=r) for r in records]


def verdict_script(verdict, score=0.8):
    def answer(messages):
        if "review a batch" in messages[0]["content"]:
            return {"feedback": "fine"}
        return {"verdict": verdict, "score": score, "reasons": [f"the LLM says {verdict}"]}

    return answer


def test_plausibility_mode_asks_no_llm_and_explains(model):
    j = Judge(None, SCHEMA, SEEDS, mode="plausibility", plausibility=model).judge(cands(REAL, ABSURD, SEEDS[0]))
    v = j.verdicts
    assert [x.source for x in v] == ["plausibility", "plausibility", "checks"]
    assert v[0].accept and not v[1].accept and not v[2].accept
    assert v[1].reasons and v[1].evidence["findings"] and 0 <= v[1].score < v[0].score <= 1
    assert "accepted" in j.summary and j.llm_seconds == 0.0
    assert any("records:" in f for f in j.facts)  # findings grouped for the optimizer


def test_combined_mode_lets_the_llm_decide_within_the_veto(model):
    chat = ScriptedChatModel(verdict_script("accept", 0.9))
    judge = Judge(chat, SCHEMA, SEEDS, mode="combined", plausibility=model, veto=0.01)
    j = judge.judge(cands(REAL, ABSURD), summarise=False)
    real, absurd = j.verdicts
    assert real.source == "combined" and real.accept
    assert real.score == pytest.approx((0.9 + real.evidence["score"]) / 2, abs=1e-3)
    assert absurd.evidence["score"] < 0.01  # so the plausibility model vetoes the LLM's accept
    assert (
        not absurd.accept and absurd.reasons[0].startswith("plausibility") and "the LLM said accept" in absurd.reasons
    )
    asked = [c for c in chat.conversations if "data-quality judge" in c[0]["content"]]
    assert len(asked) == 2 and all("Plausibility" in c[-1]["content"] for c in asked)  # the LLM saw the evidence
    assert "plausibility score" in asked[0][0]["content"]


def test_combined_mode_llm_can_reject_a_plausible_record(model):
    j = Judge(
        ScriptedChatModel(verdict_script("reject", 0.2)), SCHEMA, SEEDS, mode="combined", plausibility=model
    ).judge(cands(REAL), summarise=False)
    assert not j.verdicts[0].accept and "the LLM says reject" in j.verdicts[0].reasons


def test_llm_mode_shows_no_plausibility_evidence():
    chat = ScriptedChatModel(verdict_script("accept"))
    j = Judge(chat, SCHEMA, SEEDS, mode="llm").judge(cands(REAL), summarise=False)
    assert j.verdicts[0].source == "llm" and j.verdicts[0].evidence is None
    assert "Plausibility" not in chat.conversations[0][-1]["content"]


def test_an_unusable_llm_answer_is_a_failure_not_a_fallback(model):
    j = Judge(
        ScriptedChatModel(["no json", "still none", "nope"], retries=2),
        SCHEMA,
        SEEDS,
        mode="combined",
        plausibility=model,
    ).judge(cands(REAL), summarise=False)
    assert j.verdicts[0].source == "failed" and not j.verdicts[0].accept and j.verdicts[0].score is None
    assert j.verdicts[0].evidence is not None  # the evidence is still recorded


def test_modes_need_what_they_use(model):
    with pytest.raises(InputError, match="needs a plausibility model"):
        Judge(ScriptedChatModel([]), SCHEMA, SEEDS, mode="combined")
    with pytest.raises(InputError, match="needs a chat model"):
        Judge(None, SCHEMA, SEEDS, mode="llm")
    assert JudgeSettings().resolved_mode("embedded") == "plausibility"
    assert JudgeSettings().resolved_mode("openai:m@http://x") == "combined"
    assert JudgeSettings(mode="llm").resolved_mode("embedded") == "llm"
    with pytest.raises(InputError, match="judge mode"):
        JudgeSettings(mode="oracle").check()


LONG = {
    "title": "the quick brown fox jumps over the lazy dog while seven wizards quietly brew strange potions "
    "under a pale moon near the old mill and the river keeps running past the fields towards a "
    "distant harbour where ships wait for the morning tide",
    "n": 1,
}


def test_near_copies_of_seeds_and_of_accepted_records_fail_the_checks():
    seeds = [dict(LONG, n=i) for i in range(3)] + [{"title": f"short note {i}", "n": i} for i in range(20)]
    schema = parse_schema({"type": "object", "properties": {"title": {"type": "string"}, "n": {"type": "integer"}}})
    typo = dict(LONG, title=LONG["title"].replace("wizards", "wizardz"), n=0)
    judge = Judge(ScriptedChatModel(verdict_script("accept")), schema, seeds, mode="llm")
    j = judge.judge(cands(typo, {"title": "something else entirely", "n": 99}), summarise=False)
    assert j.checks[0].near_copy and j.checks[0].near_copy_of == "seed" and j.checks[0].near_copy_similarity >= 0.8
    assert not j.verdicts[0].accept and "near copy of a seed" in j.verdicts[0].reasons[0]
    assert not passed_checks({"parses": True, "schema_errors": [], "near_copy": True})
    other = {
        "title": "a completely different and rather long sentence about rivers mountains and the sea that goes on for a while longer than most",
        "n": 5,
    }
    accepted = {json.dumps(other, sort_keys=True, ensure_ascii=False, separators=(",", ":"))}
    near_other = dict(other, n=6)
    j = judge.judge(cands(near_other), prior=accepted, summarise=False)
    assert j.checks[0].near_copy and j.checks[0].near_copy_of == "accepted record"
    off = Judge(ScriptedChatModel(verdict_script("accept")), schema, seeds, mode="llm", near_copy=1.5)
    assert not off.judge(cands(typo), summarise=False).checks[0].near_copy  # above 1: the check is off


def test_finding_facts_group_rejections_by_what_they_share(model):
    judge = Judge(None, SCHEMA, SEEDS, mode="plausibility", plausibility=model)
    heavy = [dict(REAL, body_mass_g=6300 - i) for i in range(4)]
    j = judge.judge(cands(*heavy, *HOLDOUT[:4]), summarise=False)
    facts = finding_facts(j.verdicts)
    assert facts and facts[0].startswith(f"{sum(not v.accept for v in j.verdicts[:4])}/8 records:")
    assert "body_mass_g" in facts[0]


def test_build_fits_and_caches_the_plausibility_model(tmp_path):
    j = Judge.build("embedded", None, SCHEMA, SEEDS[:80], JudgeSettings(semantic=False), cache_dir=tmp_path)
    assert j.mode == "plausibility" and j.chat is None and j.plausibility.report["cached"] is False
    again = Judge.build("embedded", None, SCHEMA, SEEDS[:80], JudgeSettings(semantic=False), cache_dir=tmp_path)
    assert again.plausibility.report["cached"] is True
    assert j.describe()["calibration"]["seeds"] == 80


# ---- aod judge ---------------------------------------------------------------------------------


@pytest.fixture
def records_file(tmp_path):
    f = tmp_path / "records.jsonl"
    lines = [json.dumps(r) for r in HOLDOUT[:6]] + [
        json.dumps(ABSURD),
        "{not json",
        json.dumps(SEEDS[3]),
        json.dumps(HOLDOUT[0]),
    ]
    f.write_text("\n".join(lines) + "\n")
    return f


def judge_args(records, out, *extra):
    return [
        "judge",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(PENGUINS / "seeds.jsonl"),
        "--records",
        str(records),
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_cli_judge_writes_one_verdict_per_record_in_order(records_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "verdicts.jsonl"
    assert main(judge_args(records_file, out)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["index"] for r in rows] == list(range(10))
    assert all(set(r) >= {"verdict", "score", "reasons", "evidence", "checks"} for r in rows)
    assert all(r["score"] is None or 0 <= r["score"] <= 1 for r in rows)
    assert rows[6]["verdict"] == "reject" and rows[6]["judged_by"] == "plausibility" and rows[6]["reasons"]
    assert rows[7]["reasons"] == ["does not parse as JSON"]
    assert rows[8]["checks"]["seed_copy"] and rows[9]["checks"]["duplicate"]
    assert sum(r["verdict"] == "accept" for r in rows[:6]) >= 4  # real birds the judge never saw
    err = capsys.readouterr().err
    assert "judged 10 records" in err and "held-out accept rate" in err


def test_cli_judge_reads_csv_records(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))
    import csv

    f = tmp_path / "r.csv"
    with f.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(REAL))
        w.writeheader()
        w.writerow(REAL)
        w.writerow(ABSURD)
    out = tmp_path / "v.jsonl"
    assert main(judge_args(f, out)) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["verdict"] for r in rows] == ["accept", "reject"]


@pytest.mark.parametrize(
    "extra, records, message",
    [
        ([], "missing.jsonl", "records file not found"),
        ([], "empty.jsonl", "no records"),
        (["--accept-share", "1.5"], None, "--accept-share must be in [0.5, 1)"),
        (["--judge", "gpt4"], None, "unknown chat model spec"),
    ],
)
def test_cli_judge_bad_input_is_one_line_exit_2(records_file, tmp_path, capsys, monkeypatch, extra, records, message):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "empty.jsonl").write_text("\n")
    target = tmp_path / records if records else records_file
    assert main(judge_args(target, tmp_path / "v.jsonl", *extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "v.jsonl").exists()  # no partial output


def test_cli_judge_out_folder_must_exist(records_file, tmp_path, capsys):
    assert main(judge_args(records_file, tmp_path / "nope" / "v.jsonl")) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- the loop with the default judge ------------------------------------------------------------


class ReplayGenerator:
    """Stands in for a generator: real held-out birds, each batch salted with impossible ones."""

    spec = "replay"
    scaffold = None

    def __init__(self, real, bad):
        self.real, self.bad, self.calls = real, bad, 0

    def fit(self, on_progress=None):
        return {}

    def check_prompt(self, prompt):
        return None

    def sample(self, prompt, n, *, seed=0, on_step=None):
        start = (self.calls * n) % len(self.real)
        self.calls += 1
        out = [self.real[(start + i) % len(self.real)] for i in range(n - 2)] + self.bad
        return cands(*out)


def test_loop_with_the_plausibility_judge_accepts_real_records_and_rejects_impossible_ones(tmp_path):
    from aod_core.agents.optimizer import PromptOptimizer
    from aod_core.runs.loop import AoDLoop, LoopSettings
    from aod_core.runs.store import RunStore

    bad = [ABSURD, dict(REAL, bill_length_mm=61.5, body_mass_g=2600)]
    store = RunStore.create(tmp_path / "run", {"generator": "replay", "judge": "embedded"})
    judge = Judge.build("embedded", None, SCHEMA, SEEDS, JudgeSettings(semantic=False), cache_dir=tmp_path / "c")
    loop = AoDLoop(
        store,
        ReplayGenerator(HOLDOUT, bad),
        judge,
        PromptOptimizer(ScriptedChatModel([]), None),
        LoopSettings(iterations=3, batch=12, proposals=0),
    )
    assert loop.run() == "finished"
    metrics = store.metrics()
    assert all(m["task_success_rate"] > 0 for m in metrics)  # the optimizer has something to climb
    accepted = store.accepted()
    assert accepted and not any(r in bad for r in accepted)
    rows = store.candidates()
    assert all(r["judged_by"] == "plausibility" and r["evidence"] for r in rows if r["record"] in bad)
    assert all(r["verdict"] == "reject" and r["reasons"] for r in rows if r["record"] in bad)
    feedback = store.feedback()[0]["feedback"]
    assert "records:" in feedback  # the rejections' findings, grouped, reach the optimizer
