"""The summary of a ``benchmarks/gpu_check.sh`` run: every step's outcome, every generator's figures on
the device, the decoding speed (fast against vanilla, the batch sweep) against the issue's goals, as
``summary.json`` in the run's folder and a table on stdout.

    python benchmarks/gpu_summary.py /tmp/gpu-check
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

GOALS = {"speedup_batch_1": 8.0, "tokens_per_s_batch_1": 300.0, "records_per_s_batch_32": 50.0}


def read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def decoding(hf: dict | None) -> dict:
    if not hf:
        return {}
    res, sweep = hf.get("results") or {}, hf.get("sweep") or {}
    fast = {k: v for k, v in res.items() if k.startswith("fast@") and "no cache" not in k}
    best = max(fast.items(), key=lambda kv: kv[1]["tokens_per_s"], default=(None, {}))
    out = {
        "shape": hf.get("shape"),
        "device": hf.get("device"),
        "batch": hf.get("batch"),
        "vanilla_tokens_per_s": res.get("vanilla", {}).get("tokens_per_s"),
        "best_fast": best[0],
        "fast_tokens_per_s": best[1].get("tokens_per_s"),
        "fast_records_per_s": best[1].get("records_per_s"),
        "speedup": best[1].get("speedup_tokens_per_s"),
        "peak_gib": max((r.get("peak_gib") or 0 for r in res.values()), default=0) or None,
        "schema_valid_rate": min((r.get("schema_valid_rate", 1) for r in res.values()), default=None),
        "sweep_records_per_s": {b: r["records_per_s"] for b, r in sweep.items() if not b.startswith("vanilla")},
        "valid_by_dataset": hf.get("valid_by_dataset"),
    }
    vanilla_small = next((r for b, r in sweep.items() if b.startswith("vanilla@")), None)
    if vanilla_small is not None and "1" in sweep:
        one = sweep["1"]
        out["batch_1"] = {
            "tokens_per_s": one["tokens_per_s"],
            "speedup": one["tokens_per_s"] / vanilla_small["tokens_per_s"],
        }
    if "32" in sweep:
        out["batch_32_records_per_s"] = sweep["32"]["records_per_s"]
    met = {}
    if "batch_1" in out:
        met["speedup_batch_1"] = out["batch_1"]["speedup"] >= GOALS["speedup_batch_1"]
        met["tokens_per_s_batch_1"] = out["batch_1"]["tokens_per_s"] >= GOALS["tokens_per_s_batch_1"]
    if "batch_32_records_per_s" in out:
        met["records_per_s_batch_32"] = out["batch_32_records_per_s"] >= GOALS["records_per_s_batch_32"]
    out["goals"] = {k: {"goal": GOALS[k], "met": v} for k, v in met.items()}
    return out


def main() -> int:
    run = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/gpu-check")
    steps = [json.loads(line) for line in (run / "steps.jsonl").read_text().splitlines() if line.strip()]
    gens = read(run / "generators.json") or {}
    summary = {
        "env": read(run / "env.json"),
        "steps": steps,
        "generators": [{k: v for k, v in g.items() if k != "traceback"} for g in gens.get("generators", [])],
        "decoding": decoding(read(run / "hf.json")),
    }
    summary["ok"] = all(s["rc"] == 0 for s in steps) and all(g["status"] == "ok" for g in summary["generators"])
    (run / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"device: {(summary['env'] or {}).get('device_name')}  ok: {summary['ok']}")
    for s in steps:
        print(f"  step {s['step']:<12} rc {s['rc']:>3}  {s['seconds']:>5} s{'  (timed out)' if s['timed_out'] else ''}")
    print("| generator | status | fit s | records/s | schema-valid | dtype | ran on | peak GiB |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for g in summary["generators"]:
        print(
            f"| {g['generator']} | {g['status']} | {g.get('fit_seconds', '–')} | {g.get('records_per_s', '–')} | "
            f"{g.get('schema_valid_rate', '–')} | {g.get('dtype') or '–'} | {g.get('ran_on') or '–'} | "
            f"{g.get('peak_gib') or '–'} |"
        )
        if g["status"] != "ok":
            print(f"    {g.get('error')}")
    d = summary["decoding"]
    if d:
        print(
            f"decoding ({d['shape']}, batch {d['batch']}): vanilla {d['vanilla_tokens_per_s']:.1f} tokens/s, "
            f"{d['best_fast']} {d['fast_tokens_per_s']:.1f} tokens/s ({d['speedup']:.2f}x), "
            f"{d['fast_records_per_s']:.2f} records/s, schema-valid {d['schema_valid_rate']:.0%}, peak {d['peak_gib']} GiB"
        )
        print(f"  records/s by batch: {d['sweep_records_per_s']}")
        for k, v in d["goals"].items():
            print(f"  goal {k} >= {v['goal']}: {'met' if v['met'] else 'missed'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
