"""``aod generate``: the bulk pipeline on a local Ray instance (2 CPUs) with the embedded generator.

The main test is the issue's: N = 2,000 records in 4 shards; the driver is killed (SIGKILL) after a
shard is finished, then run again, and while the restarted job works one of its Ray workers is
killed. The job must skip the finished shards, let Ray rerun the killed worker's shard, and end
with exactly N unique, schema-valid records.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from aod_core.cli import main
from aod_core.data.schema import load_schema
from aod_core.data.seeds import load_records
from aod_core.records import canonical_json
from aod_core.runs import bulk
from aod_core.runs.setup import RunConfig, create_run_from

ROOT = Path(__file__).resolve().parent.parent
PENGUINS = ROOT / "assets" / "penguins"
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 60}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AOD_CACHE_DIR", str(cache))
        mp.setenv("RAY_USAGE_STATS_ENABLED", "0")
        yield {"cache": cache}


def _make_run(path: Path, **judge) -> Path:
    schema = load_schema(PENGUINS / "schema.json")
    seeds = load_records(PENGUINS / "seeds.jsonl", schema).records
    config = RunConfig(generator_config=dict(TINY))
    for k, v in judge.items():
        setattr(config.judge_settings, k, v)
    create_run_from(schema, seeds, path, config)
    return path


@pytest.fixture(scope="module")
def run_dir(env, tmp_path_factory):
    return _make_run(tmp_path_factory.mktemp("bulk") / "run")


def _records(out: Path) -> list:
    m = json.loads((out / "manifest.json").read_text())
    recs = []
    for s in m["shards"]:
        recs += [
            json.loads(line) for line in (out / f"shards/shard-{s['shard']:05d}.jsonl").read_text().splitlines() if line
        ]
    return recs


def _session_pids(sid: int) -> list[int]:
    """Processes still in the session the killed driver led (its Ray instance), by pid."""
    out = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if os.getsid(int(p.name)) == sid:
                    out.append(int(p.name))
            except OSError:
                pass
    return out


@pytest.mark.slow
def test_killed_driver_and_killed_worker_still_give_exactly_n_unique_records(run_dir, env, tmp_path):
    n, out = 2000, tmp_path / "bulk"
    cmd = [
        sys.executable,
        "-m",
        "aod_core.cli",
        "generate",
        "--run",
        str(run_dir),
        "--n",
        str(n),
        "--out",
        str(out),
        "--shards",
        "4",
        "--workers",
        "2",
        "--batch",
        "128",
        "--judge",
        "none",
        "--quiet",
    ]
    # 1. The driver, in its own session, killed once a first shard is finished.
    driver = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while time.time() < deadline and driver.poll() is None and not list((out / "shards").glob("shard-*.json")):
        time.sleep(0.1)
    assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray instance it started (one session)
    driver.wait()
    for pid in _session_pids(driver.pid):  # anything of that session still alive: it is ours
        os.kill(pid, signal.SIGKILL)
    finished = sorted(int(p.stem.split("-")[1]) for p in (out / "shards").glob("shard-*.json"))
    assert 1 <= len(finished) < 4 and not (out / "manifest.json").exists()

    # 2. Run again; kill one Ray worker while it is in the middle of a shard.
    killed: dict[int, int] = {}

    def on_progress(p: bulk.BulkProgress) -> None:
        if not killed and p.stage == "generate" and p.active:
            shard, pid = next(iter(p.active.items()))
            os.kill(pid, signal.SIGKILL)
            killed[shard] = pid

    m = bulk.generate(
        run_dir,
        out,
        bulk.BulkSettings(n=n, shards=4, workers=2, batch=128, judge="none", audit_sample=300),
        on_progress=on_progress,
    )
    assert killed, "no worker was seen mid-shard"
    assert m["skipped_shards"] == finished
    shard, pid = next(iter(killed.items()))
    redo = next(s for s in m["shards"] if s["shard"] == shard)
    assert redo["attempt_pid"] != pid  # Ray ran the shard again on a restarted actor
    records = _records(out)
    assert len(records) == n == m["records"] == sum(s["records"] for s in m["shards"])
    assert len({canonical_json(r) for r in records}) == n
    schema = load_schema(run_dir / "inputs" / "schema.json")
    assert all(not schema.validate(r) for r in records)
    assert (
        len(pd.concat([pd.read_parquet(out / f) for s in m["shards"] for f in s["files"] if f.endswith(".parquet")]))
        == n
    )
    assert m["model"]["weights_sha256"] and len(m["shards"]) >= 4 and all(s["seed"] is not None for s in m["shards"])
    audit = json.loads((out / "audit.json").read_text())
    assert audit["schema_valid_rate"] == 1.0 and audit["near_duplicate_rate"] == 0.0 and audit["n_records"] == 300


@pytest.mark.slow
def test_cli_generate_with_the_runs_judge_then_rerun_is_a_no_op(run_dir, env, tmp_path, capsys):
    out = tmp_path / "g"
    args = [
        "generate",
        "--run",
        str(run_dir),
        "--n",
        "40",
        "--out",
        str(out),
        "--workers",
        "1",
        "--shards",
        "2",
        "--audit-sample",
        "100",
    ]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "wrote 40 unique records in 2 shards" in err
    m = json.loads((out / "manifest.json").read_text())
    assert m["judge"] == {"spec": "embedded", "mode": "plausibility"} and m["records"] == 40
    assert m["timings"]["generate_s"] > 0 and m["prompt"]["sampling"]
    # The same job again: every shard is finished, nothing is generated, the records stay.
    before = _records(out)
    assert main(args + ["--quiet"]) == 0
    assert "2 finished shard(s) skipped" in capsys.readouterr().err
    m2 = json.loads((out / "manifest.json").read_text())
    assert m2["skipped_shards"] == [0, 1] and _records(out) == before
    # A different job in the same folder is refused in one line.
    assert main(["generate", "--run", str(run_dir), "--n", "50", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "different bulk job" in err


def test_generate_bad_input_one_line_exit_2(tmp_path, capsys):
    for args, msg in [
        (["--run", str(tmp_path / "missing"), "--n", "10", "--out", str(tmp_path / "o")], "run folder not found"),
        (["--run", str(tmp_path), "--n", "10", "--out", str(tmp_path / "o")], "not a run folder"),
        (["--run", str(tmp_path), "--n", "0", "--out", str(tmp_path / "o")], "--n must be >= 1"),
        (
            ["--run", str(tmp_path), "--n", "5", "--workers", "0", "--out", str(tmp_path / "o")],
            "--workers must be >= 1",
        ),
    ]:
        assert main(["generate", *args]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("aod: error:") and msg in err


def test_global_dedup_is_the_audits_definition_and_idempotent():
    from aod_core.eval.nearcopy import near_duplicates

    base = {
        "species": "Adelie",
        "island": "Dream",
        "bill_length_mm": 39.1,
        "bill_depth_mm": 18.7,
        "flipper_length_mm": 181,
        "body_mass_g": 3750,
        "sex": "male",
        "year": 2007,
    }
    records = [
        base,
        dict(base),
        dict(base, year=2008),
        dict(
            base,
            species="Gentoo",
            island="Biscoe",
            bill_length_mm=47.0,
            bill_depth_mm=14.2,
            flipper_length_mm=215,
            body_mass_g=5100,
        ),
    ]
    d = bulk.GlobalDedup(0.8)
    keep = d.keep(records[:2]) + d.keep(records[2:])  # across two "shards"
    dup, _ = near_duplicates(records)
    assert keep == [not x for x in dup]
    kept = [r for r, k in zip(records, keep) if k]
    assert bulk.GlobalDedup(0.8).keep(kept) == [True] * len(kept)


@pytest.mark.slow
def test_export_page_runs_a_bulk_job_in_the_background(env, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest
    from test_app import APP, texts

    from ui.state import registry

    runs = tmp_path / "runs"
    runs.mkdir()
    run = _make_run(runs / "r1")
    monkeypatch.setenv("AOD_RUNS_DIR", str(runs))
    registry.clear()
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["run"] = "r1"
    at.run()
    at.switch_page("pages/export.py").run()
    assert not at.exception
    at.number_input(key="bulk_n").set_value(30)
    at.number_input(key="bulk_workers").set_value(1)
    at.text_input(key="bulk_judge").set_value("none")
    next(b for b in at.button if b.label == "Start bulk generation").click().run()
    assert not at.exception and not texts(at.error)
    job = registry().get_bulk(run)
    assert job is not None
    end = time.time() + 300
    while job.active and time.time() < end:
        time.sleep(0.5)
    assert job.view()["status"] == "finished", job.view()
    at.run()
    assert not at.exception
    assert any("30 unique records in" in s for s in texts(at.success))
    assert (run / "bulk" / "manifest.json").is_file()
