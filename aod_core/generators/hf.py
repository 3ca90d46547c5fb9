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
far); different runs and different rows decode in parallel. Fields the prompt steers (ranges,
forbidden choices) are decoded before the blocks, so the rest is written knowing them; a field the
seeds fix by another waits for it and is then written from the seeds' map; a pinned or steered
dependent forbids the determinant values the seeds map elsewhere (``canvas/conditioning.py``; the
seeds' keys are left to the judge's near-copy check here). The proposal, classifier-free guidance
and the choice of commits are the canvas sampler's own functions (``diffusion/sampler.py``), so both
loops decide alike; finding and loading the model is ``hf_load.py``.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch

from aod_core.canvas.conditioning import field_slots, implied_forbids, steered_slots
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import canonical
from aod_core.canvas.token_scaffold import RowPlan, SlotLanguage, TokenScaffold, build_token_table
from aod_core.data.dependencies import Dependencies, DependencySettings, detect, schema_order
from aod_core.diffusion.sampler import StepInfo, commit_order, guided_logits, propose, select_commits
from aod_core.errors import InputError
from aod_core.generators.base import Progress, ProgressFn, StepFn, in_batches, option
from aod_core.generators.embedded import pick_device
from aod_core.generators.hf_load import check_remote_code, facts_of, load_dlm, pick_dtype, resolve_model_path
from aod_core.records import Candidate, canonical_json

log = logging.getLogger(__name__)


@dataclass
class HFConfig:
    batch: int = option(
        32, "Records per forward batch; lower it when the GPU runs out of memory.", minimum=1, maximum=1024
    )
    decode: Literal["fast", "vanilla"] = option(
        "fast",
        "fast: threshold commits with the window cache; vanilla: LLaDA's fixed tokens per step.",
        choices=("fast", "vanilla"),
    )
    threshold: float = option(
        0.9,
        "fast: commit every proposal at least this confident (a prompt may override).",
        minimum=0.01,
        maximum=1.0,
        step=0.05,
    )
    block_length: int = option(32, "Canvas positions per semi-autoregressive block.", minimum=1, maximum=1024)
    cache: bool = True  # fast: reuse keys/values outside the block (models that support it)
    vanilla_k: int = 1  # vanilla: tokens committed per row per step
    examples: int = option(3, "Seed records shown in the prompt.", minimum=0, maximum=20)
    dtype: str = option(
        "auto", "auto: bfloat16 on CUDA, float32 on CPU.", choices=("auto", "float32", "bfloat16", "float16")
    )
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
    slot: int = -1  # the scaffold slot's start: what conditioning names a field by
    first: bool = False  # a steered field: decoded before every other run of its row


class _LanguageTables:
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


@dataclass
class Conditions:
    """What ``denoise`` keeps of the seeds' dependencies and the prompt's steering: the slots decided
    first, and for each (parent slot, child slot) the seeds' map of values (``canvas/conditioning.py``
    is the canvas sampler's counterpart)."""

    first: frozenset[int] = frozenset()
    edges: tuple[tuple[int, int, dict[str, Any]], ...] = ()
    parents: tuple[tuple[int, int], ...] = ()  # (parent slot, child slot): the child waits for its parent
    encode: Any = None  # value -> token ids of its JSON text (the token scaffold's)
    read: Any = None  # token ids -> JSON value, or raises ValueError

    def waits(self, runs: list[_RunState]) -> dict[int, list[_RunState]]:
        """Per run (by id), the parent runs of its row it waits for."""
        by = {(r.row, r.slot): r for r in runs}
        out: dict[int, list[_RunState]] = {}
        for parent, child in self.parents:
            for r in runs:
                if r.slot == child and (r.row, parent) in by and not r.first:
                    out.setdefault(id(r), []).append(by[(r.row, parent)])
        return out


@torch.no_grad()
def denoise(
    runner: ModelRunner,
    plans: list[RowPlan],
    *,
    mask_id: int,
    end_id: int,
    sampling: Sampling,
    decode: str,
    threshold: float,
    block_length: int,
    cache: bool,
    vanilla_k: int,
    generator: torch.Generator,
    device: torch.device,
    prompt_lengths: list[int] | None = None,
    on_step: StepFn | None = None,
    stats: DecodeStats | None = None,
    lang_cache: dict[int, _LanguageTables] | None = None,
    conditions: Conditions | None = None,
) -> list[list[int]]:
    """Fill every run of every plan; returns the filled canvases (one list of ids per row).

    ``lang_cache`` keeps each language's device and CPU tables between calls (keyed by the id of a
    language its owner keeps alive), so a string field's large table is not rebuilt per batch.
    ``conditions``: steered runs are decoded first (before the blocks), a dependent run waits for its
    parent and is then written from the seeds' map when its parent's value is known there."""
    stats = stats if stats is not None else DecodeStats()
    cond = conditions or Conditions()
    t0 = time.perf_counter()
    B, L = len(plans), max(len(p.ids) for p in plans)
    x = torch.full((B, L), end_id, dtype=torch.long)
    for b, p in enumerate(plans):
        x[b, : len(p.ids)] = torch.tensor(p.ids)
    x = x.to(device)
    langs: dict[int, _LanguageTables] = lang_cache if lang_cache is not None else {}
    runs: list[_RunState] = []
    for b, p in enumerate(plans):
        for r in p.runs:
            key = id(r.language)
            if key not in langs:
                langs[key] = _LanguageTables(r.language, device)
            start = r.slot.start
            runs.append(
                _RunState(
                    b, r.start, r.width, r.language, key, state=r.language.start, slot=start, first=start in cond.first
                )
            )
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
    waits = cond.waits(runs)
    by_slot = {(r.row, r.slot): r for r in runs}

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
        children = [(c, m) for p, c, m in cond.edges if p == run.slot and (run.row, c) in by_slot]
        if children:
            row = x[run.row, run.start : run.start + run.width].tolist()
            try:
                value = cond.read(row[: row.index(end_id)] if end_id in row else row)
            except ValueError:
                return
            for child, mapping in children:
                _write(by_slot[(run.row, child)], mapping.get(canonical_json(value), _UNKNOWN))

    def _write(child: _RunState, value: Any) -> None:
        """The child's value from the seeds' map, token by token, when the map knows the parent's
        value and the child's language takes it (else the model writes it)."""
        if child.done or child.pos or value is _UNKNOWN:
            return
        toks = cond.encode(value)
        lang = langs[child.lang_id]
        state = child.state
        for t in toks:
            state = int(lang.next[state, lang.index[t]]) if t in lang.index else -1
            if state < 0:
                return
        if len(toks) > child.width or not lang.accept[state]:
            return
        for t in toks:
            if not child.done:
                commit(child, t)
        if not child.done:
            _finish(child)

    def step(ready: list[_RunState], bi: int, kv: Any, window: tuple[int, int] | None) -> Any:
        at = torch.zeros(B, L, dtype=torch.bool, device=device)
        pos_rows = torch.tensor([r.row for r in ready], device=device)
        pos_cols = torch.tensor([r.start + r.pos for r in ready], device=device)
        at[pos_rows, pos_cols] = True
        # Row-major order of ``at`` is the order logits come back in.
        order = sorted(range(len(ready)), key=lambda i: (ready[i].row, ready[i].start + ready[i].pos))
        ready = [ready[i] for i in order]
        if window is not None:
            if kv is None:
                logits, kv = runner.prefill(x, at)
            else:
                logits = runner.window(x, window[0], window[1], kv, at)
        elif cfg:
            un = x.clone()
            for b, n in enumerate(prompt_lengths):
                un[b, :n] = mask_id
            logits = guided_logits(lambda both: runner.full(both, torch.cat([at, at])), x, un, sampling.cfg_scale)
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
        x0, conf = propose(logits, sampling.temperature, generator)
        score = commit_order(conf, sampling.remasking, generator)
        chosen = _chosen(at, conf, score, fast=fast, tau=tau, k=vanilla_k)
        tokens = x0.tolist()
        for i in chosen:
            commit(ready[i], tokens[i])
        stats.steps += 1
        if on_step is not None:
            left = sum(r.width - r.pos for r in runs if not r.done)
            on_step(StepInfo(stats.steps, bi, n_blocks, left, total))
        return kv

    def waiting(r: _RunState) -> bool:
        return any(not p.done for p in waits.get(id(r), ()))

    for parent, child, mapping in cond.edges:  # parents the prompt pins: their children now
        for b, p in enumerate(plans):
            if parent in p.fixed and (b, child) in by_slot:
                _write(by_slot[(b, child)], mapping.get(canonical_json(p.fixed[parent]), _UNKNOWN))
    while True:  # steered fields first, over the whole canvas
        ready = [r for r in runs if r.first and not r.done]
        if not ready:
            break
        step(ready, 0, None, None)
    for bi in range(n_blocks):
        b_lo, b_hi = edges[bi], edges[bi + 1]
        kv = None
        while True:
            ready = [r for r in runs if not r.done and b_lo <= r.start + r.pos < b_hi and not waiting(r)]
            if not ready:
                break
            kv = step(ready, bi, kv, (b_lo, b_hi) if use_cache else None)
        del kv
    while True:  # what waited for a parent decoded in a later block
        ready = [r for r in runs if not r.done and not waiting(r)] or [r for r in runs if not r.done]
        if not ready:
            break
        step(ready, n_blocks - 1, None, None)
    stats.seconds += time.perf_counter() - t0
    return [row[: len(p.ids)] for row, p in zip(x.tolist(), plans)]


_UNKNOWN = object()  # a parent value the seeds' map does not know


def _chosen(at: torch.Tensor, conf: torch.Tensor, score: torch.Tensor, *, fast: bool, tau: float, k: int) -> list[int]:
    """Indices of the proposals to commit this step (at least one per row with a ready run): the
    sampler's ``select_commits`` on the canvas grid, where ``at`` [B, L] marks the ready runs'
    positions and ``conf``/``score`` hold one value per ready run in ``at``'s row-major order."""
    dense_conf = torch.zeros(at.shape, dtype=conf.dtype, device=conf.device)
    dense_conf[at] = conf
    dense_score = torch.full(at.shape, -math.inf, dtype=score.dtype, device=score.device)
    dense_score[at] = score
    select = select_commits(at, dense_conf, dense_score, threshold=tau if fast else None, k=k, stable=True)
    return select[at].nonzero().squeeze(1).tolist()


# ---- the generator -------------------------------------------------------------------------------


class HFGenerator:
    """A frozen HF masked DLM behind the Generator protocol (spec ``hf:<id-or-path>``)."""

    def __init__(
        self,
        ref: str,
        schema: dict,
        seeds: list[dict],
        *,
        config: HFConfig | None = None,
        device: str | None = None,
        model: Any = None,
        tokenizer: Any = None,
        dependencies: DependencySettings | None = None,
    ):
        self.ref = ref
        self.dependency_settings = dependencies or DependencySettings()
        self._dependencies: Dependencies | None = None
        self.spec = f"hf:{ref}"
        self.config = config or HFConfig()
        self.config.check()
        self.schema, self.seeds = schema, seeds
        if len(seeds) < 1:
            raise InputError("the hf: generator needs at least one seed record")
        self.scaffold = Scaffold.build(schema, seeds)
        self.device = pick_device(device)
        self.model, self.tokenizer = model, tokenizer  # injected: tests and benchmarks build their own
        self.facts: dict[str, Any] = {}
        self.tokens: TokenScaffold | None = None
        self.last_stats = DecodeStats()
        self.batch_now: int | None = None  # the batch that fits: config.batch, halved on GPU out-of-memory
        self.oom_halvings = 0
        self._lang_tables: dict[int, _LanguageTables] = {}  # languages live in the token table for good
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
            dtype = pick_dtype(self.config.dtype, self.device)
            if self.model is None:
                self.model, self.tokenizer, self.facts = load_dlm(
                    self.path, self.device, dtype, trust_remote_code=self.config.trust_remote_code
                )
            else:
                self.facts = facts_of(self.model, self.tokenizer)
                self.model = self.model.to(self.device).eval()
            table = build_token_table(self.tokenizer, self.facts["vocab_size"])
            self.tokens = TokenScaffold(
                self.scaffold,
                self.seeds,
                self.tokenizer,
                table,
                mask_id=self.facts["mask_id"],
                end_id=self.facts["end_id"],
            )
            self.runner = ModelRunner(
                self.model, shifted=self.facts["shifted_logits"], window_cache=self.facts["window_cache"]
            )
            self._report = {
                "generator": self.spec,
                "trained": False,
                "device": str(self.device),
                "dtype": str(dtype),
                "seconds": round(time.perf_counter() - t0, 2),
                **self.facts,
            }
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
                raise InputError(
                    f"{path}: the hf: generator draws array lengths and optional keys from the seeds; it takes no pins or forbids on them"
                )

    def instruction(self, prompt: Prompt, rng: random.Random) -> str:
        shown = rng.sample(self.seeds, min(self.config.examples, len(self.seeds)))
        task = prompt.text.strip() or "Synthetic records like the examples."
        lines = "\n".join(json.dumps(s, ensure_ascii=False, separators=(",", ":")) for s in shown)
        return f"{task}\nWrite one new JSON record with the same fields as these examples, realistic and not a copy of any of them.\nExamples:\n{lines}"

    def prompt_ids(self, text: str) -> list[int]:
        tok = self.tokenizer
        if getattr(tok, "chat_template", None):
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
            )
            return list(tok.encode(rendered, add_special_tokens=False))
        return list(tok.encode(text + "\n", add_special_tokens=True))  # no template: the plain prompt

    def sample(self, prompt: Prompt | None = None, n: int = 32, *, seed: int = 0, on_step=None) -> list[Candidate]:
        prompt = prompt or Prompt()
        self.check_prompt(prompt)
        with self._lock:
            self.fit()
            try:
                return self._sample(prompt, n, seed, on_step)
            finally:
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()  # memory stays flat across loop iterations

    @property
    def dependencies(self) -> Dependencies:
        """The seeds' dependencies this generator keeps while sampling (``data/dependencies.py``)."""
        if self._dependencies is None:
            self._dependencies = detect(self.seeds, self.dependency_settings, schema_order(self.schema))
        return self._dependencies

    def conditions(self, prompt: Prompt) -> tuple[Prompt, Conditions]:
        """The prompt with the determinant values its edits on dependents rule out forbidden, and
        what ``denoise`` keeps: steered fields first, dependents written from the seeds' map."""
        assert self.tokens is not None
        deps, sc = self.dependencies, self.scaffold
        implied = implied_forbids(sc, prompt, deps)
        if implied:
            prompt = Prompt.from_dict(prompt.to_dict())
            for path, values in implied.items():
                have = prompt.forbid.setdefault(path, [])
                have.extend(v for v in values if v not in have)
        edges = []
        for d in deps.fds:  # any decided determinant writes the dependents not yet decided
            parent = [s.start for s in field_slots(sc, d.determinant) if s.role in ("enum", "")]
            child = [s.start for s in field_slots(sc, d.dependent) if s.role in ("enum", "")]
            if len(parent) == 1 and len(child) == 1:
                edges.append((parent[0], child[0], d.mapping))
        parents = []
        for d in deps.generation():
            pair = [
                next((s.start for s in field_slots(sc, f) if s.role in ("enum", "")), None)
                for f in (d.determinant, d.dependent)
            ]
            if None not in pair:
                parents.append((pair[0], pair[1]))
        tokens, table = self.tokens, self.tokens.table
        return prompt, Conditions(
            first=frozenset(s.start for s in steered_slots(sc, prompt)),
            edges=tuple(edges),
            parents=tuple(parents),
            encode=lambda value: tokens.encode_text(canonical(value)),
            read=lambda ids: json.loads(table.text(ids)),
        )

    def _sample(self, prompt: Prompt, n: int, seed: int, on_step: StepFn | None) -> list[Candidate]:
        assert self.tokens is not None
        rng = random.Random(seed)
        gen = torch.Generator(device="cpu").manual_seed(seed)
        prompt, conditions = self.conditions(prompt)
        langs = self.tokens.languages(prompt)
        stats = DecodeStats()

        def chunk(start: int, b: int) -> list[Candidate]:
            head = self.prompt_ids(self.instruction(prompt, rng))
            plans = [self.tokens.plan(head, prompt, langs, rng) for _ in range(b)]
            filled = denoise(
                self.runner,
                plans,
                mask_id=self.facts["mask_id"],
                end_id=self.facts["end_id"],
                sampling=prompt.sampling,
                decode=self.config.decode,
                threshold=self.config.threshold,
                block_length=self.config.block_length,
                cache=self.config.cache,
                vanilla_k=self.config.vanilla_k,
                generator=gen,
                device=self.device,
                prompt_lengths=[len(head)] * b,
                on_step=on_step,
                stats=stats,
                lang_cache=self._lang_tables,
                conditions=conditions,
            )
            out = []
            for plan, row in zip(plans, filled):
                text, record, error = self.tokens.read(plan, row)
                out.append(Candidate(text=text, record=record, error=error))
            return out

        out, self.batch_now = in_batches(
            n, self.batch_now or self.config.batch, chunk, what=f"{self.spec}", on_halve=self._halved
        )
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


def build(
    target: str, schema: Any, seeds: list[dict], *, config=None, device=None, dependencies=None, **_: Any
) -> HFGenerator:
    """The registry's builder for ``hf:<id-or-path>`` (``aod_core.generators``)."""
    return HFGenerator(target, schema.resolved, seeds, config=config, device=device, dependencies=dependencies)
