"""Bulk generation: a run's settled prompt -> N new records, as one Ray Data pipeline (``aod generate``).

The app is where a prompt is designed; this is where it is used at scale. The job is cut into
**shards** (a record target and a seed each). A Ray Data pipeline maps the shards over an actor
pool (``map_batches`` with ``ActorPoolStrategy``), one generator replica per actor (one GPU per
actor when the cluster has GPUs); each actor samples batches with the run's incumbent prompt,
keeps the candidates that pass the exact checks (parse, schema, duplicates, seed copies and near
copies: ``agents.judge.check_batch``) and, unless the judge is ``none``, the run's judge, until
its shard's target is reached, and hands the shard's records back to the driver, which writes
them as Parquet + JSONL. Nothing here schedules, retries or places work: Ray does, with the
actors' ``max_restarts`` / ``max_task_retries`` (a killed worker's shard is run again on a
restarted actor; a shard's result depends on its seed only, so the retry gives the same records).

Without an address the same pipeline runs on a private local Ray instance (loopback only, no
dashboard, no usage stats) with as many CPUs as workers; ``ray=ADDRESS`` connects to a cluster.

Output folder (``OUT``)::

    plan.json                  the job: run, n, prompt, model fingerprint, judge, shards (seed, target)
    shards/shard-00000.json    a finished shard (written last: the commit marker) with counts and timings
    shards/shard-00000.jsonl   its records, one JSON object per line
    shards/shard-00000.parquet the same records, one column per leaf field (``export.flatten``)
    audit.json                 the audit suite on a seeded sample of the output
    manifest.json              written when the job is complete: shards, counts, seeds, prompt,
                               model fingerprint, timings

Resuming: a shard with its ``.json`` is finished and skipped; shards without one are run again.
Global deduplication runs over the finished shards in shard order before the manifest: a record
is dropped when its canonical JSON equals, or its token-shingle Jaccard similarity reaches
``near_copy`` (0.8, the audit's near-duplicate definition: MinHash LSH candidates, exact
Jaccard) with, a record kept earlier. Dropping rewrites the shard's files; when fewer than N are
left, top-up shards are added to the plan and run, and any surplus is cut from the last shards,
so the output holds exactly N unique records.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from aod_core.errors import InputError
from aod_core.files import atomic_write_text
from aod_core.runs.bulk_output import BulkOutput, GlobalDedup, same_job
from aod_core.runs.bulk_ray import run_shards, start_job
from aod_core.runs.fingerprint import generator_fingerprint
from aod_core.secrets import scrub

PLAN_VERSION = 1
SHARD_SIZE = 5000  # records per shard when the number of shards is not given
TOPUP_ROUNDS = 5  # rounds of top-up shards before giving up (each adds what dedup removed)
OVERSHOOT = 0.01  # each shard's target is its share plus this fraction (at least one record)


@dataclass
class BulkSettings:
    """One bulk job. Every field has a flag of ``aod generate`` (and a widget on the Export page)."""

    n: int
    workers: int | None = None  # actors; None: this machine's CPU count, or the cluster's GPUs / CPUs
    batch: int = 256  # candidates per sampling call in a worker
    judge: str | None = None  # None: the run's judge; "none": the exact checks only
    shards: int | None = None  # None: ceil(n / SHARD_SIZE), at least one per worker (per local CPU)
    ray: str | None = None  # None: a private local Ray instance; else an address (ray://..., host:port, auto)
    seed: int = 0
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None  # None: 1 when the cluster has GPUs, else 0
    # Records audited (a seeded sample beyond): the sentence embedder of Self-CosSim / Vendi is most of
    # the audit's time (~500 records/s on 2 free cores, far less on a busy machine).
    audit_sample: int = 1000
    max_restarts: int = 4  # Ray: restarts of a dead actor
    max_task_retries: int = 4  # Ray: retries of a shard whose actor died

    def check(self) -> None:
        if self.n < 1:
            raise InputError(f"--n must be >= 1, got {self.n}")
        if self.workers is not None and self.workers < 1:
            raise InputError(f"--workers must be >= 1, got {self.workers}")
        if self.batch < 1:
            raise InputError(f"--batch must be >= 1, got {self.batch}")
        if self.shards is not None and not 1 <= self.shards <= self.n:
            raise InputError(f"--shards must be between 1 and --n ({self.n}), got {self.shards}")
        if self.audit_sample < 0:
            raise InputError(f"--audit-sample must be >= 0, got {self.audit_sample}")
        if self.cpus_per_worker <= 0 or (self.gpus_per_worker is not None and self.gpus_per_worker < 0):
            raise InputError("cpus per worker must be > 0 and gpus per worker >= 0")


@dataclass
class BulkProgress:
    """What the CLI line and the app's panel show; ``active`` maps shard -> worker pid."""

    stage: str  # fit, generate, dedup, audit, done
    target: int
    records: int = 0  # records of finished shards plus those in flight (before global dedup)
    candidates: int = 0
    shards_done: int = 0
    shards_total: int = 0
    elapsed_s: float = 0.0
    records_per_s: float = 0.0
    accepted_share: float | None = None
    eta_s: float | None = None
    active: dict[int, int] = field(default_factory=dict)
    message: str = ""

    def line(self) -> str:
        share = f"{self.accepted_share:.0%}" if self.accepted_share is not None else "–"
        eta = f"{self.eta_s:.0f}s" if self.eta_s is not None else "–"
        return (
            f"{self.stage:<8} {min(self.records, self.target)}/{self.target} records  "
            f"shards {self.shards_done}/{self.shards_total}  {self.records_per_s:.1f} records/s  "
            f"accepted {share}  ETA {eta}"
        )


ProgressFn = Callable[[BulkProgress], None]


# ---------------------------------------------------------------------------------------------
# What the job generates from: the run's prompt, generator and judge


def incumbent_prompt(store) -> tuple[Any, str]:
    """The run's current best prompt and who wrote it: the last prompt the loop chose for the next
    iteration, else the run's initial prompt (its text compiled by the rules when the generator
    cannot read text, as the loop would)."""
    from aod_core.canvas.prompt import Prompt
    from aod_core.runs.setup import RunConfig

    chosen = [p for p in store.prompts() if p.get("role") == "next"]
    if chosen:
        return Prompt.from_dict(chosen[-1]["prompt"]), chosen[-1].get("author", "initial")
    config = RunConfig.from_dict(store.config)
    return Prompt.from_dict(config.prompt), "initial"


def _shard_seed(seed: int, index: int) -> int:
    return (seed * 1_000_003 + index * 7919 + 104_729) % (2**31)


# ---------------------------------------------------------------------------------------------
# The job


def generate(
    run_dir: str | os.PathLike,
    out: str | os.PathLike,
    settings: BulkSettings,
    *,
    on_progress: ProgressFn | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Run (or resume) a bulk job; returns the manifest. InputError for bad input."""
    from aod_core.agents.compiler import calibrate, compiler_for, needs_calibration, should_compile
    from aod_core.agents.judge import JudgeSettings
    from aod_core.agents.plausibility import fit_cached
    from aod_core.chat import load_chat_model
    from aod_core.data.schema import load_schema
    from aod_core.data.seeds import load_records
    from aod_core.generators import load_generator
    from aod_core.runs.setup import RunConfig
    from aod_core.runs.store import RunStore

    settings.check()
    t_start = time.perf_counter()
    run = Path(run_dir)
    if not run.is_dir():
        raise InputError("run folder not found", where=str(run))
    store = RunStore.open(run, repair=False)
    config = RunConfig.from_dict(store.config)
    outp = Path(out)
    if outp.exists() and not outp.is_dir():
        raise InputError("output is a file; give a folder", where=str(outp))
    if not outp.parent.exists():
        raise InputError(f"parent folder {outp.parent} does not exist", where=str(outp))
    if outp.is_dir() and any(outp.iterdir()) and not (outp / "plan.json").is_file():
        raise InputError("output folder exists, is not empty and holds no bulk job", where=str(outp))
    judge_spec = (settings.judge or config.judge).strip()
    js: JudgeSettings = config.judge_settings
    judge_mode = js.resolved_mode(judge_spec) if judge_spec.lower() != "none" else "none"
    if judge_spec.lower() == "none":
        judge_spec = "none"
    else:
        load_chat_model(judge_spec)  # a bad spec fails now (nothing is loaded)

    schema = load_schema(run / "inputs" / "schema.json")
    seeds = load_records(run / "inputs" / "seeds.jsonl", schema).records
    prompt, author = incumbent_prompt(store)
    gen = load_generator(
        config.generator,
        schema,
        seeds,
        device=config.device,
        scaffold=config.scaffold,
        options=config.generator_config,
        dependencies=config.dependencies,
    )
    gen.check_prompt(prompt)
    if prompt.text.strip() and not prompt.compiled and should_compile(config.compile, config.generator):
        prompt = compiler_for(
            getattr(gen, "scaffold", None), schema.resolved, seeds, None, seed=config.loop.seed
        ).apply(prompt, check=gen.check_prompt)
    report = BulkProgress("fit", settings.n)
    told = threading.Lock()  # the driver's loop and the progress thread both report

    def tell(**kw: Any) -> None:
        with told:
            for k, v in kw.items():
                setattr(report, k, v)
            report.elapsed_s = round(time.perf_counter() - t_start, 2)
            if on_progress:
                on_progress(report)

    tell(message="fitting the generator (or reading it from the run's cache)")
    t0 = time.perf_counter()
    gen.fit()
    if needs_calibration(prompt, getattr(gen, "spec", "")):
        prompt = calibrate(prompt, lambda q, n, s: gen.sample(q, n, seed=s), spec=gen.spec, seed=config.loop.seed)
    plaus = None
    if judge_mode in ("plausibility", "combined"):
        plaus = fit_cached(seeds, js.plausibility_settings(config.loop.seed))
    fit_s = time.perf_counter() - t0
    model = generator_fingerprint(gen, config.generator, config.generator_config)

    job_key = {
        "run": str(run.resolve()),
        "n": settings.n,
        "seed": settings.seed,
        "prompt": prompt.to_dict(),
        "model": model,
        "judge": {"spec": judge_spec, "mode": judge_mode},
        "near_copy": js.near_copy,
        "near_numbers": js.near_numbers,
        "dependencies": config.dependencies.to_dict(),
    }
    outp.mkdir(exist_ok=True)
    bo = BulkOutput(outp)
    plan = bo.plan()
    if plan is not None:
        diff = same_job(plan, job_key)
        if diff:
            raise InputError(
                f"output folder holds a different bulk job (differs in {', '.join(diff)}); use a new folder",
                where=str(outp),
            )
    else:
        hint = settings.workers or (1 if settings.ray else os.cpu_count() or 1)
        k = settings.shards or max(1, min(settings.n, max(math.ceil(settings.n / SHARD_SIZE), hint)))
        base, extra = divmod(settings.n, k)
        # Each shard aims a little over its share: global dedup usually drops a record or two, and
        # a top-up round for them would cost a second actor start-up; the surplus is trimmed.
        shards = [
            {
                "shard": i,
                "seed": _shard_seed(settings.seed, i),
                "target": base + (i < extra) + math.ceil((base + (i < extra)) * OVERSHOOT),
            }
            for i in range(k)
        ]
        plan = {"version": PLAN_VERSION, **job_key, "prompt_author": author, "shards": shards, "created": time.time()}
        bo.write_plan(plan)

    done = bo.done()
    skipped = sorted(done)
    ray_mod, started = None, False
    timings = {"fit_s": round(fit_s, 3), "ray_start_s": 0.0, "generate_s": 0.0, "dedup_s": 0.0, "audit_s": 0.0}
    session = {"records": 0, "candidates": 0, "t": None}
    try:
        for _round in range(TOPUP_ROUNDS + 1):
            todo = [s for s in plan["shards"] if s["shard"] not in done]
            if todo:
                if ray_mod is None:
                    t0 = time.perf_counter()
                    ray_mod, started, workers, job_ref, gpus = start_job(
                        settings, config, schema, seeds, prompt, gen, judge_spec, judge_mode, js, plaus
                    )
                    timings["ray_start_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                run_shards(ray_mod, bo, todo, done, plan, settings, workers, gpus, job_ref, tell, session, should_stop)
                timings["generate_s"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            tell(stage="dedup", message="global deduplication", active={})
            kept = _dedup(bo, plan, done, js.near_copy)
            timings["dedup_s"] += time.perf_counter() - t0
            if kept >= settings.n:
                break
            missing = settings.n - kept
            k = max(1, min(missing, settings.workers or os.cpu_count() or 1))
            start = max(s["shard"] for s in plan["shards"]) + 1
            per = math.ceil(missing / k * 1.02) + 1  # a little over: dedup may remove a few again
            plan["shards"] += [
                {"shard": start + i, "seed": _shard_seed(settings.seed, start + i), "target": per, "topup": True}
                for i in range(k)
            ]
            bo.write_plan(plan)
        else:
            raise InputError(
                f"only {kept} unique records after {TOPUP_ROUNDS} top-up rounds: the accepted share is too low (try --judge none, or a better prompt)",
                where=str(outp),
            )
    finally:
        if started:
            ray_mod.shutdown()
    _trim(bo, plan, done, settings.n)

    tell(stage="audit", message="auditing a sample of the output")
    t0 = time.perf_counter()
    audit_summary = _audit(bo, plan, done, schema, seeds, settings)
    timings["audit_s"] = time.perf_counter() - t0
    total = sum(done[s["shard"]]["records"] for s in plan["shards"])
    gen_s = timings["generate_s"]
    timings = {k: round(v, 3) for k, v in timings.items()}
    timings["total_s"] = round(time.perf_counter() - t_start, 3)
    manifest = {
        "run": job_key["run"],
        "n": settings.n,
        "records": total,
        "seed": settings.seed,
        "prompt": job_key["prompt"],
        "prompt_author": plan.get("prompt_author"),
        "model": model,
        "judge": job_key["judge"],
        "near_copy": js.near_copy,
        "shards": [
            {
                **{
                    k: done[s["shard"]].get(k)
                    for k in (
                        "shard",
                        "seed",
                        "target",
                        "records",
                        "generated",
                        "candidates",
                        "dropped_duplicates",
                        "trimmed",
                        "seconds",
                        "attempt_pid",
                    )
                },
                "topup": bool(s.get("topup")),
                "files": bo.files(s["shard"]),
            }
            for s in plan["shards"]
        ],
        "skipped_shards": skipped,
        "candidates": sum(done[s["shard"]]["candidates"] for s in plan["shards"]),
        "timings": timings,
        "records_per_s": round(session["records"] / gen_s, 2) if gen_s > 0 else None,
        "ray": {
            "address": settings.ray or "local",
            "workers": settings.workers,
            "batch": settings.batch,
            "cpus_per_worker": settings.cpus_per_worker,
            "gpus_per_worker": settings.gpus_per_worker,
            "max_restarts": settings.max_restarts,
            "max_task_retries": settings.max_task_retries,
        },
        "audit": audit_summary,
    }
    gen_total = manifest["candidates"]
    manifest["accepted_share"] = (
        round(sum(done[s["shard"]]["generated"] for s in plan["shards"]) / gen_total, 4) if gen_total else None
    )
    atomic_write_text(outp / "manifest.json", json.dumps(scrub(manifest), indent=2, ensure_ascii=False))
    tell(
        stage="done",
        records=total,
        shards_done=len(plan["shards"]),
        shards_total=len(plan["shards"]),
        eta_s=0.0,
        message=f"{total} records in {outp}",
    )
    return manifest


def _dedup(bo: BulkOutput, plan, done, threshold: float) -> int:
    """Global deduplication over the finished shards in plan order; rewrites shards that lose records."""
    d = GlobalDedup(threshold)
    kept = 0
    for s in plan["shards"]:
        meta = done.get(s["shard"])
        if meta is None:
            continue
        records = bo.records(s["shard"])
        flags = d.keep(records)
        if not all(flags):
            survivors = [r for r, ok in zip(records, flags) if ok]
            meta = dict(
                meta,
                records=len(survivors),
                dropped_duplicates=meta.get("dropped_duplicates", 0) + len(records) - len(survivors),
            )
            bo.write_shard(meta, survivors)
            done[s["shard"]] = meta
        kept += meta["records"]
    return kept


def _trim(bo: BulkOutput, plan, done, n: int) -> None:
    """Cut the surplus over ``n`` from the last shards, so the output holds exactly ``n`` records."""
    surplus = sum(done[s["shard"]]["records"] for s in plan["shards"]) - n
    for s in reversed(plan["shards"]):
        if surplus <= 0:
            break
        meta = done[s["shard"]]
        cut = min(surplus, meta["records"])
        if cut:
            records = bo.records(s["shard"])[: meta["records"] - cut]
            meta = dict(meta, records=len(records), trimmed=meta.get("trimmed", 0) + cut)
            bo.write_shard(meta, records)
            done[s["shard"]] = meta
            surplus -= cut


def _audit(bo: BulkOutput, plan, done, schema, seeds, settings: BulkSettings) -> dict[str, Any]:
    from aod_core.eval.audit import audit

    records = [r for s in plan["shards"] for r in bo.records(s["shard"])]
    k = min(settings.audit_sample, len(records))
    if k == 0:
        return {"file": None, "sampled": 0}
    sample = random.Random(settings.seed).sample(records, k) if k < len(records) else records
    result = audit(sample, seeds, schema=schema, seed=settings.seed)
    result["sampled_from"] = len(records)
    atomic_write_text(bo.path / "audit.json", json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False))
    keys = (
        "n_records",
        "schema_valid_rate",
        "exact_copy_rate",
        "near_copy_rate",
        "duplicate_rate",
        "near_duplicate_rate",
        "field_overlap",
        "distinct_2",
        "ks_mean",
        "tvd_mean",
        "dcr_median",
    )
    return {"file": "audit.json", "sampled": k, **{key: result.get(key) for key in keys}}


# ---------------------------------------------------------------------------------------------
# For the app's Bulk generate panel


def default_out(run_dir: str | os.PathLike) -> Path:
    """Where the app puts a run's bulk output unless told otherwise: ``RUN_DIR/bulk``."""
    return Path(run_dir) / "bulk"


def shard_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's shards as table rows."""
    return [
        {
            "shard": s["shard"],
            "records": s["records"],
            "target": s["target"],
            "candidates": s["candidates"],
            "dropped duplicates": s["dropped_duplicates"],
            "trimmed": s["trimmed"],
            "seconds": s["seconds"],
            "seed": s["seed"],
            "top-up": s["topup"],
            "files": ", ".join(s["files"]),
        }
        for s in manifest.get("shards", [])
    ]
