"""Benchmark of the Data Auditor suite (``aod_core.eval.audit.audit``) at the issue's scale.

Builds synthetic data deterministically (no downloads): 10,000 generated records of 10 fields (5
numeric, 5 categorical, one of them a short free-text note) against 300 seeds and a 300-record
holdout from the same generator, with a schema and judge verdicts, then runs the whole suite
``--repeats`` times and reports the median wall time (target: <= 30 s on 2 CPU cores).

    python benchmarks/bench_audit.py --out benchmarks/results/audit.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.eval.audit import audit  # noqa: E402

SPECIES = ["Adelie", "Chinstrap", "Gentoo", "Emperor", "King", "Macaroni", "Rockhopper"]
ISLANDS = ["Biscoe", "Dream", "Torgersen", "Anvers", "Signy"]
WORDS = (
    "calm windy foggy rain snow bright cold warm seen nesting feeding diving moulting pair chick adult juvenile near far shore cliff ice colony large small"
).split()

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "species": {"type": "string", "enum": SPECIES},
        "island": {"type": "string", "enum": ISLANDS},
        "sex": {"type": ["string", "null"], "enum": ["male", "female", None]},
        "tagged": {"type": "boolean"},
        "note": {"type": "string"},
        "bill_length_mm": {"type": "number", "minimum": 20, "maximum": 80},
        "bill_depth_mm": {"type": "number", "minimum": 10, "maximum": 30},
        "flipper_length_mm": {"type": "integer", "minimum": 150, "maximum": 250},
        "body_mass_g": {"type": "integer", "minimum": 2000, "maximum": 7000},
        "year": {"type": "integer", "minimum": 2000, "maximum": 2030},
    },
    "required": [
        "species",
        "island",
        "sex",
        "tagged",
        "note",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "year",
    ],
    "additionalProperties": False,
}


def make_records(n: int, seed: int, shift: float = 0.0) -> list[dict]:
    """n penguin-like records; ``shift`` moves the numeric means (a generator slightly off)."""
    rng = np.random.default_rng(seed)
    sp = rng.choice(len(SPECIES), size=n, p=[0.3, 0.2, 0.25, 0.1, 0.05, 0.05, 0.05])
    size = np.array([1.0, 1.05, 1.25, 1.6, 1.45, 1.1, 0.95])[sp]
    out = []
    bill = rng.normal(44 + shift, 5, n) * size**0.3
    depth = rng.normal(17, 2, n) - 2 * (sp == 2)
    flipper = np.rint(rng.normal(200 + 3 * shift, 12, n) * size**0.2).astype(int)
    mass = np.rint(rng.normal(4200, 700, n) * size**0.5 / 50).astype(int) * 50
    year = rng.integers(2007, 2012, n)
    island = rng.integers(0, len(ISLANDS), n)
    sex = rng.choice(3, size=n, p=[0.48, 0.48, 0.04])
    tagged = rng.random(n) < 0.3
    nwords = rng.integers(2, 6, n)
    for i in range(n):
        out.append(
            {
                "species": SPECIES[sp[i]],
                "island": ISLANDS[island[i]],
                "sex": ["male", "female", None][sex[i]],
                "tagged": bool(tagged[i]),
                "note": " ".join(rng.choice(WORDS, nwords[i])),
                "bill_length_mm": round(float(np.clip(bill[i], 20, 80)), 1),
                "bill_depth_mm": round(float(np.clip(depth[i], 10, 30)), 1),
                "flipper_length_mm": int(np.clip(flipper[i], 150, 250)),
                "body_mass_g": int(np.clip(mass[i], 2000, 7000)),
                "year": int(year[i]),
            }
        )
    return out


def make_data(n: int = 10_000, n_seeds: int = 300):
    seeds = make_records(n_seeds, 1)
    holdout = make_records(300, 2)
    records = make_records(n, 3, shift=1.5)
    rng = np.random.default_rng(4)
    for i in rng.choice(n, n // 50, replace=False):  # 2% exact seed copies
        records[i] = dict(seeds[int(rng.integers(n_seeds))])
    for i in rng.choice(n, n // 33, replace=False):  # ~3% repeats of another record
        records[i] = dict(records[int(rng.integers(n))])
    verdicts = (rng.random(n) < 0.8).tolist()
    return records, seeds, holdout, verdicts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--seeds", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    records, seeds, holdout, verdicts = make_data(args.n, args.seeds)
    times, result = [], None
    for r in range(args.repeats):
        t0 = time.perf_counter()
        result = audit(records, seeds, schema=SCHEMA, holdout=holdout, verdicts=verdicts, seed=0)
        times.append(time.perf_counter() - t0)
        print(f"run {r + 1}/{args.repeats}: {times[-1]:.2f} s", flush=True)
    median = statistics.median(times)
    report = {
        "benchmark": "audit suite",
        "records": args.n,
        "seeds": args.seeds,
        "holdout": len(holdout),
        "fields": 10,
        "repeats": args.repeats,
        "seconds": [round(t, 3) for t in times],
        "median_seconds": round(median, 3),
        "target_seconds": 30,
        "meets_target": median <= 30,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "cpu_count": os.cpu_count(),
            "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        },
        "embedder": result["embedder"]["name"],
        "subsampled": result["subsampled"],
        "metrics": {k: v for k, v in result.items() if not isinstance(v, (dict, list))},
    }
    print(f"median {median:.2f} s over {args.repeats} runs ({args.n} records x 10 fields vs {args.seeds} seeds)")
    print(json.dumps(report["metrics"], indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")


if __name__ == "__main__":
    main()
