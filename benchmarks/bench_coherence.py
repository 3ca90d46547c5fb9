"""New and coherent records, also when steered: dependencies, copying and steering on every demo dataset.

For each demo dataset, ``aod sample`` writes 200 records twice with the same sampling seed: with no
instruction (unsteered), and with a "mostly <category>" instruction for a category other fields
depend on (``STEERS``; compiled by the rules alone, ``--compiler none``, its share measured and its
bias raised as the CLI does). Both are then measured with this tree's code, whatever tree wrote them:

* **steering**: the category's share, and the share of records that hold the category *and* are
  accepted by the judge (a label on an incoherent record does not count);
* **judge accept**: the plausibility judge fitted on the seeds (calibrated to accept 90% of real
  records), unsteered and steered, and the steered / unsteered ratio;
* **dependencies**: the share of records that break a dependency the seeds show (``data/dependencies.py``),
  next to the holdout's;
* **copying**: the share of records closer to a seed than the holdout's 5th-percentile distance to the
  seeds, the median distance to the closest seed against the holdout's (ratio), the reuse of the seeds'
  keys (``(country, year)``, a code) against the holdout's, and per number field the share of values
  that are some seed's exact value;
* **kept**: schema-valid rate and k-NN precision against the holdout (the audit's).

``--tree DIR`` writes the records with another checkout's ``aod`` (the baseline: ``git worktree add
/tmp/base <commit>``); the measuring is always this tree's. ``--contention`` reruns the first dataset's
unsteered sample beside two busy processes and compares the output byte for byte.

    python benchmarks/bench_coherence.py --out benchmarks/results/coherence.json
    python benchmarks/bench_coherence.py --tree /tmp/base --out benchmarks/results/coherence-before.json
    python benchmarks/bench_coherence.py --datasets countries --contention
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aod_core.agents.plausibility import PlausibilityModel, PlausibilitySettings  # noqa: E402
from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.data.dependencies import detect, field_values  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.eval.audit import audit  # noqa: E402
from aod_core.eval.distance import dcr_distances  # noqa: E402

#: dataset -> (instruction, field, value): a category other fields depend on.
STEERS = {
    "airports": ("mostly airports in Alaska", "state", "AK"),
    "cars": ("mostly Japanese cars", "origin", "Japan"),
    "countries": ("mostly African countries", "continent", "Africa"),
    "penguin-groups": ("mostly groups on Torgersen island", "island", "Torgersen"),
    "penguins": ("mostly Chinstrap penguins", "species", "Chinstrap"),
    "seattle-weather": ("mostly rainy days", "weather", "rain"),
}


def sample(tree: Path, folder: Path, out: Path, n: int, seed: int, cache: Path, prompt: str | None) -> float:
    """Run ``aod sample`` of ``tree`` on a dataset folder; the seconds it took."""
    cmd = [sys.executable, "-c", "import sys; from aod_core.cli import main; sys.exit(main())", "sample"]
    cmd += ["--schema", str(folder / "schema.json"), "--seeds", str(folder / "seeds.jsonl")]
    cmd += ["--n", str(n), "--seed", str(seed), "--out", str(out), "--quiet"]
    if prompt:
        cmd += ["--prompt", prompt, "--compiler", "none"]
    env = {**os.environ, "PYTHONPATH": str(tree), "AOD_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, cwd=str(tree))
    return time.perf_counter() - t0


def read(path: Path) -> list:
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append(None)
    return out


def copied_numbers(records: list[dict], seeds: list[dict]) -> dict[str, float]:
    """Per number field (not a key or a code): the share of generated values that are a seed's exact value."""
    deps = detect(seeds)
    fixed = set(deps.identifiers) | {f for k in deps.keys for f in k} | set(deps.parents)
    out = {}
    rows = [field_values(s) for s in seeds]
    for f in rows[0]:
        vals = [r.get(f) for r in rows]
        if f in fixed or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in vals if v is not None
        ):
            continue
        if len({v for v in vals if v is not None}) < 0.5 * len(vals):  # a year, a count: few values by nature
            continue
        have = {json.dumps(v) for v in vals if v is not None}
        got = [field_values(r).get(f) for r in records]
        got = [v for v in got if v is not None]
        if got:
            out[f] = float(np.mean([json.dumps(v) in have for v in got]))
    return out


def measure(records: list, ds, model: PlausibilityModel, steer: tuple[str, str, str]) -> dict:
    seeds, hold = ds.seeds.records, ds.holdout.records
    parsed = [r for r in records if isinstance(r, dict)]
    out: dict = {"n": len(records), "decoded": len(parsed) / max(len(records), 1)}
    accept = [a.accept for a in model.assess(parsed)] if parsed else []
    out["judge_accept"] = float(np.mean(accept)) if accept else 0.0
    _, field, value = steer
    has = [field_values(r).get(f"$.{field}") == value for r in parsed]
    out["category_share"] = float(np.mean(has)) if has else 0.0
    out["category_and_accepted"] = float(np.mean([h and a for h, a in zip(has, accept)])) if has else 0.0
    deps = detect(seeds)
    out["dependency_violations"] = float(np.mean([bool(deps.violations(r)) for r in parsed])) if parsed else 0.0
    keys = deps.seed_keys(seeds)
    out["key_reuse"] = float(np.mean([bool(deps.reused_keys(r, keys)) for r in parsed])) if parsed and keys else None
    dcr, hd = dcr_distances(parsed, seeds, hold)
    if len(dcr) and hd is not None and len(hd):
        p05 = float(np.percentile(hd, 5))
        out["closer_than_holdout_p05"] = float(np.mean(dcr < p05))
        out["dcr_median"] = float(np.median(dcr))
        out["dcr_median_ratio"] = float(np.median(dcr) / max(np.median(hd), 1e-12))
    out["copied_numbers"] = copied_numbers(parsed, seeds)
    a = audit(records, seeds, schema=ds.schema, holdout=hold, embedder="lexical")
    out["schema_valid_rate"] = a.get("schema_valid_rate")
    out["knn_precision_holdout"] = a.get("knn_precision_holdout")
    out["examples"] = parsed[:4]
    return out


def holdout_reference(ds, model: PlausibilityModel) -> dict:
    seeds, hold = ds.seeds.records, ds.holdout.records
    deps = detect(seeds)
    keys = deps.seed_keys(seeds)
    _, hd = dcr_distances(hold, seeds, hold)
    return {
        "judge_accept": float(np.mean([a.accept for a in model.assess(hold)])),
        "dependency_violations": float(np.mean([bool(deps.violations(r)) for r in hold])),
        "key_reuse": float(np.mean([bool(deps.reused_keys(r, keys)) for r in hold])) if keys else None,
        "dcr_median": float(np.median(hd)) if hd is not None and len(hd) else None,
        "copied_numbers": copied_numbers(hold, seeds),
        "dependencies": deps.summary(),
    }


def contention(tree: Path, folder: Path, work: Path, n: int, seed: int, cache: Path) -> dict:
    """The same unsteered sample idle and beside two busy processes: identical bytes, and the times."""
    idle = work / "idle.jsonl"
    t_idle = sample(tree, folder, idle, n, seed, cache, None)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = work / "loaded.jsonl"
        t_loaded = sample(tree, folder, loaded, n, seed, cache, None)
    finally:
        for p in busy:
            p.kill()
            p.wait()

    def digest(p: Path) -> str:
        return hashlib.sha256(p.read_bytes()).hexdigest()

    return {
        "identical": digest(idle) == digest(loaded),
        "seconds_idle": round(t_idle, 1),
        "seconds_loaded": round(t_loaded, 1),
        "sha256": digest(idle),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tree", default=str(ROOT), help="checkout whose `aod sample` writes the records")
    ap.add_argument("--work", default=None, help="folder for the records and the fitted models (default: a new one)")
    ap.add_argument("--reuse", action="store_true", help="measure records already in --work instead of sampling")
    ap.add_argument("--contention", action="store_true", help="also rerun the first dataset beside two busy processes")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    demos = demo_datasets()
    names = [n for n in demos if n in STEERS] if args.datasets == "all" else args.datasets.split(",")
    tree = Path(args.tree).resolve()
    work = Path(args.work or f"/tmp/bench-coherence-{os.getpid()}")
    cache = work / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=tree, capture_output=True, text=True)
    results = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "tree": str(tree),
        "commit": commit.stdout.strip(),
        "n": args.n,
        "seed": args.seed,
        "datasets": {},
    }
    for name in names:
        folder = demos[name]
        ds = load_dataset(folder)
        model = PlausibilityModel.fit(ds.seeds.records, PlausibilitySettings())
        row: dict = {"steer": STEERS[name][0], "holdout": holdout_reference(ds, model)}
        for label, prompt in (("unsteered", None), ("steered", STEERS[name][0])):
            path = work / f"{name}-{label}.jsonl"
            seconds = (
                None if args.reuse and path.exists() else sample(tree, folder, path, args.n, args.seed, cache, prompt)
            )
            row[label] = {"seconds": seconds and round(seconds, 1), **measure(read(path), ds, model, STEERS[name])}
            shown = {k: v for k, v in row[label].items() if k != "examples"}
            print(f"[{name}] {label}: {json.dumps(shown)}", flush=True)
        u, s = row["unsteered"]["judge_accept"], row["steered"]["judge_accept"]
        row["steered_over_unsteered_accept"] = s / u if u else None
        results["datasets"][name] = row
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    if args.contention:
        results["contention"] = {names[0]: contention(tree, demos[names[0]], work, args.n, args.seed, cache)}
        print(f"contention: {results['contention']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
