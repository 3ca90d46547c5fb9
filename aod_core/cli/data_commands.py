"""The ``aod`` commands that read data already made: ``export``, ``report``, ``judge``, ``audit`` and
``generate`` (bulk generation from a finished run's prompt)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from aod_core.cli.outputs import check_out_file, write_out
from aod_core.cli.parser import dependency_settings, judge_settings, settings_from_args
from aod_core.cli.progress import _Progress
from aod_core.data.export import export_records
from aod_core.data.schema import load_schema
from aod_core.data.seeds import load_records, read_candidates
from aod_core.errors import InputError
from aod_core.runs.checks import check_run_folder


def _read_rubric(path: str | None, default: str) -> str:
    """The judge's rubric from ``--rubric-file`` (the default rubric without one)."""
    if not path:
        return default
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise InputError(f"cannot read rubric file: {e.strerror}", where=path) from None


def cmd_export(args: argparse.Namespace) -> int:
    check_out_file(Path(args.out))
    store = check_run_folder(args.run_dir)  # read-only: the run may still be going
    overrides = {} if args.ignore_overrides else store.overrides()
    records = store.accepted() if args.ignore_overrides else store.curated()
    try:
        n = export_records(records, args.format, args.out)
    except OSError as e:  # checked above, yet the disk may be full or the folder gone
        raise InputError(f"cannot write the file: {e.strerror or e}", where=args.out) from None
    note = f" (with {len(overrides)} human override(s))" if overrides else ""
    print(f"exported {n} accepted records{note} to {args.out}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from aod_core.runs.report import build_report  # plotly loads only for this command

    out = Path(args.out)
    check_out_file(out)
    store = check_run_folder(args.run_dir)  # read-only: the run may still be going
    write_out(out, build_report(store, overrides={"accepted": store.curated()}))
    print(f"wrote the report of {store.iterations_done()} iterations to {out}", file=sys.stderr)
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from aod_core.agents.judge import DEFAULT_RUBRIC, Judge
    from aod_core.chat import load_chat_model

    out = Path(args.out)
    check_out_file(out)
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop" if args.drop_invalid else "stop")
    cands = read_candidates(args.records, schema)
    settings = judge_settings(args)
    settings.check()
    rubric = _read_rubric(args.rubric_file, DEFAULT_RUBRIC)
    mode = settings.resolved_mode(args.judge)
    chat = load_chat_model(args.judge, device=args.device) if mode != "plausibility" else None
    progress = _Progress(args.quiet)
    judge = Judge.build(
        args.judge,
        chat,
        schema,
        seeds.records,
        settings,
        task=args.task or "",
        rubric=rubric,
        seed=args.seed,
        on_progress=lambda d, t: progress.show("calibrate", d, t, force=d >= t),
        dependencies=dependency_settings(args),
    )
    t0 = time.perf_counter()
    j = judge.judge(cands, summarise=False, on_progress=lambda d, t: progress.show("judge", d, t, force=d >= t))
    seconds = time.perf_counter() - t0
    lines = []
    for i, (c, ch, v) in enumerate(zip(cands, j.checks, j.verdicts)):
        lines.append(
            json.dumps(
                {
                    "index": i,
                    "verdict": "accept" if v.accept else "reject",
                    "score": v.score,
                    "reasons": v.reasons,
                    "judged_by": v.source,
                    "checks": asdict(ch),
                    "evidence": v.evidence,
                },
                ensure_ascii=False,
                allow_nan=False,
            )
        )
    write_out(out, "".join(line + "\n" for line in lines))
    accepted = sum(v.accept for v in j.verdicts)
    calib = judge.plausibility.describe() if judge.plausibility is not None else None
    note = (
        f"; calibration on {calib['seeds']} seeds: held-out accept rate {calib['heldout_accept_rate']:.0%} (target {calib['accept_share_target']:.0%})"
        if calib and calib.get("heldout_accept_rate") is not None
        else ""
    )
    print(
        f"judged {len(cands)} records in {seconds:.1f}s ({mode} judge): {accepted} accepted, {len(cands) - accepted} rejected{note}; wrote {out}",
        file=sys.stderr,
    )
    for fact in j.facts[:6]:
        print(f"  {fact}", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from aod_core.eval.audit import audit

    if args.out:
        check_out_file(Path(args.out))
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop").records
    holdout = load_records(args.holdout, schema, on_invalid="drop").records if args.holdout else None
    # Generated records are audited as they are: a line the strict reader refuses counts against them.
    records = read_candidates(args.records, schema)
    result = audit(
        records, seeds, schema=schema, holdout=holdout, seed=args.seed, dependencies=dependency_settings(args)
    )
    text = json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False)
    if args.out:
        write_out(args.out, text + "\n")
        print(f"audited {len(records)} records; wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from aod_core.runs.bulk import BulkSettings, generate  # Ray loads only for this command

    settings = settings_from_args(BulkSettings, args)
    settings.check()
    if not Path(args.run).is_dir():
        raise InputError("run folder not found", where=args.run)
    check_run_folder(args.run)
    progress = _Progress(args.quiet)
    last = {"stage": None}

    def show(p) -> None:
        if args.quiet:
            return
        if p.stage != last["stage"] and p.stage in ("fit", "dedup", "audit"):
            print(f"{p.stage}: {p.message}", file=sys.stderr, flush=True)
        last["stage"] = p.stage
        if p.stage == "generate":
            share = f"{p.accepted_share:.0%}" if p.accepted_share is not None else "-"
            eta = f"{p.eta_s:.0f}s" if p.eta_s is not None else "-"
            progress.show(
                "generate",
                min(p.records, p.target),
                p.target,
                f"{p.records_per_s:.1f} records/s, accepted {share}, ETA {eta}, shards {p.shards_done}/{p.shards_total}",
            )

    m = generate(args.run, args.out, settings, on_progress=show)
    skipped = f"; {len(m['skipped_shards'])} finished shard(s) skipped" if m["skipped_shards"] else ""
    rate = f"{m['records_per_s']:.1f} records/s" if m["records_per_s"] else "no new shards"
    print(
        f"wrote {m['records']} unique records in {len(m['shards'])} shards to {args.out} ({rate}, accepted "
        f"{m['accepted_share']:.0%} of {m['candidates']} candidates{skipped}); manifest.json and audit.json beside them",
        file=sys.stderr,
    )
    return 0
