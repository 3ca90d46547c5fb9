"""kill -9 of ``aod run`` at three points, then ``aod resume``: the short form of benchmarks/bench_kill.py.

The kill points are chosen by what the run folder shows rather than by the clock, so each lands
where it is meant to on a loaded machine: while the first iteration works, right after the first
commit, and while the last iteration works. After ``aod resume`` every JSONL file parses line by
line, no accepted record is lost or doubled, and the records equal those of an uninterrupted run
with the same seed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from benchmarks.bench_kill import PENGUINS, ROOT, _env, check, run_command, snapshot

SETTINGS = {"iterations": 3, "batch": 6, "fit_steps": 40, "seed": 3}


def _committed(run) -> int:
    try:
        return sum(1 for line in (run / "metrics.jsonl").read_text().split("\n") if line.endswith("}"))
    except OSError:
        return 0


def _running(run) -> bool:
    try:
        return json.loads((run / "state.json").read_text()).get("status") == "running"
    except (OSError, ValueError):
        return False


POINTS = {
    "in the first iteration": lambda run: _running(run),
    "after the first commit": lambda run: _committed(run) >= 1,
    "in the last iteration": lambda run: _committed(run) >= SETTINGS["iterations"] - 1,
}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    work = tmp_path_factory.mktemp("kill")
    seeds = work / "seeds.jsonl"
    seeds.write_text("\n".join((PENGUINS / "seeds.jsonl").read_text().splitlines()[:60]) + "\n")
    env = _env(work / "cache")
    out = work / "reference"
    p = subprocess.run(
        run_command(out, seeds, **SETTINGS), cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert p.returncode == 0, p.stderr
    return work, seeds, env, snapshot(out)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_kill_9_then_resume_equals_the_uninterrupted_run(reference, point):
    work, seeds, env, ref = reference
    out = work / f"killed-{point.replace(' ', '-')}"
    child = subprocess.Popen(
        run_command(out, seeds, **SETTINGS), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 600
    try:
        while not POINTS[point](out):
            assert child.poll() is None, f"the run ended before the kill point ({point})"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)  # the child this test started, by its id
        child.wait()
    assert _committed(out) < SETTINGS["iterations"]  # the kill landed before the end
    p = subprocess.run(
        [sys.executable, "-m", "aod_core.cli", "resume", str(out), "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert p.returncode == 0, p.stderr
    result = check(out, ref)
    assert result["ok"], result["problems"]
    assert result["lost"] == 0 and result["duplicated"] == 0
