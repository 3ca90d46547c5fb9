"""`aod bench` end to end on a tiny dataset with small budgets (tiny DLM, scripted agents)."""

import json

import pytest
from test_loop import PENGUINS, TINY, respond

from aod_core.agents.judge import JudgeSettings
from aod_core.canvas.prompt import Prompt
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.cli import main
from aod_core.data.schema import load_schema
from aod_core.errors import InputError
from aod_core.generators import load_generator
from aod_core.generators.ar import ARGenerator
from aod_core.runs.bench import Bench, BenchConfig, markdown_table

AR_RECORD = {
    "species": "Gentoo",
    "island": "Biscoe",
    "bill_length_mm": 47.1,
    "bill_depth_mm": 14.9,
    "flipper_length_mm": 216,
    "body_mass_g": 5100,
    "sex": "male",
    "year": 2008,
}


def scripted(messages):
    if "one new JSON record" in messages[0]["content"]:
        return json.dumps(AR_RECORD)
    return respond(messages)


@pytest.fixture
def dataset(tmp_path):
    lines = (PENGUINS / "seeds.jsonl").read_text().splitlines()
    d = tmp_path / "data"
    d.mkdir()
    (d / "schema.json").write_text((PENGUINS / "schema.json").read_text())
    (d / "seeds.jsonl").write_text("\n".join(lines[:40]) + "\n")
    (d / "holdout.jsonl").write_text("\n".join(lines[40:60]) + "\n")
    return d


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _config(**kw):
    # The scripted judge is an LLM judge (--judge-mode llm): the assertions below count its verdicts.
    return BenchConfig(
        **{
            "iterations": 2,
            "batch": 4,
            "probe": 2,
            "proposals": 1,
            "generator_config": dict(TINY),
            "judge_settings": JudgeSettings(mode="llm"),
            **kw,
        }
    )


def test_ar_generator_writes_records_and_refuses_scaffold_edits():
    schema = load_schema(PENGUINS / "schema.json")
    gen = ARGenerator("embedded", schema, [AR_RECORD], chat=ScriptedChatModel(scripted))
    cands = gen.sample(Prompt(text="penguins"), 3, seed=1)
    assert [c.record for c in cands] == [AR_RECORD] * 3
    with pytest.raises(InputError, match="scaffold edits"):
        gen.check_prompt(Prompt(pins={"$.island": "Dream"}))
    assert load_generator("ar:embedded", schema, [AR_RECORD]).spec == "ar:embedded"
    with pytest.raises(InputError, match="needs a chat model"):
        load_generator("ar:", schema, [AR_RECORD])


@pytest.mark.slow
def test_bench_compares_methods_on_the_same_budget(dataset, tmp_path):
    out = tmp_path / "bench"
    chat = ScriptedChatModel(scripted)
    config = _config(methods=("static_dlm", "ar_only", "aod", "aod_scalar"))
    results = Bench(dataset, out, config, chat_cache={"embedded": chat}).run()
    assert set(results["methods"]) == {"static_dlm", "ar_only", "aod", "aod_scalar"}
    for name, m in results["methods"].items():
        assert m["n_candidates"] == 8, name
        for key in ("task_success_rate", "field_overlap", "schema_valid_rate", "distinct_2", "dcr_median", "seconds"):
            assert key in m, (name, key)
        assert 0.0 <= m["task_success_rate"] <= 1.0
    # ar_only wrote the same record 8 times: the judge's checks reject the 7 repeats
    assert results["methods"]["ar_only"]["task_success_rate"] == pytest.approx(1 / 8)
    assert set(results["curves"]) == {"aod", "aod_scalar"} and len(results["curves"]["aod"]) == 2
    # aod_scalar's optimizer never saw the judge's words
    scalar_prompts = (out / "runs" / "aod_scalar" / "prompts.jsonl").read_text()
    assert (out / "runs" / "aod").is_dir() and scalar_prompts
    saved = json.loads((out / "results.json").read_text())
    assert saved["methods"].keys() == results["methods"].keys() and saved["budget"] == 8
    assert "| aod |" in (out / "results.md").read_text() and (out / "charts.html").stat().st_size > 10_000
    assert markdown_table(results).count("\n") == 2 + 4


def test_bench_input_errors(dataset, tmp_path):
    chat = {"embedded": ScriptedChatModel(scripted)}
    with pytest.raises(InputError, match="unknown method"):
        Bench(dataset, tmp_path / "o", _config(methods=("aod", "nope")), chat_cache=chat)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        Bench(dataset, tmp_path / "full", _config(), chat_cache=chat)
    with pytest.raises(InputError, match="not found"):
        Bench(tmp_path / "missing", tmp_path / "o", _config(), chat_cache=chat)


def test_cli_bench_bad_input_is_one_line_exit_2(dataset, tmp_path, capsys):
    assert main(["bench", "--dataset", str(dataset), "--out", str(tmp_path / "o"), "--methods", "aod,x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown method" in err[0]


def test_cli_audit_counts_unparsed_lines_and_writes_json(tmp_path, capsys):
    lines = (PENGUINS / "holdout.jsonl").read_text().splitlines()[:5] + ["{not json"]
    f = tmp_path / "gen.jsonl"
    f.write_text("\n".join(lines) + "\n")
    out = tmp_path / "audit.json"
    args = [
        "audit",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(PENGUINS / "seeds.jsonl"),
        "--records",
        str(f),
    ]
    assert main(args + ["--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert r["n_candidates"] == 6 and r["valid_json_rate"] == pytest.approx(5 / 6)
    assert r["exact_copy_rate"] == 0.0 and r["embedder"]["semantic"] is True  # all-MiniLM-L6-v2, installed
    assert main(args[:-1] + [str(tmp_path / "missing.jsonl")]) == 2
    assert "records file not found" in capsys.readouterr().err
