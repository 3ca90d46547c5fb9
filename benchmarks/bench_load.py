"""Concurrent sessions: several users' runs in one app process for a fixed time, isolated and bounded.

What the app does when several browser sessions each start a run: one process-wide ``JobRegistry``
(``st.cache_resource`` in ``ui/state.py``) with one ``RunJob`` worker thread per run and one shared
``ModelPool``. This script drives that same code directly (no browser: each "session" is a thread that
creates a run from its own dataset, starts it, polls ``job.view()`` like the page's fragment, and
starts another run when one finishes) for ``--minutes``, then checks:

* every run finished (none failed or hung);
* no session saw another's records: every record a job's view showed and every accepted record in a
  run folder is valid against that session's own schema (each session has a different dataset, so a
  record of another session fails it), and no run folder holds another's candidate texts;
* the process's peak memory (RSS), and its growth from the first to the last quarter of the time
  (bounded: the runs come and go, memory must not pile up).

    python benchmarks/bench_load.py --sessions 3 --minutes 10 --out benchmarks/results/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aod_core.canvas.prompt import Prompt, Sampling  # noqa: E402
from aod_core.data.schema import load_schema  # noqa: E402
from aod_core.data.seeds import load_records  # noqa: E402
from aod_core.runs.setup import create_run_from  # noqa: E402
from aod_core.runs.store import RunStore  # noqa: E402
from aod_core.studio.jobs import JobRegistry  # noqa: E402
from aod_core.studio.settings import config_from_settings  # noqa: E402

DATASETS = ("penguins", "seattle-weather", "penguin-groups", "cars")
TINY = {"d_model": 32, "n_layers": 1, "n_heads": 2}


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Session(threading.Thread):
    def __init__(self, k: int, registry: JobRegistry, work: Path, deadline: float, args: argparse.Namespace):
        super().__init__(daemon=True, name=f"session-{k}")
        self.k, self.registry, self.work, self.deadline, self.args = k, registry, work, deadline, args
        self.dataset = DATASETS[k % len(DATASETS)]
        self.schema = load_schema(ROOT / "assets" / self.dataset / "schema.json")
        self.seeds = load_records(ROOT / "assets" / self.dataset / "seeds.jsonl", self.schema).records[:60]
        self.runs: list[dict] = []
        self.foreign_in_view = 0
        self.error: str | None = None

    def run(self) -> None:
        try:
            n = 0
            while time.monotonic() < self.deadline or n == 0:
                self.runs.append(self.one_run(n))
                n += 1
        except Exception as e:  # reported, not raised: the other sessions go on
            self.error = f"{type(e).__name__}: {e}"

    def one_run(self, n: int) -> dict:
        a = self.args
        config = config_from_settings(
            {
                "iterations": a.iterations,
                "batch": a.batch,
                "probe": 4,
                "proposals": a.proposals,
                "train_steps": a.fit_steps,
                "seed": self.k * 100 + n,
            },
            task=self.dataset,
            prompt=Prompt(sampling=Sampling(steps=a.steps)),
        )
        config.generator_config.update(TINY)
        store = create_run_from(self.schema, self.seeds, self.work / f"s{self.k}-run{n}", config)
        t0 = time.monotonic()
        job = self.registry.start(store)
        while True:  # the page's fragment: poll the view
            v = job.view()
            for row in v.live_rows:
                rec = row.get("record")
                if (
                    rec is not None
                    and not self.schema.is_valid(rec)
                    and row.get("checks", {}).get("schema_errors") == []
                ):
                    self.foreign_in_view += 1
            if not v.active:
                break
            if time.monotonic() - t0 > a.run_timeout:
                job.stop()
                break
            time.sleep(0.5)
        job.thread.join(60)
        v = job.view()
        store = RunStore.open(store.path, repair=False)
        accepted = store.accepted()
        return {
            "run": store.path.name,
            "status": v.status,
            "error": v.error,
            "seconds": round(time.monotonic() - t0, 1),
            "iterations": store.iterations_done(),
            "accepted": len(accepted),
            "accepted_foreign": sum(1 for r in accepted if not self.schema.is_valid(r)),
        }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", type=int, default=3)
    ap.add_argument("--minutes", type=float, default=10.0, help="how long sessions keep starting runs")
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--proposals", type=int, default=0, help="0: no optimizer LLM (the 2-core default)")
    ap.add_argument("--fit-steps", type=int, default=40)
    ap.add_argument("--steps", type=int, default=24, help="diffusion steps per batch")
    ap.add_argument("--run-timeout", type=float, default=900, help="a run taking longer counts as hung")
    ap.add_argument("--work", help="folder for the runs and the model cache (default: temporary)")
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args(argv)
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="aod-load-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("AOD_CACHE_DIR", str(work / "cache"))
    registry = JobRegistry()
    t0 = time.monotonic()
    deadline = t0 + args.minutes * 60
    samples: list[tuple[float, float]] = []
    sessions = [Session(k, registry, work, deadline, args) for k in range(args.sessions)]
    for s in sessions:
        s.start()
    while any(s.is_alive() for s in sessions):
        samples.append((time.monotonic() - t0, rss_mb()))
        time.sleep(1.0)
    total = samples[-1][0] if samples else 0.0
    first = [m for t, m in samples if t <= total / 4] or [0.0]
    last = [m for t, m in samples if t >= 3 * total / 4] or [0.0]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    runs = [dict(r, session=s.k, dataset=s.dataset) for s in sessions for r in s.runs]
    # candidate texts must not cross run folders of different sessions
    texts = {}
    for s in sessions:
        for r in s.runs:
            store = RunStore.open(work / r["run"], repair=False)
            texts[(s.k, r["run"])] = {c.get("text") for c in store.candidates() if c.get("text")}
    crossed = 0
    for (ka, ra), ta in texts.items():
        for (kb, rb), tb in texts.items():
            if ka < kb:
                crossed += len(ta & tb)
    summary = {
        "sessions": args.sessions,
        "minutes": round(total / 60, 1),
        "runs": len(runs),
        "finished": sum(r["status"] == "finished" for r in runs),
        "session_errors": [s.error for s in sessions if s.error],
        "records_in_another_session": sum(r["accepted_foreign"] for r in runs)
        + sum(s.foreign_in_view for s in sessions),
        "candidate_texts_shared_between_sessions": crossed,
        "peak_rss_mb": round(peak, 0),
        "rss_first_quarter_max_mb": round(max(first), 0),
        "rss_last_quarter_max_mb": round(max(last), 0),
        "settings": vars(args),
        "results": runs,
    }
    print(
        f"{summary['sessions']} sessions for {summary['minutes']} min: {summary['finished']}/{summary['runs']} runs "
        f"finished; records seen in another session: {summary['records_in_another_session']}; peak RSS "
        f"{summary['peak_rss_mb']:.0f} MB (first quarter max {summary['rss_first_quarter_max_mb']:.0f}, last quarter "
        f"max {summary['rss_last_quarter_max_mb']:.0f})",
        file=sys.stderr,
    )
    if summary["session_errors"]:
        print("errors: " + "; ".join(summary["session_errors"]), file=sys.stderr)
    if args.out:
        Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    ok = (
        summary["finished"] == summary["runs"]
        and not summary["session_errors"]
        and summary["records_in_another_session"] == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
