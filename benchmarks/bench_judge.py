"""Does the judge tell real records from implausible ones? Measured on every demo dataset's holdout.

For each demo dataset: the real records are its holdout (never seen by the judge); the negatives
are built from them (``negatives.py``: independent fields, a far-out number, random letters in a
free-text field, a number swapped in from another category), all schema-valid and none a seed copy.
Reported per judge, in one run:

* the share of real records accepted, and the share of each negative kind rejected;
* ROC AUC of the judge's score, real records against all negatives together;
* records/s of the whole judge (exact checks, near copies, verdicts) in loop-sized batches of 32,
  median of 3 passes, after fitting; and the fitting time (from scratch, no cache).

Judges: ``plausibility`` (the embedded judge: evidence fitted on the seeds), ``smollm2`` (the
previous embedded judge: SmolLM2-135M alone, ``--judge-mode llm``) and ``smollm2+evidence``
(``--judge-mode combined``: SmolLM2 reads the plausibility evidence, the plausibility model may
veto). SmolLM2 takes seconds per record on 2 CPU cores, so the LLM rows use a fixed subsample
(``--llm-n`` records per kind, the first of each list) and the plausibility judge is reported on
that same subsample too, for a like-for-like comparison.

    python benchmarks/bench_judge.py --out benchmarks/results/judge.json
    python benchmarks/bench_judge.py --datasets penguins --no-llm
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from negatives import KINDS, NegativeFactory  # noqa: E402

from aod_core.agents.judge import Judge  # noqa: E402
from aod_core.agents.plausibility import PlausibilityModel, PlausibilitySettings  # noqa: E402
from aod_core.data.demos import demo_datasets  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.records import Candidate  # noqa: E402

BATCH = 32


def _cands(records):
    return [Candidate(text=json.dumps(r), record=r) for r in records]


def _evaluate(judge: Judge, real: list, negatives: dict[str, list], *, timed: bool = False) -> dict:
    """Verdicts on real records and every negative kind, in batches of 32 (as the loop judges)."""
    everything = [("real", r) for r in real] + [(k, r) for k, rs in negatives.items() for r in rs]
    cands = _cands([r for _, r in everything])

    def one_pass():
        verdicts = []
        for start in range(0, len(cands), BATCH):
            verdicts += judge.judge(cands[start : start + BATCH], summarise=False).verdicts
        return verdicts

    times = []
    passes = 3 if timed else 1
    for _ in range(passes):
        t0 = time.perf_counter()
        verdicts = one_pass()
        times.append(time.perf_counter() - t0)
    out: dict = {"n_real": len(real)}
    kinds = [k for k, _ in everything]
    acc = [v.accept for v in verdicts]
    out["real_accepted"] = float(np.mean([a for k, a in zip(kinds, acc) if k == "real"])) if real else None
    for kind, rs in negatives.items():
        got = [a for k, a in zip(kinds, acc) if k == kind]
        out[f"{kind}_rejected"] = (1 - float(np.mean(got))) if got else None
        out[f"n_{kind}"] = len(got)
    labels = [1 if k == "real" else 0 for k in kinds]
    scores = [v.score if v.score is not None else 0.0 for v in verdicts]
    out["auc"] = float(roc_auc_score(labels, scores)) if 0 < sum(labels) < len(labels) else None
    out["failures"] = sum(v.source == "failed" for v in verdicts)
    median = statistics.median(times)
    out["seconds"] = round(median, 3)
    out["records_per_s"] = round(len(cands) / median, 1) if median > 0 else None
    if timed:
        out["seconds_all_passes"] = [round(t, 3) for t in times]
    return out


def run_dataset(name: str, folder: Path, n: int, llm_n: int, smol) -> dict:
    ds = load_dataset(folder)
    seeds, real = ds.seeds.records, ds.holdout.records
    factory = NegativeFactory(ds.schema.resolved, seeds, real, seed=0)
    negatives = {k: factory.make(k, n, ds.schema.is_valid) for k in KINDS}
    negatives = {k: v for k, v in negatives.items() if v}
    t0 = time.perf_counter()
    model = PlausibilityModel.fit(seeds, PlausibilitySettings())
    fit_s = time.perf_counter() - t0
    plaus = Judge(None, ds.schema, seeds, mode="plausibility", plausibility=model)
    result = {
        "dataset": name,
        "seeds": len(seeds),
        "fit_seconds": round(fit_s, 2),
        "calibration": model.describe(),
        "negative_kinds_missing": [k for k in KINDS if k not in negatives],
        "far_fields": [".".join(p) for p in factory.far_fields()],
        "text_fields": [".".join(p) for p in factory.text_fields()],
        "swap_pair": factory.swap_pair(),
        "judges": {},
    }
    result["judges"]["plausibility"] = _evaluate(plaus, real, negatives, timed=True)
    print(f"[{name}] plausibility: {result['judges']['plausibility']}", flush=True)
    if smol is not None and llm_n > 0:
        sub_real = real[:llm_n]
        sub_neg = {k: v[:llm_n] for k, v in negatives.items()}
        result["judges"]["plausibility (LLM subsample)"] = _evaluate(plaus, sub_real, sub_neg)
        for label, mode in (("smollm2", "llm"), ("smollm2+evidence", "combined")):
            judge = Judge(smol, ds.schema, seeds, mode=mode, plausibility=model if mode == "combined" else None)
            result["judges"][label] = _evaluate(judge, sub_real, sub_neg)
            print(f"[{name}] {label}: {result['judges'][label]}", flush=True)
        # The batch summary SmolLM2 could write for the embedded judge: what it costs.
        judge = Judge(smol, ds.schema, seeds, mode="combined", plausibility=model)
        j = judge.judge(_cands(sub_real[:4] + sum((v[:4] for v in sub_neg.values()), [])), summarise=True)
        result["smollm2_summary"] = {"seconds": round(j.llm_seconds, 2), "text": j.summary, "error": j.summary_error}
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", default="all", help="comma-separated demo names (default: every demo)")
    ap.add_argument("--n", type=int, default=200, help="negatives per kind (at most)")
    ap.add_argument("--llm-n", type=int, default=12, help="records per kind for the SmolLM2 rows")
    ap.add_argument("--no-llm", action="store_true", help="skip the SmolLM2 rows")
    ap.add_argument(
        "--llm-datasets", default="all", help="comma-separated demos that get the SmolLM2 rows (they take minutes each)"
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    demos = demo_datasets()
    names = list(demos) if args.datasets == "all" else [d.strip() for d in args.datasets.split(",")]
    smol = None
    if not args.no_llm:
        from aod_core.chat import load_chat_model

        smol = load_chat_model("embedded")
    results = {
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, {platform.python_version()}",
        "batch": BATCH,
        "datasets": [],
    }
    for name in names:
        if name not in demos or not (demos[name] / "holdout.jsonl").is_file():
            print(f"skipping {name}: no such demo with a holdout", file=sys.stderr)
            continue
        with_llm = args.llm_datasets == "all" or name in [d.strip() for d in args.llm_datasets.split(",")]
        results["datasets"].append(run_dataset(name, demos[name], args.n, args.llm_n if with_llm else 0, smol))
        if args.out:
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=2))
    print(markdown(results))


def markdown(results: dict) -> str:
    cols = ["real_accepted"] + [f"{k}_rejected" for k in KINDS] + ["auc", "records_per_s"]
    lines = ["| dataset | judge | fit s | " + " | ".join(cols) + " |", "|---|---|---:|" + "---:|" * len(cols)]
    for d in results["datasets"]:
        for judge, m in d["judges"].items():
            fit = f"{d['fit_seconds']:.1f}" if judge == "plausibility" else ""
            cells = []
            for c in cols:
                v = m.get(c)
                cells.append("n/a" if v is None else f"{v:.2f}" if c != "records_per_s" else f"{v:.0f}")
            lines.append(f"| {d['dataset']} | {judge} | {fit} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
