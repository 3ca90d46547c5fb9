"""``aod generate`` throughput: records/s with 1 vs 2 local workers, judge off and on.

    python benchmarks/bench_generate.py --n 8000 --judged-n 1600 --repeats 3 --out benchmarks/results/generate.json

One run folder on penguins with the default embedded generator (fitted once, then read from the
cache: every job ships the same fitted weights to its workers) and the default plausibility judge.
Each configuration is run ``--repeats`` times into a fresh output folder (so nothing is skipped);
figures are medians. For each job three numbers:

* ``records_per_s``: unique records written / seconds of the Ray pipeline, actor start-up included
  (what a user waits for, minus the one-off fit and the final dedup and audit);
* ``per_worker_records_per_s``: records / seconds inside the shards, summed over shards: one
  replica's steady rate, without start-up;
* ``total_s``: the whole command (Ray start, fit from cache, pipeline, dedup, audit of 300 records, manifest).

Each Ray worker runs torch on ``--cpus-per-worker`` threads (default 1), so "1 worker" uses one
of the machine's cores and "2 workers" both.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=8000, help="records per job with --judge none")
    ap.add_argument("--judged-n", type=int, default=1600, help="records per job with the run's judge")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--dataset", default="penguins")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "generate.json"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    import torch

    from aod_core.data.schema import load_schema
    from aod_core.data.seeds import load_records
    from aod_core.runs import bulk
    from aod_core.runs.setup import RunConfig, create_run_from

    tmp = Path(tempfile.mkdtemp(prefix="bench-generate-"))
    data = ROOT / "assets" / args.dataset
    schema = load_schema(data / "schema.json")
    seeds = load_records(data / "seeds.jsonl", schema).records
    run = tmp / "run"
    create_run_from(schema, seeds, run, RunConfig())
    t0 = time.perf_counter()
    from aod_core.generators import load_generator

    load_generator("embedded", schema, seeds).fit()  # once: later jobs read it from the cache
    fit_s = time.perf_counter() - t0

    rows = []
    configs = [(int(w), "none", args.n) for w in args.workers.split(",")]
    configs += [(int(w), None, args.judged_n) for w in args.workers.split(",")]
    for workers, judge, n in configs:
        runs = []
        for r in range(args.repeats):
            out = tmp / f"out-{workers}-{judge}-{r}"
            m = bulk.generate(
                run,
                out,
                bulk.BulkSettings(
                    n=n,
                    workers=workers,
                    batch=args.batch,
                    judge=judge,
                    seed=r,
                    shards=max(2 * workers, 2),
                    audit_sample=300,
                ),
            )
            inside = sum(s["seconds"] for s in m["shards"])
            runs.append(
                {
                    "records_per_s": m["records_per_s"],
                    "total_s": m["timings"]["total_s"],
                    "generate_s": m["timings"]["generate_s"],
                    "accepted_share": m["accepted_share"],
                    "per_worker_records_per_s": round(
                        sum(s["records"] + s["dropped_duplicates"] + s["trimmed"] for s in m["shards"]) / inside, 2
                    )
                    if inside
                    else None,
                    "records": m["records"],
                    "candidates": m["candidates"],
                    "timings": m["timings"],
                    "schema_valid_rate": m["audit"]["schema_valid_rate"],
                }
            )
            print(f"workers={workers} judge={judge or 'run'} n={n} repeat {r}: {runs[-1]}", file=sys.stderr, flush=True)
            shutil.rmtree(out)
        med = {
            k: statistics.median(x[k] for x in runs if x[k] is not None)
            for k in ("records_per_s", "total_s", "generate_s", "accepted_share", "per_worker_records_per_s")
        }
        rows.append(
            {"workers": workers, "judge": judge or "embedded (plausibility)", "n": n, "median": med, "runs": runs}
        )

    def rate(w, j):
        return next(r["median"]["records_per_s"] for r in rows if r["workers"] == w and r["judge"].startswith(j))

    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "gpu": torch.cuda.is_available(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "dataset": args.dataset,
        "generator": "embedded (default config)",
        "fit_s": round(fit_s, 2),
        "batch": args.batch,
        "repeats": args.repeats,
        "rows": rows,
        "ratio_2_vs_1_workers": {
            "judge none": round(rate(2, "none") / rate(1, "none"), 3),
            "judge embedded": round(rate(2, "embedded") / rate(1, "embedded"), 3),
        },
        "judge_cost": {f"{w} worker(s)": round(rate(w, "embedded") / rate(w, "none"), 3) for w in (1, 2)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("ratio_2_vs_1_workers", "judge_cost")}, indent=2))
    if not args.keep:
        shutil.rmtree(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
