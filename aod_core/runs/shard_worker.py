"""What runs inside one Ray actor of a bulk job: a generator replica that fills shards.

``ShardWorker`` is Ray Data's callable class for ``map_batches``: built once per actor (the
generator replica with the driver's fitted weights, the judge's chat model), then called with one
shard per batch. A shard's records depend on its seed alone, so a shard rerun on a restarted actor
gives the same records. ``ProgressBoard`` is the small actor the workers report progress to.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any

from aod_core.records import canonical_json

MAX_CANDIDATES_PER_RECORD = 50  # a shard stops after this many candidates per record of its target


class ProgressBoard:
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
        from aod_core.canvas.prompt import Prompt
        from aod_core.data.dependencies import DependencySettings, detect, schema_order
        from aod_core.data.schema import parse_schema
        from aod_core.generators import load_generator

        self.job, self.board = job, board
        self.schema = parse_schema(job["schema"])
        self.seeds = job["seeds"]
        self.prompt = Prompt.from_dict(job["prompt"])
        self.dependency_settings = DependencySettings.from_dict(job.get("dependencies"))
        self.dependencies = detect(self.seeds, self.dependency_settings, schema_order(self.schema.resolved))
        self.gen = load_generator(
            job["generator"],
            self.schema,
            self.seeds,
            device=job["device"],
            scaffold=job["scaffold"],
            options=job["generator_options"],
            dependencies=self.dependency_settings,
        )
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
        return self._Judge(
            self.chat,
            self.schema,
            self.seeds,
            task=j["task"],
            rubric=j["rubric"],
            seed=j["seed"],
            mode=j["judge_mode"],
            plausibility=j["plausibility"],
            near_copy=self.judge_settings.near_copy,
            near_numbers=self.judge_settings.near_numbers,
            veto=self.judge_settings.veto,
            dependencies=self.dependencies,
        )

    def run_shard(self, shard: int, seed: int, target: int) -> dict[str, Any]:
        from aod_core.agents.judge import NearCopies, check_batch
        from aod_core.eval.metrics import FieldOverlapIndex

        t0 = time.perf_counter()
        judge = self._judge() if self.job["judge"] != "none" else None
        near = (
            NearCopies(self.seeds, self.judge_settings.near_copy)
            if judge is None and self.judge_settings.near_copy <= 1
            else None
        )
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
                ok = [
                    ch.passed
                    for ch in check_batch(
                        cands,
                        self.schema,
                        self.seeds,
                        keys,
                        near=near,
                        overlap_index=overlap,
                        dependencies=self.dependencies,
                    )
                ]
            for c, good in zip(cands, ok):
                if good and len(kept) < target:
                    key = canonical_json(c.record)
                    if key not in keys:
                        keys.add(key)
                        kept.append(c.record)
            if self.board is not None:
                self.board.report.remote(shard, self.pid, candidates, len(kept))
        if self.board is not None:
            self.board.finish.remote(shard)
        return {
            "shard": shard,
            "seed": seed,
            "target": target,
            "records": len(kept),
            "candidates": candidates,
            "rounds": rounds,
            "seconds": round(time.perf_counter() - t0, 3),
            "pid": self.pid,
            "text": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept),
        }

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        rows = [
            self.run_shard(int(s), int(seed), int(t))
            for s, seed, t in zip(batch["shard"], batch["seed"], batch["target"])
        ]
        return {k: [r[k] for r in rows] for k in rows[0]} if rows else {}
