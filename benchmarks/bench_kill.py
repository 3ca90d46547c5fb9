"""kill -9 of ``aod run`` at random points, then ``aod resume``: nothing lost, nothing twice.

One uninterrupted reference run, then ``--trials`` runs of the same command and seed, each killed
with SIGKILL after a random delay drawn over the whole length of a run (start-up, fitting or loading
the generator, calibrating the judge, any point of any iteration, the commit), then resumed with
``aod resume`` until it finishes. Each trial checks:

* every line of ``accepted.jsonl``, ``candidates.jsonl`` and ``metrics.jsonl`` parses;
* no accepted record appears twice, and ``metrics.jsonl`` counts exactly the records kept;
* the accepted records, the candidates' texts and the iterations equal the reference run's
  (local models are deterministic, so a resumed run must be the same run).

A kill before the run folder holds its inputs is refused by ``aod resume`` with a reason (nothing
was done yet); the trial then starts the run again, as a user would, and is compared the same way.

With ``--race`` each trial also races: at the kill point an ``aod resume`` is started while the run
is still alive (it must be refused, naming the run's PID, or find no folder yet), and after the kill
two ``aod resume`` start at once (one works, the other is refused or finds the run finished).
Every folder must end resumable and equal to the reference: no iteration or record twice.
Settings are small (the embedded generator with a tiny network, the plausibility judge, no
optimizer proposals) so 20 trials take minutes on two CPU cores; the model and judge caches are
shared, as on a user's machine.

    python benchmarks/bench_kill.py --trials 20 --out benchmarks/results/kill.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PENGUINS = ROOT / "assets" / "penguins"
TINY = ["d_model=32", "n_layers=1", "n_heads=2"]


def run_command(out: Path, seeds: Path, *, iterations: int, batch: int, fit_steps: int, seed: int) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "aod_core.cli",
        "run",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(seeds),
        "--out",
        str(out),
        "--iterations",
        str(iterations),
        "--batch",
        str(batch),
        "--proposals",
        "0",
        "--fit-steps",
        str(fit_steps),
        "--seed",
        str(seed),
        "--steps",
        "24",
        "--quiet",
    ]
    for opt in TINY:
        cmd += ["--gen-opt", opt]
    return cmd


def _env(cache: Path) -> dict[str, str]:
    return {**os.environ, "AOD_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}


def parse_lines(path: Path) -> list:
    """Every line as JSON; raises ValueError naming the first that does not parse."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line == "":
            continue
        try:
            rows.append(json.loads(line))
        except ValueError as e:
            raise ValueError(f"{path.name} line {n} does not parse: {e}") from None
    return rows


def snapshot(run: Path) -> dict:
    """What must equal between an interrupted-and-resumed run and the reference run."""
    accepted = parse_lines(run / "accepted.jsonl")
    candidates = parse_lines(run / "candidates.jsonl")
    metrics = parse_lines(run / "metrics.jsonl")
    return {
        "accepted": accepted,
        "candidates": [(c["iteration"], c.get("phase"), c["index"], c["text"]) for c in candidates],
        "iterations": [m["iteration"] for m in metrics],
        "accepted_total": metrics[-1]["accepted_total"] if metrics else 0,
    }


def check(run: Path, ref: dict) -> dict:
    problems = []
    try:
        got = snapshot(run)
    except (OSError, ValueError) as e:
        return {"ok": False, "problems": [str(e)], "lost": None, "duplicated": None}
    keys = [json.dumps(r, sort_keys=True) for r in got["accepted"]]
    ref_keys = [json.dumps(r, sort_keys=True) for r in ref["accepted"]]
    duplicated = len(keys) - len(set(keys))
    lost = len(set(ref_keys) - set(keys))
    if duplicated:
        problems.append(f"{duplicated} accepted record(s) twice")
    if lost:
        problems.append(f"{lost} accepted record(s) of the reference run missing")
    if got["accepted_total"] != len(got["accepted"]):
        problems.append(f"metrics count {got['accepted_total']} accepted, the file holds {len(got['accepted'])}")
    for key in ("accepted", "candidates", "iterations"):
        if got[key] != ref[key]:
            problems.append(f"{key} differ from the uninterrupted run")
    return {
        "ok": not problems,
        "problems": problems,
        "lost": lost,
        "duplicated": duplicated,
        "accepted": len(got["accepted"]),
    }


def timed_run(cmd: list[str], env: dict[str, str], timeout: float) -> tuple[int, float, str]:
    t0 = time.monotonic()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, time.monotonic() - t0, p.stderr.strip()


def trial(
    k: int,
    work: Path,
    seeds: Path,
    env: dict[str, str],
    ref: dict,
    delay: float,
    settings: dict,
    timeout: float,
    race: bool = False,
) -> dict:
    out = work / f"trial-{k:02d}"
    cmd = run_command(out, seeds, **settings)
    child = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    races: list[str] = []
    if race and child.poll() is None:
        rc, _, err = timed_run(_resume(out), env, timeout)  # the run is alive: this must not work on it
        races.append(_race_outcome(rc, err, alive=child.poll() is None))
    finished_first = child.poll() is not None
    if not finished_first:
        os.kill(child.pid, signal.SIGKILL)  # only the child this trial started
    child.wait()
    at = _where(out)
    resumes, note = 0, ""
    if race:  # two resumes at once: one works, the other is refused (or finds it finished)
        pair = [subprocess.Popen(_resume(out), cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        for p in pair:
            _, err = p.communicate(timeout=timeout)
            races.append(_race_outcome(p.returncode, err, alive=False))
        resumes += 2
    bad_race = [r for r in races if r.startswith("WRONG")]
    while True:
        rc, _, err = timed_run([sys.executable, "-m", "aod_core.cli", "resume", str(out), "--quiet"], env, timeout)
        resumes += 1
        if rc == 0:
            break
        if rc == 2 and ("not a run folder" in err or "interrupted while it was being created" in err):
            note = f"resume refused: {err.splitlines()[-1][:160]}; started again"
            shutil.rmtree(out, ignore_errors=True)
            rc, _, err = timed_run(cmd, env, timeout)
            if rc != 0:
                return {
                    "trial": k,
                    "delay_s": round(delay, 2),
                    "killed_at": at,
                    "ok": False,
                    "problems": [f"fresh run failed: {err[-300:]}"],
                }
            break
        return {
            "trial": k,
            "delay_s": round(delay, 2),
            "killed_at": at,
            "ok": False,
            "problems": [f"resume exited {rc}: {err[-300:]}"],
        }
    result = check(out, ref)
    if bad_race:
        result = dict(result, ok=False, problems=result["problems"] + bad_race)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "trial": k,
        "delay_s": round(delay, 2),
        "killed_at": "finished before the kill" if finished_first else at,
        "resumes": resumes,
        "note": note,
        **({"races": races} if race else {}),
        **result,
    }


def _resume(out: Path) -> list[str]:
    return [sys.executable, "-m", "aod_core.cli", "resume", str(out), "--quiet"]


def _race_outcome(rc: int, err: str, *, alive: bool) -> str:
    """What a racing resume did: refused (the folder is in use, or not there yet), worked, or WRONG."""
    last = err.strip().splitlines()[-1][:160] if err.strip() else ""
    if rc == 2 and "in use by process" in last:
        return "refused: in use"
    if rc == 2 and ("not a run folder" in last or "interrupted while it was being created" in last):
        return "refused: no run yet"
    if rc == 0 and not alive:
        return "worked"
    return f"WRONG: resume exited {rc} while the run was {'alive' if alive else 'dead'}: {last}"


def _count(outcomes: list[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for o in outcomes:
        key = "WRONG" if o.startswith("WRONG") else o
        out[key] = out.get(key, 0) + 1
    return out


def _where(run: Path) -> str:
    """Where the kill landed, from what the folder holds."""
    if not (run / "config.json").exists():
        return "before the run folder existed"
    if not (run / "inputs" / "seeds.jsonl").exists():
        return "while creating the run folder"
    try:
        done = len([x for x in (run / "metrics.jsonl").read_text().split("\n") if x.strip()])
    except OSError:
        done = 0
    status = json.loads((run / "state.json").read_text()).get("status") if (run / "state.json").exists() else "?"
    return f"{status}, {done} iteration(s) committed"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--fit-steps", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed")
    ap.add_argument("--kill-seed", type=int, default=1, help="seed of the kill delays")
    ap.add_argument("--timeout", type=float, default=600, help="seconds any one command may take")
    ap.add_argument("--work", help="folder for the runs (default: a temporary folder)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--race", action="store_true", help="race a resume against the live run, then two resumes")
    args = ap.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="aod-kill-"))
    work.mkdir(parents=True, exist_ok=True)
    seeds = work / "seeds.jsonl"
    seeds.write_text("\n".join((PENGUINS / "seeds.jsonl").read_text().splitlines()[:60]) + "\n")
    env = _env(work / "cache")
    settings = {"iterations": args.iterations, "batch": args.batch, "fit_steps": args.fit_steps, "seed": args.seed}
    ref_dir = work / "reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    rc, cold, err = timed_run(run_command(ref_dir, seeds, **settings), env, args.timeout)
    if rc != 0:
        print(f"reference run failed: {err}", file=sys.stderr)
        return 1
    ref = snapshot(ref_dir)
    # A second uninterrupted run, with the caches warm as every trial has them: its length is the
    # range the kill delays are drawn from, and it must equal the first (determinism).
    again = work / "reference-2"
    shutil.rmtree(again, ignore_errors=True)
    rc, warm, err = timed_run(run_command(again, seeds, **settings), env, args.timeout)
    same = rc == 0 and snapshot(again) == ref
    print(
        f"reference: {len(ref['accepted'])} accepted, {len(ref['candidates'])} candidates; cold {cold:.1f}s, "
        f"warm {warm:.1f}s; a second uninterrupted run is {'identical' if same else 'DIFFERENT'}",
        file=sys.stderr,
    )
    rng = random.Random(args.kill_seed)
    results = []
    horizon = 0.9 * warm  # kills are drawn from [0.2 s, horizon]
    k = 0
    while sum(r["killed_at"] != "finished before the kill" for r in results) < args.trials and k < 2 * args.trials:
        delay = rng.uniform(0.2, horizon)
        r = trial(k, work, seeds, env, ref, delay, settings, args.timeout, race=args.race)
        results.append(r)
        k += 1
        if r["killed_at"] == "finished before the kill":  # runs got faster (less load): narrow the range
            horizon = max(1.0, 0.9 * delay)
        print(
            f"trial {r['trial']:2d}: kill after {delay:5.1f}s ({r['killed_at']}): {'ok' if r['ok'] else 'FAILED ' + '; '.join(r['problems'])}",
            file=sys.stderr,
        )
    summary = {
        "trials": len(results),
        "ok": sum(r["ok"] for r in results),
        "killed": sum(r.get("killed_at") != "finished before the kill" for r in results),
        "records_lost": sum(r.get("lost") or 0 for r in results),
        "records_duplicated": sum(r.get("duplicated") or 0 for r in results),
        "reference_accepted": len(ref["accepted"]),
        "deterministic": same,
        "run_seconds_warm": round(warm, 1),
        "settings": settings,
        "race": args.race,
        "races": _count([x for r in results for x in r.get("races", [])]),
        "results": results,
    }
    print(
        f"{summary['ok']}/{summary['trials']} trials ({summary['killed']} killed mid-run) equal the uninterrupted run; records lost "
        f"{summary['records_lost']}, duplicated {summary['records_duplicated']}",
        file=sys.stderr,
    )
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["ok"] == summary["trials"] and same else 1


if __name__ == "__main__":
    sys.exit(main())
