"""Benchmark of the AoD loop with all-embedded models (embedded DLM, plausibility judge, SmolLM2-135M optimizer).

Runs ``aod run`` in-process on a demo dataset (default: 5 iterations x 32 candidates) and checks
its wall time (target: 5 iterations x 32 in <= 3 min on 2 CPU cores), the per-iteration split
(generate / judge / optimize), that no prompt replaced the incumbent without a strictly higher
reward on the same probe, reward and TSR of the last iteration vs the first, and that every
accepted record is schema-valid and not an exact seed copy.

    python benchmarks/bench_loop.py --dataset penguins --out benchmarks/results/loop-penguins.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.data.schema import load_schema  # noqa: E402
from aod_core.data.seeds import load_records  # noqa: E402
from aod_core.eval.metrics import exact_copies  # noqa: E402
from aod_core.runs.loop import LoopSettings  # noqa: E402
from aod_core.runs.setup import RunConfig, create_run, open_loop  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="penguins")
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--proposals", type=int, default=2)
    ap.add_argument("--probe", type=int, default=LoopSettings().probe)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    folder = demo_datasets()[args.dataset]
    config = RunConfig(
        loop=LoopSettings(
            iterations=args.iterations, batch=args.batch, proposals=args.proposals, probe=args.probe, seed=args.seed
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = create_run(str(folder / "schema.json"), str(folder / "seeds.jsonl"), f"{tmp}/run", config)
        t_fit = time.perf_counter()
        handle = open_loop(
            store,
            on_event=lambda e: (
                print(f"  [{e.kind}] it={e.iteration}", flush=True)
                if e.kind in ("iteration_started", "metrics", "prompt_chosen")
                else None
            ),
        )
        t_fit = time.perf_counter() - t_fit
        status = handle.loop.run()
        total = time.perf_counter() - t0
        metrics, prompts, accepted = store.metrics(), store.prompts(), store.accepted()
    schema = load_schema(folder / "schema.json")
    seeds = load_records(folder / "seeds.jsonl", schema).records
    violations, winners = [], []
    for it in range(len(metrics)):
        rows = [p for p in prompts if p["iteration"] == it]
        inc = next((p for p in rows if p["role"] == "incumbent_probe"), None)
        nxt = next(p for p in rows if p["role"] == "next")
        if inc and nxt["prompt"] != inc["prompt"]:
            winner = max(
                (p["reward"] for p in rows if p["role"] == "proposal" and p["prompt"] == nxt["prompt"]), default=None
            )
            if winner is None or not winner > inc["reward"]:
                violations.append(it)
            won = next((p for p in rows if p["role"] == "proposal" and p["prompt"] == nxt["prompt"]), {})
            winners.append({"iteration": it, "edit": won.get("edit"), "source": won.get("source", "model")})
    result = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "dataset": args.dataset,
        "status": status,
        "total_s": round(total, 1),
        "setup_and_fit_s": round(t_fit, 1),
        "iterations": [
            {
                k: m[k]
                for k in (
                    "iteration",
                    "reward",
                    "task_success_rate",
                    "schema_valid_rate",
                    "field_overlap",
                    "duplicate_rate",
                    "distinct_2",
                    "judge_score",
                    "judge_failures",
                    "accepted_new",
                    "generate_s",
                    "judge_s",
                    "optimize_s",
                    "prompt_author",
                )
            }
            for m in metrics
        ],
        "prompt_changes": winners,  # the proposals that replaced the incumbent (source: model or repair)
        "incumbent_rule_violations": violations,
        "accepted": len(accepted),
        "accepted_schema_valid": sum(schema.is_valid(r) for r in accepted),
        "accepted_seed_copies": sum(exact_copies(accepted, seeds)),
    }
    first, last = metrics[0], metrics[-1]
    result["last_vs_first"] = {
        "reward": [first["reward"], last["reward"]],
        "task_success_rate": [first["task_success_rate"], last["task_success_rate"]],
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
