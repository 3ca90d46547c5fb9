"""``aod bench``: AoD against its baselines on one dataset, same seed, same budget of records.

Methods (docs/CLI.md):

* ``static_dlm``: the diffusion generator with the initial prompt, no agents.
* ``ar_only``: the judge's chat model writes the records itself (``generators/ar.py``).
* ``aod``: the full loop (``iterations`` × ``batch`` candidates).
* ``aod_scalar``: the loop with the optimizer shown only the reward history, no verbal feedback.
* ``aod_no_scaffold``: the loop over the raw-text ablation of the embedded DLM (no scaffold).
* ``difflm``: DiffLM (``generators/difflm.py``: VAE + latent diffusion + the frozen SmolLM2 decoder
  steered by soft prompts) sampled statically exactly like ``static_dlm`` — same budget, same per-batch
  sampling seeds, same judge — so the two rows compare the embedded DLM with DiffLM. The generator spec
  and its settings are ``BenchConfig.difflm`` / ``difflm_config`` (default: ``difflm``, its own
  defaults; ``--generator`` and ``--gen-opt`` apply to the DLM methods only). Not in the default
  methods: fitting it takes 8–13 minutes on 2 CPU cores. Its row also holds
  ``prefilter_schema_valid_rate``: the share of DiffLM's first draws that were schema-valid, before
  the generator redrew the invalid ones (its paper's filtering; see ``generators/difflm.py``).

Every method produces ``iterations × batch`` candidates, and every candidate is judged by the same
judge (same chat model, rubric and seed) in batches of ``batch`` with the same exact checks the loop
uses, so task success means the same thing for all of them. The metrics are the Data Auditor suite
(``audit.py``) over each method's candidates, plus TSR and wall time (generation + judging; for the
AoD methods, the whole loop including its probe batches and the optimizer). Outputs in ``out``:
``results.json``, ``results.md`` and ``charts.html``; AoD run folders under ``runs/``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from aod_core.agents.compiler import calibrate, compiler_for, needs_calibration, should_compile
from aod_core.agents.judge import Judge, JudgeSettings, passed_checks, verdict_row
from aod_core.canvas.prompt import Prompt
from aod_core.chat import load_chat_model
from aod_core.chat.base import ChatModel
from aod_core.data.dependencies import DependencySettings
from aod_core.data.seeds import Dataset, load_dataset
from aod_core.errors import InputError
from aod_core.files import atomic_write_text
from aod_core.generators import load_generator
from aod_core.generators.ar import ARGenerator
from aod_core.generators.base import Generator
from aod_core.records import Candidate, canonical_json
from aod_core.runs.loop import LoopSettings
from aod_core.runs.setup import RunConfig, check_settings, create_run_from, open_loop
from aod_core.runs.store import RunStore
from aod_core.secrets import scrub

METHODS = ("static_dlm", "ar_only", "aod", "aod_scalar", "aod_no_scaffold", "difflm")
DEFAULT_METHODS = ("static_dlm", "ar_only", "aod", "aod_scalar")
HEADLINE = ("task_success_rate", "schema_valid_rate", "field_overlap", "distinct_2", "dcr_median", "seconds")


_RUN = RunConfig()  # a bench's models and loop budget default to a run's: one source for each


@dataclass
class BenchConfig:
    """One comparison: which methods, and the run settings every method shares (defaults: a run's,
    except a shorter budget of iterations)."""

    methods: tuple[str, ...] = DEFAULT_METHODS
    seed: int = _RUN.loop.seed
    iterations: int = 3
    batch: int = _RUN.loop.batch
    proposals: int = _RUN.loop.proposals
    repairs: int = _RUN.loop.repairs
    confirm: bool = _RUN.loop.confirm
    probe: int = _RUN.loop.probe
    generator: str = _RUN.generator
    judge: str = _RUN.judge
    optimizer: str = _RUN.optimizer
    task: str = _RUN.task
    rubric: str = _RUN.rubric
    device: str | None = _RUN.device
    generator_config: dict[str, Any] = field(default_factory=dict)
    difflm: str = "difflm"  # the generator spec of the ``difflm`` method
    difflm_config: dict[str, Any] = field(default_factory=dict)
    judge_settings: JudgeSettings = field(default_factory=JudgeSettings)
    dependencies: DependencySettings = field(default_factory=DependencySettings)

    @property
    def budget(self) -> int:
        return self.iterations * self.batch

    def check(self) -> None:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise InputError(f"unknown method(s) {', '.join(unknown)} (use {', '.join(METHODS)})")
        if not self.methods:
            raise InputError("no methods given")
        if self.iterations < 1 or self.batch < 1 or self.probe < 1 or self.proposals < 0:
            raise InputError("--iterations, --batch and --probe must be >= 1, --proposals >= 0")
        check_settings(LoopSettings(repairs=self.repairs))
        self.judge_settings.check()
        self.dependencies.check()


def _judge_rows(judge: Judge, cands: list[Candidate], batch: int) -> list[dict[str, Any]]:
    """Judge in loop-sized batches with the loop's notion of 'accepted before', so TSR compares."""
    rows, accepted = [], set()
    for start in range(0, len(cands), batch):
        part = cands[start : start + batch]
        j = judge.judge(part, prior=accepted, summarise=False)
        for i, (c, ch, v) in enumerate(zip(part, j.checks, j.verdicts)):
            row = dict(verdict_row(c, ch, v), index=start + i, iteration=start // batch, phase="main")
            row["success"] = ch.passed and v.accept
            if row["success"]:
                accepted.add(canonical_json(c.record))
            rows.append(row)
    return rows


def _loop_rows(store: RunStore) -> list[dict[str, Any]]:
    rows = []
    for c in store.candidates():
        if c.get("phase", "main") != "main":
            continue
        passed = passed_checks(c.get("checks") or {})
        rows.append(dict(c, success=bool(passed and c.get("verdict") == "accept")))
    return rows


def method_metrics(rows: list[dict[str, Any]], dataset, seed: int = 0) -> dict[str, Any]:
    """The Data Auditor suite over one method's judged candidates (rows as in candidates.jsonl).

    Rates are over all candidates (one that did not parse counts against its method).
    ``task_success_rate`` is the loop's own (exact checks passed, including 'not accepted
    before', and the judge accepted), so it is the same number the AoD runs report."""
    from aod_core.eval.audit import audit

    cands = [
        Candidate(
            text=r.get("text"),
            record=r.get("record"),
            error=None if r.get("record") is not None else (r.get("decode_error") or "did not parse"),
        )
        for r in rows
    ]
    holdout = dataset.holdout.records if dataset.holdout else None
    out = audit(
        cands,
        dataset.seeds.records,
        schema=dataset.schema,
        holdout=holdout,
        verdicts=[r.get("verdict") == "accept" for r in rows],
        seed=seed,
    )
    n = len(rows)
    out["task_success_rate"] = sum(r["success"] for r in rows) / n if n else 0.0
    out["judge_accept_rate"] = sum(r.get("verdict") == "accept" for r in rows) / n if n else 0.0
    return out


class Bench:
    """One comparison; ``run()`` writes everything into ``out`` as it goes."""

    def __init__(
        self,
        dataset: str | os.PathLike | Dataset,
        out: str | os.PathLike,
        config: BenchConfig,
        *,
        chat_cache: dict[str, ChatModel] | None = None,
        log: Callable[[str], None] = lambda s: None,
    ):
        """``dataset``: a dataset folder, or one already loaded (the app's Design page)."""
        config.check()
        self.config, self.log = config, log
        self.dataset = dataset if isinstance(dataset, Dataset) else load_dataset(dataset, on_invalid="drop")
        if not self.dataset.seeds.records:
            raise InputError("no valid seed records", where=str(self.dataset.folder))
        self.out = Path(out)
        if self.out.exists() and not self.out.is_dir():
            raise InputError("is a file; give a folder for the results", where=str(self.out))
        if self.out.exists() and any(self.out.iterdir()):
            raise InputError("output folder exists and is not empty", where=str(self.out))
        if not self.out.parent.exists():
            raise InputError(f"parent folder {self.out.parent} does not exist", where=str(self.out))
        if not self.out.parent.is_dir():  # else mkdir fails later with a NotADirectoryError
            raise InputError(f"{self.out.parent} is a file, not a folder", where=str(self.out))
        self.cache = chat_cache if chat_cache is not None else {}
        # The judge's chat model also writes the ar_only baseline's records, so it is always loaded.
        for spec in {config.judge, config.optimizer}:
            if spec not in self.cache:
                self.cache[spec] = load_chat_model(spec, device=config.device)
        self.judge = Judge.build(
            config.judge,
            self.cache[config.judge],
            self.dataset.schema,
            self.dataset.seeds.records,
            config.judge_settings,
            task=config.task,
            rubric=config.rubric,
            seed=config.seed,
            dependencies=config.dependencies,
        )

    def _generator(self, scaffold: bool = True) -> Generator:
        return load_generator(
            self.config.generator,
            self.dataset.schema,
            self.dataset.seeds.records,
            device=self.config.device,
            scaffold=scaffold,
            options=self.config.generator_config,
            dependencies=self.config.dependencies,
        )

    def _static(self, gen: Generator, reports: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        gen.fit()
        c = self.config
        prompt = self._initial_prompt(gen)
        cands: list[Candidate] = []
        for it in range(c.iterations):  # same seeds per batch as the loop's first prompt would get
            cands += gen.sample(prompt, c.batch, seed=c.seed * 1_000_003 + it * 7919)
            if reports is not None:
                reports.append(dict(getattr(gen, "last_sample_report", None) or {}))
        return _judge_rows(self.judge, cands, c.batch)

    def _initial_prompt(self, gen: Generator) -> Prompt:
        """The task text as the loop's first prompt would be: compiled into scaffold edits for a
        generator that cannot read it (``auto``), its shares measured, so the static baseline
        samples what an AoD run starts from."""
        c = self.config
        prompt = Prompt(text=c.task)
        if not c.task.strip() or not should_compile("auto", getattr(gen, "spec", c.generator)):
            return prompt
        comp = compiler_for(
            getattr(gen, "scaffold", None),
            self.dataset.schema.resolved,
            self.dataset.seeds.records,
            self.cache.get(c.optimizer),
            seed=c.seed,
        )
        prompt = comp.apply(prompt, check=gen.check_prompt)
        if needs_calibration(prompt, gen.spec):
            prompt = calibrate(prompt, lambda q, n, s: gen.sample(q, n, seed=s), spec=gen.spec, seed=c.seed)
        return prompt

    def _difflm(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        c = self.config
        gen = load_generator(
            c.difflm,
            self.dataset.schema,
            self.dataset.seeds.records,
            device=c.device,
            options=c.difflm_config,
            dependencies=c.dependencies,
        )
        reports: list[dict[str, Any]] = []
        rows = self._static(gen, reports)
        first = sum(r.get("first_pass_valid", 0) for r in reports)
        n = sum(r.get("n", 0) for r in reports)
        return rows, {
            "prefilter_schema_valid_rate": first / n if n else None,
            "draws": sum(r.get("drawn", 0) for r in reports),
            "fit_seconds": getattr(gen, "fit_report", {}).get("seconds"),
            "fit_cached": bool(getattr(gen, "fit_report", {}).get("cached")),
        }

    def _aod(self, name: str, *, verbal: bool = True, scaffold: bool = True) -> tuple[list[dict], RunStore]:
        c = self.config
        shared = {k: getattr(c, k) for k in ("iterations", "batch", "proposals", "repairs", "confirm", "probe", "seed")}
        loop = LoopSettings(**shared, verbal_feedback=verbal)
        same = {
            k: getattr(c, k)
            for k in ("generator", "judge", "optimizer", "task", "rubric", "device", "judge_settings", "dependencies")
        }
        config = RunConfig(
            **same,
            prompt=Prompt(text=c.task).to_dict(),
            loop=loop,
            scaffold=scaffold,
            generator_config=dict(c.generator_config),
        )
        (self.out / "runs").mkdir(exist_ok=True)
        store = create_run_from(self.dataset.schema, self.dataset.seeds.records, self.out / "runs" / name, config)
        open_loop(store, chat_cache=self.cache).loop.run()
        return _loop_rows(store), store

    def run(self) -> dict[str, Any]:
        c = self.config
        self.out.mkdir(exist_ok=True)
        results: dict[str, Any] = {
            "dataset": self.dataset.folder,
            "seed": c.seed,
            "budget": c.budget,
            "config": asdict(c),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "methods": {},
            "curves": {},
        }
        for name in c.methods:
            self.log(f"{name}: generating {c.budget} records and judging them")
            t0 = time.perf_counter()
            extra: dict[str, Any] = {}
            if name == "static_dlm":
                rows = self._static(self._generator())
            elif name == "difflm":
                rows, extra = self._difflm()
            elif name == "ar_only":
                ar = ARGenerator(
                    c.judge, self.dataset.schema, self.dataset.seeds.records, device=c.device, chat=self.cache[c.judge]
                )
                rows = self._static(ar)
            else:
                rows, store = self._aod(name, verbal=name != "aod_scalar", scaffold=name != "aod_no_scaffold")
                results["curves"][name] = store.metrics()
            seconds = time.perf_counter() - t0
            m = method_metrics(rows, self.dataset, c.seed)
            m["seconds"] = round(seconds, 2)
            m.update(extra)
            results["methods"][name] = m
            self.log(
                f"{name}: TSR {m['task_success_rate']:.3f}, schema-valid {m['schema_valid_rate']:.3f}, "
                f"field overlap {_fmt(m.get('field_overlap'))}, {seconds:.0f} s"
            )
            self._write(results)  # after every method: a crash keeps what finished
        return results

    def _write(self, results: dict[str, Any]) -> None:
        results = scrub(results)  # model URLs may carry credentials (aod_core/secrets.py)
        atomic_write_text(self.out / "results.json", json.dumps(results, indent=2, ensure_ascii=False, allow_nan=False))
        atomic_write_text(self.out / "results.md", markdown_table(results))
        from aod_core.runs.charts import bench_figures

        html = "".join(
            f.to_html(full_html=False, include_plotlyjs=i == 0) for i, f in enumerate(bench_figures(results))
        )
        atomic_write_text(
            self.out / "charts.html", f"<!doctype html><meta charset='utf-8'><title>aod bench</title>{html}"
        )


def _fmt(v: Any) -> str:
    return "—" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def markdown_table(results: dict[str, Any]) -> str:
    """The headline metrics per method as a Markdown table (direction in the header)."""
    from aod_core.eval.audit import METRICS

    cols = [k for k in HEADLINE]
    arrow = {
        k: (
            "↑"
            if getattr(METRICS.get(k), "direction", "") == "higher"
            else "↓"
            if getattr(METRICS.get(k), "direction", "") == "lower"
            else ""
        )
        for k in cols
    }
    arrow["task_success_rate"], arrow["schema_valid_rate"], arrow["seconds"] = "↑", "↑", "↓"
    head = "| method | " + " | ".join(f"{k} {arrow[k]}".strip() for k in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 1)]
    for name, m in results["methods"].items():
        lines.append(f"| {name} | " + " | ".join(_fmt(m.get(k)) for k in cols) + " |")
    return "\n".join(lines) + "\n"
