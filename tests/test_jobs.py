"""Background jobs for the app, curation overrides and run views, with a tiny DLM and scripted agents."""

import json
import time

import pytest
from test_loop import PENGUINS, TINY, respond

from aod_core.canvas.prompt import Prompt
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.data.export import render
from aod_core.data.schema import load_schema
from aod_core.data.seeds import load_records
from aod_core.errors import InputError
from aod_core.runs.setup import create_run_from
from aod_core.runs.store import RunStore
from aod_core.studio import runview
from aod_core.studio.jobs import JobRegistry
from aod_core.studio.models import ModelPool
from aod_core.studio.settings import config_from_settings

SETTINGS = {"iterations": 2, "batch": 8, "probe": 4, "proposals": 1, "train_steps": TINY["train_steps"]}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _inputs():
    schema = load_schema(PENGUINS / "schema.json")
    seeds = load_records(PENGUINS / "seeds.jsonl", schema).records[:60]
    return schema, seeds


def _registry(chat=None):
    pool = ModelPool()
    pool.add("embedded", chat or ScriptedChatModel(respond))
    return JobRegistry(pool)


def _new_run(tmp_path, **settings):
    schema, seeds = _inputs()
    config = config_from_settings({**SETTINGS, **settings}, task="penguins")
    config.generator_config.update({k: v for k, v in TINY.items() if k != "train_steps"})
    return create_run_from(schema, seeds, tmp_path / "run", config)


def _wait(job, until, timeout=240):
    end = time.time() + timeout
    while time.time() < end:
        v = job.view()
        if until(v):
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out; last view: {job.view().status} {job.view().phase} {job.view().error}")


def test_settings_are_checked():
    with pytest.raises(InputError, match="iterations"):
        config_from_settings({"iterations": 0})
    with pytest.raises(InputError, match="judge model is empty"):
        config_from_settings({"judge": " "})
    with pytest.raises(InputError, match="reward weights"):
        config_from_settings({"w_tsr": -1})
    c = config_from_settings({"device": "auto", "target": 0, "train_steps": 100}, task="t")
    assert c.device is None and c.loop.target is None and c.generator_config == {"train_steps": 100}
    assert c.prompt["text"] == "t"


@pytest.mark.slow
def test_job_runs_in_background_and_reports_progress(tmp_path):
    store = _new_run(tmp_path)
    reg = _registry()
    job = reg.start(store)
    with pytest.raises(InputError, match="already working"):
        reg.start(RunStore.open(store.path, repair=False))
    assert reg.get(str(store.path)) is job
    v = _wait(job, lambda v: not v.active)
    assert v.status == "finished", v.error
    kinds = {e["kind"] for e in v.timeline}
    assert {"iteration_started", "feedback", "proposals", "prompt_chosen", "metrics"} <= kinds
    assert v.fit.frac == 1.0 and v.judging.frac == 1.0 and v.live_rows
    assert v.accepted_total == len(store.accepted())
    assert store.state()["status"] == "finished"
    assert [r["iteration"] for r in runview.prompt_history(store)] == [0, 1]
    assert runview.proposal_rows(store, 0)[0]["candidate"] == "incumbent"
    assert sum(r["chosen"] for r in runview.proposal_rows(store, 0)) == 1


@pytest.mark.slow
def test_pause_human_prompt_and_stop(tmp_path):
    store = _new_run(tmp_path, iterations=3)
    job = _registry().start(store)
    job.pause()
    v = _wait(job, lambda v: v.status == "paused")
    job.set_prompt(Prompt(text="human", pins={"$.island": "Dream"}))
    assert job.view().pending_prompt
    with pytest.raises(InputError):
        job.set_prompt(Prompt(pins={"$.no_such_field": 1}))
    job.resume()
    _wait(job, lambda v: store.iterations_done() >= 1)
    job.stop()
    v = _wait(job, lambda v: not v.active)
    assert v.status == "stopped"
    used = [p for p in store.prompts() if p["role"] == "used"]
    assert used[0]["author"] == "human" and used[0]["prompt"]["pins"] == {"$.island": "Dream"}
    assert all(c["record"]["island"] == "Dream" for c in store.candidates(0) if c["record"])
    assert runview.status_of(store) == "stopped"
    # the stopped run resumes in a new job and finishes
    job2 = _registry().start(RunStore.open(store.path))
    assert _wait(job2, lambda v: not v.active).status == "finished"
    assert store.iterations_done() == 3


def test_an_endpoint_that_goes_down_fails_the_job_and_keeps_finished_iterations(tmp_path):
    store = _new_run(tmp_path, iterations=3)
    calls = []

    def flaky(messages):
        calls.append(1)
        if store.iterations_done() >= 1:
            raise ConnectionError("judge endpoint down")
        return respond(messages)

    job = _registry(ScriptedChatModel(flaky)).start(store)
    v = _wait(job, lambda v: not v.active)
    assert v.status == "failed" and "judge endpoint down" in v.error
    assert store.iterations_done() == 1 and store.state()["status"] == "failed"
    assert len(store.accepted()) == store.metrics()[0]["accepted_total"]


class _Unloadable(ScriptedChatModel):
    def load(self):
        raise OSError("model file is corrupt")


def test_a_model_load_error_fails_the_job_with_its_message(tmp_path):
    store = _new_run(tmp_path)
    job = _registry(_Unloadable(respond)).start(store)
    v = _wait(job, lambda v: not v.active)
    assert v.status == "failed" and "model file is corrupt" in v.error
    assert store.state()["status"] == "failed" and "corrupt" in store.state()["error"]
    assert runview.list_runs(store.path.parent)[0]["status"] == "failed"


def test_overrides_and_curated_export(tmp_path):
    store = RunStore.create(tmp_path / "r", {"loop": {"iterations": 1}})
    from aod_core.runs.store import IterationLog

    good, bad, other = {"a": 1}, {"a": "x"}, {"a": 2}
    store.commit(
        IterationLog(
            0,
            candidates=[
                {
                    "index": 0,
                    "phase": "main",
                    "record": good,
                    "accepted": True,
                    "verdict": "accept",
                    "checks": {"parses": True, "schema_errors": []},
                },
                {
                    "index": 1,
                    "phase": "main",
                    "record": bad,
                    "accepted": False,
                    "verdict": "reject",
                    "checks": {"parses": True, "schema_errors": ["$.a: 'x' is not of type 'integer'"]},
                },
                {
                    "index": 2,
                    "phase": "main",
                    "record": other,
                    "accepted": False,
                    "verdict": "reject",
                    "reasons": ["dull"],
                    "checks": {"parses": True, "schema_errors": []},
                },
                {
                    "index": 3,
                    "phase": "main",
                    "record": None,
                    "text": "{",
                    "accepted": False,
                    "verdict": "reject",
                    "checks": {"parses": False, "schema_errors": []},
                },
            ],
            accepted=[good],
            metrics={"reward": 0.5},
        )
    )
    assert store.curated() == [good]
    with pytest.raises(InputError, match="fails the schema"):
        runview.override(store, "0:main:1", "accept")
    with pytest.raises(InputError, match="not a JSON record"):
        runview.override(store, "0:main:3", "accept")
    with pytest.raises(InputError, match="no such candidate"):
        runview.override(store, "9:main:0", "accept")
    runview.override(store, "0:main:2", "accept")
    runview.override(store, "0:main:0", "reject")
    assert store.curated() == [other]
    rows = runview.candidate_rows(store)
    assert [r["decision"] for r in rows] == ["reject", "reject", "accept", "reject"]
    assert [r["key"] for r in runview.filter_rows(rows, decision="overridden")] == ["0:main:0", "0:main:2"]
    assert [r["key"] for r in runview.filter_rows(rows, search="DULL")] == ["0:main:2"]
    runview.override(store, "0:main:0", None)  # cleared: the agents' verdict counts again
    assert store.curated() == [good, other]
    assert render(store.curated(), "jsonl").decode().splitlines() == [json.dumps(good), json.dumps(other)]
    assert runview.run_summary(store)["curated"] == 2


def test_the_apps_bulk_output_stays_inside_the_runs_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    run = root / "r1"
    run.mkdir(parents=True)
    RunStore.create(run / "inner", {})  # a run folder is no output folder
    monkeypatch.setenv("AOD_RUNS_DIR", str(root))
    assert runview.bulk_out_dir("r1/bulk") == run / "bulk"
    assert runview.bulk_out_dir(" big ") == root / "big"
    assert runview.bulk_out_dir(str(run / "bulk")) == run / "bulk"  # absolute, inside
    assert runview.bulk_out_dir("r1/x/../bulk") == run / "bulk"
    (tmp_path / "elsewhere").mkdir()
    (root / "link").symlink_to(tmp_path / "elsewhere")
    outside = [str(tmp_path / "elsewhere"), "/etc/cron.d", "../elsewhere", "r1/../../elsewhere", "link/bulk", "", "."]
    for bad in outside:
        with pytest.raises(InputError, match=r"must be a folder inside the runs folder .*named relative to it"):
            runview.bulk_out_dir(bad)
    with pytest.raises(InputError, match="that is a run folder"):
        runview.bulk_out_dir("r1/inner")
    with pytest.raises(InputError, match="not a usable output folder"):
        runview.bulk_out_dir("x" * 300)
    assert runview.default_bulk_out(run) == "r1/bulk"
    assert runview.bulk_out_dir(runview.default_bulk_out(run)) == run / "bulk"
    # the app's registry refuses before any job starts
    from aod_core.runs.bulk import BulkSettings

    registry = JobRegistry(ModelPool())
    with pytest.raises(InputError, match="inside the runs folder"):
        registry.start_bulk(run, tmp_path / "anywhere", BulkSettings(n=1))
    assert registry.get_bulk(run) is None and not registry.bulks


def test_run_names_and_listing(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_RUNS_DIR", str(tmp_path))
    d = runview.new_run_dir("demo: Penguins!")
    assert d.parent == tmp_path and "demo-penguins" in d.name
    RunStore.create(d, {"loop": {"iterations": 4}})
    assert runview.resolve_run(d.name) == d.resolve()
    for bad in ("", "..", "a/b", "nope"):
        with pytest.raises(InputError):
            runview.resolve_run(bad)
    # a name the file system would refuse, or that is no folder name, is refused before any lookup
    for bad in ("x" * 300, "x" * 129, "é" * 128, ".hidden", "a\\b", "a\x00b", "![x](http://127.0.0.1:9/p.png)"):
        with pytest.raises(InputError, match=r"^not a run name: .*up to 128 letters"):
            runview.resolve_run(bad)
    for ok in ("x" * 128, "my run_2.1", "données"):  # names that are not there: looked up, not found
        with pytest.raises(InputError, match="no such run"):
            runview.resolve_run(ok)
    (tmp_path / "junk").mkdir()
    rows = runview.list_runs()
    assert [r["run"] for r in rows] == [d.name] and rows[0]["iterations"] == "0/4"
    # a run whose process died while running shows as interrupted
    store = RunStore.open(d, repair=False)
    (d / "state.json").write_text(json.dumps({"status": "running", "pid": 999999999}))
    assert runview.status_of(store) == "interrupted"


def test_prompt_diff():
    a = Prompt(text="x").to_dict()
    b = Prompt(text="x", forbid={"$.island": ["Dream"]}).to_dict()
    assert runview.prompt_diff(a, a) == ""
    d = runview.prompt_diff(a, b)
    assert "+" in d and "Dream" in d


def test_a_stop_during_loading_is_not_overwritten_and_the_job_ends_stopped(tmp_path):
    store = _new_run(tmp_path)
    job = _registry().start(store)
    job.stop()
    v = _wait(job, lambda v: not v.active)
    assert v.status == "stopped" and store.state()["status"] == "stopped"
    job.thread.join(30)  # the final view is published just before the worker returns
    assert not job.active


def test_a_worker_that_dies_never_leaves_an_active_status(tmp_path, monkeypatch):
    store = _new_run(tmp_path)

    def boom(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(RunStore, "set_status", boom)
    job = _registry().start(store)
    job.thread.join(60)
    v = job.view()
    assert not v.active and v.status == "failed" and "disk full" in v.error
