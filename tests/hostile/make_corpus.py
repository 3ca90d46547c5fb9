"""The hostile-input corpus of issue 28: every case a command line, the files it reads, and the one
line ``aod`` must answer with.

``write_corpus(root)`` writes every file the cases read under ``root`` (seeds, schemas, records,
prompt files, datasets, run folders damaged by hand; the deep and big ones are generated here, never
committed) and returns the cases. Each case says, next to its command line, the regular expression
its one ``aod: error:`` line must match, so a changed message fails ``tests/test_hostile_corpus.py``.
``VALID`` cases are inputs that must be read, not refused, and whose figures must come out right.

Every refused case is refused before any model is fitted (the test fails a case that reaches a fit).

    python tests/hostile/make_corpus.py DIR     # writes the corpus into DIR and lists its cases
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEEP = 10_000
PATH_MAX_NAME = "n" * 300  # longer than any file system's name limit


@dataclass
class Case:
    command: str
    name: str
    argv: list[str]
    expect: str  # regex the single stderr line must match (after "aod: error: ")
    env: dict[str, str] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # paths outside the corpus that must not appear

    @property
    def id(self) -> str:
        return f"{self.command}:{self.name}"


@dataclass
class Valid:
    """Input that is read, not refused: ``figures`` are what its output must hold."""

    command: str
    name: str
    argv: list[str]
    out: str  # the output file whose figures are checked
    figures: dict[str, Any]

    @property
    def id(self) -> str:
        return f"{self.command}:{self.name}"


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "n": {"type": "integer", "minimum": 0},
        "x": {"type": "number"},
        "kind": {"enum": ["a", "b", "c"]},
    },
    "required": ["name"],
}
SEEDS = [{"name": f"bird {i}", "n": i, "x": i * 1.5, "kind": "abc"[i % 3]} for i in range(12)]


def _jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


class _Files:
    """Writes the corpus's files under ``root``; each method returns the path as text."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __call__(self, rel: str, data: str | bytes) -> str:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return str(p)

    def dir(self, rel: str) -> str:
        (self.root / rel).mkdir(parents=True, exist_ok=True)
        return str(self.root / rel)

    def path(self, rel: str) -> str:
        return str(self.root / rel)


def _run_folder(root: Path, name: str, *, config: Any = None, inputs: bool = True) -> Path:
    """A run folder as the runner leaves it after two iterations (no model needed to write one)."""
    from aod_core.runs.setup import RunConfig
    from aod_core.runs.store import IterationLog, RunStore

    cfg = json.loads(json.dumps(RunConfig(generator_config={"train_steps": 20}).to_dict()))
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    store = RunStore.create(root / name, cfg if config is None else {})
    if config is not None:  # text or bytes as written by hand, or settings to write as JSON
        raw = config if isinstance(config, (str, bytes)) else json.dumps(config)
        (store.path / "config.json").write_bytes(raw.encode() if isinstance(raw, str) else raw)
    for it, acc in enumerate(([SEEDS[0] | {"name": "new 1"}, SEEDS[1] | {"name": "new 2"}], [SEEDS[2] | {"n": 99}])):
        store.commit(
            IterationLog(
                it,
                candidates=[{"index": i, "record": r, "verdict": "accept"} for i, r in enumerate(acc)],
                prompts=[{"role": "next", "prompt": {"text": "p"}, "author": "initial", "reward": 0.5}],
                feedback=[{"feedback": "fine"}],
                accepted=acc,
                metrics={"reward": 0.5, "task_success_rate": 1.0},
            )
        )
    if inputs:
        (store.path / "inputs").mkdir()
        (store.path / "inputs" / "schema.json").write_text(json.dumps(SCHEMA))
        (store.path / "inputs" / "seeds.jsonl").write_text(_jsonl(SEEDS))
    store.set_status("stopped", iteration=2)
    return store.path


def _edit(path: Path, fn) -> None:
    path.write_text(fn(path.read_text()))


def _prepend(path: Path, data: bytes) -> None:
    path.write_bytes(data + path.read_bytes())


def _flag_args(flag: str, value: str | None) -> list[str]:
    """``--flag value``, or ``--flag=value`` given whole (argparse takes a bare "-inf" for an option)."""
    return [flag] if value is None else [flag, value]


def _flag_name(flag: str, value: str | None) -> str:
    return "flag_" + flag.lstrip("-").replace("=", "_") + ("" if value is None else f"_{value}")


def _config_with(**changes: Any) -> dict:
    from aod_core.runs.setup import RunConfig

    cfg = json.loads(json.dumps(RunConfig(generator_config={"train_steps": 20}).to_dict()))
    for dotted, value in changes.items():
        node = cfg
        *parents, last = dotted.split("__")
        for k in parents:
            node = node[k]
        node[last] = value
    return cfg


# Run folders damaged by hand: name -> (how, the line resume, report, export and generate answer with).
RUN_DAMAGE: dict[str, tuple[Any, str]] = {
    "config_not_json": ("{nope", r"config\.json: the run's configuration is not valid JSON at line 1, column 2"),
    "config_empty": ("", r"config\.json: the run's configuration is not valid JSON at line 1, column 1"),
    "config_list": ("[1, 2]", r"config\.json: the run's configuration must be a JSON object, found an array"),
    "config_string": ('"embedded"', r"config\.json: the run's configuration must be a JSON object, found a string"),
    "config_nan": ('{"generator": NaN}', r"config\.json: the run's configuration is not valid JSON: NaN is not valid"),
    "config_duplicate_key": (
        '{"generator": "embedded", "generator": "ar:embedded"}',
        r'config\.json: the run\'s configuration is not valid JSON: duplicate key "generator"',
    ),
    "config_not_utf8": (b'{"generator": "\xff"}', r"config\.json: the run's configuration is not UTF-8 text \(byte 15"),
    "config_deep": ('{"task": ' + "[" * DEEP + "]" * DEEP + "}", r"config\.json: .*nested deeper than 100 levels"),
    "config_unknown_key": (_config_with(bogus=1), r"config\.json: unknown setting\(s\) bogus"),
    "config_generator_number": (_config_with(generator=5), r"config\.json: generator must be text, found 5"),
    "config_loop_list": (_config_with(loop=[1]), r"config\.json: loop must be a JSON object, found an array"),
    "config_iterations_text": (
        _config_with(loop__iterations="5"),
        r'config\.json: loop\.iterations must be a whole number, found "5"',
    ),
    "config_batch_zero": (_config_with(loop__batch=0), r"config\.json: --batch must be >= 1, got 0"),
    "config_weights_negative": (
        _config_with(loop__weights__tsr=-1.0),
        r"config\.json: reward weights must be >= 0 with a positive sum",
    ),
    "config_train_steps_negative": (
        _config_with(generator_config={"train_steps": -5}),
        r"config\.json: embedded setting train_steps must be a whole number >= 1, got -5",
    ),
    "config_unknown_generator": (_config_with(generator="gpt-9"), r"config\.json: unknown generator spec 'gpt-9'"),
    "config_accept_share": (
        _config_with(judge_settings__accept_share=2.0),
        r"config\.json: --accept-share must be in \[0\.5, 1\), got 2\.0",
    ),
    "config_temperature_negative": (
        _config_with(prompt__sampling__temperature=-1),
        r"config\.json: prompt: sampling: temperature must be >= 0, got -1",
    ),
    "config_prompt_pins_list": (
        _config_with(prompt__pins=["name"]),
        r"config\.json: prompt: 'pins' must be an object of path: value",
    ),
    "metrics_list_lines": (
        lambda p: (p / "metrics.jsonl").write_text("[1]\n[2]\n"),
        r"metrics\.jsonl: line 1 of metrics\.jsonl is an array, not a JSON object",
    ),
    "metrics_iteration_text": (
        lambda p: _edit(p / "metrics.jsonl", lambda t: t.replace('"iteration": 0', '"iteration": "0"')),
        r"metrics\.jsonl: metrics\.jsonl line 1 should be iteration 0, found '0'",
    ),
    "metrics_total_text": (
        lambda p: _edit(p / "metrics.jsonl", lambda t: t.replace('"accepted_total": 2', '"accepted_total": "x"')),
        r"metrics\.jsonl: metrics\.jsonl line 1: accepted_total must be a whole number that never falls \(was 0\), found 'x'",
    ),
    "metrics_out_of_order": (
        lambda p: _edit(p / "metrics.jsonl", lambda t: "\n".join(reversed(t.split("\n")[:2])) + "\n"),
        r"metrics\.jsonl: metrics\.jsonl line 1 should be iteration 0, found 1",
    ),
    "metrics_damaged_middle_line": (
        lambda p: _edit(p / "metrics.jsonl", lambda t: t.replace('"iteration": 0', '"iteration": 0,,', 1)),
        r"metrics\.jsonl: line 1 of metrics\.jsonl is not valid JSON and more lines follow it",
    ),
    "metrics_a_folder": (
        lambda p: ((p / "metrics.jsonl").unlink(), (p / "metrics.jsonl").mkdir()),
        r"metrics\.jsonl: is not a file \(a folder\?\)",
    ),
    "metrics_missing": (
        lambda p: (p / "metrics.jsonl").unlink(),
        r"metrics\.jsonl missing from the run folder \(removed by hand\?\)",
    ),
    "accepted_scalars": (
        lambda p: (p / "accepted.jsonl").write_text("1\n2\n3\n"),
        r"accepted\.jsonl: line 1 of accepted\.jsonl is a number, not a JSON object",
    ),
    "accepted_cut_short": (
        lambda p: _edit(p / "accepted.jsonl", lambda t: t.split("\n", 1)[0] + "\n"),
        r"accepted\.jsonl: accepted\.jsonl holds 1 records but 3 were accepted by iteration 1",
    ),
    "accepted_not_utf8": (
        lambda p: _prepend(p / "accepted.jsonl", b'{"name": "\xff"}\n'),
        r"accepted\.jsonl: line 1 of accepted\.jsonl is not valid JSON and more lines follow it",
    ),
    "candidates_strings": (
        lambda p: (p / "candidates.jsonl").write_text('"a"\n"b"\n'),
        r"candidates\.jsonl: line 1 of candidates\.jsonl is a string, not a JSON object",
    ),
    "prompts_null": (
        lambda p: (p / "prompts.jsonl").write_text("null\n"),
        r"prompts\.jsonl: line 1 of prompts\.jsonl is null, not a JSON object",
    ),
    "feedback_arrays": (
        lambda p: (p / "feedback.jsonl").write_text("[]\n[]\n"),
        r"feedback\.jsonl: line 1 of feedback\.jsonl is an array, not a JSON object",
    ),
    "state_list": (
        lambda p: (p / "state.json").write_text("[1]"),
        r"state\.json: holds an array, not a JSON object \(edited by hand\?\)",
    ),
    "state_pid_text": (
        lambda p: (p / "state.json").write_text('{"status": "running", "pid": [1]}'),
        r"state\.json: pid must be a whole number and status text, found pid \[1\]",
    ),
    "config_missing": (lambda p: (p / "config.json").unlink(), r"not a run folder \(no config\.json\)"),
}


def write_corpus(root: str | os.PathLike) -> tuple[list[Case], list[Valid]]:
    """Write every file the corpus reads under ``root``; the refused cases and the valid ones."""
    root = Path(root)
    f = _Files(root)
    cases: list[Case] = []

    def case(command: str, name: str, argv: list[str], expect: str, **kw: Any) -> None:
        cases.append(Case(command, name, [command, *argv], expect, **kw))

    # ---- the good inputs every case changes one thing of ------------------------------------------
    schema = f("good/schema.json", json.dumps(SCHEMA))
    seeds = f("good/seeds.jsonl", _jsonl(SEEDS))
    records = f("good/records.jsonl", _jsonl(SEEDS[:3]))
    f("ds/schema.json", json.dumps(SCHEMA))
    f("ds/seeds.jsonl", _jsonl(SEEDS))
    dataset = f.path("ds")
    out_file = f.path("out/records.jsonl")  # out/ exists and stays empty
    f.dir("out")
    a_file = f("plain.txt", "not a folder\n")
    os.mkfifo(root / "fifo")
    fifo = f.path("fifo")
    full = f.dir("full")  # an output folder that is not empty
    f("full/x.txt", "x")
    run = str(_run_folder(root, "run"))
    bad_out_files = {  # what a file output path may be: name -> (path, the line)
        "parent_missing": (f.path("nowhere/o.x"), r"nowhere/o\.x: output folder .*/nowhere does not exist"),
        "a_folder": (f.path("out"), r"/out: is a folder; give a file path"),
        "parent_is_a_file": (a_file + "/o.x", r"plain\.txt/o\.x: .*/plain\.txt is a file, not a folder"),
        "etc_passwd_parent": ("/etc/passwd/o.x", r"/etc/passwd/o\.x: /etc/passwd is a file, not a folder"),
        "proc": ("/proc/aod-o.x", r"/proc/aod-o\.x: cannot write in /proc: "),
        "a_fifo": (fifo, r"/fifo: is not a regular file \(a device, fifo or socket\)"),
        # a device: the atomic write would rename its file over the device node (the test guards
        # os.replace, so a regression fails there instead of replacing /dev/full)
        "dev_full": ("/dev/full", r"/dev/full: is not a regular file \(a device, fifo or socket\)"),
        "name_too_long": (f.path(PATH_MAX_NAME), r"the name is too long for this file system"),
    }
    bad_out_folders = {
        "parent_missing": (f.path("nowhere/r"), r"nowhere/r: output folder .*/nowhere does not exist"),
        "a_file": (a_file, r"plain\.txt: is a file; give a folder"),
        "parent_is_a_file": (a_file + "/r", r"plain\.txt/r: .*/plain\.txt is a file, not a folder"),
        "proc": ("/proc/aod-r", r"/proc/aod-r: cannot write in /proc: "),
        "name_too_long": (f.path(PATH_MAX_NAME), r"the name is too long for this file system"),
    }
    nowhere = [f.path("nowhere"), "/proc/aod-o.x", "/proc/aod-r"]

    # ---- seeds: values no consumer can hold -------------------------------------------------------
    bad_seeds = {
        "lone_surrogate": (
            '{"name": "\\ud800"}\n',
            r"bad_lone_surrogate\.jsonl:1: \$\.name: text holds a lone surrogate \\ud800",
        ),
        "lone_low_surrogate_in_key": (
            '{"name": "a"}\n{"name": "b", "\\udc00": 1}\n',
            r"\.jsonl:2: \$: a key's text holds a lone surrogate \\udc00",
        ),
        "number_1e400": ('{"name": "a", "x": 1e400}\n', r"\.jsonl:1: \$\.x: 1e400 is not a finite number"),
        "number_minus_1e999": ('{"name": "a", "x": -1e999}\n', r"\.jsonl:1: \$\.x: -1e999 is not a finite number"),
        "integer_400_digits": (
            '{"name": "a", "n": 1' + "0" * 400 + "}\n",
            r"\.jsonl:1: \$\.n: 100000000000… \(401 characters\) is not a finite number",
        ),
        "integer_5000_digits": ('{"name": "a", "n": ' + "9" * 5000 + "}\n", r"\(5000 characters\) is not a finite"),
        "nested_1e400": ('{"name": "a", "x": {"y": [1, 2e308]}}\n', r"\.jsonl:1: \$\.x\.y\[1\]: 2e308 is not a finite"),
        "utf16": ('{"name": "a"}\n'.encode("utf-16"), r"\.jsonl: file is UTF-16 text; save it as UTF-8"),
    }
    for name, (data, expect) in bad_seeds.items():
        path = f(f"seeds/bad_{name}.jsonl", data)
        case("sample", f"seeds_{name}", ["--schema", schema, "--seeds", path, "--out", out_file], expect)
    case(
        "sample",
        "seeds_json_array_1e400",
        [
            "--schema",
            schema,
            "--seeds",
            f("seeds/a.json", '[{"name": "a"}, {"name": "b", "x": 1e400}]'),
            "--out",
            out_file,
        ],
        r"seeds/a\.json: \$\[1\]\.x: 1e400 is not a finite number",
    )
    case(
        "sample",
        "seeds_csv_1e400_is_not_a_number",
        ["--schema", schema, "--seeds", f("seeds/a.csv", "name,x\na,1e400\n"), "--out", out_file],
        r"seeds/a\.csv:2: \$\.x: '1e400' is not of type 'number'",
    )
    case(
        "sample",
        "seeds_a_folder",
        ["--schema", schema, "--seeds", f.dir("seeds/folder.jsonl"), "--out", out_file],
        r"folder\.jsonl: cannot read file: Is a directory",
    )
    case(
        "sample",
        "seeds_missing",
        ["--schema", schema, "--seeds", f.path("seeds/none.jsonl"), "--out", out_file],
        r"none\.jsonl: cannot read file: No such file or directory",
    )
    case(
        "sample",
        "seeds_txt",
        ["--schema", schema, "--seeds", f("seeds/s.txt", '{"name": "a"}\n'), "--out", out_file],
        r"s\.txt: unsupported records file type '\.txt'",
    )
    case(
        "run",
        "seeds_lone_surrogate",
        ["--schema", schema, "--seeds", f.path("seeds/bad_lone_surrogate.jsonl"), "--out", f.path("out/run")],
        r"\.jsonl:1: \$\.name: text holds a lone surrogate \\ud800",
    )
    case(
        "run",
        "seeds_1e400",
        ["--schema", schema, "--seeds", f.path("seeds/bad_number_1e400.jsonl"), "--out", f.path("out/run")],
        r"\.jsonl:1: \$\.x: 1e400 is not a finite number",
    )
    case(
        "judge",
        "seeds_1e400",
        ["--schema", schema, "--seeds", f.path("seeds/bad_number_1e400.jsonl"), "--records", records]
        + ["--out", out_file],
        r"\.jsonl:1: \$\.x: 1e400 is not a finite number",
    )
    case(
        "audit",
        "seeds_lone_surrogate",
        ["--schema", schema, "--seeds", f.path("seeds/bad_lone_surrogate.jsonl"), "--records", records],
        r"\.jsonl:1: \$\.name: text holds a lone surrogate",
    )
    case(
        "audit",
        "holdout_1e400",
        [
            "--schema",
            schema,
            "--seeds",
            seeds,
            "--records",
            records,
            "--holdout",
            f.path("seeds/bad_number_1e400.jsonl"),
        ],
        r"\.jsonl:1: \$\.x: 1e400 is not a finite number",
    )

    # ---- schemas ----------------------------------------------------------------------------------
    def schema_case(name: str, doc: Any, expect: str, seeds_path: str = seeds, env: dict | None = None) -> None:
        data = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
        path = f(f"schemas/{name}.json", data)
        case(
            "sample",
            f"schema_{name}",
            ["--schema", path, "--seeds", seeds_path, "--out", out_file],
            expect,
            env=env or {},
        )

    props = SCHEMA["properties"]
    schema_case(
        "maximum_1e400",
        '{"type": "object", "properties": {"x": {"type": "number", "maximum": 1e400}}}',
        r"maximum_1e400\.json: \$\.properties\.x\.maximum: 1e400 is not a finite number",
    )
    schema_case(
        "lone_surrogate_in_enum",
        '{"type": "object", "properties": {"k": {"enum": ["a", "\\udfff"]}}}',
        r"\$\.properties\.k\.enum\[1\]: text holds a lone surrogate \\udfff",
    )
    schema_case(
        "enum_100000",
        {"type": "object", "properties": {"k": {"enum": [f"v{i}" for i in range(100_000)]}}},
        r"\$\.k: an enum of 100,000 values is more than the scaffold's 10,000 choice values \(set AOD_MAX_CHOICES",
        seeds_path=f("seeds/k.jsonl", '{"k": "v1"}\n{"k": "v2"}\n'),
    )
    schema_case(
        "enum_10001",
        {"type": "object", "properties": {"k": {"enum": list(range(10_001))}}},
        r"\$\.k: an enum of 10,001 values is more than the scaffold's 10,000",
        seeds_path=f("seeds/k_int.jsonl", '{"k": 1}\n{"k": 2}\n'),
    )
    schema_case(
        "enums_past_a_lowered_budget",
        {"type": "object", "properties": {**props, "kind2": {"enum": ["d", "e", "f"]}}},
        r"\$\.kind2: the scaffold's choice values \(enum members and the seeds' categories\) pass 5 here",
        seeds_path=f("seeds/kind2.jsonl", _jsonl([r | {"kind2": "def"[i % 3]} for i, r in enumerate(SEEDS)])),
        env={"AOD_MAX_CHOICES": "5"},
    )
    schema_case(
        "budget_env_not_a_number",
        SCHEMA,
        r"AOD_MAX_CHOICES must be a number, got 'lots'",
        env={"AOD_MAX_CHOICES": "lots"},
    )
    case(
        "run",
        "schema_enum_100000",
        [
            "--schema",
            f.path("schemas/enum_100000.json"),
            "--seeds",
            f.path("seeds/k.jsonl"),
            "--out",
            f.path("out/run"),
        ],
        r"\$\.k: an enum of 100,000 values",
    )
    case(
        "sample",
        "schema_a_folder",
        ["--schema", f.dir("schemas/folder.json"), "--seeds", seeds, "--out", out_file],
        r"folder\.json: cannot read schema file: Is a directory",
    )
    case(
        "sample",
        "schema_name_too_long",
        ["--schema", f.path(PATH_MAX_NAME), "--seeds", seeds, "--out", out_file],
        r"cannot read schema file: File name too long",
    )

    # ---- flags: numbers out of range, nan/inf, huge, negative, wrong type ------------------------
    sample = ["--schema", schema, "--seeds", seeds, "--out", out_file]
    for flag, value, expect in (
        ("--temperature", "nan", r"--temperature must be a finite number, got nan"),
        ("--temperature", "inf", r"--temperature must be a finite number, got inf"),
        ("--temperature=-inf", None, r"--temperature must be a finite number, got -inf"),
        ("--temperature", "-0.5", r"temperature must be >= 0, got -0\.5"),
        ("--temperature", "1e400", r"--temperature must be a finite number, got inf"),
        ("--threshold", "nan", r"--threshold must be a finite number, got nan"),
        ("--threshold", "0", r"threshold must be in \(0, 1\], got 0\.0"),
        ("--threshold", "1.5", r"threshold must be in \(0, 1\], got 1\.5"),
        ("--steps", "0", r"sampling steps must be >= 1, got 0"),
        ("--steps", "99999999999999999999", r"--steps must be at most 2147483647, got 99999999999999999999"),
        ("--blocks", "-3", r"num_blocks must be >= 1, got -3"),
        ("--n", "0", r"--n must be >= 1, got 0"),
        ("--n", "-5", r"--n must be >= 1, got -5"),
        ("--n", "99999999999999999999", r"--n must be at most 2147483647"),
        ("--seed", "99999999999999999999999", r"--seed must be a whole number from 0 to 4294967295, got 9+"),
        ("--seed", "-1", r"--seed must be a whole number from 0 to 4294967295, got -1"),
        ("--seed", "4294967296", r"--seed must be a whole number from 0 to 4294967295, got 4294967296"),
        ("--n", "ten", r"argument --n: invalid int value: 'ten'"),
        ("--temperature", "hot", r"argument --temperature: invalid float value: 'hot'"),
        ("--seed", "1.5", r"argument --seed: invalid int value: '1\.5'"),
        ("--remasking", "sometimes", r"argument --remasking: invalid choice: 'sometimes'"),
        ("--prompt", "caf\udce9", r"--prompt is not UTF-8 text: 'caf\\udce9'"),
        ("--pin", "name=\udcff", r"--pin is not UTF-8 text"),
        ("--pin", "name", r"--pin expects PATH=VALUE, got 'name'"),
        ("--generator", "gpt-9", r"unknown generator spec 'gpt-9'"),
        ("--generator", "ar:", r"generator 'ar:' needs a chat model spec after the colon"),
        ("--ignore-dependency", "name n", r"expected 'A -> B' or '\(A, B\)'"),
        ("--pin", "n=NaN", r'pin \$\.n: "NaN" is not a number'),
        ("--pin", "x=1e400", r'pin \$\.x: "1e400" is not a number'),
        ("--pin", "x=-Infinity", r'pin \$\.x: "-Infinity" is not a number'),
        ("--forbid", "n=NaN", r'forbid \$\.n: "NaN" is not a number'),
        ("--pin", "nope=1", r"no field '\$\.nope' in the scaffold"),
        ("--device", "tpu", r"--device: unknown device 'tpu' \(use cpu, cuda, cuda:N, mps or auto\)"),
    ):
        case("sample", _flag_name(flag, value), [*sample, *_flag_args(flag, value)], expect)
    case(
        "sample",
        "flag_no_scaffold_with_ar",
        [*sample, "--generator", "ar:embedded", "--no-scaffold"],
        r"ar: generators have no scaffold-free mode",
    )

    # generator options (--gen-opt): refused when the generator is built, before the fit
    for opt, expect in (
        ("train_steps=-5", r"embedded setting train_steps must be a whole number >= 1, got -5"),
        ("train_steps=0", r"embedded setting train_steps must be a whole number >= 1, got 0"),
        ("train_steps=1.5", r"generator 'embedded' setting train_steps must be a whole number, got 1\.5"),
        ("train_steps=many", r"setting train_steps must be a whole number, got 'many'"),
        ("train_steps=true", r"setting train_steps must be a whole number, got True"),
        ("train_steps=1e400", r"setting train_steps must be a whole number, got '1e400'"),
        ("lr=NaN", r"setting lr must be a finite number, got 'NaN'"),
        ("lr=0", r"embedded setting lr must be a finite number > 0, got 0"),
        ("dropout=1", r"embedded setting dropout must be a finite number in \[0, 1\), got 1"),
        ("warmup=0", r"embedded setting warmup must be a whole number >= 1, got 0"),
        ("seed=-1", r"embedded setting seed must be a whole number from 0 to 4294967295, got -1"),
        ("d_model=90", r"embedded setting d_model \(90\) must be a multiple of n_heads \(4\)"),
        ("number_bins=1", r"embedded setting number_bins must be 0 \(plain digits\) or 2 to"),
        ("text_order=sideways", r"embedded setting text_order must be left_to_right or any, got 'sideways'"),
        ("string_modes=[1]", r"setting string_modes must be a JSON object, got \[1\]"),
        ("scaffold=1", r"setting scaffold must be true or false, got 1"),
        ("bogus=1", r"unknown setting\(s\) bogus for generator 'embedded'"),
        ("=5", r"generator option '=5': expected KEY=VALUE"),
        ("train_steps", r"generator option 'train_steps': expected KEY=VALUE"),
    ):
        case("sample", f"gen_opt_{opt}", [*sample, "--gen-opt", opt], expect)
    case(
        "sample",
        "gen_opt_for_ar",
        [*sample, "--generator", "ar:embedded", "--gen-opt", "batch=2"],
        r"generator 'ar:embedded' takes no settings \(got batch\)",
    )

    # prompt files
    def prompt_case(command: str, name: str, data: str, expect: str, base: list[str]) -> None:
        path = f(f"prompts/{name}.json", data)
        case(command, f"prompt_file_{name}", [*base, "--prompt-file", path], expect)

    for name, data, expect in (
        ("not_json", "{text: 1}", r"invalid JSON at line 1, column 2"),
        ("nan_temperature", '{"sampling": {"temperature": NaN}}', r"NaN is not valid JSON"),
        (
            "temperature_1e400",
            '{"sampling": {"temperature": 1e400}}',
            r"\$\.sampling\.temperature: 1e400 is not a finite number",
        ),
        (
            "temperature_text",
            '{"sampling": {"temperature": "hot"}}',
            r"sampling: temperature must be a finite number, got 'hot'",
        ),
        (
            "steps_fraction",
            '{"sampling": {"steps": 1.5}}',
            r"sampling: sampling steps must be a whole number, got 1\.5",
        ),
        ("sampling_unknown_key", '{"sampling": {"heat": 1}}', r"'sampling' must be an object with keys from"),
        ("unknown_key", '{"txt": "a"}', r"unknown prompt keys \['txt'\]"),
        ("array_root", "[]", r"a prompt must be a JSON object"),
        ("pins_list", '{"pins": ["name"]}', r"'pins' must be an object of path: value"),
        ("forbid_scalar", '{"forbid": {"$.kind": "a"}}', r"forbid: \$\.kind must be an array of values, got 'a'"),
        ("range_reversed", '{"ranges": {"$.x": [2, 1]}}', r"range for \$\.x must be \[lo, hi\] numbers with lo <= hi"),
        ("range_text", '{"ranges": {"$.x": ["a", "b"]}}', r"range for \$\.x must be \[lo, hi\] numbers"),
        (
            "bias_text",
            '{"bias": {"$.kind": {"\\"a\\"": "much"}}}',
            r"bias: \$\.kind must be an object of value: finite number",
        ),
        ("text_number", '{"text": 5}', r"'text' must be a string"),
        ("lone_surrogate", '{"text": "\\ud800"}', r"\$\.text: text holds a lone surrogate \\ud800"),
        ("deep", '{"text": "a", "pins": ' + "[" * DEEP + "]" * DEEP + "}", r"nested deeper than 100 levels"),
    ):
        prompt_case("sample", name, data, expect, sample)
    case(
        "sample",
        "prompt_file_missing",
        [*sample, "--prompt-file", f.path("prompts/none.json")],
        r"none\.json: cannot read prompt file: No such file or directory",
    )

    # ---- output paths of the file-writing commands ------------------------------------------------
    base_for_file = {
        "sample": ["--schema", schema, "--seeds", seeds],
        "judge": ["--schema", schema, "--seeds", seeds, "--records", records],
        "audit": ["--schema", schema, "--seeds", seeds, "--records", records],
        "report": [run],
        "export": [run, "--format", "csv"],
    }
    for command, base in base_for_file.items():
        for name, (path, expect) in bad_out_files.items():
            case(command, f"out_{name}", [*base, "--out", path], expect, outputs=nowhere)
    for command, base in {
        "run": ["--schema", schema, "--seeds", seeds],
        "bench": ["--dataset", dataset],
        "generate": ["--run", run, "--n", "5"],
    }.items():
        for name, (path, expect) in bad_out_folders.items():
            case(command, f"out_{name}", [*base, "--out", path], expect, outputs=nowhere)

    # ---- aod run ------------------------------------------------------------------------------------
    run_args = ["--schema", schema, "--seeds", seeds, "--out", f.path("out/run")]
    for flag, value, expect in (
        ("--seed", "99999999999999999999999", r"--seed must be a whole number from 0 to 4294967295"),
        ("--temperature", "nan", r"--temperature must be a finite number, got nan"),
        ("--accept-share", "inf", r"--accept-share must be a finite number, got inf"),
        ("--accept-share", "0.2", r"--accept-share must be in \[0\.5, 1\), got 0\.2"),
        ("--near-copy", "nan", r"--near-copy must be a finite number, got nan"),
        ("--near-numbers", "nan", r"--near-numbers must be a finite number, got nan"),
        ("--veto=-inf", None, r"--veto must be a finite number, got -inf"),
        ("--iterations", "0", r"--iterations must be >= 1, got 0"),
        ("--iterations", "99999999999999999999", r"--iterations must be at most 2147483647"),
        ("--batch", "-1", r"--batch must be >= 1, got -1"),
        ("--repairs", "7", r"--repairs must be 0 to 2"),
        ("--fit-steps", "0", r"--fit-steps must be >= 1, got 0"),
        ("--max-agent-failures", "0", r"--max-agent-failures must be >= 1, got 0"),
        ("--weights", "tsr=nan", r"reward weights must be finite numbers"),
        ("--weights", "tsr=-1,judge=0,novelty=0,diversity=0", r"reward weights must be >= 0 with a positive sum"),
        ("--weights", "speed=1", r"unknown reward weight 'speed'"),
        ("--gen-opt", "train_steps=-5", r"embedded setting train_steps must be a whole number >= 1, got -5"),
        ("--judge", "gpt-9", r"unknown chat model spec 'gpt-9'"),
        ("--prompt", "\udcff", r"--prompt is not UTF-8 text"),
        # the same machine-independent refusal with a GPU or without one
        ("--device", "cuda:99", r"--device: device cuda:99 asked for, but (no CUDA device|this machine has \d+ CUDA)"),
    ):
        case("run", _flag_name(flag, value), [*run_args, *_flag_args(flag, value)], expect)
    case(
        "run",
        "prompt_file_1e400",
        [*run_args, "--prompt-file", f.path("prompts/temperature_1e400.json")],
        r"1e400 is not a finite number",
    )
    case(
        "run",
        "rubric_file_missing",
        [*run_args, "--rubric-file", f.path("nope.txt")],
        r"nope\.txt: cannot read rubric file",
    )
    case(
        "run",
        "out_holds_a_run",
        ["--schema", schema, "--seeds", seeds, "--out", run],
        r"run folder holds a run \(use aod resume\)",
    )
    case(
        "run",
        "out_not_empty",
        ["--schema", schema, "--seeds", seeds, "--out", full],
        r"run folder exists and is not empty",
    )

    # ---- aod bench ------------------------------------------------------------------------------------
    bench = ["--dataset", dataset, "--out", f.path("out/bench")]
    for flag, value, expect in (
        ("--seed", "99999999999999999999999", r"--seed must be a whole number from 0 to 4294967295"),
        ("--veto", "nan", r"--veto must be a finite number, got nan"),
        ("--near-numbers", "inf", r"--near-numbers must be a finite number, got inf"),
        ("--iterations", "0", r"--iterations, --batch and --probe must be >= 1"),
        ("--batch", "99999999999999999999", r"--batch must be at most 2147483647"),
        ("--methods", "aod,telepathy", r"unknown method\(s\) telepathy"),
        ("--methods", ",", r"no methods given"),
        ("--repairs", "9", r"--repairs must be 0 to 2"),
    ):
        case("bench", _flag_name(flag, value), [*bench, *_flag_args(flag, value)], expect)
    case(
        "bench",
        "dataset_missing",
        ["--dataset", f.path("nodata"), "--out", f.path("out/bench")],
        r"nodata: dataset folder not found",
    )
    f("ds_noseeds/schema.json", json.dumps(SCHEMA))
    case(
        "bench",
        "dataset_without_seeds",
        ["--dataset", f.path("ds_noseeds"), "--out", f.path("out/bench")],
        r"dataset folder is missing a seeds file",
    )
    f("ds_1e400/schema.json", json.dumps(SCHEMA))
    f("ds_1e400/seeds.jsonl", '{"name": "a", "x": 1e400}\n')
    case(
        "bench",
        "dataset_seed_1e400",
        ["--dataset", f.path("ds_1e400"), "--out", f.path("out/bench")],
        r"seeds\.jsonl:1: \$\.x: 1e400 is not a finite number",
    )
    f("ds_deep/schema.json", '{"type": "object", "properties": {"a": ' + '{"not": ' * DEEP + "{}" + "}" * DEEP + "}}")
    f("ds_deep/seeds.jsonl", '{"a": 1}\n')
    case(
        "bench",
        "dataset_schema_too_deep",
        ["--dataset", f.path("ds_deep"), "--out", f.path("out/bench")],
        r"schema\.json: invalid JSON: nested deeper than 100 levels",
    )
    case("bench", "out_not_empty", ["--dataset", dataset, "--out", full], r"output folder exists and is not empty")

    # ---- aod judge and aod audit: the records file ---------------------------------------------------
    bad_records = {
        "not_utf8": (b'{"name": "caf\xe9"}\n', r"\.jsonl: file is not UTF-8 text at line 1 \(byte 13"),
        "utf16": ('{"name": "a"}\n'.encode("utf-16"), r"\.jsonl: file is UTF-16 text; save it as UTF-8"),
        "utf16_be": (b"\xfe\xff" + '{"name": "a"}\n'.encode("utf-16-be"), r"file is UTF-16 text"),
        "empty": (b"", r"\.jsonl: no records"),
        "blank_lines": (b"\n \n\t\n", r"\.jsonl: no records"),
        "bom_only": (b"\xef\xbb\xbf", r"\.jsonl: no records"),
    }
    for name, (data, expect) in bad_records.items():
        path = f(f"records/{name}.jsonl", data)
        for command in ("judge", "audit"):
            argv = ["--schema", schema, "--seeds", seeds, "--records", path] + (
                ["--out", out_file] if command == "judge" else []
            )
            case(command, f"records_{name}", argv, expect)
    for command in ("judge", "audit"):
        argv = ["--schema", schema, "--seeds", seeds]
        tail = ["--out", out_file]
        case(
            command,
            "records_missing",
            [*argv, "--records", f.path("records/none.jsonl"), *tail],
            r"none\.jsonl: records file not found",
        )
        case(
            command,
            "records_a_folder",
            [*argv, "--records", f.dir("records/dir.jsonl"), *tail],
            r"dir\.jsonl: records file not found",
        )
        case(
            command,
            "records_txt",
            [*argv, "--records", f("records/r.txt", '{"name": "a"}\n'), *tail],
            r"r\.txt: unsupported records file type '\.txt'",
        )
        case(
            command,
            "records_json_not_an_array",
            [*argv, "--records", f("records/obj.json", '{"name": "a"}'), *tail],
            r"obj\.json: expected an array of records, found an object",
        )
        case(
            command,
            "records_json_nan",
            [*argv, "--records", f("records/nan.json", '[{"name": "a", "x": NaN}]'), *tail],
            r"nan\.json: invalid JSON: NaN is not valid JSON",
        )
        case(
            command,
            "records_line_over_the_cell_limit",
            [*argv, "--records", f("records/long.jsonl", '{"name": "' + "x" * 3000 + '"}\n'), *tail],
            r"long\.jsonl: line 1 is too long \(.*the limit is 0\.001 MB, set AOD_MAX_CELL_MB",
            env={"AOD_MAX_CELL_MB": "0.001"},
        )
        case(
            command,
            "records_over_the_input_limit",
            [*argv, "--records", f("records/big.jsonl", _jsonl(SEEDS) * 20), *tail],
            r"big\.jsonl: file is too large \(.*set AOD_MAX_INPUT_MB",
            env={"AOD_MAX_INPUT_MB": "0.001"},
        )
        case(
            command,
            "seed_out_of_range",
            [*argv, "--records", records, "--seed", "-1", *tail],
            r"--seed must be a whole number from 0 to 4294967295, got -1",
        )
        case(
            command,
            "dependencies_bad",
            [*argv, "--records", records, "--add-dependency", "name >> n", *tail],
            r"expected 'A -> B' or '\(A, B\)'",
        )
    judge = ["--schema", schema, "--seeds", seeds, "--records", records, "--out", out_file]
    for flag, value, expect in (
        ("--accept-share", "nan", r"--accept-share must be a finite number, got nan"),
        ("--accept-share", "1", r"--accept-share must be in \[0\.5, 1\), got 1\.0"),
        ("--veto", "inf", r"--veto must be a finite number, got inf"),
        ("--near-copy", "0", r"--near-copy must be > 0"),
        ("--near-numbers", "0.9", r"--near-numbers must be at most 0\.5"),
        ("--task", "\udcff", r"--task is not UTF-8 text"),
        ("--judge-mode", "vibes", r"argument --judge-mode: invalid choice: 'vibes'"),
        ("--device", "gpu", r"--device: unknown device 'gpu'"),
    ):
        case("judge", _flag_name(flag, value), [*judge, *_flag_args(flag, value)], expect)
    case(
        "judge",
        "rubric_file_a_folder",
        [*judge, "--rubric-file", f.dir("rubric.d")],
        r"rubric\.d: cannot read rubric file: Is a directory",
    )
    f("few/seeds.jsonl", _jsonl(SEEDS[:3]))
    case(
        "judge",
        "too_few_seeds",
        ["--schema", schema, "--seeds", f.path("few/seeds.jsonl"), "--records", records, "--out", out_file],
        r"the judge needs at least 8 seed records to calibrate on, got 3",
    )

    # ---- run folders damaged by hand: resume, report, export, generate ------------------------------
    for name, (how, expect) in RUN_DAMAGE.items():
        if callable(how):
            path = _run_folder(root, f"runs/{name}")
            how(path)
        else:
            path = _run_folder(root, f"runs/{name}", config=how)
        for command, argv in (
            ("resume", [str(path), "--quiet"]),
            ("report", [str(path), "--out", f.path(f"out/{name}.html")]),
            ("export", [str(path), "--format", "jsonl", "--out", f.path(f"out/{name}.jsonl")]),
            ("generate", ["--run", str(path), "--n", "5", "--out", f.path(f"out/gen_{name}")]),
        ):
            case(command, f"run_{name}", argv, expect)
    for command, argv in (
        ("resume", [f.path("no_run"), "--quiet"]),
        ("report", [f.path("no_run"), "--out", f.path("out/r.html")]),
        ("export", [f.path("no_run"), "--format", "csv", "--out", f.path("out/r.csv")]),
        ("generate", ["--run", f.path("no_run"), "--n", "5", "--out", f.path("out/gen")]),
    ):
        # a missing folder is named in the command's own words
        expect = r"no_run: run folder not found" if command == "generate" else r"no_run: not a run folder"
        case(command, "run_folder_missing", argv, expect)
    case("resume", "not_a_run_folder", [f.path("out")], r"/out: not a run folder \(no config\.json\)")
    no_inputs = _run_folder(root, "runs/no_inputs", inputs=False)
    case("resume", "inputs_missing", [str(no_inputs)], r"inputs/schema\.json and inputs/seeds\.jsonl missing")
    bad_inputs = _run_folder(root, "runs/inputs_1e400")
    (bad_inputs / "inputs" / "seeds.jsonl").write_text('{"name": "a", "x": 1e400}\n')
    case(
        "resume", "inputs_seed_1e400", [str(bad_inputs)], r"inputs/seeds\.jsonl:1: \$\.x: 1e400 is not a finite number"
    )
    case(
        "generate",
        "inputs_seed_1e400",
        ["--run", str(bad_inputs), "--n", "5", "--out", f.path("out/gen")],
        r"inputs/seeds\.jsonl:1: \$\.x: 1e400",
    )
    case(
        "generate",
        "inputs_missing",
        ["--run", str(no_inputs), "--n", "5", "--out", f.path("out/gen")],
        r"inputs/schema\.json: cannot read schema file",
    )

    # ---- aod generate: its own settings ---------------------------------------------------------------
    gen = ["--run", run, "--out", f.path("out/gen")]
    for flag_values, expect in (
        (["--n", "0"], r"--n must be >= 1, got 0"),
        (["--n", "99999999999999999999"], r"--n must be at most 2147483647"),
        (["--n", "5", "--workers", "0"], r"--workers must be >= 1, got 0"),
        (["--n", "5", "--batch", "0"], r"--batch must be >= 1, got 0"),
        (["--n", "5", "--shards", "9"], r"--shards must be between 1 and --n \(5\), got 9"),
        (["--n", "5", "--audit-sample", "-1"], r"--audit-sample must be >= 0, got -1"),
        (["--n", "5", "--cpus-per-worker", "0"], r"cpus per worker must be > 0"),
        (["--n", "5", "--cpus-per-worker", "nan"], r"--cpus-per-worker must be a finite number, got nan"),
        (["--n", "5", "--gpus-per-worker", "inf"], r"--gpus-per-worker must be a finite number, got inf"),
        (["--n", "5", "--seed", "-7"], r"--seed must be a whole number from 0 to 4294967295, got -7"),
        (["--n", "5", "--judge", "gpt-9"], r"gpt-9"),
    ):
        name = "_".join(v[2:] if v.startswith("--") else v for v in flag_values[2:] or flag_values)
        case("generate", f"flag_{name}", [*gen, *flag_values], expect)
    case(
        "generate",
        "out_not_a_job",
        ["--run", run, "--n", "5", "--out", full],
        r"output folder exists, is not empty and holds no bulk job",
    )

    # ---- export and report: their own flags -----------------------------------------------------------
    case(
        "export",
        "format_xlsx",
        [run, "--format", "xlsx", "--out", f.path("out/r.xlsx")],
        r"argument --format: invalid choice: 'xlsx'",
    )

    valid = _valid_cases(f, schema, seeds)
    names = Counter(c.id for c in cases)
    dupes = [n for n, k in names.items() if k > 1]
    assert not dupes, f"case names given twice: {dupes}"
    return cases, valid


def _valid_cases(f: _Files, schema: str, seeds: str) -> list[Valid]:
    """Records read, not refused: a BOM is not part of line 1; what the strict reader refuses in a
    line (NaN, a key twice, too deep, 1e400, a lone surrogate) is a record that fails to parse."""
    good = [json.dumps(r) for r in SEEDS[3:6]]
    lines = {
        "bom_first_line": "\ufeff" + good[0],
        "good_1": good[1],
        "nan": '{"name": "a", "x": NaN}',
        "duplicate_key": '{"name": "a", "name": "b"}',
        "deep": '{"name": "a", "x": ' + "[" * DEEP + "]" * DEEP + "}",
        "number_1e400": '{"name": "a", "x": 1e400}',
        "lone_surrogate": '{"name": "\\ud800"}',
        "schema_invalid": '{"name": 5}',
        "good_2": good[2],
    }
    path = f("valid/records.jsonl", "\n".join(lines.values()) + "\n")
    parses = [not k.startswith(("nan", "duplicate", "deep", "number", "lone")) for k in lines]
    n, ok = len(lines), sum(parses)
    return [
        Valid(
            "audit",
            "strict_lines_counted_invalid",
            ["audit", "--schema", schema, "--seeds", seeds, "--records", path, "--out", f.path("valid/audit.json")],
            f.path("valid/audit.json"),
            {"n_candidates": n, "valid_json_rate": ok / n, "schema_valid_rate": (ok - 1) / n},
        ),
        Valid(
            "judge",
            "strict_lines_judged_and_rejected",
            [
                "judge",
                "--schema",
                schema,
                "--seeds",
                seeds,
                "--records",
                path,
                "--out",
                f.path("valid/verdicts.jsonl"),
                "--quiet",
            ],
            f.path("valid/verdicts.jsonl"),
            {"parses": parses},
        ),
    ]


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/hostile/make_corpus.py DIR")
    refused, read = write_corpus(sys.argv[1])
    per = Counter(c.command for c in refused)
    for c in refused:
        print(c.id)
    print(f"{len(refused)} refused cases ({', '.join(f'{k} {v}' for k, v in sorted(per.items()))}), {len(read)} valid")
