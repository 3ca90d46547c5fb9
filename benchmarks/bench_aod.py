"""Does the AoD loop beat the static prompt? ``aod bench`` on each demo dataset over several seeds.

One ``aod bench`` run per dataset and seed (``--methods``, default ``static_dlm,aod``; all embedded:
the generator, the plausibility judge and SmolLM2-135M as the optimizer), each with the loop's
budget (``--iterations`` x ``--batch`` records per method). Near the ceiling, one 160-record run
cannot tell a better prompt from noise (a TSR of 0.94 has a standard error of about 0.02), so the
comparison is repeated over seeds and reported per seed and on average, with the paired difference
``aod - static_dlm`` (the two share every sampling seed of the first iteration) and how many seeds
``aod`` wins, ties or loses. For every ``aod`` run it also lists the prompts that replaced the
incumbent: the iteration, the edit and who wrote it (``model``: the optimizer's chat model,
``repair``: read off the judge's findings, ``agents/repairs.py``).

    python benchmarks/bench_aod.py --out benchmarks/results/aod-seeds.json
    python benchmarks/bench_aod.py --datasets penguins --seeds 0 --methods static_dlm,ar_only,aod

The run folders go to a temporary folder (``--keep DIR`` keeps them); the summary is written after
every run, so an interrupted benchmark keeps what finished.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.runs.bench import HEADLINE, Bench, BenchConfig  # noqa: E402
from aod_core.runs.store import RunStore  # noqa: E402


def winners(run_dir: Path) -> list[dict]:
    """The proposals that replaced the incumbent in one AoD run, in order."""
    rows = RunStore.open(run_dir, repair=False).prompts()
    out = []
    for it in sorted({r.get("iteration") for r in rows if isinstance(r.get("iteration"), int)}):
        used = next((r for r in rows if r.get("iteration") == it and r.get("role") == "used"), None)
        nxt = next((r for r in rows if r.get("iteration") == it and r.get("role") == "next"), None)
        if not used or not nxt or nxt["prompt"] == used["prompt"]:
            continue
        won = next(
            (
                r
                for r in rows
                if r.get("iteration") == it and r.get("role") == "proposal" and r.get("prompt") == nxt["prompt"]
            ),
            None,
        )
        if won:
            out.append(
                {
                    "iteration": it,
                    "edit": won.get("edit"),
                    "source": won.get("source", "model"),
                    "reward": won["reward"],
                }
            )
    return out


def summarise(runs: list[dict], methods: list[str]) -> dict:
    by: dict[str, dict] = {}
    for r in runs:
        d = by.setdefault(r["dataset"], {"seeds": [], **{m: [] for m in methods}})
        d["seeds"].append(r["seed"])
        for m in methods:
            d[m].append(r["methods"].get(m, {}).get("task_success_rate"))
    out = {}
    for name, d in by.items():
        s = {"seeds": d["seeds"]}
        for m in methods:
            vals = [v for v in d[m] if v is not None]
            s[f"{m}_tsr"] = d[m]
            s[f"{m}_tsr_mean"] = round(statistics.fmean(vals), 4) if vals else None
        if "aod" in methods and "static_dlm" in methods:
            diffs = [a - b for a, b in zip(d["aod"], d["static_dlm"]) if a is not None and b is not None]
            s["aod_minus_static"] = [round(x, 4) for x in diffs]
            s["aod_minus_static_mean"] = round(statistics.fmean(diffs), 4) if diffs else None
            s["aod_wins_ties_losses"] = [
                sum(x > 1e-9 for x in diffs),
                sum(abs(x) <= 1e-9 for x in diffs),
                sum(x < -1e-9 for x in diffs),
            ]
        out[name] = s
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="penguins,seattle-weather,penguin-groups")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default="static_dlm,aod")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--keep", default=None, help="keep the bench folders here (default: a temporary folder)")
    ap.add_argument("--out", default=None, help="summary JSON")
    args = ap.parse_args()
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    demos = demo_datasets()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aod-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    chat_cache: dict = {}  # SmolLM2 loads once for every run
    summary = {
        "command": " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "methods": methods,
        "iterations": args.iterations,
        "batch": args.batch,
        "runs": [],
    }
    for name in [d.strip() for d in args.datasets.split(",") if d.strip()]:
        for seed in seeds:
            out = root / f"{name}-seed{seed}"
            config = BenchConfig(methods=tuple(methods), seed=seed, iterations=args.iterations, batch=args.batch)
            t0 = time.perf_counter()
            results = Bench(
                demos[name], out, config, chat_cache=chat_cache, log=lambda s: print(f"[{name} {seed}] {s}", flush=True)
            ).run()
            run = {
                "dataset": name,
                "seed": seed,
                "seconds": round(time.perf_counter() - t0, 1),
                "methods": {m: {k: results["methods"][m].get(k) for k in HEADLINE} for m in methods},
                "aod_tsr_per_iteration": [round(x["task_success_rate"], 4) for x in results["curves"].get("aod", [])],
                "aod_prompt_changes": winners(out / "runs" / "aod") if "aod" in methods else [],
            }
            summary["runs"].append(run)
            summary["summary"] = summarise(summary["runs"], methods)
            print(json.dumps(run), flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary["summary"], indent=2))


if __name__ == "__main__":
    main()
