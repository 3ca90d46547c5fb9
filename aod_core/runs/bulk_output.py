"""A bulk job's output folder and its global deduplication.

``BulkOutput`` reads and writes ``OUT`` (the plan, finished shards as JSONL + Parquet with their
metadata written last as the commit marker, the manifest; layout in ``runs/bulk.py``).
``GlobalDedup`` drops a record whose canonical JSON equals, or whose shingle Jaccard similarity
reaches the threshold with, a record kept earlier (the audit's near-duplicate definition: MinHash
LSH candidates, exact Jaccard).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from aod_core.files import atomic_write_bytes, atomic_write_text
from aod_core.records import canonical_json
from aod_core.secrets import scrub


class GlobalDedup:
    """Records kept so far across shards: ``keep(records)`` -> a keep flag per record. A record is
    dropped when its canonical JSON equals a kept record's or its shingle Jaccard similarity to a
    kept record (MinHash LSH candidates, exact Jaccard) reaches ``threshold``. Dropped records are
    not indexed, so deduplicating an already deduplicated set changes nothing (resuming is safe)."""

    def __init__(self, threshold: float):
        from datasketch import MinHashLSH

        from aod_core.eval.nearcopy import NUM_PERM

        self.threshold = threshold
        self.exact: set[str] = set()
        self.shingles: list[frozenset] = []
        self.lsh = MinHashLSH(threshold=min(max(threshold, 0.01), 1.0), num_perm=NUM_PERM) if threshold <= 1 else None

    def keep(self, records: Sequence[Any]) -> list[bool]:
        from datasketch import MinHash

        from aod_core.eval.nearcopy import NUM_PERM, jaccard, text_shingles

        canon = [canonical_json(r) for r in records]
        sh = [text_shingles(c) for c in canon]
        hashes = (
            MinHash.bulk([[x.encode("utf-8") for x in s] for s in sh], num_perm=NUM_PERM)
            if self.lsh is not None and records
            else [None] * len(records)
        )
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


class BulkOutput:
    """``OUT``: the plan, finished shards and the manifest (module docstring)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.shards = self.path / "shards"

    def plan(self) -> dict[str, Any] | None:
        p = self.path / "plan.json"
        return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None

    def write_plan(self, plan: dict[str, Any]) -> None:
        atomic_write_text(self.path / "plan.json", json.dumps(scrub(plan), indent=2, ensure_ascii=False))

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
        atomic_write_text(base.with_suffix(".json"), json.dumps(scrub(meta), indent=2, ensure_ascii=False))

    def files(self, shard: int) -> list[str]:
        base = self._base(shard)
        return [
            str(p.relative_to(self.path))
            for p in (base.with_suffix(".parquet"), base.with_suffix(".jsonl"))
            if p.exists()
        ]


def same_job(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    a, b = scrub(a), scrub(b)  # a plan is stored without credentials
    return [k for k in ("run", "n", "seed", "prompt", "model", "judge", "near_copy") if a.get(k) != b.get(k)]
