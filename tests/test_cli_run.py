"""``aod run`` / ``resume`` / ``export`` in-process, with a scripted chat model in place of the agents' LLM."""

import csv
import json

import pandas as pd
import pytest

from aod_core.chat.scripted import ScriptedChatModel
from aod_core.cli import main
from aod_core.data.schema import load_schema
from aod_core.runs import setup as runner
from aod_core.runs.store import RunStore
from tests.test_loop import PENGUINS, respond


@pytest.fixture(autouse=True)
def _env(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))
    real = runner.load_chat_model

    def fake(spec, **kw):
        real(spec)  # constructing is cheap and lazy: spec errors stay real
        return ScriptedChatModel(respond)

    monkeypatch.setattr(runner, "load_chat_model", fake)


@pytest.fixture
def seeds(tmp_path):
    p = tmp_path / "seeds.jsonl"
    p.write_text("\n".join((PENGUINS / "seeds.jsonl").read_text().splitlines()[:60]) + "\n")
    return p


def run_args(seeds, out, *extra):
    return [
        "run",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(seeds),
        "--out",
        str(out),
        "--iterations",
        "2",
        "--batch",
        "8",
        "--probe",
        "4",
        "--fit-steps",
        "40",
        "--quiet",
        *extra,
    ]


@pytest.mark.slow
def test_run_resume_export(tmp_path, seeds, capsys):
    out = tmp_path / "run"
    assert main(run_args(seeds, out)) == 0
    store = RunStore.open(out, repair=False)
    assert store.iterations_done() == 2 and (out / "inputs" / "schema.json").exists()
    assert "run finished" in capsys.readouterr().err
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().err
    schema = load_schema(PENGUINS / "schema.json")
    for fmt in ("jsonl", "csv", "parquet"):
        dest = tmp_path / f"acc.{fmt}"
        assert main(["export", str(out), "--format", fmt, "--out", str(dest)]) == 0
    lines = (tmp_path / "acc.jsonl").read_text().splitlines()
    assert len(lines) == len(store.accepted()) and all(schema.is_valid(json.loads(x)) for x in lines)
    assert len(list(csv.DictReader(open(tmp_path / "acc.csv")))) == len(lines)
    assert len(pd.read_parquet(tmp_path / "acc.parquet")) == len(lines)


@pytest.mark.slow
def test_resume_continues_a_stopped_run(tmp_path, seeds):
    out = tmp_path / "run"
    assert main(run_args(seeds, out, "--proposals", "0")) == 0
    store = RunStore.open(out, repair=False)
    # Pretend the run had a bigger budget and was stopped after two iterations.
    config = store.config
    config["loop"]["iterations"] = 3
    (out / "config.json").write_text(json.dumps(config))
    store.set_status("stopped")
    assert main(["resume", str(out), "--quiet"]) == 0
    assert RunStore.open(out).iterations_done() == 3


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--iterations", "0"], "--iterations must be >= 1"),
        (["--judge", "gpt4"], "unknown chat model spec"),
        (["--weights", "tsr=-1"], "reward weights"),
        (["--fit-steps", "0"], "--fit-steps must be >= 1"),
        (["--pin", "island=Atlantis"], "Atlantis"),
        (["--repairs", "3"], "--repairs must be 0 to 2"),
    ],
)
def test_run_bad_input_exits_2_and_creates_nothing(tmp_path, seeds, capsys, extra, message):
    out = tmp_path / "run"
    assert main(run_args(seeds, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_run_refuses_an_existing_run_folder(tmp_path, seeds, capsys):
    out = tmp_path / "run"
    RunStore.create(out, {})
    assert main(run_args(seeds, out)) == 2
    assert "holds a run" in capsys.readouterr().err


def test_resume_and_export_errors(tmp_path, capsys):
    assert main(["resume", str(tmp_path), "--quiet"]) == 2
    assert "not a run folder" in capsys.readouterr().err
    store = RunStore.create(tmp_path / "r", {})
    assert main(["export", str(store.path), "--format", "csv", "--out", str(tmp_path / "no" / "x.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["export", str(store.path), "--format", "xlsx", "--out", "x"])
    assert e.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_run_and_resume_with_an_hf_generator(tmp_path, seeds):
    """The loop drives a pretrained-DLM folder like any generator; its settings live in the run config."""
    from tests.tiny_dlm import corpus_for, save_mdm, tiny_tokenizer

    records = [json.loads(x) for x in seeds.read_text().splitlines()]
    folder = save_mdm(tmp_path / "dlm", tiny_tokenizer(corpus_for(records)))
    out = tmp_path / "run"
    args = run_args(seeds, out, "--generator", f"hf:{folder}", "--gen-opt", "batch=4", "--gen-opt", "block_length=16")
    args.remove("--fit-steps")
    args.remove("40")
    assert main(args) == 0
    store = RunStore.open(out, repair=False)
    assert store.iterations_done() == 2
    assert store.config["generator_config"] == {"batch": 4, "block_length": 16}
    rows = store.metrics()
    assert all(r["schema_valid_rate"] == 1.0 for r in rows)
    assert main(["resume", str(out), "--quiet"]) == 0


@pytest.mark.slow
def test_run_prompt_text_is_compiled_and_recorded(tmp_path, seeds):
    out = tmp_path / "run"
    assert main(run_args(seeds, out, "--prompt", "only Dream island, no nulls in sex", "--compiler", "none")) == 0
    store = RunStore.open(out, repair=False)
    main_rows = [c for c in store.candidates() if c.get("phase", "main") == "main" and c.get("record")]
    assert main_rows and all(c["record"]["island"] == "Dream" and c["record"]["sex"] is not None for c in main_rows)
    (row,) = [p for p in store.prompts() if p["role"] == "compiled"]
    assert (
        row["author"] == "compiler" and row["for"] == "initial" and row["text"] == "only Dream island, no nulls in sex"
    )
    assert {(e["op"], e["path"]) for e in row["edits"]} == {("pin", "$.island"), ("forbid", "$.sex")}
    used = [p for p in store.prompts() if p["role"] == "used"]
    assert used[0]["prompt"]["pins"] == {"$.island": "Dream"}
    assert all(e["author"] == "compiler" for e in used[0]["prompt"]["compiled"]["edits"])
