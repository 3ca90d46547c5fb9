"""``hf:<id-or-path>``: a pretrained masked diffusion LM (LLaDA, Dream, ModernBERT-based chat DLMs).

The model stays frozen; records come from infilling a token-level scaffold (``token_scaffold.py``)
placed after the chat-formatted prompt. Decoding is LLaDA's semi-autoregressive masked diffusion with
the speed-ups of Fast-dLLM:

* **threshold commits**: every proposal whose confidence reaches ``threshold`` is committed in the
  same step (at least one per row), instead of a fixed ``k`` per step;
* **window KV cache**: at the start of each block the whole canvas runs once and every layer's keys and
  values are kept; the block's further steps recompute only the block (prefix and suffix reuse the
  cache). Used when the model offers ``prefill``/``forward_window`` (``aod_core.diffusion.mdm``); LLaDA's and
  Dream's remote code do not, and decode without it.

``vanilla`` decoding (fixed ``k`` per step, no threshold, no cache) is kept for the benchmark's
comparison. Within a value run tokens are committed left to right (the automaton needs the text so
far); different runs and different rows decode in parallel.
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from aod_core.diffusion import hf_compat
from aod_core.errors import InputError
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.diffusion.sampler import StepInfo, add_gumbel_noise
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.token_scaffold import RowPlan, SlotLanguage, TokenScaffold, build_token_table
from aod_core.generators.base import Candidate, Progress, ProgressFn, StepFn, in_batches

log = logging.getLogger(__name__)

SHIFTED_MODEL_TYPES = {"dream"}  # logits at i predict token i+1 (AR-initialised DLMs)


@dataclass
class HFConfig:
    batch: int = 32  # records per forward batch; lower it when the GPU runs out of memory
    decode: Literal["fast", "vanilla"] = "fast"
    threshold: float = 0.9  # fast: commit every proposal at least this confident (prompt may override)
    block_length: int = 32  # canvas positions per semi-autoregressive block
    cache: bool = True  # fast: reuse keys/values outside the block (models that support it)
    vanilla_k: int = 1  # vanilla: tokens committed per row per step
    examples: int = 3  # seed records shown in the prompt
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 on CPU
    # A folder whose config or tokenizer names its own Python code (``auto_map``: LLaDA, Dream) runs
    # that code when loaded; only when the user says so for this model (--trust-remote-code,
    # --gen-opt trust_remote_code=true, the Models page checkbox).
    trust_remote_code: bool = False

    def check(self) -> None:
        if self.decode not in ("fast", "vanilla"):
            raise InputError(f"decode must be fast or vanilla, got {self.decode!r}")
        if self.batch < 1 or self.block_length < 1 or self.vanilla_k < 1 or self.examples < 0:
            raise InputError("batch, block_length and vanilla_k must be >= 1, examples >= 0")
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"threshold must be in (0, 1], got {self.threshold}")
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise InputError(f"dtype must be auto, float32, bfloat16 or float16, got {self.dtype!r}")


@dataclass
class DecodeStats:
    forwards: int = 0
    steps: int = 0
    tokens: int = 0  # value tokens decided (EOS padding forced after a run ends is not counted)
    seconds: float = 0.0


# ---- loading -------------------------------------------------------------------------------------


def resolve_model_path(ref: str) -> Path:
    """A model folder, or a hub id already in the local HF cache; there is no hub access here."""
    ref = ref.strip()
    if not ref:
        raise InputError("hf: needs a model id or folder, e.g. hf:GSAI-ML/LLaDA-8B-Instruct")
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{ref} has no config.json: not a transformers model folder")
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(ref, "config.json")
    except ValueError:
        hit = None
    if not isinstance(hit, str):
        raise InputError(f"model {ref} not found locally (no hub access on this machine); "
                         "download it elsewhere and give its folder")
    return Path(hit).parent


def _dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def remote_code_files(path: Path) -> list[str]:
    """The files of a model folder that name Python code of its own (an ``auto_map``), read as plain
    JSON: nothing of the folder is imported to find out."""
    out = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            out.append(name)
    return out


def check_remote_code(path: Path, trust_remote_code: bool) -> None:
    """InputError, one line, when the folder ships code and the user has not allowed it."""
    files = remote_code_files(path)
    if files and not trust_remote_code:
        raise InputError(f"{path} ships its own Python code ({' and '.join(files)} name it in auto_map), which "
                         "runs when the model loads; it is not loaded unless you allow it for this model: "
                         "--trust-remote-code (or --gen-opt trust_remote_code=true; in the app, the Models page "
                         "checkbox 'Trust this model folder's code')")


def load_dlm(path: Path, device: torch.device, dtype: torch.dtype, *,
             trust_remote_code: bool = False) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, facts) for a masked DLM folder; InputError when it is not one, or when it
    ships code of its own and ``trust_remote_code`` is off."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from aod_core.diffusion import mdm  # noqa: F401  registers the aod-mdm model type with transformers

    check_remote_code(path, trust_remote_code)
    shims = hf_compat.apply()
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the model config or tokenizer in {path}: {str(e).splitlines()[0]}") from None
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = tokenizer.mask_token_id
    archs = list(getattr(config, "architectures", None) or [])
    if mask_id is None:
        kind = "a causal LM" if any(a.endswith("ForCausalLM") for a in archs) else "not a masked diffusion LM"
        raise InputError(f"{path.name} is {kind}: neither its config nor its tokenizer has a mask token "
                         "(use it as a chat model, e.g. --judge hf:…, or as the difflm decoder)")
    auto_map = getattr(config, "auto_map", None) or {}
    remote_key = next((k for k in ("AutoModelForMaskedLM", "AutoModel") if k in auto_map), None)
    try:
        if remote_key:
            cls = get_class_from_dynamic_module(auto_map[remote_key], str(path), local_files_only=True)
            if hf_compat.fix_model_class(cls):
                shims.append("tied_weights_list")
            model = cls.from_pretrained(path, config=config, dtype=dtype, local_files_only=True)
        else:
            model = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except torch.cuda.OutOfMemoryError:
        raise InputError(f"out of GPU memory loading {path.name}: use a smaller model or free the GPU") from None
    except OSError as e:
        raise InputError(f"weights of {path.name} missing or unreadable (no hub access here): "
                         f"{str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise InputError(f"cannot load {path.name} as a masked diffusion LM: {str(e).splitlines()[0]}") from None
    except Exception as e:  # damaged weights (e.g. a truncated safetensors file): one line, never a traceback
        raise InputError(f"cannot load the weights of {path.name}: {type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:300]}") from None
    if hf_compat.tie_after_load(model):
        shims.append("tied_weights_list")
    model = model.to(device).eval()
    end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(config, "eos_token_id", None)
    if isinstance(end_id, list):
        end_id = end_id[0]
    if end_id is None:
        end_id = tokenizer.pad_token_id
    if end_id is None:
        raise InputError(f"{path.name}: the tokenizer has no EOS or PAD token to end values with")
    facts = _facts_of(model, tokenizer, end_id=int(end_id), shims=sorted(set(shims)))
    return model, tokenizer, facts


# ---- the model as a logits function ----------------------------------------------------------------


class ModelRunner:
    """Uniform forward passes over any loaded DLM: full canvas, or prefill + window when supported."""

    def __init__(self, model: Any, *, shifted: bool, window_cache: bool):
        self.model, self.shifted, self.window_cache = model, shifted, window_cache

    def full(self, x: torch.Tensor, at: torch.Tensor) -> torch.Tensor:
        """Logits [N, V] at the positions ``at`` [B, L] (bool) marks, row-major."""
        logits = self.model(input_ids=x).logits
        if self.shifted:
            logits = align_shifted(logits)
        return logits[at]

    def prefill(self, x: torch.Tensor, at: torch.Tensor) -> tuple[torch.Tensor, Any]:
        return self.model.prefill(x, logits_at=at)

    def window(self, x: torch.Tensor, start: int, stop: int, cache: Any, at: torch.Tensor) -> torch.Tensor:
        return self.model.forward_window(x[:, start:stop], start, cache, logits_at=at[:, start:stop])


def align_shifted(logits: torch.Tensor) -> torch.Tensor:
    """Dream-style logits (position i predicts token i+1) moved so index i holds position i's logits."""
    return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)


# ---- decoding --------------------------------------------------------------------------------------


@dataclass
class _RunState:
    row: int
    start: int
    width: int
    lang: SlotLanguage
    lang_id: int
    pos: int = 0
    state: int = 0
    done: bool = False


class _Lang:
    """A language's tables on the model device (masks) and on the CPU (bookkeeping)."""

    def __init__(self, lang: SlotLanguage, device: torch.device):
        self.dev = lang.to(device)
        self.next = lang.next.numpy()
        self.dist = lang.dist.numpy()
        self.accept = lang.accept.numpy()
        self.index = {int(t): i for i, t in enumerate(lang.cands.tolist())}

    def can_continue(self, state: int, remaining: int) -> bool:
        nxt = self.next[state]
        live = nxt >= 0
        return bool(live.any() and (self.dist[nxt[live]] <= remaining).any())


@torch.no_grad()
def denoise(runner: ModelRunner, plans: list[RowPlan], *, mask_id: int, end_id: int, sampling: Sampling,
            decode: str, threshold: float, block_length: int, cache: bool, vanilla_k: int,
            generator: torch.Generator, device: torch.device, prompt_lengths: list[int] | None = None,
            on_step: StepFn | None = None, stats: DecodeStats | None = None,
            lang_cache: dict[int, _Lang] | None = None) -> list[list[int]]:
    """Fill every run of every plan; returns the filled canvases (one list of ids per row).

    ``lang_cache`` keeps each language's device and CPU tables between calls (keyed by the id of a
    language its owner keeps alive), so a string field's large table is not rebuilt per batch."""
    stats = stats if stats is not None else DecodeStats()
    t0 = time.perf_counter()
    B, L = len(plans), max(len(p.ids) for p in plans)
    x = torch.full((B, L), end_id, dtype=torch.long)
    for b, p in enumerate(plans):
        x[b, : len(p.ids)] = torch.tensor(p.ids)
    x = x.to(device)
    langs: dict[int, _Lang] = lang_cache if lang_cache is not None else {}
    runs: list[_RunState] = []
    for b, p in enumerate(plans):
        for r in p.runs:
            key = id(r.language)
            if key not in langs:
                langs[key] = _Lang(r.language, device)
            runs.append(_RunState(b, r.start, r.width, r.language, key, state=r.language.start))
    if not runs:
        return [row[: len(p.ids)] for row, p in zip(x.tolist(), plans)]
    lo = min(r.start for r in runs)
    hi = max(r.start + r.width for r in runs)
    n_blocks = sampling.num_blocks if sampling.num_blocks > 1 else max(1, math.ceil((hi - lo) / block_length))
    edges = [lo + round(i * (hi - lo) / n_blocks) for i in range(n_blocks + 1)]
    use_cache = decode == "fast" and cache and runner.window_cache and sampling.cfg_scale <= 0
    fast = decode == "fast"
    tau = sampling.threshold if sampling.threshold is not None else threshold
    total = sum(r.width for r in runs)
    cfg = sampling.cfg_scale > 0 and prompt_lengths is not None

    def commit(run: _RunState, token: int) -> None:
        lang = langs[run.lang_id]
        x[run.row, run.start + run.pos] = token
        stats.tokens += 1
        if token == end_id:
            _finish(run)
            return
        run.state = int(lang.next[run.state, lang.index[token]])
        run.pos += 1
        if run.pos == run.width:
            run.done = True
        elif lang.accept[run.state] and not lang.can_continue(run.state, run.width - run.pos - 1):
            _finish(run)  # only EOS may follow: the value is complete

    def _finish(run: _RunState) -> None:
        x[run.row, run.start + run.pos : run.start + run.width] = end_id
        run.pos, run.done = run.width, True

    for bi in range(n_blocks):
        b_lo, b_hi = edges[bi], edges[bi + 1]
        kv = None
        while True:
            ready = [r for r in runs if not r.done and b_lo <= r.start + r.pos < b_hi]
            if not ready:
                break
            at = torch.zeros(B, L, dtype=torch.bool, device=device)
            pos_rows = torch.tensor([r.row for r in ready], device=device)
            pos_cols = torch.tensor([r.start + r.pos for r in ready], device=device)
            at[pos_rows, pos_cols] = True
            # Row-major order of ``at`` is the order logits come back in.
            order = sorted(range(len(ready)), key=lambda i: (ready[i].row, ready[i].start + ready[i].pos))
            ready = [ready[i] for i in order]
            if use_cache:
                if kv is None:
                    logits, kv = runner.prefill(x, at)
                else:
                    logits = runner.window(x, b_lo, b_hi, kv, at)
            elif cfg:
                un = x.clone()
                for b, n in enumerate(prompt_lengths):
                    un[b, :n] = mask_id
                both = runner.full(torch.cat([x, un]), torch.cat([at, at]))
                cond, uncond = both.chunk(2)
                logits = uncond + (sampling.cfg_scale + 1) * (cond - uncond)
            else:
                logits = runner.full(x, at)
            stats.forwards += 1
            logits = logits.to(torch.float64)
            allowed = torch.zeros_like(logits, dtype=torch.bool)
            by_lang: dict[int, list[int]] = {}
            for i, r in enumerate(ready):
                by_lang.setdefault(r.lang_id, []).append(i)
            for key, idx in by_lang.items():
                lang = langs[key].dev
                states = torch.tensor([ready[i].state for i in idx], device=device)
                remaining = torch.tensor([ready[i].width - ready[i].pos - 1 for i in idx], device=device)
                rows = torch.tensor(idx, device=device)
                allowed[rows.unsqueeze(1), lang.cands.unsqueeze(0)] = lang.allowed(states, remaining)
                allowed[rows, end_id] = lang.accept[states]
            logits = logits.masked_fill(~allowed, -math.inf)
            x0 = add_gumbel_noise(logits, sampling.temperature, generator).argmax(-1)
            conf = torch.softmax(logits, -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
            score = conf if sampling.remasking == "low_confidence" else torch.rand(
                len(ready), dtype=torch.float64, generator=generator).to(device)
            chosen = _select(ready, conf, score, fast=fast, tau=tau, k=vanilla_k)
            tokens = x0.tolist()
            for i in chosen:
                commit(ready[i], tokens[i])
            stats.steps += 1
            if on_step is not None:
                left = sum(r.width - r.pos for r in runs if not r.done)
                on_step(StepInfo(stats.steps, bi, n_blocks, left, total))
        del kv
    stats.seconds += time.perf_counter() - t0
    return [row[: len(p.ids)] for row, p in zip(x.tolist(), plans)]


def _select(ready: list[_RunState], conf: torch.Tensor, score: torch.Tensor, *, fast: bool, tau: float,
            k: int) -> list[int]:
    """Indices of the proposals to commit this step (at least one per row with a ready run)."""
    conf_l, score_l = conf.tolist(), score.tolist()
    by_row: dict[int, list[int]] = {}
    for i, r in enumerate(ready):
        by_row.setdefault(r.row, []).append(i)
    chosen = []
    for idx in by_row.values():
        ranked = sorted(idx, key=lambda i: -score_l[i])
        if fast:
            pick = {i for i in idx if conf_l[i] >= tau} | {ranked[0]}
        else:
            pick = set(ranked[:k])
        chosen.extend(sorted(pick))
    return chosen


# ---- the generator -------------------------------------------------------------------------------


class HFGenerator:
    """A frozen HF masked DLM behind the Generator protocol (spec ``hf:<id-or-path>``)."""

    def __init__(self, ref: str, schema: dict, seeds: list[dict], *, config: HFConfig | None = None,
                 device: str | None = None, model: Any = None, tokenizer: Any = None):
        self.ref = ref
        self.spec = f"hf:{ref}"
        self.config = config or HFConfig()
        self.config.check()
        self.schema, self.seeds = schema, seeds
        if len(seeds) < 1:
            raise InputError("the hf: generator needs at least one seed record")
        self.scaffold = Scaffold.build(schema, seeds)
        self.device = torch.device(device if device and device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model, self.tokenizer = model, tokenizer  # injected: tests and benchmarks build their own
        self.facts: dict[str, Any] = {}
        self.tokens: TokenScaffold | None = None
        self.last_stats = DecodeStats()
        self.batch_now: int | None = None  # the batch that fits: config.batch, halved on GPU out-of-memory
        self.oom_halvings = 0
        self._lang_tables: dict[int, _Lang] = {}  # languages live in the token table for good
        self._report: dict[str, Any] = {}
        self._lock = threading.RLock()
        if model is None:
            self.path = resolve_model_path(ref)  # a missing model fails now, before any run starts
            check_remote_code(self.path, self.config.trust_remote_code)  # and so does untrusted code

    def fit(self, on_progress: ProgressFn | None = None) -> dict[str, Any]:
        with self._lock:
            if self._report:
                return self._report
            t0 = time.perf_counter()
            if on_progress:
                on_progress(Progress("load", 0, 1, {"model": self.ref}))
            dtype = _dtype(self.config.dtype, self.device)
            if self.model is None:
                self.model, self.tokenizer, self.facts = load_dlm(self.path, self.device, dtype,
                                                                  trust_remote_code=self.config.trust_remote_code)
            else:
                self.facts = _facts_of(self.model, self.tokenizer)
                self.model = self.model.to(self.device).eval()
            table = build_token_table(self.tokenizer, self.facts["vocab_size"])
            self.tokens = TokenScaffold(self.scaffold, self.seeds, self.tokenizer, table,
                                        mask_id=self.facts["mask_id"], end_id=self.facts["end_id"])
            self.runner = ModelRunner(self.model, shifted=self.facts["shifted_logits"],
                                      window_cache=self.facts["window_cache"])
            self._report = {"generator": self.spec, "trained": False, "device": str(self.device), "dtype": str(dtype),
                            "seconds": round(time.perf_counter() - t0, 2), **self.facts}
            if on_progress:
                on_progress(Progress("load", 1, 1, {"model": self.ref}))
            return self._report

    def check_prompt(self, prompt: Prompt) -> None:
        prompt.sampling.check()
        if prompt.bias:
            raise InputError("the hf: generator does not take choice biases; use pins or forbids")
        for path in list(prompt.pins) + list(prompt.forbid) + list(prompt.ranges):
            # unknown paths fail with the list of fields
            if any(s.role in ("count", "present") for s in self.scaffold.slots_for(path)):
                raise InputError(f"{path}: the hf: generator draws array lengths and optional keys from the "
                                 "seeds; it takes no pins or forbids on them")

    def instruction(self, prompt: Prompt, rng: random.Random) -> str:
        shown = rng.sample(self.seeds, min(self.config.examples, len(self.seeds)))
        task = prompt.text.strip() or "Synthetic records like the examples."
        lines = "\n".join(json.dumps(s, ensure_ascii=False, separators=(",", ":")) for s in shown)
        return (f"{task}\nWrite one new JSON record with the same fields as these examples, "
                f"realistic and not a copy of any of them.\nExamples:\n{lines}")

    def prompt_ids(self, text: str) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            rendered = tok.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                               add_generation_prompt=True)
            return list(tok.encode(rendered, add_special_tokens=False))
        return list(tok.encode(text + "\n", add_special_tokens=True))  # no template: the plain prompt

    def sample(self, prompt: Prompt | None = None, n: int = 32, *, seed: int = 0,
               on_step: StepFn | None = None) -> list[Candidate]:
        prompt = prompt or Prompt()
        self.check_prompt(prompt)
        with self._lock:
            self.fit()
            try:
                return self._sample(prompt, n, seed, on_step)
            finally:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()  # memory stays flat across loop iterations

    def _sample(self, prompt: Prompt, n: int, seed: int, on_step: StepFn | None) -> list[Candidate]:
        assert self.tokens is not None
        rng = random.Random(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        langs = self.tokens.languages(prompt)
        stats = DecodeStats()

        def chunk(start: int, b: int) -> list[Candidate]:
            head = self.prompt_ids(self.instruction(prompt, rng))
            plans = [self.tokens.plan(head, prompt, langs, rng) for _ in range(b)]
            filled = denoise(self.runner, plans, mask_id=self.facts["mask_id"], end_id=self.facts["end_id"],
                             sampling=prompt.sampling, decode=self.config.decode, threshold=self.config.threshold,
                             block_length=self.config.block_length, cache=self.config.cache,
                             vanilla_k=self.config.vanilla_k, generator=gen, device=self.device,
                             prompt_lengths=[len(head)] * b, on_step=on_step, stats=stats,
                             lang_cache=self._lang_tables)
            out = []
            for plan, row in zip(plans, filled):
                text, record, error = self.tokens.read(plan, row)
                out.append(Candidate(text=text, record=record, error=error))
            return out

        out, self.batch_now = in_batches(n, self.batch_now or self.config.batch, chunk,
                                         what=f"{self.spec}", on_halve=self._halved)
        self.last_stats = stats
        return out

    def _halved(self, size: int) -> None:
        log.warning("%s: out of GPU memory, batch halved to %d", self.spec, size)
        self.oom_halvings += 1

    def describe(self) -> dict[str, Any]:
        out = {"spec": self.spec, "config": asdict(self.config), **self._report}
        if self.oom_halvings:
            out.update(batch_now=self.batch_now, oom_halvings=self.oom_halvings)
        return out


def _facts_of(model: Any, tokenizer: Any, *, end_id: int | None = None, shims: list[str] | None = None) -> dict[str, Any]:
    """What decoding needs to know about a loaded model: special ids, logit layout, cache support."""
    config = model.config
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise InputError("the model has no mask token: not a masked diffusion LM")
    if end_id is None:
        end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    model_type = str(getattr(config, "model_type", "")).lower()
    return {"model_type": model_type, "mask_id": int(mask_id), "end_id": int(end_id),
            "shifted_logits": model_type in SHIFTED_MODEL_TYPES,
            "window_cache": bool(getattr(model, "supports_window_cache", False)),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "vocab_size": _vocab_size(model),
            "params": sum(p.numel() for p in model.parameters()), "shims": shims or []}



def _vocab_size(model: Any) -> int:
    """Rows of the output head (may exceed the tokenizer's vocabulary: padded for GPU efficiency)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)
