"""Driving Ray for a bulk job: connecting (or starting a private local instance), putting the job in
the object store, and running the shards as a Ray Data pipeline over an actor pool.

Nothing here schedules, retries or places work: Ray does (``max_restarts`` / ``max_task_retries`` on
the actors). A progress thread polls the workers' ``ProgressBoard`` and reports through ``tell``.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aod_core.errors import InputError
from aod_core.runs.bulk_output import BulkOutput
from aod_core.runs.shard_worker import ProgressBoard, ShardWorker

if TYPE_CHECKING:
    from aod_core.runs.bulk import BulkSettings

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_DEDUP_LOGS": "0"}
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
    env = {
        **RAY_ENV,
        **({LOOPBACK_ENV: "0"} if local else {}),
        "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p),
    }
    # The model cache travels; an API key never does (a runtime env can end up in Ray's logs): local
    # workers inherit it from this process, a cluster's nodes need it in the environment of `ray start`.
    if os.environ.get("AOD_CACHE_DIR"):
        env["AOD_CACHE_DIR"] = os.environ["AOD_CACHE_DIR"]
    kw: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING, configure_logging=True
    )
    if settings.ray:
        import aod_core

        ray.init(
            address=settings.ray,
            runtime_env={"py_modules": [aod_core], "env_vars": {k: v for k, v in env.items() if k != "PYTHONPATH"}},
            **kw,
        )
    else:
        ray.init(
            num_cpus=max(1, math.ceil(workers * settings.cpus_per_worker)),
            num_gpus=0 if settings.gpus_per_worker == 0 else None,
            _node_ip_address="127.0.0.1",
            runtime_env={"env_vars": env},
            **kw,
        )
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    logging.getLogger("ray.data._internal.progress").setLevel(logging.ERROR)  # "bars disabled": we draw our own
    return ray, True


def start_job(settings, config, schema, seeds, prompt, gen, judge_spec, judge_mode, js, plaus):
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
    job = {
        "schema": schema.raw,
        "seeds": seeds,
        "prompt": prompt.to_dict(),
        "generator": config.generator,
        "generator_options": config.generator_config,
        "scaffold": config.scaffold,
        "device": device,
        "weights": weights,
        "judge": judge_spec,
        "judge_mode": judge_mode,
        "judge_settings": asdict(js),
        "dependencies": config.dependencies.to_dict(),
        "plausibility": plaus,
        "task": config.task,
        "rubric": config.rubric,
        "seed": config.loop.seed,
        "batch": settings.batch,
        "cpus_per_worker": settings.cpus_per_worker,
    }
    return ray, started, workers, [ray.put(job)], gpus


def run_shards(
    ray,
    bo: BulkOutput,
    todo,
    done,
    plan,
    settings: BulkSettings,
    workers: int,
    gpus: float,
    job_ref,
    tell,
    session,
    should_stop,
) -> None:
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    ds = ray.data.from_items(
        [{k: s[k] for k in ("shard", "seed", "target")} for s in todo], override_num_blocks=len(todo)
    )
    with warnings.catch_warnings():
        # Ray 2.60 takes an actor's restart and retry limits only as extra remote arguments, and warns
        # that the extra-argument form will go in 2.64 (the version is pinned in pyproject.toml).
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*is deprecated")
        out = ds.map_batches(
            ShardWorker,
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=max(1, min(workers, len(todo)))),
            fn_constructor_kwargs={"job_ref": job_ref, "board": board},
            num_cpus=settings.cpus_per_worker,
            num_gpus=gpus or None,
            max_restarts=settings.max_restarts,
            max_task_retries=settings.max_task_retries,
        )
    total_target = sum(s["target"] for s in plan["shards"])
    mu = threading.Lock()  # ``done`` and ``session`` grow in this thread and are read by the progress thread
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
        tell(
            stage="generate",
            records=have,
            candidates=cands,
            shards_done=n_done,
            shards_total=len(plan["shards"]),
            records_per_s=round(rate, 2),
            accepted_share=made / cands if cands else None,
            eta_s=round(left / rate, 1) if rate > 0 else None,
            active={int(k): v[0] for k, v in snap.items()},
            message=f"{len(snap)} shard(s) in flight",
        )

    thread = threading.Thread(target=poll, name="aod-bulk-progress", daemon=True)
    thread.start()
    try:
        for row in out.iter_rows():
            records = [json.loads(line) for line in row["text"].splitlines() if line.strip()]
            shard = int(row["shard"])
            meta = {
                "shard": shard,
                "seed": int(row["seed"]),
                "target": int(row["target"]),
                "generated": len(records),
                "records": len(records),
                "candidates": int(row["candidates"]),
                "rounds": int(row["rounds"]),
                "seconds": float(row["seconds"]),
                "attempt_pid": int(row["pid"]),
                "dropped_duplicates": 0,
                "trimmed": 0,
                "finished": time.time(),
            }
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
