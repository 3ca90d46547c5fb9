"""The ``aod`` command line: every command's flags, their help, and their defaults.

Defaults are read from the engine's dataclasses (``RunConfig``, ``LoopSettings``, ``JudgeSettings``,
``BenchConfig``, ``BulkSettings``, ``Sampling``), never written here a second time; model spec forms
come from the generator and chat registries. ``make_parser(commands)`` wires each sub-command to its
handler in ``aod_core.cli``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, NoReturn

from aod_core.agents.compiler import COMPILE_MODES
from aod_core.agents.judge import MODES, JudgeSettings
from aod_core.canvas.prompt import Sampling
from aod_core.chat import SPEC_FORMS as CHAT_FORMS
from aod_core.data.dependencies import MODES as DEPENDENCY_MODES
from aod_core.data.dependencies import DependencySettings
from aod_core.data.export import FORMATS
from aod_core.errors import InputError
from aod_core.generators import EmbeddedConfig, spec_forms
from aod_core.runs.bench import METHODS, BenchConfig
from aod_core.runs.bulk import SHARD_SIZE, BulkSettings
from aod_core.runs.setup import RunConfig

RUN, LOOP, JUDGE, BENCH, SAMPLING = RunConfig(), RunConfig().loop, JudgeSettings(), BenchConfig(), Sampling()
BULK = BulkSettings(n=1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2, as every bad input
        self.exit(2, f"aod: error: {message}\n")


# Whole-number flags: counts and sizes up to what torch and numpy index with; seeds are what numpy's
# and torch's generators all take (``--seed 99999999999999999999999`` ended in an OverflowError
# after the fit).
MAX_COUNT = 2**31 - 1
MAX_SEED = 2**32 - 1
# Flags naming a file or folder: any bytes the file system takes; every other text flag must be
# UTF-8 (an undecodable byte in argv arrives as a lone surrogate and fails when it is written).
PATH_FLAGS = {"schema", "seeds", "records", "holdout", "out", "run_dir", "run", "dataset", "prompt_file", "rubric_file"}
OUT_FILE = {"sample", "report", "export", "judge", "audit"}
OUT_FOLDER = {"run", "bench", "generate"}


def preflight(p: argparse.ArgumentParser, command: str, args: argparse.Namespace) -> None:
    """The checks every command gets before it reads its inputs: flag values, the output path and
    the run folder it works on. InputError, one line, for the first that fails; nothing is written."""
    from aod_core.cli.outputs import check_out_file, check_out_folder
    from aod_core.runs.checks import check_run_folder

    for action in p._actions:
        value = getattr(args, action.dest, None)
        if value is not None:
            check_flag(
                action.option_strings[0] if action.option_strings else action.dest, action.dest, action.type, value
            )
    out = getattr(args, "out", None)
    if out and command in OUT_FILE:
        check_out_file(Path(out))
    elif out and command in OUT_FOLDER:
        check_out_folder(Path(out))
    if command == "resume":  # report, export and generate check theirs in their own order
        check_run_folder(args.run_dir)


def check_flag(flag: str, dest: str, kind: Any, value: Any) -> None:
    """One flag's value: finite when a number, in range when whole, UTF-8 when text."""
    if kind is float and not math.isfinite(value):
        raise InputError(f"{flag} must be a finite number, got {value}")
    if kind is int and dest == "seed" and not 0 <= value <= MAX_SEED:
        raise InputError(f"{flag} must be a whole number from 0 to {MAX_SEED}, got {value}")
    if kind is int and dest != "seed" and value > MAX_COUNT:
        raise InputError(f"{flag} must be at most {MAX_COUNT}, got {value}")
    if dest == "device":
        from aod_core.generators.embedded import pick_device

        try:
            pick_device(value)
        except InputError as e:
            raise InputError(f"{flag}: {e}") from None
    if dest not in PATH_FLAGS:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and any("\ud800" <= ch <= "\udfff" for ch in text):
                raise InputError(f"{flag} is not UTF-8 text: {text!r}")


def _checked(p: argparse.ArgumentParser, command: str, handler: Callable[[argparse.Namespace], int]):
    """``handler`` behind the command's preflight checks."""

    def run(args: argparse.Namespace) -> int:
        preflight(p, command, args)
        return handler(args)

    run.__wrapped__ = handler  # type: ignore[attr-defined]
    return run


def settings_from_args(cls, args: argparse.Namespace, **overrides):
    """``cls`` (a settings dataclass) from the flags named like its fields, plus ``overrides``."""
    given = {f.name: getattr(args, f.name) for f in fields(cls) if f.name not in overrides and hasattr(args, f.name)}
    return cls(**given, **overrides)


def _opt(p: argparse.ArgumentParser, flag: str, default, help: str, **kw) -> None:
    """A flag whose default comes from a settings dataclass; the help says it (numbers typed by it)."""
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        kw.setdefault("type", type(default))
    shown = f"{default:g}" if isinstance(default, float) else default
    p.add_argument(flag, default=default, help=f"{help} (default {shown})", **kw)


def _add_prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--prompt",
        help="instruction text (compiled into scaffold edits for generators that cannot read it; see --compile)",
    )
    p.add_argument(
        "--compile",
        choices=list(COMPILE_MODES),
        default=RUN.compile,
        help="compile the instruction text into scaffold edits (pins, forbids, ranges, biases, "
        "temperature): auto = for generators that cannot read text (embedded, difflm), on = also "
        f"for hf: on top of the text, off = never (default {RUN.compile})",
    )
    p.add_argument(
        "--compiler",
        default=None,
        help="chat model asked about the clauses the compiler's rules cannot map (none = rules only; "
        "default: embedded for sample, the optimizer's model for run)",
    )
    p.add_argument("--prompt-file", help="a prompt JSON (text, pins, forbid, ranges, bias, sampling)")
    p.add_argument(
        "--pin", action="append", metavar="PATH=VALUE", help="fix a field's value, e.g. island=Dream (repeatable)"
    )
    p.add_argument("--forbid", action="append", metavar="PATH=VALUE", help="never generate this value (repeatable)")
    p.add_argument("--steps", type=int, help="diffusion steps (default: one per masked position)")
    p.add_argument("--temperature", type=float, help=f"sampling temperature (default {SAMPLING.temperature})")
    p.add_argument("--remasking", choices=["low_confidence", "random"])
    p.add_argument("--blocks", type=int, help=f"semi-autoregressive blocks (default {SAMPLING.num_blocks})")
    p.add_argument("--threshold", type=float, help="Fast-dLLM parallel commit threshold in (0, 1]")


def _add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", required=True, help="JSON Schema file (draft-04, -06, -07, 2019-09 or 2020-12)")
    p.add_argument("--seeds", required=True, help="seed records: .jsonl, .json (array) or .csv")
    p.add_argument(
        "--generator", default=RUN.generator, help=f"generator spec: {spec_forms()} (default {RUN.generator})"
    )
    p.add_argument("--seed", type=int, default=LOOP.seed, help=f"random seed (default {LOOP.seed})")
    p.add_argument("--drop-invalid", action="store_true", help="drop seeds that fail the schema instead of stopping")
    p.add_argument("--no-scaffold", action="store_true", help="raw-text diffusion without the scaffold (ablation)")
    p.add_argument("--device", default=None, help="cpu, cuda or auto (default: auto)")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    _add_gen_opt(p)
    _add_prompt_args(p)
    _add_dependency_args(p)


def _add_judge_args(p: argparse.ArgumentParser) -> None:
    d = JUDGE
    p.add_argument(
        "--judge-mode",
        choices=MODES,
        default=d.mode,
        help="how the judge decides: plausibility (evidence fitted on the seeds), combined (an LLM reads "
        "that evidence; the plausibility model can veto), llm (the LLM alone); auto: plausibility "
        "for --judge embedded, combined for any other model (default)",
    )
    _opt(p, "--accept-share", d.accept_share, "share of real records the plausibility threshold accepts")
    p.add_argument(
        "--near-copy",
        type=float,
        default=d.near_copy,
        help=f"shingle Jaccard similarity from which a record is a near copy of a seed or of an earlier "
        f"accepted record (default {d.near_copy}; above 1 turns the check off)",
    )
    p.add_argument(
        "--near-numbers",
        type=float,
        default=d.near_numbers,
        help="a record with a seed's key (or, without keys, every value that is not a number equal to one seed's) "
        "and every number within this share of the field's seed range is a near copy "
        f"(default {d.near_numbers:g}; negative turns the check off)",
    )
    _opt(p, "--veto", d.veto, "combined mode: plausibility score below which the LLM's verdict is overruled")


def judge_settings(args: argparse.Namespace):
    return JudgeSettings(
        mode=args.judge_mode,
        accept_share=args.accept_share,
        near_copy=args.near_copy,
        near_numbers=args.near_numbers,
        veto=args.veto,
    )


def _add_dependency_args(p: argparse.ArgumentParser) -> None:
    d = DependencySettings()
    p.add_argument(
        "--dependencies",
        choices=list(DEPENDENCY_MODES),
        default=d.mode,
        help="the seeds' dependencies (a field fixed by another: iso_num by country) and keys (fields no two "
        "seeds share, like (country, year)): auto = found on the seeds, kept while sampling and checked by "
        f"the judge; off = neither (default {d.mode})",
    )
    p.add_argument(
        "--ignore-dependency",
        action="append",
        default=[],
        metavar="'A -> B' | '(A, B)'",
        help="a dependency or key found on the seeds that does not hold (repeatable)",
    )
    p.add_argument(
        "--add-dependency",
        action="append",
        default=[],
        metavar="'A -> B' | '(A, B)'",
        help="a dependency or key that holds though the seeds show it too rarely to be found (repeatable)",
    )


def dependency_settings(args: argparse.Namespace) -> DependencySettings:
    s = DependencySettings(mode=args.dependencies, ignore=list(args.ignore_dependency), add=list(args.add_dependency))
    s.check()
    return s


def _add_gen_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--gen-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a generator setting, repeatable (e.g. batch=16, decode=vanilla, train_steps=300)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow an hf: model folder to run the Python code it ships (only for folders you trust); same as --gen-opt trust_remote_code=true",
    )


def _command(sub, commands: dict, name: str, help: str) -> argparse.ArgumentParser:
    """A sub-command wired to its handler in ``commands``."""
    p = sub.add_parser(name, help=help)
    p.set_defaults(func=_checked(p, name, commands[name]))
    return p


def make_parser(commands: dict[str, Callable[[argparse.Namespace], int]]) -> argparse.ArgumentParser:
    """The ``aod`` parser; ``commands`` maps each sub-command's name to its handler."""
    parser = _Parser(prog="aod", description="AoD Studio: schema-scaffolded diffusion generation of JSON records.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = _command(sub, commands, "sample", "the diffusion generator alone with a fixed prompt (static-prompt baseline)")
    _add_inputs(p)
    p.add_argument("--n", type=int, default=100, help="how many candidates (default 100)")
    p.add_argument("--out", required=True, help="output JSONL file")

    p = _command(sub, commands, "run", "the AoD loop: generate, judge, optimize the prompt; records go to a run folder")
    _add_inputs(p)
    _opt(p, "--judge", RUN.judge, f"chat model spec for the judge: {CHAT_FORMS}")
    _opt(p, "--optimizer", RUN.optimizer, "chat model spec for the prompt optimizer")
    _opt(p, "--iterations", LOOP.iterations, "iteration budget")
    _opt(p, "--batch", LOOP.batch, "candidates per iteration")
    p.add_argument("--target", type=int, default=LOOP.target, help="stop once this many records are accepted")
    _opt(p, "--proposals", LOOP.proposals, "candidate prompts per iteration from the optimizer's chat model")
    _opt(
        p,
        "--repairs",
        LOOP.repairs,
        "more candidate prompts per iteration read off the judge's findings "
        "(lower or raise the temperature, keep the most flagged number in the seeds' usual range): 0, 1 or 2",
    )
    _opt(p, "--probe", LOOP.probe, "probe batch size for comparing prompts")
    p.add_argument(
        "--no-confirm",
        dest="confirm",
        action="store_false",
        help="let the probe's best proposal replace the incumbent without winning again on a second probe batch",
    )
    w = LOOP.weights
    p.add_argument(
        "--weights",
        help=f"reward weights (default tsr={w.tsr},judge={w.judge},novelty={w.novelty},diversity={w.diversity}; omitted keys keep their default)",
    )
    p.add_argument("--rubric-file", help="text file with the judge's rubric")
    p.add_argument(
        "--fit-steps",
        type=int,
        help=f"training steps of the embedded generator (default {EmbeddedConfig().train_steps})",
    )
    _opt(
        p,
        "--max-agent-failures",
        LOOP.max_agent_failures,
        "stop the run after this many agent answers in a row were unusable (time-outs, server errors, wrong shape)",
    )
    _add_judge_args(p)
    p.add_argument("--out", required=True, help="run folder (must not exist or be empty)")

    p = _command(sub, commands, "resume", "continue a run that was stopped or killed")
    p.add_argument("run_dir")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument(
        "--trust-endpoint",
        action="store_true",
        help="send your OPENAI_API_KEY to a model server this run names that you have not used before",
    )

    p = _command(sub, commands, "export", "write a run's accepted records as JSONL, CSV or Parquet")
    p.add_argument("run_dir")
    p.add_argument("--format", required=True, choices=list(FORMATS))
    p.add_argument("--out", required=True, help="output file")
    p.add_argument(
        "--ignore-overrides",
        action="store_true",
        help="export the agents' verdicts only, without the accept/reject overrides made in the app",
    )

    p = _command(sub, commands, "report", "write a run's report as one self-contained HTML page")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="output HTML file")

    p = _command(sub, commands, "bench", "AoD against its baselines (static DLM, AR-only, ablations) on one dataset")
    p.add_argument("--dataset", required=True, help="folder with schema.json, seeds.jsonl and optional holdout.jsonl")
    p.add_argument("--out", required=True, help="output folder (new or empty)")
    p.add_argument(
        "--methods",
        default=",".join(BENCH.methods),
        help=f"comma-separated: {', '.join(METHODS)} "
        f"(difflm is DiffLM sampled like static_dlm; 8–13 min to fit on 2 CPU cores; default {','.join(BENCH.methods)})",
    )
    p.add_argument("--seed", type=int, default=BENCH.seed)
    _opt(p, "--iterations", BENCH.iterations, "AoD iterations; every method gets iterations x batch records")
    p.add_argument("--batch", type=int, default=BENCH.batch)
    p.add_argument("--proposals", type=int, default=BENCH.proposals)
    p.add_argument("--repairs", type=int, default=BENCH.repairs, help=f"as for run (default {BENCH.repairs})")
    p.add_argument("--no-confirm", dest="confirm", action="store_false", help="as for run")
    p.add_argument("--probe", type=int, default=BENCH.probe)
    p.add_argument("--generator", default=BENCH.generator)
    p.add_argument("--judge", default=BENCH.judge, help="chat model of the judge (and of ar_only)")
    p.add_argument("--optimizer", default=BENCH.optimizer)
    p.add_argument("--task", help="task description given to every method")
    p.add_argument("--fit-steps", type=int, help="embedded generator training steps (default: its own)")
    _add_judge_args(p)
    _add_dependency_args(p)
    _add_gen_opt(p)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")

    p = _command(sub, commands, "judge", "judge any records against the seeds: one verdict line per record, in order")
    p.add_argument("--schema", required=True, help="JSON Schema file")
    p.add_argument("--seeds", required=True, help="real records the judge calibrates on: .jsonl, .json or .csv")
    p.add_argument(
        "--records",
        required=True,
        help="records to judge: .jsonl (a line that is not strict JSON is judged and rejected), .json or .csv",
    )
    p.add_argument(
        "--judge", default=RUN.judge, help=f"chat model spec: {CHAT_FORMS} (embedded: the plausibility judge alone)"
    )
    p.add_argument("--task", help="what the records are (read by LLM judges)")
    p.add_argument("--rubric-file", help="text file with the LLM judge's rubric")
    _add_judge_args(p)
    _add_dependency_args(p)
    p.add_argument("--drop-invalid", action="store_true", help="drop seeds that fail the schema instead of stopping")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--out", required=True, help="output JSONL: one verdict per input record")

    p = _command(
        sub,
        commands,
        "generate",
        help="N new records from a run's best prompt, on Ray (sharded Parquet + JSONL, resumable)",
    )
    p.add_argument("--run", required=True, help="run folder whose incumbent prompt and generator are used")
    p.add_argument("--n", type=int, required=True, help="how many unique records to write")
    p.add_argument("--out", required=True, help="output folder (new, empty, or an unfinished job to resume)")
    p.add_argument(
        "--ray",
        nargs="?",
        default=None,
        const=None,
        metavar="ADDRESS",
        help="Ray cluster to connect to (host:port, ray://host:10001, or auto for the one `ray start` runs "
        "here); without an address, or without --ray: a private local Ray instance with --workers CPUs",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="generator replicas, one per actor (default: this machine's CPUs, or the cluster's GPUs)",
    )
    _opt(p, "--batch", BULK.batch, "candidates per sampling call in a worker")
    p.add_argument(
        "--judge",
        default=BULK.judge,
        help="judge for every record: a chat model spec, or none for the exact checks only (default: the run's)",
    )
    p.add_argument(
        "--shards",
        type=int,
        default=BULK.shards,
        help=f"number of shards (default: one per {SHARD_SIZE:,} records, at least one per worker)",
    )
    _opt(p, "--seed", BULK.seed, "seed of the shards' seeds")
    _opt(p, "--cpus-per-worker", BULK.cpus_per_worker, "CPUs reserved per worker")
    p.add_argument(
        "--gpus-per-worker",
        type=float,
        default=BULK.gpus_per_worker,
        help="GPUs per worker (default: 1 when the cluster has GPUs)",
    )
    _opt(p, "--audit-sample", BULK.audit_sample, "records audited into audit.json")
    p.add_argument("--quiet", action="store_true")

    p = _command(sub, commands, "audit", "the Data Auditor metrics of a JSONL file of generated records")
    p.add_argument("--schema", required=True)
    p.add_argument("--seeds", required=True)
    p.add_argument(
        "--records",
        required=True,
        help="generated records: .jsonl (a line that is not strict JSON counts as invalid), .json or .csv",
    )
    p.add_argument("--holdout", help="real records held out from the seeds (baselines for DCR and fidelity)")
    p.add_argument("--seed", type=int, default=0, help="seed of any subsampling")
    _add_dependency_args(p)
    p.add_argument("--out", help="write the JSON here instead of stdout")
    return parser
