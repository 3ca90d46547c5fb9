"""Benchmark of the DiffLM generator against the embedded DLM on one dataset (penguins by default).

Both generators are fitted from scratch (fresh cache folder) on the seeds and sample ``--n`` records
with the same sampling seed. Measured per generator: fit seconds (DiffLM: decoder load + VAE +
latent diffusion), sample seconds, valid-JSON / schema-valid / exact-copy / duplicate rates (over all
returned candidates), DiffLM's pre-filter schema-valid rate (its first draws, before invalid ones are
redrawn), and the distance to the closest seed (DCR: median, p5, p25; same distance space as
``aod audit``) against the holdout -> seed baseline, plus a few fidelity figures from the audit
suite. Targets (DiffLM issue, ~300-seed flat demo on 2 CPU cores): fit <= 15 min, >= 90% schema-valid
after filtering, exact-copy rate <= 5%.

    python benchmarks/bench_difflm.py --out benchmarks/results/difflm.json [--threads 1] [--temperatures 1.0,0.7]

``--threads``: torch intra-op threads. With another busy process on a 2-core machine, 1 thread is
much faster than 2 (two processes with 2 spinning threads each on 2 cores starve each other); the
load average at start and end is recorded so a shared machine shows in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.canvas.prompt import Prompt, Sampling  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.eval.audit import audit  # noqa: E402
from aod_core.eval.distance import dcr_distances  # noqa: E402
from aod_core.eval.metrics import batch_summary  # noqa: E402
from aod_core.generators import load_generator, parse_options  # noqa: E402

AUDIT_KEYS = (
    "field_overlap",
    "distinct_2",
    "near_copy_rate",
    "ks_mean",
    "tvd_mean",
    "ks_mean_holdout",
    "tvd_mean_holdout",
    "knn_precision",
    "knn_recall",
    "dcr_closer_than_holdout_p05",
)


def _dist(x: np.ndarray | None) -> dict | None:
    if x is None or not len(x):
        return None
    return {
        "median": float(np.median(x)),
        "p5": float(np.percentile(x, 5)),
        "p25": float(np.percentile(x, 25)),
        "mean": float(np.mean(x)),
        "n": int(len(x)),
    }


def evaluate(gen, ds, n: int, seed: int, temperature: float) -> dict:
    """Sample ``n`` records at ``temperature`` and measure them (every returned candidate counts)."""
    t0 = time.perf_counter()
    cands = gen.sample(Prompt(sampling=Sampling(temperature=temperature)), n, seed=seed)
    sample_s = time.perf_counter() - t0
    hold = ds.holdout.records if ds.holdout else None
    s = batch_summary(cands, ds.schema, ds.seeds.records)
    a = audit(cands, ds.seeds.records, schema=ds.schema, holdout=hold, seed=seed)
    dcr, hd = dcr_distances(cands, ds.seeds.records, hold)
    out = {
        "temperature": temperature,
        "sample_s": round(sample_s, 1),
        "valid_json_rate": s["valid_json_rate"],
        "schema_valid_rate": s["schema_valid_rate"],
        "exact_copy_rate": s["exact_copy_rate"],
        "duplicate_rate": s["duplicate_rate"],
        "dcr": _dist(dcr),
        "dcr_holdout": _dist(hd),
        **{k: a.get(k) for k in AUDIT_KEYS},
    }
    filt = getattr(gen, "last_sample_report", None)
    if filt:
        out["prefilter_schema_valid_rate"] = filt["first_pass_valid_rate"]
        out["draws"] = filt["drawn"]
    out["examples"] = [c.text for c in cands[:5]]
    return out


def run(spec: str, ds, n: int, seed: int, options: dict, log, temperatures: list[float]) -> dict:
    """Fit ``spec`` from scratch, then evaluate it at each temperature (the first is the headline)."""
    with tempfile.TemporaryDirectory() as cache:
        gen = load_generator(spec, ds.schema, ds.seeds.records, cache_dir=cache, device="cpu", options=options)
        last = [0.0]

        def progress(p) -> None:
            now = time.perf_counter()
            if p.done >= p.total or now - last[0] > 30:
                last[0] = now
                stage = p.info.get("stage") or p.stage
                loss = p.info.get("loss")
                log(
                    f"  {spec} {stage}: {p.done}/{p.total}"
                    + (f" loss {loss:.3f}" if isinstance(loss, float) else "")
                    + (f" beta {p.info['beta']:.4f}" if "beta" in p.info else "")
                )

        t0 = time.perf_counter()
        report = gen.fit(on_progress=progress)
        fit_s = time.perf_counter() - t0
        out = {"fit_s": round(fit_s, 1), **evaluate(gen, ds, n, seed, temperatures[0])}
        if len(temperatures) > 1:
            out["other_temperatures"] = [evaluate(gen, ds, n, seed, t) for t in temperatures[1:]]
    out["fit_report"] = {k: v for k, v in report.items() if k != "vae_history"}
    if "vae_history" in report:
        out["vae_history"] = report["vae_history"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="assets/penguins")
    ap.add_argument("--n", type=int, default=200, help="records sampled per generator")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    ap.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="a DiffLM setting, repeatable")
    ap.add_argument("--no-embedded", action="store_true", help="skip the embedded DLM comparison")
    ap.add_argument(
        "--temperatures",
        default="1.0",
        help="comma-separated sampling temperatures; the first is the headline, DiffLM is also measured at the others (same fitted model)",
    )
    ap.add_argument("--out", default="benchmarks/results/difflm.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ds = load_dataset(args.dataset)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    results = {
        "dataset": args.dataset,
        "n_seeds": len(ds.seeds.records),
        "n_holdout": len(ds.holdout.records) if ds.holdout else 0,
        "n": args.n,
        "seed": args.seed,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "loadavg_start": list(os.getloadavg()),
        },
        "difflm_options": parse_options(args.opt),
        "methods": {},
    }
    specs = [("difflm", parse_options(args.opt))] + ([] if args.no_embedded else [("embedded", {})])
    for spec, options in specs:
        log(f"{spec}: fitting on {len(ds.seeds.records)} seeds, then sampling {args.n}")
        temps = [float(t) for t in args.temperatures.split(",") if t.strip()]
        results["methods"][spec] = run(
            spec, ds, args.n, args.seed, options, log, temps if spec == "difflm" else temps[:1]
        )
        m = results["methods"][spec]
        log(
            f"{spec}: fit {m['fit_s']} s, sample {m['sample_s']} s, schema-valid {m['schema_valid_rate']:.3f}, "
            f"exact copies {m['exact_copy_rate']:.3f}, DCR median {m['dcr']['median'] if m['dcr'] else None}"
        )
    results["machine"]["loadavg_end"] = list(os.getloadavg())
    d = results["methods"]["difflm"]
    results["targets"] = {
        "fit_under_15_min": d["fit_s"] <= 900,
        "schema_valid_after_filter_ge_0.9": d["schema_valid_rate"] >= 0.9,
        "exact_copy_le_0.05": d["exact_copy_rate"] <= 0.05,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(
        f"\n{args.dataset}: {results['n_seeds']} seeds, {results['n_holdout']} holdout, {args.n} records per "
        f"generator; {results['machine']['torch_threads']} torch thread(s), load average "
        f"{results['machine']['loadavg_start'][0]:.1f} -> {results['machine']['loadavg_end'][0]:.1f}\n"
    )
    print(
        "| generator | fit s | sample s | schema-valid | pre-filter valid | exact copies | duplicates | DCR median | DCR p5 | DCR p25 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    hold = d["dcr_holdout"]
    for name, m in results["methods"].items():
        pre = m.get("prefilter_schema_valid_rate")
        c = m["dcr"] or {}
        print(
            f"| {name} | {m['fit_s']:.0f} | {m['sample_s']:.0f} | {m['schema_valid_rate']:.1%} | "
            f"{'—' if pre is None else f'{pre:.1%}'} | {m['exact_copy_rate']:.1%} | {m['duplicate_rate']:.1%} | "
            f"{c.get('median', float('nan')):.3f} | {c.get('p5', float('nan')):.3f} | {c.get('p25', float('nan')):.3f} |"
        )
    for m in d.get("other_temperatures", []):
        c = m["dcr"] or {}
        print(
            f"| difflm @ T={m['temperature']} | | {m['sample_s']:.0f} | {m['schema_valid_rate']:.1%} | "
            f"{m.get('prefilter_schema_valid_rate', float('nan')):.1%} | {m['exact_copy_rate']:.1%} | "
            f"{m['duplicate_rate']:.1%} | {c.get('median', float('nan')):.3f} | {c.get('p5', float('nan')):.3f} | "
            f"{c.get('p25', float('nan')):.3f} |"
        )
    if hold:
        print(
            f"| holdout -> seeds (baseline) | | | | | | | {hold['median']:.3f} | {hold['p5']:.3f} | {hold['p25']:.3f} |"
        )
    print(f"\ntargets: {results['targets']}\nwrote {out}")


if __name__ == "__main__":
    main()
