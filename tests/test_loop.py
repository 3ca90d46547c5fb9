"""The AoD loop with the real embedded DLM (tiny) and a scripted chat model standing in for the agents.

The scripted judge is an LLM judge (``--judge-mode llm``), so these tests control every verdict; the
default plausibility judge has its own loop test at the end."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from aod_core.agents.judge import JudgeSettings
from aod_core.canvas.prompt import Prompt
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.data.schema import load_schema
from aod_core.runs.loop import LoopSettings
from aod_core.runs.setup import RunConfig, create_run, open_loop
from aod_core.runs.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
PENGUINS = ROOT / "assets" / "penguins"
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 60}
REQUIRED = {
    "iteration",
    "reward",
    "task_success_rate",
    "valid_json_rate",
    "schema_valid_rate",
    "field_overlap",
    "duplicate_rate",
    "distinct_2",
}


def respond(messages):
    """Judge: Torgersen birds are 'implausible'; optimizer: forbid Torgersen."""
    system = messages[0]["content"]
    if "data-quality judge" in system:
        record = json.loads(messages[-1]["content"].split("\n")[1])  # the record under judgement comes last
        ok = record.get("island") != "Torgersen"
        return json.dumps(
            {
                "verdict": "accept" if ok else "reject",
                "score": 0.9 if ok else 0.1,
                "reasons": ["plausible" if ok else "Torgersen is implausible here"],
            }
        )
    if "review a batch" in system:
        return json.dumps({"feedback": "Too many Torgersen birds."})
    return json.dumps(
        {
            "rationale": "drop Torgersen",
            "op": "forbid",
            "path": "$.island",
            "value": "Torgersen",
            "amount": 0,
            "lo": 0,
            "hi": 0,
        }
    )


@pytest.fixture
def seeds_file(tmp_path):
    lines = (PENGUINS / "seeds.jsonl").read_text().splitlines()[:60]
    p = tmp_path / "seeds.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))


def _config(**loop):
    return RunConfig(
        generator_config=TINY,
        loop=LoopSettings(**{"iterations": 2, "batch": 8, "probe": 4, "proposals": 2, **loop}),
        judge_settings=JudgeSettings(mode="llm"),
    )


def _start(tmp_path, seeds_file, config, events=None):
    store = create_run(str(PENGUINS / "schema.json"), str(seeds_file), str(tmp_path / "run"), config)
    chat = ScriptedChatModel(respond)
    handle = open_loop(store, on_event=(events.append if events is not None else None), chat_cache={"embedded": chat})
    return store, handle


@pytest.mark.slow
def test_loop_records_everything_and_keeps_the_best_prompt(tmp_path, seeds_file):
    events = []
    store, handle = _start(tmp_path, seeds_file, _config(), events)
    assert handle.loop.run() == "finished"
    schema = load_schema(PENGUINS / "schema.json")
    seeds = [json.loads(x) for x in seeds_file.read_text().splitlines()]
    metrics = store.metrics()
    assert [m["iteration"] for m in metrics] == [0, 1]
    assert all(REQUIRED <= set(m) for m in metrics)
    accepted = store.accepted()
    assert len(accepted) == sum(m["accepted_new"] for m in metrics)
    assert all(schema.is_valid(r) for r in accepted)
    assert not any(r in seeds for r in accepted)
    assert len({json.dumps(r, sort_keys=True) for r in accepted}) == len(accepted)
    assert not any(r["island"] == "Torgersen" for r in accepted)  # the judge's rejections hold
    # Iteration 0 compared incumbent and proposals on one probe; the winner must have scored higher.
    p0 = [p for p in store.prompts() if p["iteration"] == 0]
    inc = next(p for p in p0 if p["role"] == "incumbent_probe")
    props = [p for p in p0 if p["role"] == "proposal"]
    nxt = next(p for p in p0 if p["role"] == "next")
    assert len(props) == 2 and sum(p["prompt"] is not None for p in props) == 1  # the twin was refused
    assert all(p["probe_seed"] == inc["probe_seed"] for p in props if p["prompt"] is not None)
    best = max((p for p in props if p["prompt"] is not None), key=lambda p: p["reward"])
    if best["reward"] > inc["reward"]:
        assert nxt["prompt"] == best["prompt"] and nxt["author"] == "optimizer"
    else:
        assert nxt["prompt"] == inc["prompt"]
    kinds = {e.kind for e in events}
    assert {
        "run_started",
        "iteration_started",
        "batch_generated",
        "verdicts",
        "feedback",
        "proposals",
        "prompt_chosen",
        "metrics",
        "accepted",
        "finished",
    } <= kinds
    assert store.state()["status"] == "finished"
    # Each iteration records its time split.
    assert all(m["generate_s"] >= 0 and m["judge_s"] >= 0 and m["optimize_s"] >= 0 for m in metrics)


@pytest.mark.slow
def test_human_prompt_replaces_the_incumbent_at_the_boundary(tmp_path, seeds_file):
    store, handle = _start(tmp_path, seeds_file, _config(iterations=1, proposals=0))
    handle.loop.set_prompt(Prompt(pins={"$.island": "Dream"}))
    handle.loop.run()
    used = [p for p in store.prompts() if p["role"] == "used"]
    assert used[0]["author"] == "human" and used[0]["prompt"]["pins"] == {"$.island": "Dream"}
    assert all(c["record"]["island"] == "Dream" for c in store.candidates())
    assert store.metrics()[0]["prompt_author"] == "human"


@pytest.mark.slow
def test_stop_and_pause_from_another_thread(tmp_path, seeds_file):
    events = []
    store, handle = _start(tmp_path, seeds_file, _config(iterations=3, proposals=0), events)
    loop = handle.loop

    def control():
        while not any(e.kind == "metrics" for e in list(events)):
            time.sleep(0.01)
        loop.pause()
        while not any(e.kind == "paused" for e in list(events)):
            time.sleep(0.01)
        assert store.state()["status"] == "paused"
        loop.stop()

    t = threading.Thread(target=control)
    t.start()
    assert loop.run() == "stopped"
    t.join()
    assert store.iterations_done() == 1 and store.state()["status"] == "stopped"


KILL_SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from aod_core.chat.scripted import ScriptedChatModel
    from aod_core.runs.setup import open_loop
    from aod_core.runs.store import RunStore
    from tests.test_loop import respond
    marker = Path({marker!r})
    def slow(messages):
        if "review a batch" in messages[0]["content"] and len(RunStore.open({run!r}, repair=False).metrics()) == 1:
            marker.touch()
            time.sleep(120)  # killed here, mid-iteration 1
        return respond(messages)
    store = RunStore.open({run!r})
    handle = open_loop(store, chat_cache={{"embedded": ScriptedChatModel(slow)}})
    handle.loop.run()
""")


@pytest.mark.slow
def test_killed_run_resumes_without_losing_or_duplicating(tmp_path, seeds_file):
    config = _config(iterations=3, proposals=0)
    store = create_run(str(PENGUINS / "schema.json"), str(seeds_file), str(tmp_path / "run"), config)
    store.release()  # the child process is the run's writer
    marker = tmp_path / "in-iteration-1"
    script = tmp_path / "child.py"
    script.write_text(KILL_SCRIPT.format(root=str(ROOT), marker=str(marker), run=str(store.path)))
    child = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, env={**os.environ})
    deadline = time.time() + 240
    while not marker.exists():
        assert child.poll() is None, "the child run ended before reaching iteration 1"
        assert time.time() < deadline
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = RunStore.open(store.path, repair=False)
    assert before.iterations_done() == 1
    kept = before.accepted()
    # The killed iteration left lines behind (candidates of iteration 1 are written only at commit,
    # so simulate the worst case too: a torn accepted line).
    with open(store.path / "accepted.jsonl", "a") as f:
        f.write('{"species": "Adelie", "isl')
    resumed = RunStore.open(store.path)
    handle = open_loop(resumed, chat_cache={"embedded": ScriptedChatModel(respond)})
    assert handle.loop.start_iteration == 1
    assert handle.loop.run() == "finished"
    after = resumed.accepted()
    assert after[: len(kept)] == kept  # nothing lost
    assert len({json.dumps(r, sort_keys=True) for r in after}) == len(after)  # nothing twice
    assert len(after) == sum(m["accepted_new"] for m in resumed.metrics())
    assert [m["iteration"] for m in resumed.metrics()] == [0, 1, 2]


@pytest.mark.slow
def test_same_seed_same_run(tmp_path, seeds_file):
    """Seeded and reproducible with local models: two runs of one config record the same things."""

    def run(name):
        store = create_run(str(PENGUINS / "schema.json"), str(seeds_file), str(tmp_path / name), _config())
        open_loop(store, chat_cache={"embedded": ScriptedChatModel(respond)}).loop.run()
        strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
        return [c["text"] for c in store.candidates()], store.accepted(), strip(store.metrics())

    assert run("a") == run("b")
