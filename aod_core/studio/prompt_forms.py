"""The prompt as the Sample and Run pages edit it: instruction text, sampling settings, pin and
forbid rows (``PATH=VALUE`` in two cells), and the table of edits the instruction compiler made
of the text, which a person may change before the prompt is used.

A form's rows become a :class:`~aod_core.canvas.prompt.Prompt` here and a prompt becomes rows
again, so a page never builds or reads one itself. One pin or forbid item is read by
:func:`aod_core.canvas.prompt.parse_path_value`, the parser the CLI's ``--pin``/``--forbid`` use.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aod_core.canvas.prompt import Prompt, Sampling, parse_path_value
from aod_core.canvas.scaffold import Scaffold
from aod_core.data.seeds import Dataset
from aod_core.errors import InputError
from aod_core.studio.cells import blank, parse_cell_value

# ---- pins, forbids and sampling ---------------------------------------------------------------


def parse_path_values(rows: Iterable[Mapping[str, Any]], what: str) -> list[tuple[str, Any]]:
    """(path, value) pairs from editor rows with ``path`` and ``value`` columns; blank rows skipped."""
    out = []
    for i, row in enumerate(rows, 1):
        path, raw = row.get("path"), row.get("value")
        if blank(path) and blank(raw):
            continue
        if blank(path):
            raise InputError(f"{what} row {i}: choose a field path")
        path, value = parse_path_value((path, raw.strip() if isinstance(raw, str) else raw), what)
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or (isinstance(raw, str) and raw == ""):
            raise InputError(f"{what} {path}: no value (type null for JSON null)")
        out.append((path, value))
    return out


def build_prompt(
    text: str = "",
    *,
    sampling: Mapping[str, Any] | None = None,
    pins: Iterable[Mapping[str, Any]] = (),
    forbids: Iterable[Mapping[str, Any]] = (),
) -> Prompt:
    """A Prompt from the page's settings: instruction text, sampling settings and pin/forbid rows."""
    try:
        s = Sampling(**dict(sampling or {}))
    except TypeError as e:
        raise InputError(f"bad sampling settings: {e}") from None
    s.check()
    prompt = Prompt(text=text or "", sampling=s)
    for path, value in parse_path_values(pins, "pin"):
        if path in prompt.pins and prompt.pins[path] != value:
            raise InputError(f"pin {path}: pinned twice to different values")
        prompt.pins[path] = value
    for path, value in parse_path_values(forbids, "forbid"):
        prompt.forbid.setdefault(path, []).append(value)
    return prompt


def edit_prompt(
    base: Prompt,
    text: str,
    *,
    sampling: Mapping[str, Any],
    pins: Iterable[Mapping[str, Any]],
    forbids: Iterable[Mapping[str, Any]],
) -> Prompt:
    """A human edit of ``base``: new text, sampling, pins and forbids; its ranges and biases (set
    by the optimizer, not shown in the editor) are kept."""
    from aod_core.agents.compiler import strip_compiled

    base = strip_compiled(base)  # compiled edits come back through prompt_with_compiled
    merged = {**base.sampling.__dict__, **dict(sampling)}
    prompt = build_prompt(text, sampling=merged, pins=pins, forbids=forbids)
    prompt.ranges, prompt.bias = dict(base.ranges), dict(base.bias)
    return prompt


def path_value_rows(mapping: Mapping[str, Any], *, many: bool = False) -> list[dict[str, str]]:
    """Pins (path -> value) or forbids (path -> [values]) as editor rows with JSON-text values."""
    rows = []
    for path, value in mapping.items():
        for v in value if many else [value]:
            rows.append({"path": path, "value": json.dumps(v, ensure_ascii=False)})
    return rows


# ---- instruction text -> compiled scaffold edits ----------------------------------------------


#: The compiled-edit table's columns (Sample page, Run page editor), in order.
COMPILED_COLUMNS = ["op", "path", "value", "lo", "hi", "amount", "share", "phrase", "by"]
COMPILED_OPS = ("pin", "forbid", "range", "bias", "temperature")


def compile_instruction(
    dataset: Dataset, text: str, *, chat: Any = None, scaffold: Scaffold | None = None
) -> dict[str, Any]:
    """The instruction compiler's output for ``text`` on this dataset (``Prompt.compiled`` form):
    edits, unmapped phrases; ``chat`` (a ChatModel or None) is asked about what the rules leave."""
    from aod_core.agents.compiler import compiler_for

    if not (text or "").strip():
        return {}
    compiler = compiler_for(scaffold, dataset.schema.resolved, dataset.seeds.records, chat)
    return compiler.compile(text).to_dict()


def structure_keys(dataset: Dataset) -> list[str]:
    """Array-length and optional-key paths a compiled edit may name (``$.birds.length``, ``$.note?``)."""
    sc = Scaffold.build(dataset.schema.resolved, dataset.seeds.records)
    return list(dict.fromkeys(s.key for s in sc.slots if s.role in ("count", "present")))


def compiled_result_rows(compiled: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The compiled edits a batch was sampled with: what each does, why, measured share, author."""
    from aod_core.agents.resolver import Edit

    return [
        {
            "edit": Edit.from_dict(e).describe(),
            "from the words": e.get("phrase", ""),
            "why": e.get("why", ""),
            "by": e.get("author", "compiler"),
        }
        for e in compiled.get("edits") or []
    ]


def compiled_rows(compiled: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The compiled edits as editable table rows (values as JSON text)."""
    rows = []
    for e in (compiled or {}).get("edits") or []:
        rows.append(
            {
                "op": e.get("op"),
                "path": e.get("path", ""),
                "value": ""
                if e.get("op") in ("range", "temperature")
                else json.dumps(e.get("value"), ensure_ascii=False),
                "lo": e.get("lo"),
                "hi": e.get("hi"),
                "amount": e.get("amount"),
                "share": e.get("share"),
                "phrase": e.get("phrase", ""),
                "by": e.get("author", "compiler"),
            }
        )
    return rows


def compiled_messages(compiled: Mapping[str, Any] | None) -> list[str]:
    """One warning line per phrase the compiler could not map and per edit the generator refused."""
    from aod_core.agents.compiler import CompiledInstruction

    c = CompiledInstruction.from_dict(dict(compiled or {}))
    return c.messages() if c else []


def compiled_from_rows(compiled: Mapping[str, Any] | None, rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``compiled`` with its edits replaced by the (possibly hand-edited) table rows: a row equal to
    a compiled edit keeps it (author compiler); a changed or added row is authored by a human."""
    from aod_core.agents.resolver import Edit

    base = dict(compiled or {})
    old = {json.dumps(r, sort_keys=True, default=str): e for r, e in zip(compiled_rows(base), base.get("edits") or [])}
    edits = []
    for i, row in enumerate(rows, 1):
        row = {k: (None if blank(v) else v) for k, v in dict(row).items()}
        if all(row.get(k) is None for k in COMPILED_COLUMNS if k not in ("by",)):
            continue
        key = json.dumps({k: row.get(k) for k in COMPILED_COLUMNS}, sort_keys=True, default=str)
        if key in old:
            edits.append(old[key])
            continue
        op = str(row.get("op") or "").strip()
        if op not in COMPILED_OPS:
            raise InputError(f"compiled edit row {i}: op must be one of {', '.join(COMPILED_OPS)}, got {op!r}")
        path = str(row.get("path") or "").strip()
        if op != "temperature" and not path:
            raise InputError(f"compiled edit row {i}: choose a field path")
        if path and not path.startswith("$"):
            path = f"$.{path}"
        e = Edit(op, path, phrase=str(row.get("phrase") or ""), author="human", source="human", why="edited by hand")
        try:
            if op in ("pin", "forbid", "bias"):
                if row.get("value") is None:
                    raise InputError(f"compiled edit row {i}: {op} {path} needs a value (type null for JSON null)")
                e.value = parse_cell_value(str(row["value"]).strip()) if isinstance(row["value"], str) else row["value"]
            if op == "range":
                e.lo, e.hi = float(row["lo"]), float(row["hi"])
                if e.lo > e.hi:
                    raise InputError(f"compiled edit row {i}: range [{e.lo}, {e.hi}] is empty")
            if op in ("bias", "temperature"):
                e.amount = float(row["amount"])
            if op == "bias" and row.get("share") is not None:
                e.share, e.direction = float(row["share"]), 1
        except (TypeError, ValueError, KeyError):
            raise InputError(
                f"compiled edit row {i}: {op} needs numbers in "
                + {"range": "lo and hi", "bias": "amount", "temperature": "amount"}.get(op, "its columns")
            ) from None
        edits.append(e.to_dict())
    base["edits"] = edits
    return base


def prompt_with_compiled(
    prompt: Prompt, compiled: Mapping[str, Any] | None, check: Callable[[Prompt], None] | None = None
) -> Prompt:
    """``prompt`` with ``compiled``'s edits applied (the old compiled edits removed first); edits the
    generator refuses (``check``) are listed in the result's ``compiled["refused"]``."""
    from aod_core.agents.compiler import CompiledInstruction, strip_compiled, with_compiled

    c = CompiledInstruction.from_dict(dict(compiled or {}))
    if c is None:
        return strip_compiled(prompt)
    c.refused = []
    return with_compiled(prompt, c, check=check)
