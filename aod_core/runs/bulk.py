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
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from aod_core.errors import InputError
from aod_core.files import atomic_write_bytes, atomic_write_text
from aod_core.runs.fingerprint import generator_fingerprint
from aod_core.eval.metrics import canonical_record

PLAN_VERSION = 1
SHARD_SIZE = 5000  # records per shard when the number of shards is not given
TOPUP_ROUNDS = 5  # rounds of top-up shards before giving up (each adds what dedup removed)
OVERSHOOT = 0.01  # each shard's target is its share plus this fraction (at least one record)
MAX_CANDIDATES_PER_RECORD = 50  # a shard stops after this many candidates per record of its target
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
        return (f"{self.stage:<8} {min(self.records, self.target)}/{self.target} records  "
                f"shards {self.shards_done}/{self.shards_total}  {self.records_per_s:.1f} records/s  "
                f"accepted {share}  ETA {eta}")


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
# The worker: one generator replica per Ray actor


class _Board:
    """A Ray actor the workers report to after every batch (progress only; it schedules nothing)."""

    def __init__(self) -> None:
        self.shards: dict[int, tuple[int, int, int]] = {}

    def report(self, shard: int, pid: int, candidates: int, records: int) -> None:
        self.shards[shard] = (pid, candidates, records)

    def finish(self, shard: int) -> None:
        self.shards.pop(shard, None)

    def snapshot(self) -> dict[int, tuple[int, int, int]]:
        return dict(self.shards)


class ShardWorker:
    """Ray Data's callable class: built once per actor (generator replica, judge), then called
    with one shard per batch; returns the shard's records as JSONL text."""

    def __init__(self, job_ref, board=None):
        import ray
        import torch

        job = ray.get(job_ref[0]) if isinstance(job_ref, list) else job_ref
        torch.set_num_threads(max(1, int(job["cpus_per_worker"])))
        from aod_core.agents.judge import Judge, JudgeSettings
        from aod_core.generators import load_generator
        from aod_core.canvas.prompt import Prompt
        from aod_core.data.schema import parse_schema

        self.job, self.board = job, board
        self.schema = parse_schema(job["schema"])
        self.seeds = job["seeds"]
        self.prompt = Prompt.from_dict(job["prompt"])
        self.gen = load_generator(job["generator"], self.schema, self.seeds, device=job["device"],
                                  scaffold=job["scaffold"], options=job["generator_options"])
        if job["weights"] is not None and hasattr(self.gen, "load_weights"):
            self.gen.load_weights(job["weights"])  # the driver's fitted model: every replica the same
        else:
            self.gen.fit()
        self.judge_settings = JudgeSettings(**job["judge_settings"])
        self.chat = None
        if job["judge"] != "none" and job["judge_mode"] != "plausibility":
            from aod_core.chat import load_chat_model

            self.chat = load_chat_model(job["judge"], device=job["device"])
        self._Judge = Judge
        self.pid = os.getpid()

    def _judge(self):
        """A fresh judge per shard (its near-copy index holds that shard's records only), so a
        shard's result depends on its seed alone, whichever actor runs it."""
        j = self.job
        return self._Judge(self.chat, self.schema, self.seeds, task=j["task"], rubric=j["rubric"], seed=j["seed"],
                           mode=j["judge_mode"], plausibility=j["plausibility"],
                           near_copy=self.judge_settings.near_copy, veto=self.judge_settings.veto)

    def run_shard(self, shard: int, seed: int, target: int) -> dict[str, Any]:
        from aod_core.agents.judge import NearCopies, check_batch
        from aod_core.eval.metrics import FieldOverlapIndex

        t0 = time.perf_counter()
        judge = self._judge() if self.job["judge"] != "none" else None
        near = NearCopies(self.seeds, self.judge_settings.near_copy) if judge is None and self.judge_settings.near_copy <= 1 else None
        overlap = FieldOverlapIndex(self.seeds) if judge is None else None
        kept: list[Any] = []
        keys: set[str] = set()
        candidates, rounds = 0, 0
        limit = MAX_CANDIDATES_PER_RECORD * target + self.job["batch"]
        while len(kept) < target and candidates < limit:
            need = target - len(kept)
            share = len(kept) / candidates if candidates else 1.0
            n = min(self.job["batch"], max(8, math.ceil(need / max(share, 0.02) * 1.1)))
            cands = self.gen.sample(self.prompt, n, seed=(seed + rounds * 15_485_863) % (2**31))
            rounds += 1
            candidates += len(cands)
            if judge is not None:
                ok = [v.accept for v in judge.judge(cands, prior=keys, summarise=False).verdicts]
            else:
                if near is not None:
                    near.sync(keys)
                ok = [ch.passed for ch in check_batch(cands, self.schema, self.seeds, keys, near=near, overlap_index=overlap)]
            for c, good in zip(cands, ok):
                if good and len(kept) < target:
                    key = canonical_record(c.record)
                    if key not in keys:
                        keys.add(key)
                        kept.append(c.record)
            if self.board is not None:
                self.board.report.remote(shard, self.pid, candidates, len(kept))
        if self.board is not None:
            self.board.finish.remote(shard)
        return {"shard": shard, "seed": seed, "target": target, "records": len(kept), "candidates": candidates,
                "rounds": rounds, "seconds": round(time.perf_counter() - t0, 3), "pid": self.pid,
                "text": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept)}

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [self.run_shard(int(s), int(seed), int(t)) for s, seed, t in zip(batch["shard"], batch["seed"], batch["target"])]
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}


# ---------------------------------------------------------------------------------------------
# Global deduplication (the audit's near-duplicate definition)


class GlobalDedup:
    """Records kept so far across shards: ``keep(records)`` -> a keep flag per record. A record is
    dropped when its canonical JSON equals a kept record's or its shingle Jaccard similarity to a
    kept record (MinHash LSH candidates, exact Jaccard) reaches ``threshold``. Dropped records are
    not indexed, so deduplicating an already deduplicated set changes nothing (resuming is safe)."""

    def __init__(self, threshold: float):
        from datasketch import MinHashLSH

        from aod_core.eval.audit import NUM_PERM

        self.threshold = threshold
        self.exact: set[str] = set()
        self.shingles: list[frozenset] = []
        self.lsh = MinHashLSH(threshold=min(max(threshold, 0.01), 1.0), num_perm=NUM_PERM) if threshold <= 1 else None

    def keep(self, records: Sequence[Any]) -> list[bool]:
        from datasketch import MinHash

        from aod_core.eval.audit import NUM_PERM, _shingles, jaccard

        canon = [canonical_record(r) for r in records]
        sh = [_shingles(c) for c in canon]
        hashes = (MinHash.bulk([[x.encode("utf-8") for x in s] for s in sh], num_perm=NUM_PERM)
                  if self.lsh is not None and records else [None] * len(records))
        out = []
        for c, s, h in zip(canon, sh, hashes):
            ok = c not in self.exact
            if ok and self.lsh is not None and s:
                ok = not any(jaccard(s, self.shingles[j]) >= self.threshold for j in self.lsh.query(h))
            out.append(ok)
            if ok:
                self.exact.add(c)
                if self.lsh is not None and s:
                    self.lsh.insert(len(self.shingles), h, check_duplication=False)
                    self.shingles.append(s)
        return out


# ---------------------------------------------------------------------------------------------
# The output folder


class BulkOutput:
    """``OUT``: the plan, finished shards and the manifest (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.shards = self.path / "shards"

    def plan(self) -> dict[str, Any] | None:
        p = self.path / "plan.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def write_plan(self, plan: dict[str, Any]) -> None:
        atomic_write_text(self.path / "plan.json", json.dumps(plan, indent=2, ensure_ascii=False))

    def manifest(self) -> dict[str, Any] | None:
        p = self.path / "manifest.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def _base(self, shard: int) -> Path:
        return self.shards / f"shard-{shard:05d}"

    def done(self) -> dict[int, dict[str, Any]]:
        out = {}
        if self.shards.is_dir():
            for p in sorted(self.shards.glob("shard-*.json")):
                try:
                    meta = json.loads(p.read_text(encoding="utf-8"))
                except ValueError:
                    continue  # cannot happen with atomic writes; a stray file is run again
                if (self._base(meta["shard"]).with_suffix(".jsonl")).is_file():
                    out[int(meta["shard"])] = meta
        return out

    def records(self, shard: int) -> list[Any]:
        text = self._base(shard).with_suffix(".jsonl").read_text(encoding="utf-8")
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def write_shard(self, meta: dict[str, Any], records: list[Any]) -> None:
        """Records (JSONL and Parquet) first, then the metadata: the shard's commit marker."""
        from aod_core.data.export import render

        self.shards.mkdir(parents=True, exist_ok=True)
        base = self._base(meta["shard"])
        atomic_write_bytes(base.with_suffix(".jsonl"), render(records, "jsonl"))
        if records:
            atomic_write_bytes(base.with_suffix(".parquet"), render(records, "parquet"))
        else:
            base.with_suffix(".parquet").unlink(missing_ok=True)
        atomic_write_text(base.with_suffix(".json"), json.dumps(meta, indent=2, ensure_ascii=False))

    def files(self, shard: int) -> list[str]:
        base = self._base(shard)
        return [str(p.relative_to(self.path)) for p in (base.with_suffix(".parquet"), base.with_suffix(".jsonl")) if p.exists()]


def _same_job(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    return [k for k in ("run", "n", "seed", "prompt", "model", "judge", "near_copy") if a.get(k) != b.get(k)]


# ---------------------------------------------------------------------------------------------
# Ray


def _ray_init(settings: BulkSettings, workers: int):
    """The local instance (loopback, no dashboard, CPUs = workers x cpus per worker) or a connection."""
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    local = not settings.ray
    if local:
        # Ray resolves 127.0.0.1 to the machine's outward address unless "clusters" are off, as on
        # macOS: then every Ray server of the private instance listens on loopback only.
        os.environ[LOOPBACK_ENV] = "0"
    else:
        os.environ.pop(LOOPBACK_ENV, None)  # a driver joining a cluster must be reachable from it
    import logging

    import ray

    if ray.is_initialized():
        return ray, False
    from ray._private import ray_constants

    # The module read the variable when ray was first imported (perhaps for an earlier job of the app).
    ray_constants.ENABLE_RAY_CLUSTER = not local
    root = str(Path(__file__).resolve().parents[2])
    env = {**RAY_ENV, **({LOOPBACK_ENV: "0"} if local else {}), "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    # The model cache travels; an API key never does (a runtime env can end up in Ray's logs): local
    # workers inherit it from this process, a cluster's nodes need it in the environment of `ray start`.
    if os.environ.get("AOD_CACHE_DIR"):
        env["AOD_CACHE_DIR"] = os.environ["AOD_CACHE_DIR"]
    kw: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                              configure_logging=True)
    if settings.ray:
        import aod_core

        ray.init(address=settings.ray, runtime_env={"py_modules": [aod_core], "env_vars": {k: v for k, v in env.items() if k != "PYTHONPATH"}}, **kw)
    else:
        ray.init(num_cpus=max(1, math.ceil(workers * settings.cpus_per_worker)), num_gpus=0 if settings.gpus_per_worker == 0 else None,
                 _node_ip_address="127.0.0.1", runtime_env={"env_vars": env}, **kw)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled": we draw our own
    return ray, True


# ---------------------------------------------------------------------------------------------
# The job


def generate(run_dir: str | os.PathLike, out: str | os.PathLike, settings: BulkSettings, *,
             on_progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Run (or resume) a bulk job; returns the manifest. InputError for bad input."""
    from aod_core.agents.compiler import calibrate, compiler_for, needs_calibration, should_compile
    from aod_core.agents.judge import JudgeSettings
    from aod_core.agents.plausibility import fit_cached
    from aod_core.chat import load_chat_model
    from aod_core.generators import load_generator
    from aod_core.runs.setup import RunConfig
    from aod_core.runs.store import RunStore
    from aod_core.data.schema import load_schema
    from aod_core.data.seeds import load_records

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
    gen = load_generator(config.generator, schema, seeds, device=config.device, scaffold=config.scaffold,
                         options=config.generator_config)
    gen.check_prompt(prompt)
    if prompt.text.strip() and not prompt.compiled and should_compile(config.compile, config.generator):
        prompt = compiler_for(getattr(gen, "scaffold", None), schema.resolved, seeds, None, seed=config.loop.seed).apply(
            prompt, check=gen.check_prompt)
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

    job_key = {"run": str(run.resolve()), "n": settings.n, "seed": settings.seed, "prompt": prompt.to_dict(),
               "model": model, "judge": {"spec": judge_spec, "mode": judge_mode}, "near_copy": js.near_copy}
    outp.mkdir(exist_ok=True)
    bo = BulkOutput(outp)
    plan = bo.plan()
    if plan is not None:
        diff = _same_job(plan, job_key)
        if diff:
            raise InputError(f"output folder holds a different bulk job (differs in {', '.join(diff)}); use a new folder",
                             where=str(outp))
    else:
        hint = settings.workers or (1 if settings.ray else os.cpu_count() or 1)
        k = settings.shards or max(1, min(settings.n, max(math.ceil(settings.n / SHARD_SIZE), hint)))
        base, extra = divmod(settings.n, k)
        # Each shard aims a little over its share: global dedup usually drops a record or two, and
        # a top-up round for them would cost a second actor start-up; the surplus is trimmed.
        shards = [{"shard": i, "seed": _shard_seed(settings.seed, i),
                   "target": base + (i < extra) + math.ceil((base + (i < extra)) * OVERSHOOT)} for i in range(k)]
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
                    ray_mod, started, workers, job_ref, gpus = _start(settings, config, schema, seeds, prompt, gen,
                                                                     judge_spec, judge_mode, js, plaus)
                    timings["ray_start_s"] = time.perf_counter() - t0
                t0 = time.perf_counter()
                _run_shards(ray_mod, bo, todo, done, plan, settings, workers, gpus, job_ref, tell, session, should_stop)
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
            plan["shards"] += [{"shard": start + i, "seed": _shard_seed(settings.seed, start + i), "target": per, "topup": True}
                               for i in range(k)]
            bo.write_plan(plan)
        else:
            raise InputError(f"only {kept} unique records after {TOPUP_ROUNDS} top-up rounds: the accepted share is too "
                             "low (try --judge none, or a better prompt)", where=str(outp))
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
        "run": job_key["run"], "n": settings.n, "records": total, "seed": settings.seed,
        "prompt": job_key["prompt"], "prompt_author": plan.get("prompt_author"), "model": model,
        "judge": job_key["judge"], "near_copy": js.near_copy,
        "shards": [{**{k: done[s["shard"]].get(k) for k in ("shard", "seed", "target", "records", "generated", "candidates",
                                                           "dropped_duplicates", "trimmed", "seconds", "attempt_pid")},
                    "topup": bool(s.get("topup")), "files": bo.files(s["shard"])} for s in plan["shards"]],
        "skipped_shards": skipped,
        "candidates": sum(done[s["shard"]]["candidates"] for s in plan["shards"]),
        "timings": timings,
        "records_per_s": round(session["records"] / gen_s, 2) if gen_s > 0 else None,
        "ray": {"address": settings.ray or "local", "workers": settings.workers, "batch": settings.batch,
                "cpus_per_worker": settings.cpus_per_worker, "gpus_per_worker": settings.gpus_per_worker,
                "max_restarts": settings.max_restarts, "max_task_retries": settings.max_task_retries},
        "audit": audit_summary,
    }
    gen_total = manifest["candidates"]
    manifest["accepted_share"] = round(sum(done[s["shard"]]["generated"] for s in plan["shards"]) / gen_total, 4) if gen_total else None
    atomic_write_text(outp / "manifest.json", json.dumps(manifest, indent=2, ensure_ascii=False))
    tell(stage="done", records=total, shards_done=len(plan["shards"]), shards_total=len(plan["shards"]), eta_s=0.0,
         message=f"{total} records in {outp}")
    return manifest


def _start(settings, config, schema, seeds, prompt, gen, judge_spec, judge_mode, js, plaus):
    ray, started = _ray_init(settings, settings.workers or (os.cpu_count() or 1))
    res = ray.cluster_resources()
    gpus = settings.gpus_per_worker if settings.gpus_per_worker is not None else (1.0 if res.get("GPU", 0) > 0 else 0.0)
    if settings.workers:
        workers = settings.workers
    elif gpus:
        workers = max(1, int(res.get("GPU", 0) // gpus))
    else:
        workers = max(1, int(res.get("CPU", 1) // settings.cpus_per_worker))
    weights = gen.weights() if callable(getattr(gen, "weights", None)) else None
    device = config.device or ("cuda" if gpus else "cpu")
    job = {"schema": schema.raw, "seeds": seeds, "prompt": prompt.to_dict(), "generator": config.generator,
           "generator_options": config.generator_config, "scaffold": config.scaffold, "device": device,
           "weights": weights, "judge": judge_spec, "judge_mode": judge_mode, "judge_settings": asdict(js),
           "plausibility": plaus, "task": config.task, "rubric": config.rubric, "seed": config.loop.seed,
           "batch": settings.batch, "cpus_per_worker": settings.cpus_per_worker}
    return ray, started, workers, [ray.put(job)], gpus


def _run_shards(ray, bo: BulkOutput, todo, done, plan, settings: BulkSettings, workers: int, gpus: float, job_ref,
                tell, session, should_stop) -> None:
    board = ray.remote(num_cpus=0)(_Board).remote()
    ds = ray.data.from_items([{k: s[k] for k in ("shard", "seed", "target")} for s in todo],
                             override_num_blocks=len(todo))
    with warnings.catch_warnings():
        # Ray 2.60 takes an actor's restart and retry limits only as extra remote arguments, and warns
        # that the extra-argument form will go in 2.64 (the version is pinned in pyproject.toml).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        out = ds.map_batches(
            ShardWorker, batch_size=1, compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(todo)))),
            fn_constructor_kwargs={"job_ref": job_ref, "board": board}, num_cpus=settings.cpus_per_worker,
            num_gpus=gpus or None, max_restarts=settings.max_restarts, max_task_retries=settings.max_task_retries)
    total_target = sum(s["target"] for s in plan["shards"])
    mu = threading.Lock()  # ``done`` and ``session`` grow in this thread and are read by the progress thread
    base_records = sum(m["generated"] for m in done.values())
    stop = threading.Event()
    if session["t"] is None:
        session["t"] = time.perf_counter()

    def poll() -> None:
        while not stop.wait(0.5):
            try:
                snap = ray.get(board.snapshot.remote(), timeout=5)
            except Exception:  # the board is only for progress; a missed poll is harmless
                continue
            _show(snap)

    def _show(snap) -> None:
        with mu:
            snap = {k: v for k, v in snap.items() if int(k) not in done}  # a late report of a finished shard
            flight_rec = sum(v[2] for v in snap.values())
            flight_cand = sum(v[1] for v in snap.values())
            have = sum(m["generated"] for m in done.values()) + flight_rec
            made = session["records"] + flight_rec
            cands = session["candidates"] + flight_cand
            n_done = len(done)
        elapsed = time.perf_counter() - session["t"]
        rate = made / elapsed if elapsed > 0 else 0.0
        left = max(0, total_target - have)
        tell(stage="generate", records=have, candidates=cands, shards_done=n_done, shards_total=len(plan["shards"]),
             records_per_s=round(rate, 2), accepted_share=made / cands if cands else None,
             eta_s=round(left / rate, 1) if rate > 0 else None, active={int(k): v[0] for k, v in snap.items()},
             message=f"{len(snap)} shard(s) in flight")

    thread = threading.Thread(target=poll, name="aod-bulk-progress", daemon=True)
    thread.start()
    try:
        for row in out.iter_rows():
            records = [json.loads(line) for line in row["text"].splitlines() if line.strip()]
            shard = int(row["shard"])
            meta = {"shard": shard, "seed": int(row["seed"]), "target": int(row["target"]), "generated": len(records),
                    "records": len(records), "candidates": int(row["candidates"]), "rounds": int(row["rounds"]),
                    "seconds": float(row["seconds"]), "attempt_pid": int(row["pid"]), "dropped_duplicates": 0,
                    "trimmed": 0, "finished": time.time()}
            bo.write_shard(meta, records)
            with mu:
                done[shard] = meta
                session["records"] += len(records)
                session["candidates"] += int(row["candidates"])
            _show({})
            if should_stop is not None and should_stop():
                raise InputError("stopped; finished shards are kept and skipped when the job is run again")
    finally:
        stop.set()
        thread.join(timeout=2)


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
            meta = dict(meta, records=len(survivors), dropped_duplicates=meta.get("dropped_duplicates", 0) + len(records) - len(survivors))
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
    keys = ("n_records", "schema_valid_rate", "exact_copy_rate", "near_copy_rate", "duplicate_rate",
            "near_duplicate_rate", "field_overlap", "distinct_2", "ks_mean", "tvd_mean", "dcr_median")
    return {"file": "audit.json", "sampled": k, **{key: result.get(key) for key in keys}}


# ---------------------------------------------------------------------------------------------
# For the app's Bulk generate panel


def default_out(run_dir: str | os.PathLike) -> Path:
    """Where the app puts a run's bulk output unless told otherwise: ``RUN_DIR/bulk``."""
    return Path(run_dir) / "bulk"


def shard_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's shards as table rows."""
    return [{"shard": s["shard"], "records": s["records"], "target": s["target"], "candidates": s["candidates"],
             "dropped duplicates": s["dropped_duplicates"], "trimmed": s["trimmed"], "seconds": s["seconds"],
             "seed": s["seed"], "top-up": s["topup"], "files": ", ".join(s["files"])} for s in manifest.get("shards", [])]
