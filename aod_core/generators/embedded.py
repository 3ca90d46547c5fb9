"""``embedded``: a small masked-diffusion model fitted on the user's seeds, the offline default.

It learns the seeds' joint distribution over the scaffold's slots with the MDLM/LLaDA objective
(mask each token with probability t ~ U(0, 1), cross-entropy on the masked tokens weighted by 1/t,
normalised by length) and samples with the shared sampler under the scaffold's constraints, so
structure comes from the scaffold and only values are learned. Fitted weights are cached on disk
by a hash of (schema, seeds, config): refitting the same data is a file read.

With ``scaffold=False`` the same network learns raw JSON text character by character with no
constraints: the baseline that shows what the scaffold buys.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from aod_core.canvas.conditioning import field_slots
from aod_core.canvas.constraints import CanvasConstraint, static_allowed
from aod_core.canvas.nodes import DecodeError
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, END, MASK
from aod_core.canvas.values import MAX_BINS, CanvasOptions
from aod_core.data.dependencies import Dependencies, DependencySettings, detect, schema_order
from aod_core.diffusion.denoiser import Denoiser, DenoiserConfig
from aod_core.diffusion.sampler import generate
from aod_core.errors import InputError
from aod_core.generators.base import (
    CachedFit,
    Progress,
    ProgressFn,
    StepFn,
    content_key,
    in_batches,
    load_fitted,
    option,
    save_fitted,
)
from aod_core.generators.seed_prior import SeedPrior, TextPrior
from aod_core.records import Candidate

log = logging.getLogger(__name__)

# 2: canvases of unions, map keys, bounded numbers; batch floor of 1 on long canvases
# 3: realistic canvas (vocabularies, word pieces, number bins)
# 4: a bin of its own for the schema's range beyond the seeds' on each side
# 5: round bin edges, decimals read without float noise, numbers never drawn from the seeds' values
CACHE_VERSION = 5
SAMPLING_ONLY = (
    "sample_batch",
    "seed_prior",
    "text_order",
    "text_prior",
    "prior_bandwidth",
)  # settings that do not change the fit
MIN_MASK_RATE = 1e-3


@dataclass
class EmbeddedConfig:
    # Sized for ~1 minute on 2 CPU cores: a token budget per batch keeps the cost of a step the
    # same for short and long canvases (batch = batch_tokens // canvas length).
    d_model: int = option(96, "Width of the denoiser (its embedding size).", minimum=16, maximum=512, step=16)
    n_layers: int = option(3, "Transformer layers of the denoiser.", minimum=1, maximum=12)
    n_heads: int = 4
    dropout: float = 0.0
    train_steps: int = 900
    batch_tokens: int = 1280
    lr: float = option(2e-3, "Learning rate of the fit.", minimum=1e-5, maximum=0.1, step=5e-4)
    warmup: int = 60
    weight_decay: float = 0.01
    seed: int = 0
    scaffold: bool = True  # False: raw JSON text, no constraints (ablation)
    sample_batch: int = option(
        256, "Records sampled together (lower it when memory runs short).", minimum=1, maximum=4096
    )
    # How values are written on the canvas (canvas/values.py, CanvasOptions): "auto" makes repeating strings
    # choices among the seeds' values and free text word pieces; "chars" spells every string.
    strings: str = "auto"
    string_modes: dict = field(default_factory=dict)  # field path -> vocabulary | text | chars
    text_pieces: int = 400  # BPE vocabulary size for free text (0: characters)
    number_bins: int = 32  # coarse-to-fine numbers: bins per number slot (0: plain digits)
    # Sampling only (not part of the fit's cache key): the seeds' coarse conditional (seed_prior.py)
    seed_prior: float = option(
        2.0,
        "Weight of the seeds' coarse conditional added to the model while sampling: keeps categories, "
        "number bins and counts consistent across fields as in the seeds (0: the model alone).",
        minimum=0.0,
        maximum=4.0,
        step=0.25,
    )
    text_order: str = option(
        "left_to_right",
        "Order in which free-text pieces are written: left to right (each piece sees the one before it) "
        "or in any order, like every other position (no effect without free-text fields).",
        choices=("left_to_right", "any"),
    )
    text_prior: float = option(
        1.0,
        "Weight of the seeds' word-piece bigrams added to the model while sampling free text, so "
        "neighbouring pieces join as in the seeds' words (0: the model alone; no effect on a schema "
        "without free-text fields).",
        minimum=0.0,
        maximum=4.0,
        step=0.25,
    )
    prior_bandwidth: float = option(
        0.0,
        "How closely a seed must match a record's coarse plan to shape it (smaller: nearer seeds only, "
        "records closer to copies). 0 chooses it on the seeds by leave-one-out likelihood.",
        minimum=0.0,
        maximum=10.0,
        step=0.05,
    )

    def check(self) -> None:
        """Raise InputError for settings no fit can use (checked before anything is loaded)."""
        for name in ("d_model", "n_layers", "n_heads", "train_steps", "batch_tokens", "sample_batch", "warmup"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:  # warmup 0 would divide by zero
                raise InputError(f"embedded setting {name} must be a whole number >= 1, got {v!r}")
        for name in ("text_pieces", "number_bins"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise InputError(f"embedded setting {name} must be a whole number >= 0, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise InputError(f"embedded setting seed must be a whole number from 0 to {2**32 - 1}, got {self.seed!r}")
        for name, lo, hi in (("lr", 0.0, None), ("dropout", None, 1.0), ("weight_decay", None, None)):
            v = getattr(self, name)
            if (
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not math.isfinite(v)
                or v < 0
                or (lo is not None and v <= lo)
                or (hi is not None and v >= hi)
            ):
                bound = "> 0" if lo is not None else "in [0, 1)" if hi is not None else ">= 0"
                raise InputError(f"embedded setting {name} must be a finite number {bound}, got {v!r}")
        if self.d_model % self.n_heads:
            raise InputError(
                f"embedded setting d_model ({self.d_model}) must be a multiple of n_heads ({self.n_heads})"
            )
        if self.number_bins == 1 or self.number_bins > MAX_BINS - 2:
            raise InputError(
                f"embedded setting number_bins must be 0 (plain digits) or 2 to {MAX_BINS - 2} "
                f"(2 more bins hold the schema's range beyond the seeds'), got {self.number_bins}"
            )
        if self.text_order not in ("left_to_right", "any"):
            raise InputError(f"embedded setting text_order must be left_to_right or any, got {self.text_order!r}")
        for name in ("seed_prior", "text_prior", "prior_bandwidth"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise InputError(f"embedded setting {name} must be a number >= 0, got {v!r}")
        self.canvas_options()

    def canvas_options(self) -> CanvasOptions:
        if not isinstance(self.string_modes, dict):
            raise InputError(
                f"embedded setting string_modes must be a JSON object of field path -> mode, got {self.string_modes!r}"
            )
        opts = CanvasOptions(
            strings=self.strings,
            string_modes=dict(self.string_modes),
            pieces=self.text_pieces,
            number_bins=self.number_bins,
        )
        opts.check()
        return opts


def default_cache_dir() -> Path:
    return Path(os.environ.get("AOD_CACHE_DIR") or Path.home() / ".cache" / "aod-studio")


def pick_device(device: str | None = None) -> torch.device:
    """The torch device ``device`` names (None or auto: CUDA when there is one); InputError for a
    name torch does not know or a CUDA device this machine lacks, before any model is built."""
    if not device or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        d = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"unknown device {device!r} (use cpu, cuda, cuda:N, mps or auto)") from None
    if d.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0:
            raise InputError(f"device {device} asked for, but no CUDA device is available")
        if d.index is not None and d.index >= n:
            raise InputError(f"device {device} asked for, but this machine has {n} CUDA device(s)")
    elif d.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"device {device} asked for, but no Apple GPU (MPS) is available")
    elif d.type != "cpu":
        raise InputError(f"device {device!r} is not supported (use cpu, cuda, cuda:N, mps or auto)")
    return d


class _ScaffoldCanvas:
    """Slots only: fixed structure carries no information, so the network never sees it."""

    def __init__(self, schema: dict, seeds: list[dict], options: CanvasOptions | None = None):
        self.scaffold = Scaffold.build(schema, seeds, options)
        sc = self.scaffold
        self.vocab_size = len(sc.vocab)
        self.length = sc.length
        keys = sorted({s.key for s in sc.slots})
        field = torch.zeros(self.length, dtype=torch.long)
        item = torch.zeros(self.length, dtype=torch.long)
        offset = torch.zeros(self.length, dtype=torch.long)
        for s in sc.slots:
            idx = re.findall(r"\[(\d+)\]", s.path)
            field[s.positions.start : s.positions.stop] = keys.index(s.key)
            item[s.positions.start : s.positions.stop] = int(idx[-1]) if idx else 0
            offset[s.positions.start : s.positions.stop] = torch.arange(s.width)
        self.features = (field, item, offset)
        self.train_allowed = static_allowed(sc, with_absent=True)

    def encode(self, record: dict) -> list[int]:
        return self.scaffold.encode(record)

    def constraint(
        self,
        prompt: Prompt,
        device: torch.device,
        text_left_to_right: bool = False,
        dependencies: Dependencies | None = None,
        seed_tokens: torch.Tensor | None = None,
    ) -> CanvasConstraint:
        return CanvasConstraint(
            self.scaffold,
            prompt,
            device,
            text_left_to_right=text_left_to_right,
            dependencies=dependencies,
            seed_tokens=seed_tokens,
        )

    def decode(self, tokens: list[int]) -> Candidate:
        try:
            return Candidate.from_text(self.scaffold.render_text(tokens))
        except DecodeError as e:
            return Candidate(text=None, error=str(e))


class _TextCanvas:
    """Raw JSON text, END-padded: the no-scaffold ablation."""

    def __init__(self, seeds: list[dict]):
        texts = [json.dumps(r, ensure_ascii=False) for r in seeds]
        chars = sorted({ch for t in texts for ch in t})
        self.tokens = ["<mask>", "<end>"] + chars
        self.ids = {ch: i + 2 for i, ch in enumerate(chars)}
        self.vocab_size = len(self.tokens)
        self.length = max(len(t) for t in texts) + 8
        pos = torch.arange(self.length)
        self.features = (torch.zeros_like(pos), torch.zeros_like(pos), pos)
        self.train_allowed = torch.ones(self.length, self.vocab_size, dtype=torch.bool)
        self.train_allowed[:, MASK] = False

    def encode(self, record: dict) -> list[int]:
        ids = [self.ids[ch] for ch in json.dumps(record, ensure_ascii=False)][: self.length]
        return ids + [END] * (self.length - len(ids))

    def constraint(self, prompt: Prompt, device: torch.device, text_left_to_right: bool = False, **_: Any) -> None:
        if prompt.pins or prompt.forbid or prompt.ranges or prompt.bias:
            raise InputError("pins, forbids, ranges and biases need the scaffold (it is switched off)")
        return None

    def decode(self, tokens: list[int]) -> Candidate:
        n = tokens.index(END) if END in tokens else len(tokens)
        return Candidate.from_text("".join(self.tokens[t] for t in tokens[:n]))


class EmbeddedGenerator(CachedFit):
    """The offline default generator (spec ``embedded``)."""

    spec = "embedded"
    cache_prefix = "embedded"

    def __init__(
        self,
        schema: dict,
        seeds: list[dict],
        *,
        config: EmbeddedConfig | None = None,
        device: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        dependencies: DependencySettings | None = None,
    ):
        self.config = config or EmbeddedConfig()
        self.dependency_settings = dependencies or DependencySettings()
        self.dependency_settings.check()
        self.device = pick_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else default_cache_dir()
        self.schema, self.seeds = schema, seeds
        self.canvas = (
            _ScaffoldCanvas(schema, seeds, self.config.canvas_options()) if self.config.scaffold else _TextCanvas(seeds)
        )
        c = self.canvas
        n_offsets = int(c.features[2].max()) + 1
        n_items = int(c.features[1].max()) + 1
        n_fields = int(c.features[0].max()) + 1
        cfg = self.config
        self.net = Denoiser(
            DenoiserConfig(
                c.vocab_size, n_fields, n_items, n_offsets, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.dropout
            )
        ).to(self.device)
        self.features = tuple(f.to(self.device) for f in c.features)
        self.fitted = False
        self.fit_report: dict[str, Any] = {}
        # One model may be shared by several app sessions: fitting and sampling take turns.
        self._lock = threading.RLock()
        self._prior: tuple[SeedPrior, TextPrior] | None = None
        self._seed_tokens: torch.Tensor | None = None
        self._dependencies: Dependencies | None = None
        self.batch_now: int | None = None  # the sample batch that fits: halved on GPU out-of-memory
        self.oom_halvings = 0

    @property
    def scaffold(self) -> Scaffold | None:
        return getattr(self.canvas, "scaffold", None)

    def cache_key(self) -> str:
        config = {k: v for k, v in asdict(self.config).items() if k not in SAMPLING_ONLY}
        return content_key({"v": CACHE_VERSION, "schema": self.schema, "seeds": self.seeds, "config": config})

    def _fit(self, on_progress: ProgressFn | None) -> dict[str, Any]:
        if self.fitted:
            return self.fit_report
        path = self.cache_path()
        report = load_fitted(path, self.device, lambda blob: self.net.load_state_dict(blob["state_dict"]))
        if report is not None:
            self.fit_report = report
        if not self.fit_report:
            self.fit_report = self._train(on_progress)
            self._save(path)
        if on_progress:
            steps = self.config.train_steps
            on_progress(
                Progress(
                    "fit",
                    steps,
                    steps,
                    {"loss": self.fit_report.get("final_loss"), "cached": self.fit_report.get("cached", False)},
                )
            )
        self.net.eval()
        self.fitted = True
        return self.fit_report

    def _train(self, on_progress: ProgressFn | None) -> dict[str, Any]:
        cfg, dev = self.config, self.device
        torch.manual_seed(cfg.seed)
        data = torch.tensor([self.canvas.encode(r) for r in self.seeds], dtype=torch.long, device=dev)
        allowed = self.canvas.train_allowed.to(dev)
        fused = dev.type in ("cpu", "cuda")  # one kernel for the whole update: ~10% of a CPU step
        opt = torch.optim.AdamW(
            self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.98), fused=fused
        )
        gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
        self.net.train()
        t0, losses = time.perf_counter(), []
        N, L = data.shape
        bs = max(1, min(256, cfg.batch_tokens // L))
        for step in range(cfg.train_steps):
            lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup) * 0.5 * (1 + math.cos(math.pi * step / cfg.train_steps))
            for group in opt.param_groups:
                group["lr"] = lr
            x0 = data[torch.randint(N, (bs,), generator=gen).to(dev)]
            t = (torch.rand(bs, 1, generator=gen) * (1 - MIN_MASK_RATE) + MIN_MASK_RATE).to(dev)
            masked = torch.rand(bs, L, generator=gen).to(dev) < t
            xt = torch.where(masked, torch.full_like(x0, MASK), x0)
            logits = self.net(xt, *self.features).masked_fill(~allowed, -1e4)
            ce = F.cross_entropy(logits.transpose(1, 2), x0, reduction="none")  # [B, L]
            loss = (ce * masked / t).sum() / (bs * L)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.0)
            opt.step()
            losses.append(loss.item())
            if on_progress and (step % 10 == 0 or step == cfg.train_steps - 1):
                on_progress(Progress("fit", step + 1, cfg.train_steps, {"loss": sum(losses[-10:]) / len(losses[-10:])}))
        return {
            "seconds": round(time.perf_counter() - t0, 2),
            "steps": cfg.train_steps,
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
            "params": self.net.n_params(),
            "device": str(dev),
            "canvas_length": L,
            "batch_size": bs,
            "cached": False,
        }

    def weights(self) -> dict[str, Any]:
        """The fitted network as a CPU state dict with its fit report (what ``load_weights`` takes):
        how a bulk job ships one fitted model to every worker instead of fitting it again there."""
        with self._lock:
            self._fit(None)
            return {
                "state_dict": {k: v.detach().cpu() for k, v in self.net.state_dict().items()},
                "report": dict(self.fit_report),
                "cache_key": self.cache_key(),
            }

    def load_weights(self, blob: dict[str, Any]) -> None:
        """Use weights from ``weights()`` of a generator built on the same schema, seeds and config."""
        if blob.get("cache_key") != self.cache_key():
            raise InputError("these weights were fitted for another schema, seeds or config")
        with self._lock:
            self.net.load_state_dict({k: v.to(self.device) for k, v in blob["state_dict"].items()})
            self.fit_report = dict(blob["report"])
            self.net.eval()
            self.fitted = True

    def _save(self, path: Path) -> None:
        save_fitted(path, {"state_dict": self.net.state_dict(), "report": self.fit_report})

    def check_prompt(self, prompt: Prompt) -> None:
        """Raise InputError now, before any fitting, when the prompt's edits do not fit the canvas."""
        prompt.sampling.check()
        self.canvas.constraint(prompt, torch.device("cpu"))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, *self.features)

    def sample(
        self, prompt: Prompt | None = None, n: int = 100, *, seed: int = 0, on_step: StepFn | None = None
    ) -> list[Candidate]:
        prompt = prompt or Prompt()
        prompt.sampling.check()
        with self._lock:
            self._fit(None)
            return self._sample(prompt, n, seed, on_step)

    @property
    def dependencies(self) -> Dependencies:
        """The seeds' dependencies and keys this generator keeps while sampling (none without a
        scaffold: the raw-text ablation keeps nothing)."""
        if self._dependencies is None:
            if self.scaffold is None:
                self._dependencies = Dependencies()
            else:
                self._dependencies = detect(self.seeds, self.dependency_settings, schema_order(self.schema))
        return self._dependencies

    def seed_tokens(self) -> torch.Tensor:
        """The seeds encoded on the canvas [S, L] (CPU)."""
        if self._seed_tokens is None:
            self._seed_tokens = torch.tensor([self.canvas.encode(r) for r in self.seeds], dtype=torch.long)
        return self._seed_tokens

    def seed_priors(self) -> tuple[SeedPrior, TextPrior] | None:
        """The seeds' coarse conditional and word-piece bigrams used while sampling (None without a
        scaffold or with both weights at 0)."""
        cfg = self.config
        if self.scaffold is None or (cfg.seed_prior <= 0 and cfg.text_prior <= 0):
            return None
        if self._prior is None:
            tokens = self.seed_tokens()
            keys = [[list(_field_positions(self.scaffold, f)) for f in key] for key in self.dependencies.keys]
            coarse = SeedPrior(self.scaffold, tokens, weight=cfg.seed_prior, bandwidth=cfg.prior_bandwidth, keys=keys)
            text = TextPrior(self.scaffold, tokens, weight=cfg.text_prior)
            self._prior = (coarse.to(self.device), text.to(self.device))
        return self._prior

    def _sample(self, prompt: Prompt, n: int, seed: int, on_step: StepFn | None) -> list[Candidate]:
        constraint = self.canvas.constraint(
            prompt,
            self.device,
            self.config.text_order == "left_to_right",
            dependencies=self.dependencies,
            seed_tokens=self.seed_tokens() if self.dependencies else None,
        )
        gen = torch.Generator(device="cpu").manual_seed(seed)
        logits_fn = self.logits
        priors = self.seed_priors()
        if priors is not None:  # the prompt's own biases win over the seeds' frequencies
            coarse, text = priors
            logits_fn = coarse.wrap(self.logits, skip=(constraint.bias != 0).any(1), text=text)

        def chunk(start: int, b: int) -> list[Candidate]:
            if constraint is not None:
                canvas = constraint.initial_canvas(b)
                prompt_mask = (canvas[0] != MASK) & (canvas[0] != ABSENT)  # pinned positions
            else:
                canvas = torch.full((b, self.canvas.length), MASK, dtype=torch.long, device=self.device)
                prompt_mask = None
            filled = generate(
                logits_fn,
                canvas,
                mask_id=MASK,
                settings=prompt.sampling,
                constraint=constraint,
                prompt_mask=prompt_mask,
                generator=gen,
                on_step=on_step,
            )
            return [self.canvas.decode(row) for row in filled.tolist()]

        out, self.batch_now = in_batches(
            n, self.batch_now or self.config.sample_batch, chunk, what="the embedded generator", on_halve=self._halved
        )
        return out

    def _halved(self, size: int) -> None:
        log.warning("embedded generator: out of GPU memory, sample batch halved to %d", size)
        self.oom_halvings += 1


def _field_positions(scaffold: Scaffold, path: str) -> list[int]:
    return [p for s in field_slots(scaffold, path) for p in s.positions]


def build(
    target: str,
    schema: Any,
    seeds: list[dict],
    *,
    config=None,
    device=None,
    cache_dir=None,
    dependencies=None,
    **_: Any,
):
    """The registry's builder for ``embedded`` (``aod_core.generators``)."""
    return EmbeddedGenerator(
        schema.resolved, seeds, config=config, device=device, cache_dir=cache_dir, dependencies=dependencies
    )
