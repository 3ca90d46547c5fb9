"""One writer per run folder (runs/lock.py): a second writer is refused naming the holder, a killed
writer's claim goes with its process, and a status it left behind reads ``interrupted``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from aod_core import cli
from aod_core.runs.lock import RunBusy, holder
from aod_core.runs.store import IterationLog, RunStore

ROOT = Path(__file__).resolve().parent.parent
HOLD = """
import sys, time
from aod_core.runs.store import RunStore
store = RunStore.open(sys.argv[1])
store.set_status("running", iteration=store.iterations_done())
print("claimed", flush=True)
time.sleep(120)
"""


def _folder(tmp_path) -> RunStore:
    store = RunStore.create(tmp_path / "run", {"generator": "embedded", "loop": {"iterations": 3}})
    store.commit(IterationLog(0, accepted=[{"a": 1}], metrics={"reward": 0.5}))
    store.set_status("running", iteration=1)
    return store


@pytest.fixture
def other_writer(tmp_path):
    """A second process that claims the folder and waits; killed with SIGKILL by the test."""
    store = _folder(tmp_path)
    store.release()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(store.path)], env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "claimed"
    try:
        yield store.path, child
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)  # only the process this test started
        child.wait()


def test_a_second_writer_in_this_process_is_refused(tmp_path):
    store = _folder(tmp_path)
    with pytest.raises(RunBusy, match="in use by this process"):
        RunStore.open(store.path)
    assert holder(store.path) == os.getpid()
    assert RunStore.open(store.path, repair=False).state()["status"] == "running"  # readers see the live status
    store.release()
    assert holder(store.path) is None
    assert RunStore.open(store.path).claimed


def test_another_process_is_named_then_its_kill_frees_the_folder(other_writer, capsys):
    path, child = other_writer
    with pytest.raises(RunBusy, match=f"in use by process {child.pid}"):
        RunStore.open(path)
    assert cli.main(["resume", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"in use by process {child.pid}" in err
    assert RunStore.open(path, repair=False).state()["status"] == "running"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    # Killed: the file still says running, but no writer holds the folder, so it reads interrupted ...
    raw = json.loads((path / "state.json").read_text())
    assert raw["status"] == "running" and raw["pid"] == child.pid
    st = RunStore.open(path, repair=False).state()
    assert st["status"] == "interrupted" and st["was"] == "running"
    # ... and the next writer takes it over at once and writes so.
    store = RunStore.open(path)
    assert store.claimed and json.loads((path / "state.json").read_text())["status"] == "interrupted"
    assert store.iterations_done() == 1


def test_a_folder_being_created_is_not_created_twice(tmp_path):
    from aod_core.runs.lock import RunLock

    (tmp_path / "run").mkdir()
    creating = RunLock(tmp_path / "run")
    creating.acquire()  # another writer between its claim and its config.json
    with pytest.raises(RunBusy, match="in use by this process"):
        RunStore.create(tmp_path / "run", {})
    creating.release()
    store = RunStore.create(tmp_path / "run", {})
    with pytest.raises(Exception, match="holds a run"):
        RunStore.create(tmp_path / "run", {})
    store.release()
    assert RunStore.open(tmp_path / "run", repair=False).state()["status"] == "interrupted"  # created, then left


def test_a_run_killed_after_its_last_iteration_is_finished_by_resume(tmp_path, capsys):
    store = RunStore.create(tmp_path / "run", {"generator": "embedded", "loop": {"iterations": 1}})
    store.commit(IterationLog(0, accepted=[{"a": 1}], metrics={"reward": 0.5}))
    store.set_status("running", iteration=1)
    store.release()  # killed just after its last metrics line
    assert cli.main(["resume", str(store.path), "--quiet"]) == 0
    assert "already finished" in capsys.readouterr().err
    assert json.loads((store.path / "state.json").read_text())["status"] == "finished"
    assert holder(store.path) is None  # the resume let the folder go


def test_a_run_refused_while_it_is_set_up_leaves_no_folder(tmp_path, monkeypatch, capsys):
    import aod_core.runs.setup as setup
    from aod_core.errors import InputError

    def refuse(store, **_):
        assert store.claimed  # created and claimed by this command
        raise InputError("the generator cannot learn from 1 seed")

    monkeypatch.setattr(setup, "open_loop", refuse)
    penguins = ROOT / "assets" / "penguins"
    out = tmp_path / "run"
    argv = ["run", "--schema", str(penguins / "schema.json"), "--seeds", str(penguins / "seeds.jsonl")]
    argv += ["--out", str(out), "--quiet"]
    assert cli.main(argv) == 2
    assert "cannot learn from 1 seed" in capsys.readouterr().err
    assert not out.exists()  # so the same command can be run again once the cause is fixed
    out.mkdir()  # a folder the user made stays, empty
    assert cli.main(argv) == 2 and out.is_dir() and not any(out.iterdir())


def test_a_refused_folder_is_left_as_it_was(tmp_path):
    used = tmp_path / "mine"
    used.mkdir()
    (used / "notes.txt").write_text("x")
    with pytest.raises(Exception, match="exists and is not empty"):
        RunStore.create(used, {})
    assert sorted(p.name for p in used.iterdir()) == ["notes.txt"]  # no lock file left in it
