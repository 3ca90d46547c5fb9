"""Benchmark of the embedded DLM: fit time, sampling time and structural quality, scaffold on vs off.

Each run fits from scratch (fresh cache folder) with a different training seed, samples 100
records, and measures: fit seconds, sample seconds, schema-valid rate, share not an exact seed
copy, duplicate rate. Figures are medians over the runs. Targets (issue 2, flat ~300x8 dataset on 2
CPU cores): fit <= 90 s, 100 records <= 10 s, >= 98% schema-valid, >= 90% novel, <= 5% duplicates;
nested schema >= 90% schema-valid.

    python benchmarks/bench_embedded.py --runs 3 --out benchmarks/results/embedded.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.eval.metrics import batch_summary  # noqa: E402
from aod_core.generators import EmbeddedConfig, load_generator  # noqa: E402


def one_run(name: str, scaffold: bool, seed: int, n: int) -> dict:
    ds = load_dataset(demo_datasets()[name])
    with tempfile.TemporaryDirectory() as cache:
        gen = load_generator(
            "embedded",
            ds.schema,
            ds.seeds.records,
            cache_dir=cache,
            scaffold=scaffold,
            config=EmbeddedConfig(seed=seed),
            device="cpu",
        )
        t0 = time.perf_counter()
        report = gen.fit()
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        cands = gen.sample(None, n, seed=seed)
        sample_s = time.perf_counter() - t0
    s = batch_summary(cands, ds.schema, ds.seeds.records)
    return {
        "fit_s": fit_s,
        "sample_s": sample_s,
        "schema_valid_rate": s["schema_valid_rate"],
        "valid_json_rate": s["valid_json_rate"],
        "novel_rate": 1.0 - s["exact_copy_rate"],
        "duplicate_rate": s["duplicate_rate"],
        "params": report["params"],
        "canvas_length": report["canvas_length"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="penguins,penguin-groups,seattle-weather")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--ablation-runs", type=int, default=1, help="runs with the scaffold off (0 skips them)")
    ap.add_argument("--out", default="benchmarks/results/embedded.json")
    args = ap.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    results = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, python {platform.python_version()}",
        "runs": args.runs,
        "n": args.n,
        "rows": [],
    }
    modes = [(True, args.runs)] + ([(False, args.ablation_runs)] if args.ablation_runs else [])
    for name in args.datasets.split(","):
        for scaffold, n_runs in modes:
            runs = []
            for r in range(n_runs):
                runs.append(one_run(name, scaffold, seed=r, n=args.n))
                print(
                    f"{name} scaffold={scaffold} run {r}: " + ", ".join(f"{k}={v:.3f}" for k, v in runs[-1].items()),
                    flush=True,
                )
            med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
            results["rows"].append({"dataset": name, "scaffold": scaffold, "runs": n_runs, "median": med, "all": runs})
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"\nmachine: {results['machine']}; medians, {args.n} records per run\n")
    print("| dataset | scaffold | runs | fit s | sample s | schema-valid | not a seed copy | duplicates |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in results["rows"]:
        m = row["median"]
        print(
            f"| {row['dataset']} | {'on' if row['scaffold'] else 'off'} | {row['runs']} | {m['fit_s']:.1f} | {m['sample_s']:.2f} | "
            f"{m['schema_valid_rate']:.1%} | {m['novel_rate']:.1%} | {m['duplicate_rate']:.1%} |"
        )


if __name__ == "__main__":
    main()
