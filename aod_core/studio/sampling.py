"""The Sample page's one-off "fit & sample": which generator a spec and the page's settings build,
fitting it on the seeds and drawing a batch with progress as (fraction, label), and what the batch
is worth (per-record checks, batch figures, JSONL downloads).

Generators here are built from hashable texts (:func:`generator_inputs`), so a page can cache one
per dataset and settings and share it between sessions; fitted weights are cached on disk by
content hash as well.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aod_core.canvas.prompt import Prompt
from aod_core.data.dependencies import Dependencies, DependencySettings, detect, schema_order
from aod_core.data.schema import LoadedSchema, parse_schema
from aod_core.data.seeds import Dataset
from aod_core.diffusion.sampler import StepInfo
from aod_core.errors import InputError
from aod_core.eval.copying import copying
from aod_core.eval.metrics import batch_summary, duplicates, exact_copies
from aod_core.generators import GENERATORS, EmbeddedConfig, GeneratorKind, config_from_options, kind_of, load_generator
from aod_core.generators.base import Generator, Progress
from aod_core.generators.embedded import default_cache_dir
from aod_core.records import Candidate
from aod_core.studio.markup import md, md_code
from aod_core.studio.settings import generator_options

# ---- generator --------------------------------------------------------------------------------


def generator_inputs(dataset: Dataset) -> tuple[str, str]:
    """(schema JSON text, seeds JSON text): hashable content that identifies a generator's inputs.

    Key order is kept, not sorted: property order is the scaffold's field order (and the raw-text
    ablation learns the seeds' text as written).
    """
    return (json.dumps(dataset.schema.raw, ensure_ascii=False), json.dumps(dataset.seeds.records, ensure_ascii=False))


def build_generator(
    schema_text: str,
    seeds_text: str,
    *,
    scaffold: bool = True,
    train_steps: int | None = None,
    cache_dir: str | None = None,
    string_modes: Mapping[str, str] | None = None,
    options: str = "",
    dependencies: str = "",
) -> Generator:
    """The embedded generator (not fitted) for the texts :func:`generator_inputs` returns; ``options``
    is :func:`spec_options_text` (the Models page's settings for it, JSON); ``dependencies`` the Design
    page's dependency settings (JSON)."""
    schema = parse_schema(json.loads(schema_text), "<schema>")
    seeds = json.loads(seeds_text)
    opts = {**json.loads(options or "{}"), "string_modes": dict(string_modes or {})}
    cfg = config_from_options(EmbeddedConfig, opts, "embedded")
    cfg.check()
    if train_steps is not None:
        if train_steps < 1:
            raise InputError(f"training steps must be >= 1, got {train_steps}")
        cfg.train_steps = int(train_steps)
    deps = DependencySettings.from_dict(json.loads(dependencies or "{}"))
    return load_generator(
        "embedded", schema, seeds, scaffold=scaffold, config=cfg, cache_dir=cache_dir, dependencies=deps
    )


def default_train_steps(spec: str = "embedded") -> int:
    """The generator kind's own default number of training steps (embedded, or difflm's VAE)."""
    kind = kind_of(spec)
    cls = kind.options_class() if kind is not None and kind.trains else None
    return (cls or EmbeddedConfig)().train_steps


def is_difflm(spec: str | None) -> bool:
    """Whether a generator spec names DiffLM (``difflm`` or ``difflm:<causal LM>``)."""
    return generator_kind(spec) == "difflm"


def generator_kind(spec: str | None) -> str:
    """What the Sample page shows for a Models-page generator spec (the registry's ``sample_view``):
    embedded, difflm or hf (a pretrained DLM); a kind with no view of its own (``ar:``) or a spec
    naming no kind is sampled as the embedded DLM there."""
    kind = kind_of(spec)
    return kind.sample_view if kind is not None else "embedded"


#: What the Sample page says about each view (the registry's ``sample_view``) after the dataset line.
SAMPLE_CAPTIONS = {
    "difflm": "DiffLM, a VAE over the seeds decoded by a frozen language model, sampled from its latent diffusion "
    "model. It reads no prompt text and no pins or forbids; temperature applies.",
    "hf": "a pretrained diffusion LM infilling the token-level scaffold, with a fixed prompt.",
    "embedded": "the diffusion model alone with a fixed prompt (the static-prompt baseline).",
}


def sample_kind(spec: str | None) -> GeneratorKind:
    """The registered kind the Sample page samples for a Models-page spec: the spec's own kind when
    it has a view there (``hf:``, ``difflm``), else the embedded DLM."""
    view = generator_kind(spec)
    kind = kind_of(spec) if view != "embedded" else None
    return kind if kind is not None else GENERATORS["embedded"]


def sample_caption(spec: str, label: str, n_seeds: int) -> str:
    """The Sample page's caption (Markdown): the dataset, and the generator when it is not the embedded one."""
    kind = sample_kind(spec)
    where = f"generator {md_code(spec)} (from Models & settings): " if kind.sample_view != "embedded" else ""
    return f"Dataset: **{md(label)}** · {n_seeds} seeds · {where}{SAMPLE_CAPTIONS[kind.sample_view]}"


def build_spec_generator(
    schema_text: str,
    seeds_text: str,
    *,
    spec: str = "difflm",
    options: str = "",
    train_steps: int | None = None,
    cache_dir: str | None = None,
    dependencies: str = "",
) -> Generator:
    """The generator a spec names (not fitted) for the texts :func:`generator_inputs` returns;
    ``options`` is :func:`spec_options_text` (the Models page's settings for it, JSON) and
    ``train_steps`` applies to generators that train (DiffLM); ``dependencies`` as for
    :func:`build_generator`."""
    opts = json.loads(options or "{}")
    if train_steps is not None and is_difflm(spec):
        if train_steps < 1:
            raise InputError(f"training steps must be >= 1, got {train_steps}")
        opts["train_steps"] = int(train_steps)
    schema = parse_schema(json.loads(schema_text), "<schema>")
    deps = DependencySettings.from_dict(json.loads(dependencies or "{}"))
    return load_generator(spec, schema, json.loads(seeds_text), options=opts, cache_dir=cache_dir, dependencies=deps)


def latent_figure(gen: Generator, n: int, seed: int) -> tuple[Any, str]:
    """DiffLM's latent space for the Sample page: (plotly figure, caption) of the seeds' latents and
    the ``n`` latents a ``sample(..., n, seed=seed)`` call decodes first."""
    from aod_core.runs.charts import latent_projection

    view = gen.latent_view(n, seed)  # type: ignore[attr-defined]
    return latent_projection(view.seeds, view.sampled, seed_records=view.seed_records)


def model_cache_dir() -> str:
    """Where fitted embedded models are cached (``AOD_CACHE_DIR`` or ~/.cache/aod-studio)."""
    return str(default_cache_dir())


def fit_progress(p: Progress) -> tuple[float, str]:
    """(fraction in [0, 1], label) for a progress bar while fitting."""
    frac = min(1.0, p.done / p.total) if p.total else 1.0
    if p.info.get("cached"):
        return 1.0, "Model loaded from cache"
    if p.stage == "load":
        return frac, "Loading the generator model"
    loss = p.info.get("loss")
    extra = f" · loss {loss:.3f}" if isinstance(loss, (int, float)) else ""
    part = f" ({p.info['stage']})" if p.info.get("stage") else ""  # e.g. difflm's VAE, then latent diffusion
    return frac, f"Fitting{part}: step {p.done}/{p.total}{extra}"


class SampleProgress:
    """Turns the sampler's per-step reports into one fraction over all of a request's batches."""

    def __init__(self, n: int, batch_size: int) -> None:
        self.batches = max(1, math.ceil(n / max(1, batch_size)))
        self.batch = -1

    def __call__(self, s: StepInfo) -> tuple[float, str]:
        if s.step == 1 or self.batch < 0:
            self.batch += 1
        batch = min(self.batch, self.batches - 1)
        within = (s.total - s.masked) / s.total if s.total else 1.0
        frac = min(1.0, (batch + within) / self.batches)
        part = f" · batch {batch + 1}/{self.batches}" if self.batches > 1 else ""
        return frac, f"Sampling: step {s.step}{part}"


@dataclass
class SampleResult:
    """One "fit & sample" request and what it produced."""

    candidates: list[Candidate]
    prompt: Prompt
    n: int
    seed: int
    scaffold: bool
    fit_report: dict[str, Any]
    fit_seconds: float
    sample_seconds: float
    dataset_label: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    summary: SampleSummary | None = None  # filled by sample_summary() once, kept for reruns
    latent: tuple[Any, str] | None = None  # DiffLM only: latent_figure() of this request, kept for reruns


def fit_and_sample(
    gen: Generator,
    prompt: Prompt,
    n: int,
    *,
    seed: int = 0,
    on_fit: Callable[[float, str], None] | None = None,
    on_step: Callable[[float, str], None] | None = None,
) -> SampleResult:
    """Fit (or load) the model, then draw ``n`` candidates; progress goes to ``on_fit``/``on_step``
    as (fraction, label). Prompt problems are reported before the model is fitted."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InputError(f"number of records must be >= 1, got {n}")
    gen.check_prompt(prompt)
    t0 = time.perf_counter()
    report = gen.fit(on_progress=(lambda p: on_fit(*fit_progress(p))) if on_fit else None)
    fit_seconds = time.perf_counter() - t0
    from aod_core.agents.compiler import calibrate, needs_calibration

    if needs_calibration(prompt, getattr(gen, "spec", "")):  # "mostly X": measure the bias on samples
        if on_step:
            on_step(0.0, "Measuring the compiled shares on samples")
        prompt = calibrate(prompt, lambda q, k, s: gen.sample(q, k, seed=s), spec=getattr(gen, "spec", ""), seed=seed)
    tracker = SampleProgress(n, getattr(getattr(gen, "config", None), "sample_batch", n))
    t1 = time.perf_counter()
    cands = gen.sample(prompt, n, seed=seed, on_step=(lambda s: on_step(*tracker(s))) if on_step else None)
    sample_seconds = time.perf_counter() - t1
    return SampleResult(
        candidates=cands,
        prompt=prompt,
        n=n,
        seed=seed,
        scaffold=getattr(gen, "scaffold", None) is not None,
        fit_report=dict(report or {}),
        fit_seconds=fit_seconds,
        sample_seconds=sample_seconds,
    )


# ---- results ----------------------------------------------------------------------------------


@dataclass
class SampleSummary:
    rows: list[dict[str, Any]]  # one per candidate
    batch: dict[str, float | int]  # metrics.batch_summary, plus the dependency violation rate
    copying: dict[str, Any] = field(default_factory=dict)  # eval/copying.copying of the parsed records


def sample_summary(
    candidates: Sequence[Candidate],
    schema: LoadedSchema,
    seeds: Sequence[Any],
    *,
    holdout: Sequence[Any] | None = None,
    dependencies: Dependencies | None = None,
) -> SampleSummary:
    """Each candidate with its JSON text and exact checks, plus the batch figures.

    ``error`` is why a candidate failed: the decode/parse error, or its first schema error as
    ``path: message``. ``seed_copy`` and ``duplicate`` use :mod:`aod_core.eval.metrics` (canonical JSON);
    the first occurrence of a repeated record is not a duplicate. ``dependency`` is the first seed
    dependency the record breaks (``dependencies``); the copying figures compare the batch's distances
    to the seeds with real records' (``holdout``, else the seeds out of fold).
    """
    from aod_core.agents.judge.checks import dependency_errors

    deps = dependencies if dependencies is not None else detect(seeds, order=schema_order(schema.resolved))
    parsed = [c for c in candidates if c.parsed]
    copies = iter(exact_copies((c.record for c in parsed), seeds))
    dupes = iter(duplicates(c.record for c in parsed))
    rows = []
    for i, c in enumerate(candidates, 1):
        errors = schema.validate(c.record) if c.parsed else []
        if c.parsed:
            copy, dup = next(copies), next(dupes)
        else:
            copy = dup = False
        if not c.parsed:
            error = c.error or "not parsed"
        elif errors:
            more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
            error = f"{errors[0][0]}: {errors[0][1]}{more}"
        else:
            error = ""
        broken = dependency_errors(deps, c.record) if c.parsed else []
        rows.append(
            {
                "#": i,
                "json": c.text if c.text is not None else "",
                "parsed": c.parsed,
                "schema_valid": c.parsed and not errors,
                "seed_copy": copy,
                "duplicate": dup,
                "dependency": broken[0] if broken else "",
                "error": error,
            }
        )
    batch = batch_summary(candidates, schema, seeds)
    batch["dependency_violation_rate"] = sum(bool(r["dependency"]) for r in rows) / len(rows) if rows else 0.0
    figures = copying([c.record for c in parsed], seeds, holdout, deps)
    return SampleSummary(rows, batch, figures)


def problem_rows(summary: SampleSummary) -> list[dict[str, Any]]:
    """The summary's rows of candidates with a problem: an error, a broken dependency, a seed copy or
    a duplicate."""
    return [r for r in summary.rows if r["error"] or r["seed_copy"] or r["duplicate"] or r.get("dependency")]


def records_jsonl(candidates: Iterable[Candidate], *, only_valid_for: LoadedSchema | None = None) -> str:
    """Parsed records, one JSON object per line (only schema-valid ones when a schema is given)."""
    lines = []
    for c in candidates:
        if not c.parsed or (only_valid_for is not None and not only_valid_for.is_valid(c.record)):
            continue
        lines.append(json.dumps(c.record, ensure_ascii=False))
    return "".join(line + "\n" for line in lines)


def spec_options_text(settings: Mapping[str, Any], kind: GeneratorKind) -> str:
    """The Models page's settings for ``kind`` (``settings.generator_options``) as JSON text, the form
    the Sample page's generator cache is keyed by; ``{}`` when the Models page names another kind
    (``ar:`` is sampled as the embedded DLM)."""
    if kind_of(str(settings.get("generator") or "")) is not kind:
        return "{}"
    return json.dumps(generator_options(settings, kind), sort_keys=True)
