"""``aod``: the command-line face of the engine (contract in DESIGN.md §5).

Every command exits 0 on success and 2 on bad input with one line on stderr saying what and where.
Outputs are written to a temporary file and moved into place, so an interrupted or failed command
never leaves a half-written file behind.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

from aod_core.errors import InputError
from aod_core.data.export import FORMATS, export_records
from aod_core.files import atomic_write_text
from aod_core.runs.store import RunStore
from aod_core.generators import Progress, load_generator, parse_options
from aod_core.runs.loop import LoopSettings
from aod_core.eval.metrics import batch_summary
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.diffusion.sampler import StepInfo
from aod_core.data.schema import load_schema, loads_json
from aod_core.data.seeds import load_records


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as every bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


class _Progress:
    """Progress on stderr: a redrawn line on a terminal, a few plain lines otherwise."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, label: str, done: int, total: int, extra: str = "", *, force: bool = False) -> None:
        if self.quiet:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.2 if self.tty else 5.0) and done < total:
            return
        self.last = now
        width = 24
        filled = int(width * done / max(total, 1))
        line = f"{label:<8} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {extra}"
        sys.stderr.write(("\r" + line + ("\n" if done >= total else "")) if self.tty else line + "\n")
        sys.stderr.flush()

    def fit(self, p: Progress) -> None:
        loss = p.info.get("loss")
        extra = "(cached)" if p.info.get("cached") else (f"loss {loss:.3f}" if isinstance(loss, float) else "")
        label = f"{p.stage} {p.info['stage']}" if p.info.get("stage") else p.stage  # difflm: VAE, latent diffusion
        self.show(label, p.done, p.total, extra, force=p.done >= p.total)

    def step(self, s: StepInfo) -> None:
        self.show("sample", s.total - s.masked, s.total, f"step {s.step}")


def _kv(text: str, flag: str) -> tuple[str, Any]:
    """``PATH=JSON`` (a bare word is taken as a string)."""
    if "=" not in text:
        raise InputError(f"{flag} expects PATH=VALUE, got {text!r}")
    path, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    path = path.strip()
    return (path if path.startswith("$") else f"$.{path}"), value


def build_prompt(args: argparse.Namespace) -> Prompt:
    """The prompt from --prompt-file (a Prompt JSON) overlaid with --prompt and the flag edits."""
    if args.prompt_file:
        try:
            text = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            raise InputError(f"cannot read prompt file: {e.strerror}", where=args.prompt_file) from None
        prompt = Prompt.from_dict(loads_json(text, args.prompt_file), where=args.prompt_file)
    else:
        prompt = Prompt()
    if args.prompt is not None:
        prompt.text = args.prompt
    for item in args.pin or []:
        path, value = _kv(item, "--pin")
        prompt.pins[path] = value
    for item in args.forbid or []:
        path, value = _kv(item, "--forbid")
        prompt.forbid.setdefault(path, []).append(value)
    s = prompt.sampling
    overrides = {"steps": args.steps, "temperature": args.temperature, "remasking": args.remasking,
                 "num_blocks": args.blocks, "threshold": args.threshold}
    prompt.sampling = Sampling(**{**s.__dict__, **{k: v for k, v in overrides.items() if v is not None}})
    prompt.sampling.check()
    return prompt


def _print_compiled(compiled: dict, *, quiet: bool = False) -> None:
    """What the instruction compiler made of the text: its edits, and what it could not map."""
    from aod_core.agents.compiler import CompiledInstruction

    c = CompiledInstruction.from_dict(compiled)
    if c is None:
        return
    how = "rules" if c.model == "none" else f"rules + {c.model}"
    print(f"compiled the instruction {c.text!r} ({how}, {c.seconds:.1f}s): "
          f"{len(c.edits)} edit(s)", file=sys.stderr)
    for e in c.edits:
        print(f"  {e.describe()}   <- {e.phrase!r}" + (f" ({e.why})" if e.why and not quiet else ""), file=sys.stderr)
    for line in c.messages():
        print(f"  not mapped: {line}", file=sys.stderr)


def _compile_prompt(args: argparse.Namespace, prompt: Prompt, gen, schema, seeds: list) -> Prompt:
    """``aod sample``: the instruction text compiled into scaffold edits when the generator cannot
    read it (``--compile auto``) or when asked (``--compile on``)."""
    from aod_core.agents.compiler import compile_note, compiler_for, should_compile, text_blind

    text = prompt.text.strip()
    if not text:
        return prompt
    if not should_compile(args.compile, args.generator):
        if text_blind(args.generator):
            print(f"note: the {args.generator} generator does not read instruction text and --compile is off: "
                  "the text changes nothing here", file=sys.stderr)
        return prompt
    if args.generator.strip() != "embedded":
        print(f"note: {compile_note(args.generator, args.compile)}", file=sys.stderr)
    if prompt.compiled and prompt.compiled.get("text") == prompt.text:
        return prompt  # a prompt file with its compiled edits (perhaps edited by hand)
    chat = None
    spec = "embedded" if args.compiler is None else args.compiler.strip()
    if spec.lower() not in ("", "none"):
        from aod_core.chat import load_chat_model

        chat = load_chat_model(spec, device=args.device)
    compiler = compiler_for(getattr(gen, "scaffold", None), schema.resolved, seeds, chat, seed=args.seed)
    out = compiler.apply(prompt, check=gen.check_prompt)
    _print_compiled(out.compiled, quiet=args.quiet)
    return out


def cmd_sample(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise InputError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    if out.is_dir():
        raise InputError("is a folder; give a file path for the records", where=str(out))
    if not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist", where=str(out))
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop" if args.drop_invalid else "stop")
    for note in schema.notes:
        print(f"note: {note}", file=sys.stderr)
    if seeds.dropped:
        print(f"note: dropped {seeds.dropped} invalid seed(s); first: {seeds.issues[0]}", file=sys.stderr)
    prompt = build_prompt(args)
    gen = load_generator(args.generator, schema, seeds.records, device=args.device, scaffold=not args.no_scaffold,
                         options=generator_options(args))
    for note in getattr(getattr(gen, "scaffold", None), "notes", []) or []:
        print(f"note: {note}", file=sys.stderr)
    gen.check_prompt(prompt)  # a mistyped pin is reported before minutes of fitting
    prompt = _compile_prompt(args, prompt, gen, schema, seeds.records)
    progress = _Progress(args.quiet)
    gen.fit(on_progress=progress.fit)
    from aod_core.agents.compiler import calibrate, needs_calibration

    if needs_calibration(prompt, gen.spec):
        t0 = time.perf_counter()
        prompt = calibrate(prompt, lambda q, n, s: gen.sample(q, n, seed=s), spec=gen.spec, seed=args.seed)
        for e in prompt.compiled.get("edits", []):
            if e.get("share") is not None:
                print(f"  measured: {e['why']}", file=sys.stderr)
        print(f"  (shares measured in {time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    t0 = time.perf_counter()
    cands = gen.sample(prompt, args.n, seed=args.seed, on_step=progress.step)
    seconds = time.perf_counter() - t0
    lines = [json.dumps(c.record, ensure_ascii=False) for c in cands if c.parsed]
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    stats = batch_summary(cands, schema, seeds.records)
    failed = len(cands) - len(lines)
    print(
        f"wrote {len(lines)} records to {out} in {seconds:.1f}s "
        f"({failed} failed to decode; schema-valid {stats['schema_valid_rate']:.1%}, "
        f"seed copies {stats['exact_copy_rate']:.1%}, duplicates {stats['duplicate_rate']:.1%})",
        file=sys.stderr,
    )
    return 0


def _loop_printer(quiet: bool):
    """Per-iteration lines for ``aod run``/``resume`` (the app draws the same events as charts)."""
    def show(e) -> None:
        if e.kind == "warning":  # even with --quiet: the user must know the run is no longer reproducible
            print(f"aod: warning: {e.data['warning']}", file=sys.stderr, flush=True)
        if quiet:
            return
        d = e.data
        if e.kind == "compiled":
            _print_compiled(d["compiled"])
        elif e.kind == "iteration_started":
            print(f"iteration {e.iteration + 1}: prompt by {d['author']}", file=sys.stderr, flush=True)
        elif e.kind == "metrics":
            print(f"  reward {d['reward']:.3f}  TSR {d['task_success_rate']:.1%}  schema-valid {d['schema_valid_rate']:.1%}  "
                  f"overlap {d['field_overlap']:.2f}  dup {d['duplicate_rate']:.1%}  distinct-2 {d['distinct_2']:.2f}  "
                  f"+{d['accepted_new']} accepted  ({d['generate_s']:.0f}s generate / {d['judge_s']:.0f}s judge / "
                  f"{d['optimize_s']:.0f}s optimize)", file=sys.stderr, flush=True)
        elif e.kind == "prompt_chosen":
            what = "new prompt from the optimizer" if d["changed"] else "incumbent kept"
            print(f"  {what} (probe reward {d['best_reward']:.3f} vs incumbent {d['incumbent_reward']:.3f})", file=sys.stderr, flush=True)
    return show


def _finish_run(store: RunStore, status: str) -> int:
    accepted = len(store.accepted())
    print(f"run {status}: {store.iterations_done()} iterations, {accepted} accepted records in {store.path}", file=sys.stderr)
    return 0


def _drive(store: RunStore, args: argparse.Namespace) -> int:
    from aod_core.runs.setup import open_loop  # the agent stack (transformers) loads only for commands that need it

    progress = _Progress(args.quiet)
    handle = open_loop(store, on_event=_loop_printer(args.quiet), on_fit=progress.fit)
    try:
        status = handle.loop.run()
    except KeyboardInterrupt:
        store.set_status("interrupted", iteration=store.iterations_done())
        print(f"aod: interrupted; {store.iterations_done()} iterations are saved, continue with: aod resume {store.path}", file=sys.stderr)
        return 130
    return _finish_run(store, status)


def cmd_run(args: argparse.Namespace) -> int:
    from aod_core.agents.judge import DEFAULT_RUBRIC
    from aod_core.runs.loop import LoopSettings
    from aod_core.agents.reward import RewardWeights
    from aod_core.runs.setup import RunConfig, create_run

    if args.fit_steps is not None and args.fit_steps < 1:
        raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    settings = LoopSettings(iterations=args.iterations, batch=args.batch, target=args.target, proposals=args.proposals,
                            probe=args.probe, seed=args.seed, weights=RewardWeights.parse(args.weights or ""),
                            max_agent_failures=args.max_agent_failures)
    rubric = DEFAULT_RUBRIC
    if args.rubric_file:
        try:
            rubric = Path(args.rubric_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise InputError(f"cannot read rubric file: {e.strerror}", where=args.rubric_file) from None
    prompt = build_prompt(args)
    config = RunConfig(generator=args.generator, judge=args.judge, optimizer=args.optimizer, task=prompt.text,
                       rubric=rubric, prompt=prompt.to_dict(), loop=settings, drop_invalid=args.drop_invalid,
                       device=args.device, scaffold=not args.no_scaffold, generator_config=generator_options(args),
                       judge_settings=judge_settings(args), compile=args.compile, compiler=args.compiler or "")
    store = create_run(args.schema, args.seeds, args.out, config)
    return _drive(store, args)


def cmd_resume(args: argparse.Namespace) -> int:
    from aod_core.runs.setup import RunConfig, run_is_alive

    store = RunStore.open(args.run_dir, repair=False)
    if run_is_alive(store):
        raise InputError(f"run is still running in process {store.state().get('pid')}", where=args.run_dir)
    store.repair()
    config = RunConfig.from_dict(store.config)
    if store.iterations_done() >= config.loop.iterations or (
            config.loop.target is not None and len(store.accepted()) >= config.loop.target):
        return _finish_run(store, "already finished")
    return _drive(store, args)


def cmd_export(args: argparse.Namespace) -> int:
    store = RunStore.open(args.run_dir, repair=False)
    overrides = {} if args.ignore_overrides else store.overrides()
    records = store.accepted() if args.ignore_overrides else store.curated()
    n = export_records(records, args.format, args.out)
    note = f" (with {len(overrides)} human override(s))" if overrides else ""
    print(f"exported {n} accepted records{note} to {args.out}", file=sys.stderr)
    return 0


def _check_out_file(out: Path) -> None:
    if out.is_dir():
        raise InputError("is a folder; give a file path", where=str(out))
    if not out.parent.exists():
        raise InputError(f"output folder {out.parent} does not exist", where=str(out))


def cmd_report(args: argparse.Namespace) -> int:
    from aod_core.runs.report import build_report  # plotly loads only for this command

    out = Path(args.out)
    _check_out_file(out)
    store = RunStore.open(args.run_dir, repair=False)  # read-only: the run may still be going
    atomic_write_text(out, build_report(store, overrides={"accepted": store.curated()}))
    print(f"wrote the report of {store.iterations_done()} iterations to {out}", file=sys.stderr)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from aod_core.runs.bench import Bench, BenchConfig, markdown_table  # the agent stack loads only for this command

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.fit_steps is not None and args.fit_steps < 1:
        raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    config = BenchConfig(methods=methods, seed=args.seed, iterations=args.iterations, batch=args.batch,
                         proposals=args.proposals, probe=args.probe, generator=args.generator, judge=args.judge,
                         optimizer=args.optimizer, task=args.task or "", device=args.device,
                         generator_config=generator_options(args), judge_settings=judge_settings(args))
    log = (lambda s: None) if args.quiet else (lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    results = Bench(args.dataset, args.out, config, log=log).run()
    print(markdown_table(results), end="")
    print(f"wrote results.json, results.md and charts.html to {args.out}", file=sys.stderr)
    return 0


def _judged_records(path: Path, schema) -> list:
    """The records to judge as candidates, in file order: a JSONL line that does not parse is a
    candidate that fails the exact checks (judged, not refused); .json and .csv files are read whole."""
    from aod_core.generators.base import Candidate
    from aod_core.data.seeds import read_records

    if not path.is_file():
        raise InputError("records file not found", where=str(path))
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"file is not UTF-8 text ({e.reason} at byte {e.start})", where=str(path)) from None
        cands = [Candidate.from_text(line) for line in text.split("\n") if line.strip()]
    else:
        records, _lines = read_records(path, schema)
        cands = [Candidate(text=json.dumps(r, ensure_ascii=False), record=r) for r in records]
    if not cands:
        raise InputError("no records", where=str(path))
    return cands


def cmd_judge(args: argparse.Namespace) -> int:
    from aod_core.agents.judge import DEFAULT_RUBRIC, Judge
    from aod_core.chat import load_chat_model

    out = Path(args.out)
    _check_out_file(out)
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop" if args.drop_invalid else "stop")
    cands = _judged_records(Path(args.records), schema)
    settings = judge_settings(args)
    settings.check()
    rubric = DEFAULT_RUBRIC
    if args.rubric_file:
        try:
            rubric = Path(args.rubric_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise InputError(f"cannot read rubric file: {e.strerror}", where=args.rubric_file) from None
    mode = settings.resolved_mode(args.judge)
    chat = load_chat_model(args.judge, device=args.device) if mode != "plausibility" else None
    progress = _Progress(args.quiet)
    judge = Judge.build(args.judge, chat, schema, seeds.records, settings, task=args.task or "", rubric=rubric,
                        seed=args.seed, on_progress=lambda d, t: progress.show("calibrate", d, t, force=d >= t))
    t0 = time.perf_counter()
    j = judge.judge(cands, summarise=False, on_progress=lambda d, t: progress.show("judge", d, t, force=d >= t))
    seconds = time.perf_counter() - t0
    lines = []
    for i, (c, ch, v) in enumerate(zip(cands, j.checks, j.verdicts)):
        lines.append(json.dumps({"index": i, "verdict": "accept" if v.accept else "reject", "score": v.score,
                                 "reasons": v.reasons, "judged_by": v.source, "checks": asdict(ch),
                                 "evidence": v.evidence}, ensure_ascii=False, allow_nan=False))
    atomic_write_text(out, "".join(line + "\n" for line in lines))
    accepted = sum(v.accept for v in j.verdicts)
    calib = judge.plausibility.describe() if judge.plausibility is not None else None
    note = (f"; calibration on {calib['seeds']} seeds: held-out accept rate {calib['heldout_accept_rate']:.0%} "
            f"(target {calib['accept_share_target']:.0%})" if calib and calib.get("heldout_accept_rate") is not None else "")
    print(f"judged {len(cands)} records in {seconds:.1f}s ({mode} judge): {accepted} accepted, "
          f"{len(cands) - accepted} rejected{note}; wrote {out}", file=sys.stderr)
    for fact in j.facts[:6]:
        print(f"  {fact}", file=sys.stderr)
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from aod_core.eval.audit import audit

    if args.out:
        _check_out_file(Path(args.out))
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop").records
    holdout = load_records(args.holdout, schema, on_invalid="drop").records if args.holdout else None
    path = Path(args.records)
    if not path.is_file():
        raise InputError("records file not found", where=str(path))
    records: list[Any] = []
    # Generated records are audited as they are: a line that does not parse counts against them.
    from aod_core.generators.base import Candidate

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            records.append(Candidate.from_text(line))
    result = audit(records, seeds, schema=schema, holdout=holdout, seed=args.seed)
    text = json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False)
    if args.out:
        atomic_write_text(args.out, text + "\n")
        print(f"audited {len(records)} records; wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from aod_core.runs.bulk import BulkSettings, generate  # Ray loads only for this command

    settings = BulkSettings(n=args.n, workers=args.workers, batch=args.batch, judge=args.judge, shards=args.shards,
                            ray=args.ray, seed=args.seed, cpus_per_worker=args.cpus_per_worker,
                            gpus_per_worker=args.gpus_per_worker, audit_sample=args.audit_sample)
    settings.check()
    if not Path(args.run).is_dir():
        raise InputError("run folder not found", where=args.run)
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
            progress.show("generate", min(p.records, p.target), p.target,
                          f"{p.records_per_s:.1f} records/s, accepted {share}, ETA {eta}, shards {p.shards_done}/{p.shards_total}")

    m = generate(args.run, args.out, settings, on_progress=show)
    skipped = f"; {len(m['skipped_shards'])} finished shard(s) skipped" if m["skipped_shards"] else ""
    rate = f"{m['records_per_s']:.1f} records/s" if m["records_per_s"] else "no new shards"
    print(f"wrote {m['records']} unique records in {len(m['shards'])} shards to {args.out} ({rate}, accepted "
          f"{m['accepted_share']:.0%} of {m['candidates']} candidates{skipped}); manifest.json and audit.json beside them",
          file=sys.stderr)
    return 0


def _add_prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", help="instruction text (compiled into scaffold edits for generators that cannot "
                                     "read it; see --compile)")
    p.add_argument("--compile", choices=["auto", "on", "off"], default="auto",
                   help="compile the instruction text into scaffold edits (pins, forbids, ranges, biases, "
                        "temperature): auto = for generators that cannot read text (embedded, difflm), on = also "
                        "for hf: on top of the text, off = never (default auto)")
    p.add_argument("--compiler", default=None,
                   help="chat model asked about the clauses the compiler's rules cannot map (none = rules only; "
                        "default: embedded for sample, the optimizer's model for run)")
    p.add_argument("--prompt-file", help="a prompt JSON (text, pins, forbid, ranges, bias, sampling)")
    p.add_argument("--pin", action="append", metavar="PATH=VALUE", help="fix a field's value, e.g. island=Dream (repeatable)")
    p.add_argument("--forbid", action="append", metavar="PATH=VALUE", help="never generate this value (repeatable)")
    p.add_argument("--steps", type=int, help="diffusion steps (default: one per masked position)")
    p.add_argument("--temperature", type=float, help="sampling temperature (default 0.7)")
    p.add_argument("--remasking", choices=["low_confidence", "random"])
    p.add_argument("--blocks", type=int, help="semi-autoregressive blocks (default 1)")
    p.add_argument("--threshold", type=float, help="Fast-dLLM parallel commit threshold in (0, 1]")


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", required=True, help="JSON Schema file (draft-04, -06, -07, 2019-09 or 2020-12)")
    p.add_argument("--seeds", required=True, help="seed records: .jsonl, .json (array) or .csv")
    p.add_argument("--generator", default="embedded", help="generator spec (default: embedded)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--drop-invalid", action="store_true", help="drop seeds that fail the schema instead of stopping")
    p.add_argument("--no-scaffold", action="store_true", help="raw-text diffusion without the scaffold (ablation)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_gen_opt(p)
    _add_prompt_args(p)


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    from aod_core.agents.judge import MODES, JudgeSettings

    d = JudgeSettings()
    p.add_argument("--judge-mode", choices=MODES, default=d.mode,
                   help="how the judge decides: plausibility (evidence fitted on the seeds), combined (an LLM reads "
                        "that evidence; the plausibility model can veto), llm (the LLM alone); auto: plausibility "
                        "for --judge embedded, combined for any other model (default)")
    p.add_argument("--accept-share", type=float, default=d.accept_share,
                   help=f"share of real records the plausibility threshold accepts (default {d.accept_share})")
    p.add_argument("--near-copy", type=float, default=d.near_copy,
                   help=f"shingle Jaccard similarity from which a record is a near copy of a seed or of an earlier "
                        f"accepted record (default {d.near_copy}; above 1 turns the check off)")
    p.add_argument("--veto", type=float, default=d.veto,
                   help=f"combined mode: plausibility score below which the LLM's verdict is overruled (default {d.veto})")


def judge_settings(args: argparse.Namespace):
    from aod_core.agents.judge import JudgeSettings

    return JudgeSettings(mode=args.judge_mode, accept_share=args.accept_share, near_copy=args.near_copy, veto=args.veto)


def _add_gen_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gen-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a generator setting, repeatable (e.g. batch=16, decode=vanilla, train_steps=300)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="allow an hf: model folder to run the Python code it ships (only for folders you trust); "
                        "same as --gen-opt trust_remote_code=true")


def generator_options(args: argparse.Namespace) -> dict:
    """The generator's own settings from --gen-opt KEY=VALUE (values read as JSON when they parse)."""
    opts = parse_options(getattr(args, "gen_opt", None) or [])
    if getattr(args, "trust_remote_code", False):
        opts["trust_remote_code"] = True
    if getattr(args, "fit_steps", None):
        opts["train_steps"] = args.fit_steps
    return opts


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="aod", description="AoD Studio: schema-scaffolded diffusion generation of JSON records.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("sample", help="the diffusion generator alone with a fixed prompt (static-prompt baseline)")
    _add_inputs(p)
    p.add_argument("--n", type=int, default=100, help="how many candidates (default 100)")
    p.add_argument("--out", required=True, help="output JSONL file")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("run", help="the AoD loop: generate, judge, optimize the prompt; records go to a run folder")
    _add_inputs(p)
    p.add_argument("--judge", default="embedded", help="chat model spec for the judge (embedded, hf:..., openai:MODEL@URL)")
    p.add_argument("--optimizer", default="embedded", help="chat model spec for the prompt optimizer")
    p.add_argument("--iterations", type=int, default=5, help="iteration budget (default 5)")
    p.add_argument("--batch", type=int, default=32, help="candidates per iteration (default 32)")
    p.add_argument("--target", type=int, default=None, help="stop once this many records are accepted")
    p.add_argument("--proposals", type=int, default=2, help="candidate prompts per iteration (default 2)")
    p.add_argument("--probe", type=int, default=LoopSettings().probe,
                   help=f"probe batch size for comparing prompts (default {LoopSettings().probe})")
    p.add_argument("--weights", help="reward weights, e.g. tsr=0.4,judge=0.3,novelty=0.2,diversity=0.1")
    p.add_argument("--rubric-file", help="text file with the judge's rubric")
    p.add_argument("--fit-steps", type=int, help="training steps of the embedded generator (default 900)")
    p.add_argument("--max-agent-failures", type=int, default=LoopSettings().max_agent_failures,
                   help="stop the run after this many agent answers in a row were unusable (time-outs, server "
                        f"errors, wrong shape); default {LoopSettings().max_agent_failures}")
    _add_judge_args(p)
    p.add_argument("--out", required=True, help="run folder (must not exist or be empty)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("resume", help="continue a run that was stopped or killed")
    p.add_argument("run_dir")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("export", help="write a run's accepted records as JSONL, CSV or Parquet")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--ignore-overrides", action="store_true",
                   help="export the agents' verdicts only, without the accept/reject overrides made in the app")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="write a run's report as one self-contained HTML page")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="output HTML file")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("bench", help="AoD against its baselines (static DLM, AR-only, ablations) on one dataset")
    p.add_argument("--dataset", required=True, help="folder with schema.json, seeds.jsonl and optional holdout.jsonl")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument("--methods", default="static_dlm,ar_only,aod,aod_scalar",
                   help="comma-separated: static_dlm, ar_only, aod, aod_scalar, aod_no_scaffold, difflm "
                        "(DiffLM sampled like static_dlm; 8–13 min to fit on 2 CPU cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int, default=3, help="AoD iterations; every method gets iterations x batch records")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--proposals", type=int, default=2)
    p.add_argument("--probe", type=int, default=LoopSettings().probe)
    p.add_argument("--generator", default="embedded")
    p.add_argument("--judge", default="embedded", help="chat model of the judge (and of ar_only)")
    p.add_argument("--optimizer", default="embedded")
    p.add_argument("--task", help="task description given to every method")
    p.add_argument("--fit-steps", type=int, help="embedded generator training steps (default: its own)")
    _add_judge_args(p)
    _add_gen_opt(p)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("judge", help="judge any records against the seeds: one verdict line per record, in order")
    p.add_argument("--schema", required=True, help="JSON Schema file")
    p.add_argument("--seeds", required=True, help="real records the judge calibrates on: .jsonl, .json or .csv")
    p.add_argument("--records", required=True,
                   help="records to judge: .jsonl (a line that does not parse is judged and rejected), .json or .csv")
    p.add_argument("--judge", default="embedded", help="chat model spec (embedded: the plausibility judge alone)")
    p.add_argument("--task", help="what the records are (read by LLM judges)")
    p.add_argument("--rubric-file", help="text file with the LLM judge's rubric")
    _add_judge_args(p)
    p.add_argument("--drop-invalid", action="store_true", help="drop seeds that fail the schema instead of stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="output JSONL: one verdict per input record")
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("generate", help="N new records from a run's best prompt, on Ray (sharded Parquet + JSONL, resumable)")
    p.add_argument("--run", required=True, help="run folder whose incumbent prompt and generator are used")
    p.add_argument("--n", type=int, required=True, help="how many unique records to write")
    p.add_argument("--out", required=True, help="output folder (new, empty, or an unfinished job to resume)")
    p.add_argument("--ray", nargs="?", default=None, const=None, metavar="ADDRESS",
                   help="Ray cluster to connect to (host:port, ray://host:10001, or auto for the one `ray start` runs "
                        "here); without an address, or without --ray: a private local Ray instance with --workers CPUs")
    p.add_argument("--workers", type=int, default=None,
                   help="generator replicas, one per actor (default: this machine's CPUs, or the cluster's GPUs)")
    p.add_argument("--batch", type=int, default=256, help="candidates per sampling call in a worker (default 256)")
    p.add_argument("--judge", default=None,
                   help="judge for every record: a chat model spec, or none for the exact checks only (default: the run's)")
    p.add_argument("--shards", type=int, default=None, help="number of shards (default: one per 5,000 records, at least one per worker)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shards' seeds (default 0)")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs reserved per worker (default 1)")
    p.add_argument("--gpus-per-worker", type=float, default=None, help="GPUs per worker (default: 1 when the cluster has GPUs)")
    p.add_argument("--audit-sample", type=int, default=1000, help="records audited into audit.json (default 1000)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("audit", help="the Data Auditor metrics of a JSONL file of generated records")
    p.add_argument("--schema", required=True)
    p.add_argument("--seeds", required=True)
    p.add_argument("--records", required=True, help="generated records, JSONL (lines that do not parse count as invalid)")
    p.add_argument("--holdout", help="real records held out from the seeds (baselines for DCR and fidelity)")
    p.add_argument("--seed", type=int, default=0, help="seed of any subsampling")
    p.add_argument("--out", help="write the JSON here instead of stdout")
    p.set_defaults(func=cmd_audit)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"aod: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aod: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
