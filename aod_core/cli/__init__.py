"""``aod``: the command-line face of the engine, one handler per command (contract in ``docs/CLI.md``).

The flags live in ``parser.py`` (defaults read from the engine's dataclasses), the progress lines in
``progress.py``.

Every command exits 0 on success and 2 on bad input with one line on stderr saying what and where.
Outputs are written to a temporary file and moved into place, so an interrupted or failed command
never leaves a half-written file behind.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from aod_core.canvas.prompt import Prompt, Sampling, parse_path_value
from aod_core.cli.data_commands import _read_rubric, cmd_audit, cmd_export, cmd_generate, cmd_judge, cmd_report
from aod_core.cli.parser import dependency_settings, judge_settings, settings_from_args
from aod_core.cli.parser import make_parser as build_parser
from aod_core.cli.progress import _Progress
from aod_core.data.dependencies import Dependencies, detect, schema_order
from aod_core.data.schema import load_schema, loads_json
from aod_core.data.seeds import load_records
from aod_core.errors import InputError
from aod_core.eval.copying import copying, copying_lines
from aod_core.eval.metrics import batch_summary
from aod_core.files import atomic_write_text
from aod_core.generators import load_generator, parse_options
from aod_core.runs.lock import refuse_if_busy
from aod_core.runs.store import RunStore
from aod_core.secrets import strip_credentials


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
    flagged: dict[str, object] = {}  # the flags override a prompt file's pins, but must agree among themselves
    for item in args.pin or []:
        path, value = parse_path_value(item, "--pin")
        if path in flagged and flagged[path] != value:
            raise InputError(f"--pin {path}: pinned twice to different values")
        prompt.pins[path] = flagged[path] = value
    for item in args.forbid or []:
        path, value = parse_path_value(item, "--forbid")
        prompt.forbid.setdefault(path, []).append(value)
    s = prompt.sampling
    overrides = {
        "steps": args.steps,
        "temperature": args.temperature,
        "remasking": args.remasking,
        "num_blocks": args.blocks,
        "threshold": args.threshold,
    }
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
    print(f"compiled the instruction {c.text!r} ({how}, {c.seconds:.1f}s): {len(c.edits)} edit(s)", file=sys.stderr)
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
            print(
                f"note: the {args.generator} generator does not read instruction text and --compile is off: the text changes nothing here",
                file=sys.stderr,
            )
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
    from aod_core.cli.outputs import check_out_file

    if args.n < 1:
        raise InputError(f"--n must be >= 1, got {args.n}")
    out = Path(args.out)
    check_out_file(out)  # before the fit: a bad path must not cost minutes of work
    schema = load_schema(args.schema)
    seeds = load_records(args.seeds, schema, on_invalid="drop" if args.drop_invalid else "stop")
    for note in schema.notes:
        print(f"note: {note}", file=sys.stderr)
    if seeds.dropped:
        print(f"note: dropped {seeds.dropped} invalid seed(s); first: {seeds.issues[0]}", file=sys.stderr)
    prompt = build_prompt(args)
    deps = dependency_settings(args)
    gen = load_generator(
        args.generator,
        schema,
        seeds.records,
        device=args.device,
        scaffold=not args.no_scaffold,
        options=generator_options(args),
        dependencies=deps,
    )
    for note in getattr(getattr(gen, "scaffold", None), "notes", []) or []:
        print(f"note: {note}", file=sys.stderr)
    found = detect(seeds.records, deps, schema_order(schema.resolved))
    _print_dependencies(found, args.generator, quiet=args.quiet)
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
    try:
        atomic_write_text(out, "".join(line + "\n" for line in lines))
    except OSError as e:  # checked before the fit, yet the disk may fill up or the folder go
        raise InputError(f"cannot write the file: {e.strerror or e}", where=str(out)) from None
    stats = batch_summary(cands, schema, seeds.records)
    failed = len(cands) - len(lines)
    if not args.quiet:
        parsed = [c.record for c in cands if c.parsed]
        broken = sum(bool(found.violations(r)) for r in parsed)
        if found.fds:
            print(f"dependencies: {broken}/{len(parsed)} records break one", file=sys.stderr)
        for line in copying_lines(copying(parsed, seeds.records, None, found)):
            print(f"copying: {line}", file=sys.stderr)
    print(
        f"wrote {len(lines)} records to {out} in {seconds:.1f}s "
        f"({failed} failed to decode; schema-valid {stats['schema_valid_rate']:.1%}, "
        f"seed copies {stats['exact_copy_rate']:.1%}, duplicates {stats['duplicate_rate']:.1%})",
        file=sys.stderr,
    )
    return 0


def _print_dependencies(deps: Dependencies, generator: str, *, quiet: bool) -> None:
    """The seeds' dependencies and keys in force, what the settings did not act on, and whether the
    generator keeps them."""
    from aod_core.generators import conditioning_note

    for note in deps.notes:
        print(f"note: {note}", file=sys.stderr)
    if not deps:
        return
    if not quiet:
        print(f"dependencies: {deps.summary()}", file=sys.stderr)
    note = conditioning_note(generator)
    if note:
        print(f"note: {note}", file=sys.stderr)


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
            print(
                f"  reward {d['reward']:.3f}  TSR {d['task_success_rate']:.1%}  schema-valid {d['schema_valid_rate']:.1%}  "
                f"overlap {d['field_overlap']:.2f}  dup {d['duplicate_rate']:.1%}  distinct-2 {d['distinct_2']:.2f}  "
                f"+{d['accepted_new']} accepted  ({d['generate_s']:.0f}s generate / {d['judge_s']:.0f}s judge / "
                f"{d['optimize_s']:.0f}s optimize)",
                file=sys.stderr,
                flush=True,
            )
        elif e.kind == "prompt_chosen":
            what = "new prompt from the optimizer" if d["changed"] else "incumbent kept"
            if d.get("confirmed") is False:
                what = "incumbent kept: the probe's best proposal lost on the second probe"
            print(
                f"  {what} (probe reward {d['best_reward']:.3f} vs incumbent {d['incumbent_reward']:.3f})",
                file=sys.stderr,
                flush=True,
            )

    return show


def _finish_run(store: RunStore, status: str) -> int:
    accepted = len(store.accepted())
    print(
        f"run {status}: {store.iterations_done()} iterations, {accepted} accepted records in {store.path}",
        file=sys.stderr,
    )
    return 0


def _drive(store: RunStore, args: argparse.Namespace) -> int:
    from aod_core.runs.setup import open_loop  # the agent stack (transformers) loads only for commands that need it

    progress = _Progress(args.quiet)
    try:
        try:
            handle = open_loop(store, on_event=_loop_printer(args.quiet), on_fit=progress.fit)
        except InputError as e:
            e.before_start = True  # refused while setting up: the loop did no work in this folder
            raise
        status = handle.loop.run()
    except KeyboardInterrupt:
        store.set_status("interrupted", iteration=store.iterations_done())
        print(
            f"aod: interrupted; {store.iterations_done()} iterations are saved, continue with: aod resume {store.path}",
            file=sys.stderr,
        )
        return 130
    finally:
        store.release()  # the folder is free for the next writer as soon as this one is done
    return _finish_run(store, status)


def cmd_run(args: argparse.Namespace) -> int:
    from aod_core.agents.judge import DEFAULT_RUBRIC
    from aod_core.agents.reward import RewardWeights
    from aod_core.runs.loop import LoopSettings
    from aod_core.runs.setup import RunConfig, create_run

    if args.fit_steps is not None and args.fit_steps < 1:
        raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    settings = settings_from_args(LoopSettings, args, weights=RewardWeights.parse(args.weights or ""))
    rubric = _read_rubric(args.rubric_file, DEFAULT_RUBRIC)
    prompt = build_prompt(args)
    config = RunConfig(
        generator=args.generator,
        judge=args.judge,
        optimizer=args.optimizer,
        task=prompt.text,
        rubric=rubric,
        prompt=prompt.to_dict(),
        loop=settings,
        drop_invalid=args.drop_invalid,
        device=args.device,
        scaffold=not args.no_scaffold,
        generator_config=generator_options(args),
        judge_settings=judge_settings(args),
        compile=args.compile,
        compiler=args.compiler or "",
        dependencies=dependency_settings(args),
    )
    existed = Path(args.out).exists()
    store = create_run(args.schema, args.seeds, args.out, config)
    try:
        return _drive(store, args)
    except InputError as e:
        if getattr(e, "before_start", False):
            _discard_unstarted(store, existed)
        raise


def _discard_unstarted(store: RunStore, existed: bool) -> None:
    """A new run refused while it was set up (a generator or judge that cannot learn from these
    seeds) leaves nothing to resume: its folder goes, so the same command can be run again once the
    cause is fixed. A run that failed once its loop had started (a model that fails to load mid-run)
    keeps its folder for ``aod resume``, and a folder with saved iterations is kept whatever happens."""
    import shutil

    if store.iterations_done():
        return
    store.release()
    shutil.rmtree(store.path, ignore_errors=True)
    if existed:
        store.path.mkdir(exist_ok=True)  # the user's empty folder stays theirs


def cmd_resume(args: argparse.Namespace) -> int:
    from aod_core.chat.endpoints import check_resume
    from aod_core.runs.setup import RunConfig, check_inputs

    def finished(s: RunStore) -> bool:
        loop = RunConfig.from_dict(s.config).loop
        return s.iterations_done() >= loop.iterations or (loop.target is not None and len(s.accepted()) >= loop.target)

    found = RunStore.open(args.run_dir, repair=False)  # committed iterations only: no claim needed to read
    refuse_if_busy(found.path)
    if not finished(found):  # refusals before the claim leave the folder exactly as it was
        check_inputs(found)
        check_resume(found.config, confirmed=args.trust_endpoint)
    store = RunStore.open(args.run_dir)  # claims the folder: a second resume or a live run is refused
    if finished(store):  # killed after its last iteration was saved: it is finished, and the folder says so now
        store.set_status("finished", iteration=store.iterations_done(), accepted=len(store.accepted()))
        return _finish_run(store, "already finished")
    return _drive(store, args)


def cmd_bench(args: argparse.Namespace) -> int:
    from aod_core.runs.bench import Bench, BenchConfig, markdown_table  # the agent stack loads only for this command

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.fit_steps is not None and args.fit_steps < 1:
        raise InputError(f"--fit-steps must be >= 1, got {args.fit_steps}")
    config = settings_from_args(
        BenchConfig,
        args,
        methods=methods,
        task=args.task or "",
        generator_config=generator_options(args),
        judge_settings=judge_settings(args),
        dependencies=dependency_settings(args),
    )
    log = (lambda s: None) if args.quiet else (lambda s: print(f"[bench] {s}", file=sys.stderr, flush=True))
    results = Bench(args.dataset, args.out, config, log=log).run()
    print(markdown_table(results), end="")
    print(f"wrote results.json, results.md and charts.html to {args.out}", file=sys.stderr)
    return 0


def generator_options(args: argparse.Namespace) -> dict:
    """The generator's own settings from --gen-opt KEY=VALUE (values read as JSON when they parse)."""
    opts = parse_options(getattr(args, "gen_opt", None) or [])
    if getattr(args, "trust_remote_code", False):
        opts["trust_remote_code"] = True
    if getattr(args, "fit_steps", None):
        opts["train_steps"] = args.fit_steps
    return opts


COMMANDS = {
    "sample": cmd_sample,
    "run": cmd_run,
    "resume": cmd_resume,
    "export": cmd_export,
    "report": cmd_report,
    "bench": cmd_bench,
    "judge": cmd_judge,
    "generate": cmd_generate,
    "audit": cmd_audit,
}


def make_parser():
    """The ``aod`` parser with every command wired to its handler here."""
    return build_parser(COMMANDS)


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as e:
        print(f"aod: error: {strip_credentials(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aod: interrupted; nothing was written", file=sys.stderr)
        return 130
