"""Every generator on one device: ``embedded`` fitted and sampled, ``hf:`` on a random-weight aod-mdm,
and ``difflm`` fitted on a few seeds with a random-weight causal LM as its decoder (what
``benchmarks/gpu_check.sh`` runs on a lent GPU; ``--tiny`` makes each a seconds-long smoke run on a
CPU). Each one's device, dtype, seconds, records/s, schema-valid rate and peak GPU memory go to one
JSON; a generator that fails is reported with its error and the others still run. No weights are
downloaded: the decoders are built from configs here. The LLaDA-8B-shaped ``hf:`` run is the
decoding benchmark's (``bench_hf.py --shape llada-8b``), which the check runs next.

    python benchmarks/gpu_generators.py --device cuda --out /tmp/gpu/generators.json
    python benchmarks/gpu_generators.py --device cpu --tiny --out /tmp/gpu/generators.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aod_core.canvas.prompt import Prompt  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402
from aod_core.generators import load_generator  # noqa: E402
from tests.tiny_dlm import corpus_for, save_mdm, tiny_tokenizer  # noqa: E402

#: (full, tiny) settings per generator: the full ones are sized for a GPU in about a minute each.
EMBEDDED = ({}, {"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 30})
MDM = ({"hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4, "num_attention_heads": 8}, {})
DIFFLM = (
    {"train_steps": 60, "diffusion_steps": 1500, "max_new_tokens": 160},
    {
        "latent_dim": 4,
        "soft_tokens": 2,
        "encoder_dim": 16,
        "encoder_layers": 1,
        "encoder_heads": 2,
        "injector_hidden": 32,
        "train_steps": 6,
        "batch_size": 8,
        "eval_every": 3,
        "diffusion_steps": 60,
        "diffusion_hidden": 32,
        "diffusion_layers": 1,
        "diffusion_batch": 32,
        "ode_steps": 4,
        "sample_batch": 8,
        "retries": 1,
        "max_new_tokens": 120,
    },
)


def causal_lm_folder(where: Path, seeds: list[dict], tiny: bool) -> Path:
    """A random-weight Llama with a BPE tokenizer trained on the seeds, saved as a model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer(corpus_for(seeds), vocab_size=400, chat_template=False)
    width = 32 if tiny else 512
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2 if tiny else 8,
        num_attention_heads=2 if tiny else 8,
        num_key_value_heads=2 if tiny else 8,
        max_position_embeddings=512,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(where)
    tok.save_pretrained(where)
    return where


def peak_gib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None


def run(name: str, spec: str, ds, device: torch.device, options: dict, n: int, cache: Path) -> dict:
    """Fit (or load) and sample one generator; its figures, or its error."""
    out: dict = {"generator": name, "spec": spec, "device": str(device)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        gen = load_generator(
            spec, ds.schema, ds.seeds.records, device=str(device), options=options, cache_dir=str(cache)
        )
        t0 = time.perf_counter()
        report = gen.fit()
        out["fit_seconds"] = round(time.perf_counter() - t0, 2)
        gen.sample(Prompt(), min(n, 4), seed=99)  # warm-up: kernels, languages
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        cands = gen.sample(Prompt(), n, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        valid = sum(1 for c in cands if c.parsed and ds.schema.is_valid(c.record))
        net = getattr(gen, "net", None)  # the embedded denoiser: its own parameters say where it ran
        first = next(net.parameters()) if net is not None else None
        out.update(
            status="ok",
            sample_seconds=round(seconds, 2),
            records_per_s=round(n / seconds, 2),
            schema_valid_rate=valid / n,
            dtype=report.get("dtype") or (str(first.dtype) if first is not None else None),
            ran_on=report.get("device") or (str(first.device) if first is not None else None),
            peak_gib=peak_gib(device),
        )
    except Exception as e:  # a CUDA-only failure is what this check is for: report it, run the rest
        out.update(status="error", error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc()[-2000:])
    print(f"[{name}] {json.dumps({k: v for k, v in out.items() if k != 'traceback'})}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="seconds-long settings (a smoke run on a CPU)")
    ap.add_argument("--dataset", default=str(ROOT / "assets" / "penguins"))
    ap.add_argument("--n", type=int, default=None, help="records sampled per generator (default 256, tiny 8)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_generators: --device cuda, but torch sees no CUDA device")
    ds = load_dataset(Path(args.dataset))
    pick = 1 if args.tiny else 0
    n = args.n or (8 if args.tiny else 256)
    results: dict = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "tiny": args.tiny,
        "n": n,
        "generators": [],
    }
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        for dev in [device] + ([torch.device("cpu")] if device.type == "cuda" and not args.tiny else []):
            # the embedded generator on the device, and on the CPU for comparison when the device is a GPU
            label = "embedded" if dev == device else "embedded (cpu, for comparison)"
            results["generators"].append(run(label, "embedded", ds, dev, EMBEDDED[pick], n, cache / dev.type))
        tok = tiny_tokenizer(corpus_for(ds.seeds.records), vocab_size=600)
        mdm = save_mdm(Path(tmp) / "mdm", tok, **MDM[pick])
        results["generators"].append(run("hf (random aod-mdm)", f"hf:{mdm}", ds, device, {"batch": 16}, n, cache))
        seeds = ds.seeds.records[:40]
        small = type(ds)(**{**ds.__dict__, "seeds": type(ds.seeds)(**{**ds.seeds.__dict__, "records": seeds})})
        lm = causal_lm_folder(Path(tmp) / "lm", seeds, args.tiny)
        results["generators"].append(
            run("difflm (random decoder, 40 seeds)", f"difflm:{lm}", small, device, DIFFLM[pick], min(n, 32), cache)
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    failed = [g["generator"] for g in results["generators"] if g["status"] != "ok"]
    print(
        f"wrote {args.out}; {len(results['generators']) - len(failed)} ok, failed: {failed or 'none'}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
