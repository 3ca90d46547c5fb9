"""Do the embedded generator's records look real, not only valid? Today's generator against the new one.

For each demo dataset, the first canvas (characters everywhere, plain digits) and today's (vocabularies,
word pieces, number bins) are fitted from scratch on the seeds (fresh cache) and sample 200 records
with the default prompt and the same sampling seed: today's without the seeds' priors, with the coarse
prior, and with the text bigrams too (the default), so each part's effect shows separately
(``VARIANTS``). Reported side by side, in one run:

* **judge accept share**: the plausibility judge (fitted on the seeds, calibrated to accept 90% of
  real records) on the 200 records: the static-prompt task success rate;
* **repeating strings real**: for string fields whose seed values repeat (learned vocabularies), the
  share of generated values that occur in the seeds or the holdout;
* **free text**: for the other string fields, the share of generated words (letters only, lower
  case) that occur in the seeds' text, and the share of whole values that are new (not a seed value);
* **fidelity against the holdout**: the audit's mean KS (numbers) and TVD (categories) and k-NN
  precision / recall, plus a **detection AUC**: a random forest told to separate the generated
  records from the real holdout (5-fold cross-validated ROC AUC; 0.5 = indistinguishable);
* **cross-field facts**: the share of records for which the judge's conditional, dependency, pair,
  determines and equal rules find something rarer than 99% of real records, next to the same share
  for the real holdout;
* schema-valid rate, exact seed copies, fit and sampling seconds.

    python benchmarks/bench_realism.py --out benchmarks/results/realism.json
    python benchmarks/bench_realism.py --datasets airports --n 200
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aod_core.agents.evidence import FeatureSpace, build_tables, column_kinds  # noqa: E402
from aod_core.agents.plausibility import PlausibilityModel, PlausibilitySettings  # noqa: E402
from aod_core.canvas.prompt import DEFAULT_TEMPERATURE, Prompt, Sampling  # noqa: E402
from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.eval.audit import audit  # noqa: E402
from aod_core.eval.metrics import exact_copies  # noqa: E402
from aod_core.generators import load_generator  # noqa: E402

CROSS = ("conditional", "dependency", "pair", "determines", "equal", "text-category")

#: The generators compared, each a row of options sampled at a temperature: the first canvas
#: (characters everywhere, plain digits, T=1.0); the realistic canvas (vocabularies, word pieces,
#: number bins) without the seeds' priors, at the default temperature; the same with the coarse
#: prior; and today's default (coarse prior, text bigrams, text written left to right). Rows whose
#: options differ only in sampling settings share one fitted model (the cache key says so).
NO_PRIORS = {"seed_prior": 0, "text_prior": 0, "text_order": "any"}
VARIANTS = [
    ("chars, T=1.0 (first canvas)", {"strings": "chars", "text_pieces": 0, "number_bins": 0, **NO_PRIORS}, 1.0),
    (f"words + vocabularies + bins, T={DEFAULT_TEMPERATURE}, no priors", NO_PRIORS, DEFAULT_TEMPERATURE),
    ("+ coarse prior", {"text_prior": 0, "text_order": "any"}, DEFAULT_TEMPERATURE),
    ("+ text bigrams, left to right (default)", {}, DEFAULT_TEMPERATURE),
]


def _string_fields(seeds: list[dict]) -> tuple[list[str], list[str]]:
    """Top-level string fields split into (repeating, free text) the way the scaffold decides."""
    from aod_core.canvas.values import string_mode

    rep, free = [], []
    for key in seeds[0]:
        vals = [s.get(key) for s in seeds if isinstance(s.get(key), str)]
        if len(vals) < 0.5 * len(seeds):
            continue
        mode = string_mode(vals)
        (rep if mode == "vocabulary" else free).append(key)
    return rep, free


def _words(text: str) -> list[str]:
    return re.findall(r"[^\W\d_]{2,}", text.lower())


def detection_auc(generated: list[dict], real: list[dict], seed: int = 0) -> float | None:
    """5-fold cross-validated ROC AUC of a random forest telling generated from real records."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import cross_val_score

    if len(generated) < 10 or len(real) < 10:
        return None
    both = build_tables(list(real) + list(generated))["$"]
    infos = [c for c in column_kinds(both, "$") if not c.name.endswith("#month")]
    ref = build_tables(real)["$"]
    space = FeatureSpace(infos, ref)
    X = space.transform(both)
    y = np.r_[np.zeros(len(real)), np.ones(len(generated))]
    clf = RandomForestClassifier(n_estimators=200, min_samples_leaf=3, random_state=seed, n_jobs=1)
    return float(np.mean(cross_val_score(clf, X, y, cv=5, scoring="roc_auc")))


def evaluate(records: list[dict], ds, model: PlausibilityModel, rep: list[str], free: list[str]) -> dict:
    seeds, hold = ds.seeds.records, ds.holdout.records
    out: dict = {"n": len(records)}
    got = model.assess(records)
    out["judge_accept_share"] = float(np.mean([a.accept for a in got]))
    cross = [any(f.kind in CROSS for f in a.findings) for a in got]
    out["cross_field_flagged"] = float(np.mean(cross))
    known = {k: {s.get(k) for s in seeds} | {h.get(k) for h in hold} for k in rep}
    for k in rep:
        vals = [r.get(k) for r in records if isinstance(r.get(k), str)]
        out[f"real_values[{k}]"] = float(np.mean([v in known[k] for v in vals])) if vals else None
    vocab = {w for s in seeds for k in free if isinstance(s.get(k), str) for w in _words(s[k])}
    for k in free:
        vals = [r.get(k) for r in records if isinstance(r.get(k), str)]
        ws = [w for v in vals for w in _words(v)]
        seed_vals = {s.get(k) for s in seeds}
        out[f"words_in_seed_vocab[{k}]"] = float(np.mean([w in vocab for w in ws])) if ws else None
        out[f"new_values[{k}]"] = float(np.mean([v not in seed_vals for v in vals])) if vals else None
    a = audit(records, seeds, schema=ds.schema, holdout=hold, embedder="lexical")
    for key in (
        "schema_valid_rate",
        "ks_mean_holdout",
        "tvd_mean_holdout",
        "knn_precision_holdout",
        "knn_recall_holdout",
    ):
        out[key] = a.get(key)
    out["seed_copy_rate"] = float(np.mean(exact_copies(records, seeds)))
    out["detection_auc"] = detection_auc(records, hold)
    return out


def run_dataset(name: str, folder: Path, n: int, seed: int) -> dict:
    ds = load_dataset(folder)
    seeds, hold = ds.seeds.records, ds.holdout.records
    model = PlausibilityModel.fit(seeds, PlausibilitySettings())
    rep, free = _string_fields(seeds)
    result = {
        "dataset": name,
        "seeds": len(seeds),
        "holdout": len(hold),
        "repeating_string_fields": rep,
        "free_text_fields": free,
        "generators": {},
    }
    real = model.assess(hold)
    result["holdout_reference"] = {
        "judge_accept_share": float(np.mean([x.accept for x in real])),
        "cross_field_flagged": float(np.mean([any(f.kind in CROSS for f in x.findings) for x in real])),
    }
    fitted: dict[str, tuple] = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, opts, temperature in VARIANTS:
            gen = load_generator("embedded", ds.schema, seeds, options=opts, cache_dir=cache)
            key = gen.cache_key()
            if key not in fitted:
                t0 = time.perf_counter()
                report = gen.fit()
                fitted[key] = (report, time.perf_counter() - t0)
            report, fit_s = fitted[key]
            gen.fit()  # a cache read when another row fitted the same model
            t0 = time.perf_counter()
            cands = gen.sample(Prompt(sampling=Sampling(temperature=temperature)), n, seed=seed)
            sample_s = time.perf_counter() - t0
            records = [c.record for c in cands if c.parsed]
            m = evaluate(records, ds, model, rep, free)
            m.update(
                {
                    "fit_seconds": round(fit_s, 1),
                    "sample_seconds": round(sample_s, 2),
                    "params": report.get("params"),
                    "canvas_length": report.get("canvas_length"),
                    "decoded": len(records) / len(cands),
                }
            )
            m["examples"] = records[:5]
            result["generators"][label] = m
            print(
                f"[{name}] {label}: "
                + ", ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in m.items() if k != "examples"
                ),
                flush=True,
            )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="all")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    demos = demo_datasets()
    names = list(demos) if args.datasets == "all" else [d.strip() for d in args.datasets.split(",")]
    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}",
        "n": args.n,
        "datasets": [],
    }
    for name in names:
        results["datasets"].append(run_dataset(name, demos[name], args.n, args.seed))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
