import csv
import json

import pandas as pd
import pytest

from aod_core.data.export import export_records, flatten, neutralise
from aod_core.errors import InputError
from aod_core.runs.store import IterationLog, RunStore, scrub_secrets


def _log(it, accepted, cands=2):
    return IterationLog(
        iteration=it,
        candidates=[{"index": i, "record": {"i": i}} for i in range(cands)],
        prompts=[{"role": "used", "prompt": {"text": f"p{it}"}, "reward": 0.1 * it}],
        feedback=[{"feedback": f"fb{it}"}],
        accepted=accepted,
        metrics={"reward": 0.1 * it, "task_success_rate": 0.5},
    )


def test_create_refuses_existing_run_and_missing_parent(tmp_path):
    RunStore.create(tmp_path / "r", {"a": 1})
    with pytest.raises(InputError, match="holds a run"):
        RunStore.create(tmp_path / "r", {"a": 1})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        RunStore.create(tmp_path / "other", {})
    with pytest.raises(InputError, match="does not exist"):
        RunStore.create(tmp_path / "no" / "such", {})


def test_config_never_holds_secrets(tmp_path):
    store = RunStore.create(
        tmp_path / "r", {"judge": "openai:m@http://x", "api_key": "sk-123", "nested": {"Token": "t"}}
    )
    text = (store.path / "config.json").read_text()
    assert "sk-123" not in text and '"t"' not in text
    assert store.config["judge"] == "openai:m@http://x"
    assert scrub_secrets({"keys": []}) == {"keys": []}  # empty values are not secrets


def test_commit_and_read_back(tmp_path):
    store = RunStore.create(tmp_path / "r", {})
    store.commit(_log(0, [{"a": 1}, {"a": 2}]))
    store.commit(_log(1, [{"a": 3}]))
    assert [m["iteration"] for m in store.metrics()] == [0, 1]
    assert [m["accepted_total"] for m in store.metrics()] == [2, 3]
    assert store.accepted() == [{"a": 1}, {"a": 2}, {"a": 3}]
    assert len(store.candidates()) == 4 and len(store.candidates(1)) == 2
    assert [p["prompt"]["text"] for p in store.prompts()] == ["p0", "p1"]
    lines = (store.path / "accepted.jsonl").read_text().splitlines()
    assert [json.loads(x) for x in lines] == store.accepted()  # one bare JSON object per line


def test_killed_iteration_is_cut_back_on_repair(tmp_path):
    store = RunStore.create(tmp_path / "r", {})
    store.commit(_log(0, [{"a": 1}]))
    # A run killed while writing iteration 1: candidates and accepted written, no metrics line,
    # and a torn last line in feedback.
    with open(store.path / "candidates.jsonl", "a") as f:
        f.write(json.dumps({"iteration": 1, "index": 0}) + "\n")
    with open(store.path / "accepted.jsonl", "a") as f:
        f.write(json.dumps({"a": 99}) + "\n")
    with open(store.path / "feedback.jsonl", "a") as f:
        f.write('{"iteration": 1, "feedb')
    # Readers see committed iterations only, even before any repair.
    ro = RunStore.open(store.path, repair=False)
    assert ro.accepted() == [{"a": 1}] and len(ro.candidates()) == 2
    store.release()  # killed: the kernel lets its lock go
    store = RunStore.open(store.path)
    assert store.repair() == 0  # open() repaired already
    assert (store.path / "accepted.jsonl").read_text() == '{"a": 1}\n'
    assert all(json.loads(x)["iteration"] == 0 for x in (store.path / "candidates.jsonl").read_text().splitlines())
    assert (store.path / "feedback.jsonl").read_text().endswith("\n")
    # Writing on after the repair gives a consistent run.
    store.commit(_log(1, [{"a": 2}]))
    assert store.accepted() == [{"a": 1}, {"a": 2}]


def test_torn_metrics_line_means_uncommitted(tmp_path):
    store = RunStore.create(tmp_path / "r", {})
    store.commit(_log(0, [{"a": 1}]))
    with open(store.path / "accepted.jsonl", "a") as f:
        f.write('{"a": 2}\n')
    with open(store.path / "metrics.jsonl", "a") as f:
        f.write('{"iteration": 1, "accep')
    store.release()
    store = RunStore.open(store.path)
    assert store.iterations_done() == 1 and store.accepted() == [{"a": 1}]


def test_open_errors(tmp_path):
    with pytest.raises(InputError, match="not a run folder"):
        RunStore.open(tmp_path)


def test_status(tmp_path):
    store = RunStore.create(tmp_path / "r", {})
    assert store.state()["status"] == "created"
    store.set_status("paused", iteration=2)
    assert store.state()["status"] == "paused" and store.state()["iteration"] == 2


RECORDS = [
    {"name": '=HYPERLINK("x")', "n": -5, "t": "-2+3", "ok": True, "birds": [{"s": "@a"}], "o": {"x": 1}},
    {"name": "plain", "n": 3.5, "t": "+1", "ok": False, "birds": [], "o": {"x": 2}},
]


def test_neutralise():
    assert neutralise("=1+1") == "'=1+1" and neutralise("@x") == "'@x" and neutralise("\tx") == "'\tx"
    assert neutralise("ok") == "ok" and neutralise(-5) == -5


def test_export_formats(tmp_path):
    assert export_records(RECORDS, "jsonl", tmp_path / "a.jsonl") == 2
    assert [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()] == RECORDS
    export_records(RECORDS, "csv", tmp_path / "a.csv")
    rows = list(csv.DictReader(open(tmp_path / "a.csv", encoding="utf-8")))
    assert rows[0]["name"].startswith("'=") and rows[0]["t"] == "'-2+3" and rows[1]["t"] == "'+1"
    assert float(rows[0]["n"]) == -5  # numbers stay numbers, never quoted
    assert rows[0]["o.x"] == "1" and json.loads(rows[0]["birds"]) == [{"s": "@a"}]
    export_records(RECORDS, "parquet", tmp_path / "a.parquet")
    df = pd.read_parquet(tmp_path / "a.parquet")
    assert list(df["name"]) == ['=HYPERLINK("x")', "plain"] and list(df["o.x"]) == [1, 2]


def test_csv_header_cells_are_neutralised(tmp_path):
    records = [{'=HYPERLINK("http://x","y")': "a", "@sum": 1, "o": {"-x": 2}, "plain": "+1"}]
    export_records(records, "csv", tmp_path / "a.csv")
    header = next(csv.reader(open(tmp_path / "a.csv", encoding="utf-8")))
    assert header == ['\'=HYPERLINK("http://x","y")', "'@sum", "plain", "o.-x"]
    # Parquet keeps the keys as they are (no spreadsheet runs them)
    export_records(records, "parquet", tmp_path / "a.parquet")
    assert list(pd.read_parquet(tmp_path / "a.parquet").columns) == [
        '=HYPERLINK("http://x","y")',
        "@sum",
        "plain",
        "o.-x",
    ]


def test_export_errors(tmp_path):
    with pytest.raises(InputError, match="unknown export format"):
        export_records(RECORDS, "xlsx", tmp_path / "a.xlsx")
    with pytest.raises(InputError, match="does not exist"):
        export_records(RECORDS, "csv", tmp_path / "no" / "a.csv")
    with pytest.raises(InputError, match="folder"):
        export_records(RECORDS, "csv", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_flatten_empty():
    assert flatten([]).empty


def test_export_mixed_kinds_and_parquet_errors(tmp_path):
    records = [{"a": 1, "b": True}, {"a": "x", "b": 2}, {"a": 2.5}]
    df = flatten(records)
    assert list(df["a"]) == ["1", "x", "2.5"] and list(df["b"])[:2] == ["true", "2"]
    assert export_records(records, "parquet", tmp_path / "m.parquet") == 3
    assert pd.read_parquet(tmp_path / "m.parquet")["a"].tolist() == ["1", "x", "2.5"]


def test_rejection_reasons_per_iteration(tmp_path):
    from aod_core.studio import runview

    store = RunStore.create(tmp_path / "r", {"judge": "embedded"})
    ok = {"parses": True, "schema_errors": [], "duplicate": False, "seed_copy": False, "near_copy": False}

    def finding(key):
        return {
            "score": 0.01,
            "findings": [
                {"key": key, "text": key, "rule": "r", "kind": "range", "fields": [], "rarity": 0.001, "nats": 7.0}
            ],
        }

    rows = [
        {"record": {"a": 1}, "verdict": "accept", "checks": ok, "judged_by": "plausibility", "evidence": finding("x")},
        {
            "record": {"a": 2},
            "verdict": "reject",
            "checks": ok,
            "judged_by": "plausibility",
            "evidence": finding("mass high"),
        },
        {
            "record": {"a": 3},
            "verdict": "reject",
            "checks": ok,
            "judged_by": "plausibility",
            "evidence": finding("mass high"),
        },
        {"record": {"a": 4}, "verdict": "reject", "checks": dict(ok, near_copy=True), "judged_by": "checks"},
        {"record": None, "verdict": "reject", "checks": dict(ok, parses=False), "judged_by": "checks"},
    ]
    log = IterationLog(0)
    log.candidates = [dict(r, index=i, phase="main") for i, r in enumerate(rows)]
    log.metrics = {"reward": 0.1}
    store.commit(log)
    got = runview.rejection_reasons(store)
    assert got[0] == {"iteration": 1, "reason": "mass high", "records": 2, "of": 5}
    assert {r["reason"] for r in got} == {"mass high", "near copy", "does not parse as JSON"}
