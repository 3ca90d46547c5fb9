"""A run folder checked before a command reads it (``aod resume``, ``report``, ``export``, ``generate``).

Run folders are edited by hand, copied half, or damaged on disk; the readers in ``store.py`` trust
their shape (they were written by the runner), so a list where ``config.json`` holds an object, a
number where ``metrics.jsonl`` holds an iteration, or a scalar line in ``candidates.jsonl`` ended in
a TypeError deep in a report, or worse: ``resume``'s repair dropped such lines without a word. This
check reads and changes nothing else: a torn last line (what a kill leaves) and the lines of an
iteration in flight are the store's to cut back, everything else is refused with the file and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

from aod_core.data.schema import json_type
from aod_core.errors import InputError
from aod_core.generators import check_options, setting_type_problem
from aod_core.runs.store import ITERATION_FILES, RunStore, _damage, _read_jsonl

RUN_FILES = ("metrics.jsonl", "accepted.jsonl") + ITERATION_FILES


def check_run_folder(path: str | os.PathLike) -> RunStore:
    """The run at ``path`` after every check above; InputError naming the file (and line) otherwise
    (``not a run folder`` where there is no ``config.json``)."""
    p = Path(path)
    store = RunStore.open(p, repair=False)  # "not a run folder" without a config.json
    check_run_config(store.config, str(p / "config.json"))
    for name in RUN_FILES:
        if (p / name).exists() and not (p / name).is_file():
            raise InputError("is not a file (a folder?): a run keeps its records in files", where=str(p / name))
    missing = [n for n in RUN_FILES if not (p / n).is_file()]
    if missing and any((p / n).is_file() and (p / n).stat().st_size for n in RUN_FILES):
        raise InputError(
            f"{', '.join(missing)} missing from the run folder (removed by hand?): restore the file(s) or start a new run",
            where=str(p),
        )
    rows: dict[str, list[Any]] = {}
    for name in RUN_FILES:
        bad = _damage(p / name)
        if bad is not None:
            raise InputError(
                f"line {bad} of {name} is not valid JSON and more lines follow it (edited by hand?): fix or remove that line",
                where=str(p / name),
            )
        rows[name] = _read_jsonl(p / name)[0]
        for n, row in enumerate(rows[name], 1):
            if not isinstance(row, dict):
                raise InputError(
                    f"line {n} of {name} is {json_type(row)}, not a JSON object (edited by hand?)", where=str(p / name)
                )
    _check_metrics(rows["metrics.jsonl"], len(rows["accepted.jsonl"]), p)
    _check_state(p / "state.json")
    return store


def _check_state(path: Path) -> None:
    """``state.json`` as the readers use it: an unreadable one counts as status unknown (the store
    says so), but one that reads as something else than an object, or names its process by other
    than a number, ended in a TypeError in the live-run check and the report."""
    try:
        state = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return
    if not isinstance(state, dict):
        raise InputError(
            f"holds {json_type(state)}, not a JSON object (edited by hand?): remove it, the run writes it again",
            where=str(path),
        )
    pid, status = state.get("pid"), state.get("status")
    if (pid is not None and (isinstance(pid, bool) or not isinstance(pid, int))) or not isinstance(
        status, (str, type(None))
    ):
        raise InputError(
            f"pid must be a whole number and status text, found pid {pid!r}, status {status!r} (edited by hand?): "
            "remove it, the run writes it again",
            where=str(path),
        )


def _check_metrics(metrics: list[dict], accepted: int, p: Path) -> None:
    where = str(p / "metrics.jsonl")
    total = 0
    for i, m in enumerate(metrics):
        it = m.get("iteration")
        if isinstance(it, bool) or it != i:
            raise InputError(
                f"metrics.jsonl line {i + 1} should be iteration {i}, found {it!r} (edited by hand?)", where=where
            )
        t = m.get("accepted_total", total)
        if isinstance(t, bool) or not isinstance(t, int) or t < total:
            raise InputError(
                f"metrics.jsonl line {i + 1}: accepted_total must be a whole number that never falls (was {total}), "
                f"found {t!r} (edited by hand?)",
                where=where,
            )
        total = t
    if total > accepted:
        raise InputError(
            f"accepted.jsonl holds {accepted} records but {total} were accepted by iteration {len(metrics) - 1}: "
            "accepted records were removed; restore the file",
            where=str(p / "accepted.jsonl"),
        )


def check_run_config(config: Any, where: str) -> None:
    """``config.json``'s settings checked as a new run's are: known keys, JSON types, ranges."""
    from aod_core.canvas.prompt import Prompt
    from aod_core.runs.setup import RECORDED, RunConfig, check_settings

    _check_types(RunConfig, config, "", where, allowed=set(RECORDED))
    try:
        run = RunConfig.from_dict(config)
        check_settings(run.loop)
        run.judge_settings.check()
        run.dependencies.check()
        Prompt.from_dict(run.prompt, where="prompt")
        check_options(run.generator, run.generator_config)
    except InputError as e:
        raise InputError(str(e), where=where) from None
    except (TypeError, ValueError) as e:  # a shape the type check above does not know
        raise InputError(f"not a run's settings: {e}", where=where) from None


def _check_types(cls: type, data: Any, prefix: str, where: str, allowed: set[str] = frozenset()) -> None:
    """Each key of ``data`` is a field of the dataclass ``cls`` whose value has its default's JSON type;
    fields holding a dataclass are checked inside."""
    if not isinstance(data, dict):
        raise InputError(
            f"{prefix.rstrip('.') or 'the file'} must be a JSON object, found {json_type(data)}", where=where
        )
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known) - allowed)
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(prefix + k for k in unknown)} (edited by hand?)", where=where)
    for name, f in known.items():
        if name not in data:
            continue
        default = (
            f.default if f.default is not MISSING else f.default_factory() if f.default_factory is not MISSING else None
        )
        value = data[name]
        if is_dataclass(default):
            _check_types(type(default), value, f"{prefix}{name}.", where)
            continue
        what = setting_type_problem(default, value)
        if what:
            raise InputError(
                f"{prefix}{name} must be {what}, found {json.dumps(value, ensure_ascii=False)[:80]}", where=where
            )
